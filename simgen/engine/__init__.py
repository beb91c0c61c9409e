"""The engine: one run loop for every modality (plan, shards, runners, resume, provenance) and the image modality.

``simgen.engine.generate`` makes an image dataset; :func:`simgen.engine.run.run_dataset` runs any
:class:`~simgen.engine.run.Modality`.
"""

from __future__ import annotations

from typing import Any

from simgen.engine.plan import Plan, Shard

__all__ = [
    "GenerateResult",
    "ImageOptions",
    "Plan",
    "RunConfig",
    "Shard",
    "categories",
    "generate",
    "generate_images",
    "run_dataset",
]


def __getattr__(name: str) -> Any:
    # Lazy: importing the planner or the samplers must not pull in the renderer, labels and writers.
    if name in ("GenerateResult", "ImageOptions", "categories", "generate", "generate_images"):
        from simgen.engine import generation as module

        return getattr(module, name)
    if name in ("RunConfig", "run_dataset"):
        from simgen.engine import run as run_module

        return getattr(run_module, name)
    raise AttributeError(name)
