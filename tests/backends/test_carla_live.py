"""Against a live CARLA server: runs only when ``SIMGEN_CARLA_HOST`` is set (see docs/carla.md).

    docker run -d --rm --gpus all --net=host carlasim/carla:0.9.16 bash CarlaUE4.sh -RenderOffScreen -nosound
    SIMGEN_CARLA_HOST=127.0.0.1 .venv/bin/python -m pytest -q tests/backends/test_carla_live.py

``SIMGEN_CARLA_PORT`` (default 2000) and ``SIMGEN_CARLA_TOWN`` (default: the loaded map) are optional. The test
generates 10 frames and checks the labels against the server's own actor list.
"""

from __future__ import annotations

import os
import types

import numpy as np
import pytest

from simgen.backends.carla import CarlaBackend
from simgen.backends.carla_randomizers import CarlaCameraMount, CarlaSceneSampler
from simgen.backends.carla_spec import CarlaSection
from simgen.labels import annotate, check_rigid
from simgen.randomizers.base import SampleContext
from simgen.sampling import rng_for

HOST = os.environ.get("SIMGEN_CARLA_HOST", "")
pytestmark = pytest.mark.skipif(
    not HOST, reason="needs a live CARLA 0.9.16 server: set SIMGEN_CARLA_HOST (and SIMGEN_CARLA_PORT, default 2000)"
)


def test_ten_live_frames_have_labels_that_match_the_servers_actors() -> None:
    carla = pytest.importorskip("carla", reason="the carla client (pip install 'simgen[carla]') is not installed")
    port = int(os.environ.get("SIMGEN_CARLA_PORT", "2000"))
    section = CarlaSection.model_validate(
        {
            "host": HOST,
            "port": port,
            "timeout_s": 60.0,
            "town": os.environ.get("SIMGEN_CARLA_TOWN") or None,
            "warmup_ticks": 40,
            "ego": {"camera": {"width": 320, "height": 240, "ticks_per_view": 5, "sensor_timeout_s": 30.0}},
            "actors": [
                {"name": "cars", "kind": "vehicle", "count": 20, "spawn": {"max_distance_m": 80}},
                {"name": "people", "kind": "walker", "count": 10, "spawn": {"max_distance_m": 60}},
            ],
        }
    )
    ctx = SampleContext(spec=types.SimpleNamespace(carla=section), index=0)  # type: ignore[arg-type]
    scene = CarlaSceneSampler().sample(rng_for(0, "scene", 0), ctx)
    client = carla.Client(HOST, port)
    client.set_timeout(60.0)
    before = client.get_world().get_settings()
    visible = 0
    with CarlaBackend(config=section) as backend:
        backend.build(scene)
        settled = backend.settle()
        ours = {rec["actor_id"] for rec in settled["actors"].values() if rec["group"] != "map"}
        assert ours, "nothing spawned"
        for i in range(10):
            view = CarlaCameraMount().sample(rng_for(0, "view", i), ctx)
            buffers = backend.render(view)
            check_rigid(buffers.T_world_cam, "T_world_cam")
            live = {a.id: a for a in client.get_world().get_actors()}
            actor_ids = buffers.meta["carla"]["actor_ids"]  # type: ignore[index]
            for obj in buffers.objects:
                actor = live.get(actor_ids[str(obj.instance_id)])
                assert actor is not None, f"{obj.uid}: no such actor on the server"
                assert actor.type_id == obj.asset
            for ann in annotate(buffers, on_filtered="flag"):
                if ann.bbox_visible is None:
                    continue
                visible += 1
                vx, vy, vw, vh = ann.bbox_visible
                ax, ay, aw, ah = ann.bbox_amodal  # type: ignore[misc]
                assert ax - 1 <= vx and ay - 1 <= vy and vx + vw <= ax + aw + 1 and vy + vh <= ay + ah + 1, ann.uid
                # The depth of its pixels lies around its box's distance (CARLA's depth is planar, like simgen's).
                z = buffers.depth_m[buffers.instance_ids == ann.instance_id]
                reach = float(np.linalg.norm(ann.bbox3d_size)) / 2 + 0.5
                centre = float((ann.T_cam_obj @ np.r_[ann.bbox3d_center, 1.0])[2])
                assert abs(float(np.median(z)) - centre) <= reach, ann.uid
    assert visible > 0, "no labeled actor was visible in 10 frames"
    left = {a.id for a in client.get_world().get_actors()}
    assert not ours & left, "actors were left behind"
    after = client.get_world().get_settings()
    assert after.synchronous_mode == before.synchronous_mode
