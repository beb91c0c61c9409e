"""Sensor and image effects, applied after rendering to the RGB image only; labels are never touched.

Each effect is a :class:`~simgen.randomizers.base.SensorRandomizer`: ``sample`` draws the effect's
values for one frame (every numeric parameter may be a constant or a distribution) and returns them as
plain JSON for the manifest; ``apply`` is a pure function of the image, that patch and the passed-in
rng (used only for per-pixel noise), returning a new uint8 image. The image maths is in
:mod:`simgen.randomizers.sensor_ops`. In a spec::

    randomizers:
      - {type: sensor/motion-blur-v1, length_px: {kind: uniform, low: 3, high: 9}}
      - {type: sensor/jpeg-v1, quality: {kind: intrange, low: 30, high: 90}}

Sensor effects act on the whole image, so they ignore ``tags``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from simgen.randomizers import sensor_ops as ops
from simgen.randomizers.base import RandomizerParams, SampleContext, SensorRandomizer, TargetKind
from simgen.randomizers.bounds import Bounds, draw_params
from simgen.sampling import Const, IntRange, IntScalar, LogUniform, Scalar, Uniform


class _Effect(SensorRandomizer):
    """Draws every bounded field of ``Params`` into the patch, in declaration order."""

    targets: ClassVar[tuple[TargetKind, ...]] = ()  # the whole image: a tag is refused at load time

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return the drawn values, one plain number per parameter (the patch ``apply`` reads)."""
        return draw_params(self.params, rng, ctx.index)


# --- noise ---------------------------------------------------------------------------------------------


class GaussianNoiseParams(RandomizerParams):
    """Parameters of :class:`GaussianNoise`."""

    sigma: Annotated[Scalar, Bounds(0, 255)] = Field(
        default_factory=lambda: Uniform(low=1.0, high=8.0),
        description="standard deviation of the additive noise, in 0-255 code values",
    )


class GaussianNoise(_Effect):
    """Additive Gaussian read noise, independent per pixel and channel, in code values."""

    name: ClassVar[str] = "sensor/gaussian-noise-v1"
    Params: ClassVar[type[BaseModel]] = GaussianNoiseParams

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Add noise of ``patch["sigma"]`` drawn from ``rng``."""
        return ops.gaussian_noise(rgb, patch["sigma"], rng)


class ShotNoiseParams(RandomizerParams):
    """Parameters of :class:`ShotNoise`."""

    photons: Annotated[Scalar, Bounds(1, 1e9)] = Field(
        default_factory=lambda: LogUniform(low=100.0, high=5000.0),
        description="expected photons at full scale (the sensor's full well divided by its gain); "
        "fewer photons give more noise, 1/sqrt(photons) relative at white",
    )


class ShotNoise(_Effect):
    """Poisson photon noise on linear light: brighter pixels are noisier in absolute terms."""

    name: ClassVar[str] = "sensor/shot-noise-v1"
    Params: ClassVar[type[BaseModel]] = ShotNoiseParams

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Draw photon counts for ``patch["photons"]`` at full scale from ``rng``."""
        return ops.shot_noise(rgb, patch["photons"], rng)


class DeadPixelsParams(RandomizerParams):
    """Parameters of :class:`DeadPixels`."""

    dead_fraction: Annotated[Scalar, Bounds(0, 0.5)] = Field(
        default_factory=lambda: Uniform(low=0.0, high=0.001),
        description="expected fraction of dead pixels (0 on every channel)",
    )
    hot_fraction: Annotated[Scalar, Bounds(0, 0.5)] = Field(
        default_factory=lambda: Uniform(low=0.0, high=0.001),
        description="expected fraction of hot pixels (255 on every channel)",
    )
    pattern_seed: int | None = Field(
        default=None,
        ge=0,
        description="fix the stuck pixels' positions for the whole dataset, like one physical sensor "
        "(they are drawn from this seed); null draws new positions every frame",
    )


