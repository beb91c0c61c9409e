"""CARLA specs through the real engine (CLI, runners, labels, writers, resume, verify) on the FAKE carla layer.

``SIMGEN_FAKE_CARLA=<map.xodr>`` makes every CARLA backend of a run talk to FAKE in-process servers
(:mod:`simgen.testing.fake_carla`) instead of real ones; the run's renderer is then ``fake`` (dataset.json says
so). Everything else is the engine's own path: spec loading, the CARLA randomizers, ``make_backend("carla")``
with the spec's section, the worker's server, labels, COCO and YOLO, resume and verify.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("carla", reason="the carla client (pip install 'simgen[carla]') is not installed")

from simgen.backends.carla import FAKE_ENV, FAKE_LOG_ENV, SERVERS_ENV
from simgen.cli import app
from simgen.engine import generate
from simgen.engine.scene_state import RandomizerSet
from simgen.engine.verify import verify_dataset
from simgen.engine.worker import TEST_CRASH_ENV
from simgen.errors import SpecError
from simgen.spec import load_spec, read_spec_file

REPO = Path(__file__).resolve().parents[2]
SCENES = REPO / "scenes" / "carla"
XODR = Path(__file__).parent / "data" / "simgen_crossing.xodr"
ALL_SCENES = sorted(p.name for p in SCENES.glob("*.yaml"))


def _wired() -> bool:
    """Whether the engine runs a CARLA spec's own core randomizers (``core_randomizers`` in scene_state)."""
    loaded = load_spec(read_spec_file(SCENES / "night_rain.yaml"))
    return [r.name for r in RandomizerSet.from_spec(loaded).scene][:1] == ["carla/scene-v1"]


pytestmark = pytest.mark.skipif(
    not _wired(),
    reason="simgen/engine/scene_state.py does not run simgen.randomizers.core_randomizers(backend) yet",
)


@pytest.fixture(autouse=True)
def fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAKE_ENV, str(XODR))
    monkeypatch.delenv(SERVERS_ENV, raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)


def small(name: str, tmp_path: Path, size: tuple[int, int] = (96, 72), **carla: Any) -> Path:
    """A copy of a library scene at a tiny resolution (and ``carla`` overrides), written beside the test."""
    raw = read_spec_file(SCENES / name)
    raw["carla"]["ego"]["camera"].update(width=size[0], height=size[1])
    raw["carla"].update(carla)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def night_spec(tmp_path: Path, **carla: Any) -> Path:
    """night_rain with few actors and 2 views per scene: quick, and still traffic, walkers, sensor effects."""
    raw = read_spec_file(SCENES / "night_rain.yaml")
    raw["frames_per_scene"] = 2
    raw["carla"]["ego"]["camera"].update(width=96, height=72)
    raw["carla"]["actors"][0]["count"] = 8
    raw["carla"]["actors"][1]["count"] = 4
    raw["carla"].update(carla)
    path = tmp_path / "night.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def dataset_bytes(root: Path) -> dict[str, bytes]:
    files = {str(p.relative_to(root)): p.read_bytes() for d in ("images", "depth", "instances", "labels")
             for p in sorted((root / d).glob("*"))}  # fmt: skip
    for name in ("annotations.coco.json", "data.yaml"):
        files[name] = (root / name).read_bytes()
    return files


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


# --- end to end through the CLI ----------------------------------------------------------------------------


