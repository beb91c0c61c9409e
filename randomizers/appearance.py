"""Appearance randomizers."""

from __future__ import annotations

import colorsys
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simgen.randomizers.base import Randomizer, SampleContext, Stage
from simgen.sampling import Scalar, Uniform, sample


class ColorParams(BaseModel):
    """HSV ranges of the drawn colour (each a constant or a distribution), and its alpha."""

    model_config = ConfigDict(extra="forbid")

    hue: Scalar = Field(default_factory=lambda: Uniform(low=0.0, high=1.0), description="hue in [0, 1), wraps")
    saturation: Scalar = Field(default_factory=lambda: Uniform(low=0.2, high=1.0), description="saturation, 0 to 1")
    value: Scalar = Field(default_factory=lambda: Uniform(low=0.3, high=1.0), description="brightness, 0 to 1")
    alpha: Scalar = Field(default=1.0, description="opacity, 0 to 1")


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
            s = min(max(float(sample(p.saturation, rng, ctx.index)), 0.0), 1.0)
            v = min(max(float(sample(p.value, rng, ctx.index)), 0.0), 1.0)
            a = min(max(float(sample(p.alpha, rng, ctx.index)), 0.0), 1.0)
            out[uid] = {"color": [*colorsys.hsv_to_rgb(h, s, v), a]}
        return {"objects": out}
