"""What a table's columns are: types inferred from the data, overridable in a small YAML file.

Every column gets one of five types:

- ``numerical``: numbers; keeps the bounds, whether the values are whole, and the decimals they are written with;
- ``categorical``: a finite set of values (strings, or small non-negative whole numbers such as a class label);
- ``boolean``: True/False;
- ``datetime``: timestamps, modelled as seconds since the epoch and rounded back to the finest unit the data uses;
- ``id``: a key, unique per row: never modelled and never copied; synthetic rows get fresh keys.

Each column also keeps its missing-value rate and its pandas dtype, so a synthetic table comes back with the
dtypes of the real one. The rules for numbers follow SDV's detection (a whole, non-negative column with at most
``min(n/10, 10)`` distinct values is categorical), so a metadata file means what an SDV user expects.

An override file names columns and what to change, and may name the table's target (the label a model would
predict; ``tabular/gaussian-copula-v2`` fits one copula per class of it)::

    target: label
    columns:
      label: categorical                      # shorthand for {type: categorical}
      joined: {type: datetime, format: "%d/%m/%Y"}
      income: {type: numerical, min: 0, decimals: 2}

Every problem is a :class:`MetadataError` (a :class:`~simgen.errors.SpecError`) that names the column.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simgen.errors import DependencyMissing, SpecError, did_you_mean
from simgen.spec.errors import spec_error_from_validation

try:
    import pandas as pd
except ImportError as exc:  # pragma: no cover - only without the extra
    raise DependencyMissing("pandas", "tabular", "tables") from exc

__all__ = [
    "DATETIME_UNITS_NS",
    "SDTYPES",
    "Column",
    "MetadataError",
    "TableMetadata",
    "column_path",
    "decode_table",
    "encode_column",
    "encode_table",
    "infer_metadata",
    "load_overrides",
    "read_table",
    "to_python",
]

SDTYPES = ("numerical", "categorical", "boolean", "datetime", "id")
SDType = Literal["numerical", "categorical", "boolean", "datetime", "id"]

#: Nanoseconds per unit, coarsest first: a datetime column is rounded to the coarsest unit its values are multiples of.
DATETIME_UNITS_NS: dict[str, int] = {"D": 86_400 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_MAX_DECIMALS = 10
_ID_NAME = re.compile(r"(?i)^(id|uuid|guid|key)$|[_\s.-](id|uuid|guid|key)$|^(id|uuid|guid)[_\s.-]|(?<=[a-z])(Id|ID)$")


class MetadataError(SpecError):
    """A table, or its override file, cannot be described: the message names the column and the problem."""


def column_path(name: str) -> str:
    """The field path of a column in messages: ``columns.age``, or ``columns['unit price']``."""
    return f"columns.{name}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f"columns[{name!r}]"


def _fail(name: str, message: str, source: str | None = None) -> MetadataError:
    return MetadataError(message, path=column_path(name), source=source)


# --------------------------------------------------------------------------------------------------
# The model


class Column(BaseModel):
    """One column: its type, the facts the generators keep, and how to write it back.

    Attributes:
        name: The column name.
        type: One of :data:`SDTYPES`.
        dtype: The pandas dtype of the source column, restored on output.
        null_rate: The share of missing values, in [0, 1].
        min: Smallest value (numerical; datetime in seconds since the epoch).
        max: Largest value.
        integer: Every value is whole (numerical).
        decimals: Values are rounded to this many decimals, or None when they are not (numerical).
        categories: The distinct values, sorted (categorical, boolean).
        datetime_unit: The coarsest unit every timestamp is a multiple of (``D``, ``s``, ``ms``, ``us``, ``ns``).
        datetime_format: A strptime format: timestamps are read from and written back as strings.
        tz: The time zone of a tz-aware datetime column.
        id_numeric: Synthetic keys are integers (else strings with ``id_prefix``).
        id_prefix: The common non-digit prefix of string keys (``CUST-``), kept on synthetic keys.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: SDType
    dtype: str = ""
    null_rate: float = Field(0.0, ge=0.0, le=1.0)
    min: float | None = None
    max: float | None = None
    integer: bool = False
    decimals: int | None = Field(None, ge=0, le=_MAX_DECIMALS)
    categories: list[str | bool | int | float] = Field(default_factory=list)
    datetime_unit: Literal["D", "s", "ms", "us", "ns"] | None = None
    datetime_format: str | None = None
    tz: str | None = None
    id_numeric: bool = True
    id_prefix: str = ""

    @property
    def modelled(self) -> bool:
        """Generators model this column (every type but ``id``)."""
        return self.type != "id"

    @property
    def discrete(self) -> bool:
        """Values are codes into :attr:`categories`."""
        return self.type in ("categorical", "boolean")

    def rounding_step(self) -> float:
        """Half of the gap between neighbouring writable values (0 when values are not rounded)."""
        if self.type == "datetime":
            return DATETIME_UNITS_NS[self.datetime_unit or "ns"] / 1e9 / 2.0
        if self.integer:
            return 0.5
        return 0.5 * 10.0**-self.decimals if self.decimals is not None else 0.0


