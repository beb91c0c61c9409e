"""Articulated robots: joint angles drawn inside the limits their URDF declares."""

from __future__ import annotations

import functools
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from simgen.assets import resolve_asset
from simgen.errors import AssetError, SpecError, did_you_mean
from simgen.randomizers.base import Randomizer, RandomizerParams, SampleContext, Stage, TargetKind
from simgen.randomizers.bounds import Bounds
from simgen.sampling import Scalar, sample


@functools.cache
def urdf_joint_limits(path: str) -> dict[str, tuple[float, float]]:
    """Movable joints of a URDF file and their ``(lower, upper)`` limits (continuous joints: ±pi).

    Reads the file's XML only: no simulator is involved.
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise AssetError(f"cannot read joint limits from {path}: {exc}") from None
    limits: dict[str, tuple[float, float]] = {}
    for joint in root.iter("joint"):
        kind, name = joint.get("type"), joint.get("name")
        if not name or kind not in ("revolute", "prismatic", "continuous"):
            continue
        if kind == "continuous":
            limits[name] = (-math.pi, math.pi)
            continue
        limit = joint.find("limit")
        try:
            lo = float(limit.get("lower", 0.0)) if limit is not None else 0.0
            hi = float(limit.get("upper", 0.0)) if limit is not None else 0.0
        except ValueError as exc:
            raise AssetError(f"{path}: joint {name!r:.80} has a limit that is not a number: {exc}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise AssetError(f"{path}: joint {name!r:.80} has a limit that is not finite ({lo}, {hi})")
        limits[name] = (min(lo, hi), max(lo, hi))
    return limits


@functools.cache
def urdf_links(path: str) -> list[str]:
    """Link names of a URDF file, in file order (its XML only: no simulator)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise AssetError(f"cannot read links from {path}: {exc}") from None
    return [link.get("name", "") for link in root.iter("link")]


class JointParams(RandomizerParams):
    """Which joints move, and how much of their range is used."""

    range_fraction: Annotated[Scalar, Bounds(0, 1)] = Field(
        default=1.0, description="fraction of each joint's range, centred on its middle"
    )
    joints: list[str] | None = Field(default=None, description="joint names to move; default all movable joints")


class JointAngles(Randomizer):
    """Uniform joint positions within the URDF limits of every targeted fixture (fixed-base robots).

    Targets: fixtures by name or tag; no tags: every URDF fixture.
    """

    name: ClassVar[str] = "robot/joints-v1"
    stage: ClassVar[Stage] = "scene"
    Params: ClassVar[type[BaseModel]] = JointParams
    targets: ClassVar[tuple[TargetKind, ...]] = ("fixtures",)

    def check(self, ctx: SampleContext) -> None:
        """Every joint named in ``joints`` is a movable joint of every targeted URDF fixture."""
        p: JointParams = self.params  # type: ignore[assignment]
        if p.joints is None:
            return
        wanted = set(self.tags)
        for fx in ctx.spec.fixtures:
            if not isinstance(fx.asset, str) or not fx.asset.endswith(".urdf"):
                continue
            if wanted and not wanted.intersection([*fx.tags, fx.name]):
                continue
            path = resolve_asset(fx.asset, base_dir=ctx.base_dir, roots=ctx.roots)
            limits = urdf_joint_limits(str(Path(path)))
            for j, name in enumerate(p.joints):
                if name not in limits:
                    raise SpecError(
                        f"fixture '{fx.name}' ({fx.asset}) has no movable joint {name!r:.80}"
                        f"{did_you_mean(name, limits)}; it has {', '.join(limits) or 'none'}",
                        path=f"joints[{j}]",
                    )

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"joints": {fixture_uid: {joint_name: position}}}`` (radians or metres)."""
        p: JointParams = self.params  # type: ignore[assignment]
        fixtures = {f["uid"]: f for f in ctx.state.get("fixtures", [])}
        out: dict[str, dict[str, float]] = {}
        for uid in ctx.target_fixtures(self.tags):
            ref = fixtures[uid].get("asset")
            if not ref or not str(ref).endswith(".urdf"):
                continue
            path = resolve_asset(ref, base_dir=ctx.base_dir, roots=ctx.roots)
            limits = urdf_joint_limits(str(Path(path)))
            names = p.joints if p.joints is not None else list(limits)
            unknown = [n for n in names if n not in limits]
            if unknown:
                raise AssetError(
                    f"robot/joints-v1: {ref} has no movable joint {unknown[0]!r:.80}"
                    f"{did_you_mean(unknown[0], limits)}; it has {', '.join(limits) or 'none'}"
                )
            fraction = min(max(float(sample(p.range_fraction, rng, ctx.index)), 0.0), 1.0)
            angles = {}
            for name in names:
                lo, hi = limits[name]
                mid, half = (lo + hi) / 2.0, (hi - lo) / 2.0 * fraction
                angles[name] = float(rng.uniform(mid - half, mid + half)) if half > 0 else mid
            out[uid] = angles
        return {"joints": out} if out else {}
