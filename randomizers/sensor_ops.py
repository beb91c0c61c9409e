"""Pure image functions behind the sensor randomizers: uint8 RGB in, a new uint8 RGB out.

Every function leaves its input untouched and returns a new array of the same shape. Randomness
comes only from the ``rng`` argument. Effects of light (exposure, white balance, vignetting, shot
noise, optical blur) work on linear light, decoded from and re-encoded to sRGB through lookup
tables; display-space effects (gamma, contrast, read noise, JPEG, dead pixels) work on code values.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

_ENCODE_LEVELS = 65535  # linear light is quantised to 16 bits before the sRGB encode table


def check_rgb(rgb: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``rgb`` is a uint8 array of shape (H, W, 3).

    Args:
        rgb: The image to check.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"rgb must be a uint8 array of shape (H, W, 3), got a {got}")


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """The sRGB decode curve on values in [0, 1]."""
    v = np.asarray(v, dtype=np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """The sRGB encode curve on linear values in [0, 1] (clipped)."""
    v = np.clip(np.asarray(v, dtype=np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


@lru_cache(maxsize=1)
def _decode_table() -> np.ndarray:
    return srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)


@lru_cache(maxsize=1)
def _encode_table() -> np.ndarray:
    return np.round(linear_to_srgb(np.arange(_ENCODE_LEVELS + 1) / _ENCODE_LEVELS) * 255.0).astype(np.uint8)


def to_linear(rgb: np.ndarray) -> np.ndarray:
    """Decode uint8 sRGB to float32 linear light in [0, 1]."""
    return _decode_table()[rgb]


def from_linear(lin: np.ndarray) -> np.ndarray:
    """Encode float linear light to uint8 sRGB, clipping to [0, 1]."""
    idx = np.clip(lin, 0.0, 1.0) * np.float32(_ENCODE_LEVELS) + np.float32(0.5)
    return _encode_table()[idx.astype(np.int32)]


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _apply_luts(rgb: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Map each channel through its own 256-entry table (``luts`` has shape (3, 256), uint8)."""
    table = np.ascontiguousarray(luts.T.reshape(256, 1, 3))
    return cv2.LUT(np.ascontiguousarray(rgb), table)


def _linear_lut(gains: np.ndarray) -> np.ndarray:
    """Per-channel tables for multiplying linear light by ``gains`` (shape (3,)), exact per code value."""
    lin = srgb_to_linear(np.arange(256) / 255.0)
    out = linear_to_srgb(lin[None, :] * np.asarray(gains, dtype=np.float64)[:, None]) * 255.0
    return _to_uint8(out)


# --- noise -------------------------------------------------------------------------------------------


def gaussian_noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add independent Gaussian noise to every channel of every pixel.

    Args:
        rgb: uint8 image, (H, W, 3).
        sigma: Standard deviation in code values (0-255 units).
        rng: Source of the noise.

    Returns:
        The noisy image, rounded and clipped to uint8.
    """
    check_rgb(rgb)
    if sigma <= 0:
        return rgb.copy()
    noise = rng.standard_normal(rgb.shape, dtype=np.float32)
    noise *= np.float32(sigma)
    noise += rgb
    return _to_uint8(noise)


def shot_noise(rgb: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Photon (Poisson) noise: each channel's linear light becomes a count of photons, drawn and rescaled.

    Args:
        rgb: uint8 image, (H, W, 3).
        photons: Expected photons at full scale (linear 1.0). Fewer photons, more noise; the relative
            noise at full scale is ``1 / sqrt(photons)``.
        rng: Source of the noise.

    Returns:
        The noisy image.
    """
    check_rgb(rgb)
    if photons <= 0:
        raise ValueError(f"photons must be positive, got {photons}")
    lam = to_linear(rgb) * np.float32(photons)
    counts = rng.poisson(lam).astype(np.float32)
    return from_linear(counts / np.float32(photons))


