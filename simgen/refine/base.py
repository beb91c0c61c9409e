"""The refiner interface and the shared machinery of the diffusers-backed refiners."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from simgen.refine.settings import RefineSettings

__all__ = ["DiffusersRefiner", "Refiner"]

log = logging.getLogger(__name__)


@runtime_checkable
class Refiner(Protocol):
    """Turns renders into refined images. ``simgen.refine.refine_dataset`` accepts any object like this.

    Tests and custom pipelines can inject their own (an identity, a planted failure, another model).
    """

    def describe(self) -> dict[str, Any]:
        """JSON-serializable provenance: the model, the ControlNet(s), dtype, device, package versions."""
        ...

    def refine(
        self,
        images: Sequence[np.ndarray],
        controls: Sequence[Sequence[np.ndarray]],
        prompts: Sequence[str],
        seeds: Sequence[int],
    ) -> list[np.ndarray]:
        """Refine a batch of frames.

        Args:
            images: Renders, ``(H, W, 3)`` uint8 RGB.
            controls: Per frame, one control image per control name, ``(H, W, 3)`` uint8.
            prompts: One prompt per frame.
            seeds: One generator seed per frame.

        Returns:
            One ``(H, W, 3)`` uint8 RGB image per frame, the same size as its render.
        """
        ...


class DiffusersRefiner:
    """Shared parts of the FLUX and Stable Diffusion refiners: sizes, generators, output conversion.

    Subclasses implement ``_load()`` (returns the pipeline) and ``_run(...)``.

    Args:
        settings: The refinement settings.
    """

    family = "diffusers"
    gpu_dtype = "float16"

    def __init__(self, settings: RefineSettings) -> None:
        from simgen.refine.loading import import_refine_extra, resolve_device, resolve_dtype

        self.settings = settings
        self.torch, self.diffusers = import_refine_extra()
        self.device = resolve_device(self.torch, settings.device)
        self.dtype = resolve_dtype(self.torch, settings.dtype, self.device, gpu_default=self.gpu_dtype)
        self.sources: dict[str, Any] = {}
        self.pipe = self._load()
        self.pipe.set_progress_bar_config(disable=True)
        if settings.cpu_offload:
            self.pipe.enable_model_cpu_offload(device=self.device)
        else:
            self.pipe.to(self.device)
        self.multiple = int(getattr(self.pipe, "vae_scale_factor", 8)) * self._latent_patch()

    def _latent_patch(self) -> int:
        return 1

    def _load(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(
        self, images: list[Any], controls: list[list[Any]], prompts: list[str], generators: list[Any], h: int, w: int
    ) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Provenance of the loaded pipeline."""
        from simgen.refine.loading import package_versions

        return {
            "family": self.family,
            "pipeline_class": type(self.pipe).__name__,
            **{k: v.to_json() if hasattr(v, "to_json") else v for k, v in self.sources.items()},
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": self.device,
            "cpu_offload": self.settings.cpu_offload,
            "versions": package_versions(),
        }

    def _size(self, h: int, w: int) -> tuple[int, int]:
        m = self.multiple
        return max(m, h // m * m), max(m, w // m * m)

    def refine(
        self,
        images: Sequence[np.ndarray],
        controls: Sequence[Sequence[np.ndarray]],
        prompts: Sequence[str],
        seeds: Sequence[int],
    ) -> list[np.ndarray]:
        """Refine a batch of same-size frames; see :class:`Refiner`."""
        from PIL import Image

        if not (len(images) == len(controls) == len(prompts) == len(seeds)):
            raise ValueError("images, controls, prompts and seeds must have one entry per frame")
        h0, w0 = images[0].shape[:2]
        if any(im.shape[:2] != (h0, w0) for im in images):
            raise ValueError("every frame of a batch must have the same size")
        h, w = self._size(h0, w0)
        if (h, w) != (h0, w0):
            log.info("refining at %dx%d (a multiple of %d) and resizing back to %dx%d", w, h, self.multiple, w0, h0)

        def fit(a: np.ndarray, interp: int) -> Any:
            return Image.fromarray(a if (h, w) == (h0, w0) else cv2.resize(a, (w, h), interpolation=interp))

        pil_images = [fit(im, cv2.INTER_AREA) for im in images]
        n_controls = len(controls[0])
        # diffusers wants controls per ControlNet, then per frame.
        per_control = [[fit(c[k], cv2.INTER_NEAREST) for c in controls] for k in range(n_controls)]
        generators = [self.torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        with self.torch.inference_mode():
            out = self._run(pil_images, per_control, list(prompts), generators, h, w)
        result = []
        for arr in out:
            img = np.clip(np.round(np.asarray(arr, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
            if img.shape[:2] != (h0, w0):
                img = cv2.resize(img, (w0, h0), interpolation=cv2.INTER_CUBIC)
            result.append(img)
        return result
