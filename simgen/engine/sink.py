"""The record sink: finishes records in order (on a background thread or in place), writes them, commits them.

A shard's task hands the sink a callable per record (:meth:`RecordSink.submit`); the sink runs it, which
makes the record's own files and returns a :class:`Record`, then runs the writers on it and commits it: one
fsynced line per fragment, the manifest line last. Records are finished and committed in submission order,
so a manifest line (the commit) is never written before the files and fragment lines of its record.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from simgen.io import append_jsonl_line

if TYPE_CHECKING:
    from simgen.writers.base import DatasetWriter

#: Manifest file name, in the dataset and in each shard's work folder; its line commits a record.
MANIFEST_FRAGMENT = "manifest.jsonl"
#: Where the records of a dataset simgen makes come from, and their generation (0: made from a spec, not
#: refit on synthetic data), as every manifest line records them.
ORIGIN = "synthetic"
GENERATION = 0


def writer_fragment(name: str) -> str:
    """File name of a format writer's per-shard fragment."""
    return f"{name}.jsonl"


def shard_fragments(writers: list[DatasetWriter]) -> list[str]:
    """A shard's fragment files, in the order a record's lines are appended (the manifest, the commit, last)."""
    return [*(writer_fragment(w.name) for w in writers), MANIFEST_FRAGMENT]


@dataclass
class Record:
    """A record made by a task, on its way to the writers and the manifest.

    Attributes:
        index: The record's index (a frame index for images).
        context: What every writer's ``write_frame(root, context)`` gets (a
            :class:`~simgen.writers.base.FrameContext` for images).
        files: The record's own files, already written: ``kind -> {"path": relative path, "sha256": digest}``.
        fields: The modality's manifest fields (every sampled value), after the index and before ``files``.
        timings: Milliseconds spent so far, by stage.
    """

    index: int
    context: Any
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def ms(a: float, b: float) -> float:
    """Milliseconds between two ``time.perf_counter()`` readings."""
    return (b - a) * 1000.0


class RecordSink:
    """Finishes, writes and commits records in submission order: on one background thread, or on the caller's.

    With a spare core (``background``), the task's thread goes on to the next record (a settle, a render)
    while the sink thread works: OpenCV's PNG encoder and most numpy work release the GIL, and physics
    settling leaves a core idle. At most ``depth`` records wait, so memory stays flat. When worker processes
    already fill every core, the thread only adds hand-offs and contention (measured: two workers on two cores
    are 8-11% faster without it), so records are finished in place.

    Args:
        root: The dataset folder.
        record_key: The manifest key of a record's index.
        writers: The format writers, in order.
        handles: Open fragment files by name (each writer's, and the manifest).
        progress: Called with 1 per committed record.
        background: Finish records on a background thread.
        depth: Records that may wait at most.
    """

    def __init__(
        self,
        *,
        root: Path,
        record_key: str,
        writers: list[DatasetWriter],
        handles: dict[str, IO[str]],
        progress: Callable[[int], None] | None = None,
        background: bool = False,
        depth: int = 2,
    ) -> None:
        self.root, self.record_key, self.writers, self.handles = root, record_key, writers, handles
        self.fragments = shard_fragments(writers)
        self.progress = progress
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simgen-sink") if background else None
        self.pending: deque[Future[dict[str, float]]] = deque()
        self.depth = depth
        self.totals: dict[str, float] = {}
        self.made = 0

    def submit(self, make: Callable[[], Record]) -> None:
        """Queue one record: ``make()`` writes its own files and returns it; blocks while ``depth`` records wait."""
        if self.pool is None:
            self._count(self._finish(make))
            return
        while len(self.pending) >= self.depth:
            self._count(self.pending.popleft().result())
        self.pending.append(self.pool.submit(self._finish, make))

    def close(self, *, wait: bool = True) -> None:
        """Finish (or, after an error, abandon) the queued records and stop the thread."""
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

    def _finish(self, make: Callable[[], Record]) -> dict[str, float]:
        record = make()
        lines, files, took = self.write(record)
        timings = {**record.timings, "writers": took}
        lines[MANIFEST_FRAGMENT] = self.manifest_line(record, files, timings)
        self.commit(lines)
        return timings

    def write(self, record: Record) -> tuple[dict[str, Any], dict[str, dict[str, str]], float]:
        """Run every writer on the record: their fragment lines, the record's files with theirs, and the time taken."""
        t0 = time.perf_counter()
        files = dict(record.files)
        lines: dict[str, Any] = {}
        for writer in self.writers:
            output = writer.write_frame(self.root, record.context)
            for rel, digest in output.files.items():
                files[f"{writer.name}:{rel}"] = {"path": rel, "sha256": digest}
            lines[writer_fragment(writer.name)] = {self.record_key: record.index, "record": output.record}
        return lines, files, ms(t0, time.perf_counter())

    def manifest_line(
        self, record: Record, files: dict[str, dict[str, str]], timings: dict[str, float]
    ) -> dict[str, Any]:
        """The record's manifest line: its index, origin and generation, the modality's fields, files, timings."""
        return {
            self.record_key: record.index,
            "origin": ORIGIN,
            "generation": GENERATION,
            **record.fields,
            "files": files,
            "timings_ms": {k: round(v, 3) for k, v in timings.items()},
        }

    def commit(self, lines: dict[str, Any]) -> None:
        """Append one fsynced line to every fragment, the manifest last: its line commits the record."""
        for name in self.fragments:
            append_jsonl_line(self.handles[name], lines[name])
