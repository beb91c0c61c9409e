"""Load a scenario: a scene spec plus ``factors``, ``design``, ``require`` and ``timeline``.

:func:`load_scenario` splits the scenario's sections off the file, validates them
(:mod:`simgen.scenarios.models`), validates the rest through :func:`simgen.spec.load_spec`, and then
validates **every level of every factor**: each level's patch is applied to the spec and the result goes
through ``load_spec`` again, so a patch that makes the spec invalid fails now, naming the factor, the
level and the field (``factors.lighting.levels.dark.light.color[0]: ...``). A range factor is checked at
its ends, its middle and its steps. Also refused at load time:

- two factors that write the same field (or one inside the other): a cell would silently lose one;
- a factor that writes a field of the whole run (``frames_per_scene``, ``outputs``, ``camera.width``, ...);
- a design the factors cannot give (a range without ``steps`` in a full design, too many cells, ...);
- a constraint selecting a category or tag that no level of the spec has (with a "did you mean"), or
  reading visibility fractions that some level does not compute;
- a timeline event whose target matches no object or fixture, or whose light patches (added up in order)
  make the spec invalid; motion-blur sub-frames that fall on the same physics step; a sequence of too many
  steps; a timeline on a stereo camera (its frames are left/right pairs, not instants).

A timeline's ``capture.frames`` sets the spec's ``frames_per_scene``: a sequence is one scene's frames.

Every error is one :class:`~simgen.errors.SpecError` naming the file and the field path.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simgen.errors import AssetError, SpecError, did_you_mean
from simgen.scenarios.constraints import group_tags, needs
from simgen.scenarios.design import Design, Domain, build_design, check_design, range_steps
from simgen.scenarios.models import SECTIONS, DesignSpec, Factor, Require, ScenarioSections, Timeline
from simgen.scenarios.patches import (
    Op,
    apply_ops,
    frozen_path,
    overlaps,
    parse_key,
    path_text,
    resolve_patch,
    resolve_steps,
)
from simgen.scenarios.patches import Path as SpecPath
from simgen.spec import LoadedSpec, load_spec, read_spec_file
from simgen.spec.errors import shorten, spec_error_from_validation
from simgen.spec.models import SceneSpec

#: Cell specs kept by :meth:`LoadedScenario.cell_spec` (a scene's spec is asked for once per scene).
CELL_CACHE = 256


@dataclass(frozen=True)
class FactorDef:
    """A validated factor, ready to patch the spec.

    Attributes:
        name: The factor's name.
        model: Its section as written.
        domain: What designs know of it.
        level_ops: A levels factor's resolved writes per level name (empty for a range).
        path: A range factor's resolved path (None for a levels factor).
    """

    name: str
    model: Factor
    domain: Domain
    level_ops: Mapping[str, tuple[Op, ...]]
    path: SpecPath | None = None

    def ops(self, value: Any) -> tuple[Op, ...]:
        """The writes of one level (a level name, or a range's value).

        Raises:
            SpecError: An unknown level name (with a "did you mean"), or a value that is not a number in range.
        """
        if self.path is None:
            if value not in self.level_ops:
                raise SpecError(
                    f"unknown level {value!r}{did_you_mean(str(value), self.level_ops)}; "
                    f"levels: {', '.join(self.level_ops)}",
                    path=f"factors.{self.name}",
                )
            return self.level_ops[value]
        lo, hi = self.domain.low, self.domain.high
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:  # type: ignore[operator]
            raise SpecError(f"expected a number in [{lo:g}, {hi:g}], got {value!r}", path=f"factors.{self.name}")
        return ((self.path, int(value) if self.domain.integer else float(value)),)

    def all_ops(self) -> Iterator[Op]:
        """Every write any level makes (a range's one path, with its low end)."""
        if self.path is not None:
            yield self.path, self.domain.low
        for ops in self.level_ops.values():
            yield from ops


class LoadedScenario:
    """A validated scenario.

    Attributes:
        base: The scene spec without factors applied.
        raw: The spec part of the file, as written (with a timeline, ``frames_per_scene`` is its ``capture.frames``).
        sections: The scenario sections, validated.
        factors: The factors, in the order written.
        source: The file, or None for a scenario given as data.
        level_specs: ``(factor, level) -> `` the spec with that level alone applied (levels factors only).
    """

    def __init__(
        self,
        base: LoadedSpec,
        raw: dict[str, Any],
        sections: ScenarioSections,
        factors: tuple[FactorDef, ...],
        source: Path | None,
        asset_roots: tuple[str | Path, ...],
        level_specs: Mapping[tuple[str, str], LoadedSpec],
    ) -> None:
        self.base = base
        self.raw = raw
        self.sections = sections
        self.factors = factors
        self.source = source
        self._asset_roots = asset_roots
        self.level_specs = dict(level_specs)
        self._cache: dict[str, LoadedSpec] = {}

    @property
    def label(self) -> str | None:
        """The file, as error messages name it."""
        return str(self.source) if self.source else None

    @property
    def design_spec(self) -> DesignSpec | None:
        """The ``design`` section (``full`` when factors are given without one), or None without factors."""
        if not self.factors:
            return None
        return self.sections.design or DesignSpec(kind="full")

    @property
    def require(self) -> Require | None:
        """The ``require`` section."""
        return self.sections.require

    @property
    def timeline(self) -> Timeline | None:
        """The ``timeline`` section (validated; executed by the engine's sequence capture)."""
        return self.sections.timeline

    def domains(self) -> list[Domain]:
        """What designs and coverage know of the factors, in order."""
        return [f.domain for f in self.factors]

    def design(self, seed: int) -> Design | None:
        """The design for a dataset seed (None without factors): the same seed always gives the same cells."""
        spec = self.design_spec
        if spec is None:
            return None
        return build_design(self.domains(), spec, seed, self.base.spec.frames_per_scene)

    def cell_raw(self, cell: Mapping[str, Any]) -> dict[str, Any]:
        """The raw spec of a cell: every factor's level applied to the spec, in factor order.

        Raises:
            SpecError: The cell misses a factor, names an unknown one, or gives an unknown level.
        """
        names = [f.name for f in self.factors]
        for key in cell:
            if key not in names:
                raise SpecError(f"unknown factor '{key}'{did_you_mean(str(key), names)}", path=f"factors.{key}")
        ops: list[Op] = []
        for f in self.factors:
            if f.name not in cell:
                raise SpecError(f"the cell gives no level of factor '{f.name}'", path=f"factors.{f.name}")
            ops.extend(f.ops(cell[f.name]))
        return apply_ops(self.raw, ops)

    def cell_spec(self, cell: Mapping[str, Any]) -> LoadedSpec:
        """The validated spec of a cell (cached): what the engine builds the cell's scenes from.

        Levels were validated one by one at load time; a combination can still break a rule that spans
        fields (a region too small for a count set by another factor), which is reported here.

        Raises:
            SpecError: The combination is invalid; the message names the cell and the field.
        """
        key = json.dumps(dict(cell), sort_keys=True)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        raw = self.cell_raw(cell)
        try:
            loaded = load_spec(raw, base_dir=self.base.base_dir, asset_roots=self._asset_roots, check_assets=False)
        except SpecError as exc:
            levels = ", ".join(f"{k}={v}" for k, v in cell.items())
            raise SpecError(
                source=self.label,
                problems=[(p, f"in cell ({levels}): {m}") for p, m in exc.problems],
            ) from None
        if len(self._cache) >= CELL_CACHE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = loaded
        return loaded

    def categories(self) -> list[str]:
        """Category names over the spec and every level, in order of first appearance.

        COCO category ids must be the same for every cell, so the dataset's categories are this union.
        """
        from simgen.engine.generation import categories

        names: list[str] = []
        for spec in (self.base, *self.level_specs.values()):
            names += [c for c in categories(spec) if c not in names]
        return names

    def tags(self) -> dict[str, tuple[str, ...]]:
        """Group/fixture name -> tags, over the spec and every level (for ``select.tag``)."""
        found: dict[str, tuple[str, ...]] = {}
        for spec in (self.base, *self.level_specs.values()):
            for name, tags in group_tags(spec.spec).items():
                found[name] = tuple(dict.fromkeys((*found.get(name, ()), *tags)))
        return found

    def light_specs(self, raw: Mapping[str, Any]) -> list[LoadedSpec | None]:
        """Per timeline event, the spec whose ``light`` a light event switches to (None for other events).

        Light patches add up in event order, applied to ``raw`` (a cell's raw spec, :meth:`cell_raw`).
        """
        timeline = self.timeline
        out: list[LoadedSpec | None] = []
        lit: dict[str, Any] = dict(raw)
        for event in timeline.events if timeline is not None else ():
            if event.light is None:
                out.append(None)
                continue
            lit = apply_ops(lit, resolve_patch(lit, {"light": event.light}))
            out.append(load_spec(lit, base_dir=self.base.base_dir, asset_roots=self._asset_roots, check_assets=False))
        return out

    def to_json(self) -> dict[str, Any]:
        """The scenario sections as written (for ``dataset.json``)."""
        return self.sections.model_dump(mode="json", exclude_unset=True)

    def digest(self) -> str:
        """SHA-256 of the scenario sections' canonical JSON."""
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def split_scenario(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(spec part, scenario sections)`` of a scenario mapping."""
    spec = {k: v for k, v in data.items() if k not in SECTIONS}
    sections = {k: v for k, v in data.items() if k in SECTIONS}
    return spec, sections


def load_scenario(
    source: str | Path | Mapping[str, Any],
    *,
    base_dir: str | Path | None = None,
    asset_roots: Sequence[str | Path] = (),
    check_assets: bool = True,
) -> LoadedScenario:
    """Load and fully validate a scenario (see the module docstring).

    Args:
        source: A YAML/JSON file, or the scenario as a mapping.
        base_dir: Folder for relative asset paths (defaults to the file's folder).
        asset_roots: Extra folders assets may come from, as for :func:`simgen.spec.load_spec`.
        check_assets: Resolve every asset of the spec and of every level now.

    Returns:
        The validated scenario.

    Raises:
        SpecError: Naming the file and the field path, with a "did you mean" for unknown names.
        AssetError: An asset of the spec or of a level cannot be resolved inside the allowed roots.
    """
    path: Path | None = None
    if isinstance(source, Mapping):
        data = dict(source)
    else:
        data = read_spec_file(source)
        path = Path(source)
        if base_dir is None:
            base_dir = path.parent
    label = str(path) if path else None
    _check_top_level(data, label)
    raw, section_data = split_scenario(data)
    try:
        sections = ScenarioSections.model_validate(section_data)
    except ValidationError as exc:
        err = spec_error_from_validation(exc, ScenarioSections, label)
        raise SpecError(
            source=label, problems=[_section_problem(p, m, section_data) for p, m in err.problems]
        ) from None
    if sections.timeline is not None:
        raw = _sequence_length(raw, sections.timeline, label)
    checker = _Checker(raw, base_dir, asset_roots, check_assets, label)
    base = checker.load(raw, "")
    factors: list[FactorDef] = []
    level_specs: dict[tuple[str, str], LoadedSpec] = {}
    for name, factor in (sections.factors or {}).items():
        fdef, specs = checker.factor(name, factor)
        factors.append(fdef)
        level_specs.update({(name, level): spec for level, spec in specs.items()})
    _check_overlaps(factors, label)
    scenario = LoadedScenario(base, raw, sections, tuple(factors), path, checker.roots, level_specs)
    if scenario.design_spec is not None:
        try:
            check_design(scenario.domains(), scenario.design_spec)
        except SpecError as exc:
            raise SpecError(source=label, problems=exc.problems) from None
    if sections.require is not None:
        _check_require(scenario, isinstance(section_data.get("require"), list), label)
    if sections.timeline is not None:
        _check_timeline(scenario, checker)
    return scenario


def _section_problem(path: str, message: str, data: Mapping[str, Any]) -> tuple[str, str]:
    """A problem's path as the user wrote the sections: ``require[0]`` for a list, a bad name at the name."""
    if isinstance(data.get("require"), list):  # the user wrote require: [...]
        path = path.replace("require.constraints", "require", 1)
    if path.endswith(".[key]"):  # pydantic's location of a mapping key
        path = path.removesuffix(".[key]")
        message = f"invalid name: {message.replace('String should match pattern', 'expected the pattern')}"
    return path, message


def _check_top_level(data: Mapping[str, Any], label: str | None) -> None:
    known = [*SceneSpec.model_fields, *SECTIONS]
    for key in data:
        if key not in known:
            raise SpecError(
                f"unknown field '{shorten(str(key))}'{did_you_mean(str(key), known)}; a scenario holds the "
                f"spec's fields and the sections {', '.join(SECTIONS)}",
                path=shorten(str(key)),
                source=label,
            )


class _Checker:
    """Validates patched specs, prefixing every error with where the patch came from."""

    def __init__(
        self,
        raw: dict[str, Any],
        base_dir: str | Path | None,
        asset_roots: Sequence[str | Path],
        check_assets: bool,
        label: str | None,
    ) -> None:
        self.raw, self.base_dir, self.check_assets, self.label = raw, base_dir, check_assets, label
        self.roots = tuple(asset_roots)  # load_spec resolves them against base_dir, the same each time

    def load(self, raw: Mapping[str, Any], where: str, *, assets: bool | None = None) -> LoadedSpec:
        """``load_spec`` of a raw spec; errors get ``where`` before their field path."""
        try:
            return load_spec(
                raw,
                base_dir=self.base_dir,
                asset_roots=self.roots,
                check_assets=self.check_assets if assets is None else assets,
            )
        except SpecError as exc:
            raise self.error(exc, where) from None
        except AssetError as exc:
            prefix = f"{self.label}: " if self.label else ""
            raise AssetError(f"{prefix}{where + ': ' if where else ''}{exc}") from None

    def error(self, exc: SpecError, where: str) -> SpecError:
        """``exc`` with ``where`` prefixed to each field path and the file named."""
        problems = [(_join(where, p), m) for p, m in exc.problems]
        return SpecError(source=self.label, problems=problems)

    def factor(self, name: str, factor: Factor) -> tuple[FactorDef, dict[str, LoadedSpec]]:
        """Resolve and validate every level of a factor."""
        where = f"factors.{name}"
        if factor.levels is not None:
            level_ops: dict[str, tuple[Op, ...]] = {}
            specs = {}
            for level, patch in factor.levels.items():
                at = f"{where}.levels.{level}"
                try:
                    ops = tuple(resolve_patch(self.raw, patch))
                except SpecError as exc:
                    raise self.error(exc, at) from None
                self._not_frozen(ops, at)
                specs[level] = self.load(apply_ops(self.raw, ops), at)
                level_ops[level] = ops
            domain = Domain(name, tuple(factor.levels))
            return FactorDef(name, factor, domain, level_ops), specs
        assert factor.path is not None and factor.range is not None  # the model checks a range factor has both
        try:
            spec_path = resolve_steps(self.raw, parse_key(factor.path))
        except SpecError as exc:
            raise SpecError(exc.problems[0][1], path=f"{where}.path", source=self.label) from None
        except ValueError as exc:
            raise SpecError(str(exc), path=f"{where}.path", source=self.label) from None
        self._not_frozen(((spec_path, None),), f"{where}.path")
        low, high = factor.range
        steps = range_steps(low, high, factor.steps, factor.integer) if factor.steps else ()
        if len(set(steps)) < len(steps):  # values are rounded to 6 decimals, as COCO stores them
            raise SpecError(
                f"{factor.steps} steps in [{low:g}, {high:g}] repeat values once rounded: {list(steps)}; "
                "use fewer steps or a wider range",
                path=f"{where}.steps",
                source=self.label,
            )
        to_check: list[tuple[str, Any]] = [(f"{where}.range[0]", low), (f"{where}.range[1]", high)]
        if not factor.integer:  # an integer-only field accepts both ends of a float range but not its middle
            to_check.append((f"{where}.range", (low + high) / 2))
        to_check += [(f"{where}.steps", v) for v in steps]
        written = path_text(spec_path)
        for at, value in to_check:
            value = int(value) if factor.integer else float(value)
            try:
                raw = apply_ops(self.raw, [(spec_path, value)])
                load_spec(raw, base_dir=self.base_dir, asset_roots=self.roots, check_assets=False)
            except SpecError as exc:
                p, m = exc.problems[0]
                if p == written and m.startswith("unknown field"):  # the path is wrong, not the value
                    raise SpecError(f"{written}: {m}", path=f"{where}.path", source=self.label) from None
                raise SpecError(
                    f"writing {value:g} at {written} makes the spec invalid: {p + ': ' if p else ''}{m}",
                    path=at,
                    source=self.label,
                ) from None
        domain = Domain(name, steps, float(low), float(high), factor.integer)
        return FactorDef(name, factor, domain, {}, spec_path), {}

    def _not_frozen(self, ops: Sequence[Op], where: str) -> None:
        hit = frozen_path(ops)
        if hit is not None:
            raise SpecError(
                f"a factor cannot change {path_text(hit)}: it applies to the whole run, not to one scene",
                path=where,
                source=self.label,
            )


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def _check_overlaps(factors: Sequence[FactorDef], label: str | None) -> None:
    for i, a in enumerate(factors):
        ops_a = list(a.all_ops())
        for b in factors[i + 1 :]:
            hit = overlaps(ops_a, list(b.all_ops()))
            if hit is not None:
                pa, pb = hit
                raise SpecError(
                    f"factor '{b.name}' writes {path_text(pb)} and factor '{a.name}' writes {path_text(pa)}: "
                    "factors must write separate fields, or a cell would keep one level and silently drop the "
                    "other; merge them into one factor",
                    path=f"factors.{b.name}",
                    source=label,
                )


def _check_require(scenario: LoadedScenario, list_form: bool, label: str | None) -> None:
    require = scenario.require
    assert require is not None
    categories = scenario.categories()
    tags = sorted({t for ts in scenario.tags().values() for t in ts})
    for i, c in enumerate(require.constraints):
        at = f"require[{i}]" if list_form else f"require.constraints[{i}]"
        for j, cat in enumerate(c.select.category or ()):
            if cat not in categories:
                raise SpecError(
                    f"no object of the spec (at any level) has category '{cat}'{did_you_mean(cat, categories)}; "
                    f"categories: {', '.join(categories) or '(none)'}",
                    path=f"{at}.select.category[{j}]",
                    source=label,
                )
        for j, tag in enumerate(c.select.tag or ()):
            if tag not in tags:
                raise SpecError(
                    f"no object group or fixture (at any level) has tag '{tag}'{did_you_mean(tag, tags)}; "
                    f"tags: {', '.join(tags) or '(none)'}",
                    path=f"{at}.select.tag[{j}]",
                    source=label,
                )
        if needs([c])["visibility"]:
            field = "of" if c.of == "visibility" else "select.visibility"
            _check_visibility(scenario, f"{at}.{field}", label)


def _check_visibility(scenario: LoadedScenario, where: str, label: str | None) -> None:
    if not scenario.base.spec.labels.visibility:
        raise SpecError(
            "reads visibility fractions, which the spec does not compute; set labels.visibility: true",
            path=where,
            source=label,
        )
    for (factor, level), spec in scenario.level_specs.items():
        if not spec.spec.labels.visibility:
            raise SpecError(
                f"reads visibility fractions, which level '{level}' of factor '{factor}' turns off",
                path=where,
                source=label,
            )


def _sequence_length(raw: dict[str, Any], timeline: Timeline, label: str | None) -> dict[str, Any]:
    """The spec with ``frames_per_scene`` set to the timeline's ``capture.frames`` (when given)."""
    frames = timeline.capture.frames
    if frames is None:
        return raw
    written = raw.get("frames_per_scene")
    if written is not None and written != frames:
        warnings.warn(
            f"{label + ': ' if label else ''}timeline.capture.frames ({frames}) replaces frames_per_scene "
            f"({written}): a sequence is one scene's frames",
            stacklevel=3,
        )
    return {**raw, "frames_per_scene": frames}


def _check_timeline(scenario: LoadedScenario, checker: _Checker) -> None:
    from simgen.scenarios.timeline import schedule

    timeline = scenario.timeline
    assert timeline is not None
    for spec in (scenario.base, *scenario.level_specs.values()):
        if spec.spec.camera.stereo_baseline is not None:
            raise SpecError(
                "a timeline captures instants of one camera; camera.stereo_baseline makes left/right pairs instead",
                path="timeline",
                source=checker.label,
            )
        try:
            schedule(timeline, spec.spec.physics.timestep, spec.spec.frames_per_scene)
        except SpecError as exc:
            raise SpecError(source=checker.label, problems=exc.problems) from None
    tags = scenario.tags()
    known = sorted({t for ts in tags.values() for t in ts})
    fixtures = [f.name for f in scenario.base.spec.fixtures]
    lit = checker.raw  # light patches add up, in event order
    for i, event in enumerate(timeline.events):
        at = f"timeline.events[{i}]"
        if event.light is not None:
            try:
                ops = resolve_patch(lit, {"light": event.light})
            except SpecError as exc:
                raise checker.error(exc, at) from None
            lit = apply_ops(lit, ops)
            checker.load(lit, at, assets=False)
            continue
        target = event.target
        if target is None:
            continue
        if event.action == "robot":
            if target not in fixtures:
                raise SpecError(
                    f"a robot event targets a fixture; '{target}' is none{did_you_mean(target, fixtures)}; "
                    f"fixtures: {', '.join(fixtures) or '(none)'}",
                    path=f"{at}.target",
                    source=checker.label,
                )
            continue
        group, _, index = target.partition("/")
        ok = group in tags if index else target in known
        if index and ok and not index.isdigit():
            ok = False
        if not ok:
            raise SpecError(
                f"'{target}' is no object uid (group/n), group or tag{did_you_mean(target, known)}; "
                f"groups and tags: {', '.join(known) or '(none)'}",
                path=f"{at}.target",
                source=checker.label,
            )
