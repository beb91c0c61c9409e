"""One run loop for every modality: plan records into shards, run them, commit, resume, merge, record provenance.

Images, tables and text all write datasets through :func:`run_dataset`. What the loop does is the same for
all of them:

* **The output folder.** It refuses a folder it may not write into, and removes a previous run with
  ``overwrite`` (only the files simgen's own records list). With ``resume`` it continues, or repairs, the run
  in the folder. ``run.json`` goes in first, so that from then on the folder is a resumable simgen run.
* **The plan.** It plans ``n_records`` records into groups (records that share a set-up, such as the views of
  one settled scene) and the groups into shards (:class:`~simgen.engine.plan.Plan`). Shards follow group
  boundaries, and a record's randomness derives from ``SeedSequence([seed, *key])`` with a key naming the
  record or its group (:meth:`ShardWork.rng`), never the shard: shard boundaries change with the number of
  workers, and the output must not.
* **The shards** run on a runner (in process, a local pool, Ray). Each shard appends one fsynced line per
  finished record to its fragments, the manifest line last, which commits the record. A killed run keeps
  every committed record. A resumed shard keeps the records whose files still match their checksums and
  redoes the rest; a shard with a done marker is rechecked the same way.
* **Finalizing.** The fragments are merged in record order: the manifest, then each writer's dataset-level
  files. ``dataset.json`` records the provenance (spec hash, seed, versions of the packages that shape the
  output) and the checksum of every dataset-level file. Every manifest line says where its record comes
  from: ``origin`` (``"synthetic"``) and ``generation`` (``0`` for data simgen made from a spec).
  Each manifest line ends with a ``chain`` link to the lines before it and ``dataset.json`` keeps the head
  (``manifest_chain``), so ``simgen verify`` names the first record that was changed.

What differs between modalities plugs in through the :class:`Modality` protocol (in the main process) and
the :class:`RecordTask` protocol (in the workers). The image modality is :mod:`simgen.engine.images`.

Example: a modality of table rows, in blocks (``tests/engine/test_modality.py`` runs a complete one)::

    @dataclass(frozen=True, kw_only=True)
    class RowTask:                                   # picklable: it travels to the workers
        record_key: ClassVar[str] = "block"
        model_file: str
        rows_per_block: int

        def writers(self) -> list[DatasetWriter]:
            return [CsvWriter()]                     # write_frame(root, ctx) gets a RowBlock context

        def produce(self, work: ShardWork) -> None:
            model = load_model(self.model_file)     # once per shard (cache it per process if costly)
            for block in work.todo():               # the shard's records that are not committed yet
                rows = model.sample(self.rows_per_block, work.rng("block", block))
                work.submit(functools.partial(make_record, block, rows))  # -> Record(index=block, ...)

    class TableModality:
        name, record_key = "tables", "block"
        def digest(self) -> str: ...                # the fitted model's hash: spec_sha256
        def identity(self) -> dict[str, Any]: ...   # what else a resume must share, e.g. {"rows_per_block": 1000}
        def check(self, config: RunConfig) -> None: ...
        def plan(self, n_records: int, shard_records: int) -> Plan:
            return Plan.build(n_records, 1, shard_frames=shard_records)   # groups of one block
        def worker_setup(self, workers: int) -> WorkerSetup: return WorkerSetup(imports=("pandas",))
        def start(self, config: RunConfig) -> None: ...
        def task(self) -> RowTask: return RowTask(model_file=..., rows_per_block=1000)
        def dataset_fields(self, done: Finished) -> dict[str, Any]:
            return {"spec_sha256": ..., "seed": done.config.seed, "n_blocks": done.plan.n_frames, ...}
        def packages(self) -> Sequence[str]: return ("numpy", "pandas", "scipy")

    run_dataset(TableModality(...), RunConfig(out=Path("out"), n_records=100, seed=1, workers=2))

A record's manifest line is ``{record_key: i, "origin": "synthetic", "generation": 0, **Record.fields, "files":
{...}, "timings_ms": {...}, "chain": link}``; ``simgen verify`` and ``--resume`` check every file listed there.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import simgen
from simgen.engine.files import (
    DATASET_FILE,
    DATASET_KEYS,
    MANIFEST_FILE,
    RUN_FILE,
    RUN_KEYS,
    WORK_DIR,
    FolderScan,
    Layout,
    remove_owned,
    scan_folder,
    simgen_record,
)
from simgen.engine.plan import Plan, Shard
from simgen.engine.runner import start_runner
from simgen.engine.shard import ShardJob, ShardResult, finished_records
from simgen.engine.sink import GENERATION, MANIFEST_FRAGMENT, ORIGIN, shard_fragments, writer_fragment
from simgen.errors import OutputExistsError, OutputWriteError, SimgenError
from simgen.io import atomic_open, atomic_write_json, sha256_file
from simgen.provenance.chain import ChainWriter

if TYPE_CHECKING:
    from simgen.engine.shard import ShardWork
    from simgen.engine.worker import WorkerSetup
    from simgen.writers.base import DatasetWriter

log = logging.getLogger(__name__)

__all__ = [
    "GENERATION",
    "ORIGIN",
    "Finished",
    "Modality",
    "RecordTask",
    "RunConfig",
    "RunResult",
    "package_versions",
    "run_dataset",
]

#: Shards per worker by default: the last one to finish is short, so no core idles long at the end.
SHARDS_PER_WORKER = 16
#: The most records a shard holds by default: a kill loses little and a resume checks little.
MAX_SHARD_RECORDS = 64


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """How to run a dataset, whatever its modality.

    Attributes:
        out: Output folder; must be empty unless ``resume`` or ``overwrite``.
        n_records: Records to make (frames for images).
        seed: Dataset seed (>= 0).
        workers: Worker processes (local) or CPUs of a local Ray cluster.
        resume: Continue the run in ``out``, or repair a finished one: every recorded checksum is checked and
            exactly the missing or damaged records are redone; the dataset-level files are always rebuilt.
        overwrite: Delete a previous simgen run in ``out`` first: only the files simgen's own records list;
            refused (nothing deleted) when ``out`` holds anything else or is a symbolic link.
        shard_records: About how many records each shard holds (rounded to whole groups). By default at most
            :data:`MAX_SHARD_RECORDS`, and small enough that every worker gets :data:`SHARDS_PER_WORKER`
            shards; a resumed run keeps the size its first run chose.
        runner: ``local`` (process pool) or ``ray``.
        ray_address: With ``runner="ray"``, a running cluster's address; None starts a local one.

    Raises:
        SimgenError: ``resume`` and ``overwrite`` together.
    """

    out: Path
    n_records: int
    seed: int = 0
    workers: int = 1
    resume: bool = False
    overwrite: bool = False
    shard_records: int | None = None
    runner: str = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.resume and self.overwrite:  # before anything is read or written
            raise SimgenError(
                "resume and overwrite exclude each other: resume keeps the run in OUT, overwrite deletes it"
            )

    def check_counts(self, record_key: str = "frame") -> None:
        """Refuse a record count or seed no run can have (``record_key`` names the count: ``n_frames``).

        Raises:
            SimgenError: ``n_records`` < 1 or ``seed`` < 0.
        """
        if self.n_records < 1:
            raise SimgenError(f"n_{record_key}s must be >= 1, got {self.n_records}")
        if self.seed < 0:
            raise SimgenError(f"seed must be >= 0, got {self.seed}")


@runtime_checkable
class RecordTask(Protocol):
    """What a shard runs to make its records, in a worker process: plain and picklable.

    Attributes:
        record_key: The manifest key of a record's index (``"frame"`` for images).
    """

    record_key: str

    def writers(self) -> list[DatasetWriter]:
        """The format writers every record goes to, in order (the same list as the modality's)."""
        ...

    def produce(self, work: ShardWork) -> None:
        """Make every record of ``work.todo()`` (or ``work.groups()``), each through ``work.submit``.

        Derive every random draw from ``work.rng(key...)`` with a key naming the record or its group. Put what
        the shard reports back (plain data; images: the renderer that ran) in ``work.meta``.
        """
        ...


@dataclass
class Finished:
    """What the run loop knows once every shard is done, for :meth:`Modality.dataset_fields`.

    Attributes:
        layout: The dataset folder.
        plan: The plan.
        config: The run's configuration.
        results: What each shard that ran in this call reported (``ShardResult.meta`` holds the task's meta).
        writers: The writers, before their ``finalize`` runs.
    """

    layout: Layout
    plan: Plan
    config: RunConfig
    results: list[ShardResult]
    writers: list[DatasetWriter]


@runtime_checkable
class Modality(Protocol):
    """What a kind of dataset plugs into :func:`run_dataset` (in the main process).

    Attributes:
        name: The modality, recorded in ``run.json`` and ``dataset.json`` (``"images"``).
        record_key: The manifest key of a record's index (``"frame"``); ``dataset.json`` counts records as
            ``n_<record_key>s``.
    """

    name: str
    record_key: str

    def digest(self) -> str:
        """SHA-256 of what defines the records (the resolved spec, a fitted model): ``spec_sha256``."""
        ...

    def identity(self) -> dict[str, Any]:
        """What else a resumed run must share with the run in the folder (``backend``, ``renderer`` ...).

        Called after :meth:`start`.
        """
        ...

    def check(self, config: RunConfig) -> None:
        """Refuse, before anything is written, what cannot make a dataset (outputs, capabilities)."""
        ...

    def plan(self, n_records: int, shard_records: int) -> Plan:
        """Group ``n_records`` records (records of a group share their set-up) into shards of ~``shard_records``."""
        ...

    def worker_setup(self, workers: int) -> WorkerSetup:
        """What worker processes need when ``workers`` of them share the cores (environment, modules to import)."""
        ...

    def start(self, config: RunConfig) -> None:
        """Resolve what every shard must agree on, while the runner's workers start (a renderer, categories)."""
        ...

    def task(self) -> RecordTask:
        """What each shard runs; called after :meth:`start`."""
        ...

    def dataset_fields(self, done: Finished) -> dict[str, Any]:
        """This modality's part of ``dataset.json``, given to the writers' ``finalize`` as the dataset record.

        The loop adds ``simgen_version`` before, and the run, timings, package versions, formats and checksums
        after. ``spec_sha256``, ``seed`` and ``n_<record_key>s`` must be among them.
        """
        ...

    def packages(self) -> Sequence[str]:
        """The packages whose versions shape the output, recorded in ``dataset.json``."""
        ...


@dataclass
class RunResult:
    """Summary of a run.

    Attributes:
        out: The dataset folder.
        n_records: Records in the dataset.
        made: Records made by this call.
        reused: Records kept from a previous run.
        seconds: Wall time of the call.
        dataset: The dataset record written to ``dataset.json``.
    """

    out: Path
    n_records: int
    made: int
    reused: int
    seconds: float
    dataset: dict[str, Any] = field(default_factory=dict)


def run_dataset(
    modality: Modality,
    config: RunConfig,
    *,
    progress: Callable[[int], None] | None = None,
    spec_file: Path | None = None,
) -> RunResult:
    """Make ``config.n_records`` records of ``modality`` into ``config.out`` (see the module docstring).

    Record i depends only on what the modality draws for it from ``(seed, i)``: the output is byte-identical
    whatever ``workers``, ``shard_records`` or runner, and a killed run resumed with ``resume`` ends identical too.

    Args:
        modality: The kind of dataset.
        config: How to run it.
        progress: Called with the number of newly finished records.
        spec_file: The file the records are defined by, which ``overwrite`` must never delete.

    Returns:
        The summary; ``made`` records were made by this call and ``reused`` kept.

    Raises:
        OutputExistsError: ``out`` cannot be started, resumed or overwritten.
        OutputWriteError: The filesystem refused a write (full, read-only, no permission).
        SimgenError: Bad counts, or what the modality refuses.
    """
    start = time.perf_counter()
    config.check_counts(modality.record_key)
    modality.check(config)
    out = config.out
    check_out(out, resume=config.resume, overwrite=config.overwrite, spec_file=spec_file)
    size = shard_size(out, config, modality.record_key)
    plan = modality.plan(config.n_records, size)
    # Workers (or the Ray cluster) start now and import simgen while this process prepares the run.
    started = start_runner(
        config.runner,
        config.workers,
        n_jobs=len(plan.shards),
        ray_address=config.ray_address,
        setup=modality.worker_setup,
    )
    results: list[ShardResult] = []
    skipped = 0
    try:
        modality.start(config)
        run = {
            "spec_sha256": modality.digest(),
            "seed": config.seed,
            f"n_{modality.record_key}s": config.n_records,
            **modality.identity(),
            f"shard_{modality.record_key}s": size,
            "modality": modality.name,
            "record_key": modality.record_key,
        }
        prepare_out(out, run, resume=config.resume, overwrite=config.overwrite, spec_file=spec_file)
        layout = Layout(out)
        task = modality.task()
        writers = task.writers()
        todo, skipped = shards_to_run(layout, plan, shard_fragments(writers), modality.record_key)
        if progress and skipped:
            progress(skipped)
        jobs = [
            ShardJob(
                task=task,
                seed=config.seed,
                plan=plan,
                shard=shard,
                out=str(out),
                background_sink=started.background_sink,
            )
            for shard in todo
        ]
        results = started.run(jobs, progress)
        dataset = finalize(modality, Finished(layout, plan, config, results, writers), start)
    except OSError as exc:
        # This process writes run.json, the manifest, the writers' files and dataset.json: a full disk says so.
        if OutputWriteError.convertible(exc):
            raise OutputWriteError.from_os_error(exc, out) from None
        raise
    finally:
        started.close()
    made = sum(r.frames for r in results)
    reused = skipped + sum(r.reused for r in results)
    return RunResult(out, config.n_records, made, reused, time.perf_counter() - start, dataset)


# --- the output folder ------------------------------------------------------------------------------------


def check_out(out: Path, *, resume: bool, overwrite: bool, spec_file: Path | None) -> None:
    """Refuse an output folder that can be neither started, resumed nor overwritten (before any work starts).

    ``overwrite`` may only remove what simgen's own records say it wrote: it refuses, naming them, when
    other files are there, when the folder holds no simgen record at all, or when the folder is a symbolic
    link. ``resume`` needs simgen's own ``.simgen/run.json`` (or a folder holding nothing but the empty
    ``.simgen/`` of a run killed at once).

    Raises:
        OutputExistsError: Naming the folder and what to do.
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
    """What ``overwrite`` would delete in ``out``; raises when anything else is there.

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


def prepare_out(out: Path, run: dict[str, Any], *, resume: bool, overwrite: bool, spec_file: Path | None) -> None:
    """Make ``out`` ready for the run: resume it, or remove the previous run's files, then write ``run.json``.

    Call it after :func:`check_out` has accepted the folder; the folder is scanned again here, so a file
    added in between is never deleted.

    Raises:
        OutputExistsError: ``resume`` of a run with another identity (spec, seed, count, backend ...).
    """
    layout = Layout(out)
    if out.exists() and any(out.iterdir()):
        previous = simgen_record(layout.run_file, RUN_KEYS) if resume else None
        if previous is not None:
            changed = [k for k in run if previous.get(k) != run[k]]
            if changed:
                raise OutputExistsError(
                    f"{out} holds a run with different {', '.join(changed)}; resume needs the same spec, seed, "
                    "record count, backend, renderer and shard size (use a new folder or --overwrite)"
                )
            return
        if overwrite:
            remove_owned(_removable(out, spec_file))
    # run.json first: from then on the folder is a resumable simgen run, whatever else a kill interrupts.
    (layout.work / "shards").mkdir(parents=True, exist_ok=True)
    atomic_write_json(layout.run_file, run)


def shard_size(out: Path, config: RunConfig, record_key: str) -> int:
    """Records per shard: the configured size, else the size a resumed run chose, else the default."""
    if config.shard_records is not None:
        return config.shard_records
    previous = simgen_record(Layout(out).run_file, RUN_KEYS) if config.resume else None
    key = f"shard_{record_key}s"
    if previous is not None and isinstance(previous.get(key), int) and previous[key] >= 1:
        return int(previous[key])
    # SHARDS_PER_WORKER shards per worker, so that the last one to finish is short and no core idles for long
    # at the end; never more than MAX_SHARD_RECORDS, so a kill loses little and a resume checks little.
    per_worker = SHARDS_PER_WORKER * max(config.workers, 1)
    return max(1, min(MAX_SHARD_RECORDS, math.ceil(config.n_records / per_worker)))


def shards_to_run(layout: Layout, plan: Plan, fragments: list[str], record_key: str) -> tuple[list[Shard], int]:
    """The shards this run must (re)do, and how many records the others keep.

    A shard with a done marker is kept only if every record's files still match their recorded checksums
    (what ``verify`` checks): a damaged one loses its marker and runs again, and redoes exactly its damaged
    records. Shards are checked on a few threads (hashing releases the GIL); each file is hashed once.
    """
    shards_dir = layout.work / "shards"
    markers = {p.name for p in shards_dir.glob("*.done.json")} if shards_dir.is_dir() else set()
    finished = [s for s in plan.shards if layout.done_marker(s.name).name in markers]
    threads = max(1, min(len(finished), os.cpu_count() or 1, 8))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="simgen-check") as pool:
        counts = pool.map(lambda s: len(finished_records(layout, s, fragments, record_key)), finished)
        intact = dict(zip(finished, counts, strict=True))
    todo: list[Shard] = []
    skipped = 0
    for shard in plan.shards:
        if intact.get(shard) == shard.n_frames:
            skipped += shard.n_frames
            continue
        if shard in intact:
            log.info("%s: %d of %d records damaged or missing; redoing them", shard.name,
                     shard.n_frames - intact[shard], shard.n_frames)  # fmt: skip
            layout.done_marker(shard.name).unlink(missing_ok=True)  # it no longer tells the truth
        todo.append(shard)
    return todo, skipped


