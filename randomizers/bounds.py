"""Ranges for randomizer parameters that are constants or distributions, checked when the spec loads.

A parameter declared ``Annotated[Scalar, Bounds(0, 255)]`` accepts a constant or any distribution
whose whole support lies in ``[0, 255]``, so an impossible value fails at the boundary with its field
path instead of deep inside an image function. :class:`~simgen.sampling.Bounds` lives beside the
distributions (the scene spec's own fields use it too); this module draws bounded parameters:
:func:`draw_params` draws every bounded field of a params model in declaration order, rounding the
integer ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel

from simgen.sampling import Bounds, merged_bounds, sample, sample_int

__all__ = ["Bounds", "draw", "draw_params", "field_bounds"]


def field_bounds(model: type[BaseModel], name: str) -> Bounds | None:
    """The :class:`Bounds` declared on a field of ``model`` (all of them intersected), or None."""
    return merged_bounds(model.model_fields[name].metadata)


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
