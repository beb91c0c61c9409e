"""Versioned prompt templates shipped in the package, each pinned by its SHA-256.

A template is a text file in ``simgen/generators/text/templates/``. Its sections start with a line ``[name]``:
``[system]`` and ``[user]`` are the messages; other sections (``[method.deepen]``) are named pieces a generator
picks from. Lines starting with ``# `` before the first section are comments for people. Placeholders are
``$name`` (``string.Template``): a value is inserted once and never expanded again, so a record's text cannot
smuggle in another placeholder, and ``$$`` is a literal dollar.

Every record names the template that produced it and the SHA-256 of the template file. The hashes are pinned in
:data:`PINNED_SHA256`: editing a template without giving it a new version name fails the tests, so a name always
means one text, and an old dataset can say exactly which prompt made it.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from pydantic import BaseModel

from simgen.errors import RegistryError, did_you_mean
from simgen.llm.client import StructuredRequest, StructuredResult

__all__ = [
    "PINNED_SHA256",
    "TEMPLATES",
    "Template",
    "answered_by",
    "draw_salt",
    "get_template",
    "request",
    "response_keys",
    "template_names",
]

#: Template name -> file in ``templates/``. A new text gets a new version: never edit a released file.
TEMPLATES: dict[str, str] = {
    "self-instruct/propose-v1": "self_instruct_propose_v1.txt",
    "self-instruct/instance-input-first-v1": "self_instruct_instance_input_first_v1.txt",
    "self-instruct/instance-output-first-v1": "self_instruct_instance_output_first_v1.txt",
    "evol-instruct/depth-v1": "evol_depth_v1.txt",
    "evol-instruct/breadth-v1": "evol_breadth_v1.txt",
    "evol-instruct/equality-v1": "evol_equality_v1.txt",
    "respond-v1": "respond_v1.txt",
    "critic/ultrafeedback-v1": "critic_ultrafeedback_v1.txt",
    "captions/paraphrase-v1": "captions_paraphrase_v1.txt",
}

#: The SHA-256 of each template file as released (checked by the tests).
PINNED_SHA256: dict[str, str] = {
    "self-instruct/propose-v1": "5fd3209c75f79153e11839ee311f98a1764b68e87674f77993a1fc1cf2abb542",
    "self-instruct/instance-input-first-v1": "9265d3ef963b39426da59a8a665035ef3af5fc899be975e819c8f633dd61b32d",
    "self-instruct/instance-output-first-v1": "c0eda3adfa4f8e442e7604ee632745f27dbad29100c2d18dbdf72820d9a0dbba",
    "evol-instruct/depth-v1": "2493d227b3d1a7c49c9c8576096b1a939520c8e4429ccc3eb28cfb06504bd233",
    "evol-instruct/breadth-v1": "8fd83896527da8c1f997c6448adde2e3162f5775d4fc4ffae21af3472cb33f08",
    "evol-instruct/equality-v1": "55e7edac8b15878f39b91a03f60a4e8d26b670a39043508b69341165855b2e1a",
    "respond-v1": "a973e4695be51a79b735abc0ab952f547151de1ca7e5397869fceaf0a1c41226",
    "critic/ultrafeedback-v1": "bbdef0d62cd6c940d1e09e6336c8014887f58a2e6f5edb79cb543a5eec738bab",
    "captions/paraphrase-v1": "0df77774f8a3d65582d1bfff6b9beee1c821de602243a25b2637869b3ccaac32",
}

_SECTION = re.compile(r"^\[([a-z][a-z0-9_.-]*)\]\s*$")


@dataclass(frozen=True)
class Template:
    """A parsed template.

    Attributes:
        name: The versioned name (``evol-instruct/depth-v1``).
        sha256: The SHA-256 of the file's bytes.
        sections: Section name -> text (leading and trailing blank lines removed).
    """

    name: str
    sha256: str
    sections: dict[str, str]

    def section(self, key: str) -> str:
        """The raw text of a section.

        Raises:
            KeyError: No such section (with the ones there are).
        """
        try:
            return self.sections[key]
        except KeyError:
            raise KeyError(
                f"template {self.name} has no section [{key}]{did_you_mean(key, self.sections)}; "
                f"it has {', '.join(sorted(self.sections))}"
            ) from None

    def render(self, key: str, **values: Any) -> str:
        """A section with its ``$placeholders`` filled; every placeholder must be given, and only those.

        Raises:
            KeyError: A placeholder without a value.
            ValueError: A value given for a placeholder the section does not have (a typo would pass silently).
        """
        text = string.Template(self.section(key))
        wanted = set(text.get_identifiers())
        extra = set(values) - wanted
        if extra:
            raise ValueError(f"template {self.name} [{key}] has no placeholder(s) {sorted(extra)}")
        missing = wanted - set(values)
        if missing:
            raise KeyError(f"template {self.name} [{key}] needs a value for {sorted(missing)}")
        return text.substitute({k: str(v) for k, v in values.items()})

    def names(self, prefix: str) -> list[str]:
        """The section names under ``prefix.`` (``method`` -> ``["add_constraints", ...]``), in file order."""
        head = f"{prefix}."
        return [k[len(head) :] for k in self.sections if k.startswith(head)]

    def ref(self) -> dict[str, str]:
        """``{"name", "sha256"}`` for ``dataset.json``."""
        return {"name": self.name, "sha256": self.sha256}


def parse_template(name: str, data: bytes) -> Template:
    """Parse a template file's bytes (see the module docstring).

    Raises:
        ValueError: Text before the first section that is not a comment, a repeated section, or no section.
    """
    text = data.decode("utf-8")
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        match = _SECTION.match(line)
        if match:
            current = match.group(1)
            if current in sections:
                raise ValueError(f"template {name}, line {lineno}: section [{current}] appears twice")
            sections[current] = []
        elif current is None:
            if line.strip() and not line.startswith("# "):
                raise ValueError(f"template {name}, line {lineno}: text before the first [section]")
        else:
            sections[current].append(line)
    if not sections:
        raise ValueError(f"template {name}: no [section]")
    body = {k: "\n".join(v).strip("\n") for k, v in sections.items()}
    return Template(name, hashlib.sha256(data).hexdigest(), body)


def template_names() -> list[str]:
    """Every shipped template name, sorted."""
    return sorted(TEMPLATES)


@functools.cache
def get_template(name: str) -> Template:
    """The shipped template called ``name``.

    Raises:
        RegistryError: An unknown name (with a "did you mean").
    """
    file = TEMPLATES.get(name)
    if file is None:
        raise RegistryError(f"unknown prompt template '{name}'{did_you_mean(name, TEMPLATES)}")
    data = resources.files("simgen.generators.text").joinpath("templates", file).read_bytes()
    return parse_template(name, data)


# ----------------------------------------------------------------------------------------------------------
# Building requests (shared by the generators)


def draw_salt(rng: np.random.Generator, tag: str) -> str:
    """A cache salt drawn from ``rng``.

    The same shard seed gives the same salts, so a rerun hits the cache; another seed gives new samples of the same
    prompt.
    """
    return f"{tag}:{int(rng.integers(0, 2**63)):016x}"


def request(
    template: Template,
    output: type[BaseModel],
    /,
    *,
    salt: str,
    check: Callable[[Any], None] | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    **values: Any,
) -> StructuredRequest[Any]:
    """A structured request from a template's ``[system]`` and ``[user]`` sections, filled with ``values``.

    ``template`` and ``output`` are positional-only, so a placeholder may be called ``$output`` too.
    """
    system = template.section("system") if "system" in template.sections else None
    return StructuredRequest(
        prompt=template.render("user", **values),
        output=output,
        system=system,
        salt=f"{template.name}@{template.sha256[:12]}:{salt}",
        check=check,
        max_tokens=max_tokens,
        temperature=temperature,
    )


def answered_by(result: StructuredResult[Any], fallback: str) -> str:
    """The model that answered a structured request (the last response's), or ``fallback``."""
    return (result.responses[-1].model if result.responses else "") or fallback


def response_keys(result: StructuredResult[Any]) -> list[str]:
    """The cache keys of every response of a structured exchange (repair rounds included)."""
    return [r.key for r in result.responses]
