"""A scenario proposal: what an ideator (an LLM or the offline one) proposes, and how it becomes a scenario.

A proposal is data: a name, a rationale, a patch of the base spec (the patch language of factor levels,
:mod:`simgen.scenarios.patches`), optional factors and design, and the ``require`` constraints that make its
edge case checkable on rendered frames. :class:`ScenarioProposal` is a pydantic model, so the LLM's tool
``input_schema`` is its JSON Schema, and everything the model returns is validated by it before anything else.

:func:`build_scenario` turns a proposal into a scenario mapping, and :func:`check_proposal` validates it the way
a scenario file is validated (:func:`~simgen.scenarios.load_scenario`, with the base spec's folder and the
caller's asset roots, so an asset reference outside the allowed roots is refused) plus the bounds of ideation:
no write to the fields that shape a run (resolution, outputs, asset roots...), a bounded number of objects,
physics steps, factors, levels and cells. Nothing in a proposal is ever executed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from simgen.errors import SpecError
from simgen.scenarios.loader import LoadedScenario, load_scenario, split_scenario
from simgen.scenarios.models import Constraint, DesignSpec, Factor, FactorName, Patch
from simgen.scenarios.patches import apply_ops, frozen_path, path_text, resolve_patch

__all__ = [
    "MAX_CELLS",
    "MAX_OBJECTS",
    "ScenarioProposal",
    "build_scenario",
    "check_proposal",
    "proposal_distance",
    "proposal_features",
    "scenario_yaml",
]

#: The most objects (sum of every group's largest count) a proposed scene may hold.
MAX_OBJECTS = 64
#: The most object groups a proposed scene may hold.
MAX_GROUPS = 16
#: The most physics steps a proposed scene may settle for.
MAX_PHYSICS_STEPS = 5000
#: The most cells a proposal's design may have, and the most levels of one of its factors.
MAX_CELLS = 64
MAX_FACTOR_LEVELS = 8
#: The most attempts per frame a proposal may ask for.
MAX_PROPOSAL_ATTEMPTS = 100

ProposalName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,47}$", description="file-name safe, lower case")]


class ScenarioProposal(BaseModel):
    """One edge-case scenario proposed for a base scene spec.

    The patch edits the base spec (dotted paths allowed: ``light.intensity``, ``objects[name=clutter].count``,
    ``camera.look_at.elevation_deg``); a value may be a number or a distribution such as
    ``{kind: uniform, low: 2, high: 8}``. ``require`` lists the constraints every rendered frame must meet, in
    the closed vocabulary of simgen scenarios: a ``stat`` (count, min, max, mean of an object attribute, or
    the image's brightness or contrast) compared with ``ge``/``gt``/``le``/``lt``/``eq``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ProposalName
    rationale: str = Field(min_length=1, max_length=1000, description="why a perception model fails on this")
    patch: Patch = Field(default_factory=dict, description="edits of the base spec (plain data)")
    factors: Annotated[dict[FactorName, Factor], Field(max_length=4)] | None = Field(
        default=None, description="optional factors (levels are patches) swept by the design"
    )
    design: DesignSpec | None = Field(default=None, description="how cells are chosen from the factors")
    require: Annotated[list[Constraint], Field(min_length=1, max_length=8)] = Field(
        description="constraints that make the edge case hold on every kept frame"
    )
    max_attempts: Annotated[int, Field(ge=1, le=MAX_PROPOSAL_ATTEMPTS)] = Field(
        default=30, description="renders of one frame before giving up"
    )


def _max_total_objects(raw: Mapping[str, Any], loaded: LoadedScenario) -> int | None:
    from simgen.spec.models import max_count

    total = 0
    for spec in (loaded.base, *loaded.level_specs.values()):
        n = 0
        for group in spec.spec.objects:
            m = max_count(group.count)
            if m is None:
                return None
            n += m
        total = max(total, n)
    return total


def build_scenario(base: Mapping[str, Any], proposal: ScenarioProposal) -> dict[str, Any]:
    """The scenario mapping of a proposal: the base spec with the patch applied, plus its sections.

    The base's own ``factors`` and ``design`` are kept unless the proposal gives factors; its ``require`` is
    replaced by the proposal's; its ``timeline`` is kept.

    Raises:
        SpecError: The patch addresses nothing in the base spec, or writes a field that shapes the run.
    """
    raw, sections = split_scenario(base)
    try:
        ops = resolve_patch(raw, proposal.patch)
    except SpecError as exc:
        raise SpecError(problems=[(f"patch.{p}" if p else "patch", m) for p, m in exc.problems]) from None
    frozen = frozen_path(ops)
    if frozen is not None:
        raise SpecError(
            f"a proposal may not change {path_text(frozen)}: resolution, outputs, asset roots, backend and "
            "frames_per_scene belong to the run, not to a scenario",
            path=f"patch.{path_text(frozen)}",
        )
    data = apply_ops(raw, ops)
    data["name"] = proposal.name
    data["description"] = " ".join(proposal.rationale.split())
    if proposal.factors:
        data["factors"] = {k: f.model_dump(mode="json", exclude_unset=True) for k, f in proposal.factors.items()}
        if proposal.design is not None:
            data["design"] = proposal.design.model_dump(mode="json", exclude_unset=True)
    else:
        for key in ("factors", "design"):
            if key in sections:
                data[key] = sections[key]
        if proposal.design is not None:
            raise SpecError("a design needs 'factors' in the proposal to choose cells from", path="design")
    if "timeline" in sections:
        data["timeline"] = sections["timeline"]
    data["require"] = {
        "max_attempts": proposal.max_attempts,
        "constraints": [c.model_dump(mode="json", exclude_unset=True) for c in proposal.require],
    }
    return data


def check_proposal(
    base: Mapping[str, Any],
    proposal: ScenarioProposal,
    *,
    base_dir: str | Path | None,
    asset_roots: Sequence[str | Path] = (),
) -> tuple[dict[str, Any], LoadedScenario]:
    """Build and fully validate a proposal's scenario, as a scenario file is loaded, plus ideation's bounds.

    Args:
        base: The base spec (or scenario) mapping, as written.
        proposal: The proposal.
        base_dir: The base spec's folder: relative asset paths resolve there.
        asset_roots: The caller's extra asset roots (the only other place assets may come from).

    Returns:
        ``(scenario mapping, loaded scenario)``.

    Raises:
        SpecError: With the field path (``patch.light.intensity``, ``require[0].select.category[0]``...)
            and a "did you mean" for unknown names.
        AssetError: An asset reference resolves outside the allowed roots, or does not exist.
    """
    data = build_scenario(base, proposal)
    loaded = load_scenario(data, base_dir=base_dir, asset_roots=asset_roots, check_assets=True)
    _check_bounds(data, loaded)
    return data, loaded


def _check_bounds(data: Mapping[str, Any], loaded: LoadedScenario) -> None:
    spec = loaded.base.spec
    if len(spec.objects) > MAX_GROUPS:
        raise SpecError(f"at most {MAX_GROUPS} object groups, got {len(spec.objects)}", path="patch.objects")
    total = _max_total_objects(data, loaded)
    if total is None:
        raise SpecError("every object count must be bounded (an integer or intrange)", path="patch.objects")
    if total > MAX_OBJECTS:
        raise SpecError(f"at most {MAX_OBJECTS} objects per scene, the proposal allows {total}", path="patch.objects")
    for s in (loaded.base, *loaded.level_specs.values()):
        if s.spec.physics.max_steps > MAX_PHYSICS_STEPS:
            raise SpecError(
                f"at most {MAX_PHYSICS_STEPS} physics steps, got {s.spec.physics.max_steps}",
                path="patch.physics.max_steps",
            )
    for f in loaded.factors:
        if len(f.domain.levels) > MAX_FACTOR_LEVELS:
            raise SpecError(f"at most {MAX_FACTOR_LEVELS} levels per factor", path=f"factors.{f.name}")
    if loaded.factors:
        cells = len(loaded.design(0) or ())
        if cells > MAX_CELLS:
            raise SpecError(f"at most {MAX_CELLS} design cells, the proposal has {cells}", path="design")


# --- distance between proposals ---------------------------------------------------------------------------


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    """``path -> number or text`` leaves of nested data (a distribution becomes its numeric parameters)."""
    out: dict[str, Any] = {}
    stack: list[tuple[str, Any]] = [(prefix, value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, Mapping):
            stack.extend((f"{path}.{k}", sub) for k, sub in v.items())
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", sub) for i, sub in enumerate(v))
        elif isinstance(v, bool) or not isinstance(v, int | float):
            out[path] = str(v)
        else:
            out[path] = float(v)
    return out


def proposal_features(scenario: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """What tells proposals apart: every leaf that differs from the base spec, and every constraint's leaves.

    Constraint names and descriptions are left out: two proposals that require the same thing under different
    names are the same proposal.
    """
    raw, _ = split_scenario(scenario)
    base_raw, _ = split_scenario(base)
    mine, theirs = _leaves(raw, "spec"), _leaves(base_raw, "spec")
    skip = ("spec.name", "spec.description")
    feats = {k: v for k, v in mine.items() if k not in skip and theirs.get(k) != v}
    for key in ("factors", "design"):
        if key in scenario:
            feats.update(_leaves(scenario[key], key))
    require = scenario.get("require") or {}
    for c in require.get("constraints", []):
        body = {k: v for k, v in c.items() if k not in ("name", "description")}
        sig = f"require[{body.get('stat', 'count')}:{body.get('of', '')}:{','.join(sorted(body.get('select', {})))}]"
        feats.update(_leaves(body, sig))
    return feats


def proposal_distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """A distance in [0, 1] between two proposals' features (:func:`proposal_features`).

    Over the union of feature keys, a key present on one side only counts 1, a text value that differs 1,
    and two numbers their relative difference (capped at 1); the distance is the mean. Identical proposals
    are at 0, proposals touching disjoint fields at 1.
    """
    keys = set(a) | set(b)
    if not keys:
        return 0.0
    total = 0.0
    for k in keys:
        if k not in a or k not in b:
            total += 1.0
            continue
        x, y = a[k], b[k]
        if isinstance(x, float) and isinstance(y, float):
            scale = max(abs(x), abs(y))
            total += 0.0 if scale == 0 else min(1.0, abs(x - y) / scale)
        else:
            total += float(x != y)
    d = total / len(keys)
    return 0.0 if math.isclose(d, 0.0, abs_tol=1e-12) else d


def scenario_yaml(data: Mapping[str, Any]) -> str:
    """A scenario mapping as YAML, in its own key order (plain data only: ``yaml.safe_dump``)."""
    import yaml

    return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, default_flow_style=None, width=110)
