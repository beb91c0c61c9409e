"""Patches: plain-data edits of a raw scene spec, as factor levels write them.

A patch is a mapping deep-merged onto the spec as the user wrote it (before defaults are filled in):

- A mapping merges into the mapping it lands on, key by key, so ``{light: {intensity: 0.2}}`` changes the
  light's intensity and keeps the rest of the light. A missing mapping is created.
- Anything else replaces what it lands on: a number, a string, ``null``, and a **list, which is replaced
  wholesale**. So is a mapping with a distribution ``kind`` (``{kind: uniform, low: 1, high: 2}``):
  a distribution is one value, and its parameters never mix with those of the one it replaces.
- A key may be a dotted path, and a path step may address a list element by index or by a field's
  value: ``camera.look_at.distance``, ``light.color[0]``, ``objects[name=clutter].count``,
  ``randomizers[type=appearance/color-v1].saturation``. An element addressed by value must be the only
  one with that value. Elements are addressed in the *base* spec; nothing here evaluates anything.

:func:`resolve_patch` turns a patch into ``(path, value)`` leaves with every step resolved to a mapping key
or a list index, checking each step against the base spec, and :func:`apply_ops` writes leaves onto a copy
of it. Resolved leaves make overlaps between factors checkable (:func:`overlaps`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simgen.errors import SpecError, did_you_mean
from simgen.sampling import KINDS
from simgen.spec.errors import format_path, shorten

#: A resolved location in a raw spec: mapping keys and list indices.
Path = tuple[str | int, ...]
#: One write: a value at a resolved path.
Op = tuple[Path, Any]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_STEP = re.compile(rf"({_IDENT})((?:\[[^\[\]]*\])*)")
_INDEX = re.compile(r"\[([^\[\]]*)\]")
_SELECTOR = re.compile(rf"^({_IDENT})=([^\[\]=]{{1,200}})$")

#: Fields a factor may not change: they shape the whole run (its plan, outputs and sandbox), not a scene.
FROZEN_PATHS: tuple[Path, ...] = (
    ("version",),
    ("backend",),
    ("frames_per_scene",),
    ("outputs",),
    ("asset_roots",),
    ("camera", "width"),
    ("camera", "height"),
)
_MISSING: Any = object()


@dataclass(frozen=True)
class Selector:
    """A list step that picks the one element whose ``field`` equals ``value`` (compared as text)."""

    field: str
    value: str

    def __str__(self) -> str:
        return f"[{self.field}={self.value}]"


Step = str | int | Selector


def parse_key(key: str) -> list[Step]:
    """Parse a patch key into steps: ``objects[name=clutter].count`` -> ``['objects', Selector, 'count']``.

    Raises:
        ValueError: The key is not a dotted path of names with optional ``[index]`` or ``[field=value]``.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("a patch key must be a non-empty string")
    steps: list[Step] = []
    for part in key.split("."):
        m = _STEP.fullmatch(part)
        if m is None:
            raise ValueError(
                f"'{shorten(key)}' is not a spec path: expected names joined by '.', each with optional "
                "[index] or [field=value], e.g. objects[name=clutter].count"
            )
        steps.append(m.group(1))
        for inner in _INDEX.findall(m.group(2)):
            if inner.isdigit():
                steps.append(int(inner))
            elif (sel := _SELECTOR.match(inner)) is not None:
                steps.append(Selector(sel.group(1), sel.group(2)))
            else:
                raise ValueError(f"'[{shorten(inner)}]' in '{shorten(key)}': expected [index] or [field=value]")
    return steps


def is_distribution(value: Any) -> bool:
    """Whether ``value`` is a distribution mapping (replaced whole by a patch, never merged into)."""
    return isinstance(value, Mapping) and value.get("kind") in KINDS


def _shown(steps: Sequence[Step]) -> str:
    out = ""
    for s in steps:
        out += f"[{s}]" if isinstance(s, int) else str(s) if isinstance(s, Selector) else f".{s}" if out else s
    return out


def resolve_patch(base: Mapping[str, Any], patch: Mapping[str, Any]) -> list[Op]:
    """Turn a patch into resolved writes, checking every step against the base spec.

    Args:
        base: The raw spec the patch applies to.
        patch: The patch (see the module docstring).

    Returns:
        ``(path, value)`` leaves in the patch's order, each path made of mapping keys and list indices.

    Raises:
        SpecError: With the patch key's path (as the user wrote it): a malformed key, an index past the end
            of a list, a ``[field=value]`` matching no element (with a "did you mean") or several, a name
            step on a list, or a step into a number or string.
    """
    ops: list[Op] = []
    stack: list[tuple[list[Step], Any]] = [([], patch)]
    while stack:
        prefix, value = stack.pop()
        if isinstance(value, Mapping) and value and not is_distribution(value):
            items = []
            for key, sub in value.items():
                try:
                    steps = parse_key(key)
                except ValueError as exc:
                    raise SpecError(str(exc), path=_shown(prefix) or "<patch>") from None
                items.append(([*prefix, *steps], sub))
            stack.extend(reversed(items))  # depth first, in the patch's order
        elif prefix:  # an empty mapping at the top is an empty patch; deeper, it merges nothing
            if isinstance(value, Mapping) and not value:
                continue
            ops.append((resolve_steps(base, prefix), value))
    return ops


