"""The offline ideator: a combinatorial search over a factor library of hard levels, no LLM needed.

The library holds the hardest levels of the edge-case library (``scenes/edge_cases/``), written as patches that
apply to any tabletop-like base spec, each with the ``require`` constraints that make it hold:

- ``lighting``: ``dark``, ``backlit``, ``overexposed`` (dark_lighting.yaml, overexposed.yaml);
- ``occlusion``: ``heavy`` (heavy_occlusion.yaml: the first object group piled into a third of its region);
- ``camera``: ``border`` (truncated_border.yaml), ``grazing`` (grazing_camera.yaml), ``distant``
  (tiny_distant.yaml).

:func:`offline_proposals` first drops the levels that do not apply to the base spec (each level alone must
load as a scenario), then proposes every hard level alone and then the rows of a pairwise covering array over
the factors (each with an "off" level), so every pair of hard levels meets in some proposal. With a
:class:`~simgen.scenarios.ideation.focus.Focus` (``--from-report``), the weakest class is the one the
constraints select and the conditions the report points at come first.

Pixel thresholds are written for 640x480 and scaled to the base spec's resolution.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simgen.errors import SimgenError
from simgen.scenarios.design import covering_array
from simgen.scenarios.ideation.focus import DEFAULT_CONDITIONS, Focus
from simgen.scenarios.ideation.proposal import ScenarioProposal, check_proposal
from simgen.scenarios.loader import split_scenario

__all__ = ["LIBRARY", "OFFLINE_MODEL", "Ingredient", "offline_proposals"]

#: What ``ideation.jsonl`` records as the model of an offline proposal.
OFFLINE_MODEL = "offline/combinatorial-v1"
_REF_AREA = 640 * 480

Constraints = list[dict[str, Any]]


@dataclass(frozen=True)
class Ingredient:
    """One hard level of the library.

    Attributes:
        factor: The library factor (one level per factor per proposal).
        name: The level.
        condition: What it stresses (``lighting``, ``occlusion``, ``truncation``, ``viewpoint``).
        rationale: Why detectors fail on it.
        patch: Base raw spec -> patch.
        constraints: ``(category or None, pixel-area scale)`` -> constraints.
    """

    factor: str
    name: str
    condition: str
    rationale: str
    patch: Callable[[Mapping[str, Any]], dict[str, Any]]
    constraints: Callable[[str | None, float], Constraints]


def _select(category: str | None, **filters: Any) -> dict[str, Any]:
    return {**({"category": category} if category else {}), **filters}


def _in_view(category: str | None, s2: float, n: int = 1) -> dict[str, Any]:
    return {"name": "in_view", "select": _select(category, visible_px={"ge": max(1, round(10 * s2))}), "ge": n}


def _with_exposure(base: Mapping[str, Any], low: float, high: float) -> list[Any]:
    kept = [
        r
        for r in base.get("randomizers") or ()
        if not (isinstance(r, Mapping) and r.get("type") == "sensor/exposure-v1")
    ]
    return [*copy.deepcopy(kept), {"type": "sensor/exposure-v1", "ev": {"kind": "uniform", "low": low, "high": high}}]


def _scaled(value: Any, factor: float) -> Any:
    """A number or a uniform/intrange distribution scaled by ``factor``; anything else becomes a number near 1."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(float(value) * factor, 4)
    if isinstance(value, Mapping) and value.get("kind") == "uniform":
        return {"kind": "uniform", "low": round(value["low"] * factor, 4), "high": round(value["high"] * factor, 4)}
    return round(1.0 * factor, 4)


def _look_at(base: Mapping[str, Any]) -> Mapping[str, Any]:
    return (base.get("camera") or {}).get("look_at") or {}


def _region_size(base: Mapping[str, Any]) -> list[float]:
    groups = base.get("objects") or []
    region = (groups[0].get("region") or {}) if groups else {}
    size = region.get("size") if isinstance(region, Mapping) else None
    if isinstance(size, list) and len(size) == 3 and all(isinstance(v, int | float) for v in size):
        return [round(float(v) * 0.35, 4) for v in size]
    return [0.2, 0.15, 0.0]