def test_cli_generate_writes_labels_coco_yolo_and_verifies(tmp_path: Path) -> None:
    spec = night_spec(tmp_path)
    out = tmp_path / "ds"
    result = run_cli("generate", str(spec), "-n", "6", "-o", str(out), "--seed", "5", "--no-preview")
    assert result.exit_code == 0, result.output
    assert "with renderer fake" in result.output
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["backend"] == "carla" and dataset["renderer"] == "fake"  # the fake is named, never silent
    assert dataset["spec"]["carla"]["town"] == "Town10HD_Opt"
    coco = json.loads((out / "annotations.coco.json").read_text())
    names = [c["name"] for c in coco["categories"]]
    assert names[:6] == ["car", "truck", "bus", "motorcycle", "bicycle", "pedestrian"]
    assert len(coco["images"]) == 6 and coco["annotations"], "no actor labeled in 6 frames"
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 96 and y + h <= 72
    labels = sorted((out / "labels").glob("*.txt"))
    assert len(labels) == 6 and any(p.read_text().strip() for p in labels)
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    first = manifest[0]
    assert "0:carla/scene-v1" in first["scene_patches"]  # the scene state came from the CARLA core randomizer
    assert set(first["view"]) == {"0:carla/camera-mount-v1", "1:carla/weather-v1", "2:carla/time-of-day-v1"}
    sun = first["view"]["2:carla/time-of-day-v1"]["carla"]["weather"]["fields"]["sun_altitude_angle"]
    assert sun < 0  # 22:00-24:00: night
    assert {"0:sensor/shot-noise-v1", "1:sensor/motion-blur-v1"} == set(first["sensor"])
    assert verify_dataset(out).ok


def test_sensor_effects_change_carla_rgb_only(tmp_path: Path) -> None:
    spec = night_spec(tmp_path)
    raw = read_spec_file(spec)
    clean = dict(raw, randomizers=raw["randomizers"][:2])  # weather and time of day, no sensor effects
    (tmp_path / "clean.yaml").write_text(yaml.safe_dump(clean, sort_keys=False))
    generate(load_spec(spec), tmp_path / "fx", n_frames=2, seed=1)
    generate(load_spec(tmp_path / "clean.yaml"), tmp_path / "clean", n_frames=2, seed=1)
    for sub, same in (("images", False), ("depth", True), ("instances", True)):
        a = (tmp_path / "fx" / sub / "000000.png").read_bytes()
        b = (tmp_path / "clean" / sub / "000000.png").read_bytes()
        assert (a == b) is same, sub


def test_one_and_two_workers_give_identical_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = night_spec(tmp_path)
    kwargs = {"n_frames": 8, "seed": 3, "shard_frames": 2}
    one = generate(load_spec(spec), tmp_path / "w1", workers=1, **kwargs)
    monkeypatch.setenv(SERVERS_ENV, "127.0.0.1:2000,127.0.0.1:2010")
    two = generate(load_spec(spec), tmp_path / "w2", workers=2, **kwargs)
    monkeypatch.delenv(SERVERS_ENV)
    assert one.made == two.made == 8
    assert dataset_bytes(tmp_path / "w1") == dataset_bytes(tmp_path / "w2")
    other = generate(load_spec(spec), tmp_path / "seed4", n_frames=8, seed=4, shard_frames=2)
    assert other.made == 8 and dataset_bytes(tmp_path / "seed4") != dataset_bytes(tmp_path / "w1")


def test_workers_get_distinct_servers_round_robin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "connections.log"
    monkeypatch.setenv(FAKE_LOG_ENV, str(log))
    spec = night_spec(tmp_path)
    servers = "10.0.0.5:2000,10.0.0.5:2010"
    out = tmp_path / "ds"
    result = run_cli("generate", str(spec), "-n", "8", "-o", str(out), "--shard-frames", "2", "--workers", "2",
                     "--carla-servers", servers, "--no-preview")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in log.read_text().splitlines()]
    probe = {(pid, server) for pid, _, server in lines if int(pid) == os.getpid()}
    assert {s for _, s in probe} == set(servers.split(","))  # the CLI reached both before writing anything
    workers = {(int(pid), int(k), server) for pid, k, server in lines if int(pid) != os.getpid()}
    assert workers, "no worker connected"
    for _, k, server in workers:
        assert server == servers.split(",")[k % 2]  # worker k uses server k mod n
    by_pid = {pid: server for pid, _, server in workers}
    assert len(set(by_pid.values())) == len(by_pid)  # each worker process its own server
    assert verify_dataset(out).ok


