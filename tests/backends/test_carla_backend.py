"""The CARLA backend end to end on the FAKE carla layer (simgen.testing.fake_carla), and its failure paths.

The fake synthesises the instance and depth images from the actors' boxes with its own pinhole (independent
of simgen's conversions), so these tests check the backend's frames, frame matching, id mapping and clean-up
against an independent model: an actor hidden behind a truck must get no visible box, a visible actor's
pixels must sit inside its projected box, a stale image must not be used.
"""

from __future__ import annotations

import math
import socket
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simgen.backends.carla import CarlaBackend
from simgen.backends.carla_camera import ue_matrix
from simgen.backends.carla_labels import bgra_array, decode_instance, id16
from simgen.backends.carla_randomizers import CarlaCameraMount, CarlaSceneSampler
from simgen.backends.carla_spec import CarlaSection
from simgen.errors import BackendUnavailable, SpecError
from simgen.frame import FrameBuffers
from simgen.labels import annotate, check_rigid
from simgen.labels.masks import mask_bbox
from simgen.randomizers.base import SampleContext
from simgen.sampling import rng_for

carla = pytest.importorskip("carla", reason="the carla client (pip install 'simgen[carla]') is not installed")

from simgen.testing.fake_carla import FakeServer, fake_carla  # noqa: E402  (needs the carla client)

XODR = (Path(__file__).parent / "data" / "simgen_crossing.xodr").read_text()
W, H = 64, 48
MOUNT = (1.5, 0.0, 2.4)


def _section(**extra: Any) -> CarlaSection:
    data: dict[str, Any] = {
        "warmup_ticks": 2,
        "ego": {"autopilot": False, "camera": {"width": W, "height": H, "ticks_per_view": 1, "sensor_timeout_s": 5.0}},
        "actors": [
            {"name": "trucks", "kind": "vehicle", "count": 1, "blueprints": ["vehicle.carlamotors.carlacola"], "autopilot": False},
            {"name": "cars", "kind": "vehicle", "count": 2, "blueprints": ["vehicle.tesla.model3"], "autopilot": False},
        ],
    }  # fmt: skip
    data.update(extra)
    return CarlaSection.model_validate(data)


def _states(section: CarlaSection, seed: int = 0) -> tuple[dict, dict]:
    ctx = SampleContext(spec=types.SimpleNamespace(carla=section), index=0)  # type: ignore[arg-type]
    scene = CarlaSceneSampler().sample(rng_for(seed, "scene"), ctx)
    view = CarlaCameraMount().sample(rng_for(seed, "view"), ctx)
    return scene, view


def _backend(server: FakeServer, section: CarlaSection) -> CarlaBackend:
    return CarlaBackend(config=section, carla_module=fake_carla(server))


def _ego_frame(server: FakeServer, settled: dict) -> np.ndarray:
    return server.actors[settled["actors"]["ego"]["actor_id"]].matrix.copy()


def _put(server: FakeServer, actor_id: int, E: np.ndarray, forward: float, right: float, yaw: float = 0.0) -> None:
    """Place an actor ``forward``/``right`` metres from the ego's origin, on the ground, turned by ``yaw``."""
    p = E @ np.array([forward, right, 0.0, 1.0])
    ego_yaw = math.degrees(math.atan2(E[1, 0], E[0, 0]))
    server.place(actor_id, p[:3], (0.0, ego_yaw + yaw, 0.0))


def _expected_amodal(server: FakeServer, actor_id: int, E: np.ndarray) -> tuple[float, float, float, float]:
    """The COCO box of an actor's real box vertices, projected with a pinhole written out here."""
    actor = server.actors[actor_id]
    cam = E @ ue_matrix(MOUNT, (0.0, 0.0, 0.0))
    verts = np.array([[v.x, v.y, v.z] for v in actor.bounding_box.get_world_vertices(actor.get_transform())])
    local = (np.linalg.inv(cam) @ np.c_[verts, np.ones(8)].T).T  # x forward, y right, z up
    u = 31.5 + 32.0 * local[:, 1] / local[:, 0] + 0.5  # + half a pixel: COCO's pixel edges
    v = 23.5 - 32.0 * local[:, 2] / local[:, 0] + 0.5
    x0, y0 = max(u.min(), 0.0), max(v.min(), 0.0)
    x1, y1 = min(u.max(), float(W)), min(v.max(), float(H))
    return x0, y0, x1 - x0, y1 - y0


