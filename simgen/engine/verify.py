"""Check a finished dataset against the checksums it recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from simgen.engine.files import DATASET_FILE, FRAME_DIRS, MANIFEST_FILE, sha256_file
from simgen.errors import SimgenError


@dataclass
class VerifyReport:
    """What ``simgen verify`` found.

    Attributes:
        checked: Files whose checksum was compared.
        missing: Recorded files that are gone.
        corrupt: Files whose bytes changed (truncated, edited).
        extra: Files in the frame folders that no manifest line lists.
    """

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, corrupt or extra."""
        return not (self.missing or self.corrupt or self.extra)


def verify_dataset(root: str | Path) -> VerifyReport:
    """Recompute every checksum recorded in ``manifest.jsonl`` and ``dataset.json``.

    Raises:
        SimgenError: ``root`` is not a finished simgen dataset.
    """
    root = Path(root)
    meta_path = root / DATASET_FILE
    if not meta_path.is_file():
        raise SimgenError(f"{root} has no {DATASET_FILE}; is it a finished simgen dataset?")
    meta = json.loads(meta_path.read_text())
    report = VerifyReport()
    listed: set[str] = set()
    for rel, digest in meta.get("checksums", {}).items():
        _check(root, rel, digest, report)
        listed.add(rel)
    manifest = root / MANIFEST_FILE
    if manifest.is_file():
        with open(manifest, encoding="utf-8") as fh:
            for line in fh:
                for entry in json.loads(line).get("files", {}).values():
                    _check(root, entry["path"], entry["sha256"], report)
                    listed.add(entry["path"])
    for folder in FRAME_DIRS.values():
        for path in sorted((root / folder).glob("*")) if (root / folder).is_dir() else []:
            rel = str(path.relative_to(root))
            if rel not in listed:
                report.extra.append(rel)
    return report


def _check(root: Path, rel: str, digest: str, report: VerifyReport) -> None:
    path = root / rel
    if not path.is_file():
        report.missing.append(rel)
        return
    report.checked += 1
    if sha256_file(path) != digest:
        report.corrupt.append(rel)