def _dark(b: Mapping[str, Any]) -> dict[str, Any]:
    # Darkness from the exposure, not a dim light: PyBullet's EGL renderer ignores the light's intensity and
    # coefficients (it uses only the direction), so a dim light would be dark under TinyRenderer alone.
    return {"randomizers": _with_exposure(b, -6.5, -5.5)}


def _dark_require(c: str | None, s2: float) -> Constraints:
    return [
        {"name": "dark", "stat": "brightness", "le": 0.12},
        {"name": "not_black", "stat": "contrast", "ge": 0.005},
        _in_view(c, s2),
    ]


def _backlit(b: Mapping[str, Any]) -> dict[str, Any]:
    # The light low behind the scene (a direction both renderers honour), the camera exposed for the sky.
    return {"light.elevation_deg": 5, "randomizers": _with_exposure(b, -4.0, -3.0)}


def _backlit_require(c: str | None, s2: float) -> Constraints:
    return [{"name": "dim", "stat": "brightness", "le": 0.3}, _in_view(c, s2)]


def _overexposed(b: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "light.intensity": 1.5,
        "light.ambient": 0.7,
        "light.specular": 1.0,
        "randomizers": _with_exposure(b, 0.5, 1.0),
    }


def _overexposed_require(c: str | None, s2: float) -> Constraints:
    return [
        {"name": "bright", "stat": "brightness", "ge": 0.75},
        {"name": "not_blank", "stat": "contrast", "ge": 0.03},
        _in_view(c, s2),
    ]


def _occluded(b: Mapping[str, Any]) -> dict[str, Any]:
    return {"labels.visibility": True, "objects[0].region.size": _region_size(b)}


def _occluded_require(c: str | None, s2: float) -> Constraints:
    select = _select(c, visibility={"gt": 0.0, "le": 0.3}, truncation={"le": 0.05})
    return [{"name": "heavily_occluded", "select": select, "ge": 1}]


def _border(b: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "camera.look_at.distance": _scaled(_look_at(b).get("distance", 1.0), 0.5),
        "camera.look_at.target_jitter": 0.1,
    }


def _border_require(c: str | None, s2: float) -> Constraints:
    select = _select(c, truncation={"ge": 0.3}, visible_px={"ge": max(1, round(10 * s2))})
    return [{"name": "cut_by_border", "select": select, "ge": 1}]


def _grazing(b: Mapping[str, Any]) -> dict[str, Any]:
    return {"camera.look_at.elevation_deg": {"kind": "uniform", "low": 2, "high": 8}}


def _grazing_require(c: str | None, s2: float) -> Constraints:
    return [_in_view(c, s2)]


def _distant(b: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "camera.look_at.distance": _scaled(_look_at(b).get("distance", 1.0), 5.0),
        "camera.fov_deg": {"kind": "uniform", "low": 30, "high": 40},
    }


def _distant_require(c: str | None, s2: float) -> Constraints:
    # tiny_distant.yaml: every box at most 64 px^2 at 128x96, scaled to the spec's resolution
    return [
        {"name": "some_visible", "select": _select(c, visible_px={"ge": 1}), "ge": 1},
        {"name": "all_tiny", "stat": "max", "of": "box_area", "le": round(64 * _REF_AREA / (128 * 96) * s2, 2)},
    ]


LIBRARY: tuple[Ingredient, ...] = (
    Ingredient(
        "lighting",
        "dark",
        "lighting",
        "Dim light and under-exposure: low signal and noise-like texture, where detectors lose small objects.",
        _dark,
        _dark_require,
    ),
    Ingredient(
        "lighting",
        "backlit",
        "lighting",
        "A light at the horizon behind the objects with little ambient light: silhouettes, lost colour cues.",
        _backlit,
        _backlit_require,
    ),
    Ingredient(
        "lighting",
        "overexposed",
        "lighting",
        "Harsh light and over-exposure: washed-out surfaces and clipped highlights hide object boundaries.",
        _overexposed,
        _overexposed_require,
    ),
    Ingredient(
        "occlusion",
        "heavy",
        "occlusion",
        "Objects piled tightly: some object shows 30% or less of itself, occluded but inside the image.",
        _occluded,
        _occluded_require,
    ),
    Ingredient(
        "camera",
        "border",
        "truncation",
        "A close, off-centre camera: objects cut by the image border, only partly in view.",
        _border,
        _border_require,
    ),
    Ingredient(
        "camera",
        "grazing",
        "viewpoint",
        "A camera grazing the table top: strong foreshortening, objects hiding each other along the view.",
        _grazing,
        _grazing_require,
    ),
    Ingredient(
        "camera",
        "distant",
        "viewpoint",
        "A far, narrow camera: every object is a few pixels wide, below most detectors' anchor sizes.",
        _distant,
        _distant_require,
    ),
)