# --- finalizing -------------------------------------------------------------------------------------------


def finalize(modality: Modality, done: Finished, start: float) -> dict[str, Any]:
    """Merge the shards' fragments into the dataset-level files and write ``dataset.json``.

    Raises:
        SimgenError: A shard is not finished.
    """
    layout, plan = done.layout, done.plan
    shards = plan.shards
    missing = [s.name for s in shards if not layout.done_marker(s.name).is_file()]
    if missing:
        raise SimgenError(f"shards not finished: {', '.join(missing[:5])}; rerun with --resume")
    totals, chain = merge_manifest(layout, plan, modality.record_key)
    dataset: dict[str, Any] = {"simgen_version": simgen.__version__, **modality.dataset_fields(done)}
    dataset["run"] = {
        "workers": done.config.workers,
        "runner": done.config.runner,
        "shards": len(shards),
        "seconds": round(time.perf_counter() - start, 3),
    }
    dataset["timings_ms_total"] = {k: round(v, 1) for k, v in totals.items()}
    dataset["python"] = platform.python_version()
    dataset["packages"] = package_versions(modality.packages())
    dataset["modality"] = modality.name
    dataset["record_key"] = modality.record_key
    checksums: dict[str, str] = {}
    for writer in done.writers:
        paths = [layout.shard_dir(s.name) / writer_fragment(writer.name) for s in shards]
        checksums.update(writer.finalize(layout.root, FragmentRecords(paths, modality.record_key), dataset))
        stats = getattr(writer, "stats", None)  # what a writer counted (COCO: images, annotations ...)
        if isinstance(stats, dict):
            dataset.setdefault("counts", {}).update(stats)
    checksums[MANIFEST_FILE] = sha256_file(layout.root / MANIFEST_FILE)
    dataset["manifest_chain"] = chain
    dataset["formats"] = [w.name for w in done.writers]
    dataset["checksums"] = checksums
    atomic_write_json(layout.root / DATASET_FILE, dataset)
    return dataset


