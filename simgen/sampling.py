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
from statistics import NormalDist
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

KINDS = ("const", "uniform", "normal", "truncnormal", "loguniform", "choice", "intrange", "sweep")


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Const(_Dist):
    """Always ``value``."""

    kind: Literal["const"] = "const"
    value: Any


class Uniform(_Dist):
    """Uniform on ``[low, high)``."""

    kind: Literal["uniform"] = "uniform"
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"high must be >= low, got low={self.low}, high={self.high}")
        return self


class Normal(_Dist):
    """Gaussian with ``mean`` and ``std``."""

    kind: Literal["normal"] = "normal"
    mean: float
    std: float = Field(ge=0)


class TruncNormal(_Dist):
    """Gaussian with ``mean`` and ``std`` restricted to ``[low, high]`` (by inverse CDF, one draw)."""

    kind: Literal["truncnormal"] = "truncnormal"
    mean: float
    std: float = Field(gt=0)
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> TruncNormal:
        if self.high <= self.low:
            raise ValueError(f"high must be > low, got low={self.low}, high={self.high}")
        return self


class LogUniform(_Dist):
    """Log-uniform on ``[low, high)``, both positive."""

    kind: Literal["loguniform"] = "loguniform"
    low: float = Field(gt=0)
    high: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LogUniform:
        if self.high < self.low:
            raise ValueError(f"high must be >= low, got low={self.low}, high={self.high}")
        return self


class Choice(_Dist):
    """One of ``values``, optionally with ``weights`` (normalised)."""

    kind: Literal["choice"] = "choice"
    values: list[Any] = Field(min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _weights(self) -> Choice:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(
                    f"weights must have one entry per value: {len(self.values)} values, {len(self.weights)} weights"
                )
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("weights must be non-negative with a positive sum")
        return self


class IntRange(_Dist):
    """An integer in ``[low, high]``, both inclusive."""

    kind: Literal["intrange"] = "intrange"
    low: int
    high: int

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.high < self.low:
            raise ValueError(f"high must be >= low, got low={self.low}, high={self.high}")
        return self


class Sweep(_Dist):
    """``values[index % len(values)]``: a deterministic sweep over the scene or frame index."""

    kind: Literal["sweep"] = "sweep"
    values: list[Any] = Field(min_length=1)


Distribution = Annotated[
    Const | Uniform | Normal | TruncNormal | LogUniform | Choice | IntRange | Sweep,
    Field(discriminator="kind"),
]
#: A spec number: a constant or a distribution.
Scalar = float | Distribution
#: A spec integer: a constant or a distribution whose samples are rounded.
IntScalar = int | Distribution

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
