"""Core scene randomizers: fixtures, object count and selection, placement before the physics drop."""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import numpy as np

from simgen.randomizers.base import Randomizer, SampleContext, Stage
from simgen.randomizers.geometry import quat_from_euler, random_quaternion
from simgen.sampling import sample, sample_int
from simgen.spec.models import AssetEntry, Primitive

logger = logging.getLogger(__name__)


def asset_key(asset: str | Primitive) -> str | dict[str, Any]:
    """The JSON form of an asset reference (a string, or a primitive's sampled sizes are filled later)."""
    return asset if isinstance(asset, str) else asset.model_dump(exclude_none=True)


def _primitive(asset: Primitive, rng: np.random.Generator, index: int) -> dict[str, Any]:
    shape: dict[str, Any] = {"shape": asset.shape}
    if asset.size is not None:
        shape["size"] = [float(v) for v in sample(asset.size, rng, index)]
    if asset.radius is not None:
        shape["radius"] = float(sample(asset.radius, rng, index))
    if asset.length is not None:
        shape["length"] = float(sample(asset.length, rng, index))
    return shape


def _color(value: Any, rng: np.random.Generator, index: int) -> list[float] | None:
    if value is None:
        return None
    rgba = [float(v) for v in sample(value, rng, index)]
    return [*rgba, 1.0] if len(rgba) == 3 else rgba


class Fixtures(Randomizer):
    """Samples the static bodies (table, tray, shelf): position, rotation, scale, colour."""

    name: ClassVar[str] = "scene/fixtures-v1"
    stage: ClassVar[Stage] = "scene"
    reads: ClassVar[tuple[str, ...]] = ("fixtures[]",)

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"fixtures": [...]}`` with every fixture's sampled pose."""
        fixtures = []
        for fx in ctx.spec.fixtures:
            roll, pitch, yaw = (math.radians(float(v)) for v in sample(fx.rotation_deg, rng, ctx.index))
            entry: dict[str, Any] = {
                "uid": fx.name,
                "asset": fx.asset if isinstance(fx.asset, str) else None,
                "shape": None if isinstance(fx.asset, str) else _primitive(fx.asset, rng, ctx.index),
                "position": [float(v) for v in sample(fx.position, rng, ctx.index)],
                "orientation": quat_from_euler(roll, pitch, yaw),
                "scale": float(sample(fx.scale, rng, ctx.index)),
                "color": _color(fx.color, rng, ctx.index),
                "tags": [*fx.tags, fx.name],
                "labeled": fx.labeled,
                "category": fx.category or fx.name,
                "link_labels": fx.link_labels,
            }
            fixtures.append(entry)
        return {"fixtures": fixtures}


class CountSelect(Randomizer):
    """Per object group: how many objects, and which assets from the pool (weighted)."""

    name: ClassVar[str] = "objects/count-select-v1"
    stage: ClassVar[Stage] = "scene"
    reads: ClassVar[tuple[str, ...]] = ("objects[].count", "objects[].assets", "objects[].scale", "objects[].mass")

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"objects": {uid: {...}}}`` with one entry per drawn object, in group order."""
        objects: dict[str, Any] = {}
        for group in ctx.spec.objects:
            # The spec model bounds every count to [0, 65535] and refuses all-zero weights at load time.
            count = sample_int(group.count, rng, ctx.index)
            entries = [a if isinstance(a, AssetEntry) else AssetEntry(asset=a) for a in group.assets]
            weights = np.array([e.weight for e in entries], dtype=float)
            p = weights / weights.sum()
            for k in range(count):
                entry = entries[int(rng.choice(len(entries), p=p))]
                is_file = isinstance(entry.asset, str)
                uid = f"{group.name}/{k}"
                objects[uid] = {
                    "uid": uid,
                    "group": group.name,
                    "asset": entry.asset if is_file else None,
                    "shape": None if is_file else _primitive(entry.asset, rng, ctx.index),
                    "category": category_of(entry, group.category),
                    "labeled": group.labeled,
                    "tags": [*group.tags, group.name],
                    "scale": float(sample(group.scale, rng, ctx.index)),
                    "mass": None if group.mass is None else float(sample(group.mass, rng, ctx.index)),
                    "color": _color(group.color, rng, ctx.index),
                }
        return {"objects": objects}


def category_of(entry: AssetEntry, group_category: str | None) -> str:
    """The category of an asset entry: its own, else its group's, else the file stem or shape name."""
    from simgen.assets import asset_stem

    if entry.category:
        return entry.category
    if group_category:
        return group_category
    return asset_stem(entry.asset) if isinstance(entry.asset, str) else entry.asset.shape


