"""Procedural textures: pure functions from parameters (and an rng) to uint8 RGB images, and their randomizers.

A randomizer never makes the image. It records what to make as plain data, a *texture record*::

    {"kind": "perlin", "seed": 1234, "size": 128, "colors": [[r, g, b], [r, g, b]],
     "scale": 4, "octaves": 3, "persistence": 0.5}

and the backend regenerates the image with :func:`render_texture` (deterministic from the record
alone), so every texture in a dataset can be rebuilt from its manifest. Colours are RGB in [0, 1], as
everywhere in a scene state. Record fields by kind:

=================  ==========================================
kind               fields besides kind, seed, size and colors
=================  ==========================================
checker            cells (per side)
stripes            period_px, angle_deg
value-noise        scale (lattice cells per side), octaves, persistence
perlin             scale, octaves, persistence
linear-gradient    angle_deg
radial-gradient    center ([x, y] as fractions of the size), radius (fraction of the size)
=================  ==========================================

Noise textures tile seamlessly (their lattices wrap), and so do checkers whose size is a multiple of
``cells``.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from simgen.errors import did_you_mean
from simgen.randomizers.base import TARGET_KINDS, Randomizer, RandomizerParams, SampleContext, Stage, TargetKind
from simgen.randomizers.bounds import Bounds, draw, field_bounds
from simgen.sampling import (
    Choice,
    Const,
    Distribution,
    IntRange,
    IntScalar,
    Scalar,
    Sweep,
    Uniform,
    sample,
)

TEXTURE_KINDS = ("checker", "stripes", "value-noise", "perlin", "linear-gradient", "radial-gradient")
Color = Sequence[float]

# --- pure texture functions ---------------------------------------------------------------------------


def colormap(t: np.ndarray, color_a: Color, color_b: Color) -> np.ndarray:
    """Blend two colours by a field ``t`` in [0, 1]: 0 gives ``color_a``, 1 gives ``color_b``.

    Args:
        t: (H, W) floats in [0, 1].
        color_a: RGB in [0, 1].
        color_b: RGB in [0, 1].

    Returns:
        (H, W, 3) uint8.
    """
    a = np.asarray(color_a, dtype=np.float64)[:3]
    b = np.asarray(color_b, dtype=np.float64)[:3]
    rgb = a + np.clip(t, 0.0, 1.0)[..., None] * (b - a)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def _pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(size, dtype=np.float64) + 0.5
    return c[None, :], c[:, None]  # x varies along columns, y along rows


def checker(size: int, cells: int, color_a: Color, color_b: Color) -> np.ndarray:
    """A checkerboard of ``cells`` x ``cells`` squares; the top-left square is ``color_a``.

    Args:
        size: Width and height in pixels.
        cells: Squares per side.
        color_a: RGB in [0, 1].
        color_b: RGB in [0, 1].

    Returns:
        (size, size, 3) uint8.
    """
    idx = np.arange(size) * cells // size
    t = (idx[:, None] + idx[None, :]) % 2
    return colormap(t.astype(np.float64), color_a, color_b)


def stripes(size: int, period_px: float, angle_deg: float, color_a: Color, color_b: Color) -> np.ndarray:
    """Parallel stripes, half ``color_a`` and half ``color_b`` per period.

    Args:
        size: Width and height in pixels.
        period_px: Distance between stripe starts, in pixels, across the stripes.
        angle_deg: Direction across the stripes, counter-clockwise from +x (0 gives vertical stripes).
        color_a: RGB in [0, 1].
        color_b: RGB in [0, 1].

    Returns:
        (size, size, 3) uint8.
    """
    x, y = _pixel_centres(size)
    a = math.radians(angle_deg)
    phase = (x * math.cos(a) - y * math.sin(a)) / period_px
    return colormap((np.mod(phase, 1.0) >= 0.5).astype(np.float64), color_a, color_b)


def linear_gradient(size: int, angle_deg: float, color_a: Color, color_b: Color) -> np.ndarray:
    """A linear ramp from ``color_a`` to ``color_b`` along ``angle_deg`` (counter-clockwise from +x).

    Args:
        size: Width and height in pixels.
        angle_deg: Direction of increasing ``color_b``.
        color_a: RGB in [0, 1].
        color_b: RGB in [0, 1].

    Returns:
        (size, size, 3) uint8; the two extreme corners hold the two colours.
    """
    x, y = _pixel_centres(size)
    a = math.radians(angle_deg)
    p = x * math.cos(a) - y * math.sin(a)
    return colormap(_normalise(p), color_a, color_b)


def radial_gradient(size: int, center: Sequence[float], radius: float, color_a: Color, color_b: Color) -> np.ndarray:
    """A radial ramp: ``color_a`` at ``center``, ``color_b`` from ``radius`` outwards.

    Args:
        size: Width and height in pixels.
        center: ``[x, y]`` as fractions of the size (``[0.5, 0.5]`` is the middle).
        radius: Where ``color_b`` is reached, as a fraction of the size.
        color_a: RGB in [0, 1].
        color_b: RGB in [0, 1].

    Returns:
        (size, size, 3) uint8.
    """
    x, y = _pixel_centres(size)
    d = np.hypot(x / size - center[0], y / size - center[1])
    return colormap(d / radius, color_a, color_b)


def _normalise(n: np.ndarray) -> np.ndarray:
    lo, hi = float(n.min()), float(n.max())
    if hi - lo < 1e-12:
        return np.full(n.shape, 0.5)
    return (n - lo) / (hi - lo)


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)  # quintic: zero first and second derivatives at 0 and 1


def _lattice(size: int, res: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: lattice cell index, the next index (wrapping, so the texture tiles), and the fraction."""
    coord = (np.arange(size, dtype=np.float64) + 0.5) * res / size
    i0 = np.floor(coord).astype(np.int64)
    return i0 % res, (i0 + 1) % res, coord - i0


