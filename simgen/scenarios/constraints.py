"""Constraints (``require``) checked on what a frame actually shows: its labels and its image.

Everything here is a pure function of plain data. A frame's labels (:class:`FrameLabels`) are built either
from the engine's annotations of a rendered frame (:func:`frame_labels_from_annotations`) or from the COCO
record simgen wrote for it (:func:`frame_labels_from_coco`). Both round every value exactly as the COCO
writer does, so a constraint checked while rendering gives the same answer when it is checked again on the
written dataset.

Per-object attributes (``None`` where a value does not exist; an object lacking a value fails any filter
on it and is left out of a ``min``/``max``/``mean``):

- ``visible_px``: visible mask pixels (COCO ``area``);
- ``visibility``: visible fraction (needs ``labels.visibility: true``; ``None`` otherwise);
- ``truncation``: fraction of the amodal box outside the image;
- ``box_w``, ``box_h``, ``box_area``: the visible box, px (0 for an object with no visible pixel);
- ``distance``: metres from the camera centre to the centre of the object's 3D box;
- ``border_distance``: px from the visible box to the nearest image edge (``None`` with no visible pixel).

Image statistics: ``brightness``, the mean of the luma ``(0.299 R + 0.587 G + 0.114 B) / 255``, and
``contrast``, its standard deviation.

Soft constraints (``probability`` p < 1): whether a constraint is enforced on frame i is drawn once per
frame (:func:`enforcement`) from the frame's own rng, so every attempt at frame i enforces the same ones,
and the share of frames that enforce it is p in expectation.

Attempts: attempt k of frame i draws from ``SeedSequence([seed, i, k])`` (:func:`attempt_seed`), so a kept
frame is still a pure function of (spec, seed, i).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simgen.errors import RequireUnmet, SpecError
from simgen.frame import ObjectAnnotation
from simgen.sampling import rng_for
from simgen.scenarios.models import COMPARISONS, Constraint, Require, Select
from simgen.writers.coco import FLOAT_DECIMALS, rounded

#: Luma weights (ITU-R BT.601) of R, G and B.
LUMA = (0.299, 0.587, 0.114)


# --- labels -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectLabel:
    """The labels of one object in one frame that constraints can read (see the module docstring)."""

    uid: str
    category: str
    tags: frozenset[str]
    visible_px: int
    visibility: float | None
    truncation: float
    box_w: float
    box_h: float
    box_area: float
    distance: float
    border_distance: float | None

    def get(self, attribute: str) -> float | None:
        """The value of an attribute of :data:`~simgen.scenarios.models.OBJECT_ATTRIBUTES`."""
        return getattr(self, attribute)


@dataclass(frozen=True)
class FrameLabels:
    """What constraints see of one frame.

    Attributes:
        width: Image width, px.
        height: Image height, px.
        objects: One entry per annotated object.
        brightness: Mean luma in [0, 1], or None when the image was not given.
        contrast: Standard deviation of luma, or None when the image was not given.
        frame_index: The frame, when known.
    """

    width: int
    height: int
    objects: tuple[ObjectLabel, ...]
    brightness: float | None = None
    contrast: float | None = None
    frame_index: int | None = None


def luma_stats(rgb: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of an RGB uint8 image's luma, in [0, 1].

    Raises:
        ValueError: Not an (H, W, 3) or (H, W, 4) uint8 array.
    """
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4) or a.size == 0:
        raise ValueError(f"rgb must be a uint8 array (H, W, 3), got {a.dtype} {a.shape}")
    luma = a[..., :3].astype(np.float64) @ np.asarray(LUMA) / 255.0
    return float(luma.mean()), float(luma.std())


