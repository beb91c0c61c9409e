"""Sample a fitted tabular model into a dataset through the one run loop (:mod:`simgen.engine.run`).

A table is planned as row *blocks* (record key ``"block"``, :data:`ROWS_PER_BLOCK` rows each, the last one
shorter). Block ``i`` holds rows ``i * rows_per_block ...`` and is sampled with ``work.rng("block", i)``, so
its rows depend only on the model, the seed and ``i``: the table is byte-identical whatever the workers,
shard sizes or resumes. Each block is one CSV file (with its header) under ``rows/``; finalizing streams
them, in order, into ``table.csv`` (and ``table.parquet`` when asked), and copies the model into ``model/``
so the dataset says what made it. ``dataset.json`` records the model's hash (``spec_sha256``), the
generator, the seed, ``n_rows`` and the table's metadata.

>>> from simgen.generators.tabular.run import sample_table
>>> result = sample_table("model/", "out/", n_rows=100_000, seed=1, workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from simgen.engine.plan import Plan
from simgen.engine.run import Finished, RunConfig, RunResult, run_dataset
from simgen.engine.sink import Record
from simgen.engine.worker import WorkerSetup
from simgen.errors import SimgenError
from simgen.generators.base import ARRAYS_FILE, MODEL_JSON, load_model, model_digest
from simgen.io import atomic_open, sha256_file, write_file
from simgen.writers.base import FrameOutput

if TYPE_CHECKING:
    from simgen.engine.shard import ShardWork
    from simgen.generators.tabular.model import TabularModel
    from simgen.writers.base import DatasetWriter

__all__ = ["ROWS_DIR", "ROWS_PER_BLOCK", "TableModality", "TableTask", "TableWriter", "sample_table"]

#: Rows per block by default: big enough that sampling, not bookkeeping, dominates; small enough to resume cheaply.
ROWS_PER_BLOCK = 1000
ROWS_DIR = "rows"
TABLE_CSV = "table.csv"
TABLE_PARQUET = "table.parquet"
#: Where the dataset keeps a copy of the model that made it.
MODEL_DIR = "model"

# One loaded model per worker process and model file: a shard loads it once, later shards reuse it.
_MODELS: dict[tuple[str, str], TabularModel] = {}


def _load(model_dir: str, digest: str) -> TabularModel:
    """The model in ``model_dir``, loaded once per process; refused if it changed since the run started."""
    key = (model_dir, digest)
    if key not in _MODELS:
        if model_digest(model_dir) != digest:
            raise SimgenError(f"{model_dir}: the model changed while the run was going; rerun with --resume")
        model = load_model(model_dir)
        from simgen.generators.tabular.model import TabularModel

        if not isinstance(model, TabularModel):
            raise SimgenError(f"{model_dir}: '{model.generator}' is not a tabular model")
        _MODELS[key] = model
    return _MODELS[key]


def block_rows(block: int, n_rows: int, rows_per_block: int) -> int:
    """How many rows block ``block`` holds (the last one may be shorter)."""
    return min(rows_per_block, n_rows - block * rows_per_block)


def make_block(root: Path, block: int, first_row: int, csv: bytes, n: int) -> Record:
    """Write one block's CSV and describe it (runs on the sink's thread)."""
    rel = f"{ROWS_DIR}/{block:06d}.csv"
    digest = write_file(root, rel, csv)
    return Record(
        index=block,
        context={"block": block, "path": rel, "rows": n},
        files={"csv": {"path": rel, "sha256": digest}},
        fields={"first_row": first_row, "rows": n},
    )


def to_csv_bytes(table: Any) -> bytes:
    """A table as CSV bytes with its header: LF line endings, no index (pandas' float repr round-trips)."""
    return table.to_csv(index=False, lineterminator="\n").encode("utf-8")


class TableWriter:
    """Streams the block files, in order, into ``table.csv`` (and ``table.parquet``), and copies the model."""

    name: ClassVar[str] = "table"

    def __init__(self, model_dir: str, parquet: bool = False) -> None:
        self.model_dir, self.parquet = model_dir, parquet
        self.stats: dict[str, int] | None = None

    def write_frame(self, root: Path, ctx: dict[str, Any]) -> FrameOutput:
        """The block file is already written; its record says where it is and how many rows it holds."""
        return FrameOutput(files={}, record={"block": ctx["block"], "path": ctx["path"], "rows": ctx["rows"]})

    def finalize(self, root: Path, records: Iterable[dict[str, Any]], dataset: dict[str, Any]) -> dict[str, str]:
        """Write ``table.csv`` (one header, then every block's rows), ``table.parquet`` if asked, and ``model/``."""
        root = Path(root)
        digest = hashlib.sha256()
        rows = 0
        with atomic_open(root / TABLE_CSV, "wb") as fh:
            for i, rec in enumerate(records):
                with open(root / rec["path"], "rb") as block:
                    header = block.readline()
                    if i == 0:  # every block starts with the same header: keep the first one
                        fh.write(header)
                        digest.update(header)
                    for chunk in iter(lambda b=block: b.read(1 << 20), b""):
                        fh.write(chunk)
                        digest.update(chunk)
                rows += int(rec["rows"])
        self.stats = {"rows": rows}
        checksums = {TABLE_CSV: digest.hexdigest()}
        if self.parquet:
            checksums[TABLE_PARQUET] = write_parquet(root, records, dataset.get("metadata"))
        (root / MODEL_DIR).mkdir(exist_ok=True)
        for name in (MODEL_JSON, ARRAYS_FILE):
            with atomic_open(root / MODEL_DIR / name, "wb") as fh, open(Path(self.model_dir) / name, "rb") as src:
                shutil.copyfileobj(src, fh)
            checksums[f"{MODEL_DIR}/{name}"] = sha256_file(root / MODEL_DIR / name)
        return checksums


def write_parquet(root: Path, records: Iterable[dict[str, Any]], metadata: Any) -> str:
    """Stream every block into ``table.parquet``, one row group per block, with the real table's dtypes.

    Raises:
        DependencyMissing: pyarrow is not installed.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        from simgen.errors import DependencyMissing

        raise DependencyMissing("pyarrow", "tabular", "writing table.parquet") from None
    import pandas as pd

    dtypes = {c["name"]: c.get("dtype") for c in (metadata or {}).get("columns", [])}
    writer = None
    path = root / TABLE_PARQUET
    with atomic_open(path, "wb") as fh:
        try:
            for rec in records:
                frame = pd.read_csv(root / rec["path"], low_memory=False)
                for name, dtype in dtypes.items():
                    if dtype and name in frame and str(frame[name].dtype) != dtype:
                        # e.g. an int column read back as float because the block has a missing value
                        with contextlib.suppress(TypeError, ValueError):
                            frame[name] = frame[name].astype(dtype)
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(fh, table.schema)
                writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()
    return sha256_file(path)


@dataclass(frozen=True, kw_only=True)
class TableTask:
    """What a shard of a table runs (picklable: it travels to the workers).

    Attributes:
        model_dir: The fitted model's folder.
        model_sha256: Its hash when the run started (a changed model is refused).
        n_rows: Rows in the whole table.
        rows_per_block: Rows per block.
        conditions: ``{column: value}`` fixed in every row.
        parquet: Also write ``table.parquet``.
    """

    record_key: ClassVar[str] = "block"
    model_dir: str
    model_sha256: str
    n_rows: int
    rows_per_block: int = ROWS_PER_BLOCK
    conditions: dict[str, Any] = field(default_factory=dict)
    parquet: bool = False

    def writers(self) -> list[DatasetWriter]:
        """The one writer: ``table.csv`` (and ``table.parquet``)."""
        return [TableWriter(self.model_dir, self.parquet)]

    def produce(self, work: ShardWork) -> None:
        """Sample every block left to make, each from its own rng."""
        model = _load(self.model_dir, self.model_sha256)
        (work.layout.root / ROWS_DIR).mkdir(exist_ok=True)
        for block in work.todo():
            n = block_rows(block, self.n_rows, self.rows_per_block)
            first = block * self.rows_per_block
            table = model.sample(n, work.rng("block", block), conditions=self.conditions or None, first_row=first)
            work.submit(functools.partial(make_block, work.layout.root, block, first, to_csv_bytes(table), n))
        work.meta["generator"] = model.generator


class TableModality:
    """Rows sampled from a fitted tabular model, in blocks (see the module docstring).

    Args:
        model_dir: The fitted model's folder (:meth:`FittedModel.save`).
        n_rows: Rows to sample.
        rows_per_block: Rows per block (a record of the run).
        conditions: ``{column: value}`` fixed in every row.
        parquet: Also write ``table.parquet``.

    Raises:
        SimgenError: ``n_rows`` or ``rows_per_block`` below 1.
    """

    name: ClassVar[str] = "tables"
    record_key: ClassVar[str] = "block"

    def __init__(
        self,
        model_dir: str | Path,
        n_rows: int,
        *,
        rows_per_block: int = ROWS_PER_BLOCK,
        conditions: Mapping[str, Any] | None = None,
        parquet: bool = False,
    ) -> None:
        if n_rows < 1:
            raise SimgenError(f"n_rows must be >= 1, got {n_rows}")
        if rows_per_block < 1:
            raise SimgenError(f"rows_per_block must be >= 1, got {rows_per_block}")
        self.model_dir = str(Path(model_dir).resolve())
        self.n_rows, self.rows_per_block = n_rows, rows_per_block
        self.conditions = dict(conditions or {})
        self.parquet = parquet
        self.model: TabularModel | None = None
        self.sha256 = ""

    @property
    def n_blocks(self) -> int:
        """Records of the run."""
        return math.ceil(self.n_rows / self.rows_per_block)

    def digest(self) -> str:
        """The fitted model's hash (``model.json``, which records the arrays' hash)."""
        return self.sha256

    def identity(self) -> dict[str, Any]:
        """A resume must sample the same rows: count, block size and conditions."""
        return {"n_rows": self.n_rows, "rows_per_block": self.rows_per_block, "conditions": self.conditions}

    def check(self, config: RunConfig) -> None:
        """Load the model and try the conditions on it, before anything is written.

        Raises:
            ModelFileError: The model is missing or damaged.
            ConditionError: A condition names no column or an impossible value.
            SimgenError: The run's record count is not the number of blocks.
        """
        import numpy as np

        if config.n_records != self.n_blocks:
            raise SimgenError(
                f"n_records must be {self.n_blocks} blocks for {self.n_rows} rows, got {config.n_records}"
            )
        if not (Path(self.model_dir) / MODEL_JSON).is_file():
            load_model(self.model_dir)  # raises ModelFileError naming what is missing
        self.sha256 = model_digest(self.model_dir)
        self.model = _load(self.model_dir, self.sha256)
        # Zero rows resolve every condition (unknown column, value outside the categories) and draw nothing.
        self.model.sample(0, np.random.default_rng(0), conditions=self.conditions or None)

    def plan(self, n_records: int, shard_records: int) -> Plan:
        """Groups of one block."""
        return Plan.build(n_records, 1, shard_frames=shard_records)

    def worker_setup(self, workers: int) -> WorkerSetup:
        """Workers import pandas and the tabular models while the run prepares."""
        return WorkerSetup(imports=("pandas", "simgen.generators.tabular.copula", "simgen.generators.tabular.cart"))

    def start(self, config: RunConfig) -> None:
        """Nothing to resolve beyond :meth:`check`."""

    def task(self) -> TableTask:
        """What every shard runs."""
        return TableTask(
            model_dir=self.model_dir,
            model_sha256=self.sha256,
            n_rows=self.n_rows,
            rows_per_block=self.rows_per_block,
            conditions=self.conditions,
            parquet=self.parquet,
        )

    def dataset_fields(self, done: Finished) -> dict[str, Any]:
        """Provenance: the model's hash and generator, the seed, the row count, the metadata, the files."""
        assert self.model is not None
        files = {"blocks": f"{ROWS_DIR}/", "table": TABLE_CSV, "model": f"{MODEL_DIR}/{MODEL_JSON}"}
        if self.parquet:
            files["parquet"] = TABLE_PARQUET
        files["manifest"] = "manifest.jsonl"
        return {
            "spec_sha256": self.sha256,
            "model_sha256": self.sha256,
            "generator": self.model.generator,
            "seed": done.config.seed,
            "n_blocks": done.plan.n_frames,
            "n_rows": self.n_rows,
            "rows_per_block": self.rows_per_block,
            "conditions": self.conditions,
            "metadata": self.model.metadata.to_dict(),
            "counts": {},
            "files": files,
        }

    def packages(self) -> Sequence[str]:
        """What shapes the sampled rows."""
        return ("numpy", "pandas", "scipy", "scikit-learn", "pyarrow")


