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
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simgen.backends.base import Backend
from simgen.engine.files import (
    Layout,
    check_manifest_entry,
    coco_image_kind,
    dataset_path,
    encode_frame,
    sha256_file,
    write_file,
)
from simgen.engine.memory import RecyclePolicy, pin_mmap_threshold, release_free_memory
from simgen.engine.plan import Plan, Shard
from simgen.engine.scene_state import (
    RandomizerSet,
    apply_sensor,
    backend_scene,
    sample_scene,
    sample_sensor,
    sample_view,
)
from simgen.errors import SimgenError
from simgen.frame import FrameBuffers
from simgen.labels import annotate
from simgen.spec.loader import LoadedSpec, load_spec
from simgen.writers.base import DatasetWriter, FrameContext
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
    background_sink: bool = True  # label and write on a second thread (when the worker has a spare core)


@dataclass
class ShardResult:
    """What a finished shard reports back."""

    shard: int
    frames: int
    reused: int
    renderer: str
    timings_ms: dict[str, float] = field(default_factory=dict)


_BACKENDS: dict[tuple[str, str], Backend] = {}
_BUILDS: dict[tuple[str, str], int] = {}
#: PyBullet's EGL plugin never frees meshes on resetSimulation (8-10 MB per build, measured): a
#: worker's EGL client is closed and started again after at most this many builds, which frees it.
EGL_RECYCLE_BUILDS = int(os.environ.get("SIMGEN_EGL_RECYCLE_BUILDS", "8"))
#: ... or after at least this many, once it has grown as much as the first client did (see RecyclePolicy).
EGL_RECYCLE_MIN_BUILDS = int(os.environ.get("SIMGEN_EGL_RECYCLE_MIN_BUILDS", str(EGL_RECYCLE_BUILDS // 2)))
_EGL_RECYCLE = RecyclePolicy(EGL_RECYCLE_BUILDS, min_builds=EGL_RECYCLE_MIN_BUILDS)


def _backend(name: str, renderer: str) -> Backend:
    """This worker's simulator for the next scene: one client per process, reused and reset per scene."""
    key = (name, renderer)
    backend = _BACKENDS.get(key)
    if backend is not None and backend.renderer == "egl" and _EGL_RECYCLE.due(_BUILDS.get(key, 0)):
        log.debug("restarting the EGL client after %d builds", _BUILDS.get(key, 0))
        backend.close()  # the output does not change: settling is bit-identical in a fresh client
        release_free_memory()
        backend = None
    if backend is None:
        pin_mmap_threshold()
        from simgen.backends import make_backend

        backend = _BACKENDS[key] = make_backend(name, renderer=renderer)
        _BUILDS[key] = 0
    _BUILDS[key] += 1
    return backend


def close_backends() -> None:
    """Close this process's cached simulators."""
    while _BACKENDS:
        _, backend = _BACKENDS.popitem()
        backend.close()
    _EGL_RECYCLE.reset()


def writers_for(loaded: LoadedSpec) -> list[DatasetWriter]:
    """The format writers the spec's ``outputs`` ask for, besides COCO."""
    outputs = loaded.spec.outputs
    chosen: list[DatasetWriter] = []
    if outputs.yolo:
        from simgen.writers.registry import make_writer

        chosen.append(make_writer("yolo", segments=outputs.yolo_segments))
    if outputs.bop:
        from simgen.writers.registry import make_writer

        chosen.append(make_writer("bop"))
    return chosen


def shard_fragments(writers: list[DatasetWriter]) -> list[str]:
    """File names of a shard's fragments, in the order a frame's lines are appended (the manifest, the commit, last)."""
    return [*(writer_fragment(w.name) for w in writers), COCO_FRAGMENT, MANIFEST_FRAGMENT]


def _frame_of(fragment: str, line: str) -> int | None:
    """The frame a fragment line belongs to, or None for a line that is not one of simgen's."""
    obj = json.loads(line)
    if not isinstance(obj, dict):
        return None
    if fragment == COCO_FRAGMENT:
        image = obj.get("image")
        frame = image.get("frame_index") if isinstance(image, dict) else None
    else:
        frame = obj.get("frame")
    return frame if isinstance(frame, int) and not isinstance(frame, bool) else None


def finished_frames(layout: Layout, shard: Shard, fragments: list[str]) -> dict[int, dict[str, str]]:
    """Frames of a shard already on disk and intact: ``frame -> {fragment: line}``.

    The manifest line is appended last, so it commits the frame. A frame counts only if it belongs to
    the shard, every fragment holds its line, and every file its manifest line lists is inside the
    dataset and still has its recorded checksum (each file is read once). Damaged lines count as
    missing, so their frames are redone.
    """
    folder = layout.shard_dir(shard.name)
    frames = range(shard.frame_start, shard.frame_stop)
    by_fragment: dict[str, dict[int, str]] = {}
    for name in fragments:
        lines: dict[int, str] = {}
        for line in _complete_lines(folder / name):
            frame = _frame_of(name, line)
            if frame in frames:
                lines[frame] = line
        by_fragment[name] = lines
    kept: dict[int, dict[str, str]] = {}
    hashed: dict[tuple[int, int], str] = {}
    for frame, line in by_fragment[MANIFEST_FRAGMENT].items():
        if all(frame in lines for lines in by_fragment.values()) and _files_intact(layout.root, line, hashed):
            kept[frame] = {name: lines[frame] for name, lines in by_fragment.items()}
    return kept


def _files_intact(root: Path, manifest_line: str, hashed: dict[tuple[int, int], str]) -> bool:
    """Whether every file a manifest line lists is inside ``root`` and matches its checksum.

    ``hashed`` maps a file's (device, inode) to its digest: BOP's RGB and depth are hard links to the
    frame's own files, and each is read once.
    """
    try:
        entry = check_manifest_entry(json.loads(manifest_line), MANIFEST_FRAGMENT)
    except SimgenError:
        return False
    for f in entry.get("files", {}).values():
        path = dataset_path(root, f["path"])
        if path is None or not path.is_file():
            return False
        stat = path.stat()
        key = (stat.st_dev, stat.st_ino)
        if key not in hashed:
            hashed[key] = sha256_file(path)
        if hashed[key] != f["sha256"]:
            return False
    return True


def _complete_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    out = []
    for raw in lines[:-1]:  # the last piece is either empty or a torn, unterminated line
        try:
            json.loads(raw)
        except (ValueError, RecursionError):
            break
        out.append(raw.decode())
    return out


@dataclass
class RenderedFrame:
    """A frame fresh from the renderer, on its way to labels and files.

    Attributes:
        frame: Frame index.
        scene: Scene index.
        buffers: What the backend rendered.
        view_patches: The view randomizers' patches, by randomizer.
        sensor_patches: The sensor effects' drawn parameters, by randomizer.
        extra: Manifest fields of the scene's first frame (its scene patches and settled poses), else empty.
        timings: Milliseconds spent so far, by stage.
    """

    frame: int
    scene: int
    buffers: FrameBuffers
    view_patches: dict[str, Any]
    sensor_patches: dict[str, Any]
    extra: dict[str, Any]
    timings: dict[str, float]


class _FrameSink:
    """Labels, encodes and writes frames in frame order: on one background thread, or on the caller's.

    With a spare core (``job.background_sink``), the main thread goes on to the next settle or render while
    the sink thread works: OpenCV's PNG encoder and most numpy work release the GIL, and physics
    settling leaves a core idle. At most ``depth`` frames wait, so memory stays flat. When worker
    processes already fill every core, the thread only adds hand-offs and contention (measured: two
    workers on two cores are 8-11% faster without it), so frames are finished in place.

    Frame order is kept, so a manifest line (the commit) is never written before the files and
    fragment lines of its frame.
    """

    def __init__(self, job: ShardJob, loaded: LoadedSpec, randomizers: RandomizerSet,
                 writers: list[DatasetWriter], layout: Layout, handles: dict[str, Any], fragments: list[str],
                 progress: Callable[[int], None] | None, depth: int = 2) -> None:  # fmt: skip
        self.job, self.loaded, self.randomizers, self.writers = job, loaded, randomizers, writers
        self.layout, self.handles, self.fragments, self.progress = layout, handles, fragments, progress
        self.category_ids = {name: i + 1 for i, name in enumerate(job.categories)}
        self.image_kind = coco_image_kind(loaded.spec.outputs) or "rgb"  # generate() refuses a spec with none
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simgen-sink") if job.background_sink else None
        self.pending: deque[Future[dict[str, float]]] = deque()
        self.depth = depth
        self.totals: dict[str, float] = {}
        self.made = 0

    def submit(self, rendered: RenderedFrame) -> None:
        """Queue one rendered frame; blocks while ``depth`` frames are already waiting."""
        if self.pool is None:
            self._count(self._finish(rendered))
            return
        while len(self.pending) >= self.depth:
            self._count(self.pending.popleft().result())
        self.pending.append(self.pool.submit(self._finish, rendered))

    def close(self, *, wait: bool = True) -> None:
        """Finish (or, after an error, abandon) the queued frames and stop the thread."""
        if self.pool is None:
            return
        try:
            while wait and self.pending:
                self._count(self.pending.popleft().result())
        finally:
            self.pool.shutdown(wait=True, cancel_futures=not wait)

    def _count(self, timings: dict[str, float]) -> None:
        for k, v in timings.items():
            self.totals[k] = self.totals.get(k, 0.0) + v
        self.made += 1
        if self.progress:
            self.progress(1)

    def _finish(self, rendered: RenderedFrame) -> dict[str, float]:
        spec, job, layout = self.loaded.spec, self.job, self.layout
        frame, scene, buffers = rendered.frame, rendered.scene, rendered.buffers
        t0 = time.perf_counter()
        annotations = annotate(
            buffers,
            min_visible_px=spec.labels.min_visible_px,
            min_visibility=spec.labels.min_visibility,
            on_filtered=spec.labels.on_filtered,
        )
        t1 = time.perf_counter()
        rgb = buffers.rgb
        if self.randomizers.sensor:
            rgb = apply_sensor(buffers, self.randomizers, rendered.sensor_patches, job.seed, frame)
        t2 = time.perf_counter()
        encoded = encode_frame(rgb, buffers, spec.outputs)
        t3 = time.perf_counter()
        files: dict[str, dict[str, str]] = {}
        for kind, data in encoded.items():
            rel = Layout.frame_file(kind, frame)
            files[kind] = {"path": rel, "sha256": write_file(layout.root, rel, data)}
        coco_line = frame_record(
            frame_index=frame,
            scene_index=scene,
            file_name=files[self.image_kind]["path"],
            annotations=annotations,
            category_ids=self.category_ids,
            depth_file=files["depth"]["path"] if "depth" in files else None,
            instance_file=files["instances"]["path"] if "instances" in files else None,
            K=buffers.K,
            T_world_cam=buffers.T_world_cam,
            width=buffers.width,
            height=buffers.height,
        )
        t4 = time.perf_counter()
        lines: dict[str, dict[str, Any]] = {COCO_FRAGMENT: coco_line}
        if self.writers:
            paths = {k: v["path"] for k, v in files.items()}
            ctx = FrameContext(frame, scene, buffers, annotations, coco_line, paths, job.categories)
            for writer in self.writers:
                output = writer.write_frame(layout.root, ctx)
                for rel, digest in output.files.items():
                    files[f"{writer.name}:{rel}"] = {"path": rel, "sha256": digest}
                lines[writer_fragment(writer.name)] = {"frame": frame, "record": output.record}
        t5 = time.perf_counter()
        timings = {
            **rendered.timings,
            "labels": _ms(t0, t1),
            "sensor": _ms(t1, t2),
            "encode": _ms(t2, t3),
            "write": _ms(t3, t4),
            "writers": _ms(t4, t5),
        }
        lines[MANIFEST_FRAGMENT] = {
            "frame": frame,
            "scene": scene,
            **rendered.extra,
            "view": rendered.view_patches,
            "sensor": rendered.sensor_patches,
            "n_objects": len(buffers.objects),
            "n_annotations": len(annotations),
            "files": files,
            "timings_ms": {k: round(v, 3) for k, v in timings.items()},
        }
        for name in self.fragments:  # the manifest is last: its line commits the frame
            _append(self.handles[name], lines[name])
        return timings


def run_shard(job: ShardJob, progress: Callable[[int], None] | None = None) -> ShardResult:
    """Generate every frame of one shard into ``job.out``; return when its done-marker is written."""
    layout = Layout(Path(job.out))
    loaded = job.source.load()
    randomizers = RandomizerSet.from_spec(loaded)
    writers = writers_for(loaded)
    folder = layout.shard_dir(job.shard.name)
    folder.mkdir(parents=True, exist_ok=True)
    fragments = shard_fragments(writers)
    kept = finished_frames(layout, job.shard, fragments)
    # Rewrite the fragments with only the intact frames, then append: a torn tail never survives.
    handles = {name: _rewrite(folder / name, [kept[f][name] for f in sorted(kept)]) for name in fragments}
    if progress and kept:
        progress(len(kept))
    backend: Backend | None = None
    # Room for a whole scene's frames: they are labeled and encoded while the next scene settles,
    # which keeps one core busy with physics and the other with this work.
    depth = min(max(2, loaded.spec.frames_per_scene + 1), 16)
    sink = _FrameSink(job, loaded, randomizers, writers, layout, handles, fragments, progress, depth=depth)
    ok = False
    try:
        for scene in range(job.shard.scene_start, job.shard.scene_stop):
            frames = [f for f in job.plan.scene_frames(scene) if f not in kept]
            if not frames:
                continue
            backend = _backend(job.backend, job.renderer)
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
                first = frame == first_frame
                t4 = time.perf_counter()
                view, view_patches = sample_view(loaded, randomizers, job.seed, frame, state)
                sensor_patches = sample_sensor(loaded, randomizers, job.seed, frame, state)
                t5 = time.perf_counter()
                buffers = backend.render(view, visibility=loaded.spec.labels.visibility)
                t6 = time.perf_counter()
                timings = {**(scene_timings if first else {}), "sample_view": _ms(t4, t5), "render": _ms(t5, t6)}
                extra = {"scene_patches": scene_patches, "settled": settled} if first else {}
                sink.submit(RenderedFrame(frame, scene, buffers, view_patches, sensor_patches, extra, timings))
        ok = True
    finally:
        try:
            sink.close(wait=ok)
        finally:
            for fh in handles.values():
                fh.close()
    from simgen.writers.atomic import atomic_write_json

    atomic_write_json(
        layout.done_marker(job.shard.name),
        {"shard": job.shard.index, "frames": job.shard.n_frames, "frame_start": job.shard.frame_start},
    )
    renderer = backend.renderer if backend is not None else job.renderer
    return ShardResult(job.shard.index, sink.made, len(kept), renderer, sink.totals)


def writer_fragment(name: str) -> str:
    """File name of a format writer's per-shard fragment."""
    return f"{name}.jsonl"


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