def _object_label(
    *,
    uid: str,
    category: str,
    tags: frozenset[str],
    bbox: Sequence[float],
    visible_px: int,
    visibility: float | None,
    truncation: float,
    T_cam_obj: np.ndarray,
    center: Sequence[float],
    width: int,
    height: int,
) -> ObjectLabel:
    """The one place an :class:`ObjectLabel` is computed, from values rounded as COCO stores them."""
    x, y, w, h = (float(v) for v in bbox)
    T = np.asarray(T_cam_obj, dtype=np.float64)
    c = T[:3, :3] @ np.asarray(center, dtype=np.float64) + T[:3, 3]
    border = min(x, y, width - (x + w), height - (y + h)) if visible_px > 0 else None
    return ObjectLabel(
        uid=uid,
        category=category,
        tags=tags,
        visible_px=int(visible_px),
        visibility=visibility,
        truncation=float(truncation),
        box_w=w,
        box_h=h,
        box_area=w * h,
        distance=float(np.linalg.norm(c)),
        border_distance=border,
    )


def _round_array(values: Any) -> np.ndarray:
    # the COCO writer's rounding of arrays (simgen.writers.coco._floats): np.round, then -0.0 -> 0.0
    return np.round(np.asarray(values, dtype=np.float64), FLOAT_DECIMALS) + 0.0


def _tags_of(uid: str, tags: Mapping[str, Iterable[str]] | None) -> frozenset[str]:
    group = uid.split("/", 1)[0]
    return frozenset((group, *(tags.get(group, ()) if tags else ())))


def group_tags(spec: Any) -> dict[str, tuple[str, ...]]:
    """Object group and fixture name -> its tags (the name included), from a spec model or its plain dict.

    Objects are named ``<group>/<n>`` and fixture links ``<fixture>/<link>``, so the part before the first
    ``/`` of an object's uid finds its tags.
    """
    data = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else spec
    found: dict[str, tuple[str, ...]] = {}
    for section in ("fixtures", "objects"):
        for entry in data.get(section) or ():
            found[str(entry["name"])] = (str(entry["name"]), *(str(t) for t in entry.get("tags") or ()))
    return found


def frame_labels_from_annotations(
    annotations: Sequence[ObjectAnnotation],
    width: int,
    height: int,
    *,
    rgb: np.ndarray | None = None,
    tags: Mapping[str, Iterable[str]] | None = None,
    frame_index: int | None = None,
) -> FrameLabels:
    """A rendered frame's labels, from :func:`simgen.labels.annotate`'s output (no COCO record needed).

    Values are rounded as :func:`simgen.writers.coco.annotation_record` rounds them, so the result equals
    :func:`frame_labels_from_coco` of the frame's written record.

    Args:
        annotations: The frame's annotations.
        width: Image width, px.
        height: Image height, px.
        rgb: The image as written (after sensor effects), for brightness and contrast; None to skip them.
        tags: Group/fixture name -> tags (:func:`group_tags`), for ``select.tag``.
        frame_index: The frame, for messages.
    """
    objects = []
    for ann in annotations:
        bbox = ann.bbox_visible if ann.bbox_visible is not None else (0.0, 0.0, 0.0, 0.0)
        objects.append(
            _object_label(
                uid=ann.uid,
                category=ann.category,
                tags=_tags_of(ann.uid, tags),
                bbox=_round_array(bbox).tolist(),
                visible_px=int(ann.px_count_visible),
                visibility=None if ann.visibility is None else rounded(ann.visibility),
                truncation=rounded(ann.truncation),
                T_cam_obj=_round_array(ann.T_cam_obj),
                center=_round_array(ann.bbox3d_center).tolist(),
                width=int(width),
                height=int(height),
            )
        )
    b, c = luma_stats(rgb) if rgb is not None else (None, None)
    return FrameLabels(int(width), int(height), tuple(objects), b, c, frame_index)


