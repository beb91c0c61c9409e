"""The contract of a dataset format writer (COCO, YOLO, BOP, ...), called per record in the shards and once at the end.

Every format plugs in here, COCO included, and resolves by name through :mod:`simgen.writers.registry` from
the spec's ``outputs``. A writer is a pure function of the record data: it never asks a simulator.

Per record (a frame, for images), inside a shard worker, :meth:`DatasetWriter.write_frame` writes the
record's own files (label text files, masks) and returns their checksums plus one JSON record. The engine
appends the record to the shard's ``<name>.jsonl`` fragment (fsynced) and lists the files in the manifest,
so ``simgen verify`` checks them. At the end, :meth:`DatasetWriter.finalize` streams every record in record
order and writes the dataset-level files (``annotations.coco.json``, ``data.yaml``, ``scene_gt.json``, ...).
A writer may expose ``stats``, a dict of counts, after ``finalize``: the engine records it in
``dataset.json`` under ``counts``.

What ``write_frame`` gets is the modality's record context: a :class:`FrameContext` for images; the rows
of a block for tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from simgen.frame import FrameBuffers, ObjectAnnotation


@dataclass(frozen=True)
class FrameContext:
    """Everything a writer may use for one frame.

    Attributes:
        frame: Frame index.
        scene: Scene index.
        buffers: The rendered buffers (RGB after sensor effects is in ``files["rgb"]``).
        annotations: The frame's labels, in instance-id order, after the label filters.
        coco: The frame's COCO record ``{"image": {...}, "annotations": [...]}`` (ids resolved).
        files: Relative paths already written for this frame, by kind (``rgb``, ``depth``, ``instances``).
        categories: Category names; category id = position + 1.
    """

    frame: int
    scene: int
    buffers: FrameBuffers
    annotations: list[ObjectAnnotation]
    coco: dict[str, Any]
    files: dict[str, str]
    categories: tuple[str, ...]


@dataclass
class FrameOutput:
    """What a writer produced for one frame.

    Attributes:
        files: Relative path -> SHA-256 of every file written for the frame.
        record: One JSON-serializable record for the shard fragment, given back to ``finalize``; or None.
    """

    files: dict[str, str] = field(default_factory=dict)
    record: dict[str, Any] | None = None


@runtime_checkable
class DatasetWriter(Protocol):
    """A dataset format."""

    #: Short name: the spec's ``outputs`` key and the fragment's file name.
    name: str

    def write_frame(self, root: Path, ctx: FrameContext) -> FrameOutput:
        """Write one frame's files under ``root`` (atomically) and return their checksums and a record."""
        ...

    def finalize(self, root: Path, records: Iterable[dict[str, Any]], dataset: dict[str, Any]) -> dict[str, str]:
        """Write the dataset-level files from every frame's record (streamed in frame order).

        Args:
            root: The dataset folder.
            records: The records ``write_frame`` returned, in frame order (an iterator: stream it).
            dataset: The dataset record so far (``categories``, ``spec``, ``seed``, ...).

        Returns:
            Relative path -> SHA-256 of every file written.
        """
        ...
