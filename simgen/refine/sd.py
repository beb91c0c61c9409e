"""Stable Diffusion ControlNet refinement, for GPUs that cannot hold FLUX (SD 1.5 runs in about 4 GB).

Same interface and same label check as :mod:`simgen.refine.flux`: ``StableDiffusionControlNetImg2ImgPipeline``
for strength < 1, ``StableDiffusionControlNetPipeline`` for 1, and ``MultiControlNetModel`` (one
ControlNet per control) for ``canny+depth``.
"""

from __future__ import annotations

from typing import Any

from simgen.refine.base import DiffusersRefiner
from simgen.refine.loading import load_error, resolve_sources
from simgen.refine.settings import RefineSettingsError

__all__ = ["SDRefiner"]


class SDRefiner(DiffusersRefiner):
    """Refines renders with Stable Diffusion (1.x/2.x) and Canny and/or depth ControlNets.

    Args:
        settings: The refinement settings (``settings.model`` defaults to Stable Diffusion 1.5).

    Raises:
        DependencyMissing: The ``[refine]`` extra is not installed.
        ModelNotFound: The model or a ControlNet is not available (the message names what to download).
    """

    family = "sd"
    gpu_dtype = "float16"

    def _load(self) -> Any:
        d, s = self.diffusers, self.settings
        model, cn_sources = resolve_sources(s, "sd")
        if len(cn_sources) != len(s.control):
            raise RefineSettingsError(
                f"--control {'+'.join(s.control)} with Stable Diffusion needs one --controlnet per control "
                f"({len(s.control)}), got {len(cn_sources)}"
            )
        controlnets = []
        for src in cn_sources:
            try:
                kw = {"subfolder": src.subfolder} if src.subfolder else {}
                cn = d.ControlNetModel.from_pretrained(
                    src.load_from, torch_dtype=self.dtype, local_files_only=src.path is not None, **kw
                )
            except (OSError, ValueError) as exc:
                raise load_error(exc, src, "ControlNet") from exc
            controlnets.append(cn.eval())
        self.multi = len(controlnets) > 1
        controlnet = d.MultiControlNetModel(controlnets) if self.multi else controlnets[0]
        cls = d.StableDiffusionControlNetImg2ImgPipeline if s.strength < 1.0 else d.StableDiffusionControlNetPipeline
        try:
            pipe = cls.from_pretrained(
                model.load_from,
                controlnet=controlnet,
                torch_dtype=self.dtype,
                local_files_only=model.path is not None,
                safety_checker=None,
                requires_safety_checker=False,
            )
        except (OSError, ValueError) as exc:
            raise load_error(exc, model, "base model") from exc
        for name in ("unet", "text_encoder", "vae", "controlnet"):
            module = getattr(pipe, name, None)
            if module is not None:
                module.eval()
        self.sources = {"model": model, "controlnet": [c.to_json() for c in cn_sources]}
        return pipe

    def _run(
        self, images: list[Any], controls: list[list[Any]], prompts: list[str], generators: list[Any], h: int, w: int
    ) -> Any:
        s = self.settings
        kwargs: dict[str, Any] = dict(
            prompt=prompts,
            controlnet_conditioning_scale=[s.controlnet_scale] * len(controls) if self.multi else s.controlnet_scale,
            height=h,
            width=w,
            num_inference_steps=s.steps,
            guidance_scale=s.guidance,
            generator=generators,
            output_type="np",
        )
        control_image: Any = controls if self.multi else controls[0]
        if s.strength < 1.0:
            kwargs.update(image=images, control_image=control_image, strength=s.strength)
        else:
            kwargs.update(image=control_image)
        return self.pipe(**kwargs).images