def frame_labels_from_coco(
    image_record: Mapping[str, Any],
    annotations: Iterable[Mapping[str, Any]],
    categories: Mapping[int, str] | Iterable[Mapping[str, Any]],
    *,
    rgb: np.ndarray | None = None,
    tags: Mapping[str, Iterable[str]] | None = None,
) -> FrameLabels:
    """A frame's labels from the COCO simgen wrote: its image record and its annotations.

    Args:
        image_record: The ``images`` entry (``width``, ``height``, ``frame_index``).
        annotations: The frame's ``annotations`` entries.
        categories: COCO ``categories`` (a list of ``{id, name}``), or id -> name.
        rgb: The image (``file_name``), for brightness and contrast; None to skip them.
        tags: Group/fixture name -> tags (:func:`group_tags` of ``dataset.json``'s spec), for ``select.tag``.

    Raises:
        ValueError: An annotation names an unknown category id or lacks a field simgen writes.
    """
    names = dict(categories) if isinstance(categories, Mapping) else {int(c["id"]): str(c["name"]) for c in categories}
    width, height = int(image_record["width"]), int(image_record["height"])
    objects = []
    for ann in annotations:
        cid = int(ann["category_id"])
        if cid not in names:
            raise ValueError(f"annotation of '{ann.get('uid')}': unknown category_id {cid}")
        try:
            objects.append(
                _object_label(
                    uid=str(ann["uid"]),
                    category=names[cid],
                    tags=_tags_of(str(ann["uid"]), tags),
                    bbox=ann["bbox"],
                    visible_px=int(ann["px_count_visible"]),
                    visibility=None if ann.get("visibility") is None else float(ann["visibility"]),
                    truncation=float(ann["truncation"]),
                    T_cam_obj=np.asarray(ann["pose"]["T_cam_obj"], dtype=np.float64),
                    center=ann["bbox3d_center_m"],
                    width=width,
                    height=height,
                )
            )
        except KeyError as exc:
            raise ValueError(f"annotation of '{ann.get('uid')}' lacks {exc}; is this a simgen COCO file?") from None
    b, c = luma_stats(rgb) if rgb is not None else (None, None)
    frame = image_record.get("frame_index")
    return FrameLabels(width, height, tuple(objects), b, c, None if frame is None else int(frame))


# --- evaluation ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConstraintResult:
    """One constraint on one attempt.

    Attributes:
        name: The constraint's name.
        ok: Whether its comparison holds (computed even when not enforced).
        value: The statistic (a count, a float, or None when nothing was selected for min/max/mean).
        enforced: Whether it is enforced on this frame (always, unless it is soft).
        gap: How far the value is from holding (0 when it holds; inf when there is no value).
    """

    name: str
    ok: bool
    value: float | int | None
    enforced: bool
    gap: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether it lets the frame through: it holds, or it is not enforced on this frame."""
        return self.ok or not self.enforced

    def to_json(self) -> dict[str, Any]:
        """Plain data (for the manifest)."""
        return {"name": self.name, "ok": self.ok, "value": self.value, "enforced": self.enforced}


def _passes(value: float, key: str, bound: float) -> bool:
    if key == "ge":
        return value >= bound
    if key == "gt":
        return value > bound
    if key == "le":
        return value <= bound
    if key == "lt":
        return value < bound
    return value == bound


def compare(value: float | None, comparisons: Sequence[tuple[str, float]]) -> tuple[bool, float]:
    """Whether ``value`` meets every ``(key, bound)`` comparison, and by how much it misses (0 when it meets)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False, math.inf
    ok = all(_passes(value, k, b) for k, b in comparisons)
    if ok:
        return True, 0.0
    gap = 0.0
    for key, bound in comparisons:
        if (key in ("ge", "gt") and value <= bound) or (key in ("le", "lt") and value >= bound) or key == "eq":
            gap += abs(value - bound)
    return False, gap


def _selected(select: Select, objects: Sequence[ObjectLabel], where: str) -> list[ObjectLabel]:
    filters = [(a, r.comparisons()) for a, r in select.filters()]
    cats = set(select.category) if select.category else None
    tags = set(select.tag) if select.tag else None
    out = []
    for obj in objects:
        if cats is not None and obj.category not in cats:
            continue
        if tags is not None and not (tags & obj.tags):
            continue
        keep = True
        for attribute, comparisons in filters:
            value = obj.get(attribute)
            if value is None and attribute == "visibility":
                raise _no_visibility(f"{where}.select.visibility")
            if not compare(value, comparisons)[0]:
                keep = False
                break
        if keep:
            out.append(obj)
    return out