@dataclass(frozen=True)
class Skipped:
    """A library level that does not apply to the base spec, and why."""

    name: str
    reason: str


def _resolution(base: Mapping[str, Any]) -> tuple[int, int]:
    camera = base.get("camera") or {}
    return int(camera.get("width", 640)), int(camera.get("height", 480))


def _proposal(
    levels: Sequence[Ingredient], base: Mapping[str, Any], category: str | None, focus: Focus | None
) -> ScenarioProposal:
    raw, _ = split_scenario(base)
    w, h = _resolution(raw)
    s2 = (w * h) / _REF_AREA
    patch: dict[str, Any] = {}
    constraints: Constraints = []
    names: set[str] = set()
    for ing in levels:
        patch.update(ing.patch(raw))
        for c in ing.constraints(category, s2):
            if c["name"] not in names:  # shared ones (in_view) once
                names.add(c["name"])
                constraints.append(c)
    label = "-".join(ing.name if ing.factor != "occlusion" else "heavy-occlusion" for ing in levels)
    name = f"{category}-{label}" if category else label
    aim = ""
    if category and focus is not None:
        weak = next((w for w in focus.classes if w.name == category), None)
        aim = f" Aimed at '{category}'" + (f" (TSTR {weak.metric} {weak.tstr:.3f})." if weak else ".")
    rationale = " ".join(ing.rationale for ing in levels) + aim
    return ScenarioProposal.model_validate(
        {
            "name": name[:48].rstrip("-_"),
            "rationale": rationale[:1000],
            "patch": patch,
            "require": constraints,
            "max_attempts": 30,
        }
    )


def offline_proposals(
    base: Mapping[str, Any],
    n: int,
    *,
    seed: int,
    base_dir: str | Path | None,
    asset_roots: Sequence[str | Path] = (),
    focus: Focus | None = None,
) -> tuple[list[ScenarioProposal], list[Skipped]]:
    """Up to ``n`` proposals from the library (see the module docstring); deterministic in ``seed``.

    Returns:
        ``(proposals, skipped library levels)``.

    Raises:
        SimgenError: No library level applies to the base spec.
    """
    categories = [c for c in (focus.categories if focus else ())] or [None]
    category = categories[0]
    usable: list[Ingredient] = []
    skipped: list[Skipped] = []
    for ing in LIBRARY:
        try:
            check_proposal(base, _proposal([ing], base, category, focus), base_dir=base_dir, asset_roots=asset_roots)
        except (SimgenError, ValueError) as exc:
            skipped.append(Skipped(f"{ing.factor}={ing.name}", " ".join(str(exc).split())[:300]))
            continue
        usable.append(ing)
    if not usable:
        raise SimgenError(
            "no level of the offline factor library applies to this base spec: "
            + "; ".join(f"{s.name}: {s.reason}" for s in skipped[:3])
        )
    order = focus.conditions if focus else DEFAULT_CONDITIONS
    rank = {c: i for i, c in enumerate(order)}
    singles = sorted(usable, key=lambda ing: (rank.get(ing.condition, len(rank)), LIBRARY.index(ing)))
    combos = [[ing] for ing in singles]
    factors = list(dict.fromkeys(ing.factor for ing in usable))
    levels = {f: [ing for ing in usable if ing.factor == f] for f in factors}
    if len(factors) >= 2:
        rows = covering_array([len(levels[f]) + 1 for f in factors], 2, np.random.default_rng([seed, 12]))
        for row in rows:
            chosen = [levels[f][int(k) - 1] for f, k in zip(factors, row, strict=True) if int(k) > 0]
            if len(chosen) >= 2 and chosen not in combos:
                combos.append(chosen)
    out: list[ScenarioProposal] = []
    for i, combo in enumerate(combos[:n]):
        # With several weak classes, take turns aiming at them.
        out.append(_proposal(combo, base, categories[i % len(categories)], focus))
    return out, skipped
