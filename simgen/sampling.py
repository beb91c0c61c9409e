"""Distributions that any numeric spec field may take, and the derivation of every rng.

A field is either a plain constant or a mapping with a ``kind``::

    count: {kind: intrange, low: 10, high: 30}
    distance: {kind: truncnormal, mean: 1.2, std: 0.2, low: 0.8, high: 1.6}

Randomness never comes from a global generator: :func:`rng_for` derives a fresh
``numpy.random.Generator`` from ``(seed, *keys)`` through ``SeedSequence``, so frame i's
values depend on the seed and i alone, whatever the worker or shard that computes them.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from statistics import NormalDist
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    Strict,
    TypeAdapter,
    model_validator,
)
from pydantic_core import core_schema

KINDS = ("const", "uniform", "normal", "truncnormal", "loguniform", "choice", "intrange", "sweep")

#: No number in a spec may exceed this in magnitude: then no sum, difference or draw of two of them
#: overflows a float (a uniform from -1e308 to 1e308 draws inf), and every int fits numpy's int64.
MAX_MAGNITUDE = 1e12


#: The most values a ``choice`` or ``sweep`` lists (a longer list is a generated file gone wrong, not a spec).
MAX_VALUES = 10_000


def integral(value: Any) -> Any:
    """``3.0`` becomes ``3``; anything else is returned unchanged (for strict integer fields)."""
    # Strict ints refuse booleans and strings, but ``3.0`` is a fine way to write 3 in YAML or JSON.
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_MAGNITUDE:
        return int(value)
    return value


#: A finite float, never a bool or a string, at most :data:`MAX_MAGNITUDE` in magnitude.
Number = Annotated[float, Strict(), AllowInfNan(False), Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
#: An int (or an integral float), never a bool or a string, at most :data:`MAX_MAGNITUDE` in magnitude.
Integer = Annotated[int, BeforeValidator(integral), Strict(), Field(ge=-int(MAX_MAGNITUDE), le=int(MAX_MAGNITUDE))]


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is an int or float (not a bool), finite and at most :data:`MAX_MAGNITUDE` in magnitude."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    # abs() first: math.isfinite(10**400) raises OverflowError, a huge int is simply too large.
    if isinstance(value, int):
        return abs(value) <= MAX_MAGNITUDE
    return math.isfinite(value) and abs(value) <= MAX_MAGNITUDE


def first_non_finite(value: Any) -> tuple[tuple[int | str, ...], Any] | None:
    """The location and value of the first NaN, infinity or over-large number inside nested lists and dicts.

    Walks iteratively and keeps one (parent, key) link per container, so a deeply nested input costs
    linear time and no stack.

    Args:
        value: Plain data (what YAML or JSON gives).

    Returns:
        ``(location, number)``, or None when every number is finite and at most :data:`MAX_MAGNITUDE`.
    """
    links: list[tuple[int, int | str | None]] = []  # for container k: (its parent's link, its key; None: root)
    stack: list[tuple[int, int | str | None, Any]] = [(-1, None, value)]  # (parent link, key, value)
    while stack:
        parent, key, v = stack.pop()
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            if not is_finite_number(v):
                loc = [key]
                while parent >= 0:
                    parent, k = links[parent]
                    loc.append(k)
                return tuple(k for k in reversed(loc) if k is not None), v
        elif isinstance(v, dict | list | tuple):
            links.append((parent, key))
            me = len(links) - 1
            items = [(str(k), item) for k, item in v.items()] if isinstance(v, dict) else list(enumerate(v))
            stack.extend((me, k, item) for k, item in reversed(items))
    return None


def _finite_values(value: Any) -> Any:
    if isinstance(value, list) and len(value) > MAX_VALUES:
        return value  # refused by the field's max_length, without walking it first
    found = first_non_finite(value)
    if found is not None:
        loc = found[0] if len(found[0]) <= 8 else (*found[0][:4], "...", *found[0][-2:])
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{str(p)[:40]}" for p in loc)
        raise ValueError(f"{where.lstrip('.') or 'the value'} must be a finite number of magnitude at most 1e12")
    return value


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Const(_Dist):
    """Always ``value``."""

    kind: Literal["const"] = "const"
    value: Annotated[Any, BeforeValidator(_finite_values)]


class Uniform(_Dist):
    """Uniform on ``[low, high)``."""

    kind: Literal["uniform"] = "uniform"
    low: Number
    high: Number

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"high must be >= low, got low={self.low}, high={self.high}")
        return self


class Normal(_Dist):
    """Gaussian with ``mean`` and ``std``."""

    kind: Literal["normal"] = "normal"
    mean: Number
    std: Annotated[Number, Field(ge=0)]


class TruncNormal(_Dist):
    """Gaussian with ``mean`` and ``std`` restricted to ``[low, high]`` (by inverse CDF, one draw)."""

    kind: Literal["truncnormal"] = "truncnormal"
    mean: Number
    std: Annotated[Number, Field(gt=0)]
    low: Number
    high: Number

    @model_validator(mode="after")
    def _ordered(self) -> TruncNormal:
        if self.high <= self.low:
            raise ValueError(f"high must be > low, got low={self.low}, high={self.high}")
        return self


class LogUniform(_Dist):
    """Log-uniform on ``[low, high)``, both positive."""

    kind: Literal["loguniform"] = "loguniform"
    low: Annotated[Number, Field(gt=0)]
    high: Annotated[Number, Field(gt=0)]

    @model_validator(mode="after")
    def _ordered(self) -> LogUniform:
        if self.high < self.low:
            raise ValueError(f"high must be >= low, got low={self.low}, high={self.high}")
        return self


class Choice(_Dist):
    """One of ``values``, optionally with ``weights`` (normalised)."""

    kind: Literal["choice"] = "choice"
    values: Annotated[list[Any], BeforeValidator(_finite_values)] = Field(min_length=1, max_length=MAX_VALUES)
    weights: list[Annotated[Number, Field(ge=0)]] | None = Field(default=None, max_length=MAX_VALUES)

    @model_validator(mode="after")
    def _weights(self) -> Choice:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(
                    f"weights must have one entry per value: {len(self.values)} values, {len(self.weights)} weights"
                )
            if sum(self.weights) <= 0:
                raise ValueError("weights must be non-negative with a positive sum")
        return self


class IntRange(_Dist):
    """An integer in ``[low, high]``, both inclusive."""

    kind: Literal["intrange"] = "intrange"
    low: Integer
    high: Integer

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.high < self.low:
            raise ValueError(f"high must be >= low, got low={self.low}, high={self.high}")
        return self


class Sweep(_Dist):
    """``values[index % len(values)]``: a deterministic sweep over the scene or frame index."""

    kind: Literal["sweep"] = "sweep"
    values: Annotated[list[Any], BeforeValidator(_finite_values)] = Field(min_length=1, max_length=MAX_VALUES)


Distribution = Annotated[
    Const | Uniform | Normal | TruncNormal | LogUniform | Choice | IntRange | Sweep,
    Field(discriminator="kind"),
]


def support(value: Any) -> tuple[float, float] | None:
    """The smallest closed interval holding every value a constant or distribution can draw.

    Args:
        value: A number or a distribution model.

    Returns:
        ``(low, high)`` (infinite ends for a ``normal`` with ``std > 0``), or None when some value it can
        draw is not a number.
    """

    def numbers(values: list[Any]) -> tuple[float, float] | None:
        if not values or not all(is_finite_number(v) for v in values):
            return None
        return float(min(values)), float(max(values))

    match value:
        case Const():
            return numbers([value.value])
        case Uniform() | LogUniform() | TruncNormal() | IntRange():
            return float(value.low), float(value.high)
        case Normal():
            return (value.mean, value.mean) if value.std == 0 else (-math.inf, math.inf)
        case Choice() | Sweep():
            return numbers(value.values)
    return numbers([value])


def _fmt(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Bounds:
    """The range a numeric field's values must lie in; ``integer`` draws are rounded.

    Used as ``Annotated`` metadata on a :data:`Scalar`/:data:`IntScalar` field (``Scalar`` itself carries
    ``Bounds()``, so every spec number is a finite number). Constants, and the whole support of every
    distribution (uniform, truncnormal, loguniform, intrange, choice, sweep), are checked when the model
    validates, so an impossible value fails at load time with its field path, never mid-run. A ``normal``
    with ``std > 0`` is refused where a bound is finite, since it can draw anything: the message suggests
    ``truncnormal``. Several ``Bounds`` on one field all apply (:func:`merged_bounds` intersects them).

    Attributes:
        low: Lowest allowed value.
        high: Highest allowed value.
        integer: Draws are rounded to an integer.
        low_open: ``low`` itself is excluded (``(0, 180)`` for a field of view).
        high_open: ``high`` itself is excluded.
    """

    low: float = -math.inf
    high: float = math.inf
    integer: bool = False
    low_open: bool = False
    high_open: bool = False

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """Validate the field as usual, then check its range."""
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    @property
    def bounded(self) -> bool:
        """Whether either end is finite."""
        return math.isfinite(self.low) or math.isfinite(self.high)

    @property
    def text(self) -> str:
        """The range as ``[low, high]``, ``(low, high]``, ..."""
        if not self.bounded:
            return "any finite number"
        return f"{'(' if self.low_open else '['}{_fmt(self.low)}, {_fmt(self.high)}{')' if self.high_open else ']'}"

    def contains(self, v: float) -> bool:
        """Whether ``v`` lies in the range."""
        above = v > self.low if self.low_open else v >= self.low
        below = v < self.high if self.high_open else v <= self.high
        return above and below

    def check(self, value: Any) -> Any:
        """Return ``value`` unchanged, or raise ``ValueError`` saying what lies outside the range."""
        match value:
            case Const():
                self._number(value.value, "const value")
            case Uniform() | LogUniform() | TruncNormal() | IntRange():
                self._number(value.low, f"{value.kind} low")
                self._number(value.high, f"{value.kind} high")
            case Choice() | Sweep():
                for i, v in enumerate(value.values):
                    self._number(v, f"{value.kind} values[{i}]")
            case Normal():
                if value.std == 0:
                    self._number(value.mean, "normal mean")
                elif self.bounded:
                    raise ValueError(
                        f"a normal distribution can draw outside {self.text}; "
                        f"use truncnormal with low and high inside {self.text}"
                    )
            case _:
                self._number(value, "value")
        return value

    def _number(self, v: Any, what: str) -> None:
        if isinstance(v, bool) or not isinstance(v, int | float):
            where = f" in {self.text}" if self.bounded else ""
            raise ValueError(f"{what} must be a number{where}, not {type(v).__name__}")
        if not is_finite_number(v):
            raise ValueError(f"{what} must be a finite number of magnitude at most 1e12")
        if not self.contains(v):
            raise ValueError(f"{what} must lie in {self.text}")


def merged_bounds(metadata: list[Any]) -> Bounds | None:
    """The intersection of every :class:`Bounds` in a field's metadata, or None when it has none."""
    found = [m for m in metadata if isinstance(m, Bounds)]
    if not found:
        return None
    low = max(found, key=lambda b: (b.low, b.low_open))
    high = min(found, key=lambda b: (b.high, not b.high_open))
    return Bounds(low.low, high.high, any(b.integer for b in found), low.low_open, high.high_open)