def _value_octave(rng: np.random.Generator, size: int, res: int) -> np.ndarray:
    values = rng.random((res, res))
    x0, x1, fx = _lattice(size, res)
    y0, y1, fy = _lattice(size, res)
    u = _fade(fx)[None, :]
    v = _fade(fy)[:, None]
    top = values[y0[:, None], x0[None, :]] * (1 - u) + values[y0[:, None], x1[None, :]] * u
    bottom = values[y1[:, None], x0[None, :]] * (1 - u) + values[y1[:, None], x1[None, :]] * u
    return top * (1 - v) + bottom * v


def _perlin_octave(rng: np.random.Generator, size: int, res: int) -> np.ndarray:
    angles = rng.uniform(0.0, 2.0 * math.pi, (res, res))
    gx, gy = np.cos(angles), np.sin(angles)
    x0, x1, fx = _lattice(size, res)
    y0, y1, fy = _lattice(size, res)
    fxr, fyc = fx[None, :], fy[:, None]

    def corner(yi: np.ndarray, xi: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        return gx[yi[:, None], xi[None, :]] * dx + gy[yi[:, None], xi[None, :]] * dy

    n00 = corner(y0, x0, fxr, fyc)
    n10 = corner(y0, x1, fxr - 1, fyc)
    n01 = corner(y1, x0, fxr, fyc - 1)
    n11 = corner(y1, x1, fxr - 1, fyc - 1)
    u = _fade(fxr)
    v = _fade(fyc)
    return (n00 * (1 - u) + n10 * u) * (1 - v) + (n01 * (1 - u) + n11 * u) * v


def _fractal(
    octave: Any, rng: np.random.Generator, size: int, scale: int, octaves: int, persistence: float
) -> np.ndarray:
    total = np.zeros((size, size))
    amplitude = 1.0
    for o in range(octaves):
        res = scale * 2**o
        if res > size:
            break  # finer than a pixel: nothing left to add
        total += amplitude * octave(rng, size, res)
        amplitude *= persistence
    return _normalise(total)


def value_noise_field(rng: np.random.Generator, size: int, scale: int, octaves: int, persistence: float) -> np.ndarray:
    """Fractal value noise in [0, 1] (min-max normalised), tileable.

    Args:
        rng: Draws the lattice values, octave after octave.
        size: Width and height in pixels.
        scale: Lattice cells per side at the first octave; each further octave doubles it.
        octaves: Number of octaves (octaves finer than a pixel are dropped).
        persistence: Amplitude ratio between successive octaves.

    Returns:
        (size, size) float64.
    """
    return _fractal(_value_octave, rng, size, scale, octaves, persistence)


def perlin_field(rng: np.random.Generator, size: int, scale: int, octaves: int, persistence: float) -> np.ndarray:
    """Fractal Perlin (gradient) noise in [0, 1] (min-max normalised), tileable.

    Args:
        rng: Draws the lattice gradients, octave after octave.
        size: Width and height in pixels.
        scale: Lattice cells per side at the first octave; each further octave doubles it.
        octaves: Number of octaves (octaves finer than a pixel are dropped).
        persistence: Amplitude ratio between successive octaves.

    Returns:
        (size, size) float64.
    """
    return _fractal(_perlin_octave, rng, size, scale, octaves, persistence)


def value_noise(
    rng: np.random.Generator,
    size: int,
    scale: int,
    octaves: int,
    persistence: float,
    color_a: Color,
    color_b: Color,
) -> np.ndarray:
    """Fractal value noise mapped between two colours; see :func:`value_noise_field`. Returns (size, size, 3) uint8."""
    return colormap(value_noise_field(rng, size, scale, octaves, persistence), color_a, color_b)


def perlin(
    rng: np.random.Generator,
    size: int,
    scale: int,
    octaves: int,
    persistence: float,
    color_a: Color,
    color_b: Color,
) -> np.ndarray:
    """Fractal Perlin noise mapped between two colours; see :func:`perlin_field`. Returns (size, size, 3) uint8."""
    return colormap(perlin_field(rng, size, scale, octaves, persistence), color_a, color_b)


# --- texture records ------------------------------------------------------------------------------------

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
RGB = Annotated[list[Unit], Field(min_length=3, max_length=3)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(ge=0, description="seeds the noise kinds' lattices")
    size: int = Field(ge=2, le=8192, description="width and height in pixels")
    colors: list[RGB] = Field(min_length=2, max_length=2, description="the two colours, RGB in [0, 1]")


class CheckerRecord(_Record):
    """A checkerboard texture."""

    kind: Literal["checker"]
    cells: int = Field(ge=1)


class StripesRecord(_Record):
    """A striped texture."""

    kind: Literal["stripes"]
    period_px: float = Field(gt=0)
    angle_deg: float


class NoiseRecord(_Record):
    """A value-noise or Perlin-noise texture."""

    kind: Literal["value-noise", "perlin"]
    scale: int = Field(ge=1)
    octaves: int = Field(ge=1, le=16)
    persistence: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _fits(self) -> NoiseRecord:
        if self.scale > self.size:
            raise ValueError(f"scale ({self.scale} lattice cells) must not exceed size ({self.size} px)")
        return self


class LinearGradientRecord(_Record):
    """A linear gradient texture."""

    kind: Literal["linear-gradient"]
    angle_deg: float


class RadialGradientRecord(_Record):
    """A radial gradient texture."""

    kind: Literal["radial-gradient"]
    center: list[float] = Field(min_length=2, max_length=2)
    radius: float = Field(gt=0)


TextureRecord = Annotated[
    CheckerRecord | StripesRecord | NoiseRecord | LinearGradientRecord | RadialGradientRecord,
    Field(discriminator="kind"),
]
_RECORD: TypeAdapter[Any] = TypeAdapter(TextureRecord)


def render_texture(record: Mapping[str, Any]) -> np.ndarray:
    """Rebuild a texture image from its record, deterministically from the record alone.

    Args:
        record: A texture record as a randomizer wrote it (see the module docstring), e.g.
            ``{"kind": "checker", "seed": 7, "size": 128, "colors": [[1, 1, 1], [0, 0, 0]], "cells": 8}``.

    Returns:
        (size, size, 3) uint8 RGB, rows top to bottom.

    Raises:
        ValueError: The record is not a valid texture record (unknown kind, missing or extra fields).
    """
    kind = record.get("kind") if isinstance(record, Mapping) else None
    if kind not in TEXTURE_KINDS:
        raise ValueError(
            f"texture record kind must be one of {', '.join(TEXTURE_KINDS)}, "
            f"got {kind!r}{did_you_mean(str(kind), TEXTURE_KINDS)}"
        )
    r = _RECORD.validate_python(dict(record))
    a, b = r.colors
    match r:
        case CheckerRecord():
            return checker(r.size, r.cells, a, b)
        case StripesRecord():
            return stripes(r.size, r.period_px, r.angle_deg, a, b)
        case NoiseRecord():
            make = perlin if r.kind == "perlin" else value_noise
            return make(np.random.default_rng(r.seed), r.size, r.scale, r.octaves, r.persistence, a, b)
        case LinearGradientRecord():
            return linear_gradient(r.size, r.angle_deg, a, b)
        case RadialGradientRecord():
            return radial_gradient(r.size, r.center, r.radius, a, b)
    raise AssertionError(f"unhandled texture kind {r.kind}")  # pragma: no cover


# --- randomizers ----------------------------------------------------------------------------------------


def _check_kind(value: Any) -> Any:
    if isinstance(value, Const | Choice | Sweep):
        kinds = [value.value] if isinstance(value, Const) else value.values
    elif isinstance(value, str):
        kinds = [value]
    else:
        raise ValueError(f"a texture kind is a name or a choice/sweep of names ({', '.join(TEXTURE_KINDS)})")
    for k in kinds:
        if k not in TEXTURE_KINDS:
            raise ValueError(
                f"unknown texture kind {k!r}{did_you_mean(str(k), TEXTURE_KINDS)}; "
                f"expected one of: {', '.join(TEXTURE_KINDS)}"
            )
    return value


class HSVColor(RandomizerParams):
    """A colour drawn in HSV; each component is a constant or a distribution."""

    hue: Annotated[Scalar, Bounds()] = Field(
        default_factory=lambda: Uniform(low=0.0, high=1.0), description="hue in [0, 1), wrapped"
    )
    saturation: Annotated[Scalar, Bounds(0, 1)] = Field(
        default_factory=lambda: Uniform(low=0.0, high=1.0), description="saturation in [0, 1]"
    )
    value: Annotated[Scalar, Bounds(0, 1)] = Field(
        default_factory=lambda: Uniform(low=0.1, high=1.0), description="value (brightness) in [0, 1]"
    )

    def draw(self, rng: np.random.Generator, index: int) -> list[float]:
        """Draw one RGB colour in [0, 1] as plain floats."""
        h = float(sample(self.hue, rng, index)) % 1.0
        s = min(max(float(sample(self.saturation, rng, index)), 0.0), 1.0)
        v = min(max(float(sample(self.value, rng, index)), 0.0), 1.0)
        return [float(c) for c in colorsys.hsv_to_rgb(h, s, v)]


class TextureParams(RandomizerParams):
    """What procedural textures to draw: the kind and each kind's parameters, constants or distributions."""

    kind: Annotated[str | Distribution, AfterValidator(_check_kind)] = Field(
        default_factory=lambda: Choice(values=list(TEXTURE_KINDS)),
        description=f"texture kind, or a choice/sweep of kinds: {', '.join(TEXTURE_KINDS)}",
    )
    size: int = Field(default=128, ge=8, le=4096, description="texture width and height in pixels")
    color_a: HSVColor = Field(default_factory=HSVColor, description="first colour (checker's top-left square)")
    color_b: HSVColor = Field(default_factory=HSVColor, description="second colour")
    cells: Annotated[IntScalar, Bounds(1, 1024, integer=True)] = Field(
        default_factory=lambda: IntRange(low=2, high=16), description="checker: squares per side"
    )
    period_px: Annotated[Scalar, Bounds(1, 1e6)] = Field(
        default_factory=lambda: Uniform(low=4.0, high=32.0), description="stripes: period in pixels"
    )
    angle_deg: Annotated[Scalar, Bounds()] = Field(
        default_factory=lambda: Uniform(low=0.0, high=180.0),
        description="stripes and linear gradient: direction in degrees, counter-clockwise from +x",
    )
    scale: Annotated[IntScalar, Bounds(1, 1024, integer=True)] = Field(
        default_factory=lambda: IntRange(low=2, high=8),
        description="value noise and perlin: lattice cells per side at the first octave (at most size)",
    )
    octaves: Annotated[IntScalar, Bounds(1, 16, integer=True)] = Field(
        default_factory=lambda: IntRange(low=1, high=5),
        description="value noise and perlin: number of octaves, each at twice the previous frequency",
    )
    persistence: Annotated[Scalar, Bounds(0, 1)] = Field(
        default=0.5, description="value noise and perlin: amplitude ratio between successive octaves"
    )
    center_x: Annotated[Scalar, Bounds(-1, 2)] = Field(
        default_factory=lambda: Uniform(low=0.2, high=0.8),
        description="radial gradient: centre x as a fraction of the size",
    )
    center_y: Annotated[Scalar, Bounds(-1, 2)] = Field(
        default_factory=lambda: Uniform(low=0.2, high=0.8),
        description="radial gradient: centre y as a fraction of the size",
    )
    radius: Annotated[Scalar, Bounds(0.01, 10)] = Field(
        default_factory=lambda: Uniform(low=0.3, high=1.0),
        description="radial gradient: radius where the second colour is reached, as a fraction of the size",
    )

    @model_validator(mode="after")
    def _scale_fits(self) -> TextureParams:
        b = Bounds(1, self.size, integer=True)
        try:
            b.check(self.scale)
        except ValueError as exc:
            raise ValueError(f"scale: {exc} (the texture size)") from None
        return self


_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "checker": ("cells",),
    "stripes": ("period_px", "angle_deg"),
    "value-noise": ("scale", "octaves", "persistence"),
    "perlin": ("scale", "octaves", "persistence"),
    "linear-gradient": ("angle_deg",),
    "radial-gradient": ("center_x", "center_y", "radius"),
}


def sample_texture(params: TextureParams, rng: np.random.Generator, index: int) -> dict[str, Any]:
    """Draw one texture record (plain JSON) from ``params``; :func:`render_texture` turns it into an image.

    Args:
        params: What to draw.
        rng: The generator to draw from.
        index: The scene index (for ``sweep``).

    Returns:
        A texture record.
    """
    kind = str(sample(params.kind, rng, index))
    record: dict[str, Any] = {
        "kind": kind,
        "seed": int(rng.integers(0, 2**31 - 1)),
        "size": params.size,
        "colors": [params.color_a.draw(rng, index), params.color_b.draw(rng, index)],
    }
    drawn = {
        name: draw(field_bounds(TextureParams, name), getattr(params, name), rng, index)  # type: ignore[arg-type]
        for name in _KIND_FIELDS[kind]
    }
    if kind == "radial-gradient":
        record["center"] = [drawn.pop("center_x"), drawn.pop("center_y")]
    record.update(drawn)
    return record


class ProceduralTexture(Randomizer):
    """Gives every targeted object, fixture or the ground a procedural texture (checker, stripes, noise or gradient).

    Targets: objects and fixtures by name or tag, the ground by the tag `ground`; no tags: every object.
    A fixture is textured whole (all its links alike).
    """

    name: ClassVar[str] = "appearance/procedural-texture-v1"
    stage: ClassVar[Stage] = "scene"
    Params: ClassVar[type[BaseModel]] = TextureParams
    targets: ClassVar[tuple[TargetKind, ...]] = TARGET_KINDS

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"objects": {uid: {"texture": record}}}``, plus ``"fixtures"`` and ``"ground"`` if targeted."""
        p: TextureParams = self.params  # type: ignore[assignment]
        return ctx.targets(self.tags).patch(lambda: {"texture": sample_texture(p, rng, ctx.index)})


class GroundTextureParams(TextureParams):
    """The ground's look: a procedural texture, a plain colour, or either at random."""

    mode: Literal["texture", "color", "both-random"] = Field(
        default="both-random",
        description="texture: always a procedural texture; color: always a plain colour; "
        "both-random: a texture with probability texture_probability, else a colour",
    )
    texture_probability: Annotated[Scalar, Bounds(0, 1)] = Field(
        default=0.5, description="both-random: the probability of a texture rather than a colour"
    )
    color: HSVColor = Field(default_factory=HSVColor, description="the plain colour's HSV ranges")
    size: int = Field(default=256, ge=8, le=4096, description="texture width and height in pixels")


