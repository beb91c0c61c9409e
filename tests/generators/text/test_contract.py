"""Every text generator follows the produce contract, resolves from its registered name and pins its templates."""

from __future__ import annotations

import json

import pytest

from simgen.generators.text import TEXT_GENERATORS
from simgen.generators.text.prompts import PINNED_SHA256
from simgen.generators.text.records import TextGenerator
from simgen.registry import import_string

LLM_FREE = {"text/scenario-captions-v1", "text/magpie-v1"}


@pytest.mark.parametrize("name", sorted(TEXT_GENERATORS))
def test_registered_name_resolves_to_a_generator_of_that_name(name: str) -> None:
    cls = import_string(TEXT_GENERATORS[name])
    assert cls.name == name and cls.uses_llm is (name not in LLM_FREE)
    assert callable(cls.produce) and callable(cls.config)


@pytest.mark.parametrize("name", sorted(set(TEXT_GENERATORS) - {"text/magpie-v1"}))
def test_instances_follow_the_protocol_and_pin_their_templates(name: str) -> None:
    gen = import_string(TEXT_GENERATORS[name])()
    assert isinstance(gen, TextGenerator)
    config = gen.config()
    json.dumps(config, allow_nan=False)
    assert config["generator"] == name
    for ref in config.get("templates", []):
        assert PINNED_SHA256[ref["name"]] == ref["sha256"]


def test_the_package_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, simgen.generators.text as t; t.TEXT_GENERATORS; "
        "print(sorted(m for m in ('anthropic', 'rouge_score', 'datasketch', 'sklearn', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