class TableMetadata(BaseModel):
    """Every column of a table, in order, the number of rows they were learned from, and the target if named.

    Attributes:
        target: The column a model would predict (the class label), when the override file names one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: Literal[1] = 1
    n_rows: int = Field(ge=1)
    columns: list[Column] = Field(min_length=1)
    target: str | None = None

    @model_validator(mode="after")
    def _target_is_a_column(self) -> TableMetadata:
        if self.target is not None and self.target not in [c.name for c in self.columns]:
            raise ValueError(f"target '{self.target}' is not one of the columns")
        return self

    @property
    def names(self) -> list[str]:
        """Every column name, in table order."""
        return [c.name for c in self.columns]

    @property
    def modelled(self) -> list[Column]:
        """The columns generators model (all but ``id``), in table order."""
        return [c for c in self.columns if c.modelled]

    def column(self, name: str) -> Column:
        """The column called ``name``.

        Raises:
            MetadataError: No such column, with a "did you mean".
        """
        for c in self.columns:
            if c.name == name:
                return c
        raise _fail(name, f"no such column{did_you_mean(name, self.names)}; columns: {', '.join(self.names)}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (round-trips through :meth:`from_dict`)."""
        data = self.model_dump(mode="json")
        if data["target"] is None:
            del data["target"]  # unset: the same bytes as before targets existed, so model hashes stay put
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> TableMetadata:
        """Validate the JSON form.

        Raises:
            MetadataError: Listing every problem with its field path.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = spec_error_from_validation(exc, cls, source)
            raise MetadataError(source=source, problems=err.problems) from None


# --------------------------------------------------------------------------------------------------
# Reading files


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (UTF-8, a BOM is fine) or a Parquet file.

    Args:
        path: A ``.csv``/``.tsv``/``.txt`` or ``.parquet``/``.pq`` file.

    Returns:
        The table.

    Raises:
        MetadataError: An unknown suffix, a missing or empty file, a non-UTF-8 CSV (with the line and byte), or an
            unreadable Parquet file.
    """
    p = Path(path)
    src = str(p)
    if not p.is_file():
        raise MetadataError(f"no such file: {src}")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(p, engine="pyarrow")
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise MetadataError(f"not a readable Parquet file: {type(exc).__name__}: {exc}", source=src) from None
    if suffix not in (".csv", ".tsv", ".txt"):
        raise MetadataError(f"unsupported file type '{p.suffix}'; expected .csv, .tsv, .parquet or .pq", source=src)
    try:
        return pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", encoding="utf-8-sig", low_memory=False)
    except UnicodeDecodeError:
        raise MetadataError(_utf8_problem(p), source=src) from None
    except pd.errors.EmptyDataError:
        raise MetadataError("empty table: the file has no header and no rows", source=src) from None
    except pd.errors.ParserError as exc:
        raise MetadataError(f"not a well-formed CSV: {exc}", source=src) from None


