"""Physics randomizers: per-object dynamics drawn before the drop."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from simgen.randomizers.base import Randomizer, RandomizerParams, SampleContext, Stage, TargetKind
from simgen.randomizers.bounds import Bounds
from simgen.sampling import Scalar, sample

_DYNAMICS = ("mass", "lateral_friction", "spinning_friction", "rolling_friction", "restitution")


class DynamicsParams(RandomizerParams):
    """Each property is a constant or a distribution; leave one out to keep the asset's own value."""

    mass: Annotated[Scalar, Bounds(1e-4, 1e4)] | None = Field(default=None, description="kg")
    lateral_friction: Annotated[Scalar, Bounds(0, 10)] | None = Field(default=None, description="Coulomb friction")
    spinning_friction: Annotated[Scalar, Bounds(0, 10)] | None = Field(default=None, description="torsional friction")
    rolling_friction: Annotated[Scalar, Bounds(0, 10)] | None = Field(default=None, description="rolling resistance")
    restitution: Annotated[Scalar, Bounds(0, 1)] | None = Field(default=None, description="bounciness, 0 to 1")


class Dynamics(Randomizer):
    """Mass, lateral/spinning/rolling friction and restitution of every targeted object.

    Targets: objects by group name or tag (fixtures are static: a tag that selects only fixtures is refused).
    """

    name: ClassVar[str] = "physics/dynamics-v1"
    stage: ClassVar[Stage] = "scene"
    targets: ClassVar[tuple[TargetKind, ...]] = ("objects",)
    Params: ClassVar[type[BaseModel]] = DynamicsParams
    example_params: ClassVar[dict[str, Any]] = {
        "lateral_friction": {"kind": "uniform", "low": 0.3, "high": 1.0},
        "restitution": {"kind": "uniform", "low": 0.0, "high": 0.4},
    }

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"objects": {uid: {"dynamics": {...}}}}`` (mass also sets the object's ``mass``)."""
        p: DynamicsParams = self.params  # type: ignore[assignment]
        out: dict[str, Any] = {}
        for uid in ctx.target_uids(self.tags):
            drawn = {k: float(sample(getattr(p, k), rng, ctx.index)) for k in _DYNAMICS if getattr(p, k) is not None}
            entry: dict[str, Any] = {"dynamics": {k: v for k, v in drawn.items() if k != "mass"}}
            if "mass" in drawn:
                entry["mass"] = drawn["mass"]
            out[uid] = entry
        return {"objects": out}