def _ids(settled: dict) -> dict[str, int]:
    return {uid: rec["actor_id"] for uid, rec in settled["actors"].items()}


# ------------------------------------------------------------------------------------------------------------


def test_no_server_fails_within_the_timeout_with_one_line() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable) as err:
        CarlaBackend(config={"port": port, "timeout_s": 1.0})  # the real carla client
    elapsed = time.monotonic() - t0
    text = str(err.value)
    assert elapsed < 3.0
    assert "\n" not in text
    assert f"127.0.0.1:{port}" in text
    assert "carlasim/carla:0.9.16" in text and "-RenderOffScreen" in text


def test_renderer_and_visibility_are_declared() -> None:
    assert CarlaBackend.capabilities["visibility"] is False
    with pytest.raises(BackendUnavailable, match="renders with Unreal Engine"):
        CarlaBackend(renderer="egl", carla_module=fake_carla(FakeServer(XODR)))
    server = FakeServer(XODR)
    section = _section()
    scene, view = _states(section)
    with _backend(server, section) as backend:
        assert backend.renderer == "unreal" and backend.name == "carla"
        backend.build(scene)
        backend.settle()
        with pytest.raises(BackendUnavailable, match="visibility"):
            backend.render(view, visibility=True)


def test_end_to_end_an_occluded_actor_gets_no_visible_box() -> None:
    server = FakeServer(XODR)
    section = _section()
    scene, view = _states(section)
    with _backend(server, section) as backend:
        backend.build(scene)
        settled = backend.settle()
        ids = _ids(settled)
        E = _ego_frame(server, settled)
        _put(server, ids["trucks/0"], E, MOUNT[0] + 12.0, 0.0)  # a truck 12 m ahead of the camera
        _put(server, ids["cars/0"], E, MOUNT[0] + 25.0, 0.0)  # a car right behind it: hidden
        _put(server, ids["cars/1"], E, MOUNT[0] + 20.0, 6.0, yaw=30.0)  # a car ahead on the right: in plain view
        buffers = backend.render(view)
        expected = {uid: _expected_amodal(server, ids[uid], E) for uid in ("trucks/0", "cars/0", "cars/1")}
    assert isinstance(buffers, FrameBuffers)
    assert buffers.rgb.shape == (H, W, 3) and buffers.rgb.dtype == np.uint8
    assert buffers.depth_m.shape == (H, W) and buffers.depth_m.dtype == np.float32
    assert buffers.instance_ids.dtype == np.uint16
    check_rigid(buffers.T_world_cam, "T_world_cam")
    assert pytest.approx(np.array([[32.0, 0.0, 31.5], [0.0, 32.0, 23.5], [0.0, 0.0, 1.0]])) == buffers.K
    anns = {a.uid: a for a in annotate(buffers, on_filtered="flag")}
    assert set(anns) == {"trucks/0", "cars/0", "cars/1"}  # the ego is not labeled
    hidden, truck, car = anns["cars/0"], anns["trucks/0"], anns["cars/1"]
    assert hidden.bbox_visible is None and hidden.px_count_visible == 0 and hidden.flags == ["min_visible_px"]
    assert hidden.bbox_amodal == pytest.approx(expected["cars/0"], abs=1e-3)
    assert truck.category == "truck" and car.category == "car"
    for ann, uid in ((truck, "trucks/0"), (car, "cars/1")):
        # The amodal box is the projected box (widened by at most half a pixel to the drawn pixels) ...
        assert ann.bbox_amodal == pytest.approx(expected[uid], abs=0.5 + 1e-3)
        # ... and an unoccluded actor's visible pixels fill it to within a pixel.
        assert ann.bbox_visible == pytest.approx(expected[uid], abs=1.0)
        assert ann.visibility is None  # CARLA cannot render an actor alone
    # 6D pose in OpenCV camera axes: the truck's origin (on the ground) is 12 m ahead and 2.4 m below the camera.
    assert truck.T_cam_obj[:3, 3] == pytest.approx([0.0, 2.4, 12.0], abs=1e-4)
    assert truck.bbox3d_size == pytest.approx((5.2, 2.6, 2.5))
    assert truck.bbox3d_center == pytest.approx((0.0, 0.0, 1.25))
    # Depth over the truck is the fake's depth of its nearest face (12 m minus half its length).
    assert np.median(buffers.depth_m[buffers.instance_ids == truck.instance_id]) == pytest.approx(9.4, abs=1e-3)
    sky = buffers.instance_ids[0] == 0
    assert np.all(buffers.depth_m[0][sky] == 0.0)  # nothing hit: 0, not 1000 m
    assert server.ours() == []  # close() destroyed every actor and sensor


