"""The label-preservation check: does a refined image still show every labeled object where its label says?

Pure numpy and OpenCV (no torch), so it runs anywhere and can audit any image-to-image step, not only
diffusion.

The structure signal is an oriented edge map: Canny edges plus the gradient orientation at every pixel,
quantized into ``orientation_bins`` bins over 180 degrees. Two edge pixels *match* when they lie within
``tolerance_px`` of each other and their orientations differ by at most one bin (about +-34 degrees with
8 bins), so random texture edges that the refinement adds rarely pass for an object's outline.

Per object (given as its visible mask and, optionally, its box):

* **boundary support** (the gate): take the pixels of the mask's outline that the *render* shows as an
  edge (the evidenced outline; outline pixels between two same-coloured objects or on the image border
  carry no evidence and are skipped), and measure the fraction that the *refined* image still shows as a
  matching edge. The render itself scores exactly 1.0. A shifted or erased object scores near 0, because
  the label's outline is no longer supported by the image.
* **box edge F1**: the symmetric F1 of matching edges, render vs refined, inside the box grown by the
  tolerance. It tells whether the structure inside the box survived; its gate ``min_box_f1`` is off (0)
  by default because realism refinement legitimately adds texture inside objects.

Per frame: every checked object must pass, the pooled boundary support of all objects must reach
``min_frame_score``, and the whole-image edge F1 must reach ``min_frame_edge_f1``.

Objects whose evidenced outline has fewer than ``min_support_px`` pixels (tiny, or the same colour as
what surrounds them) cannot be verified from edges; they are reported as ``unverified`` and do not fail
the frame unless ``require_verified`` is set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

__all__ = ["CheckConfig", "EdgeStructure", "FrameCheck", "ObjectCheck", "check_frame", "edge_structure"]

Status = Literal["pass", "fail", "unverified"]
_BORDER_PX = 2
_FAR = np.float32(1e6)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
_SQUARE5 = np.ones((5, 5), np.uint8)


@dataclass(frozen=True)
class CheckConfig:
    """Thresholds and edge-detector settings of the label-preservation check.

    Attributes:
        tolerance_px: Largest distance, in pixels, at which two edges still match.
        min_object_score: Boundary support an object needs to pass (0..1).
        min_box_f1: Edge F1 inside the object's box an object needs to pass (0 = not gated).
        min_frame_score: Pooled chance-corrected outline score over all checked objects a frame needs (0..1).
        min_frame_edge_f1: Whole-image edge F1 a frame needs (0 = not gated).
        min_support_px: Fewest evidenced outline pixels for an object to be checked at all.
        require_verified: Fail objects that cannot be verified instead of reporting them as unverified.
        occlusion_margin: With depth, an outline pixel counts as occluded when a pixel next to it is nearer by
            more than this fraction of its depth.
        search_px: How far, in pixels, to look for the object displaced, and for the chance level of support.
        max_shift_gain: An object fails as displaced when its outline is supported better, by more than this,
            at some offset farther than ``tolerance_px`` than in place: the image shows it elsewhere.
        max_chance: An object fails when the refined image supports its outline this well even at random offsets
            nearby: edges everywhere (noise, heavy clutter) can vouch for any outline, so none is verified.
        canny_low: Canny's lower threshold (on the blurred image, max over colour channels).
        canny_high: Canny's upper threshold.
        refined_threshold_scale: Canny thresholds on the refined image are the render's times this. Below 1,
            an outline the refinement kept but softened still counts; an erased one has no edge at any threshold.
        blur_sigma: Gaussian blur before edge detection, in pixels (0 = none).
        orientation_bins: Orientation bins over 180 degrees; matching edges may differ by one bin.
    """

    tolerance_px: float = 3.0
    min_object_score: float = 0.5
    min_box_f1: float = 0.0
    min_frame_score: float = 0.7
    min_frame_edge_f1: float = 0.0
    min_support_px: int = 12
    require_verified: bool = False
    occlusion_margin: float = 0.01
    search_px: int = 12
    max_shift_gain: float = 0.25
    max_chance: float = 0.9
    canny_low: int = 50
    canny_high: int = 120
    refined_threshold_scale: float = 0.5
    blur_sigma: float = 1.0
    orientation_bins: int = 8

    def __post_init__(self) -> None:
        for name in ("min_object_score", "min_box_f1", "min_frame_score", "min_frame_edge_f1", "max_chance"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a number in [0, 1], got {value}")
        if self.tolerance_px < 0:
            raise ValueError(f"tolerance_px: expected >= 0, got {self.tolerance_px}")
        if self.min_support_px < 1:
            raise ValueError(f"min_support_px: expected >= 1, got {self.min_support_px}")
        if self.search_px <= 2 * self.tolerance_px + 1:
            raise ValueError(
                f"search_px: expected more than 2 * tolerance_px + 1 = {2 * self.tolerance_px + 1}, "
                f"got {self.search_px}"
            )
        if not 0.0 < self.refined_threshold_scale <= 1.0:
            raise ValueError(
                f"refined_threshold_scale: expected a number in (0, 1], got {self.refined_threshold_scale}"
            )
        if self.orientation_bins < 2:
            raise ValueError(f"orientation_bins: expected >= 2, got {self.orientation_bins}")
        if not 0 <= self.canny_low <= self.canny_high:
            raise ValueError(
                f"canny_low/canny_high: expected 0 <= low <= high, got {self.canny_low}, {self.canny_high}"
            )

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON-serializable dict."""
        return asdict(self)


