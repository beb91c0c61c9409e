"""The per-shard loop: sample, build, settle, render, label, write. The same function runs everywhere.

A shard appends one fsynced line per finished frame to its fragments, so a killed run keeps every
finished frame; a resumed shard keeps the frames whose files still match their checksums and
redoes the rest (rebuilding their scene, which is deterministic).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simgen.backends.base import Backend
from simgen.engine.files import Layout, encode_png, sha256_file, write_file
from simgen.engine.plan import Plan, Shard
from simgen.engine.scene_state import (
    RandomizerSet,
    apply_sensor,
    backend_scene,
    sample_scene,
    sample_sensor,
    sample_view,
)
from simgen.labels import annotate, depth_to_png_mm
from simgen.spec.loader import LoadedSpec, load_spec
from simgen.writers.coco import frame_record

log = logging.getLogger(__name__)

COCO_FRAGMENT = "coco.jsonl"
MANIFEST_FRAGMENT = "manifest.jsonl"


@dataclass(frozen=True)
class SpecSource:
    """What a worker needs to reload the spec: picklable, small."""

    raw: dict[str, Any]
    base_dir: str | None
    roots: tuple[str, ...]

    @classmethod
    def of(cls, loaded: LoadedSpec) -> SpecSource:
        """Capture a loaded spec."""
        base = str(loaded.base_dir) if loaded.base_dir else None
        return cls(loaded.raw, base, tuple(str(r) for r in loaded.roots))

    def load(self) -> LoadedSpec:
        """Validate again in this process (cheap) and return the loaded spec."""
        return load_spec(self.raw, base_dir=self.base_dir, asset_roots=self.roots, check_assets=False)


@dataclass(frozen=True)
class ShardJob:
    """One unit of work for a runner: everything is plain and picklable."""

    source: SpecSource
    seed: int
    plan: Plan
    shard: Shard
    out: str
    backend: str
    renderer: str
    categories: tuple[str, ...]


@dataclass
class ShardResult:
    """What a finished shard reports back."""

    shard: int
    frames: int
    reused: int
    renderer: str
    timings_ms: dict[str, float] = field(default_factory=dict)


_BACKENDS: dict[tuple[str, str], Backend] = {}


def _backend(name: str, renderer: str) -> Backend:
    # One simulator client per worker process, reused (and reset) for every scene it builds.
    key = (name, renderer)
    if key not in _BACKENDS:
        from simgen.backends import make_backend

        _BACKENDS[key] = make_backend(name, renderer=renderer)
    return _BACKENDS[key]


def close_backends() -> None:
    """Close this process's cached simulators."""
    while _BACKENDS:
        _, backend = _BACKENDS.popitem()
        backend.close()


def finished_frames(layout: Layout, shard: Shard) -> dict[int, tuple[str, str]]:
    """Frames of a shard already on disk and intact: ``frame -> (coco line, manifest line)``.

    A frame counts only if both its fragment lines are complete and every file it lists still has
    its recorded checksum.
    """
    folder = layout.shard_dir(shard.name)
    coco_lines = _complete_lines(folder / COCO_FRAGMENT)
    manifest_lines = _complete_lines(folder / MANIFEST_FRAGMENT)
    kept: dict[int, tuple[str, str]] = {}
    coco_by_frame = {json.loads(line)["image"]["frame_index"]: line for line in coco_lines}
    for line in manifest_lines:
        entry = json.loads(line)
        frame = entry["frame"]
        if frame not in coco_by_frame:
            continue
        files = entry.get("files", {})
        if all(
            (layout.root / f["path"]).is_file() and sha256_file(layout.root / f["path"]) == f["sha256"]
            for f in files.values()
        ):
            kept[frame] = (coco_by_frame[frame], line)
    return kept


def _complete_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    out = []
    for raw in lines[:-1]:  # the last piece is either empty or a torn, unterminated line
        try:
            json.loads(raw)
        except ValueError:
            break
        out.append(raw.decode())
    return out