class GroundTexture(Randomizer):
    """Gives the ground (or each targeted fixture or object) a procedural texture or a random plain colour.

    Targets: with no tags, the ground; with tags, the objects and fixtures they name and the ground by the tag
    `ground` (`tags: [ground, table]`: the floor and the table), each drawn on its own.
    """

    name: ClassVar[str] = "appearance/ground-texture-v1"
    stage: ClassVar[Stage] = "scene"
    Params: ClassVar[type[BaseModel]] = GroundTextureParams
    targets: ClassVar[tuple[TargetKind, ...]] = TARGET_KINDS

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"ground": {"texture": record}}`` or ``{"ground": {"color": [r, g, b, 1.0]}}``.

        With tags, also ``"objects"`` and ``"fixtures"`` entries (by uid) of the same form for what they select.
        """
        p: GroundTextureParams = self.params  # type: ignore[assignment]

        def draw() -> dict[str, Any]:
            use_texture = p.mode == "texture"
            if p.mode == "both-random":
                chance = float(sample(p.texture_probability, rng, ctx.index))
                use_texture = bool(rng.random() < chance)
            if use_texture:
                return {"texture": sample_texture(p, rng, ctx.index)}
            return {"color": [*p.color.draw(rng, ctx.index), 1.0]}

        if not self.tags:  # the ground, whatever ground.kind (a "none" ground ignores it), as before tags could target
            return {"ground": draw()}
        return ctx.targets(self.tags).patch(draw, objects_key=False)