def _no_visibility(path: str) -> SpecError:
    return SpecError("the frame's labels have no visibility fractions; set labels.visibility: true", path=path)


def statistic(constraint: Constraint, labels: FrameLabels, where: str = "require") -> float | int | None:
    """The value a constraint compares, on one frame.

    Raises:
        SpecError: The constraint needs what the labels lack: the image (brightness, contrast) or visibility.
    """
    if constraint.stat in ("brightness", "contrast"):
        value = labels.brightness if constraint.stat == "brightness" else labels.contrast
        if value is None:
            raise SpecError(f"'{constraint.stat}' needs the frame's image, which was not given", path=f"{where}.stat")
        return value
    chosen = _selected(constraint.select, labels.objects, where)
    if constraint.stat == "count":
        return len(chosen)
    assert constraint.of is not None  # the model requires it for min, max and mean
    values = [v for o in chosen if (v := o.get(constraint.of)) is not None]
    if constraint.of == "visibility" and len(values) < len(chosen):
        raise _no_visibility(f"{where}.of")
    if not values:
        return None
    if constraint.stat == "min":
        return min(values)
    if constraint.stat == "max":
        return max(values)
    return math.fsum(values) / len(values)


def enforcement(constraints: Sequence[Constraint], rng: np.random.Generator) -> tuple[bool, ...]:
    """Which constraints a frame enforces: those whose uniform draw falls below their probability.

    One draw is made per constraint, hard ones too, so changing one constraint's probability never changes
    which others are enforced.

    Args:
        constraints: The constraints, in order.
        rng: The frame's own generator (:func:`frame_require_rng`), the same for every attempt at the frame.
    """
    draws = rng.random(len(constraints))
    return tuple(bool(c.probability >= 1.0 or u < c.probability) for c, u in zip(constraints, draws, strict=True))


def evaluate(
    constraints: Sequence[Constraint], labels: FrameLabels, rng: np.random.Generator
) -> list[ConstraintResult]:
    """Check every constraint on a frame's labels.

    Args:
        constraints: The constraints (``Require.constraints``).
        labels: The frame's labels.
        rng: The frame's own generator (:func:`frame_require_rng`), which decides the soft constraints; pass a
            fresh one for each attempt, so every attempt enforces the same constraints.

    Returns:
        One result per constraint, in order. The frame is accepted when every result ``passed``.
    """
    enforced = enforcement(constraints, rng)
    return evaluate_enforced(constraints, labels, enforced)


def evaluate_enforced(
    constraints: Sequence[Constraint], labels: FrameLabels, enforced: Sequence[bool]
) -> list[ConstraintResult]:
    """:func:`evaluate` with the enforcement already drawn (:func:`enforcement`)."""
    results = []
    for i, (c, on) in enumerate(zip(constraints, enforced, strict=True)):
        value = statistic(c, labels, where=f"require[{i}]")
        ok, gap = compare(value, c.comparisons())
        results.append(ConstraintResult(c.name, ok, value, bool(on), gap))
    return results


def accepted(results: Iterable[ConstraintResult]) -> bool:
    """Whether a frame with these results is kept."""
    return all(r.passed for r in results)


def needs(constraints: Sequence[Constraint]) -> dict[str, bool]:
    """What the labels must hold for these constraints: ``objects``, ``visibility`` fractions, the ``rgb``."""
    attributes = set().union(*(c.attributes() for c in constraints)) if constraints else set()
    return {
        "objects": any(c.stat not in ("brightness", "contrast") for c in constraints),
        "visibility": "visibility" in attributes,
        "rgb": any(c.stat in ("brightness", "contrast") for c in constraints),
    }