def run_shard(job: ShardJob, progress: Callable[[int], None] | None = None) -> ShardResult:
    """Generate every frame of one shard into ``job.out``; return when its done-marker is written."""
    layout = Layout(Path(job.out))
    loaded = job.source.load()
    randomizers = RandomizerSet.from_spec(loaded)
    category_ids = {name: i + 1 for i, name in enumerate(job.categories)}
    folder = layout.shard_dir(job.shard.name)
    folder.mkdir(parents=True, exist_ok=True)
    kept = finished_frames(layout, job.shard)
    # Rewrite the fragments with only the intact frames, then append: a torn tail never survives.
    coco_fh = _rewrite(folder / COCO_FRAGMENT, [kept[f][0] for f in sorted(kept)])
    manifest_fh = _rewrite(folder / MANIFEST_FRAGMENT, [kept[f][1] for f in sorted(kept)])
    if progress and kept:
        progress(len(kept))
    backend: Backend | None = None
    totals: dict[str, float] = {}
    made = 0
    try:
        for scene in range(job.shard.scene_start, job.shard.scene_stop):
            frames = [f for f in job.plan.scene_frames(scene) if f not in kept]
            if not frames:
                continue
            backend = backend or _backend(job.backend, job.renderer)
            t0 = time.perf_counter()
            state, scene_patches = sample_scene(loaded, randomizers, job.seed, scene)
            t1 = time.perf_counter()
            backend.build(backend_scene(loaded, state))
            t2 = time.perf_counter()
            settled = backend.settle()
            t3 = time.perf_counter()
            scene_timings = {"sample_scene": _ms(t0, t1), "build": _ms(t1, t2), "settle": _ms(t2, t3)}
            first_frame = job.plan.scene_frames(scene).start
            for frame in frames:
                timings: dict[str, float] = dict(scene_timings) if frame == first_frame else {}
                coco_line, manifest_line = _render_frame(
                    job, loaded, randomizers, backend, state, frame, scene, category_ids, layout, timings
                )
                if frame == first_frame:
                    manifest_line["scene_patches"] = scene_patches
                    manifest_line["settled"] = settled
                manifest_line["timings_ms"] = {k: round(v, 3) for k, v in timings.items()}
                _append(coco_fh, coco_line)
                _append(manifest_fh, manifest_line)
                for k, v in timings.items():
                    totals[k] = totals.get(k, 0.0) + v
                made += 1
                if progress:
                    progress(1)
    finally:
        coco_fh.close()
        manifest_fh.close()
    from simgen.writers.atomic import atomic_write_json

    atomic_write_json(
        layout.done_marker(job.shard.name),
        {"shard": job.shard.index, "frames": job.shard.n_frames, "frame_start": job.shard.frame_start},
    )
    renderer = backend.renderer if backend is not None else job.renderer
    return ShardResult(job.shard.index, made, len(kept), renderer, totals)


def _render_frame(
    job: ShardJob,
    loaded: LoadedSpec,
    randomizers: RandomizerSet,
    backend: Backend,
    state: dict[str, Any],
    frame: int,
    scene: int,
    category_ids: dict[str, int],
    layout: Layout,
    timings: dict[str, float],
) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = loaded.spec
    t0 = time.perf_counter()
    view, view_patches = sample_view(loaded, randomizers, job.seed, frame, state)
    sensor_patches = sample_sensor(loaded, randomizers, job.seed, frame, state)
    t1 = time.perf_counter()
    buffers = backend.render(view, visibility=spec.labels.visibility)
    t2 = time.perf_counter()
    annotations = annotate(
        buffers,
        min_visible_px=spec.labels.min_visible_px,
        min_visibility=spec.labels.min_visibility,
        on_filtered=spec.labels.on_filtered,
    )
    t3 = time.perf_counter()
    rgb = apply_sensor(buffers.rgb, randomizers, sensor_patches, job.seed, frame) if randomizers.sensor else buffers.rgb
    t4 = time.perf_counter()
    files: dict[str, dict[str, str]] = {}
    outputs = spec.outputs
    encoded: dict[str, bytes] = {}
    if outputs.rgb:
        encoded["rgb"] = encode_png(np.ascontiguousarray(rgb))
    if outputs.depth:
        encoded["depth"] = encode_png(depth_to_png_mm(buffers.depth_m))
    if outputs.instances:
        encoded["instances"] = encode_png(buffers.instance_ids.astype(np.uint16))
    t5 = time.perf_counter()
    for kind, data in encoded.items():
        rel = Layout.frame_file(kind, frame)
        files[kind] = {"path": rel, "sha256": write_file(layout.root, rel, data)}
    coco_line = frame_record(
        frame_index=frame,
        scene_index=scene,
        file_name=Layout.frame_file("rgb", frame),
        annotations=annotations,
        category_ids=category_ids,
        depth_file=files["depth"]["path"] if "depth" in files else None,
        instance_file=files["instances"]["path"] if "instances" in files else None,
        K=buffers.K,
        T_world_cam=buffers.T_world_cam,
        width=buffers.width,
        height=buffers.height,
    )
    t6 = time.perf_counter()
    timings.update(
        sample_view=_ms(t0, t1), render=_ms(t1, t2), labels=_ms(t2, t3), sensor=_ms(t3, t4),
        encode=_ms(t4, t5), write=_ms(t5, t6),
    )  # fmt: skip
    manifest_line: dict[str, Any] = {
        "frame": frame,
        "scene": scene,
        "view": view_patches,
        "sensor": sensor_patches,
        "n_objects": len(buffers.objects),
        "n_annotations": len(annotations),
        "files": files,
    }
    return coco_line, manifest_line


def _rewrite(path: Path, lines: list[str]) -> Any:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return open(path, "a", encoding="utf-8")


def _append(fh: Any, obj: dict[str, Any]) -> None:
    fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def _ms(a: float, b: float) -> float:
    return (b - a) * 1000.0