def test_more_workers_than_servers_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    spec = night_spec(tmp_path)
    out = tmp_path / "ds"
    result = run_cli("generate", str(spec), "-n", "4", "-o", str(out), "--workers", "2", "--no-preview")
    assert result.exit_code == 2
    assert "2 workers but 1 CARLA server(s)" in result.output and "--carla-servers" in result.output
    assert not out.exists()


def test_carla_servers_option_is_validated_and_only_for_carla(tmp_path: Path) -> None:
    spec = night_spec(tmp_path)
    bad = run_cli("generate", str(spec), "-n", "2", "-o", str(tmp_path / "a"), "--carla-servers", "host-without-port")
    assert bad.exit_code == 2 and "--carla-servers" in bad.output and "host:port" in bad.output
    pybullet = run_cli("generate", str(REPO / "scenes" / "tabletop_clutter.yaml"), "-n", "2", "-o",
                       str(tmp_path / "b"), "--carla-servers", "h:2000")  # fmt: skip
    assert pybullet.exit_code == 2 and "applies to backend: carla" in pybullet.output
    resized = run_cli("generate", str(spec), "-n", "2", "-o", str(tmp_path / "c"), "--resolution", "64x48")
    assert resized.exit_code == 2 and "carla.ego.camera.width" in resized.output
    assert not any((tmp_path / name).exists() for name in "abc")


