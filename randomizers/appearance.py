"""Appearance randomizers.

Every appearance randomizer (here, in :mod:`~simgen.randomizers.materials` and in
:mod:`~simgen.randomizers.textures`) acts on what its ``tags`` select: object groups and fixtures by their names
or tags, and the ground plane by the reserved tag ``ground``. Without tags it acts on every object (the ground
texture randomizer: on the ground). Each target gets its own draw, objects first, then fixtures, then the
ground, so adding a fixture's tag never changes the objects' values. A fixture is one surface: all its links
(every link of a robot, even one labeled per link) get the same colour or texture.
"""

from __future__ import annotations

import colorsys
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from simgen.randomizers.base import TARGET_KINDS, Randomizer, RandomizerParams, SampleContext, Stage, TargetKind
from simgen.randomizers.bounds import Bounds
from simgen.sampling import Scalar, Uniform, sample


class ColorParams(RandomizerParams):
    """HSV ranges of the drawn colour (each a constant or a distribution), and its alpha."""

    # Hue wraps (any finite number is a hue); the others are fractions, refused outside [0, 1] at load time.
    hue: Scalar = Field(default_factory=lambda: Uniform(low=0.0, high=1.0), description="hue in [0, 1), wraps")
    saturation: Annotated[Scalar, Bounds(0, 1)] = Field(
        default_factory=lambda: Uniform(low=0.2, high=1.0), description="saturation, 0 to 1"
    )
    value: Annotated[Scalar, Bounds(0, 1)] = Field(
        default_factory=lambda: Uniform(low=0.3, high=1.0), description="brightness, 0 to 1"
    )
    alpha: Annotated[Scalar, Bounds(0, 1)] = Field(default=1.0, description="opacity, 0 to 1")


class ObjectColor(Randomizer):
    """Gives every targeted object, fixture or the ground one random RGBA colour, drawn in HSV.

    Targets: objects and fixtures by name or tag, the ground by the tag `ground`; no tags: every object.
    A fixture is coloured whole (all its links alike).
    """

    name: ClassVar[str] = "appearance/color-v1"
    stage: ClassVar[Stage] = "scene"
    Params: ClassVar[type[BaseModel]] = ColorParams
    targets: ClassVar[tuple[TargetKind, ...]] = TARGET_KINDS

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"objects": {uid: {"color": [r, g, b, a]}}}``, plus ``"fixtures"`` and ``"ground"`` if targeted."""
        p: ColorParams = self.params  # type: ignore[assignment]

        def draw() -> dict[str, Any]:
            h = float(sample(p.hue, rng, ctx.index)) % 1.0
            s = float(sample(p.saturation, rng, ctx.index))
            v = float(sample(p.value, rng, ctx.index))
            a = float(sample(p.alpha, rng, ctx.index))
            return {"color": [*colorsys.hsv_to_rgb(h, s, v), a]}

        return ctx.targets(self.tags).patch(draw)
