"""Run one shard, whatever the modality: keep its intact records, make the others, write its done marker.

The same function runs in this process, in a pool worker and as a Ray task. A shard appends one fsynced
line per finished record to its fragments (:mod:`simgen.engine.sink`), so a killed run keeps every finished
record; a resumed shard keeps the records whose files still match their checksums and redoes the rest.
What makes the records is the job's :class:`~simgen.engine.run.RecordTask` (images:
:class:`simgen.engine.images.ImageTask`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simgen.engine.files import Layout, check_manifest_entry, dataset_path
from simgen.engine.plan import Plan, Shard
from simgen.engine.sink import MANIFEST_FRAGMENT, Record, RecordSink, shard_fragments, writer_fragment
from simgen.errors import SimgenError
from simgen.io import atomic_write_json, complete_jsonl_lines, rewrite_jsonl, sha256_file
from simgen.sampling import rng_for

if TYPE_CHECKING:
    from simgen.engine.run import RecordTask

__all__ = [
    "MANIFEST_FRAGMENT",
    "ShardJob",
    "ShardResult",
    "ShardWork",
    "finished_records",
    "run_shard",
    "shard_fragments",
    "writer_fragment",
]


@dataclass(frozen=True, kw_only=True)
class ShardJob:
    """One unit of work for a runner: everything is plain and picklable.

    Attributes:
        task: What makes the shard's records (the modality's part).
        seed: The dataset seed.
        plan: The whole run's plan.
        shard: The shard to run.
        out: The dataset folder.
        background_sink: Finish records on a second thread (when the worker has a spare core).
    """

    task: RecordTask
    seed: int
    plan: Plan
    shard: Shard
    out: str
    background_sink: bool = True


@dataclass
class ShardResult:
    """What a finished shard reports back.

    Attributes:
        shard: The shard's index.
        frames: Records made by this run of the shard.
        reused: Records kept from a previous run.
        meta: What the task reported (images: ``{"renderer": ...}``).
        timings_ms: Milliseconds by stage, summed over the records made.
    """

    shard: int
    frames: int
    reused: int
    meta: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def renderer(self) -> str | None:
        """The renderer an image shard ran with (None for other modalities)."""
        value = self.meta.get("renderer")
        return value if isinstance(value, str) else None


class ShardWork:
    """What a :class:`~simgen.engine.run.RecordTask` sees of its shard while it makes the records.

    Attributes:
        job: The job.
        layout: The dataset folder.
        kept: Records already committed and intact (a resumed run); they are not made again.
        meta: Filled by the task with what the shard reports back (plain data).
    """

    def __init__(self, job: ShardJob, layout: Layout, kept: set[int], sink: RecordSink) -> None:
        self.job, self.layout, self.kept, self._sink = job, layout, kept, sink
        self.meta: dict[str, Any] = {}

    @property
    def seed(self) -> int:
        """The dataset seed."""
        return self.job.seed

    @property
    def plan(self) -> Plan:
        """The run's plan."""
        return self.job.plan

    @property
    def shard(self) -> Shard:
        """This shard."""
        return self.job.shard

    def rng(self, *key: int | str) -> np.random.Generator:
        """A generator from ``SeedSequence([seed, *key])``: name the record or its group, never the shard."""
        return rng_for(self.job.seed, *key)

    def groups(self) -> Iterator[tuple[int, list[int]]]:
        """``(group, records)`` for every group of the shard that has records left to make, in order.

        A group is a set of records that share their set-up (the views of one settled scene); ``records``
        are those of its records that are not :attr:`kept`.
        """
        for group in range(self.shard.scene_start, self.shard.scene_stop):
            todo = [i for i in self.plan.scene_frames(group) if i not in self.kept]
            if todo:
                yield group, todo

    def todo(self) -> list[int]:
        """Every record of the shard left to make, in order."""
        return [i for _, records in self.groups() for i in records]

    def submit(self, make: Callable[[], Record]) -> None:
        """Hand over one record: ``make()`` writes its own files and returns it; records commit in order."""
        self._sink.submit(make)


def run_shard(job: ShardJob, progress: Callable[[int], None] | None = None) -> ShardResult:
    """Make every record of one shard into ``job.out``; return when its done marker is written."""
    layout = Layout(Path(job.out))
    task = job.task
    writers = task.writers()
    folder = layout.shard_dir(job.shard.name)
    folder.mkdir(parents=True, exist_ok=True)
    fragments = shard_fragments(writers)
    kept = finished_records(layout, job.shard, fragments, task.record_key)
    # Rewrite the fragments with only the intact records, then append: a torn tail never survives.
    handles = {name: rewrite_jsonl(folder / name, [kept[i][name] for i in sorted(kept)]) for name in fragments}
    if progress and kept:
        progress(len(kept))
    # Room for a whole group's records: they are finished while the next group is set up (a scene settles),
    # which keeps one core busy with that and the other with this work.
    depth = min(max(2, job.plan.frames_per_scene + 1), 16)
    sink = RecordSink(root=layout.root, record_key=task.record_key, writers=writers, handles=handles,
                      progress=progress, background=job.background_sink, depth=depth)  # fmt: skip
    work = ShardWork(job, layout, set(kept), sink)
    ok = False
    try:
        task.produce(work)
        ok = True
    finally:
        try:
            sink.close(wait=ok)
        finally:
            for fh in handles.values():
                fh.close()
    atomic_write_json(
        layout.done_marker(job.shard.name),
        {"shard": job.shard.index, "frames": job.shard.n_frames, "frame_start": job.shard.frame_start},
    )
    return ShardResult(job.shard.index, sink.made, len(kept), work.meta, sink.totals)


def _index_of(line: str, record_key: str) -> int | None:
    """The record a fragment line belongs to, or None for a line that is not one of simgen's."""
    obj = json.loads(line)
    index = obj.get(record_key) if isinstance(obj, dict) else None
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def finished_records(layout: Layout, shard: Shard, fragments: list[str], record_key: str) -> dict[int, dict[str, str]]:
    """Records of a shard already on disk and intact: ``record -> {fragment: line}``.

    The manifest line is appended last, so it commits the record. A record counts only if it belongs to the
    shard, every fragment holds its line, and every file its manifest line lists is inside the dataset and
    still has its recorded checksum (each file is read once). Damaged lines count as missing, so their
    records are redone.
    """
    folder = layout.shard_dir(shard.name)
    records = range(shard.frame_start, shard.frame_stop)
    by_fragment: dict[str, dict[int, str]] = {}
    for name in fragments:
        lines: dict[int, str] = {}
        for line in complete_jsonl_lines(folder / name):
            index = _index_of(line, record_key)
            if index in records:
                lines[index] = line
        by_fragment[name] = lines
    kept: dict[int, dict[str, str]] = {}
    hashed: dict[tuple[int, int], str] = {}
    for index, line in by_fragment[MANIFEST_FRAGMENT].items():
        complete = all(index in lines for lines in by_fragment.values())
        if complete and _files_intact(layout.root, line, record_key, hashed):
            kept[index] = {name: lines[index] for name, lines in by_fragment.items()}
    return kept


def _files_intact(root: Path, manifest_line: str, record_key: str, hashed: dict[tuple[int, int], str]) -> bool:
    """Whether every file a manifest line lists is inside ``root`` and matches its checksum.

    ``hashed`` maps a file's (device, inode) to its digest: BOP's RGB and depth are hard links to the
    frame's own files, and each is read once.
    """
    try:
        entry = check_manifest_entry(json.loads(manifest_line), MANIFEST_FRAGMENT, record_key)
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
