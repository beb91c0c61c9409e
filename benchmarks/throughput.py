"""Throughput of `simgen generate` against the simulator's own floor and a plain PyBullet script.

Prints, in one run on the default scene at 640x480 with 30 objects:

  (a) floor:   the same PyBullet work alone (the same builds, physics steps and render calls with the
               same renderer and cameras, replayed from simgen's manifest), no labels, encoding or files;
  (b) simgen:  frames/s of `simgen generate` with every label and file;
  (c) naive:   frames/s of a plain PyBullet script as the docs teach it (benchmarks/naive_pybullet.py):
               default renderer, a fresh drop and settle for every frame, the same files and boxes.

Targets: b/a >= 0.85 and b/c >= 1.5. Each measurement runs `--rounds` times, interleaved, and the best
is kept (the machine is noisy). Usage: python benchmarks/throughput.py [--frames 48] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pybullet as p

from simgen.backends import make_backend
from simgen.backends.pybullet_camera import gl_list, opengl_projection, opengl_view
from simgen.engine import generate
from simgen.engine.replay import dataset_spec
from simgen.engine.scene_state import backend_scene, merge_patch, replay_scene
from simgen.spec import load_spec, read_spec_file

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "scenes" / "tabletop_clutter.yaml"


def bench_spec(objects: int):
    raw = read_spec_file(SPEC)
    raw["objects"][0]["count"] = objects
    return load_spec(raw, base_dir=SPEC.parent)


def run_simgen(out: Path, frames: int, objects: int, renderer: str) -> tuple[float, str]:
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    result = generate(bench_spec(objects), out, n_frames=frames, seed=0, workers=1, renderer=renderer)
    return frames / (time.perf_counter() - start), result.renderer


def replay_calls(dataset: Path, backend: Any) -> tuple[dict[int, tuple[dict, int]], list[tuple[int, dict]]]:
    """From a dataset's manifest, the simulator work to replay on ``backend``.

    Returns:
        Each scene's backend state and settle step count, by its first frame; each frame's ``getCameraImage``
        keyword arguments (the same camera, light and renderer), in frame order.
    """
    _, loaded = dataset_spec(dataset)
    lines = [json.loads(line) for line in (dataset / "manifest.jsonl").read_text().splitlines()]
    cid = backend.client_id
    pb_renderer = p.ER_BULLET_HARDWARE_OPENGL if backend.renderer == "egl" else p.ER_TINY_RENDERER
    scenes, views = {}, []
    for entry in lines:
        if "scene_patches" in entry:
            scenes[entry["frame"]] = (backend_scene(loaded, replay_scene(loaded, entry["scene_patches"])),
                                      entry["settled"]["steps"])
        view: dict = {}
        for patch in entry["view"].values():
            view = merge_patch(view, patch)
        cam, light = view["camera"], view["light"]
        args = dict(
            width=cam["width"], height=cam["height"],
            viewMatrix=gl_list(opengl_view(np.asarray(cam["T_world_cam"]))),
            projectionMatrix=gl_list(opengl_projection(np.asarray(cam["K"]), cam["width"], cam["height"],
                                                       cam["near"], cam["far"])),
            lightDirection=[d * light["distance"] for d in light["direction"]], lightDistance=light["distance"],
            lightColor=light["color"], lightAmbientCoeff=light["ambient"], lightDiffuseCoeff=light["diffuse"],
            lightSpecularCoeff=light["specular"], shadow=int(light["shadows"]),
            renderer=pb_renderer, flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX, physicsClientId=cid,
        )  # fmt: skip
        views.append((entry["frame"], args))
    return scenes, views


def run_floor(dataset: Path, renderer: str) -> float:
    """Replay exactly the simulator work simgen did: build, the same step count, the same render calls."""
    t_start = time.perf_counter()
    backend = make_backend("pybullet", renderer=renderer)  # starting the simulator is its work too
    t_backend = time.perf_counter() - t_start
    cid = backend.client_id
    # Prepare everything outside the timed loop: only simulator calls are timed.
    scenes, views = replay_calls(dataset, backend)
    start = time.perf_counter()
    for frame, args in views:
        if frame in scenes:
            state, steps = scenes[frame]
            backend.build(state)
            for _ in range(steps):
                p.stepSimulation(physicsClientId=cid)
        p.getCameraImage(**args)
    elapsed = time.perf_counter() - start + t_backend
    backend.close()
    return len(views) / elapsed


def run_naive(out: Path, frames: int, objects: int) -> float:
    from naive_pybullet import main as naive_main

    if out.exists():
        shutil.rmtree(out)
    return naive_main(out, frames, n_objects=objects)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--objects", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--renderer", default="auto")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="simgen-bench-"))
    best = {"a": 0.0, "b": 0.0, "c": 0.0}
    renderer = "?"
    try:
        for _ in range(args.rounds):
            b, renderer = run_simgen(tmp / "simgen", args.frames, args.objects, args.renderer)
            a = run_floor(tmp / "simgen", renderer)
            c = run_naive(tmp / "naive", args.frames, args.objects)
            best = {"a": max(best["a"], a), "b": max(best["b"], b), "c": max(best["c"], c)}
            print(f"round: floor {a:.2f}  simgen {b:.2f}  naive {c:.2f} frames/s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    a, b, c = best["a"], best["b"], best["c"]
    print(f"renderer {renderer}, {args.frames} frames at 640x480, {args.objects} objects, best of {args.rounds}")
    print(f"(a) floor  {a:7.2f} frames/s")
    print(f"(b) simgen {b:7.2f} frames/s")
    print(f"(c) naive  {c:7.2f} frames/s")
    print(f"b/a = {b / a:.3f}  (target >= 0.85)")
    print(f"b/c = {b / c:.3f}  (target >= 1.5)")


if __name__ == "__main__":
    main()
