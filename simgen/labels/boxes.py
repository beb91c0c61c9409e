"""Amodal 2D boxes and truncation from 3D boxes, a pose and a pinhole camera.

Two image coordinate systems meet here (see :mod:`simgen.frame`):

* ``K`` is OpenCV's: it maps a camera-frame point to ``(u, v)`` with the centre of pixel ``(col, row)``
  at ``(col, row)``;
* boxes are COCO's: continuous pixel-edge coordinates, pixel column ``i`` spanning ``[i, i + 1]``, so the
  same point lies at ``(u + 0.5, v + 0.5)`` (:data:`PIXEL_EDGE_OFFSET`).

:func:`project_extents` projects through ``K`` and returns pixel-edge extents; the visible box from the
mask is in pixel-edge coordinates too. A pixel is drawn when its centre is covered, so the visible box can
reach up to half a pixel beyond the exact projection of the object's outline. :func:`union_box` therefore
makes the amodal box the box around both the projected 3D box and the object's pixels: it always contains
the visible box.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

#: Default near plane (metres) that 3D boxes are clipped against before projection.
NEAR_M = 1e-3
#: Pixel-edge coordinate minus OpenCV pixel coordinate: the centre of pixel column ``i`` is ``i`` for ``K``
#: and ``i + 0.5`` for COCO boxes.
PIXEL_EDGE_OFFSET = 0.5

#: Unit box corners, (8, 3), each coordinate -0.5 or +0.5; corner k has bit 2-j set when axis j is +0.5.
_UNIT_CORNERS = np.array(list(itertools.product((-0.5, 0.5), repeat=3)), dtype=np.float64)
#: The 12 edges of the box: corner pairs that differ along exactly one axis.
_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1], dtype=np.intp)

Box = tuple[float, float, float, float]


def box_corners(center: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The 8 corners of an axis-aligned box; broadcasts over leading dimensions: (..., 3) -> (..., 8, 3)."""
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(size, dtype=np.float64)
    return c[..., None, :] + s[..., None, :] * _UNIT_CORNERS


def _clip_near(points_cam: np.ndarray, near_m: float) -> np.ndarray:
    """Vertices of one box (8 camera-frame corners) intersected with the half-space ``z >= near_m``."""
    z = points_cam[:, 2]
    front = z > near_m
    a, b = _EDGES[:, 0], _EDGES[:, 1]
    crossing = front[a] != front[b]
    pa, pb = points_cam[a[crossing]], points_cam[b[crossing]]
    za, zb = z[a[crossing]], z[b[crossing]]
    t = (near_m - za) / (zb - za)
    hits = pa + t[:, None] * (pb - pa)
    hits[:, 2] = near_m  # exact, whatever the rounding of t
    return np.concatenate((points_cam[front], hits))


def project_extents(
    T_cam_obj: np.ndarray, K: np.ndarray, centers: np.ndarray, sizes: np.ndarray, *, near_m: float = NEAR_M
) -> np.ndarray:
    """Unclipped image extents ``[x0, y0, x1, y1]`` of 3D boxes, clipped in 3D against ``z = near_m``.

    The extents are in COCO's pixel-edge coordinates: the projection through OpenCV's ``K`` plus
    :data:`PIXEL_EDGE_OFFSET`. A box partly behind the camera is cut by the near plane before
    projection, so its extent is the exact image of its visible part (which can reach far beyond the
    image). A box entirely at or behind the near plane has no extent (a row of NaN).

    Args:
        T_cam_obj: (N, 4, 4) object poses in the camera frame (OpenCV axes).
        K: (3, 3) intrinsics (OpenCV's pixel convention).
        centers: (N, 3) box centres in the object frames.
        sizes: (N, 3) box edge lengths.
        near_m: Near plane in metres (> 0).

    Returns:
        (N, 4) float64 array.
    """
    T = np.asarray(T_cam_obj, dtype=np.float64).reshape(-1, 4, 4)
    Km = np.asarray(K, dtype=np.float64)
    corners = box_corners(np.asarray(centers).reshape(-1, 3), np.asarray(sizes).reshape(-1, 3))
    cam = np.einsum("nij,nkj->nki", T[:, :3, :3], corners) + T[:, None, :3, 3]  # (N, 8, 3)
    out = np.full((T.shape[0], 4), np.nan)
    in_front = (cam[..., 2] > near_m).all(axis=1)
    if in_front.any():
        uvw = cam[in_front] @ Km.T
        uv = uvw[..., :2] / uvw[..., 2:3]
        out[in_front, :2] = uv.min(axis=1)
        out[in_front, 2:] = uv.max(axis=1)
    for n in np.flatnonzero(~in_front):  # rare: straddling or behind the camera
        pts = _clip_near(cam[n], near_m)
        if pts.shape[0] == 0:
            continue
        uvw = pts @ Km.T
        uv = uvw[:, :2] / uvw[:, 2:3]
        out[n, :2] = uv.min(axis=0)
        out[n, 2:] = uv.max(axis=0)
    return out + PIXEL_EDGE_OFFSET


