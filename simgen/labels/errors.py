"""The error label functions raise: defined in :mod:`simgen.errors`, re-exported here."""

from __future__ import annotations

from simgen.errors import LabelError

__all__ = ["LabelError"]
