"""Mixing tables: CSV or Parquet files, or simgen table datasets (``table.csv``), into one ``table.csv``.

Provenance travels as three extra columns, which pandas users filter like any other
(``df[df._origin == "real"]``) and drop before fitting (``df.drop(columns=PROVENANCE_COLUMNS)``):

* ``_origin``: ``real`` or ``synthetic``;
* ``_generation``: 0 for real rows and rows sampled from a model fitted on real data, ``k`` after ``k`` refits;
* ``_source``: the id of the input the row was taken from (``dataset.json``'s ``mix.sources`` maps it to the
  file and its SHA-256).

An input that already has these columns (a previous mix) keeps its rows' values. A simgen table dataset gives
its rows the origin and generation its manifest records for their block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simgen.io import atomic_open, sha256_file
from simgen.mix.core import (
    MixCounts,
    MixError,
    Source,
    manifest_provenance,
    resolve_provenance,
    select,
    simgen_facts,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PROVENANCE_COLUMNS", "TableSource", "data_columns", "mix_frames", "read_table_source", "write_table"]

PROVENANCE_COLUMNS = ("_origin", "_generation", "_source")
TABLE_CSV = "table.csv"
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


@dataclass
class TableSource(Source):
    """A table input: the :class:`Source` and its rows (``frame``, without provenance columns)."""

    frame: Any = None


def table_file(path: Path) -> Path | None:
    """The table a path names: the file itself, or a folder's ``table.csv`` (else ``table.parquet``)."""
    if path.is_file():
        return path if path.suffix.lower() in TABLE_SUFFIXES else None
    for name in (TABLE_CSV, "table.parquet"):
        if (path / name).is_file():
            return path / name
    return None


def data_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that hold data, not provenance."""
    return [c for c in frame.columns if c not in PROVENANCE_COLUMNS]


def from_frame(frame: pd.DataFrame, role: str, *, name: str = "table", default_generation: int = 0) -> TableSource:
    """A table source from a DataFrame in memory (its hash: the SHA-256 of its CSV bytes)."""
    from simgen.io import sha256_bytes

    data = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    return _source(frame, role, Path(name), Path(name), sha256_bytes(data), None, {}, default_generation)


def read_table_source(path: Path, role: str, *, default_generation: int = 0) -> TableSource:
    """Read a table input and resolve its rows' provenance.

    Raises:
        MixError: No table at ``path``, or rows whose provenance is wrong for their side.
        MetadataError: A table that cannot be read (not UTF-8, not CSV, empty).
    """
    from simgen.generators.tabular.metadata import read_table

    file = table_file(path)
    if file is None:
        raise MixError(f"{path}: no table here (expected a .csv/.parquet file or a folder with {TABLE_CSV})")
    frame = read_table(file)
    folder = file.parent
    facts = simgen_facts(folder) if file.name in (TABLE_CSV, "table.parquet") else None
    blocks = manifest_provenance(folder, "block") if facts is not None else {}
    return _source(frame, role, path, file, sha256_file(file), facts, blocks, default_generation)


def _source(
    frame: pd.DataFrame,
    role: str,
    path: Path,
    file: Path,
    digest: str,
    facts: dict[str, Any] | None,
    blocks: dict[int, tuple[Any, Any, dict[str, Any]]],
    default_generation: int,
) -> TableSource:
    n = len(frame)
    origins: list[Any] = [None] * n
    generations: list[Any] = [None] * n
    for origin, generation, entry in blocks.values():  # a simgen table: each block's rows
        first, rows = entry.get("first_row"), entry.get("rows")
        if isinstance(first, int) and isinstance(rows, int):
            for r in range(max(first, 0), min(first + rows, n)):
                origins[r], generations[r] = origin, generation
    if "_origin" in frame.columns:
        origins = [None if _missing(v) else v for v in frame["_origin"].tolist()]
    if "_generation" in frame.columns:
        generations = [None if _missing(v) else _as_int(v) for v in frame["_generation"].tolist()]
    o, g = resolve_provenance(role, origins, generations, default_generation=default_generation, where=str(path),
                              label="row")  # fmt: skip
    return TableSource(role=role, path=path, kind="table", main_file=file, sha256=digest, origins=o, generations=g,
                       simgen=facts, frame=frame[data_columns(frame)])  # fmt: skip


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _as_int(v: Any) -> Any:
    """A generation read back from CSV (``2`` or ``2.0``) as an int; anything else as it is (refused later)."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    try:
        return int(v) if str(int(v)) == str(v).strip() else v
    except (TypeError, ValueError):
        return v


def check_columns(real: TableSource, syn: TableSource) -> None:
    """Refuse tables whose data columns differ, naming the first difference.

    Raises:
        MixError: A column in one table and not the other.
    """
    from simgen.errors import did_you_mean

    a, b = list(real.frame.columns), list(syn.frame.columns)
    for col in a:
        if col not in b:
            raise MixError(f"column '{col}' is in REAL ({real.path}) but not in SYN ({syn.path}){did_you_mean(col, b)}")
    for col in b:
        if col not in a:
            raise MixError(f"column '{col}' is in SYN ({syn.path}) but not in REAL ({real.path}){did_you_mean(col, a)}")


def mix_frames(real: TableSource, syn: TableSource, counts: MixCounts, seed: int) -> tuple[pd.DataFrame, list[dict]]:
    """The mixed table (REAL's column order, then the provenance columns) and its manifest entries.

    This is what ``simgen mix`` writes, in memory: ``benchmarks/collapse.py`` mixes through it too.
    """
    import pandas as pd

    check_columns(real, syn)
    picks = select(counts, real.n, syn.n, seed)
    sides = {"real": real, "synthetic": syn}
    columns = list(real.frame.columns)
    stacked = pd.concat([real.frame[columns], syn.frame[columns]], ignore_index=True)
    table = stacked.iloc[[i if role == "real" else real.n + i for role, i in picks]].reset_index(drop=True)
    entries = []
    origins, generations, ids = [], [], []
    for role, i in picks:
        src = sides[role]
        origins.append(src.origins[i])
        generations.append(src.generations[i])
        ids.append(src.id)
        entries.append({"origin": src.origins[i], "generation": src.generations[i], "source": role,
                        "source_id": src.id, "source_index": i})  # fmt: skip
    table["_origin"] = origins
    table["_generation"] = generations
    table["_source"] = ids
    return table, entries


def write_table(root: Path, table: pd.DataFrame) -> dict[str, str]:
    """Write ``table.csv`` atomically (LF line endings, no index); return its checksum."""
    with atomic_open(root / TABLE_CSV, "wb") as fh:
        fh.write(table.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    return {TABLE_CSV: sha256_file(root / TABLE_CSV)}


def table_files() -> dict[str, str]:
    """``dataset.json``'s ``files`` of a mixed table."""
    return {"table": TABLE_CSV}


PACKAGES: Sequence[str] = ("numpy", "pandas", "pyarrow")
