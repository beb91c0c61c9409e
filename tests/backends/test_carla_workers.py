"""One CARLA server per worker: the worker seam (``bind_job``/``acquire_backend``), server lists, and the engine hooks.

These need no engine run: they drive :mod:`simgen.engine.worker` with a shard job's spec, and the FAKE layer
(``SIMGEN_FAKE_CARLA``) as the servers.
"""

from __future__ import annotations

import math
import types
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("carla", reason="the carla client (pip install 'simgen[carla]') is not installed")

from simgen.backends import exclusive_slots, has_worker_options, make_backend, worker_env, worker_options
from simgen.backends.carla import (
    FAKE_ENV,
    SERVERS_ENV,
    CarlaBackend,
    ego_relative,
    servers_override,
)
from simgen.backends.carla_spawn import SpawnPoint
from simgen.engine import worker
from simgen.engine.images import SpecSource
from simgen.errors import SimgenError, SpecError
from simgen.spec import load_spec, read_spec_file

REPO = Path(__file__).resolve().parents[2]
XODR = Path(__file__).parent / "data" / "simgen_crossing.xodr"


def loaded(**carla: Any) -> Any:
    raw = read_spec_file(REPO / "scenes" / "carla" / "night_rain.yaml")
    raw["carla"].update(carla)
    return load_spec(raw)


def job_of(spec: Any, backend: str = "carla") -> Any:
    return types.SimpleNamespace(task=types.SimpleNamespace(backend=backend, source=SpecSource.of(spec)))


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv(SERVERS_ENV, raising=False)
    monkeypatch.setenv(FAKE_ENV, str(XODR))
    yield
    worker.close_backends()
    worker.set_worker(0, 1)
    worker._OPTIONS.clear()


def test_worker_k_gets_server_k_mod_n_and_its_own_traffic_manager_port() -> None:
    spec = loaded(servers=["10.0.0.1:2000", "10.0.0.1:2010", "10.0.0.2:2000"])
    got = [worker_options("carla", spec, k, 3) for k in range(3)]
    assert [o["server"] for o in got] == ["10.0.0.1:2000", "10.0.0.1:2010", "10.0.0.2:2000"]
    assert [o["tm_port"] for o in got] == [8000, 8001, 8002]
    assert all(o["config"] is spec.spec.carla for o in got)
    assert exclusive_slots("carla", spec) == 3
    assert has_worker_options("carla") and not has_worker_options("pybullet")


def test_more_workers_than_servers_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="3 workers but 2 CARLA server") as err:
        worker_options("carla", loaded(servers=["a:1", "b:2"]), 0, 3)
    assert err.value.problems[0][0] == "carla.servers"


def test_the_servers_variable_overrides_the_spec_and_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = loaded(servers=["a:1"])
    with servers_override("h1:2000, h2:2000") as servers:
        assert servers == ["h1:2000", "h2:2000"]
        assert CarlaBackend.servers(spec) == ["h1:2000", "h2:2000"]
        assert worker_env("carla", 2)[SERVERS_ENV] == "h1:2000,h2:2000"  # passed on to every worker
    assert CarlaBackend.servers(spec) == ["a:1"]  # restored
    assert CarlaBackend.servers(loaded()) == ["127.0.0.1:2000"]  # host:port when no list
    with pytest.raises(SpecError, match="expected 'host:port'") as err, servers_override("h1:2000,nope"):
        pass
    assert err.value.problems[0][0] == "--carla-servers"
    monkeypatch.setenv(SERVERS_ENV, "x:99999")
    with pytest.raises(SpecError, match="port must be in 1..65535"):
        CarlaBackend.servers(spec)


def test_bind_job_builds_each_worker_a_backend_on_its_server() -> None:
    spec = loaded(servers=["127.0.0.1:2000", "127.0.0.1:2010"])
    for k in (0, 1):
        worker.set_worker(k, 2)
        worker.bind_job(job_of(spec))
        backend = worker.acquire_backend("carla", "fake")
        assert backend.server == ["127.0.0.1:2000", "127.0.0.1:2010"][k]
        assert backend.renderer == "fake" and backend._tm_port == 8000 + k
        assert worker.acquire_backend("carla", "fake") is backend  # reused for the worker's next scene


def test_a_pybullet_job_binds_nothing() -> None:
    spec = load_spec(REPO / "scenes" / "tabletop_clutter.yaml")
    worker.bind_job(job_of(spec, "pybullet"))
    assert worker._OPTIONS == {}


def test_make_backend_carla_takes_the_spec_section_and_a_server() -> None:
    spec = loaded(host="127.0.0.1", port=2000)
    with make_backend("carla", renderer="auto", config=spec.spec.carla, server="127.0.0.1:2042") as backend:
        assert backend.server == "127.0.0.1:2042" and backend.renderer == "fake"
    assert CarlaBackend.probe(spec) == ["127.0.0.1:2000"]


def test_the_fake_renderer_is_named_and_needs_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CarlaBackend.resolve_renderer("auto") == "fake"
    with pytest.raises(SimgenError, match="every CARLA server is FAKE"):
        CarlaBackend.resolve_renderer("unreal")
    monkeypatch.delenv(FAKE_ENV)
    assert CarlaBackend.resolve_renderer("auto") == "unreal"
    with pytest.raises(SimgenError, match="runs only with SIMGEN_FAKE_CARLA"):
        CarlaBackend.resolve_renderer("fake")
    with pytest.raises(SimgenError, match="did you mean 'unreal'"):
        CarlaBackend.resolve_renderer("unreel")


def test_categories_come_from_the_spec_in_a_fixed_order() -> None:
    spec = loaded(
        ego={"labeled": True, "category": "ego car"},
        actors=[{"name": "ambulances", "kind": "vehicle", "category": "emergency"},
                {"name": "people", "kind": "walker"}],
        labels={"rules": [{"semantic_tag": "Pedestrians", "category": "person"},
                          {"semantic_tag": "Car", "category": "car"}], "unmatched": "other"},
    )  # fmt: skip
    assert CarlaBackend.categories(spec) == ["ego car", "emergency", "person", "car", "other"]


def test_ego_relative_points_follow_the_egos_heading() -> None:
    ego = SpawnPoint((10.0, 20.0, 0.3), (0.0, 90.0, 0.0), 1, 0, -1, 0.0, "Driving", 3.5)
    p = ego_relative(ego, 15.0, 3.5, -90.0, 1.0, ego_lift_m=0.3)
    # Heading +y (yaw 90): forward is +y, right is -x in CARLA's left-handed frame.
    assert p.location == pytest.approx((10.0 - 3.5, 20.0 + 15.0, 1.0))
    assert p.rotation == pytest.approx((0.0, 0.0, 0.0))
    q = ego_relative(ego, 0.0, 0.0, 200.0, 0.3, ego_lift_m=0.3)
    assert q.rotation[1] == pytest.approx(-70.0) and math.isclose(q.location[2], 0.3)
