"""A tiny second modality, for tests only: rows of random integers through the one run loop.

It lives in its own module (not a test module) so that spawned pool workers can import it by name: the
test puts this folder on ``sys.path`` (see ``test_modality.py``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from simgen.engine.plan import Plan
from simgen.engine.run import Finished, RunConfig
from simgen.engine.shard import ShardWork
from simgen.engine.sink import Record
from simgen.engine.worker import WorkerSetup
from simgen.io import atomic_write_bytes, write_file
from simgen.writers.base import DatasetWriter, FrameOutput

ROWS = "rows"


class Boom(RuntimeError):
    """The interruption a test plants (a kill, as far as the shard's files are concerned)."""


class RowsWriter:
    """Every record's values as one line of ``rows.jsonl``, in record order."""

    name: ClassVar[str] = "rowsfile"

    def __init__(self) -> None:
        self.stats: dict[str, int] | None = None

    def write_frame(self, root: Path, ctx: dict[str, Any]) -> FrameOutput:
        return FrameOutput(files={}, record={"row": ctx["row"], "values": ctx["values"]})

    def finalize(self, root: Path, records: Iterable[dict[str, Any]], dataset: dict[str, Any]) -> dict[str, str]:
        lines = [json.dumps(r, separators=(",", ":")) + "\n" for r in records]
        self.stats = {"rows": len(lines)}
        return {"rows.jsonl": atomic_write_bytes(Path(root) / "rows.jsonl", "".join(lines).encode())}


def make_record(root: Path, row: int, values: list[int]) -> Record:
    """Write the record's own file and describe it (runs on the sink's thread)."""
    rel = f"{ROWS}/{row:06d}.json"
    digest = write_file(root, rel, json.dumps(values).encode())
    return Record(
        index=row,
        context={"row": row, "values": values},
        files={"values": {"path": rel, "sha256": digest}},
        fields={"sum": sum(values)},
    )


@dataclass(frozen=True, kw_only=True)
class CounterTask:
    """What a shard of the counter modality runs (picklable)."""

    record_key: ClassVar[str] = "row"
    width: int = 3
    fail_at: int | None = None

    def writers(self) -> list[DatasetWriter]:
        return [RowsWriter()]

    def produce(self, work: ShardWork) -> None:
        (work.layout.root / ROWS).mkdir(exist_ok=True)
        for row in work.todo():
            if row == self.fail_at:
                raise Boom(f"interrupted at row {row}")
            values = [int(v) for v in work.rng("row", row).integers(0, 1000, size=self.width)]
            work.submit(functools.partial(make_record, work.layout.root, row, values))
        work.meta["width"] = self.width


class CounterModality:
    """Rows of random integers: the smallest modality there is."""

    name: ClassVar[str] = "counter"
    record_key: ClassVar[str] = "row"

    def __init__(self, width: int = 3, fail_at: int | None = None) -> None:
        self.width, self.fail_at = width, fail_at

    def digest(self) -> str:
        return hashlib.sha256(json.dumps({"width": self.width}).encode()).hexdigest()

    def identity(self) -> dict[str, Any]:
        return {"width": self.width}

    def check(self, config: RunConfig) -> None:
        pass

    def plan(self, n_records: int, shard_records: int) -> Plan:
        return Plan.build(n_records, 1, shard_frames=shard_records)

    def worker_setup(self, workers: int) -> WorkerSetup:
        return WorkerSetup()

    def start(self, config: RunConfig) -> None:
        pass

    def task(self) -> CounterTask:
        return CounterTask(width=self.width, fail_at=self.fail_at)

    def dataset_fields(self, done: Finished) -> dict[str, Any]:
        return {
            "spec_sha256": self.digest(),
            "seed": done.config.seed,
            "n_rows": done.plan.n_frames,
            "width": self.width,
            "counts": {},
            "files": {"values": f"{ROWS}/", "manifest": "manifest.jsonl"},
        }

    def packages(self) -> Sequence[str]:
        return ("numpy",)
