"""Conformance checkers and test helpers, shipped so plugin authors can run them too."""

from __future__ import annotations

from simgen.testing.backends import check_backend
from simgen.testing.conformance import check_randomizer, example_context
from simgen.testing.writers import check_writer

__all__ = ["check_backend", "check_randomizer", "check_writer", "example_context"]
