"""Shared test setup: offline hubs, a quiet Mesa cache, and the repository's paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MESA_SHADER_CACHE_DIR", "/tmp/simgen-mesa-cache")

REPO = Path(__file__).resolve().parents[1]
SCENES = REPO / "scenes"


@pytest.fixture
def default_spec_path() -> Path:
    """The README's default scene."""
    return SCENES / "tabletop_clutter.yaml"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of a module that drives the command line ``cli``.

    ``.ci/run`` runs the whole suite with ``COLUMNS`` unset, then the ``cli`` tests again at 80 columns:
    output that wraps at a narrow terminal must not break them.
    """
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and ("CliRunner" in vars(module) or module.__name__.endswith("test_cli")):
            item.add_marker(pytest.mark.cli)