#: A spec number: a finite constant or a distribution of numbers.
Scalar = Annotated[Number | Distribution, Bounds()]
#: A spec integer: a constant or a distribution whose samples are rounded.
IntScalar = Annotated[Integer | Distribution, Bounds(integer=True)]

_DIST_ADAPTER: TypeAdapter[Any] = TypeAdapter(Distribution)


def sample(value: Any, rng: np.random.Generator, index: int = 0) -> Any:
    """Draw one value from a constant or a distribution.

    Args:
        value: A constant (returned unchanged), a distribution model, or a list of either
            (sampled element-wise, so ``[0, {kind: uniform, low: 0, high: 1}]`` works).
        rng: The generator to draw from. Always passed in, never global.
        index: The scene or frame index, used by ``sweep`` only.

    Returns:
        A plain Python value (float, int or whatever a choice holds).
    """
    if isinstance(value, list | tuple):
        return [sample(v, rng, index) for v in value]
    if not isinstance(value, _Dist):
        return value
    match value:
        case Const():
            return value.value
        case Uniform():
            return float(rng.uniform(value.low, value.high))
        case Normal():
            return float(rng.normal(value.mean, value.std))
        case TruncNormal():
            return _truncnormal(value, rng)
        case LogUniform():
            return float(math.exp(rng.uniform(math.log(value.low), math.log(value.high))))
        case Choice():
            p = None
            if value.weights is not None:
                w = np.asarray(value.weights, dtype=float)
                p = w / w.sum()
            return value.values[int(rng.choice(len(value.values), p=p))]
        case IntRange():
            return int(rng.integers(value.low, value.high + 1))
        case Sweep():
            return value.values[index % len(value.values)]
    raise TypeError(f"not a distribution: {value!r}")