def dead_pixels(rgb: np.ndarray, dead_fraction: float, hot_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Stuck pixels: a random ``dead_fraction`` of pixels reads 0 on every channel, and ``hot_fraction`` 255.

    Args:
        rgb: uint8 image, (H, W, 3).
        dead_fraction: Expected fraction of dead (black) pixels.
        hot_fraction: Expected fraction of hot (white) pixels, disjoint from the dead ones.
        rng: Chooses the positions (one uniform draw per pixel).

    Returns:
        The image with its stuck pixels.
    """
    check_rgb(rgb)
    if min(dead_fraction, hot_fraction) < 0 or dead_fraction + hot_fraction > 1:
        raise ValueError(
            f"dead_fraction and hot_fraction must be >= 0 with a sum <= 1, got {dead_fraction} and {hot_fraction}"
        )
    u = rng.random(rgb.shape[:2])
    out = rgb.copy()
    out[u < dead_fraction] = 0
    out[(u >= dead_fraction) & (u < dead_fraction + hot_fraction)] = 255
    return out


# --- blur ----------------------------------------------------------------------------------------------


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised line kernel: a segment of ``length`` pixels at ``angle_deg`` (counter-clockwise from +x).

    Each pixel's weight is the length of the segment inside it (the segment is sampled 16 times per
    pixel), so an axis-aligned segment of integer length covers exactly that many pixels equally.
    """
    half = length / 2.0
    c = math.ceil(half) + 1
    n = max(1, math.ceil(length * 16))
    t = (np.arange(n) + 0.5) / n * length - half  # midpoints of n equal pieces: never on a pixel edge
    a = math.radians(angle_deg)
    xs = np.floor(c + t * math.cos(a) + 0.5).astype(int)
    ys = np.floor(c - t * math.sin(a) + 0.5).astype(int)  # image rows grow downwards
    k = np.zeros((2 * c + 1, 2 * c + 1), dtype=np.float64)
    np.add.at(k, (ys, xs), 1.0)
    return (k / k.sum()).astype(np.float32)


def disk_kernel(radius: float) -> np.ndarray:
    """A normalised, anti-aliased disk of ``radius`` pixels (the defocus point-spread function)."""
    r = max(float(radius), 0.0)
    c = math.ceil(r) + 1
    yy, xx = np.mgrid[-c : c + 1, -c : c + 1]
    k = np.clip(r + 0.5 - np.hypot(xx, yy), 0.0, 1.0)
    return (k / k.sum()).astype(np.float32)


def _filter_linear(rgb: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    lin = to_linear(rgb)
    out = cv2.filter2D(lin, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return from_linear(out)


def motion_blur(rgb: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """Blur along a line, as from camera or object motion during the exposure (on linear light).

    Args:
        rgb: uint8 image, (H, W, 3).
        length_px: Length of the motion in pixels; 0 leaves the image unchanged.
        angle_deg: Direction, counter-clockwise from the image's +x axis.

    Returns:
        The blurred image.
    """
    check_rgb(rgb)
    if length_px <= 0:
        return rgb.copy()
    return _filter_linear(rgb, motion_kernel(length_px, angle_deg))


def defocus_blur(rgb: np.ndarray, radius_px: float) -> np.ndarray:
    """Out-of-focus blur: convolution of linear light with a disk (the circle of confusion).

    Args:
        rgb: uint8 image, (H, W, 3).
        radius_px: Radius of the circle of confusion in pixels; 0 leaves the image unchanged.

    Returns:
        The blurred image.
    """
    check_rgb(rgb)
    if radius_px <= 0:
        return rgb.copy()
    return _filter_linear(rgb, disk_kernel(radius_px))


# --- compression ---------------------------------------------------------------------------------------


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through JPEG at ``quality`` (1-100) with OpenCV's encoder (4:2:0 chroma).

    Args:
        rgb: uint8 image, (H, W, 3).
        quality: JPEG quality, 1 (worst) to 100.

    Returns:
        The decoded image.
    """
    check_rgb(rgb)
    q = int(quality)
    if not 1 <= q <= 100:
        raise ValueError(f"quality must lie in [1, 100], got {quality}")
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("OpenCV failed to encode the image as JPEG")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# --- tone and colour -----------------------------------------------------------------------------------


def exposure(rgb: np.ndarray, ev: float) -> np.ndarray:
    """Scale linear light by ``2**ev`` (clipping at white), as a longer or shorter exposure would.

    Args:
        rgb: uint8 image, (H, W, 3).
        ev: Exposure change in stops; +1 doubles the light, -1 halves it.

    Returns:
        The re-exposed image.
    """
    check_rgb(rgb)
    return _apply_luts(rgb, _linear_lut(np.full(3, 2.0**ev)))


def white_balance(rgb: np.ndarray, red: float, green: float, blue: float) -> np.ndarray:
    """Multiply each channel's linear light by its gain, as a mis-set white balance would.

    Args:
        rgb: uint8 image, (H, W, 3).
        red: Gain of the red channel.
        green: Gain of the green channel.
        blue: Gain of the blue channel.

    Returns:
        The re-balanced image.
    """
    check_rgb(rgb)
    return _apply_luts(rgb, _linear_lut(np.array([red, green, blue], dtype=np.float64)))


def gamma(rgb: np.ndarray, gamma: float) -> np.ndarray:
    """Raise normalised code values to ``gamma``: above 1 darkens the mid-tones, below 1 brightens them.

    Args:
        rgb: uint8 image, (H, W, 3).
        gamma: The exponent (> 0); black and white stay fixed.

    Returns:
        The adjusted image.
    """
    check_rgb(rgb)
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    lut = _to_uint8(255.0 * (np.arange(256) / 255.0) ** gamma)
    return _apply_luts(rgb, np.stack([lut] * 3))


def contrast(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Stretch code values about the image's mean luma: ``factor`` 1 is unchanged, 0 is flat grey.

    Args:
        rgb: uint8 image, (H, W, 3).
        factor: Contrast multiplier (>= 0).

    Returns:
        The adjusted image.
    """
    check_rgb(rgb)
    pivot = float(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).mean())
    lut = _to_uint8(pivot + factor * (np.arange(256) - pivot))
    return _apply_luts(rgb, np.stack([lut] * 3))


# --- optics -----------------------------------------------------------------------------------------------


def radial_distance(height: int, width: int) -> np.ndarray:
    """Each pixel centre's distance from the image centre, divided by the centre-to-corner distance."""
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    y = (np.arange(height, dtype=np.float32) - cy)[:, None]
    x = (np.arange(width, dtype=np.float32) - cx)[None, :]
    return np.sqrt(x * x + y * y) / np.float32(math.hypot(cx, cy) or 1.0)


def vignette(rgb: np.ndarray, strength: float, falloff: float) -> np.ndarray:
    """Darken towards the corners: linear light times ``1 - strength * rho**falloff``.

    ``rho`` is the distance from the centre, 1 at the corners, so the corners keep ``1 - strength`` of
    their light and the centre all of it.

    Args:
        rgb: uint8 image, (H, W, 3).
        strength: Fraction of light lost at the corners, in [0, 1].
        falloff: Exponent of the radial profile; larger keeps more of the frame bright.

    Returns:
        The vignetted image.
    """
    check_rgb(rgb)
    if strength == 0:
        return rgb.copy()
    gain = 1.0 - np.float32(strength) * radial_distance(*rgb.shape[:2]) ** np.float32(falloff)
    return from_linear(to_linear(rgb) * gain[:, :, None])


def chromatic_aberration(rgb: np.ndarray, shift_px: float) -> np.ndarray:
    """Lateral chromatic aberration: red is scaled about the centre by ``+shift_px`` at the corners, blue by ``-``.

    Green stays put; red and blue move radially in opposite directions, in proportion to the distance
    from the centre, reaching ``shift_px`` pixels at the corners (bilinear resampling, mirrored borders).

    Args:
        rgb: uint8 image, (H, W, 3).
        shift_px: Radial displacement of red at the corners in pixels (blue moves the other way).

    Returns:
        The image with coloured fringes.
    """
    check_rgb(rgb)
    h, w = rgb.shape[:2]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    corner = math.hypot(cx, cy)
    if shift_px == 0 or corner == 0:
        return rgb.copy()
    out = rgb.copy()
    for ch, sign in ((0, 1.0), (2, -1.0)):
        s = 1.0 + sign * shift_px / corner
        m = np.array([[s, 0.0, cx * (1 - s)], [0.0, s, cy * (1 - s)]], dtype=np.float64)
        out[:, :, ch] = cv2.warpAffine(
            np.ascontiguousarray(rgb[:, :, ch]), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
    return out