def describe(constraint: Constraint) -> str:
    """What a constraint needs, in words: ``count of mug with visibility <= 0.3 >= 1``."""
    what = (
        constraint.stat
        if constraint.stat in ("count", "brightness", "contrast")
        else f"{constraint.stat} {constraint.of}"
    )
    sel = constraint.select
    scope = []
    if sel.category:
        scope.append("category " + "|".join(sel.category))
    if sel.tag:
        scope.append("tag " + "|".join(sel.tag))
    scope += [f"{a} " + " and ".join(f"{_OPS[k]} {v:g}" for k, v in r.comparisons()) for a, r in sel.filters()]
    where = f" of objects with {', '.join(scope)}" if scope else ""
    return f"{what}{where} " + " and ".join(f"{_OPS[k]} {v:g}" for k, v in constraint.comparisons())


_OPS = dict(zip(COMPARISONS, (">=", ">", "<=", "<", "=="), strict=True))


# --- seeds --------------------------------------------------------------------------------------------


def attempt_seed(seed: int, frame_index: int, attempt: int) -> int:
    """The seed that attempt ``attempt`` of frame ``frame_index`` draws from.

    Attempt 0 is the dataset seed itself, so a frame accepted at once is the frame a plain run renders;
    attempt k > 0 is a 63-bit integer from ``SeedSequence([seed, frame_index, k])``. The engine derives its
    usual streams from it (``rng_for(attempt_seed(...), "frame", i, ...)``).
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if attempt == 0:
        return int(seed)
    state = np.random.SeedSequence([int(seed), int(frame_index), int(attempt)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def frame_require_rng(seed: int, frame_index: int) -> np.random.Generator:
    """The generator that decides frame ``frame_index``'s soft constraints (the same for all its attempts)."""
    return rng_for(seed, "scenario", "require", frame_index)


# --- rejection statistics -------------------------------------------------------------------------------


@dataclass
class ConstraintTally:
    """Counts of one constraint over attempts (mergeable across shards)."""

    attempts: int = 0  # attempts on which it was enforced
    held: int = 0  # of those, attempts on which it held
    skipped: int = 0  # attempts on which it was not enforced (soft)
    closest: float | int | None = None  # value of the enforced attempt closest to holding
    closest_gap: float = math.inf

    def rate(self) -> float | None:
        """Acceptance rate: held / attempts (None before any enforced attempt)."""
        return self.held / self.attempts if self.attempts else None

    def add(self, r: ConstraintResult) -> None:
        """Count one attempt's result."""
        if not r.enforced:
            self.skipped += 1
            return
        self.attempts += 1
        self.held += int(r.ok)
        if (r.gap, _order(r.value)) < (self.closest_gap, _order(self.closest)):
            self.closest, self.closest_gap = r.value, r.gap

    def merge(self, other: ConstraintTally) -> None:
        """Add another tally (order-independent: the closest value is the one of least gap, then least value)."""
        self.attempts += other.attempts
        self.held += other.held
        self.skipped += other.skipped
        if (other.closest_gap, _order(other.closest)) < (self.closest_gap, _order(self.closest)):
            self.closest, self.closest_gap = other.closest, other.closest_gap


def _order(value: float | int | None) -> float:
    return math.inf if value is None else float(value)


