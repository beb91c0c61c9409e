"""Flying occluders: primitives placed between the camera and its target, per view."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field

from simgen.randomizers.base import Randomizer, RandomizerParams, SampleContext, Stage, TargetKind
from simgen.randomizers.bounds import Bounds
from simgen.randomizers.geometry import random_quaternion
from simgen.sampling import IntScalar, Scalar, Uniform, sample, sample_int


class OccluderParams(RandomizerParams):
    """How many occluders, where along the line of sight, how large, and whether they are labeled."""

    count: Annotated[IntScalar, Bounds(0, 64, integer=True)] = Field(default=1, description="occluders per view")
    depth_fraction: Annotated[Scalar, Bounds(0.05, 0.95)] = Field(
        default_factory=lambda: Uniform(low=0.2, high=0.6),
        description="position along the camera-to-target segment (0 = camera)",
    )
    lateral_m: Annotated[Scalar, Bounds(0, 10)] = Field(default=0.05, description="std of the sideways offset, m")
    size_m: Annotated[Scalar, Bounds(0.001, 10)] = Field(
        default_factory=lambda: Uniform(low=0.02, high=0.08), description="edge or diameter, m"
    )
    shapes: list[Literal["box", "sphere", "cylinder", "capsule"]] = Field(default_factory=lambda: ["box", "sphere"])
    labeled: bool = Field(default=False, description="annotate the occluders (category 'occluder')")


class FlyingOccluders(Randomizer):
    """Primitives floating between the camera and the scene, drawn per view (they never touch physics)."""

    name: ClassVar[str] = "occluders/flying-v1"
    stage: ClassVar[Stage] = "view"
    Params: ClassVar[type[BaseModel]] = OccluderParams
    targets: ClassVar[tuple[TargetKind, ...]] = ()  # new bodies of its own: a tag is refused at load time

    @classmethod
    def categories(cls, params: OccluderParams) -> list[str]:
        """Label categories this randomizer adds: 'occluder' when its occluders are labeled."""
        return ["occluder"] if params.labeled else []

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"occluders": [{shape, size/radius/length, position, orientation, color, labeled}]}``."""
        p: OccluderParams = self.params  # type: ignore[assignment]
        camera = ctx.view.get("camera")
        if camera is None:
            raise ValueError("occluders/flying-v1 needs the camera: it must come after the core camera randomizer")
        pose = np.asarray(camera["T_world_cam"], dtype=float)
        eye = pose[:3, 3]
        target = np.asarray(camera["sampled"]["target"], dtype=float)
        occluders = []
        for _ in range(max(sample_int(p.count, rng, ctx.index), 0)):
            t = float(sample(p.depth_fraction, rng, ctx.index))
            lateral = float(sample(p.lateral_m, rng, ctx.index))
            offset = pose[:3, 0] * rng.normal(0.0, lateral) + pose[:3, 1] * rng.normal(0.0, lateral)
            size = float(sample(p.size_m, rng, ctx.index))
            shape = p.shapes[int(rng.integers(len(p.shapes)))]
            entry: dict[str, Any] = {"shape": shape}
            if shape == "box":
                entry["size"] = [float(v) for v in size * rng.uniform(0.5, 1.5, size=3)]
            else:
                entry["radius"] = size / 2.0
                if shape in ("cylinder", "capsule"):
                    entry["length"] = float(size * rng.uniform(0.5, 2.0))
            entry.update(
                position=[float(v) for v in eye + t * (target - eye) + offset],
                orientation=random_quaternion(rng),
                color=[*(float(c) for c in rng.uniform(0.1, 0.9, size=3)), 1.0],
                labeled=p.labeled,
            )
            occluders.append(entry)
        return {"occluders": occluders}
