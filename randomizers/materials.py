"""Material randomizers: specular colour, and image textures from a folder of the user's photos.

Both target objects, fixtures and the ground by tag, as :mod:`~simgen.randomizers.appearance` describes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from simgen.assets import PhotoFolder, image_pool
from simgen.randomizers.base import TARGET_KINDS, Randomizer, RandomizerParams, SampleContext, Stage, TargetKind
from simgen.randomizers.bounds import Bounds
from simgen.sampling import Scalar, Uniform, sample


class SpecularParams(RandomizerParams):
    """Grey specular strength (each a constant or a distribution)."""

    strength: Annotated[Scalar, Bounds(0, 1)] = Field(
        default_factory=lambda: Uniform(low=0.0, high=1.0), description="specular colour, grey"
    )


class Specular(Randomizer):
    """A specular colour per targeted object, fixture or the ground (shiny vs matte).

    Targets: objects and fixtures by name or tag, the ground by the tag `ground`; no tags: every object.
    PyBullet's DIRECT-mode renderers (TinyRenderer, EGL) ignore specular colours; its OpenGL GUI shows them.
    """

    name: ClassVar[str] = "appearance/specular-v1"
    stage: ClassVar[Stage] = "scene"
    Params: ClassVar[type[BaseModel]] = SpecularParams
    targets: ClassVar[tuple[TargetKind, ...]] = TARGET_KINDS

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"objects": {uid: {"specular": [s, s, s]}}}``, plus ``"fixtures"`` and ``"ground"`` if targeted."""
        p: SpecularParams = self.params  # type: ignore[assignment]

        def draw() -> dict[str, Any]:
            s = float(sample(p.strength, rng, ctx.index))
            return {"specular": [s, s, s]}

        return ctx.targets(self.tags).patch(draw)


class ImageTextureParams(RandomizerParams):
    """Where the photos are."""

    # PhotoFolder: the loader checks the folder (exists, inside the roots, decodable images) at load time.
    folder: PhotoFolder = Field(
        description="a folder of PNG/JPEG images (spec-relative, in asset_roots, or pybullet_data:)"
    )
    ground: bool = Field(
        default=False, description="texture the ground too (as the tag ground does; with no tags, besides every object)"
    )


class ImageTexture(Randomizer):
    """Each targeted object, fixture or the ground gets one photo from a folder as its texture.

    Targets: objects and fixtures by name or tag, the ground by the tag `ground` (`tags: [ground]` textures the
    ground alone); no tags: every object, and the ground too with `ground: true`.
    """

    name: ClassVar[str] = "appearance/image-texture-v1"
    stage: ClassVar[Stage] = "scene"
    Params: ClassVar[type[BaseModel]] = ImageTextureParams
    example_params: ClassVar[dict[str, Any]] = {"folder": "pybullet_data:"}
    targets: ClassVar[tuple[TargetKind, ...]] = TARGET_KINDS

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"objects": {uid: {"texture": {"kind": "image", "path": ...}}}}`` (and ``fixtures``, ``ground``)."""
        p: ImageTextureParams = self.params  # type: ignore[assignment]
        images = image_pool(p.folder, base_dir=ctx.base_dir, roots=ctx.roots, where=self.name)

        def pick() -> dict[str, Any]:
            return {"texture": {"kind": "image", "path": str(images[int(rng.integers(len(images)))])}}

        targets = ctx.targets(self.tags)
        # ``ground: true`` adds the ground's entry last whatever ground.kind, as it did before tags could.
        return replace(targets, ground=targets.ground or p.ground).patch(pick)