@dataclass
class RejectionStats:
    """Rejection counts of a run (or a shard): per constraint and per frame, mergeable and JSON-able.

    Attributes:
        tallies: Constraint name -> its tally, in the scenario's order.
        frames: Frames kept.
        attempts: Attempts made in all (kept frames' and rejected ones).
        attempts_hist: Attempts needed -> frames that needed that many.
    """

    tallies: dict[str, ConstraintTally] = field(default_factory=dict)
    frames: int = 0
    attempts: int = 0
    attempts_hist: dict[int, int] = field(default_factory=dict)

    @classmethod
    def for_constraints(cls, constraints: Sequence[Constraint]) -> RejectionStats:
        """Empty stats with one tally per constraint."""
        return cls({c.name: ConstraintTally() for c in constraints})

    def add_attempt(self, results: Sequence[ConstraintResult]) -> bool:
        """Count one attempt; returns whether the frame is accepted."""
        self.attempts += 1
        for r in results:
            self.tallies.setdefault(r.name, ConstraintTally()).add(r)
        return accepted(results)

    def add_frame(self, attempts: int) -> None:
        """Count a kept frame that took ``attempts`` attempts."""
        self.frames += 1
        self.attempts_hist[attempts] = self.attempts_hist.get(attempts, 0) + 1

    def add_log(self, log: Sequence[Sequence[ConstraintResult]]) -> None:
        """Count one frame's attempts, as :func:`run_attempts` logs them (kept when the last was accepted)."""
        for results in log:
            self.add_attempt(results)
        if log and accepted(log[-1]):
            self.add_frame(len(log))

    def merge(self, other: RejectionStats) -> None:
        """Add another shard's stats."""
        for name, tally in other.tallies.items():
            self.tallies.setdefault(name, ConstraintTally()).merge(tally)
        self.frames += other.frames
        self.attempts += other.attempts
        for n, count in other.attempts_hist.items():
            self.attempts_hist[n] = self.attempts_hist.get(n, 0) + count

    def to_json(self) -> dict[str, Any]:
        """Plain data for the manifest and ``dataset.json``."""
        return {
            "frames": self.frames,
            "attempts": self.attempts,
            "acceptance_rate": self.frames / self.attempts if self.attempts else None,
            "attempts_per_frame": {str(k): v for k, v in sorted(self.attempts_hist.items())},
            "constraints": {
                name: {
                    "attempts": t.attempts,
                    "held": t.held,
                    "rejected": t.attempts - t.held,
                    "not_enforced": t.skipped,
                    "acceptance_rate": t.rate(),
                    "closest_value": t.closest,
                    "closest_gap": t.closest_gap if math.isfinite(t.closest_gap) else None,
                }
                for name, t in self.tallies.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RejectionStats:
        """The inverse of :meth:`to_json` (for merging shards' files)."""
        tallies = {}
        for name, d in data.get("constraints", {}).items():
            gap = d.get("closest_gap")
            tallies[name] = ConstraintTally(
                int(d["attempts"]),
                int(d["held"]),
                int(d["not_enforced"]),
                d.get("closest_value"),
                math.inf if gap is None else float(gap),
            )
        hist = {int(k): int(v) for k, v in data.get("attempts_per_frame", {}).items()}
        return cls(tallies, int(data.get("frames", 0)), int(data.get("attempts", 0)), hist)


def unmet_error(
    constraints: Sequence[Constraint], frame_index: int, attempts: Sequence[Sequence[ConstraintResult]]
) -> RequireUnmet:
    """The error for a frame whose attempts all failed: each constraint that failed, with its closest value.

    Args:
        constraints: The scenario's constraints.
        frame_index: The frame.
        attempts: Every attempt's results (``max_attempts`` of them).
    """
    by_name = {c.name: c for c in constraints}
    unmet = []
    for name in by_name:
        tally = ConstraintTally()
        for results in attempts:
            for r in results:
                if r.name == name:
                    tally.add(r)
        if tally.attempts > tally.held:
            unmet.append((name, tally.attempts - tally.held, tally.closest, describe(by_name[name])))
    return RequireUnmet(frame_index, len(attempts), unmet)


def run_attempts(
    require: Require, seed: int, frame_index: int, render: Callable[[int, int], tuple[Any, FrameLabels]]
) -> tuple[Any, list[ConstraintResult], int, list[list[ConstraintResult]]]:
    """The rejection loop for one frame, around a render callback: the reference the engine follows.

    ``render(seed_k, k)`` renders attempt k with seed ``attempt_seed(seed, frame_index, k)`` and returns
    ``(frame, labels)``. Attempts stop at the first accepted one or at ``require.max_attempts``.

    Returns:
        ``(frame, results, attempts made, every attempt's results)`` of the accepted attempt.

    Raises:
        RequireUnmet: No attempt was accepted.
    """
    log: list[list[ConstraintResult]] = []
    for k in range(require.max_attempts):
        frame, labels = render(attempt_seed(seed, frame_index, k), k)
        results = evaluate(require.constraints, labels, frame_require_rng(seed, frame_index))
        log.append(results)
        if accepted(results):
            return frame, results, k + 1, log
    raise unmet_error(require.constraints, frame_index, log)
