"""The error label functions raise (a :class:`~simgen.errors.SimgenError`; candidate to move into ``simgen.errors``)."""

from __future__ import annotations

from simgen.errors import SimgenError


class LabelError(SimgenError, ValueError):
    """Frame data handed to a label function is malformed: wrong shape or dtype, a missing pose, a bad argument."""
