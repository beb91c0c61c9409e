"""Coverage of a scenario run, as plain JSON-able data: what was rendered, against what was asked for.

:func:`coverage_report` takes the frames (their cell, and optionally their labels and constraint results),
the rejection statistics and the factors, and computes:

- the cells covered and the frames per cell (and per level of each factor);
- the t-wise coverage (pairwise by default): the share of t-tuples of levels, over any t factors, that
  some rendered frame shows. A range factor counts as ``len(steps)`` levels when it has steps (a value
  counts for its nearest step), else as ``numeric_bins`` equal bins of its range;
- per constraint: attempts, acceptance rate (held / attempts on which it was enforced), closest value,
  and on how many kept frames it held;
- per cell: objects per frame, and histograms of visibility and truncation.

:func:`frames_from_coco` reads the frames back from a written ``annotations.coco.json`` (the cell is in
``image.scenario_cell``), so the same report comes from a dataset on disk.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simgen.scenarios.constraints import (
    ConstraintResult,
    FrameLabels,
    RejectionStats,
    frame_labels_from_coco,
)
from simgen.scenarios.design import Design, Domain, tuples_covered

#: Histogram bins of visibility and truncation over [0, 1].
HIST_BINS = 10


@dataclass(frozen=True)
class FrameCoverage:
    """One kept frame as coverage sees it.

    Attributes:
        frame_index: The frame.
        cell_index: Its cell's index in the design.
        cell: Its cell (factor -> level name or value).
        labels: Its labels, for the per-cell statistics (None to skip them).
        results: Its constraint results on the kept attempt (empty to skip them).
    """

    frame_index: int
    cell_index: int
    cell: Mapping[str, Any]
    labels: FrameLabels | None = None
    results: Sequence[ConstraintResult] = ()


def level_index(domain: Domain, value: Any, numeric_bins: int = 4) -> int:
    """The index of a cell's value among a factor's levels (a range's steps, or its equal bins).

    Raises:
        ValueError: A level name the factor does not have.
    """
    if not domain.is_range:
        try:
            return domain.levels.index(value)
        except ValueError:
            raise ValueError(f"factor '{domain.name}' has no level {value!r}") from None
    lo, hi = float(domain.low), float(domain.high)  # type: ignore[arg-type]
    u = min(max((float(value) - lo) / (hi - lo), 0.0), 1.0)
    if domain.levels:
        return round(u * (len(domain.levels) - 1))
    return min(int(u * numeric_bins), numeric_bins - 1)


def level_names(domain: Domain, numeric_bins: int = 4) -> list[str]:
    """Names of a factor's levels as coverage counts them (a range's bins as ``[low, high)``)."""
    if not domain.is_range:
        return [str(v) for v in domain.levels]
    if domain.levels:
        return [f"{v:g}" for v in domain.levels]
    lo, hi = float(domain.low), float(domain.high)  # type: ignore[arg-type]
    edges = np.linspace(lo, hi, numeric_bins + 1)
    return [
        f"[{a:g}, {b:g}{']' if j == numeric_bins - 1 else ')'}" for j, (a, b) in enumerate(itertools.pairwise(edges))
    ]


def _histogram(values: Sequence[float]) -> dict[str, Any]:
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=HIST_BINS, range=(0.0, 1.0))
    return {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}


def _summary(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "min": None, "max": None}
    return {"n": len(values), "mean": math.fsum(values) / len(values), "min": min(values), "max": max(values)}


def coverage_report(
    domains: Sequence[Domain],
    frames: Iterable[FrameCoverage],
    *,
    design: Design | None = None,
    stats: RejectionStats | None = None,
    strength: int = 2,
    numeric_bins: int = 4,
) -> dict[str, Any]:
    """The coverage of a run (see the module docstring), as plain JSON-able data.

    Args:
        domains: The factors, in order (``LoadedScenario.domains()``).
        frames: The kept frames.
        design: The design, to report the cells planned and the coverage the design itself reaches.
        stats: The run's rejection statistics, for the acceptance rates.
        strength: t of the t-wise coverage (cut to the number of factors).
        numeric_bins: Bins of a range factor without steps.

    Returns:
        ``{"frames", "factors", "cells", "levels", "t_wise", "constraints", "acceptance", "per_cell"}``.
    """
    frames = sorted(frames, key=lambda f: f.frame_index)
    sizes = [len(level_names(d, numeric_bins)) for d in domains]
    t = min(max(strength, 1), len(domains)) if domains else 0

    per_cell: dict[int, list[FrameCoverage]] = {}
    for f in frames:
        per_cell.setdefault(f.cell_index, []).append(f)
    rows = np.array(
        [[level_index(d, cells[0].cell[d.name], numeric_bins) for d in domains] for cells in per_cell.values()],
        dtype=np.int64,
    ).reshape(len(per_cell), len(domains))

    level_frames = {d.name: dict.fromkeys(level_names(d, numeric_bins), 0) for d in domains}
    for f in frames:
        for d in domains:
            key = level_names(d, numeric_bins)[level_index(d, f.cell[d.name], numeric_bins)]
            level_frames[d.name][key] += 1

    return {
        "frames": len(frames),
        "factors": [_factor_json(d, numeric_bins) for d in domains],
        "cells": {
            "planned": len(design) if design is not None else None,
            "covered": len(per_cell),
            "frames_per_cell": [
                {
                    "index": j,
                    "levels": dict(per_cell[j][0].cell),
                    "slots": rows[k].tolist(),  # each factor's level index, as "factors" lists the levels
                    "frames": len(per_cell[j]),
                }
                for k, j in sorted(enumerate(per_cell), key=lambda kj: kj[1])
            ],
        },
        "levels": level_frames,
        "t_wise": _t_wise(rows, sizes, t, domains, design, numeric_bins),
        "constraints": _constraints(frames, stats),
        "acceptance": _acceptance(stats),
        "per_cell": [_cell_stats(j, per_cell[j]) for j in sorted(per_cell)],
    }


def _factor_json(d: Domain, numeric_bins: int) -> dict[str, Any]:
    out: dict[str, Any] = {"name": d.name, "levels": level_names(d, numeric_bins)}
    if d.is_range:
        out["range"] = [d.low, d.high]
    return out


def _t_wise(
    rows: np.ndarray, sizes: list[int], t: int, domains: Sequence[Domain], design: Design | None, numeric_bins: int
) -> dict[str, Any]:
    if t == 0:
        return {"strength": 0, "covered": 0, "total": 0, "percent": None, "design_percent": None}
    covered, total = tuples_covered(rows, sizes, t) if len(rows) else (0, _total(sizes, t))
    out = {"strength": t, "covered": covered, "total": total, "percent": 100.0 * covered / total}
    if design is not None:
        planned = np.array(
            [[level_index(d, c[d.name], numeric_bins) for d in domains] for c in design.cells], dtype=np.int64
        )
        got, _ = tuples_covered(planned, sizes, t)
        out["design_percent"] = 100.0 * got / total
    return out


def _total(sizes: Sequence[int], t: int) -> int:
    return sum(math.prod(sizes[c] for c in combo) for combo in itertools.combinations(range(len(sizes)), t))


def _constraints(frames: Sequence[FrameCoverage], stats: RejectionStats | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if stats is not None:
        out = {name: dict(d) for name, d in stats.to_json()["constraints"].items()}
    for f in frames:
        for r in f.results:
            entry = out.setdefault(r.name, {})
            entry["held_on_frames"] = entry.get("held_on_frames", 0) + int(r.ok)
            entry["enforced_on_frames"] = entry.get("enforced_on_frames", 0) + int(r.enforced)
    return out


def _acceptance(stats: RejectionStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    data = stats.to_json()
    return {k: data[k] for k in ("frames", "attempts", "acceptance_rate", "attempts_per_frame")}


def _cell_stats(index: int, frames: Sequence[FrameCoverage]) -> dict[str, Any]:
    labeled = [f.labels for f in frames if f.labels is not None]
    counts = [len(lab.objects) for lab in labeled]
    vis = [o.visibility for lab in labeled for o in lab.objects if o.visibility is not None]
    trunc = [o.truncation for lab in labeled for o in lab.objects]
    missing_vis = sum(1 for lab in labeled for o in lab.objects if o.visibility is None)
    hist: dict[str, int] = {}
    for n in sorted(counts):
        hist[str(n)] = hist.get(str(n), 0) + 1
    bright = [lab.brightness for lab in labeled if lab.brightness is not None]
    return {
        "index": index,
        "levels": dict(frames[0].cell),
        "frames": len(frames),
        "objects_per_frame": {**_summary([float(c) for c in counts]), "histogram": hist},
        "visibility": {**_histogram(vis), "missing": missing_vis},
        "truncation": _histogram(trunc),
        "brightness": _summary(bright),
    }


def frames_from_coco(
    coco: Mapping[str, Any],
    *,
    tags: Mapping[str, Iterable[str]] | None = None,
    rgb: Callable[[Mapping[str, Any]], np.ndarray | None] | None = None,
) -> list[FrameCoverage]:
    """The frames of a written COCO file, with their cells (``image.scenario_cell``) and labels.

    Args:
        coco: The parsed ``annotations.coco.json``.
        tags: Group/fixture name -> tags, for constraints that select by tag.
        rgb: Called with an image record, returns its RGB (for brightness); None to skip image statistics.

    Raises:
        ValueError: An image has no ``scenario_cell`` (the dataset was not rendered from a scenario).
    """
    by_image: dict[int, list[Mapping[str, Any]]] = {}
    for ann in coco.get("annotations", ()):
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    out = []
    for image in coco.get("images", ()):
        cell = image.get("scenario_cell")
        if not isinstance(cell, Mapping):
            raise ValueError(
                f"image {image.get('id')} has no scenario_cell: was this dataset rendered from a scenario?"
            )
        labels = frame_labels_from_coco(
            image,
            by_image.get(int(image["id"]), ()),
            coco.get("categories", ()),
            rgb=rgb(image) if rgb is not None else None,
            tags=tags,
        )
        out.append(FrameCoverage(int(image["frame_index"]), int(cell["index"]), dict(cell["levels"]), labels))
    return out
