"""The engine: plan frames into scenes and shards, run the per-shard loop, merge the outputs."""

from __future__ import annotations

from typing import Any

from simgen.engine.plan import Plan, Shard

__all__ = ["GenerateResult", "Plan", "Shard", "categories", "generate"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the planner or the samplers must not pull in the renderer, labels and writers.
    if name in ("GenerateResult", "categories", "generate"):
        from simgen.engine import generation as module

        return getattr(module, name)
    raise AttributeError(name)
