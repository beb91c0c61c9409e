"""Realism refinement with diffusion ControlNets, and the check that it keeps every label.

``refine_dataset(OUT, RefineSettings(...))`` refines a generated dataset's renders with FLUX (or Stable
Diffusion) ControlNets, conditioned on Canny edges and/or depth from the render, then runs the
label-preservation check (:func:`check_frame`) on every frame and writes ``refined/`` and
``annotations.refined.coco.json`` beside the originals.

Importing this package and running the check need only numpy and OpenCV; torch and diffusers (the
``[refine]`` extra) are imported when a pipeline is loaded.
"""

from __future__ import annotations

from typing import Any

from simgen.refine.check import CheckConfig, FrameCheck, ObjectCheck, check_frame, edge_structure
from simgen.refine.controls import canny_control, control_images, depth_control
from simgen.refine.settings import ModelNotFound, RefineSettings, RefineSettingsError, frame_seed, render_prompt

__all__ = [
    "CheckConfig",
    "FluxRefiner",
    "FrameCheck",
    "ModelNotFound",
    "ObjectCheck",
    "RefineResult",
    "RefineSettings",
    "RefineSettingsError",
    "Refiner",
    "SDRefiner",
    "build_refiner",
    "canny_control",
    "check_frame",
    "control_images",
    "depth_control",
    "edge_structure",
    "frame_seed",
    "refine_dataset",
    "render_prompt",
]

_LAZY = {
    "RefineResult": "simgen.refine.run",
    "build_refiner": "simgen.refine.run",
    "refine_dataset": "simgen.refine.run",
    "Refiner": "simgen.refine.base",
    "FluxRefiner": "simgen.refine.flux",
    "SDRefiner": "simgen.refine.sd",
}


def __getattr__(name: str) -> Any:
    # Lazy: keeps `import simgen.refine` light; torch/diffusers load only inside the refiners.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simgen.refine' has no attribute '{name}'")
