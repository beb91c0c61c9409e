"""Dataset writers by name: the spec's ``outputs`` keys mapped to lazily imported classes.

The names are the spec's ``outputs`` keys (``yolo``, ``bop``), not versioned registry names: a
writer's output format is fixed by the format itself. A ``"pkg.module:Class"`` string works too, for
writers that live outside simgen.
"""

from __future__ import annotations

import inspect
from typing import Any

from simgen.errors import RegistryError, SimgenError, did_you_mean
from simgen.registry import import_string
from simgen.writers.base import DatasetWriter

#: Writer name -> ``"module:Class"``.
WRITERS: dict[str, str] = {
    "yolo": "simgen.writers.yolo:YoloWriter",
    "bop": "simgen.writers.bop:BopWriter",
}


class WriterOptionError(SimgenError, TypeError):
    """A writer was given an option it does not take."""


def writer_class(name: str) -> type[Any]:
    """The class registered under ``name`` (or named by a ``"pkg.module:Class"`` string).

    Raises:
        RegistryError: An unknown name, with a "did you mean".
    """
    target = WRITERS.get(name)
    if target is None:
        if ":" not in name:
            hint = did_you_mean(name, WRITERS)
            raise RegistryError(f"unknown writer '{name}'{hint}; known writers: {sorted(WRITERS)}")
        target = name
    return import_string(target)


def make_writer(name: str, **options: Any) -> DatasetWriter:
    """Build the writer registered under ``name`` with its options.

    Args:
        name: ``"yolo"``, ``"bop"`` or ``"pkg.module:Class"``.
        **options: The writer's keyword arguments (``segments`` for YOLO, ``chunk_size`` for BOP).

    Returns:
        The writer.

    Raises:
        RegistryError: An unknown name, or a class that is not a :class:`~simgen.writers.base.DatasetWriter`.
        WriterOptionError: An option the writer does not take (with a "did you mean").
    """
    cls = writer_class(name)
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not takes_any:
        accepted = [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for key in options:
            if key not in accepted:
                hint = did_you_mean(key, accepted)
                raise WriterOptionError(f"writer '{name}': unknown option '{key}'{hint}; it takes {accepted}")
    writer = cls(**options)
    if not isinstance(writer, DatasetWriter):
        raise RegistryError(f"'{name}' built {type(writer).__name__}, which is not a DatasetWriter")
    return writer