@dataclass
class EdgeStructure:
    """The oriented edge map of one image.

    Attributes:
        edges: ``(H, W)`` bool, Canny edges.
        orientation: ``(H, W)`` int, the gradient orientation bin of every pixel.
        distance: ``(bins, H, W)`` float32: distance from each pixel to the nearest edge whose orientation
            is within one bin of bin k.
        strong: ``(H, W)`` bool, the edges at the unscaled thresholds (``edges`` itself when the scale is 1).
    """

    edges: np.ndarray
    orientation: np.ndarray
    distance: np.ndarray
    strong: np.ndarray


@dataclass
class ObjectCheck:
    """The check of one labeled object.

    Attributes:
        index: Position of the object in the list given to :func:`check_frame`.
        status: ``pass``, ``fail`` or ``unverified``.
        score: Chance-corrected outline support in [0, 1] (the gated score): 1 when the refined image shows
            the whole evidenced outline in place, 0 when it shows it no better than at random offsets
            nearby (erased, moved, or drowned in noise). None when unverified.
        support: Raw fraction of the evidenced outline the refined image still shows, None when unverified.
        chance: The support the refined image gives the outline at offsets farther than ``2 * tolerance + 1``
            (median), None when unverified.
        box_f1: Edge F1 inside the box, None when the box holds no edges in either image.
        support_px: Evidenced outline pixels the scores are computed on.
        offset: ``(dx, dy)`` in pixels at which the refined image supports the outline best, when that is
            clearly away from the label (else ``(0, 0)``).
        offset_support: Raw support at ``offset``.
    """

    index: int
    status: Status
    score: float | None
    support: float | None
    chance: float | None
    box_f1: float | None
    support_px: int
    offset: tuple[int, int] = (0, 0)
    offset_support: float | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-serializable form, scores rounded to 4 decimals."""
        return {
            "status": self.status,
            "score": _round(self.score),
            "support": _round(self.support),
            "chance": _round(self.chance),
            "box_f1": _round(self.box_f1),
            "support_px": self.support_px,
            "offset": list(self.offset),
            "offset_support": _round(self.offset_support),
        }


@dataclass
class FrameCheck:
    """The check of one frame.

    Attributes:
        passed: True when every label still matches the refined image.
        objects: One result per object, in input order.
        frame_score: Pooled chance-corrected outline score over all checked objects, None when none was checked.
        edge_f1: Whole-image edge F1, render vs refined.
        reasons: Why the frame failed, empty when it passed.
    """

    passed: bool
    objects: list[ObjectCheck]
    frame_score: float | None
    edge_f1: float | None
    reasons: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Objects per status."""
        out = {"pass": 0, "fail": 0, "unverified": 0}
        for o in self.objects:
            out[o.status] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-serializable summary of the frame (per-object results are left to the caller)."""
        return {
            "passed": self.passed,
            "frame_score": _round(self.frame_score),
            "edge_f1": _round(self.edge_f1),
            "objects": self.counts,
            "reasons": list(self.reasons),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _as_rgb(image: np.ndarray, name: str) -> np.ndarray:
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"{name}: expected an (H, W, 3) image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8, got {image.dtype}")
    return np.ascontiguousarray(image[:, :, :3])


def edge_structure(
    image: np.ndarray, config: CheckConfig | None = None, *, threshold_scale: float = 1.0
) -> EdgeStructure:
    """Compute the oriented edge map of an image.

    Args:
        image: ``(H, W, 3)`` or ``(H, W)`` uint8.
        config: Edge-detector settings; defaults to ``CheckConfig()``.
        threshold_scale: Multiplies the Canny thresholds.

    Returns:
        The edges, the orientation bin of every pixel and per-bin distance maps.
    """
    cfg = config or CheckConfig()
    img = _as_rgb(image, "image")
    if cfg.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), cfg.blur_sigma)
    chans = [np.ascontiguousarray(img[:, :, c]) for c in range(img.shape[2])]

    # Canny on each channel, OR-ed: colour boundaries of equal brightness still count.
    def canny(scale: float) -> np.ndarray:
        out = np.zeros(img.shape[:2], dtype=bool)
        for c in chans:
            out |= cv2.Canny(c, cfg.canny_low * scale, cfg.canny_high * scale, L2gradient=True) > 0
        return out

    edges = canny(threshold_scale)
    strong = edges if threshold_scale == 1.0 else canny(1.0)
    gx = np.stack([cv2.Sobel(c, cv2.CV_32F, 1, 0, ksize=3) for c in chans])
    gy = np.stack([cv2.Sobel(c, cv2.CV_32F, 0, 1, ksize=3) for c in chans])
    strongest = np.argmax(gx * gx + gy * gy, axis=0)[None]
    gx = np.take_along_axis(gx, strongest, 0)[0]
    gy = np.take_along_axis(gy, strongest, 0)[0]
    theta = np.mod(np.arctan2(gy, gx), np.pi)  # an edge and its reverse have the same orientation
    bins = cfg.orientation_bins
    orientation = np.minimum((theta / np.pi * bins).astype(np.int64), bins - 1)
    distance = np.empty((bins, *edges.shape), dtype=np.float32)
    for k in range(bins):
        diff = np.abs(orientation - k)
        near = edges & (np.minimum(diff, bins - diff) <= 1)
        if near.any():
            distance[k] = cv2.distanceTransform((~near).astype(np.uint8), cv2.DIST_L2, 3)
        else:
            distance[k] = _FAR
    return EdgeStructure(edges, orientation, distance, strong)


def _matched(edges_at: np.ndarray, bins_at: np.ndarray, other: EdgeStructure, tol: float) -> np.ndarray:
    ys, xs = edges_at
    return other.distance[bins_at, ys, xs] <= tol


def _edge_points(edges: np.ndarray, region: tuple[slice, slice] | None) -> tuple[np.ndarray, np.ndarray]:
    if region is None:
        return np.nonzero(edges)
    ys, xs = np.nonzero(edges[region])
    return ys + region[0].start, xs + region[1].start


def _edge_f1(a: EdgeStructure, b: EdgeStructure, region: tuple[slice, slice] | None, tol: float) -> float | None:
    """F1 of oriented edge matches between two edge maps, optionally inside a region.

    Recall: ``a``'s edges matched by any of ``b``'s (at ``b``'s possibly lowered thresholds); precision:
    ``b``'s edges at the unscaled thresholds matched by ``a``'s. Identical images score 1.
    """
    pa, pb = _edge_points(a.edges, region), _edge_points(b.strong, region)
    na, nb = len(pa[0]), len(pb[0])
    if na == 0 and nb == 0:
        return None
    if na == 0 or nb == 0:
        return 0.0
    recall = float((b.distance[a.orientation[pa], pa[0], pa[1]] <= tol).mean())
    precision = float((a.distance[b.orientation[pb], pb[0], pb[1]] <= tol).mean())
    return 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)


def _owned_outline(
    mask: np.ndarray, others: np.ndarray, depth: np.ndarray | None, margin: float, tol: float
) -> np.ndarray:
    """Outline pixels of ``mask`` that only this object's silhouette can explain.

    Without depth, outline pixels within ``tol + 1`` pixels of another labeled object are left out: the edge
    there could belong to either, and the other object's edge would vouch for this one even if it were
    erased. With depth, only other objects in front of this one (nearer than its median depth) count, and
    outline pixels next to anything nearer by more than ``margin`` (relative) are left out too: an
    occluder, labeled or not, owns that edge.
    """
    m = mask.astype(np.uint8)
    outline = (m > 0) & (cv2.erode(m, _CROSS, borderType=cv2.BORDER_REPLICATE) == 0)
    if depth is not None:
        d = depth.astype(np.float32)
        own = d[mask & (d > 0)]
        if own.size:
            others = others & (d > 0) & (d < np.float32(np.median(own) * (1.0 - margin)))
        outside = np.where(mask | (d <= 0), np.float32(np.inf), d)
        nearest_outside = cv2.erode(outside, _SQUARE5, borderType=cv2.BORDER_REPLICATE)
        outline &= ~(nearest_outside < d * np.float32(1.0 - margin))
    if others.any():
        r = int(np.ceil(tol)) + 1
        near_others = cv2.dilate(others.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
        outline &= ~near_others
    return outline


def _support_at(
    oy: np.ndarray, ox: np.ndarray, k: np.ndarray, b: EdgeStructure, dy: np.ndarray, dx: np.ndarray, tol: float
) -> np.ndarray:
    """Fraction of outline pixels (oy, ox) with a matching refined edge, for each offset (dy, dx)."""
    h, w = b.edges.shape
    yy = np.clip(oy[None, :] + dy[:, None], 0, h - 1)
    xx = np.clip(ox[None, :] + dx[:, None], 0, w - 1)
    return (b.distance[k[None, :], yy, xx] <= tol).mean(axis=1)


@dataclass
class _Offsets:
    chance: float
    offset: tuple[int, int]
    offset_support: float


def _search(oy: np.ndarray, ox: np.ndarray, k: np.ndarray, b: EdgeStructure, tol: float, search: int) -> _Offsets:
    """Support of an outline at offsets within ``search`` px: the chance level, and the best displaced fit.

    The chance level is the median support at offsets farther than ``2 * tol + 1``: what edges of the
    refined image give the outline anywhere nearby, not just in place (near 1 for noise or dense texture).
    The best offset comes from a coarse grid at tolerance ``tol``, ties settled and refined to one pixel
    by the support at a one-pixel tolerance.
    """
    step = max(1, int(np.ceil(tol)) // 2 + 1)
    r = np.arange(-search, search + 1, step)
    dy, dx = (g.ravel() for g in np.meshgrid(r, r, indexing="ij"))
    loose = _support_at(oy, ox, k, b, dy, dx, tol)
    far = np.hypot(dy, dx) > 2 * tol + 1
    chance = float(np.median(loose[far])) if far.any() else 0.0
    tight = _support_at(oy, ox, k, b, dy, dx, 1.0)
    best = int(np.lexsort((tight, loose))[-1])
    fine = np.arange(-(step - 1), step)
    fy, fx = (g.ravel() for g in np.meshgrid(fine + dy[best], fine + dx[best], indexing="ij"))
    keep = (np.abs(fy) <= search) & (np.abs(fx) <= search)
    fy, fx = fy[keep], fx[keep]
    f = int(np.argmax(_support_at(oy, ox, k, b, fy, fx, 1.0)))
    offset = (int(fx[f]), int(fy[f]))
    at = float(_support_at(oy, ox, k, b, fy[f : f + 1], fx[f : f + 1], tol)[0])
    return _Offsets(chance, offset, max(at, float(loose[best])))


def _corrected(kept: float, n: float, chance: float) -> float:
    """Chance-corrected support (like Cohen's kappa): 1 in place, 0 at the chance level, clipped at 0."""
    if n <= 0 or chance >= 1.0:
        return 0.0
    return max(0.0, (kept / n - chance) / (1.0 - chance))


def _grow(box: Sequence[float], shape: tuple[int, int], grow: float) -> tuple[slice, slice]:
    x, y, w, h = (float(v) for v in box)
    g = int(np.ceil(grow))
    x0, y0 = max(int(np.floor(x)) - g, 0), max(int(np.floor(y)) - g, 0)
    x1, y1 = min(int(np.ceil(x + w)) + g, shape[1]), min(int(np.ceil(y + h)) + g, shape[0])
    return slice(y0, max(y1, y0)), slice(x0, max(x1, x0))


def _mask_box(mask: np.ndarray) -> list[float] | None:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def check_frame(
    render: np.ndarray,
    refined: np.ndarray,
    masks: Sequence[np.ndarray],
    boxes: Sequence[Sequence[float] | None] | None = None,
    config: CheckConfig | None = None,
    *,
    depth: np.ndarray | None = None,
    render_structure: EdgeStructure | None = None,
) -> FrameCheck:
    """Check that a refined image still matches the render's labels.

    Args:
        render: The original render, ``(H, W, 3)`` uint8.
        refined: The refined image, same shape.
        masks: One ``(H, W)`` bool visible mask per labeled object.
        boxes: COCO ``[x, y, w, h]`` boxes, one per mask (None entries or None: taken from the masks).
        config: Thresholds; defaults to ``CheckConfig()``.
        depth: The render's ``(H, W)`` depth (any unit, 0 = no data). With it, an object's outline next to
            something nearer (an occluder, labeled or not) is left out as well.
        render_structure: The render's precomputed :func:`edge_structure`, to reuse across checks.

    Returns:
        Per-object and per-frame results.

    Raises:
        ValueError: Shapes that do not agree.
    """
    cfg = config or CheckConfig()
    render = _as_rgb(render, "render")
    refined = _as_rgb(refined, "refined")
    if render.shape != refined.shape:
        raise ValueError(f"refined: expected the render's shape {render.shape}, got {refined.shape}")
    if boxes is not None and len(boxes) != len(masks):
        raise ValueError(f"boxes: expected one per mask ({len(masks)}), got {len(boxes)}")
    shape = render.shape[:2]
    a = render_structure if render_structure is not None else edge_structure(render, cfg)
    b = edge_structure(refined, cfg, threshold_scale=cfg.refined_threshold_scale)
    tol = cfg.tolerance_px
    masks = [np.asarray(m, dtype=bool) for m in masks]
    for i, mask in enumerate(masks):
        if mask.shape != shape:
            raise ValueError(f"masks[{i}]: expected shape {shape}, got {mask.shape}")
    if depth is not None and depth.shape != shape:
        raise ValueError(f"depth: expected shape {shape}, got {depth.shape}")
    union = np.zeros(shape, dtype=np.uint16)
    for mask in masks:
        union += mask
    interior = np.zeros(shape, dtype=bool)
    interior[_BORDER_PX:-_BORDER_PX, _BORDER_PX:-_BORDER_PX] = True
    objects: list[ObjectCheck] = []
    pooled_num = pooled_den = 0.0
    for i, mask in enumerate(masks):
        box = boxes[i] if boxes is not None and boxes[i] is not None else _mask_box(mask)
        unverified: Status = "fail" if cfg.require_verified else "unverified"
        if box is None or not mask.any():
            objects.append(ObjectCheck(i, unverified, None, None, None, None, 0))
            continue
        ys, xs = _grow(box, shape, tol + 3)
        m = mask[ys, xs]
        others = (union[ys, xs] - m) > 0
        outline = _owned_outline(m, others, None if depth is None else depth[ys, xs], cfg.occlusion_margin, tol)
        outline &= interior[ys, xs]
        oy, ox = np.nonzero(outline)
        oy, ox = oy + ys.start, ox + xs.start
        k = a.orientation[oy, ox]
        ev = a.distance[k, oy, ox] <= tol
        oy, ox, k = oy[ev], ox[ev], k[ev]
        n = len(oy)
        box_f1 = _edge_f1(a, b, _grow(box, shape, tol + 1), tol)
        if n < cfg.min_support_px:
            objects.append(ObjectCheck(i, unverified, None, None, None, box_f1, n))
            continue
        kept = float((b.distance[k, oy, ox] <= tol).sum())
        found = _search(oy, ox, k, b, tol, cfg.search_px)
        support = kept / n
        score = _corrected(kept, n, found.chance)
        pooled_num += kept - n * found.chance
        pooled_den += n * (1.0 - found.chance)
        offset, offset_support = found.offset, found.offset_support
        if np.hypot(*offset) <= tol or offset_support <= support:
            offset, offset_support = (0, 0), support
        displaced = offset_support - support > cfg.max_shift_gain
        ok = (
            score >= cfg.min_object_score
            and not displaced
            and found.chance <= cfg.max_chance
            and (cfg.min_box_f1 <= 0 or (box_f1 or 0.0) >= cfg.min_box_f1)
        )
        objects.append(
            ObjectCheck(i, "pass" if ok else "fail", score, support, found.chance, box_f1, n, offset, offset_support)
        )
    frame_score: float | None = None
    if any(o.score is not None for o in objects):
        frame_score = max(0.0, pooled_num / pooled_den) if pooled_den > 0 else 0.0
    edge_f1 = _edge_f1(a, b, None, tol)
    reasons = []
    failed = [o.index for o in objects if o.status == "fail"]
    if failed:
        reasons.append(f"{len(failed)} object(s) no longer match their labels: {failed}")
    for o in objects:
        if o.status != "fail" or o.chance is None:
            continue
        if o.chance > cfg.max_chance:
            reasons.append(
                f"object {o.index}: edges all around it (chance support {o.chance:.2f}); outline unverifiable"
            )
        elif o.offset != (0, 0):
            reasons.append(f"object {o.index} appears displaced by {o.offset} px")
    if frame_score is not None and frame_score < cfg.min_frame_score:
        reasons.append(f"pooled outline score {frame_score:.3f} < {cfg.min_frame_score}")
    if cfg.min_frame_edge_f1 > 0 and (edge_f1 or 0.0) < cfg.min_frame_edge_f1:
        reasons.append(f"whole-image edge F1 {edge_f1 or 0.0:.3f} < {cfg.min_frame_edge_f1}")
    return FrameCheck(not reasons, objects, frame_score, edge_f1, reasons)
