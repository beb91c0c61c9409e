"""Control images for ControlNets, computed from a render: Canny edges from the RGB, depth from the depth map.

Pure numpy and OpenCV: no torch. Every function returns an ``(H, W, 3)`` uint8 RGB image, the form
diffusers' ControlNet pipelines take.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["CONTROLS", "canny_control", "control_images", "depth_control", "parse_control"]

CONTROLS = ("canny", "depth")


def parse_control(value: str) -> tuple[str, ...]:
    """Parse ``canny``, ``depth`` or ``canny+depth`` into a tuple of control names.

    Args:
        value: The ``--control`` value.

    Returns:
        The control names, in the order given, without duplicates.

    Raises:
        ValueError: An unknown control name.
    """
    parts = [p.strip().lower() for p in value.split("+") if p.strip()]
    unknown = [p for p in parts if p not in CONTROLS]
    if not parts or unknown:
        raise ValueError(f"control: expected canny, depth or canny+depth, got '{value}'")
    return tuple(dict.fromkeys(parts))


def canny_control(rgb: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges of an RGB image, as a white-on-black 3-channel image.

    The thresholds default to the ones the FLUX/SD Canny ControlNets were trained with (100, 200).

    Args:
        rgb: ``(H, W, 3)`` uint8 image.
        low: Canny's lower hysteresis threshold.
        high: Canny's upper hysteresis threshold.

    Returns:
        ``(H, W, 3)`` uint8 image with 255 on edges.
    """
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, low, high)
    return np.repeat(edges[:, :, None], 3, axis=2)


def depth_control(depth_mm: np.ndarray, lo_pct: float = 2.0, hi_pct: float = 98.0) -> np.ndarray:
    """A depth map as the near-is-bright image depth ControlNets expect (Depth-Anything/MiDaS style).

    Inverse depth is normalized per frame between percentiles of the valid pixels; pixels with no depth
    (value 0, e.g. the sky) become black, as the farthest.

    Args:
        depth_mm: ``(H, W)`` depth in millimetres (uint16), 0 meaning no data.
        lo_pct: Lower percentile of inverse depth mapped to 0.
        hi_pct: Upper percentile of inverse depth mapped to 255.

    Returns:
        ``(H, W, 3)`` uint8 image.
    """
    depth = depth_mm.astype(np.float64)
    valid = depth > 0
    out = np.zeros(depth.shape, dtype=np.uint8)
    if valid.any():
        inv = np.zeros_like(depth)
        inv[valid] = 1.0 / depth[valid]
        lo, hi = np.percentile(inv[valid], [lo_pct, hi_pct])
        scale = (hi - lo) if hi > lo else 1.0
        norm = np.clip((inv - lo) / scale, 0.0, 1.0)
        out[valid] = np.round(norm[valid] * 255.0).astype(np.uint8)
    return np.repeat(out[:, :, None], 3, axis=2)


def control_images(
    controls: Sequence[str],
    rgb: np.ndarray,
    depth_mm: np.ndarray | None,
    *,
    canny_low: int = 100,
    canny_high: int = 200,
) -> list[np.ndarray]:
    """The control images of one frame, one per control name, in order.

    Args:
        controls: Names from :data:`CONTROLS`.
        rgb: The render, ``(H, W, 3)`` uint8.
        depth_mm: The depth map in millimetres, needed for ``depth``.
        canny_low: Canny's lower threshold.
        canny_high: Canny's upper threshold.

    Returns:
        One ``(H, W, 3)`` uint8 image per control.

    Raises:
        ValueError: ``depth`` is asked for but the frame has no depth map.
    """
    out = []
    for name in controls:
        if name == "canny":
            out.append(canny_control(rgb, canny_low, canny_high))
        elif name == "depth":
            if depth_mm is None:
                raise ValueError("control 'depth' needs the frame's depth map, and this frame has none")
            out.append(depth_control(depth_mm))
        else:
            raise ValueError(f"control: unknown control '{name}'; expected one of {', '.join(CONTROLS)}")
    return out