def test_stale_and_late_images_are_matched_by_frame() -> None:
    # Every depth and instance image is re-sent once more ahead of the next, and all arrive 20 ms late.
    server = FakeServer(XODR, stale_repeats={"depth": 1, "instance_segmentation": 1}, image_delay_s=0.02)
    server.autopilot_speed_mps = 40.0  # 2 m per tick: a stale image would be off by several pixels
    section = _section(
        actors=[{"name": "crossers", "kind": "vehicle", "count": 1, "blueprints": ["vehicle.tesla.model3"]}]
    )
    scene, view = _states(section)
    view["carla"]["ticks"] = 3
    with _backend(server, section) as backend:
        backend.build(scene)
        settled = backend.settle()
        crosser = _ids(settled)["crossers/0"]
        E = _ego_frame(server, settled)
        _put(server, crosser, E, MOUNT[0] + 15.0, -9.0, yaw=90.0)  # drives across, left to right
        buffers = backend.render(view)
        server.wait_deliveries()
        stale = server.recent_images("instance_segmentation")[-3]  # what a first-in-the-queue reader would get
        expected = _expected_amodal(server, crosser, E)  # where the crosser is at the rendered frame
    [ann] = annotate(buffers)
    assert ann.bbox_visible == pytest.approx(expected, abs=1.0)
    dropped = buffers.meta["carla"]["dropped_images"]  # type: ignore[index]
    assert dropped["depth"] >= 2 and dropped["instance"] >= 2 and dropped["rgb"] >= 2
    # The planted stale image would have misplaced the box by more than two pixels.
    _, old_ids = decode_instance(bgra_array(stale.raw_data, W, H))
    old_box = mask_bbox(old_ids == id16(crosser))
    assert old_box is not None and abs(old_box[0] - ann.bbox_visible[0]) > 2  # type: ignore[index]


def test_a_lost_image_times_out_and_everything_is_cleaned_up() -> None:
    server = FakeServer(XODR, drop_frames={"depth": set(range(1000, 2000))})
    section = _section()
    scene, view = _states(section)
    view["carla"]["camera"]["sensor_timeout_s"] = 0.3
    backend = _backend(server, section)
    backend.build(scene)
    backend.settle()
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"carla sensor 'depth': no image of frame \d+ within 0.3 s"):
        backend.render(view)
    assert time.monotonic() - t0 < 2.0
    assert server.ours() == []
    assert server.settings.synchronous_mode is False
    assert server.tm_calls[-1] == ("set_synchronous_mode", False)
    with pytest.raises(BackendUnavailable, match="no scene is built"):
        backend.render(view)
    backend.close()


def test_an_error_mid_build_destroys_everything_and_close_is_idempotent() -> None:
    server = FakeServer(XODR, fail_spawn_at=3)  # the ego and the truck spawn, the first car fails
    section = _section()
    scene, view = _states(section)
    backend = _backend(server, section)
    with pytest.raises(BackendUnavailable, match="build failed: fake server: spawn failed"):
        backend.build(scene)
    assert server.spawn_calls == 3
    assert server.ours() == []
    assert server.settings.synchronous_mode is False
    backend.build(scene)  # the backend recovers: the same scene builds on the next try
    backend.settle()
    backend.render(view)
    assert len(server.ours()) == 3 + 1 + 3  # actors, ego, cameras
    backend.close()
    backend.close()
    assert server.ours() == []
    with pytest.raises(BackendUnavailable, match="after close"):
        backend.build(scene)