def merge_manifest(layout: Layout, plan: Plan, record_key: str) -> tuple[dict[str, float], dict[str, Any]]:
    """Write ``manifest.jsonl`` from the shards' manifest fragments, in record order, and its hash chain.

    Each line is the fragment's line with a last field, ``chain``, that links it to the lines before it
    (:mod:`simgen.provenance.chain`), so ``simgen verify`` can name the first record that was changed.

    Returns:
        The summed timings, and the chain's record for ``dataset.json`` (``manifest_chain``).
    """
    import json

    totals: dict[str, float] = {}
    chain = ChainWriter()
    with atomic_open(layout.root / MANIFEST_FILE, "w") as fh:
        for s in plan.shards:
            with open(layout.shard_dir(s.name) / MANIFEST_FRAGMENT, encoding="utf-8") as frag:
                entries = [json.loads(line) for line in frag]
            # A resumed shard may have appended a redone record after later ones: keep record order.
            entries.sort(key=lambda entry: entry[record_key])
            for entry in entries:
                fh.write(chain.line(entry))
                # Every record's own timings, kept or redone: the totals describe the whole dataset.
                timings = entry.get("timings_ms")
                for k, v in timings.items() if isinstance(timings, dict) else ():
                    totals[k] = totals.get(k, 0.0) + (v if isinstance(v, (int, float)) else 0.0)
    return totals, chain.record()


class FragmentRecords:
    """The records of one writer's fragments, in record order, streamed one shard at a time.

    Shards are in record order; inside one, a resumed run may have appended a redone record after later
    ones, so each shard's (small) fragment is sorted. Iterable more than once: each pass reads the files again.
    """

    def __init__(self, paths: list[Path], record_key: str) -> None:
        self.paths, self.record_key = paths, record_key

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import json

        for path in self.paths:
            with open(path, encoding="utf-8") as fh:
                lines = sorted((json.loads(line) for line in fh), key=lambda entry: entry[self.record_key])
            for entry in lines:
                if entry["record"] is not None:
                    yield entry["record"]


def package_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed versions of the packages that shape the output (None for one that is not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def previous_dataset(layout: Layout) -> dict[str, Any] | None:
    """The folder's ``dataset.json`` if it is simgen's and readable, else None (a damaged one is rebuilt)."""
    return simgen_record(layout.root / DATASET_FILE, DATASET_KEYS)
