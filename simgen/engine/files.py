"""Where a dataset's files live, and small helpers to write them atomically with checksums."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from simgen.writers.atomic import encode_png, sha256_file

__all__ = ["encode_png", "sha256_file", "write_file"]


WORK_DIR = ".simgen"
COCO_FILE = "annotations.coco.json"
MANIFEST_FILE = "manifest.jsonl"
DATASET_FILE = "dataset.json"
FRAME_DIRS = {"rgb": "images", "depth": "depth", "instances": "instances"}


@dataclass(frozen=True)
class Layout:
    """Paths of one dataset folder.

    Attributes:
        root: The dataset folder.
    """

    root: Path

    @property
    def work(self) -> Path:
        """Hidden folder for shard fragments and markers."""
        return self.root / WORK_DIR

    def shard_dir(self, name: str) -> Path:
        """Work folder of one shard."""
        return self.work / "shards" / name

    def done_marker(self, name: str) -> Path:
        """Marker written atomically when a shard is complete."""
        return self.work / "shards" / f"{name}.done.json"

    @staticmethod
    def frame_file(kind: str, frame: int) -> str:
        """Relative path of one frame's file of a kind (``rgb``, ``depth``, ``instances``)."""
        return f"{FRAME_DIRS[kind]}/{frame:06d}.png"


def write_file(root: Path, rel: str, data: bytes) -> str:
    """Write ``data`` to ``root/rel`` through a temporary name and a rename; return its SHA-256.

    No fsync here: a frame is only counted once its fragment line is fsynced, and resume checks the
    checksum of every file it keeps, so a file lost in a crash is simply redone.
    """
    path = root / rel
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()