def sample_table(
    model_dir: str | Path,
    out: str | Path,
    *,
    n_rows: int,
    seed: int = 0,
    workers: int = 1,
    rows_per_block: int = ROWS_PER_BLOCK,
    shard_blocks: int | None = None,
    conditions: Mapping[str, Any] | None = None,
    parquet: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Sample ``n_rows`` rows of the model in ``model_dir`` into the dataset folder ``out``.

    Args:
        model_dir: The fitted model's folder.
        out: The dataset folder (see :class:`~simgen.engine.run.RunConfig` for ``resume``/``overwrite``).
        n_rows: Rows to sample.
        seed: Dataset seed.
        workers: Worker processes.
        rows_per_block: Rows per block; part of the output's identity (another size samples other rows).
        shard_blocks: About how many blocks per shard (does not change the output).
        conditions: ``{column: value}`` fixed in every row.
        parquet: Also write ``table.parquet``.
        resume: Continue, or repair, the run in ``out``.
        overwrite: Replace a previous simgen run in ``out``.
        progress: Called with the number of newly finished blocks.

    Returns:
        The run's summary (``n_records`` counts blocks).
    """
    modality = TableModality(model_dir, n_rows, rows_per_block=rows_per_block, conditions=conditions, parquet=parquet)
    config = RunConfig(
        out=Path(out),
        n_records=modality.n_blocks,
        seed=seed,
        workers=workers,
        resume=resume,
        overwrite=overwrite,
        shard_records=shard_blocks,
    )
    return run_dataset(modality, config, progress=progress)


def fit_table(
    real: str | Path,
    *,
    generator: str | None = None,
    metadata: str | Path | None = None,
    seed: int = 0,
) -> Any:
    """Fit a registered tabular generator to a CSV or Parquet file.

    Args:
        real: The real table's file.
        generator: A registered name (default :data:`~simgen.generators.DEFAULT_TABULAR`).
        metadata: A YAML file overriding inferred column types.
        seed: Seeds whatever the fit draws (``rng_for(seed, "fit")``).

    Returns:
        The fitted model.

    Raises:
        RegistryError: An unknown generator, with a "did you mean".
        MetadataError: A missing, empty or malformed table, or bad overrides.
    """
    from simgen.generators import DEFAULT_TABULAR, REGISTRY
    from simgen.generators.tabular.metadata import infer_metadata, read_table
    from simgen.sampling import rng_for

    name = generator or DEFAULT_TABULAR
    if not name.startswith("tabular/") and ":" not in name:
        tabular = [n for n in REGISTRY.names() if n.startswith("tabular/")]
        from simgen.errors import did_you_mean

        raise SimgenError(
            f"generator '{name}' is not tabular{did_you_mean(name, tabular)}; tabular: {', '.join(tabular)}"
        )
    cls = REGISTRY.get(name)
    table = read_table(real)
    meta = infer_metadata(table, metadata, source=str(real))
    return cls().fit(table, meta, rng_for(seed, "fit"))
