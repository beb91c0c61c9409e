"""Ranges for randomizer parameters that are constants or distributions, checked when the spec loads.

A parameter declared ``Annotated[Scalar, Bounds(0, 255)]`` accepts a constant or any distribution
whose whole support lies in ``[0, 255]``, so an impossible value fails at the boundary with its field
path instead of deep inside an image function. :func:`draw_params` then draws every bounded field of a
params model in declaration order, rounding the integer ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import core_schema

from simgen.sampling import (
    Choice,
    Const,
    IntRange,
    LogUniform,
    Normal,
    Sweep,
    TruncNormal,
    Uniform,
    sample,
    sample_int,
)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Bounds:
    """The closed range ``[low, high]`` a parameter's values must lie in; ``integer`` draws are rounded.

    Used as ``Annotated`` metadata on a ``Scalar``/``IntScalar`` field. Constants, and the support of
    every bounded distribution (uniform, truncnormal, loguniform, intrange, choice, sweep), are checked
    when the model validates. A ``normal`` with ``std > 0`` is refused where a bound is finite, since
    it can draw anything: the message suggests ``truncnormal``.
    """

    low: float = -math.inf
    high: float = math.inf
    integer: bool = False

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """Validate the field as usual, then check its range."""
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    @property
    def text(self) -> str:
        """The range as ``[low, high]``."""
        return f"[{_fmt(self.low)}, {_fmt(self.high)}]"

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
                elif math.isfinite(self.low) or math.isfinite(self.high):
                    raise ValueError(
                        f"a normal distribution can draw outside {self.text}; "
                        f"use truncnormal with low and high inside {self.text}"
                    )
            case _:
                self._number(value, "value")
        return value

    def _number(self, v: Any, what: str) -> None:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"{what} must be a number in {self.text}")
        if not math.isfinite(v) or not self.low <= v <= self.high:
            raise ValueError(f"{what} must lie in {self.text}")


def field_bounds(model: type[BaseModel], name: str) -> Bounds | None:
    """The :class:`Bounds` declared on a field of ``model``, or None."""
    for meta in model.model_fields[name].metadata:
        if isinstance(meta, Bounds):
            return meta
    return None


def draw(bounds: Bounds, value: Any, rng: np.random.Generator, index: int) -> int | float:
    """Draw one plain ``int`` or ``float`` from a bounded constant or distribution."""
    if bounds.integer:
        return sample_int(value, rng, index)
    return float(sample(value, rng, index))


def draw_params(params: BaseModel, rng: np.random.Generator, index: int) -> dict[str, int | float]:
    """Draw every :class:`Bounds`-annotated field of ``params``, in declaration order.

    Args:
        params: A validated params model.
        rng: The generator to draw from.
        index: The scene or frame index (for ``sweep``).

    Returns:
        ``{field name: plain int or float}``, JSON-serializable.
    """
    out: dict[str, int | float] = {}
    for name in type(params).model_fields:
        bounds = field_bounds(type(params), name)
        if bounds is not None:
            out[name] = draw(bounds, getattr(params, name), rng, index)
    return out
