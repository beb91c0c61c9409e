"""Appearance randomizers."""

from __future__ import annotations

import colorsys
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from simgen.randomizers.base import Randomizer, RandomizerParams, SampleContext, Stage
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
    """Gives every targeted object one random RGBA colour, drawn in HSV."""

    name: ClassVar[str] = "appearance/color-v1"
    stage: ClassVar[Stage] = "scene"
    Params: ClassVar[type[BaseModel]] = ColorParams

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"objects": {uid: {"color": [r, g, b, a]}}}`` for the targeted objects."""
        p: ColorParams = self.params  # type: ignore[assignment]
        out: dict[str, Any] = {}
        for uid in ctx.target_uids(self.tags):
            h = float(sample(p.hue, rng, ctx.index)) % 1.0
            s = float(sample(p.saturation, rng, ctx.index))
            v = float(sample(p.value, rng, ctx.index))
            a = float(sample(p.alpha, rng, ctx.index))
            out[uid] = {"color": [*colorsys.hsv_to_rgb(h, s, v), a]}
        return {"objects": out}
