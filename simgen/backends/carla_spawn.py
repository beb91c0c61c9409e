"""Lane-aware spawn points, sampled from a ``carla.Map``'s waypoints with an rng passed in.

A ``carla.Map`` built from OpenDRIVE text (``carla.Map(name, xodr)``) works without a server, so this runs
offline too. ``Map.generate_waypoints(d)`` gives waypoints every ``d`` metres along every driving lane;
other lane types (sidewalks, parking, shoulders, bike lanes) are reached from them by stepping outwards
with ``get_right_lane()`` (outwards on both sides of a road, whatever the lane's direction).

The waypoints are sorted by (road, section, lane, s) before sampling, so the result depends only on the map
and the rng, not on the order the map hands them out in. Each point faces along its lane (the waypoint's
yaw), is lifted by ``lift_m`` so the actor drops onto the road, and keeps ``min_separation_m`` from every
point chosen before it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: How far outwards from a driving lane to look for sidewalks, parking or bike lanes.
_MAX_SIDE_STEPS = 6


@dataclass(frozen=True)
class SpawnPoint:
    """One spawn point, in CARLA's world frame.

    Attributes:
        location: ``(x, y, z)`` metres (z already lifted).
        rotation: ``(pitch, yaw, roll)`` degrees: the lane's direction.
        road_id: OpenDRIVE road id.
        section_id: Lane section id.
        lane_id: OpenDRIVE lane id (negative: right of the reference line).
        s: Distance along the road, metres.
        lane_type: ``carla.LaneType`` name, e.g. ``"Driving"``.
        lane_width: Lane width, metres.
    """

    location: tuple[float, float, float]
    rotation: tuple[float, float, float]
    road_id: int
    section_id: int
    lane_id: int
    s: float
    lane_type: str
    lane_width: float

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data (for the manifest)."""
        d = asdict(self)
        d["location"], d["rotation"] = list(self.location), list(self.rotation)
        return d


def _lane_type(wp: Any) -> str:
    name = str(wp.lane_type)
    return name.rsplit(".", 1)[-1]


def _key(wp: Any) -> tuple[int, int, int, float]:
    return (int(wp.road_id), int(wp.section_id), int(wp.lane_id), round(float(wp.s), 6))


def lane_waypoints(
    carla_map: Any,
    spacing_m: float,
    lane_types: Sequence[str],
    *,
    junctions: bool = False,
    roads: Iterable[int] | None = None,
) -> list[Any]:
    """Waypoints every ``spacing_m`` along every lane of the given types, sorted by (road, section, lane, s).

    Args:
        carla_map: A ``carla.Map`` (from a server or built offline from OpenDRIVE text).
        spacing_m: Distance between waypoints along a lane, metres.
        lane_types: ``carla.LaneType`` names, e.g. ``["Driving"]`` or ``["Sidewalk"]``.
        junctions: Keep waypoints inside junctions.
        roads: Keep only these road ids (None: all).

    Returns:
        The waypoints, without duplicates.
    """
    wanted = set(lane_types)
    keep_roads = None if roads is None else {int(r) for r in roads}
    found: dict[tuple[int, int, int, float], Any] = {}
    for wp in carla_map.generate_waypoints(float(spacing_m)):
        if not junctions and wp.is_junction:
            continue
        if keep_roads is not None and int(wp.road_id) not in keep_roads:
            continue
        if "Driving" in wanted and _lane_type(wp) == "Driving":
            found.setdefault(_key(wp), wp)
        if wanted - {"Driving"}:
            side = wp.get_right_lane()
            for _ in range(_MAX_SIDE_STEPS):
                if side is None or (side.lane_id > 0) != (wp.lane_id > 0):
                    break
                if _lane_type(side) in wanted:
                    found.setdefault(_key(side), side)
                side = side.get_right_lane()
    return [found[k] for k in sorted(found)]


def spawn_point(wp: Any, lift_m: float) -> SpawnPoint:
    """The spawn point of one waypoint, lifted by ``lift_m``."""
    loc, rot = wp.transform.location, wp.transform.rotation
    return SpawnPoint(
        location=(float(loc.x), float(loc.y), float(loc.z) + float(lift_m)),
        rotation=(float(rot.pitch), float(rot.yaw), float(rot.roll)),
        road_id=int(wp.road_id),
        section_id=int(wp.section_id),
        lane_id=int(wp.lane_id),
        s=float(wp.s),
        lane_type=_lane_type(wp),
        lane_width=float(wp.lane_width),
    )


def spawn_candidates(
    waypoints: Sequence[Any],
    rng: np.random.Generator,
    *,
    min_separation_m: float,
    lift_m: float = 0.3,
    centre: Sequence[float] | None = None,
    max_distance_m: float | None = None,
    taken: Iterable[Sequence[float]] = (),
    limit: int | None = None,
) -> list[SpawnPoint]:
    """Spawn points in a random order, each at least ``min_separation_m`` from every earlier one and from ``taken``.

    The caller spawns along the list and skips a point where the simulator refuses (a collision with
    something the map holds), so the list holds every point that fits, not just as many as wanted.

    Args:
        waypoints: From :func:`lane_waypoints` (sorted).
        rng: The generator to draw the order from; always passed in.
        min_separation_m: Minimum 3D distance between two points, metres.
        lift_m: Height added to each point.
        centre: ``(x, y, z)``; with ``max_distance_m``, only points this close to it (horizontally) are used.
        max_distance_m: See ``centre``.
        taken: Locations already occupied (other groups' actors), kept ``min_separation_m`` away from.
        limit: Stop after this many points (None: all that fit).

    Returns:
        Spawn points in draw order.
    """
    pool = list(waypoints)
    if centre is not None and max_distance_m is not None:
        cx, cy = float(centre[0]), float(centre[1])
        pool = [
            wp
            for wp in pool
            if math.hypot(wp.transform.location.x - cx, wp.transform.location.y - cy) <= max_distance_m
        ]
    chosen: list[SpawnPoint] = []
    before = [np.asarray(t, dtype=np.float64)[:3] for t in taken]
    occupied = np.empty((len(before) + len(pool), 3))  # every point that may be kept, filled in order
    occupied[: len(before)] = np.reshape(before, (-1, 3))
    n = len(before)
    sep2 = float(min_separation_m) ** 2
    for i in rng.permutation(len(pool)).tolist():
        point = spawn_point(pool[i], lift_m)
        here = np.asarray(point.location)
        if n and float(((occupied[:n] - here) ** 2).sum(axis=1).min()) < sep2:
            continue
        chosen.append(point)
        occupied[n] = here
        n += 1
        if limit is not None and len(chosen) >= limit:
            break
    return chosen