def resolve_steps(base: Mapping[str, Any], steps: Sequence[Step]) -> Path:
    """Resolve parsed steps (:func:`parse_key`) against ``base``: selectors become indices.

    Raises:
        SpecError: As :func:`resolve_patch`.
    """
    path: list[str | int] = []
    node: Any = base
    for i, step in enumerate(steps):
        here = _shown(steps[:i]) or "the spec"
        if isinstance(step, str):
            if isinstance(node, list):
                raise SpecError(
                    f"{here} is a list: address an element as {here}[0] or {here}[name=...]", path=_shown(steps)
                )
            if node is not _MISSING and not isinstance(node, Mapping):
                raise SpecError(
                    f"{here} is {shorten(repr(node))}, not a mapping, so it has no field '{step}'; "
                    f"replace it whole (e.g. {here}: {{kind: uniform, low: ..., high: ...}})",
                    path=_shown(steps),
                )
            path.append(step)
            node = node.get(step, _MISSING) if isinstance(node, Mapping) else _MISSING
            continue
        if not isinstance(node, list):
            what = "absent from the base spec" if node is _MISSING else f"not a list ({type(node).__name__})"
            raise SpecError(f"{here} is {what}, so {_shown(steps[: i + 1])} addresses nothing", path=_shown(steps))
        index = step if isinstance(step, int) else _select(node, step, here, steps)
        if index >= len(node):
            raise SpecError(f"{here} has {len(node)} elements; index {index} is past its end", path=_shown(steps))
        path.append(index)
        node = node[index]
    return tuple(path)


def _select(items: list[Any], sel: Selector, here: str, steps: Sequence[Step]) -> int:
    found = [j for j, el in enumerate(items) if isinstance(el, Mapping) and str(el.get(sel.field, "")) == sel.value]
    if len(found) == 1:
        return found[0]
    if found:
        raise SpecError(
            f"{len(found)} elements of {here} have {sel.field}={sel.value}; address one by index", path=_shown(steps)
        )
    values = [str(el[sel.field]) for el in items if isinstance(el, Mapping) and sel.field in el]
    known = (
        f"; {here} has {sel.field}: {', '.join(values[:20])}" if values else f"; no element of {here} has a {sel.field}"
    )
    raise SpecError(
        f"no element of {here} has {sel.field}={sel.value}{did_you_mean(sel.value, values)}{known}",
        path=_shown(steps),
    )


def apply_ops(base: Mapping[str, Any], ops: Iterable[Op]) -> dict[str, Any]:
    """A copy of ``base`` with each resolved write applied in order (``base`` is not changed)."""
    out = copy.deepcopy(dict(base))
    for path, value in ops:
        node: Any = out
        for step in path[:-1]:
            if isinstance(step, int):
                node = node[step]
            else:
                nxt = node.get(step)
                if not isinstance(nxt, dict | list):
                    nxt = node[step] = {}
                node = nxt
        node[path[-1]] = copy.deepcopy(value)
    return out


def apply_patch(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` deep-merged onto it (see the module docstring); ``base`` is not changed."""
    return apply_ops(base, resolve_patch(base, patch))


def frozen_path(ops: Iterable[Op]) -> Path | None:
    """The first written path that touches a field in :data:`FROZEN_PATHS` (or contains one), else None."""
    for path, _ in ops:
        for frozen in FROZEN_PATHS:
            n = min(len(path), len(frozen))
            if path[:n] == frozen[:n]:
                return path
    return None


def overlaps(a: Iterable[Op], b: Iterable[Op]) -> tuple[Path, Path] | None:
    """The first pair of paths, one from each side, where one is the other or lies inside it, else None.

    Two factors whose patches overlap would make a cell depend on the order the factors are applied in, and
    one factor's level would silently drop the other's.
    """
    paths_a = {p for p, _ in a}
    prefixes_a = {p[:n]: p for p in paths_a for n in range(1, len(p) + 1)}
    for pb, _ in b:
        if pb in prefixes_a:  # pb is a path of a, or contains one
            return prefixes_a[pb], pb
        for n in range(1, len(pb)):
            if pb[:n] in paths_a:  # a path of a contains pb
                return pb[:n], pb
    return None


def path_text(path: Path) -> str:
    """A resolved path as text: ``objects[0].count``."""
    return format_path(path)
