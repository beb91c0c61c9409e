"""Names mapped to lazily imported classes, with entry-point discovery: randomizers, generators, writers, backends.

Randomizer and generator names carry a version (``appearance/color-v1``) so a changed behaviour gets a new
name and old datasets stay reproducible. Writers and backends are named by what a spec says (``outputs: {yolo:
true}``, ``backend: pybullet``): their registries take plain names (``versioned=False``). Third parties
register through an entry-point group (``simgen.randomizers``, ``simgen.generators``, ``simgen.writers``,
``simgen.backends``) as ``name = "pkg.module:Class"``; a ``"pkg.module:Class"`` string always works.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from simgen.errors import RegistryError, did_you_mean

T = TypeVar("T")
_NAME = re.compile(r"^[a-z0-9_]+(/[a-z0-9_\-]+)*-v\d+$")
_PLAIN_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def import_string(target: str) -> Any:
    """Import ``"pkg.module:Attr"`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise RegistryError(f"expected 'package.module:Class', got '{target}'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"cannot import '{module_name}' for '{target}': {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise RegistryError(f"'{module_name}' has no attribute '{attr}' (from '{target}')") from exc


class Registry(Generic[T]):
    """Names to ``"module:Class"`` strings (or classes), resolved on first use.

    Args:
        kind: What is registered, for messages ("randomizer").
        group: The entry-point group third parties use, or None.
        versioned: Names must carry a version (``family/name-v1``); else plain lowercase names (``yolo``).
    """

    def __init__(self, kind: str, group: str | None = None, *, versioned: bool = True) -> None:
        self.kind = kind
        self.group = group
        self.versioned = versioned
        self._targets: dict[str, str | type[T]] = {}
        self._loaded: dict[str, type[T]] = {}
        self._discovered = False

    def register(self, name: str, target: str | type[T]) -> None:
        """Register ``name`` (``pose/uniform-v1``; a plain word if not versioned) for a class or a string."""
        if self.versioned and not _NAME.match(name):
            raise ValueError(f"{self.kind} name '{name}' must look like 'family/name-v1' (lowercase, versioned)")
        if not self.versioned and not _PLAIN_NAME.match(name):
            raise ValueError(f"{self.kind} name '{name}' must be a lowercase word like 'yolo'")
        existing = self._targets.get(name)
        if existing is not None and existing != target:
            raise ValueError(f"{self.kind} '{name}' is already registered to {existing!r}")
        self._targets[name] = target

    def _discover(self) -> None:
        if self._discovered or self.group is None:
            return
        self._discovered = True
        for ep in entry_points(group=self.group):
            self._targets.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._discover()
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def target(self, name: str) -> str | type[T]:
        """What ``name`` is registered to (a ``"module:Class"`` string or a class), without importing anything.

        A ``"module:Class"`` string stands for itself.

        Raises:
            RegistryError: For an unknown name, with a "did you mean" and the known names.
        """
        self._discover()
        target = self._targets.get(name)
        if target is not None:
            return target
        if isinstance(name, str) and ":" in name:
            return name
        hint = did_you_mean(name, self._targets)
        if self.versioned:  # many names: the command lists them
            raise RegistryError(f"unknown {self.kind} '{name}'{hint}; `simgen list {self.kind}s` shows them all")
        raise RegistryError(f"unknown {self.kind} '{name}'{hint}; known {self.kind}s: {', '.join(self.names())}")

    def get(self, name: str) -> type[T]:
        """Resolve a registered name, or a ``"module:Class"`` string, to its class.

        Raises:
            RegistryError: For an unknown name, with a "did you mean".
        """
        if name in self._loaded:
            return self._loaded[name]
        target = self.target(name)
        cls = import_string(target) if isinstance(target, str) else target
        self._loaded[name] = cls
        return cls
