"""Material randomizers: specular colour, and image textures from a folder of the user's photos."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from simgen.assets import PhotoFolder, image_pool
from simgen.randomizers.base import Randomizer, RandomizerParams, SampleContext, Stage
from simgen.randomizers.bounds import Bounds
from simgen.sampling import Scalar, Uniform, sample


class SpecularParams(RandomizerParams):
    """Grey specular strength (each a constant or a distribution)."""

    strength: Annotated[Scalar, Bounds(0, 1)] = Field(
        default_factory=lambda: Uniform(low=0.0, high=1.0), description="specular colour, grey"
    )


class Specular(Randomizer):
    """A specular colour per targeted object (shiny vs matte)."""

    name: ClassVar[str] = "appearance/specular-v1"
    stage: ClassVar[Stage] = "scene"
    Params: ClassVar[type[BaseModel]] = SpecularParams

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"objects": {uid: {"specular": [s, s, s]}}}``."""
        p: SpecularParams = self.params  # type: ignore[assignment]
        out = {}
        for uid in ctx.target_uids(self.tags):
            s = float(sample(p.strength, rng, ctx.index))
            out[uid] = {"specular": [s, s, s]}
        return {"objects": out}


class ImageTextureParams(RandomizerParams):
    """Where the photos are."""

    # PhotoFolder: the loader checks the folder (exists, inside the roots, decodable images) at load time.
    folder: PhotoFolder = Field(
        description="a folder of PNG/JPEG images (spec-relative, in asset_roots, or pybullet_data:)"
    )
    ground: bool = Field(default=False, description="texture the ground too")


class ImageTexture(Randomizer):
    """Each targeted object (and optionally the ground) gets one photo from a folder as its texture."""

    name: ClassVar[str] = "appearance/image-texture-v1"
    stage: ClassVar[Stage] = "scene"
    Params: ClassVar[type[BaseModel]] = ImageTextureParams
    example_params: ClassVar[dict[str, Any]] = {"folder": "pybullet_data:"}

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"objects": {uid: {"texture": {"kind": "image", "path": ...}}}}`` (and ``ground``)."""
        p: ImageTextureParams = self.params  # type: ignore[assignment]
        images = image_pool(p.folder, base_dir=ctx.base_dir, roots=ctx.roots, where=self.name)

        def pick() -> dict[str, Any]:
            return {"kind": "image", "path": str(images[int(rng.integers(len(images)))])}

        patch: dict[str, Any] = {"objects": {uid: {"texture": pick()} for uid in ctx.target_uids(self.tags)}}
        if p.ground:
            patch["ground"] = {"texture": pick()}
        return patch
