"""``simgen generate`` against a live CARLA server: runs only when ``SIMGEN_CARLA_HOST`` is set (see docs/carla.md).

    docker run -d --rm --gpus all --net=host carlasim/carla:0.9.16 bash CarlaUE4.sh -RenderOffScreen -nosound
    SIMGEN_CARLA_HOST=127.0.0.1 .venv/bin/python -m pytest -q tests/backends/test_carla_engine_live.py

The whole engine path (spec, randomizers, worker, backend, labels, COCO/YOLO, verify) renders 10 frames of
``scenes/carla/night_rain.yaml`` at 320x240; a second client watches the server's actor list meanwhile, and the
labels are checked against it. ``SIMGEN_CARLA_PORT`` (default 2000) and ``SIMGEN_CARLA_TOWN`` (default: the
spec's Town10HD_Opt) are optional.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

import pytest
import yaml

from simgen.engine import generate
from simgen.engine.verify import verify_dataset
from simgen.spec import load_spec, read_spec_file

HOST = os.environ.get("SIMGEN_CARLA_HOST", "")
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not HOST, reason="needs a live CARLA 0.9.16 server: set SIMGEN_CARLA_HOST (and SIMGEN_CARLA_PORT, default 2000)"
)


def test_generate_ten_live_frames_and_check_labels_against_the_servers_actors(tmp_path: Path) -> None:
    carla = pytest.importorskip("carla", reason="the carla client (pip install 'simgen[carla]') is not installed")
    port = int(os.environ.get("SIMGEN_CARLA_PORT", "2000"))
    raw = read_spec_file(REPO / "scenes" / "carla" / "night_rain.yaml")
    raw["carla"].update(host=HOST, port=port, timeout_s=60.0)
    if os.environ.get("SIMGEN_CARLA_TOWN"):
        raw["carla"]["town"] = os.environ["SIMGEN_CARLA_TOWN"]
    raw["carla"]["ego"]["camera"].update(width=320, height=240, sensor_timeout_s=30.0)
    spec = tmp_path / "live.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))

    client = carla.Client(HOST, port)
    client.set_timeout(60.0)
    before = client.get_world().get_settings()
    seen: dict[int, str] = {}  # every actor the server listed during the run: id -> blueprint
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(RuntimeError):
                seen.update({a.id: a.type_id for a in client.get_world().get_actors()})
            stop.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = generate(load_spec(spec), tmp_path / "ds", n_frames=10, seed=0)
    finally:
        stop.set()
        watcher.join()
    out = tmp_path / "ds"
    assert result.made == 10 and result.renderer == "unreal"
    assert verify_dataset(out).ok

    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    actors = {}
    for entry in manifest:
        if "settled" in entry:
            for uid, rec in entry["settled"]["actors"].items():
                actors[(entry["scene"], uid)] = rec
                # Every tracked actor is one the server had, with the blueprint simgen recorded.
                assert seen.get(rec["actor_id"]) == rec["blueprint"], (uid, rec)
    coco = json.loads((out / "annotations.coco.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    images = {im["id"]: im for im in coco["images"]}
    assert coco["annotations"], "no labeled actor was visible in 10 frames"
    expected = {"vehicle.": ("car", "truck", "bus", "motorcycle", "bicycle"), "walker.": ("pedestrian",),
                "traffic.": ("traffic light", "traffic sign")}  # fmt: skip
    for ann in coco["annotations"]:
        rec = actors[(images[ann["image_id"]]["scene_index"], ann["uid"])]
        prefix = next(p for p in expected if rec["blueprint"].startswith(p))
        assert names[ann["category_id"]] in expected[prefix], (ann["uid"], rec["blueprint"])
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x + w <= 320 and y + h <= 240

    ours = {rec["actor_id"] for rec in actors.values() if rec["group"] != "map"}
    left = {a.id for a in client.get_world().get_actors()}
    assert not ours & left, "actors were left behind"
    after = client.get_world().get_settings()
    assert after.synchronous_mode == before.synchronous_mode
    assert after.fixed_delta_seconds == before.fixed_delta_seconds