def _utf8_problem(path: Path) -> str:
    """Where a file first stops being UTF-8: the line, the byte offset and the byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # The decoder may hold back up to 3 bytes of an unfinished sequence from the previous chunk.
                pending = len(decoder.getstate()[0]) if exc.start == 0 else 0
                bad = offset + exc.start - pending
                with open(path, "rb") as again:
                    head = again.read(bad + 1)
                line = head.count(b"\n") + 1
                return (
                    f"not UTF-8: byte 0x{head[-1]:02x} at line {line} (offset {bad}); re-save the file as UTF-8, "
                    "e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`"
                )
            offset += len(chunk)
    return "not UTF-8 (an unfinished multi-byte sequence at the end of the file)"


# --------------------------------------------------------------------------------------------------
# Overrides


class ColumnOverride(BaseModel):
    """What a user may say about one column in the override file."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = None
    format: str | None = None
    min: float | None = None
    max: float | None = None
    decimals: int | None = Field(None, ge=0, le=_MAX_DECIMALS)
    integer: bool | None = None


class Overrides(BaseModel):
    """The override file: ``target: name``, ``columns: {name: type | {type, format, min, max, decimals, integer}}``."""

    model_config = ConfigDict(extra="forbid")

    target: str | None = None
    columns: dict[str, ColumnOverride] = Field(default_factory=dict)


