"""Generate a dataset: plan, run the shards, merge their fragments, write provenance."""

from __future__ import annotations

import json
import logging
import math
import platform
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import simgen
from simgen.engine.files import COCO_FILE, DATASET_FILE, FRAME_DIRS, MANIFEST_FILE, Layout, sha256_file
from simgen.engine.plan import Plan
from simgen.engine.runner import start_runner
from simgen.engine.shard import (
    COCO_FRAGMENT,
    MANIFEST_FRAGMENT,
    ShardJob,
    ShardResult,
    SpecSource,
    writer_fragment,
    writers_for,
)
from simgen.errors import OutputExistsError, SimgenError
from simgen.randomizers.objects import category_of
from simgen.spec.loader import LoadedSpec, load_spec
from simgen.spec.models import AssetEntry

log = logging.getLogger(__name__)

KEY_PACKAGES = ("numpy", "pybullet", "opencv-python-headless", "pydantic", "pycocotools", "pyyaml")
RUN_FILE = "run.json"
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


def _check_out(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse an output folder that can be neither started, resumed nor overwritten (before any work starts)."""
    layout = Layout(out)
    if not (out.exists() and any(out.iterdir())) or (resume and (layout.work / RUN_FILE).is_file()):
        return
    if overwrite:
        if not (layout.work.is_dir() or (out / DATASET_FILE).is_file()):
            raise OutputExistsError(f"{out} is not empty and is not a simgen dataset; refusing to delete it")
    elif resume and layout.work.is_dir() and not any((layout.work / "shards").glob("*/*")):
        pass  # killed before its first shard started: nothing to keep, start afresh
    elif resume:
        raise OutputExistsError(f"{out} is not empty and holds no simgen run to resume")
    else:
        raise OutputExistsError(f"{out} is not empty; pass --resume to continue its run or --overwrite to replace it")


def _prepare_out(out: Path, run: dict[str, Any], *, resume: bool, overwrite: bool) -> None:
    """Make ``out`` ready for the run: resume it, or empty it, then write ``run.json``.

    Call it after :func:`_check_out` has accepted the folder (it refuses what must not be deleted).
    """
    layout = Layout(out)
    run_path = layout.work / RUN_FILE
    if out.exists() and any(out.iterdir()):
        if resume and run_path.is_file():
            previous = json.loads(run_path.read_text())
            keys = ("spec_sha256", "seed", "n_frames", "backend", "renderer", "shard_frames")
            changed = [k for k in keys if previous.get(k) != run.get(k)]
            if changed:
                raise OutputExistsError(
                    f"{out} holds a run with different {', '.join(changed)}; resume needs the same spec, seed, "
                    "frame count, backend, renderer and shard size (use a new folder or --overwrite)"
                )
            return
        if overwrite:
            shutil.rmtree(out)
    from simgen.writers.atomic import atomic_write_json

    # run.json first: from then on the folder is a resumable simgen run, whatever else a kill interrupts.
    (layout.work / "shards").mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_path, run)
    for sub in FRAME_DIRS.values():
        (out / sub).mkdir(parents=True, exist_ok=True)


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
        resume: Continue a run in ``out``, keeping every intact finished frame.
        overwrite: Delete an existing simgen dataset in ``out`` first.
        shard_frames: About how many frames each shard holds (rounded to whole scenes). By default at
            most 64, and small enough that every worker gets sixteen shards; a resumed run keeps the
            size its first run chose.
        asset_roots: Extra folders assets may come from.
        runner: ``local`` (process pool) or ``ray``.
        ray_address: With ``runner="ray"``, a running cluster's address; None starts a local one with
            ``workers`` CPUs.
        progress: Called with the number of newly finished frames.

    Returns:
        A summary with the dataset record.
    """
    start = time.perf_counter()
    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec, asset_roots=asset_roots)
    if resolution is not None:
        loaded = _with_resolution(loaded, resolution)
    if n_frames < 1:
        raise SimgenError(f"n_frames must be >= 1, got {n_frames}")
    if seed < 0:
        raise SimgenError(f"seed must be >= 0, got {seed}")
    out = Path(out)
    _check_out(out, resume=resume, overwrite=overwrite)
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
        _prepare_out(out, run, resume=resume, overwrite=overwrite)
        layout = Layout(out)
        source = SpecSource.of(loaded)
        jobs = [
            ShardJob(
                source, seed, plan, shard, str(out), loaded.spec.backend, renderer, tuple(cats), started.background_sink
            )
            for shard in plan.shards
            if not layout.done_marker(shard.name).is_file()
        ]
        skipped = sum(s.n_frames for s in plan.shards if layout.done_marker(s.name).is_file())
        if progress and skipped:
            progress(skipped)
        results = started.run(jobs, progress)
        dataset = _finalize(loaded, layout, plan, cats, seed, renderer, results, start, workers, runner, requested)
    finally:
        started.close()
    made = sum(r.frames for r in results)
    reused = skipped + sum(r.reused for r in results)
    return GenerateResult(out, n_frames, made, reused, dataset["renderer"], time.perf_counter() - start, dataset)


def _shard_frames(out: Path, requested: int | None, n_frames: int, workers: int, resume: bool) -> int:
    if requested is not None:
        return requested
    run_path = Layout(out).work / RUN_FILE
    if resume and run_path.is_file():
        return int(json.loads(run_path.read_text()).get("shard_frames", 64))
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
    return load_spec(raw, base_dir=loaded.base_dir, asset_roots=loaded.roots)


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
    with atomic_open(layout.root / MANIFEST_FILE, "w") as fh:
        for s in shards:
            with open(layout.shard_dir(s.name) / MANIFEST_FRAGMENT, encoding="utf-8") as frag:
                lines = frag.readlines()
            # A resumed shard may have appended a redone frame after later ones: keep frame order.
            lines.sort(key=lambda line: json.loads(line)["frame"])
            fh.writelines(lines)
    ran = sorted({r.renderer for r in results}) or [_previous_renderer(layout) or renderer]
    totals: dict[str, float] = {}
    for r in results:
        for k, v in r.timings_ms.items():
            totals[k] = totals.get(k, 0.0) + v
    dataset = {
        "simgen_version": simgen.__version__,
        "spec_name": loaded.spec.name,
        "spec_source": str(loaded.source) if loaded.source else None,
        "spec_sha256": loaded.digest(),
        "spec": loaded.resolved(),
        "spec_base_dir": str(loaded.base_dir) if loaded.base_dir else None,
        "asset_roots": [str(r) for r in loaded.roots],
        "seed": seed,
        "n_frames": plan.n_frames,
        "frames_per_scene": plan.frames_per_scene,
        "n_scenes": plan.n_scenes,
        "backend": loaded.spec.backend,
        "renderer": ran[0] if len(ran) == 1 else "+".join(ran),
        "renderer_requested": requested,
        "categories": categories_json,
        "counts": coco_stats if isinstance(coco_stats, dict) else {"coco": coco_stats},
        "files": {"coco": COCO_FILE, "manifest": MANIFEST_FILE, **{k: f"{v}/" for k, v in FRAME_DIRS.items()}},
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
    path = layout.root / DATASET_FILE
    if path.is_file():
        return json.loads(path.read_text()).get("renderer")
    return None