def test_an_unknown_blueprint_is_a_spec_error_and_cleans_up() -> None:
    server = FakeServer(XODR)
    section = _section(actors=[{"name": "cars", "kind": "vehicle", "blueprints": ["vehicle.tesla.modle3"]}])
    scene, _ = _states(section)
    with _backend(server, section) as backend, pytest.raises(SpecError) as err:
        backend.build(scene)
    assert "did you mean 'vehicle.tesla.model3'" in str(err.value)
    assert err.value.path == "carla.actors[cars].blueprints"
    assert server.ours() == []


def test_synchronous_mode_seeds_and_restored_settings() -> None:
    section = _section(actors=[{"name": "people", "kind": "walker", "count": 2}])
    seeds = []
    for seed in (0, 0, 1):
        server = FakeServer(XODR)
        scene, view = _states(section, seed)
        with _backend(server, section) as backend:
            backend.build(scene)
            backend.settle()
            backend.render(view)
            assert server.settings.synchronous_mode is True
            assert server.settings.fixed_delta_seconds == pytest.approx(0.05)
        calls = dict((c[0], c[1:]) for c in server.tm_calls if c[0] != "set_synchronous_mode")
        seeds.append((calls["set_random_device_seed"][0], server.pedestrians_seed))
        assert server.tm_calls[0] == ("set_synchronous_mode", True) and server.tm_calls[-1] == (
            "set_synchronous_mode",
            False,
        )
        assert server.settings_history[0] == (True, 0.05) and server.settings_history[-1][0] is False
        walkers = [a for a in server.calls if a[0] == "spawn" and a[2].startswith("controller.")]
        assert len(walkers) == 2  # one AI controller per walker
    assert seeds[0] == seeds[1] and seeds[0] != seeds[2]
    assert all(0 <= s < 2**32 for pair in seeds for s in pair)


def test_instance_ids_map_to_actor_ids_even_past_16_bits() -> None:
    server = FakeServer(XODR, first_actor_id=100)
    light = server.add_actor("traffic.traffic_light", (110.0, -8.0, 0.0))  # the map's own: id 100
    server.next_id = 100 + 65536  # the next actor's id wraps onto the light's in the instance image
    section = _section(map_actors={"max_distance_m": 1000})
    scene, view = _states(section)
    with _backend(server, section) as backend:
        backend.build(scene)
        settled = backend.settle()
        ids = _ids(settled)
        assert ("destroy", 100 + 65536) in server.calls  # that actor was replaced ...
        assert len({id16(i) for i in ids.values()}) == len(ids)  # ... so no two tracked actors share pixels
        assert ids[f"map/{light.id}"] == 100
        E = _ego_frame(server, settled)
        _put(server, ids["trucks/0"], E, MOUNT[0] + 10.0, -3.0)
        _put(server, ids["cars/0"], E, MOUNT[0] + 10.0, 3.0)
        _put(server, ids["cars/1"], E, MOUNT[0] + 30.0, 0.0)
        server.place(light.id, (E @ np.array([MOUNT[0] + 15.0, 0.0, 0.0, 1.0]))[:3])  # 0.6 m wide: over 1 px
        buffers = backend.render(view)
        raw = server.recent_images("instance_segmentation")[-1]
        types_of = {a.id: a.type_id for a in server.actors.values()}
    actor_ids = buffers.meta["carla"]["actor_ids"]  # type: ignore[index]
    _, carla_ids = decode_instance(bgra_array(raw.raw_data, W, H))
    by_uid = {o.uid: o for o in buffers.objects}
    seen = set()
    for iid in np.unique(buffers.instance_ids)[1:]:
        actor_id = actor_ids[str(int(iid))]
        assert np.all(carla_ids[buffers.instance_ids == iid] == id16(actor_id))
        obj = next(o for o in buffers.objects if o.instance_id == iid)
        assert types_of[actor_id] == obj.asset
        seen.add(obj.uid)
    assert {"trucks/0", "cars/0", f"map/{light.id}"} <= seen
    assert by_uid[f"map/{light.id}"].category == "traffic light" and by_uid[f"map/{light.id}"].labeled