def test_resume_after_a_killed_worker_gives_identical_bytes(tmp_path: Path) -> None:
    spec = night_spec(tmp_path)
    ref = tmp_path / "ref"
    generate(load_spec(spec), ref, n_frames=8, seed=3, shard_frames=2)
    out = tmp_path / "ds"
    args = ["generate", str(spec), "-o", str(out), "-n", "8", "--seed", "3", "--shard-frames", "2", "--workers", "2",
            "--carla-servers", "127.0.0.1:2000,127.0.0.1:2001", "--no-preview"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    crash = {TEST_CRASH_ENV: f"scene=2,signal=SIGKILL,times=2,state={tmp_path / 'crashes'}"}
    killed = subprocess.run([sys.executable, "-m", "simgen", *args], capture_output=True, text=True, timeout=300,
                            env=env | crash)  # fmt: skip
    assert killed.returncode == 2, killed.stderr
    assert "Traceback" not in killed.stderr and "SIGKILL" in killed.stderr
    assert not (out / "annotations.coco.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "simgen", *args, "--resume"], capture_output=True, text=True,
                             timeout=300, env=env)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert dataset_bytes(out) == dataset_bytes(ref)
    assert verify_dataset(out).ok


def test_bop_and_visibility_are_refused_on_carla(tmp_path: Path) -> None:
    raw = read_spec_file(night_spec(tmp_path))
    raw["labels"] = {"visibility": True}
    path = tmp_path / "vis.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(SpecError, match="cannot render objects alone") as err:
        generate(load_spec(path), tmp_path / "ds", n_frames=2)
    assert err.value.problems[0][0] == "labels.visibility"
    assert not (tmp_path / "ds" / "annotations.coco.json").exists()


# --- the library's CARLA scenes ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_SCENES)
def test_every_library_scene_generates_on_the_fake(name: str, tmp_path: Path) -> None:
    # The scenarios' ``require`` counts pixels, set for 1280x720: 320x240 keeps enough of them.
    spec = small(name, tmp_path, size=(320, 240) if "require" in read_spec_file(SCENES / name) else (96, 72))
    out = tmp_path / "ds"
    result = run_cli("generate", str(spec), "-n", "4", "-o", str(out), "--no-preview")
    assert result.exit_code == 0, result.output
    coco = json.loads((out / "annotations.coco.json").read_text())
    assert len(coco["images"]) == 4 and coco["annotations"], f"{name}: no labeled actor in 4 frames"


def test_the_pedestrian_is_hidden_behind_the_parked_truck_then_steps_out(tmp_path: Path) -> None:
    """Visible boxes come from the instance camera: behind the truck the pedestrian gets no box at all."""
    spec = small("pedestrian_behind_parked.yaml", tmp_path, size=(320, 240))
    out = tmp_path / "ds"
    generate(spec, out, n_frames=6, seed=0)  # a scenario file: 3 cells x 2 views, one scene per cell
    coco = json.loads((out / "annotations.coco.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    seen: dict[str, list[int]] = {}
    for image in coco["images"]:
        level = image["scenario_cell"]["levels"]["pedestrian"]
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        cats = [names[a["category_id"]] for a in anns]
        assert "truck" in cats, f"{level}: the parked truck is not in view"
        seen.setdefault(level, []).append(cats.count("pedestrian"))
    assert seen == {"hidden": [0, 0], "stepping_out": [1, 1], "in_lane": [1, 1]}


def test_the_cut_in_car_is_close_ahead_and_angled_into_the_lane(tmp_path: Path) -> None:
    import numpy as np

    spec = small("cut_in.yaml", tmp_path, size=(320, 240))
    out = tmp_path / "ds"
    generate(spec, out, n_frames=12, seed=0)
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    checked = 0
    for entry in manifest:
        if "settled" not in entry:
            continue
        actors = entry["settled"]["actors"]
        ego, cutter = actors["ego"]["spawn"], actors["cutter/0"]["spawn"]
        levels = entry["scenario_cell"]["levels"]
        gap = {"near": 6.0, "mid": 10.0, "far": 16.0}[levels["gap"]]
        angle = {"slight": 8.0, "sharp": 20.0}[levels["angle"]]
        yaw = np.radians(ego["rotation"][1])
        d = np.subtract(cutter["location"][:2], ego["location"][:2])
        forward, right = d @ [np.cos(yaw), np.sin(yaw)], d @ [-np.sin(yaw), np.cos(yaw)]
        assert forward == pytest.approx(gap, abs=1e-6) and right == pytest.approx(-3.5, abs=1e-6)
        assert (cutter["rotation"][1] - ego["rotation"][1]) % 360 == pytest.approx(angle, abs=1e-6)
        checked += 1
    assert checked == 6  # 3 gaps x 2 angles, one scene each


# --- no server ----------------------------------------------------------------------------------------------


def test_no_server_fails_within_the_timeout_in_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real client (no FAKE layer) against a port where nothing listens."""
    import socket
    import time

    monkeypatch.delenv(FAKE_ENV)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = small("urban_sweep.yaml", tmp_path, port=port, timeout_s=1.0)
    out = tmp_path / "ds"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "simgen", "generate", str(spec), "-n", "10", "-o", str(out)],
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "COLUMNS"})  # fmt: skip
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: no CARLA server answered at 127.0.0.1:") and f":{port} within 1 s" in lines[0]
    assert "docker run" in lines[0] and "carlasim/carla:0.9.16" in lines[0] and "-RenderOffScreen" in lines[0]
    assert not out.exists()  # no half-dataset
    assert elapsed < 30, f"{elapsed:.1f} s"  # 1 s of timeout, plus starting Python and importing simgen


@pytest.mark.slow
def test_ray_tasks_hold_one_server_each_and_match_the_local_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    log = tmp_path / "connections.log"
    monkeypatch.setenv(FAKE_LOG_ENV, str(log))
    monkeypatch.setenv(SERVERS_ENV, "127.0.0.1:2000,127.0.0.1:2010")
    spec = night_spec(tmp_path)
    kwargs = {"n_frames": 8, "seed": 3, "shard_frames": 2}
    local = generate(load_spec(spec), tmp_path / "local", workers=2, **kwargs)
    log.unlink()
    remote = generate(load_spec(spec), tmp_path / "ray", workers=2, runner="ray", **kwargs)
    assert remote.dataset["run"]["runner"] == "ray" and remote.made == local.made == 8
    assert dataset_bytes(tmp_path / "ray") == dataset_bytes(tmp_path / "local")
    lines = [line.split() for line in log.read_text().splitlines()]
    assert len(lines) == 4  # one connection per shard: a slot's task lets its server go when it finishes
    for _, slot, server in lines:
        assert server == ["127.0.0.1:2000", "127.0.0.1:2010"][int(slot)]