def load_overrides(source: str | Path | Mapping[str, Any] | None) -> tuple[Overrides, str | None]:
    """Read and check an override file (or an already-parsed mapping).

    Returns:
        The overrides and the file name (for messages), or None for a mapping.

    Raises:
        MetadataError: A missing file, bad YAML, an unknown key, or an unknown type (with "did you mean").
    """
    if source is None:
        return Overrides(), None
    name: str | None = None
    if isinstance(source, Mapping):
        data: Any = dict(source)
    else:
        name = str(source)
        try:
            data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MetadataError(f"no such override file: {name}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise MetadataError(f"not a readable YAML file: {exc}", source=name) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MetadataError(f"expected a mapping with a 'columns' key, got {type(data).__name__}", source=name)
    unknown = [k for k in data if k not in ("columns", "target")]
    if unknown:
        raise MetadataError(
            f"unknown field '{unknown[0]}'{did_you_mean(str(unknown[0]), ['columns', 'target'])}",
            path=str(unknown[0]),
            source=name,
        )
    target = data.get("target")
    if target is not None and not isinstance(target, str):
        raise MetadataError(f"expected a column name, got {target!r}", path="target", source=name)
    entries = data.get("columns") or {}
    if not isinstance(entries, dict):
        raise MetadataError(
            f"expected a mapping of column names, got {type(entries).__name__}", path="columns", source=name
        )
    columns: dict[str, ColumnOverride] = {}
    for col, entry in entries.items():
        # One column at a time, so that messages carry the column's path and "did you mean" for its fields.
        try:
            columns[str(col)] = ColumnOverride.model_validate({"type": entry} if isinstance(entry, str) else entry)
        except ValidationError as exc:
            err = spec_error_from_validation(exc, ColumnOverride, name)
            problems = [(f"{column_path(str(col))}.{p}" if p else column_path(str(col)), m) for p, m in err.problems]
            raise MetadataError(source=name, problems=problems) from None
    overrides = Overrides(target=target, columns=columns)
    for col, ov in overrides.columns.items():
        if ov.type is not None and ov.type not in SDTYPES:
            raise MetadataError(
                f"unknown type '{ov.type}'{did_you_mean(ov.type, SDTYPES)}; expected one of: {', '.join(SDTYPES)}",
                path=f"{column_path(col)}.type",
                source=name,
            )
        if ov.format is not None and ov.type not in (None, "datetime"):
            raise MetadataError(
                "'format' applies to datetime columns only", path=f"{column_path(col)}.format", source=name
            )
    return overrides, name


# --------------------------------------------------------------------------------------------------
# Inference


def infer_metadata(
    table: pd.DataFrame,
    overrides: str | Path | Mapping[str, Any] | None = None,
    *,
    source: str | None = None,
) -> TableMetadata:
    """Infer every column's type and facts from a table, then apply the overrides.

    Args:
        table: The real table.
        overrides: An override file, or its parsed mapping.
        source: The table's file name, for messages.

    Returns:
        The table's metadata.

    Raises:
        MetadataError: An empty table, an all-null column, a column of mixed numbers and strings, an override
            naming an unknown column or type, or a value that does not fit its overridden type.
    """
    ov, ov_source = load_overrides(overrides)
    if table.shape[1] == 0:
        raise MetadataError("empty table: it has no columns", source=source)
    if table.shape[0] == 0:
        raise MetadataError("empty table: it has a header but no rows", source=source)
    names = list(table.columns)
    for name in names:
        if not isinstance(name, str):
            raise MetadataError(f"column names must be strings, got {name!r}", source=source)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _fail(dupes[0], "the name appears more than once", source)
    for name in ov.columns:
        if name not in names:
            raise MetadataError(
                f"no such column in the table{did_you_mean(name, names)}; columns: {', '.join(names)}",
                path=column_path(name),
                source=ov_source,
            )
    if ov.target is not None and ov.target not in names:
        raise MetadataError(
            f"no such column in the table{did_you_mean(ov.target, names)}; columns: {', '.join(names)}",
            path="target",
            source=ov_source,
        )
    columns = [_infer_column(table[name], ov.columns.get(name), source) for name in names]
    return TableMetadata(n_rows=len(table), columns=columns, target=ov.target)


def _infer_column(series: pd.Series, ov: ColumnOverride | None, source: str | None) -> Column:
    name = str(series.name)
    present = series.dropna()
    if present.empty:
        raise _fail(name, "every value is missing: drop the column, or fill it in", source)
    null_rate = float(series.isna().mean())
    dtype = str(series.dtype)
    kind = ov.type if ov is not None and ov.type is not None else _guess_type(series, present, source)
    fmt = ov.format if ov is not None else None
    common = {"name": name, "type": kind, "dtype": dtype, "null_rate": null_rate}
    if kind == "numerical":
        col = Column(**common, **_numeric_facts(_as_numbers(present, name, source)))
    elif kind == "datetime":
        col = Column(**common, **_datetime_facts(present, fmt, name, source))
    elif kind in ("categorical", "boolean"):
        col = Column(**common, categories=_categories(present, kind, name, source))
    else:
        col = Column(**common, **_id_facts(present))
    return _apply_override(col, ov, source)


def _apply_override(col: Column, ov: ColumnOverride | None, source: str | None) -> Column:
    if ov is None:
        return col
    changes = {
        k: v
        for k, v in {"min": ov.min, "max": ov.max, "decimals": ov.decimals, "integer": ov.integer}.items()
        if v is not None
    }
    if not changes:
        return col
    if col.type != "numerical":
        raise _fail(col.name, f"{', '.join(changes)} apply to numerical columns only (this one is {col.type})", source)
    col = col.model_copy(update=changes)
    if col.min is not None and col.max is not None and col.min > col.max:
        raise _fail(col.name, f"min {col.min} is above max {col.max}", source)
    return col


def _python_kinds(present: pd.Series) -> set[str]:
    """The kinds of Python values in an object column: number, bool, str, other."""
    kinds = set()
    for v in present.array:
        if isinstance(v, bool | np.bool_):
            kinds.add("bool")
        elif isinstance(v, int | float | np.integer | np.floating):
            kinds.add("number")
        elif isinstance(v, str):
            kinds.add("str")
        else:
            kinds.add(type(v).__name__)
    return kinds


def _guess_type(series: pd.Series, present: pd.Series, source: str | None) -> str:
    name = str(series.name)
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    if isinstance(series.dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(series.dtype) or pd.api.types.is_complex_dtype(series.dtype):
        raise _fail(name, f"unsupported dtype {series.dtype}; convert it to numbers first", source)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return _guess_numeric(name, present.to_numpy(dtype=np.float64), len(series))
    kinds = _python_kinds(present)
    if kinds <= {"bool"}:
        return "boolean"
    if not kinds <= {"str", "number"}:
        odd = sorted(kinds - {"str", "number", "bool"})
        raise _fail(
            name, f"mixed types: values of type {', '.join(odd)} next to {', '.join(sorted(kinds - set(odd)))}", source
        )
    as_numbers = pd.to_numeric(present, errors="coerce")
    numeric = as_numbers.notna()
    if numeric.all():
        return _guess_numeric(name, as_numbers.to_numpy(dtype=np.float64), len(series))
    if numeric.mean() >= 0.5:
        bad = present[~numeric].astype(str).unique()[:3]
        raise _fail(
            name,
            f"mixed types: {int(numeric.sum())} of {len(present)} values are numbers but {int((~numeric).sum())} are "
            f"not (e.g. {', '.join(repr(b) for b in bad)}); clean them, or set `type: categorical` in the "
            "override file",
            source,
        )
    if _parses_as_datetime(present):
        return "datetime"
    unique = present.nunique() == len(present)
    if unique and (_ID_NAME.search(name) or len(present) >= 20):
        # Unique strings are keys or free text: as categories every value would be copied verbatim.
        return "id"
    return "categorical"


def _guess_numeric(name: str, values: np.ndarray, n_rows: int) -> str:
    whole = bool(np.all(values == np.round(values)))
    distinct = len(np.unique(values))
    if whole and distinct == len(values) and _ID_NAME.search(name):
        return "id"
    if n_rows > 5 and whole and values.min() >= 0 and distinct <= min(round(n_rows / 10), 10):
        return "categorical"
    return "numerical"


def _parses_as_datetime(present: pd.Series) -> bool:
    try:
        pd.to_datetime(present.astype(str), format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def _as_numbers(present: pd.Series, name: str, source: str | None) -> np.ndarray:
    if pd.api.types.is_bool_dtype(present.dtype):
        return present.to_numpy(dtype=np.float64)
    numbers = pd.to_numeric(present, errors="coerce")
    bad = present[numbers.isna()]
    if len(bad):
        examples = ", ".join(repr(v) for v in bad.astype(str).unique()[:3])
        raise _fail(name, f"type numerical, but {len(bad)} values are not numbers (e.g. {examples})", source)
    values = numbers.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise _fail(name, "holds infinite values; replace them with missing values or bounds", source)
    return values


def _decimals(values: np.ndarray) -> int | None:
    for d in range(_MAX_DECIMALS + 1):
        if np.array_equal(np.round(values, d), values):
            return d
    return None


def _numeric_facts(values: np.ndarray) -> dict[str, Any]:
    whole = bool(np.all(values == np.round(values)))
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "integer": whole,
        "decimals": 0 if whole else _decimals(values),
    }


def _to_datetime(values: pd.Series, fmt: str | None) -> tuple[pd.Series, Any]:
    """Parse to naive datetime64[ns] (in UTC for tz-aware values) and the time zone, if any.

    Raises:
        ValueError, TypeError, OverflowError: A value that does not parse.
    """
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = pd.to_datetime(values.astype(str) if fmt is None else values, format=fmt or "ISO8601")
    tz = getattr(values.dtype, "tz", None)
    if tz is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.astype("datetime64[ns]"), tz


def _datetime_facts(present: pd.Series, fmt: str | None, name: str, source: str | None) -> dict[str, Any]:
    try:
        parsed, tz = _to_datetime(present, fmt)
    except (ValueError, TypeError, OverflowError) as exc:
        how = f"with format {fmt!r}" if fmt else "as ISO 8601 (give a `format` in the override file)"
        raise _fail(name, f"type datetime, but the values do not parse {how}: {exc}", source) from None
    ns = parsed.to_numpy().astype(np.int64)
    unit = next(u for u, size in DATETIME_UNITS_NS.items() if np.all(ns % size == 0))
    return {
        "min": float(ns.min()) / 1e9,
        "max": float(ns.max()) / 1e9,
        "datetime_unit": unit,
        "datetime_format": fmt,
        "tz": str(tz) if tz is not None else None,
    }


def _categories(present: pd.Series, kind: str, name: str, source: str | None) -> list[Any]:
    if isinstance(present.dtype, pd.CategoricalDtype) and kind == "categorical":
        # A pandas categorical declares its categories and their order: keep both (unseen ones too).
        return [to_python(v) for v in present.dtype.categories]
    py = [to_python(v) for v in present.unique()]
    if kind == "boolean":
        if len(py) > 2:
            shown = ", ".join(repr(v) for v in sorted(py, key=repr)[:4])
            raise _fail(name, f"type boolean, but it has {len(py)} distinct values ({shown})", source)
        if set(py) <= {True, False} and all(isinstance(v, bool) for v in py):
            return [False, True]
    kinds = {type(v) for v in py}
    if len(kinds) > 1 and kinds != {int, float}:
        # Mixed Python types in categories (strings and numbers): compare them as strings.
        py = sorted({str(v) for v in py})
        return py
    return sorted(py)


def to_python(v: Any) -> Any:
    """A numpy scalar as a Python value, and a whole float as an int (category values compare as Python values)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _id_facts(present: pd.Series) -> dict[str, Any]:
    if pd.api.types.is_numeric_dtype(present.dtype):
        return {"id_numeric": True}
    strings = present.astype(str)
    prefix = strings.iloc[0]
    for s in strings.array[:1000]:
        while prefix and not s.startswith(prefix):
            prefix = prefix[:-1]
    return {"id_numeric": False, "id_prefix": prefix.rstrip("0123456789")}


# --------------------------------------------------------------------------------------------------
# Encoding: a table <-> a float matrix of its modelled columns (NaN = missing)


def encode_table(table: pd.DataFrame, metadata: TableMetadata, *, source: str | None = None) -> np.ndarray:
    """The modelled columns as floats: numbers, seconds since the epoch, or category codes; NaN where missing.

    Args:
        table: A table with (at least) the metadata's columns.
        metadata: Its metadata.
        source: The table's file name, for messages.

    Returns:
        A float64 matrix of shape (rows, modelled columns), in metadata order.

    Raises:
        MetadataError: A missing column, or a value that does not fit its column (naming both).
    """
    missing = [c.name for c in metadata.columns if c.name not in table.columns]
    if missing:
        raise _fail(
            missing[0], f"the table has no such column{did_you_mean(missing[0], map(str, table.columns))}", source
        )
    cols = [encode_column(table[c.name], c, source=source) for c in metadata.modelled]
    return np.column_stack(cols) if cols else np.empty((len(table), 0))


def encode_column(
    series: pd.Series, col: Column, *, unknown: Literal["error", "nan"] = "error", source: str | None = None
) -> np.ndarray:
    """One column as floats: numbers, seconds since the epoch, or category codes; NaN where missing.

    Args:
        series: The column's values.
        col: Its metadata.
        unknown: What a value outside the column's categories becomes: an error, or NaN.
        source: The table's file name, for messages.

    Raises:
        MetadataError: A value that does not fit the column.
    """
    out = np.full(len(series), np.nan)
    mask = series.notna().to_numpy()
    present = series[mask]
    if col.type == "numerical":
        out[mask] = _as_numbers(present, col.name, source)
    elif col.type == "datetime":
        try:
            parsed, tz = _to_datetime(present, col.datetime_format)
        except (ValueError, TypeError, OverflowError) as exc:
            raise _fail(col.name, f"a value does not parse as a datetime: {exc}", source) from None
        if (tz is None) != (col.tz is None):
            raise _fail(col.name, f"time zone {tz} where the column has {col.tz}", source)
        out[mask] = parsed.to_numpy().astype(np.int64) / 1e9
    elif col.type == "id":
        raise _fail(col.name, "is an id column: it is not encoded", source)
    else:
        out[mask] = _category_codes(present, col, unknown, source)
    return out


def _category_codes(present: pd.Series, col: Column, unknown: str, source: str | None) -> np.ndarray:
    index = {v: float(i) for i, v in enumerate(col.categories)}
    # Look up each distinct value once. Categories of mixed Python types are stored as text (see _categories):
    # compare non-strings as text then.
    text = all(isinstance(c, str) for c in col.categories)
    codes_of_row, uniques = pd.factorize(pd.Series(present.to_numpy(dtype=object)), use_na_sentinel=False)
    keys = [(v if isinstance(v, str) else str(to_python(v))) if text else to_python(v) for v in uniques]
    codes = np.array([index.get(k, np.nan) for k in keys], dtype=np.float64)[codes_of_row]
    bad = np.isnan(codes)
    if bad.any() and unknown == "error":
        v = present.array[int(np.flatnonzero(bad)[0])]
        shown = ", ".join(repr(c) for c in col.categories[:6]) + (", ..." if len(col.categories) > 6 else "")
        raise _fail(col.name, f"value {v!r} is not one of its categories ({shown})", source)
    return codes


def decode_table(matrix: np.ndarray, metadata: TableMetadata, *, first_row: int = 0) -> pd.DataFrame:
    """Turn an encoded matrix back into a table with the real table's columns, dtypes and rounding.

    Numbers are clipped to the column's bounds and rounded to its decimals; timestamps are rounded to the column's
    unit; codes become categories; id columns get fresh keys ``first_row, first_row + 1, ...``.

    Args:
        matrix: Shape (rows, modelled columns), as from :func:`encode_table`.
        metadata: The table's metadata.
        first_row: The number of the first row, for id columns (so shards get distinct keys).

    Returns:
        The table.
    """
    n = matrix.shape[0]
    modelled = metadata.modelled
    if matrix.shape[1] != len(modelled):
        raise ValueError(f"matrix has {matrix.shape[1]} columns, the metadata models {len(modelled)}")
    data: dict[str, pd.Series] = {}
    j = 0
    for col in metadata.columns:
        if col.type == "id":
            data[col.name] = _new_ids(col, n, first_row)
            continue
        data[col.name] = _decode_column(matrix[:, j], col)
        j += 1
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def _restore_dtype(series: pd.Series, dtype: str) -> pd.Series:
    if not dtype or dtype == str(series.dtype):
        return series
    try:
        return series.astype(dtype)
    except (TypeError, ValueError):  # e.g. missing values in a column that had none: keep the wider dtype
        return series


def _decode_column(values: np.ndarray, col: Column) -> pd.Series:
    missing = np.isnan(values)
    if col.type == "numerical":
        x = np.clip(values, col.min if col.min is not None else -np.inf, col.max if col.max is not None else np.inf)
        if col.decimals is not None:
            x = np.round(x, col.decimals)
        dtype = col.dtype if not (missing.any() and col.dtype.startswith(("int", "uint"))) else "float64"
        return _restore_dtype(pd.Series(x, name=col.name), dtype)
    if col.type == "datetime":
        step = DATETIME_UNITS_NS[col.datetime_unit or "ns"]
        # Whole units first, then nanoseconds in integers: float nanoseconds since 1970 have lost precision.
        units = np.round(np.nan_to_num(values) * (1e9 / step)).astype(np.int64)
        stamps = pd.Series((units * step).astype("datetime64[ns]"), name=col.name)
        stamps[missing] = pd.NaT
        if col.tz is not None:
            stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(col.tz)
        if col.datetime_format is not None:
            return stamps.dt.strftime(col.datetime_format)
        if col.dtype.startswith("datetime64"):
            return _restore_dtype(stamps, col.dtype)
        return stamps
    cats = np.empty(len(col.categories) + 1, dtype=object)
    cats[:-1] = col.categories
    cats[-1] = None if col.type == "categorical" and isinstance(col.categories[0], str) else np.nan
    idx = np.where(missing, len(col.categories), np.nan_to_num(values)).astype(np.int64)
    out = pd.Series(cats[idx], name=col.name)
    if missing.any() and col.dtype in ("bool", "int64", "int32", "int16", "int8"):
        return out
    if col.dtype.startswith("category"):
        return out.astype(pd.CategoricalDtype(col.categories))
    return _restore_dtype(out, col.dtype if col.dtype != "object" else "")


def _new_ids(col: Column, n: int, first_row: int) -> pd.Series:
    keys = np.arange(first_row, first_row + n, dtype=np.int64)
    if col.id_numeric:
        return _restore_dtype(pd.Series(keys, name=col.name), col.dtype)
    return pd.Series([f"{col.id_prefix}{k}" for k in keys], name=col.name, dtype=object)
