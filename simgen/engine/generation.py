"""Generate a dataset: plan, run the shards, merge their fragments, write provenance."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import simgen
from simgen.engine.files import (
    COCO_FILE,
    DATASET_FILE,
    DATASET_KEYS,
    FRAME_DIRS,
    MANIFEST_FILE,
    RUN_FILE,
    RUN_KEYS,
    WORK_DIR,
    FolderScan,
    Layout,
    coco_image_kind,
    remove_owned,
    scan_folder,
    sha256_file,
    simgen_record,
)
from simgen.engine.plan import Plan, Shard
from simgen.engine.runner import start_runner
from simgen.engine.shard import (
    COCO_FRAGMENT,
    MANIFEST_FRAGMENT,
    ShardJob,
    ShardResult,
    SpecSource,
    finished_frames,
    shard_fragments,
    writer_fragment,
    writers_for,
)
from simgen.errors import OutputExistsError, OutputWriteError, SimgenError
from simgen.frame import CAMERA_CONVENTION
from simgen.randomizers.objects import category_of
from simgen.spec.loader import LoadedSpec, load_spec
from simgen.spec.models import AssetEntry

log = logging.getLogger(__name__)

KEY_PACKAGES = ("numpy", "pybullet", "opencv-python-headless", "pydantic", "pycocotools", "pyyaml")
SHARDS_PER_WORKER = 16


@dataclass
class GenerateResult:
    """Summary of a generate call."""

    out: Path
    n_frames: int
    made: int
    reused: int
    renderer: str
    seconds: float
    dataset: dict[str, Any]


def categories(loaded: LoadedSpec) -> list[str]:
    """Category names, in order of first appearance (ids are position + 1).

    They come from the spec alone: labeled object groups' assets, labeled fixtures (one category per
    link, ``<category>/<link>``, with ``link_labels``), and labeled flying occluders. So every worker and
    every shard agrees on the ids before anything renders.
    """
    from simgen.assets import resolve_asset
    from simgen.randomizers.robots import urdf_links

    names: list[str] = []

    def add(name: str) -> None:
        if name not in names:
            names.append(name)

    for group in loaded.spec.objects:
        if group.labeled:
            for a in group.assets:
                add(category_of(a if isinstance(a, AssetEntry) else AssetEntry(asset=a), group.category))
    for fx in loaded.spec.fixtures:
        if not fx.labeled:
            continue
        base = fx.category or fx.name
        if fx.link_labels and isinstance(fx.asset, str) and fx.asset.endswith(".urdf"):
            path = resolve_asset(fx.asset, base_dir=loaded.base_dir, roots=loaded.roots)
            for link in urdf_links(str(path)):
                add(f"{base}/{link}")
        else:
            add(base)
    for entry in loaded.spec.randomizers:
        if entry.type == "occluders/flying-v1" and entry.params.get("labeled"):
            add("occluder")
    return names


def package_versions(names: Sequence[str] = KEY_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that shape the output."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _check_out(out: Path, *, resume: bool, overwrite: bool, spec_file: Path | None) -> None:
    """Refuse an output folder that can be neither started, resumed nor overwritten (before any work starts).

    ``--overwrite`` may only remove what simgen's own records say it wrote: it refuses, naming them,
    when other files are there, when the folder holds no simgen record at all, or when the folder is a
    symbolic link. ``--resume`` needs simgen's own ``.simgen/run.json`` (or a folder holding nothing
    but the empty ``.simgen/`` of a run killed at once).
    """
    if out.is_symlink() and not out.exists():
        raise OutputExistsError(f"{out} is a broken symbolic link; give a folder")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} is a file, not a folder")
    if not (out.exists() and any(out.iterdir())):
        return
    if resume:
        if simgen_record(Layout(out).run_file, RUN_KEYS) is not None or _only_empty_work_dir(out):
            return
        raise OutputExistsError(
            f"{out} is not empty and holds no simgen run to resume (no valid {WORK_DIR}/{RUN_FILE})"
        )
    if overwrite:
        _removable(out, spec_file)
        return
    raise OutputExistsError(f"{out} is not empty; pass --resume to continue its run or --overwrite to replace it")


def _only_empty_work_dir(out: Path) -> bool:
    """Whether ``out`` holds nothing but a ``.simgen/`` without files: a run killed before it wrote ``run.json``."""
    entries = list(out.iterdir())
    if [e.name for e in entries] != [WORK_DIR] or not entries[0].is_dir() or entries[0].is_symlink():
        return False
    # A temporary name (.run.json.XXXXXXXX.tmp) is what a kill during the very first write leaves.
    leftovers = [p for p in entries[0].rglob("*") if (p.is_file() or p.is_symlink()) and not p.name.endswith(".tmp")]
    return not leftovers


def _removable(out: Path, spec_file: Path | None) -> FolderScan:
    """What ``--overwrite`` would delete in ``out``; raises when anything else is there.

    Raises:
        OutputExistsError: ``out`` is a link, holds no simgen record, holds files simgen did not
            write, or holds the spec being run where simgen writes.
    """
    if out.is_symlink():
        raise OutputExistsError(
            f"{out} is a symbolic link; --overwrite never deletes through one (give the folder it points to, "
            f"{out.resolve()})"
        )
    scan = scan_folder(out)
    if not scan.is_simgen:
        raise OutputExistsError(
            f"{out} is not empty and is not a simgen dataset (no simgen {DATASET_FILE} or {WORK_DIR}/{RUN_FILE}); "
            "refusing to delete anything in it"
        )
    if scan.foreign:
        raise OutputExistsError(
            f"{out} holds files simgen did not write: {scan.describe_foreign()}; --overwrite only removes "
            "simgen's own files, so move these away (or use a new folder)"
        )
    if spec_file is not None:
        try:
            rel = spec_file.resolve().relative_to(out.resolve()).as_posix()
        except ValueError:
            rel = None
        if rel in scan.owned:
            raise OutputExistsError(f"the spec being run, {spec_file}, is inside {out} where simgen writes; move it")
    return scan


def _prepare_out(out: Path, run: dict[str, Any], *, resume: bool, overwrite: bool, spec_file: Path | None) -> None:
    """Make ``out`` ready for the run: resume it, or remove the previous run's files, then write ``run.json``.

    Call it after :func:`_check_out` has accepted the folder; the folder is scanned again here, so a
    file added in between is never deleted.
    """
    layout = Layout(out)
    if out.exists() and any(out.iterdir()):
        previous = simgen_record(layout.run_file, RUN_KEYS) if resume else None
        if previous is not None:
            keys = ("spec_sha256", "seed", "n_frames", "backend", "renderer", "shard_frames")
            changed = [k for k in keys if previous.get(k) != run.get(k)]
            if changed:
                raise OutputExistsError(
                    f"{out} holds a run with different {', '.join(changed)}; resume needs the same spec, seed, "
                    "frame count, backend, renderer and shard size (use a new folder or --overwrite)"
                )
            return
        if overwrite:
            remove_owned(_removable(out, spec_file))
    from simgen.writers.atomic import atomic_write_json

    # run.json first: from then on the folder is a resumable simgen run, whatever else a kill interrupts.
    (layout.work / "shards").mkdir(parents=True, exist_ok=True)
    atomic_write_json(layout.run_file, run)
    for sub in FRAME_DIRS.values():
        (out / sub).mkdir(parents=True, exist_ok=True)


def _check_outputs(loaded: LoadedSpec) -> None:
    """Refuse ``outputs`` that cannot make a dataset, before anything is written.

    Raises:
        SimgenError: No image file at all (COCO's ``file_name`` must name one), or BOP without RGB and depth.
    """
    outputs = loaded.spec.outputs
    if coco_image_kind(outputs) is None:
        raise SimgenError(
            "outputs: rgb, depth and instances are all false; COCO's images[].file_name must name a written "
            "image, so turn on at least one of them"
        )
    if outputs.bop and not (outputs.rgb and outputs.depth):
        raise SimgenError("outputs.bop: the BOP tree needs outputs.rgb and outputs.depth to be true")


def generate(
    spec: str | Path | LoadedSpec,
    out: str | Path,
    *,
    n_frames: int,
    seed: int = 0,
    workers: int = 1,
    renderer: str = "auto",
    resolution: tuple[int, int] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    shard_frames: int | None = None,
    asset_roots: Sequence[str | Path] = (),
    runner: str = "local",
    ray_address: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> GenerateResult:
    """Generate ``n_frames`` labeled frames of a scene spec into ``out``.

    Frame i depends only on ``(spec, seed, i)``: the output is byte-identical whatever ``workers``,
    ``shard_frames`` or runner, and a killed run resumed with ``resume=True`` ends identical too.

    Args:
        spec: A spec file or a loaded spec.
        out: Output folder; must be empty unless ``resume`` or ``overwrite``.
        n_frames: Frames to render.
        seed: Dataset seed.
        workers: Worker processes.
        renderer: ``auto``, ``egl`` or ``tiny`` (PyBullet).
        resolution: ``(width, height)`` overriding the spec's camera.
        resume: Continue a run in ``out``, or repair a finished one: every recorded checksum is checked
            (as ``verify`` does) and exactly the missing or damaged frames are redone; the dataset-level
            files (COCO, manifest, YOLO/BOP files, dataset.json) are always rebuilt.
        overwrite: Delete a previous simgen run in ``out`` first: only the files simgen's own records
            list; refused (nothing deleted) when ``out`` holds anything else or is a symbolic link.
        shard_frames: About how many frames each shard holds (rounded to whole scenes). By default at
            most 64, and small enough that every worker gets sixteen shards; a resumed run keeps the
            size its first run chose.
        asset_roots: Extra folders assets may come from.
        runner: ``local`` (process pool) or ``ray``.
        ray_address: With ``runner="ray"``, a running cluster's address; None starts a local one with
            ``workers`` CPUs.
        progress: Called with the number of newly finished frames.

    Returns:
        A summary with the dataset record; ``made`` frames were rendered by this call and ``reused`` kept.

    Raises:
        OutputExistsError: ``out`` cannot be started, resumed or overwritten (see above).
        SimgenError: ``resume`` and ``overwrite`` together, bad counts, or ``outputs`` with no image.
    """
    start = time.perf_counter()
    if resume and overwrite:  # before anything is read or written
        raise SimgenError("resume and overwrite exclude each other: resume keeps the run in OUT, overwrite deletes it")
    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec, asset_roots=asset_roots)
    if resolution is not None:
        loaded = _with_resolution(loaded, resolution)
    if n_frames < 1:
        raise SimgenError(f"n_frames must be >= 1, got {n_frames}")
    if seed < 0:
        raise SimgenError(f"seed must be >= 0, got {seed}")
    _check_outputs(loaded)
    out = Path(out)
    spec_file = Path(loaded.source) if loaded.source else None
    _check_out(out, resume=resume, overwrite=overwrite, spec_file=spec_file)
    shard_frames = _shard_frames(out, shard_frames, n_frames, workers, resume)
    plan = Plan.build(n_frames, loaded.spec.frames_per_scene, shard_frames=shard_frames)
    # Workers (or the Ray cluster) start now and import simgen while this process probes the renderer.
    started = start_runner(runner, workers, n_jobs=len(plan.shards), ray_address=ray_address)
    try:
        from simgen.backends import resolve_renderer

        requested = renderer
        renderer = resolve_renderer(loaded.spec.backend, renderer)
        cats = categories(loaded)
        run = {
            "spec_sha256": loaded.digest(),
            "seed": seed,
            "n_frames": n_frames,
            "backend": loaded.spec.backend,
            "renderer": renderer,
            "shard_frames": shard_frames,
        }
        _prepare_out(out, run, resume=resume, overwrite=overwrite, spec_file=spec_file)
        layout = Layout(out)
        source = SpecSource.of(loaded)
        todo, skipped = _shards_to_run(layout, plan, shard_fragments(writers_for(loaded)))
        if progress and skipped:
            progress(skipped)
        jobs = [
            ShardJob(
                source, seed, plan, shard, str(out), loaded.spec.backend, renderer, tuple(cats), started.background_sink
            )
            for shard in todo
        ]
        results = started.run(jobs, progress)
        dataset = _finalize(
            loaded, layout, plan, cats, seed, renderer, results, start, workers, runner, requested, resolution
        )
    except OSError as exc:
        # This process writes run.json, COCO, the manifest and dataset.json: a full disk there says so too.
        if OutputWriteError.convertible(exc):
            raise OutputWriteError.from_os_error(exc, out) from None
        raise
    finally:
        started.close()
    made = sum(r.frames for r in results)
    reused = skipped + sum(r.reused for r in results)
    return GenerateResult(out, n_frames, made, reused, dataset["renderer"], time.perf_counter() - start, dataset)


def _shards_to_run(layout: Layout, plan: Plan, fragments: list[str]) -> tuple[list[Shard], int]:
    """The shards this run must (re)do, and how many frames the others keep.

    A shard with a done marker is kept only if every frame's files still match their recorded checksums
    (what ``verify`` checks): a damaged one loses its marker and runs again, and redoes exactly its
    damaged frames. Shards are checked on a few threads (hashing releases the GIL); each file is hashed once.
    """
    shards_dir = layout.work / "shards"
    markers = {p.name for p in shards_dir.glob("*.done.json")} if shards_dir.is_dir() else set()
    finished = [s for s in plan.shards if layout.done_marker(s.name).name in markers]
    threads = max(1, min(len(finished), os.cpu_count() or 1, 8))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="simgen-check") as pool:
        counts = pool.map(lambda s: len(finished_frames(layout, s, fragments)), finished)
        intact = dict(zip(finished, counts, strict=True))
    todo: list[Shard] = []
    skipped = 0
    for shard in plan.shards:
        if intact.get(shard) == shard.n_frames:
            skipped += shard.n_frames
            continue
        if shard in intact:
            log.info("%s: %d of %d frames damaged or missing; redoing them", shard.name,
                     shard.n_frames - intact[shard], shard.n_frames)  # fmt: skip
            layout.done_marker(shard.name).unlink(missing_ok=True)  # it no longer tells the truth
        todo.append(shard)
    return todo, skipped


def _shard_frames(out: Path, requested: int | None, n_frames: int, workers: int, resume: bool) -> int:
    if requested is not None:
        return requested
    previous = simgen_record(Layout(out).run_file, RUN_KEYS) if resume else None
    if previous is not None and isinstance(previous.get("shard_frames"), int) and previous["shard_frames"] >= 1:
        return int(previous["shard_frames"])
    # Sixteen shards per worker, so that the last one to finish is short and no core idles for long
    # at the end; never more than 64 frames, so a kill loses little and a resume checks little.
    return max(1, min(64, math.ceil(n_frames / (SHARDS_PER_WORKER * max(workers, 1)))))


def _with_resolution(loaded: LoadedSpec, resolution: tuple[int, int]) -> LoadedSpec:
    raw = json.loads(json.dumps(loaded.raw))
    raw.setdefault("camera", {})
    raw["camera"]["width"], raw["camera"]["height"] = int(resolution[0]), int(resolution[1])
    intr = raw["camera"].get("intrinsics")
    if intr is not None:
        raise SimgenError("--resolution cannot rescale explicit camera.intrinsics; edit the spec instead")
    resized = load_spec(raw, base_dir=loaded.base_dir, asset_roots=loaded.roots)
    resized.source = loaded.source  # the file it came from, still; dataset.json records the override
    return resized


def _finalize(
    loaded: LoadedSpec,
    layout: Layout,
    plan: Plan,
    cats: list[str],
    seed: int,
    renderer: str,
    results: list[ShardResult],
    start: float,
    workers: int,
    runner: str,
    requested: str,
    resolution: tuple[int, int] | None,
) -> dict[str, Any]:
    from simgen.writers.atomic import atomic_open, atomic_write_json
    from simgen.writers.coco import write_coco

    shards = plan.shards
    missing = [s.name for s in shards if not layout.done_marker(s.name).is_file()]
    if missing:
        raise SimgenError(f"shards not finished: {', '.join(missing[:5])}; rerun with --resume")
    categories_json = [{"id": i + 1, "name": name, "supercategory": "object"} for i, name in enumerate(cats)]
    fragments = [layout.shard_dir(s.name) / COCO_FRAGMENT for s in shards]
    info = {
        "description": f"simgen dataset of scene '{loaded.spec.name}'",
        "version": simgen.__version__,
        "spec_sha256": loaded.digest(),
        "seed": seed,
    }
    coco_stats = write_coco(layout.root / COCO_FILE, fragments, categories_json, info)
    totals: dict[str, float] = {}
    with atomic_open(layout.root / MANIFEST_FILE, "w") as fh:
        for s in shards:
            with open(layout.shard_dir(s.name) / MANIFEST_FRAGMENT, encoding="utf-8") as frag:
                entries = [(json.loads(line), line) for line in frag]
            # A resumed shard may have appended a redone frame after later ones: keep frame order.
            entries.sort(key=lambda pair: pair[0]["frame"])
            for entry, line in entries:
                fh.write(line)
                # Every frame's own timings, kept or redone: the totals describe the whole dataset.
                timings = entry.get("timings_ms")
                for k, v in timings.items() if isinstance(timings, dict) else ():
                    totals[k] = totals.get(k, 0.0) + (v if isinstance(v, (int, float)) else 0.0)
    ran = sorted({r.renderer for r in results}) or [_previous_renderer(layout) or renderer]
    dataset = {
        "simgen_version": simgen.__version__,
        "spec_name": loaded.spec.name,
        "spec_source": str(loaded.source) if loaded.source else None,
        "spec_sha256": loaded.digest(),
        "spec": loaded.resolved(),
        # --resolution rewrote the camera of the spec above (and its hash); the file is spec_source.
        "resolution_override": [int(v) for v in resolution] if resolution is not None else None,
        "spec_base_dir": str(loaded.base_dir) if loaded.base_dir else None,
        "asset_roots": [str(r) for r in loaded.roots],
        "seed": seed,
        "n_frames": plan.n_frames,
        "frames_per_scene": plan.frames_per_scene,
        "n_scenes": plan.n_scenes,
        "backend": loaded.spec.backend,
        "renderer": ran[0] if len(ran) == 1 else "+".join(ran),
        "renderer_requested": requested,
        "camera_convention": CAMERA_CONVENTION,
        "categories": categories_json,
        "counts": coco_stats if isinstance(coco_stats, dict) else {"coco": coco_stats},
        "files": {
            "coco": COCO_FILE,
            "manifest": MANIFEST_FILE,
            **{k: f"{v}/" for k, v in FRAME_DIRS.items() if getattr(loaded.spec.outputs, k)},
        },
        # What COCO's images[].file_name names: the RGB, or with outputs.rgb off the depth (else instance) PNG.
        "coco_images": coco_image_kind(loaded.spec.outputs),
        "run": {
            "workers": workers,
            "runner": runner,
            "shards": len(shards),
            "seconds": round(time.perf_counter() - start, 3),
        },
        "timings_ms_total": {k: round(v, 1) for k, v in totals.items()},
        "python": platform.python_version(),
        "packages": package_versions(),
    }
    checksums = {name: sha256_file(layout.root / name) for name in (COCO_FILE, MANIFEST_FILE)}
    for writer in writers_for(loaded):
        fragment_paths = [layout.shard_dir(s.name) / writer_fragment(writer.name) for s in shards]
        checksums.update(writer.finalize(layout.root, _stream_records(fragment_paths), dataset))
    dataset["formats"] = ["coco", *(w.name for w in writers_for(loaded))]
    dataset["checksums"] = checksums
    atomic_write_json(layout.root / DATASET_FILE, dataset)
    return dataset


def _stream_records(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """The records of a writer's fragments in frame order, one shard in memory at a time.

    Shards are in frame order; inside one, a resumed run may have appended a redone frame after later
    ones, so each shard's (small) fragment is sorted.
    """
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            lines = sorted((json.loads(line) for line in fh), key=lambda entry: entry["frame"])
        for entry in lines:
            if entry["record"] is not None:
                yield entry["record"]


def _previous_renderer(layout: Layout) -> str | None:
    previous = simgen_record(layout.root / DATASET_FILE, DATASET_KEYS)  # None when damaged: it is rebuilt
    renderer = previous.get("renderer") if previous else None
    return renderer if isinstance(renderer, str) else None
