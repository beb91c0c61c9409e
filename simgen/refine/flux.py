"""FLUX ControlNet refinement: ``FluxControlNetImg2ImgPipeline`` (strength < 1) or ``FluxControlNetPipeline`` (1).

ControlNets, one of:

* one ControlNet per control (``--controlnet`` once per control, in ``--control`` order), combined with
  ``FluxMultiControlNetModel``;
* one union ControlNet (InstantX / Shakker-Labs ControlNet-Union, ``num_mode`` in its config) for all
  controls, fed one control image per mode (canny 0, depth 2);
* none given: the model folder's own ``controlnet/`` component if it has one, else the default hub
  ControlNet for the control (see :data:`simgen.refine.settings.DEFAULT_CONTROLNETS`).
"""

from __future__ import annotations

import logging
from typing import Any

from simgen.refine.base import DiffusersRefiner
from simgen.refine.loading import load_error, resolve_sources
from simgen.refine.settings import UNION_MODES, RefineSettingsError

__all__ = ["FluxRefiner"]

log = logging.getLogger(__name__)


class FluxRefiner(DiffusersRefiner):
    """Refines renders with FLUX.1 and a Canny and/or depth ControlNet.

    Args:
        settings: The refinement settings (``settings.model`` defaults to FLUX.1-dev).

    Raises:
        DependencyMissing: The ``[refine]`` extra is not installed.
        ModelNotFound: The model or a ControlNet is not available (the message names what to download).
    """

    family = "flux"
    gpu_dtype = "bfloat16"

    def _latent_patch(self) -> int:
        return 2  # FLUX packs 2x2 latent patches

    def _load(self) -> Any:
        d, s = self.diffusers, self.settings
        model, cn_sources = resolve_sources(s, "flux")
        controlnets = []
        for src in cn_sources:
            try:
                kw = {"subfolder": src.subfolder} if src.subfolder else {}
                cn = d.FluxControlNetModel.from_pretrained(
                    src.load_from, torch_dtype=self.dtype, local_files_only=src.path is not None, **kw
                )
            except (OSError, ValueError) as exc:
                raise load_error(exc, src, "ControlNet") from exc
            controlnets.append(cn.eval())
        self.union = bool(getattr(controlnets[0], "union", False))
        n = len(s.control)
        if len(controlnets) == 1 and n > 1 and not self.union:
            raise RefineSettingsError(
                f"--control {'+'.join(s.control)} needs a union ControlNet (e.g. Shakker-Labs/FLUX.1-dev-ControlNet-"
                f"Union-Pro) or one --controlnet per control; '{cn_sources[0].ref}' is a single-control ControlNet"
            )
        if len(controlnets) > 1 and any(getattr(c, "union", False) for c in controlnets):
            raise RefineSettingsError("--controlnet: give one union ControlNet alone, not mixed with others")
        self.multi = n > 1
        self.control_mode: Any = None
        if self.union:
            modes = [UNION_MODES[c] for c in s.control]
            self.control_mode = modes if self.multi else modes[0]
        elif self.multi:
            self.control_mode = [None] * n  # diffusers wants one (ignored) mode per plain ControlNet
        controlnet = d.FluxMultiControlNetModel(controlnets) if self.multi else controlnets[0]
        cls = d.FluxControlNetImg2ImgPipeline if s.strength < 1.0 else d.FluxControlNetPipeline
        try:
            pipe = cls.from_pretrained(
                model.load_from, controlnet=controlnet, torch_dtype=self.dtype, local_files_only=model.path is not None
            )
        except (OSError, ValueError) as exc:
            raise load_error(exc, model, "base model") from exc
        for name in ("transformer", "text_encoder", "text_encoder_2", "vae", "controlnet"):
            module = getattr(pipe, name, None)
            if module is not None:
                module.eval()
        self.sources = {
            "model": model,
            "controlnet": [c.to_json() for c in cn_sources],
            "controlnet_union": self.union,
            "control_mode": self.control_mode,
        }
        return pipe

    def _run(
        self, images: list[Any], controls: list[list[Any]], prompts: list[str], generators: list[Any], h: int, w: int
    ) -> Any:
        s = self.settings
        control_image: Any = controls if self.multi else controls[0]
        scale: Any = [s.controlnet_scale] * len(controls) if self.multi else s.controlnet_scale
        kwargs: dict[str, Any] = dict(
            prompt=prompts,
            control_image=control_image,
            control_mode=self.control_mode,
            controlnet_conditioning_scale=scale,
            height=h,
            width=w,
            num_inference_steps=s.steps,
            guidance_scale=s.guidance,
            generator=generators,
            max_sequence_length=s.max_sequence_length,
            output_type="np",
        )
        if s.strength < 1.0:
            kwargs.update(image=images, strength=s.strength)
        return self.pipe(**kwargs).images