class DropPlacement(Randomizer):
    """Places each object uniformly in its group's region, above it by ``drop_height``, with a random rotation.

    Rotation follows the group's ``rotation``: ``none``, ``yaw`` (about world z) or ``so3`` (uniform).
    Physics then drops and settles the objects in the backend.
    """

    name: ClassVar[str] = "placement/drop-v1"
    stage: ClassVar[Stage] = "scene"
    reads: ClassVar[tuple[str, ...]] = (
        "objects[].region",
        "objects[].drop_height",
        "objects[].rotation",
        "objects[].min_spacing",
    )
    max_tries: ClassVar[int] = 50

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"objects": {uid: {"position": [...], "orientation": [...]}}}``.

        A drop point is redrawn up to ``max_tries`` times until it lies ``min_spacing`` (xy) from every
        point placed before it. The spec loader refuses a count that can never fit (Oler's bound); when a
        crowded but possible region still defeats the tries, the farthest candidate is kept and a warning
        names the field.
        """
        groups = {g.name: (i, g) for i, g in enumerate(ctx.spec.objects)}
        placed: dict[str, Any] = {}
        objects = ctx.state.get("objects", {})
        points = np.empty((len(objects), 2))  # xy of the drop points so far, for vectorised distances
        crowded: set[int] = set()
        for k, (uid, obj) in enumerate(objects.items()):
            gi, group = groups[obj["group"]]
            center = np.array(sample(group.region.center, rng, ctx.index), dtype=float)
            size = np.abs(np.array(sample(group.region.size, rng, ctx.index), dtype=float))
            pos, met = self._drop_point(rng, center, size, group.min_spacing, points[:k])
            if not met:
                crowded.add(gi)
            points[k] = pos[:2]
            pos[2] += float(sample(group.drop_height, rng, ctx.index))
            if group.rotation == "so3":
                quat = random_quaternion(rng)
            elif group.rotation == "yaw":
                quat = quat_from_euler(0.0, 0.0, float(rng.uniform(-math.pi, math.pi)))
            else:
                quat = [0.0, 0.0, 0.0, 1.0]
            placed[uid] = {"position": [float(v) for v in pos], "orientation": [float(v) for v in quat]}
        for gi in sorted(crowded):
            logger.warning(
                "objects[%d].min_spacing: scene %d: some objects are closer than %g m after %d tries; "
                "lower count or min_spacing, or enlarge region.size",
                gi,
                ctx.index,
                ctx.spec.objects[gi].min_spacing,
                self.max_tries,
            )
        return {"objects": placed}

    def _drop_point(
        self, rng: np.random.Generator, center: np.ndarray, size: np.ndarray, spacing: float, before: np.ndarray
    ) -> tuple[np.ndarray, bool]:
        """The first of ``max_tries`` uniform points ``spacing`` (xy) from every point of ``before``.

        Returns:
            ``(point, True)``, or ``(the candidate farthest from its nearest neighbour, False)`` when no
            try was far enough.
        """
        best, best_gap = center, -1.0
        for _ in range(self.max_tries):
            pos = center + rng.uniform(-0.5, 0.5, size=3) * size
            if spacing <= 0 or len(before) == 0:
                return pos, True
            gap = float(np.min(np.linalg.norm(before - pos[:2], axis=1)))
            if gap >= spacing:
                return pos, True
            if gap > best_gap:
                best, best_gap = pos, gap
        return best, False
