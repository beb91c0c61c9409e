"""A background photo composited behind the scene with the frame's own masks; labels are untouched."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import BaseModel, Field

from simgen.assets import PhotoFolder, image_pool, read_image
from simgen.frame import FrameBuffers
from simgen.randomizers.base import RandomizerParams, SampleContext, SensorRandomizer, TargetKind


class BackgroundParams(RandomizerParams):
    """Where the photos are and which pixels they replace."""

    # PhotoFolder: load_spec checks the folder (inside the roots, bounded decodable images) before anything runs.
    folder: PhotoFolder = Field(
        description="a folder of PNG/JPEG photos (spec-relative, in asset_roots, or pybullet_data:)"
    )
    replace: Literal["empty", "non-objects"] = Field(
        default="empty",
        description="'empty': pixels where nothing was hit (use ground kind none); "
        "'non-objects': every pixel that is not an object instance (cut-and-paste style)",
    )


class BackgroundPhoto(SensorRandomizer):
    """Pastes a photo, randomly cropped and flipped, behind the rendered scene."""

    name: ClassVar[str] = "background/photo-v1"
    Params: ClassVar[type[BaseModel]] = BackgroundParams
    example_params: ClassVar[dict[str, Any]] = {"folder": "pybullet_data:"}
    needs_buffers: ClassVar[bool] = True
    targets: ClassVar[tuple[TargetKind, ...]] = ()  # behind the whole scene: a tag is refused at load time

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return the chosen photo, a crop origin (fractions) and a flip."""
        p: BackgroundParams = self.params  # type: ignore[assignment]
        images = image_pool(p.folder, base_dir=ctx.base_dir, roots=ctx.roots, where=self.name)
        return {
            "path": str(images[int(rng.integers(len(images)))]),
            "crop": [float(v) for v in rng.uniform(0.0, 1.0, size=2)],
            "flip": bool(rng.integers(2)),
            "replace": p.replace,
        }

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Without buffers there is no mask to paste behind: the image is returned unchanged."""
        return rgb.copy()

    def apply_with(
        self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator, buffers: FrameBuffers
    ) -> np.ndarray:
        """Replace the background pixels with the photo scaled to cover the frame.

        Raises:
            AssetError: Naming the photo: it is too large, truncated or cannot be decoded.
        """
        photo = read_image(patch["path"], self.name)
        h, w = rgb.shape[:2]
        scale = max(h / photo.shape[0], w / photo.shape[1])
        size = (max(w, round(photo.shape[1] * scale)), max(h, round(photo.shape[0] * scale)))
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        x0 = int(patch["crop"][0] * (photo.shape[1] - w))
        y0 = int(patch["crop"][1] * (photo.shape[0] - h))
        photo = photo[y0 : y0 + h, x0 : x0 + w]
        if patch["flip"]:
            photo = photo[:, ::-1]
        mask = buffers.depth_m == 0 if patch["replace"] == "empty" else buffers.instance_ids == 0
        out = rgb.copy()
        out[mask] = photo[mask]
        return out
