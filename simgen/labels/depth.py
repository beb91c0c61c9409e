"""Depth maps as 16-bit PNG millimetres, and back."""

from __future__ import annotations

import numpy as np

from simgen.labels.errors import LabelError

#: Largest depth a uint16 PNG can hold, in millimetres; deeper hits saturate to it.
DEPTH_MM_MAX = 65535


def depth_to_png_mm(depth_m: np.ndarray) -> np.ndarray:
    """Encode a z-depth map in metres as uint16 millimetres, ``0`` meaning no data.

    Depths are rounded to the nearest millimetre (half to even). A positive depth never becomes 0
    (a hit closer than 0.5 mm is stored as 1 mm), depths beyond 65.535 m saturate to 65535, and
    0, negative, NaN and infinite depths all become 0 (no data).

    Args:
        depth_m: (H, W) float array, metres.

    Returns:
        (H, W) uint16 array.
    """
    d = np.asarray(depth_m, dtype=np.float64)
    if d.ndim != 2:
        raise LabelError(f"depth_m: expected a 2D (H, W) array, got shape {d.shape}")
    valid = np.isfinite(d) & (d > 0.0)
    mm = np.rint(np.where(valid, d, 0.0) * 1000.0)
    return np.where(valid, np.clip(mm, 1.0, DEPTH_MM_MAX), 0.0).astype(np.uint16)


def png_mm_to_depth(depth_mm: np.ndarray) -> np.ndarray:
    """Decode uint16 millimetres (0 = no data) back to float32 metres (0 = no data).

    Args:
        depth_mm: (H, W) uint16 array, as written by :func:`depth_to_png_mm`.

    Returns:
        (H, W) float32 array.
    """
    mm = np.asarray(depth_mm)
    if mm.dtype != np.uint16:
        raise LabelError(f"depth_mm: expected a uint16 array, got dtype {mm.dtype}")
    return mm.astype(np.float32) / np.float32(1000.0)