class DeadPixels(_Effect):
    """Stuck pixels: a random fraction reads black (dead), another white (hot)."""

    name: ClassVar[str] = "sensor/dead-pixels-v1"
    Params: ClassVar[type[BaseModel]] = DeadPixelsParams

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"dead_fraction", "hot_fraction", "pattern_seed"}`` (the seed may be null)."""
        p: DeadPixelsParams = self.params  # type: ignore[assignment]
        return {**draw_params(p, rng, ctx.index), "pattern_seed": p.pattern_seed}

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Place the stuck pixels with ``rng``, or with the patch's ``pattern_seed`` when it has one."""
        seed = patch.get("pattern_seed")
        where = rng if seed is None else np.random.default_rng(seed)
        return ops.dead_pixels(rgb, patch["dead_fraction"], patch["hot_fraction"], where)


# --- blur ------------------------------------------------------------------------------------------------


class MotionBlurParams(RandomizerParams):
    """Parameters of :class:`MotionBlur`."""

    length_px: Annotated[Scalar, Bounds(0, 256)] = Field(
        default_factory=lambda: Uniform(low=2.0, high=9.0),
        description="length of the motion during the exposure, in pixels (0 = none)",
    )
    angle_deg: Annotated[Scalar, Bounds()] = Field(
        default_factory=lambda: Uniform(low=0.0, high=180.0),
        description="direction of the motion in degrees, counter-clockwise from the image's +x axis",
    )


class MotionBlur(_Effect):
    """Blur along a straight line (a line kernel applied to linear light with cv2.filter2D)."""

    name: ClassVar[str] = "sensor/motion-blur-v1"
    Params: ClassVar[type[BaseModel]] = MotionBlurParams

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Convolve with a line of ``patch["length_px"]`` at ``patch["angle_deg"]``."""
        return ops.motion_blur(rgb, patch["length_px"], patch["angle_deg"])


class DefocusBlurParams(RandomizerParams):
    """Parameters of :class:`DefocusBlur`."""

    radius_px: Annotated[Scalar, Bounds(0, 64)] = Field(
        default_factory=lambda: Uniform(low=0.5, high=3.0),
        description="radius of the circle of confusion, in pixels (0 = in focus)",
    )


class DefocusBlur(_Effect):
    """Out-of-focus blur: linear light convolved with an anti-aliased disk."""

    name: ClassVar[str] = "sensor/defocus-blur-v1"
    Params: ClassVar[type[BaseModel]] = DefocusBlurParams

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Convolve with a disk of ``patch["radius_px"]``."""
        return ops.defocus_blur(rgb, patch["radius_px"])


# --- compression -----------------------------------------------------------------------------------------


class JpegParams(RandomizerParams):
    """Parameters of :class:`Jpeg`."""

    quality: Annotated[IntScalar, Bounds(1, 100, integer=True)] = Field(
        default_factory=lambda: IntRange(low=30, high=95),
        description="JPEG quality from 1 (worst) to 100; drawn values are rounded to an integer",
    )


class Jpeg(_Effect):
    """JPEG compression artefacts: an encode/decode round-trip through OpenCV."""

    name: ClassVar[str] = "sensor/jpeg-v1"
    Params: ClassVar[type[BaseModel]] = JpegParams

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Encode at ``patch["quality"]`` and decode."""
        return ops.jpeg(rgb, patch["quality"])


# --- tone and colour -------------------------------------------------------------------------------------


class ExposureParams(RandomizerParams):
    """Parameters of :class:`Exposure`."""

    ev: Annotated[Scalar, Bounds(-16, 16)] = Field(
        default_factory=lambda: Uniform(low=-1.0, high=1.0),
        description="exposure change in stops: +1 doubles the linear light, -1 halves it",
    )


class Exposure(_Effect):
    """Over- or under-exposure: linear light scaled by 2**ev, clipped at white."""

    name: ClassVar[str] = "sensor/exposure-v1"
    Params: ClassVar[type[BaseModel]] = ExposureParams

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Scale linear light by ``2 ** patch["ev"]``."""
        return ops.exposure(rgb, patch["ev"])


class GammaParams(RandomizerParams):
    """Parameters of :class:`Gamma`."""

    gamma: Annotated[Scalar, Bounds(0.05, 20)] = Field(
        default_factory=lambda: LogUniform(low=0.7, high=1.4),
        description="exponent applied to normalised code values: > 1 darkens mid-tones, < 1 brightens them",
    )