def clip_extents(extents: np.ndarray, width: int, height: int) -> tuple[list[Box | None], list[float]]:
    """Clip image extents to ``[0, W] x [0, H]``: COCO boxes and truncations.

    Truncation is ``1 - clipped_area / unclipped_area``: 0 when the extent lies inside the image,
    1.0 (and no box) when nothing of it does. A degenerate extent (zero width or height: a flat box
    seen edge-on) is truncated by the fraction of its length outside the image.

    Args:
        extents: (N, 4) ``[x0, y0, x1, y1]`` from :func:`project_extents` (NaN rows: nothing in front).
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        ``(boxes, truncations)``: per row a COCO ``(x, y, w, h)`` or ``None``, and a float in [0, 1].
    """
    boxes: list[Box | None] = []
    truncs: list[float] = []
    for x0, y0, x1, y1 in np.asarray(extents, dtype=np.float64).reshape(-1, 4).tolist():
        if np.isnan(x0) or x1 < 0.0 or y1 < 0.0 or x0 > width or y0 > height:
            boxes.append(None)
            truncs.append(1.0)
            continue
        cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
        w, h, cw, ch = x1 - x0, y1 - y0, cx1 - cx0, cy1 - cy0
        if w > 0.0 and h > 0.0:
            if cw <= 0.0 or ch <= 0.0:  # it only touches the image border
                boxes.append(None)
                truncs.append(1.0)
                continue
            trunc = 1.0 - (cw * ch) / (w * h)
        else:  # a point or a segment (a flat box seen edge-on): the fraction of its length outside
            trunc = 1.0 - (cw / w if w > 0.0 else ch / h if h > 0.0 else 1.0)
        boxes.append((cx0, cy0, cw, ch))
        truncs.append(min(max(trunc, 0.0), 1.0))
    return boxes, truncs


def union_box(a: Box | None, b: Sequence[float] | None) -> Box | None:
    """The smallest COCO box ``(x, y, w, h)`` containing both boxes (either may be ``None``)."""
    if a is None or b is None:
        other = a if b is None else b
        return None if other is None else tuple(float(v) for v in other)  # type: ignore[return-value]
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def amodal_box(
    T_cam_obj: np.ndarray,
    K: np.ndarray,
    center: np.ndarray,
    size: np.ndarray,
    width: int,
    height: int,
    *,
    near_m: float = NEAR_M,
) -> tuple[Box | None, float]:
    """COCO box (clipped to the image) and truncation of one projected 3D box.

    :func:`simgen.labels.annotate` widens this box to the object's pixels with :func:`union_box`.

    Args:
        T_cam_obj: (4, 4) object pose in the camera frame (OpenCV axes).
        K: (3, 3) intrinsics (OpenCV's pixel convention).
        center: (3,) box centre in the object frame, metres.
        size: (3,) box edge lengths, metres.
        width: Image width in pixels.
        height: Image height in pixels.
        near_m: Near plane the box is clipped against before projection.

    Returns:
        ``(box or None, truncation)``; see :func:`project_extents` and :func:`clip_extents`.
    """
    ext = project_extents(T_cam_obj, K, np.asarray(center)[None], np.asarray(size)[None], near_m=near_m)
    boxes, truncs = clip_extents(ext, width, height)
    return boxes[0], truncs[0]