def sample_int(value: Any, rng: np.random.Generator, index: int = 0) -> int:
    """Draw an integer (rounding continuous draws)."""
    return int(round(float(sample(value, rng, index))))


def _truncnormal(d: TruncNormal, rng: np.random.Generator) -> float:
    # Inverse-CDF sampling: exactly one uniform draw, so the rng stream stays aligned whatever the bounds.
    a = _phi((d.low - d.mean) / d.std)
    b = _phi((d.high - d.mean) / d.std)
    u = rng.uniform(a, b)
    x = d.mean + d.std * _phi_inv(u)
    return float(min(max(x, d.low), d.high))


_STD_NORMAL = NormalDist()


def _phi(x: float) -> float:
    return _STD_NORMAL.cdf(x)


def _phi_inv(p: float) -> float:
    return _STD_NORMAL.inv_cdf(min(max(p, 1e-300), 1 - 1e-16))


def _key_int(key: int | str) -> int:
    if isinstance(key, bool) or not isinstance(key, int | str):
        raise TypeError(f"rng keys must be int or str, got {type(key).__name__}")
    if isinstance(key, str):
        return zlib.crc32(key.encode("utf-8"))  # stable across processes, unlike hash()
    if key < 0:
        raise ValueError(f"rng keys must be non-negative, got {key}")
    return key


def rng_for(seed: int, *keys: int | str) -> np.random.Generator:
    """Derive an independent generator from a seed and a path of keys.

    ``rng_for(seed, "frame", 12, "camera/look-at-shell-v1")`` is the same in every process,
    and independent of every other key path.

    Args:
        seed: The dataset seed (non-negative).
        *keys: Ints or strings naming the stream (strings are hashed with CRC32).

    Returns:
        A PCG64 generator.
    """
    return np.random.default_rng(np.random.SeedSequence([_key_int(seed), *(_key_int(k) for k in keys)]))


def parse_distribution(data: Any) -> Any:
    """Validate a mapping as a distribution (constants pass through unchanged)."""
    if isinstance(data, dict):
        return _DIST_ADAPTER.validate_python(data)
    return data
