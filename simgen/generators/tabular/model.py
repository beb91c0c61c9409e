"""What every tabular model shares: sampling rows (optionally with fixed values), and rejection with a bound.

A tabular model samples an *encoded* matrix (see :func:`~.metadata.encode_table`): numbers, seconds since the
epoch, or category codes, NaN where a value is missing. :meth:`TabularModel.sample` checks the arguments, turns
``conditions`` into :class:`Condition` objects, asks the model for the matrix, writes the fixed values in exactly,
and decodes the matrix into a table with the real table's columns and dtypes.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simgen.errors import SpecError, did_you_mean
from simgen.generators.base import FittedModel, ModelFileError, check_rng
from simgen.generators.tabular.metadata import (
    DATETIME_UNITS_NS,
    Column,
    MetadataError,
    TableMetadata,
    decode_table,
    to_python,
)

try:
    import pandas as pd
except ImportError as exc:  # pragma: no cover - only without the extra
    from simgen.errors import DependencyMissing

    raise DependencyMissing("pandas", "tabular", "tables") from exc

__all__ = ["Condition", "ConditionError", "TabularModel", "rejection_sample", "resolve_conditions"]

#: Rejection sampling stops after this many draws per requested row (and at least ``_MIN_DRAWS``).
DRAWS_PER_ROW = 1000
_MIN_DRAWS = 100_000
_MAX_BATCH = 1_000_000


class ConditionError(SpecError):
    """A condition names an unknown column, a value the column cannot take, or is too rare to sample."""


@dataclass(frozen=True)
class Condition:
    """One fixed value, encoded.

    Attributes:
        index: The column's position among the modelled columns.
        column: The column.
        value: The encoded value (number, seconds, or category code); NaN asks for a missing value.
        given: The value as the user gave it, for messages.
    """

    index: int
    column: Column
    value: float
    given: Any

    @property
    def missing(self) -> bool:
        """The condition asks for a missing value."""
        return math.isnan(self.value)

    def bounds(self) -> tuple[float, float]:
        """The encoded values that write out as this value: ``value ± half a rounding step`` (a code: itself)."""
        h = 0.0 if self.column.discrete else self.column.rounding_step()
        return self.value - h, self.value + h

    def matches(self, encoded: np.ndarray) -> np.ndarray:
        """Which of the encoded values (one column) meet this condition."""
        if self.missing:
            return np.isnan(encoded)
        lo, hi = self.bounds()
        with np.errstate(invalid="ignore"):
            return (encoded >= lo - 1e-9 * max(1.0, abs(lo))) & (encoded <= hi + 1e-9 * max(1.0, abs(hi)))


def _path(name: str) -> str:
    return f"conditions.{name}"


def _encode_condition(col: Column, value: Any) -> float:
    """The encoded form of one condition value; raise ConditionError if the column cannot take it."""
    where = _path(col.name)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        if col.null_rate == 0.0:
            raise ConditionError("asks for a missing value, but the column has none", path=where)
        return math.nan
    if col.discrete:
        return _encode_category(col, value)
    if col.type == "numerical":
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ConditionError(f"expected a number, got {value!r}", path=where)
        x = float(value)
        if not math.isfinite(x):
            raise ConditionError(f"expected a finite number, got {value!r}", path=where)
        if col.integer and x != round(x):
            raise ConditionError(f"the column holds whole numbers, got {value!r}", path=where)
        if col.decimals is not None and round(x, col.decimals) != x:
            raise ConditionError(f"the column is written with {col.decimals} decimals, got {value!r}", path=where)
    else:
        x = _encode_datetime(col, value)
    lo = -math.inf if col.min is None else col.min
    hi = math.inf if col.max is None else col.max
    if not lo <= x <= hi:
        raise ConditionError(f"{value!r} is outside the fitted range [{col.min}, {col.max}]", path=where)
    return x


def _encode_datetime(col: Column, value: Any) -> float:
    where = _path(col.name)
    try:
        fmt = col.datetime_format if isinstance(value, str) else None
        stamp = pd.to_datetime(value, format=fmt) if fmt else pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConditionError(f"expected a datetime, got {value!r}: {exc}", path=where) from None
    if col.tz is not None and stamp.tzinfo is None:
        stamp = stamp.tz_localize(col.tz)  # a naive time means the column's own zone
    elif col.tz is None and stamp.tzinfo is not None:
        raise ConditionError(f"the column has no time zone, got {value!r}", path=where)
    ns = int(stamp.as_unit("ns").value)  # nanoseconds since 1970 UTC
    unit = col.datetime_unit or "ns"
    if ns % DATETIME_UNITS_NS[unit]:
        raise ConditionError(f"the column is written in whole units of {unit}, got {value!r}", path=where)
    return ns / 1e9


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _encode_category(col: Column, value: Any) -> float:
    v = to_python(value)
    for i, c in enumerate(col.categories):
        if c == v and (type(c) is type(v) or (_is_number(c) and _is_number(v))):  # True == 1, but not a match
            return float(i)
    # Values typed on a command line arrive as strings: match them against the categories' text.
    text = [str(c) for c in col.categories]
    if str(v) in text:
        return float(text.index(str(v)))
    raise ConditionError(
        f"{value!r} is not one of its categories{did_you_mean(str(v), text)}; "
        f"expected one of: {', '.join(text[:12])}{', ...' if len(text) > 12 else ''}",
        path=_path(col.name),
    )


def resolve_conditions(metadata: TableMetadata, conditions: Mapping[str, Any] | None) -> list[Condition]:
    """Check and encode ``{column: value}`` conditions (None asks for a missing value).

    Raises:
        ConditionError: An unknown column (with "did you mean"), an id column, or a value the column cannot take.
    """
    if not conditions:
        return []
    if not isinstance(conditions, Mapping):
        raise ConditionError(
            f"expected a mapping of column to value, got {type(conditions).__name__}", path="conditions"
        )
    modelled = {c.name: i for i, c in enumerate(metadata.modelled)}
    out = []
    for name, value in conditions.items():
        if name not in modelled:
            if name in metadata.names:
                raise ConditionError("is an id column: its keys are generated, not sampled", path=_path(str(name)))
            raise ConditionError(f"no such column{did_you_mean(str(name), metadata.names)}", path=_path(str(name)))
        col = metadata.modelled[modelled[name]]
        out.append(Condition(modelled[name], col, _encode_condition(col, value), value))
    return sorted(out, key=lambda c: c.index)


def rejection_sample(
    draw: Callable[[int], np.ndarray], accept: Callable[[np.ndarray], np.ndarray], n: int, *, max_draws: int, what: str
) -> np.ndarray:
    """Draw batches until ``n`` rows pass ``accept``; give up with a clear error after ``max_draws`` draws.

    Batches are sized from the acceptance rate seen so far, and drawn in order from the one generator that
    ``draw`` closes over, so the result depends on that generator's state alone.

    Args:
        draw: ``draw(m)`` returns ``m`` candidate rows.
        accept: A boolean mask over candidate rows.
        n: Rows wanted.
        max_draws: The most candidates to draw.
        what: The conditions, for the error message.

    Returns:
        The first ``n`` accepted rows, in the order drawn.

    Raises:
        ConditionError: Fewer than ``n`` rows passed within ``max_draws`` draws.
    """
    kept: list[np.ndarray] = []
    have = drawn = 0
    batch = min(max(1024, 2 * n), max_draws)
    while have < n:
        if drawn >= max_draws:
            rate = have / drawn if drawn else 0.0
            raise ConditionError(
                f"{what} are too rare under the fitted model: {have:,} of {drawn:,} draws matched "
                f"(rate {rate:.2g}), {n:,} rows wanted; condition on fewer or more common values",
                path="conditions",
            )
        rows = draw(batch)
        ok = rows[accept(rows)]
        kept.append(ok)
        have += len(ok)
        drawn += batch
        rate = max(have / drawn, 1.0 / drawn)
        batch = int(min(_MAX_BATCH, max_draws - drawn, max(1024, math.ceil(1.2 * (n - have) / rate))))
    return np.concatenate(kept)[:n]


class TabularModel(FittedModel):
    """A fitted tabular model: ``sample(n, rng, conditions=...)`` returns a table like the real one.

    Attributes:
        metadata: The real table's metadata; sampled tables have its columns, dtypes, bounds and rounding.
    """

    metadata: TableMetadata

    @abstractmethod
    def _sample_encoded(
        self, n: int, rng: np.random.Generator, conditions: list[Condition], max_draws: int
    ) -> np.ndarray:
        """``n`` encoded rows (n >= 1) that meet ``conditions``."""

    def sample(
        self,
        n: int,
        rng: np.random.Generator,
        *,
        conditions: Mapping[str, Any] | None = None,
        first_row: int = 0,
        max_draws: int | None = None,
    ) -> pd.DataFrame:
        """Sample ``n`` rows.

        Args:
            n: Rows to sample (0 gives an empty table with the right columns).
            rng: The only source of randomness: the same state gives byte-identical rows.
            conditions: ``{column: value}`` fixed in every row (None asks for a missing value); the other columns
                are drawn from the model given these.
            first_row: The number of the first row, for generated id keys (a shard passes its offset).
            max_draws: For conditions sampled by rejection, the most candidates drawn (default
                ``1000 * n``, at least 100,000) before a :class:`ConditionError`.

        Returns:
            The rows, with the real table's columns in order.

        Raises:
            ConditionError: A bad condition, or one too rare to meet within ``max_draws``.
        """
        check_rng(rng)
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n: expected a non-negative integer, got {n!r}")
        if isinstance(first_row, bool) or not isinstance(first_row, int | np.integer) or first_row < 0:
            raise ValueError(f"first_row: expected a non-negative integer, got {first_row!r}")
        conds = resolve_conditions(self.metadata, conditions)
        width = len(self.metadata.modelled)
        if n == 0:
            enc = np.empty((0, width))
        else:
            limit = max_draws if max_draws is not None else max(_MIN_DRAWS, DRAWS_PER_ROW * int(n))
            enc = self._sample_encoded(int(n), rng, conds, limit)
        for c in conds:
            enc[:, c.index] = c.value
        return decode_table(enc, self.metadata, first_row=int(first_row))


def metadata_from_config(config: Mapping[str, Any]) -> TableMetadata:
    """The metadata stored in a model's configuration, checked."""
    try:
        return TableMetadata.from_dict(config.get("metadata"), source="model.json")
    except MetadataError as exc:
        raise ModelFileError(f"model.json: bad metadata: {exc}") from None


def require(ok: bool, message: str) -> None:
    """Raise :class:`ModelFileError` unless ``ok`` (for consistency checks when loading a model)."""
    if not ok:
        raise ModelFileError(f"model file is inconsistent: {message}")
