"""Lane-aware spawn sampling on a real ``carla.Map`` built offline from a hand-made OpenDRIVE file.

``data/simgen_crossing.xodr`` (written for these tests): roads 1 (x 0..100) and 2 (x 120..220) along the x axis,
a junction between them with a straight and a left-turning connecting road, road 5 going north from the turn
and road 6 bending away from road 2's end. Outer roads: one 3.5 m driving lane each way and a 2 m sidewalk on
each side; CARLA flips OpenDRIVE's y axis, so road 1's right-hand lane (id -1) runs at y = +1.75, heading +x.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from simgen.backends.carla_spawn import lane_waypoints, spawn_candidates

carla = pytest.importorskip("carla", reason="the carla client (pip install 'simgen[carla]') is not installed")

XODR = Path(__file__).parent / "data" / "simgen_crossing.xodr"


@pytest.fixture(scope="module")
def town() -> carla.Map:
    return carla.Map("simgen_crossing", XODR.read_text())


def _yaw_of_lane(wp: carla.Waypoint) -> float:
    """The lane's driving direction, from where the map says the next waypoint along it is."""
    nxt = wp.next(1.0)[0].transform.location
    here = wp.transform.location
    return math.degrees(math.atan2(nxt.y - here.y, nxt.x - here.x))


def _angle(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_driving_points_lie_on_driving_lanes_and_face_along_them(town: carla.Map) -> None:
    wps = lane_waypoints(town, 2.0, ["Driving"])
    points = spawn_candidates(wps, np.random.default_rng(0), min_separation_m=8.0, lift_m=0.3)
    assert len(points) > 20
    for p in points:
        assert p.lane_type == "Driving"
        ground = carla.Location(p.location[0], p.location[1], p.location[2] - 0.3)
        # The map finds a driving lane there (the lane id; at a road's end the next road may answer).
        found = town.get_waypoint(ground, project_to_road=False, lane_type=carla.LaneType.Driving)
        assert found is not None and found.lane_id == p.lane_id, p
        # And the point is exactly the centre of its own (road, lane, s), outside junctions.
        wp = town.get_waypoint_xodr(p.road_id, p.lane_id, p.s)
        assert not wp.is_junction  # junctions are left out unless asked for
        centre = wp.transform.location
        assert math.hypot(centre.x - ground.x, centre.y - ground.y) < 1e-3
        assert _angle(p.rotation[1], _yaw_of_lane(wp)) < 1.0
        assert p.location[2] == pytest.approx(centre.z + 0.3)
    by_lane = {(p.road_id, p.lane_id): p for p in points if p.road_id == 1}
    assert by_lane[(1, -1)].location[1] == pytest.approx(1.75)  # right-hand traffic: heading +x at y = +1.75
    assert _angle(by_lane[(1, -1)].rotation[1], 0.0) < 1e-3
    assert by_lane[(1, 1)].location[1] == pytest.approx(-1.75)  # the other way at y = -1.75
    assert _angle(by_lane[(1, 1)].rotation[1], 180.0) < 1e-3


def test_points_keep_their_distance_and_the_same_seed_gives_the_same_points(town: carla.Map) -> None:
    wps = lane_waypoints(town, 2.0, ["Driving"])
    a = spawn_candidates(wps, np.random.default_rng(42), min_separation_m=8.0)
    b = spawn_candidates(list(reversed(wps)), np.random.default_rng(42), min_separation_m=8.0)
    c = spawn_candidates(wps, np.random.default_rng(43), min_separation_m=8.0)
    assert [p.as_dict() for p in a] == [
        p.as_dict() for p in spawn_candidates(wps, np.random.default_rng(42), min_separation_m=8.0)
    ]
    assert a != c
    assert b != a  # the order of the input matters to the draw: lane_waypoints sorts it, so the map's order does not
    xyz = np.array([p.location for p in a])
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=2) + np.eye(len(xyz)) * 1e9
    assert d.min() >= 8.0
    # lane_waypoints itself is sorted by (road, section, lane, s), whatever order the map hands them out.
    keys = [(w.road_id, w.section_id, w.lane_id, w.s) for w in wps]
    assert keys == sorted(keys)


def test_sidewalks_junctions_roads_limits_and_distance(town: carla.Map) -> None:
    side = lane_waypoints(town, 2.0, ["Sidewalk"])
    assert side and all(str(w.lane_type) == "Sidewalk" for w in side)
    on_road_1 = [w for w in side if w.road_id == 1]
    assert {round(abs(w.transform.location.y), 3) for w in on_road_1} == {4.5}  # 3.5 m lane + half of 2 m
    assert not [w for w in side if w.road_id in (3, 4)]  # connecting roads have no sidewalks
    junction = lane_waypoints(town, 2.0, ["Driving"], junctions=True)
    assert {w.road_id for w in junction} >= {3, 4}
    only_5 = lane_waypoints(town, 2.0, ["Driving"], roads=[5])
    assert {w.road_id for w in only_5} == {5}
    near = spawn_candidates(
        lane_waypoints(town, 2.0, ["Driving"]),
        np.random.default_rng(1),
        min_separation_m=2.0,
        centre=(50.0, 0.0, 0.0),
        max_distance_m=20.0,
        taken=[(50.0, 1.75, 0.3)],
        limit=5,
    )
    assert len(near) == 5
    for p in near:
        assert math.hypot(p.location[0] - 50.0, p.location[1]) <= 20.0
        assert math.dist(p.location, (50.0, 1.75, 0.3)) >= 2.0


@pytest.mark.skipif(
    importlib.util.find_spec("scenic") is None, reason="the scenic wheel (with CARLA's Town01.xodr) is not installed"
)
def test_town01_from_the_scenic_wheel() -> None:
    import scenic

    path = Path(scenic.__file__).parent / "assets" / "maps" / "CARLA" / "Town01.xodr"
    if not path.is_file():
        pytest.skip(f"no {path}")
    town01 = carla.Map("Town01", path.read_text())
    points = spawn_candidates(lane_waypoints(town01, 2.0, ["Driving"]), np.random.default_rng(0), min_separation_m=8.0)
    assert len(points) > 100
    for p in points[:50]:
        wp = town01.get_waypoint(
            carla.Location(p.location[0], p.location[1], p.location[2] - 0.3), project_to_road=False
        )
        assert wp is not None and wp.lane_id == p.lane_id