def test_map_geometry_is_background() -> None:
    server = FakeServer(XODR)
    section = _section()
    scene, view = _states(section)
    with _backend(server, section) as backend:
        backend.build(scene)
        settled = backend.settle()
        ids = _ids(settled)
        E = _ego_frame(server, settled)
        for k, uid in enumerate(("trucks/0", "cars/0", "cars/1")):
            _put(server, ids[uid], E, -30.0 - 10 * k, 0.0)  # out of view, behind the ego
        # A parked car of the map (tag Car, an id no actor has), and a wall whose Unreal id equals the truck's.
        ahead = E @ np.array([[MOUNT[0] + 10.0, -3.0, 0.0, 1.0], [MOUNT[0] + 10.0, 3.0, 0.0, 1.0]]).T
        server.add_static_prop(ahead[:3, 0] + [0, 0, 0.75], (2.0, 1.0, 0.75), tag=14, object_id=4242)
        server.add_static_prop(ahead[:3, 1] + [0, 0, 1.0], (1.0, 1.0, 1.0), tag=3, object_id=id16(ids["trucks/0"]))
        buffers = backend.render(view)
    meta = buffers.meta["carla"]  # type: ignore[index]
    assert not buffers.instance_ids.any()
    assert meta["unmatched_object_px"] > 0 and meta["tag_rejected_px"] > 0
    assert annotate(buffers) == []
    assert (buffers.depth_m > 0).any()


def test_the_same_scene_renders_byte_identical_buffers() -> None:
    section = _section()
    scene, view = _states(section, seed=3)
    outs = []
    for _ in range(2):
        server = FakeServer(XODR)
        with _backend(server, section) as backend:
            backend.build(scene)
            settled = backend.settle()
            ids = _ids(settled)
            E = _ego_frame(server, settled)
            _put(server, ids["cars/0"], E, MOUNT[0] + 10.0, 1.0, yaw=20.0)
            outs.append((settled, backend.render(view)))
    (s1, b1), (s2, b2) = outs
    assert s1 == s2
    for name in ("rgb", "depth_m", "instance_ids", "K", "T_world_cam"):
        assert getattr(b1, name).tobytes() == getattr(b2, name).tobytes(), name
    assert {k: v.tobytes() for k, v in b1.object_poses.items()} == {k: v.tobytes() for k, v in b2.object_poses.items()}
    assert b1.rgb.any() and (b1.instance_ids > 0).any()


def test_weather_of_the_scene_and_of_the_view_reaches_the_world() -> None:
    server = FakeServer(XODR)
    section = _section()
    scene, view = _states(section)
    scene["carla"]["weather"] = {"preset": "WetNight", "fields": {"fog_density": 30.0}}
    view["carla"]["weather"] = {"fields": {"sun_altitude_angle": 45.0}}
    with _backend(server, section) as backend:
        backend.build(scene)
        assert server.weather.fog_density == pytest.approx(30.0)
        assert server.weather.wetness == pytest.approx(carla.WeatherParameters.WetNight.wetness)
        backend.settle()
        buffers = backend.render(view)
    weather = buffers.meta["carla"]["weather"]  # type: ignore[index]
    assert weather["sun_altitude_angle"] == pytest.approx(45.0)
    assert len(weather) == 14


def test_a_malformed_state_is_a_spec_error_with_its_path() -> None:
    server = FakeServer(XODR)
    with _backend(server, _section()) as backend:
        with pytest.raises(SpecError, match=r"scene.carla.fixed_delta_seconds"):
            backend.build(
                {
                    "carla": {
                        "seed": 1,
                        "ego": {"blueprint": {"filter": "vehicle.*", "u": 0.5}},
                        "fixed_delta_seconds": 1,
                    }
                }
            )
        with pytest.raises(SpecError, match="under the key 'carla'"):
            backend.build({"objects": {}})
