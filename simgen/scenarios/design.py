"""Designs: which combinations of factor levels (cells) a dataset renders, and which scene renders which.

Every design is a pure function of the factors, the design settings and the dataset seed:

- ``full``: the factorial design, in lexicographic order of the factors as written;
- ``pairwise`` / ``t-wise``: a covering array of strength t (every t-tuple of levels of any t factors is in
  some cell), built by the deterministic greedy IPOG algorithm (Lei et al., "IPOG: a general strategy for
  t-way software testing", 2007). The seed only fills the entries IPOG leaves free ("don't care");
- ``random``: ``n`` cells, each level drawn uniformly, a range uniformly over its range;
- ``lhs`` / ``sobol``: ``n`` points of ``scipy.stats.qmc.LatinHypercube`` or a scrambled ``Sobol``, seeded
  from the dataset seed. Dimension j of a point is factor j: a range maps [0, 1) onto its range (an integer
  range onto its integers, equally wide), and a factor of L levels takes level ``floor(u * L)``.

**Cells go to scenes, not frames.** A scene is ``frames_per_scene`` frames that share one settled scene,
and a cell's patch may change scene-level fields (the objects, their count, the physics), so all frames of
a scene get the same cell. Scene s gets cell ``s mod len(cells)`` (round robin): the first ``len(cells)``
scenes render every cell once, and cells get equal numbers of scenes, within one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simgen.errors import DependencyMissing, SpecError
from simgen.sampling import rng_for
from simgen.scenarios.models import MAX_CELLS, DesignSpec
from simgen.writers.coco import rounded

#: A cell: factor name -> level name (a levels factor) or value (a range factor).
Cell = dict[str, Any]

#: The most t-tuples a covering array may have to cover (the greedy's memory and time grow with it).
MAX_TUPLES = 4_000_000
#: The most factor combinations (``C(k, t)``) a covering array may have to cover.
MAX_COMBINATIONS = 50_000
#: A covering array is built by up to MAX_RUNS runs of IPOG, fewer for large arrays: about RUN_BUDGET
#: tuple look-ups in all, so small designs get the best of many runs and large ones stay fast.
MAX_RUNS = 32
RUN_BUDGET = 50_000


@dataclass(frozen=True)
class Domain:
    """What a design knows of one factor.

    Attributes:
        name: The factor's name.
        levels: Its discrete levels: level names, or the values of a range's steps (empty for a range
            without steps, which only ``random``, ``lhs`` and ``sobol`` can use).
        low: A range's low end (None for a levels factor).
        high: A range's high end.
        integer: Whether a range holds integers.
    """

    name: str
    levels: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    integer: bool = False

    @property
    def is_range(self) -> bool:
        """Whether the factor is a numeric range."""
        return self.low is not None

    def from_unit(self, u: float) -> Any:
        """The level (or value) at ``u`` in [0, 1): ranges map linearly, levels split [0, 1) equally."""
        if self.low is None or self.high is None:
            return self.levels[min(int(u * len(self.levels)), len(self.levels) - 1)]
        if self.integer:
            lo, hi = int(self.low), int(self.high)
            return min(lo + int(u * (hi - lo + 1)), hi)
        return rounded(self.low + u * (self.high - self.low))


def range_steps(low: float, high: float, steps: int, integer: bool) -> tuple[Any, ...]:
    """``steps`` evenly spaced values from ``low`` to ``high`` (ends included), rounded as COCO rounds floats."""
    values = np.linspace(low, high, steps)
    if integer:
        return tuple(int(v) for v in np.round(values))
    return tuple(rounded(float(v)) for v in values)


@dataclass(frozen=True)
class Design:
    """An ordered list of cells and the assignment of scenes (and so frames) to them.

    Attributes:
        kind: The design kind (``full``, ``pairwise``, ...).
        factors: Factor names, in the order written.
        cells: The cells, in design order.
        frames_per_scene: Frames per scene of the run (cells are assigned per scene).
        strength: t of a covering array (2 for pairwise), else None.
        seed: The dataset seed the design was built from.
    """

    kind: str
    factors: tuple[str, ...]
    cells: tuple[Cell, ...]
    frames_per_scene: int
    strength: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.cells:
            raise ValueError("a design needs at least one cell")
        if self.frames_per_scene < 1:
            raise ValueError(f"frames_per_scene must be >= 1, got {self.frames_per_scene}")

    def __len__(self) -> int:
        return len(self.cells)

    def cell_index_for_scene(self, scene_index: int) -> int:
        """The cell of scene ``scene_index``: round robin over the cells."""
        if scene_index < 0:
            raise ValueError(f"scene_index must be >= 0, got {scene_index}")
        return scene_index % len(self.cells)

    def cell_index(self, frame_index: int) -> int:
        """The cell of frame ``frame_index`` (its scene's cell)."""
        if frame_index < 0:
            raise ValueError(f"frame_index must be >= 0, got {frame_index}")
        return self.cell_index_for_scene(frame_index // self.frames_per_scene)

    def assign(self, frame_index: int) -> Cell:
        """The cell of frame ``frame_index``, as a fresh dict (frames of one scene share it)."""
        return dict(self.cells[self.cell_index(frame_index)])

    def record(self, frame_index: int) -> dict[str, Any]:
        """What COCO's ``image.scenario_cell`` and the manifest record for a frame: ``{index, levels}``."""
        return cell_record(self.cell_index(frame_index), self.assign(frame_index))

    def to_json(self) -> dict[str, Any]:
        """The design as plain data (for ``dataset.json``)."""
        return {
            "kind": self.kind,
            "strength": self.strength,
            "seed": self.seed,
            "factors": list(self.factors),
            "frames_per_scene": self.frames_per_scene,
            "cells": [dict(c) for c in self.cells],
        }


def cell_record(index: int, cell: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a frame's cell: its index in the design and its levels."""
    return {"index": int(index), "levels": dict(cell)}


# --- building designs -------------------------------------------------------------------------------------


def check_design(domains: Sequence[Domain], spec: DesignSpec) -> None:
    """Refuse a design the factors cannot give, before any work: discrete levels, sizes, strength.

    Raises:
        SpecError: With the field path (``factors.fov.steps``, ``design.strength``, ...).
    """
    if spec.kind in ("full", "pairwise", "t-wise"):
        for d in domains:
            if not d.levels:
                raise SpecError(
                    f"a {spec.kind} design needs discrete levels: give this range 'steps' (e.g. steps: 3), "
                    "or use design lhs, sobol or random",
                    path=f"factors.{d.name}.steps",
                )
    sizes = [len(d.levels) for d in domains]
    if spec.kind == "full":
        total = math.prod(sizes)
        if total > MAX_CELLS:
            raise SpecError(
                f"the full design has {total} cells, more than {MAX_CELLS}; use pairwise or t-wise",
                path="design.kind",
            )
    t = spec.t
    if t is not None:
        if t > len(domains):
            raise SpecError(
                f"strength {t} needs at least {t} factors, got {len(domains)}; use design full",
                path="design.strength" if spec.kind == "t-wise" else "design.kind",
            )
        combos = math.comb(len(domains), t)
        lower = math.prod(sorted(sizes, reverse=True)[:t])
        tuples = _tuple_count(sizes, t)
        if combos > MAX_COMBINATIONS or tuples > MAX_TUPLES or lower > MAX_CELLS:
            raise SpecError(
                f"strength {t} over these factors means {tuples} level tuples in {combos} factor combinations "
                f"(at least {lower} cells); lower the strength or the number of levels",
                path="design.strength" if spec.kind == "t-wise" else "design.kind",
            )


def _tuple_count(sizes: Sequence[int], t: int) -> int:
    """Sum over t-subsets of factors of the product of their level counts (elementary symmetric polynomial)."""
    e = [1] + [0] * t
    for s in sizes:
        for j in range(t, 0, -1):
            e[j] += e[j - 1] * s
    return e[t]


def build_design(domains: Sequence[Domain], spec: DesignSpec, seed: int, frames_per_scene: int) -> Design:
    """Build a design: the same factors, settings and seed always give the same cells, in the same order.

    Args:
        domains: The factors, in the order written.
        spec: The ``design`` section.
        seed: The dataset seed.
        frames_per_scene: Frames per scene of the run.

    Returns:
        The design.

    Raises:
        SpecError: The design cannot be built from these factors (see :func:`check_design`).
    """
    check_design(domains, spec)
    rng = rng_for(seed, "scenario", "design", spec.kind)
    names = tuple(d.name for d in domains)
    if spec.kind == "full":
        rows = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(d.levels for d in domains))]
    elif spec.kind in ("pairwise", "t-wise"):
        array = covering_array([len(d.levels) for d in domains], spec.t or 2, rng)
        rows = [{d.name: d.levels[int(j)] for d, j in zip(domains, row, strict=True)} for row in array]
    elif spec.kind == "random":
        rows = random_cells(domains, spec.n or 1, rng)
    else:
        rows = qmc_cells(domains, spec.n or 1, spec.kind, rng)
    return Design(spec.kind, names, tuple(rows), frames_per_scene, spec.t, seed)


def random_cells(domains: Sequence[Domain], n: int, rng: np.random.Generator) -> list[Cell]:
    """``n`` cells, each factor drawn independently: a level uniformly, a range uniformly over it."""
    cells = []
    for _ in range(n):
        cell: Cell = {}
        for d in domains:
            if d.is_range:
                cell[d.name] = d.from_unit(float(rng.random()))
            else:
                cell[d.name] = d.levels[int(rng.integers(len(d.levels)))]
        cells.append(cell)
    return cells


def qmc_cells(domains: Sequence[Domain], n: int, kind: str, rng: np.random.Generator) -> list[Cell]:
    """``n`` cells of a Latin hypercube (``lhs``) or a scrambled Sobol' sequence (``sobol``), seeded by ``rng``.

    Raises:
        DependencyMissing: scipy is not installed.
        ValueError: ``kind`` is neither, or ``sobol`` is asked for a number of points that is not a power of 2.
    """
    try:
        from scipy.stats import qmc  # scipy is heavy: imported only when a design needs it
    except ImportError as exc:
        raise DependencyMissing("scipy", "metrics", f"{kind} designs") from exc

    if kind not in ("lhs", "sobol"):
        raise ValueError(f"unknown quasi-Monte Carlo design '{kind}'; expected lhs or sobol")
    if kind == "sobol" and n & (n - 1):
        raise ValueError(f"a Sobol' design needs a power of 2 points, got {n}")
    engine_cls = qmc.LatinHypercube if kind == "lhs" else qmc.Sobol
    try:
        engine = engine_cls(len(domains), scramble=True, rng=rng)
    except TypeError:  # scipy < 1.15 names the generator `seed`
        engine = engine_cls(len(domains), scramble=True, seed=rng)
    points = engine.random(n) if kind == "lhs" else engine.random_base2(int(n).bit_length() - 1)
    points = np.clip(points, 0.0, np.nextafter(1.0, 0.0))
    return [{dom.name: dom.from_unit(float(u)) for dom, u in zip(domains, row, strict=True)} for row in points]


# --- covering arrays --------------------------------------------------------------------------------------


def covering_array(sizes: Sequence[int], strength: int, rng: np.random.Generator) -> np.ndarray:
    """A covering array of the given strength: rows of level indices, one column per factor.

    Every t-tuple of levels of any t columns appears in some row. Built by IPOG (:func:`ipog`) several times,
    the first run breaking ties towards the lowest level, the others with ``rng`` (neither is always better:
    64 rows against 100 for 4^6 at strength 3, but 3646 against 610 for 16^32 pairwise), and the smallest
    array wins (the first of the smallest), after :func:`drop_redundant_rows`. Entries left free at the end are
    drawn from ``rng``: they cover nothing that is needed, and drawing them keeps the levels balanced. How
    many runs are made depends on the sizes alone, so the same sizes and rng give the same array.

    Args:
        sizes: Number of levels of each factor (each >= 1).
        strength: t, from 1 to the number of factors (larger is cut to the number of factors).
        rng: Breaks ties and fills the free entries.

    Returns:
        int array of shape (rows, len(sizes)).
    """
    if not sizes:
        raise ValueError("a covering array needs at least one factor")
    if any(s < 1 for s in sizes):
        raise ValueError(f"every factor needs at least one level, got {list(sizes)}")
    t = min(max(int(strength), 1), len(sizes))
    lower = math.prod(sorted(sizes, reverse=True)[:t])  # rows at least: the t largest factors' product
    # a run extends about `lower` rows by each further factor, looking at C(i, t-1) tuples for factor i:
    # C(k, t) - 1 in all (the hockey-stick identity)
    runs = max(2, min(MAX_RUNS, RUN_BUDGET // (lower * max(math.comb(len(sizes), t) - 1, 1))))
    best: np.ndarray | None = None
    for run in range(runs):
        rows = drop_redundant_rows(ipog(sizes, t, None if run == 0 else rng), sizes, t)
        if best is None or len(rows) < len(best):
            best = rows
    assert best is not None
    free = best < 0
    if free.any():
        highs = np.broadcast_to(np.asarray(sizes, dtype=np.int64), best.shape)
        best[free] = rng.integers(0, highs[free])
    return best


def ipog(sizes: Sequence[int], strength: int, tie_rng: np.random.Generator | None) -> np.ndarray:
    """One run of IPOG; returns rows with -1 where an entry is free ("don't care").

    Factors are processed from the one with the most levels down (ties in the order given): the array starts
    as the full product of the first t, then each further factor is added by horizontal growth (each row
    takes the level that covers the most uncovered tuples; ties go to the lowest level, or to a level drawn
    from ``tie_rng``) and vertical growth (a tuple still uncovered is written into the first row whose entries
    there are free, else into a new row).
    """
    k = len(sizes)
    t = min(strength, k)
    order = sorted(range(k), key=lambda j: (-sizes[j], j))
    v = [int(sizes[j]) for j in order]
    rows = np.array(list(itertools.product(*(range(x) for x in v[:t]))), dtype=np.int64).reshape(-1, t)
    for i in range(t, k):
        rows = _add_factor(rows, v, i, t, tie_rng)
    out = np.empty_like(rows)
    out[:, order] = rows
    return out


def drop_redundant_rows(rows: np.ndarray, sizes: Sequence[int], strength: int) -> np.ndarray:
    """``rows`` without the rows whose every t-tuple another kept row also covers (checked from the last row up).

    Free entries (-1) cover nothing.
    """
    t = min(strength, len(sizes))
    combos = list(itertools.combinations(range(len(sizes)), t))
    flat = np.empty((len(rows), len(combos)), dtype=np.int64)  # tuple id of each row in each combination
    counts = []
    for j, combo in enumerate(combos):
        radix = [int(sizes[c]) for c in combo]
        sub = rows[:, combo]
        ok = (sub >= 0).all(axis=1)
        ids = np.full(len(rows), -1, dtype=np.int64)
        if ok.any():
            ids[ok] = np.ravel_multi_index(tuple(sub[ok].T), radix)
        flat[:, j] = ids
        counts.append(np.bincount(ids[ok], minlength=math.prod(radix)))
    keep = np.ones(len(rows), dtype=bool)
    # Only a row whose every tuple is covered twice can go: find those at once, then decide one by one.
    twice = np.ones(len(rows), dtype=bool)
    for j in range(len(combos)):
        ids = flat[:, j]
        twice &= (ids < 0) | (counts[j][np.maximum(ids, 0)] >= 2)
    for r in np.flatnonzero(twice)[::-1]:
        mine = [(j, int(flat[r, j])) for j in range(len(combos)) if flat[r, j] >= 0]
        if all(counts[j][x] >= 2 for j, x in mine):
            keep[r] = False
            for j, x in mine:
                counts[j][x] -= 1
    return rows[keep]


class _Uncovered:
    """The t-tuples that involve factor i and t-1 earlier factors and no row covers yet.

    Tuple (combination c, levels of c, level x of factor i) is ``U[offset[c] + mixed-radix(levels), x]``.
    """

    def __init__(self, v: Sequence[int], i: int, t: int) -> None:
        self.combos = list(itertools.combinations(range(i), t - 1))
        self.cols = np.array(self.combos, dtype=np.int64).reshape(len(self.combos), t - 1)
        radix = np.array([[v[p] for p in c] for c in self.combos], dtype=np.int64).reshape(len(self.combos), t - 1)
        # strides of a mixed radix, last column fastest
        strides = np.ones_like(radix)
        for j in range(t - 3, -1, -1):
            strides[:, j] = strides[:, j + 1] * radix[:, j + 1]
        self.radix, self.strides = radix, strides
        sizes = radix.prod(axis=1) if t > 1 else np.ones(len(self.combos), dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.U = np.ones((int(sizes.sum()), v[i]), dtype=bool)

    def index(self, rows: np.ndarray) -> np.ndarray:
        """For each row and combination: the tuple index of the row's levels there, or -1 where one is free."""
        vals = rows[:, self.cols]  # (R, C, t-1)
        idx = self.offsets + (vals * self.strides).sum(axis=2)
        return np.where((vals < 0).any(axis=2), -1, idx)

    def decode(self, flat: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The combination (columns) and levels of tuple index ``flat``."""
        c = int(np.searchsorted(self.offsets, flat, side="right")) - 1
        rest = flat - int(self.offsets[c])
        levels = tuple(int(rest // s % r) for s, r in zip(self.strides[c], self.radix[c], strict=True))
        return self.combos[c], levels


def _add_factor(rows: np.ndarray, v: Sequence[int], i: int, t: int, tie_rng: np.random.Generator | None) -> np.ndarray:
    """IPOG's horizontal then vertical growth for factor i (columns 0..i-1 are done)."""
    unc = _Uncovered(v, i, t)
    idx = unc.index(rows)
    col = np.empty(len(rows), dtype=np.int64)
    for r in range(len(rows)):
        ids = idx[r][idx[r] >= 0]
        gains = unc.U[ids].sum(axis=0)
        best = np.flatnonzero(gains == gains.max())
        x = int(best[0] if tie_rng is None or len(best) == 1 else best[tie_rng.integers(len(best))])
        col[r] = x
        unc.U[ids, x] = False
    n = len(rows)
    buf = np.full((max(2 * n, 16), i + 1), -1, dtype=np.int64)  # rows, then room for vertical growth
    buf[:n, :i], buf[:n, i] = rows, col
    for flat, x in np.argwhere(unc.U):
        if not unc.U[flat, x]:
            continue  # covered by a row filled in for an earlier tuple
        combo, levels = unc.decode(int(flat))
        cols = [*combo, i]
        vals = np.array([*levels, int(x)], dtype=np.int64)
        block = buf[:n, cols]
        hit = np.flatnonzero(np.all((block == vals) | (block < 0), axis=1))
        if hit.size:
            r = int(hit[0])
        else:
            if n == len(buf):
                buf = np.concatenate([buf, np.full_like(buf, -1)], axis=0)
            r, n = n, n + 1
        buf[r, cols] = vals
        # every tuple this row now covers is covered
        ids = unc.index(buf[r : r + 1])[0]
        if buf[r, i] >= 0:
            unc.U[ids[ids >= 0], buf[r, i]] = False
    return buf[:n].copy()


def tuples_covered(rows: np.ndarray, sizes: Sequence[int], strength: int) -> tuple[int, int]:
    """How many of the t-tuples of levels (of any t factors) the rows cover, and how many there are.

    Rows hold level indices; a negative entry covers nothing. Vectorized per factor combination.
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, len(sizes))
    t = min(strength, len(sizes))
    covered = total = 0
    for combo in itertools.combinations(range(len(sizes)), t):
        radix = [int(sizes[c]) for c in combo]
        n = math.prod(radix)
        total += n
        sub = rows[:, combo]
        sub = sub[(sub >= 0).all(axis=1)]
        if sub.size:
            flat = np.ravel_multi_index(tuple(sub.T), radix)
            covered += int(np.unique(flat).size)
    return covered, total