class Gamma(_Effect):
    """A tone curve: normalised code values raised to a power, black and white fixed."""

    name: ClassVar[str] = "sensor/gamma-v1"
    Params: ClassVar[type[BaseModel]] = GammaParams

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Raise code values to ``patch["gamma"]``."""
        return ops.gamma(rgb, patch["gamma"])


class WhiteBalanceParams(RandomizerParams):
    """Parameters of :class:`WhiteBalance`."""

    red: Annotated[Scalar, Bounds(0, 16)] = Field(
        default_factory=lambda: Uniform(low=0.8, high=1.25),
        description="gain on the red channel's linear light",
    )
    green: Annotated[Scalar, Bounds(0, 16)] = Field(
        default_factory=lambda: Const(value=1.0),
        description="gain on the green channel's linear light",
    )
    blue: Annotated[Scalar, Bounds(0, 16)] = Field(
        default_factory=lambda: Uniform(low=0.8, high=1.25),
        description="gain on the blue channel's linear light",
    )


class WhiteBalance(_Effect):
    """A colour cast: per-channel gains on linear light, as a mis-set white balance gives."""

    name: ClassVar[str] = "sensor/white-balance-v1"
    Params: ClassVar[type[BaseModel]] = WhiteBalanceParams

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Multiply each channel by ``patch["red"]``, ``patch["green"]`` and ``patch["blue"]``."""
        return ops.white_balance(rgb, patch["red"], patch["green"], patch["blue"])


class ContrastParams(RandomizerParams):
    """Parameters of :class:`Contrast`."""

    factor: Annotated[Scalar, Bounds(0, 10)] = Field(
        default_factory=lambda: Uniform(low=0.7, high=1.3),
        description="contrast multiplier about the image's mean luma: 1 unchanged, 0 flat grey",
    )


class Contrast(_Effect):
    """Contrast change: code values stretched or squeezed about the image's mean luma."""

    name: ClassVar[str] = "sensor/contrast-v1"
    Params: ClassVar[type[BaseModel]] = ContrastParams

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Scale code values about the mean luma by ``patch["factor"]``."""
        return ops.contrast(rgb, patch["factor"])


# --- optics ----------------------------------------------------------------------------------------------


class VignetteParams(RandomizerParams):
    """Parameters of :class:`Vignette`."""

    strength: Annotated[Scalar, Bounds(0, 1)] = Field(
        default_factory=lambda: Uniform(low=0.1, high=0.5),
        description="fraction of the light lost at the image corners (0 = none, 1 = black corners)",
    )
    falloff: Annotated[Scalar, Bounds(0.1, 16)] = Field(
        default=2.0,
        description="exponent of the radial profile 1 - strength * r**falloff (r = 1 at the corners); "
        "larger keeps more of the frame bright",
    )


class Vignette(_Effect):
    """Vignetting: linear light darkened towards the corners along a radial power profile."""

    name: ClassVar[str] = "sensor/vignette-v1"
    Params: ClassVar[type[BaseModel]] = VignetteParams

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Darken by ``patch["strength"]`` at the corners with ``patch["falloff"]``."""
        return ops.vignette(rgb, patch["strength"], patch["falloff"])


class ChromaticAberrationParams(RandomizerParams):
    """Parameters of :class:`ChromaticAberration`."""

    shift_px: Annotated[Scalar, Bounds(-64, 64)] = Field(
        default_factory=lambda: Uniform(low=-3.0, high=3.0),
        description="radial shift of the red channel at the image corners, in pixels; blue shifts the "
        "opposite way and green stays (the shift grows linearly from 0 at the centre)",
    )


class ChromaticAberration(_Effect):
    """Lateral chromatic aberration: red and blue scaled about the centre in opposite directions."""

    name: ClassVar[str] = "sensor/chromatic-aberration-v1"
    Params: ClassVar[type[BaseModel]] = ChromaticAberrationParams

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Shift red by ``patch["shift_px"]`` and blue by its opposite at the corners."""
        return ops.chromatic_aberration(rgb, patch["shift_px"])
