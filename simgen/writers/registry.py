"""Dataset writers by name, through the shared :class:`~simgen.registry.Registry` and ``simgen.writers`` entry points.

A writer's name is its key in the spec's ``outputs`` (``coco``, ``yolo``, ``bop``): a format is fixed by the
format itself, so the names carry no version. :func:`writers_for` picks the writers a spec asks for from its
``outputs``, generically: every ``outputs`` key that names a registered writer and is true turns that writer
on, and the keys ``<name>_<option>`` are its options (``yolo_segments: true`` is YoloWriter's
``segments=True``). A third-party writer registers under the entry-point group ``simgen.writers``
(``parquet = "pkg.module:ParquetWriter"``); a ``"pkg.module:Class"`` string works too.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from simgen.errors import RegistryError, WriterOptionError, did_you_mean
from simgen.registry import Registry
from simgen.writers.base import DatasetWriter

__all__ = ["WRITERS", "WriterOptionError", "make_writer", "writer_class", "writers_for"]

#: Writer name (an ``outputs`` key) -> ``"module:Class"``, resolved lazily.
WRITERS: Registry[DatasetWriter] = Registry("writer", group="simgen.writers", versioned=False)
for _name, _target in {
    "coco": "simgen.writers.coco:CocoWriter",
    "yolo": "simgen.writers.yolo:YoloWriter",
    "bop": "simgen.writers.bop:BopWriter",
}.items():
    WRITERS.register(_name, _target)


def writer_class(name: str) -> type[Any]:
    """The class registered under ``name`` (or named by a ``"pkg.module:Class"`` string).

    Raises:
        RegistryError: An unknown name, with a "did you mean".
    """
    return WRITERS.get(name)


def make_writer(name: str, **options: Any) -> DatasetWriter:
    """Build the writer registered under ``name`` with its options.

    Args:
        name: ``"coco"``, ``"yolo"``, ``"bop"``, an entry point's name or ``"pkg.module:Class"``.
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


def writers_for(outputs: Mapping[str, Any] | Any) -> list[DatasetWriter]:
    """The writers an ``outputs`` section turns on, in the section's order, each with its options.

    Args:
        outputs: The spec's ``outputs`` (a pydantic model or a mapping): ``{"coco": true, "yolo": true,
            "yolo_segments": false, "rgb": true, ...}``. Keys that name no writer (``rgb``) are the engine's.

    Returns:
        One writer per true key that names a registered writer; ``<name>_<option>`` keys are its options.
    """
    items = dict(outputs.model_dump() if hasattr(outputs, "model_dump") else outputs)
    chosen: list[DatasetWriter] = []
    for name, on in items.items():
        if on is not True or name not in WRITERS:
            continue
        prefix = f"{name}_"
        options = {k[len(prefix) :]: v for k, v in items.items() if k.startswith(prefix)}
        chosen.append(make_writer(name, **options))
    return chosen
