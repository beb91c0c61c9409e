"""Check a finished dataset against the checksums it recorded, and its manifest against its hash chain."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simgen.engine.files import (
    DATASET_FIELDS,
    DATASET_FILE,
    FRAME_DIRS,
    MANIFEST_FILE,
    dataset_modality,
    dataset_path,
    dataset_record_problems,
    manifest_entries,
    read_dataset_record,
    record_field,
    recorded_files,
)
from simgen.errors import SimgenError
from simgen.io import sha256_file
from simgen.provenance.chain import ChainBreak, check_chain


@dataclass
class VerifyReport:
    """What ``simgen verify`` found.

    Attributes:
        checked: Files whose checksum was compared.
        missing: Recorded files that are gone.
        corrupt: Files whose bytes changed (truncated, edited).
        extra: Files in the frame folders that no manifest line lists.
        invalid: Damaged records, one line each: a manifest line that is not JSON or has wrong types, a
            frame with no manifest line, a recorded path outside the dataset (never read), an unreadable
            ``dataset.json``, a broken hash chain.
        chain_break: The first manifest line whose hash chain does not hold (also in ``invalid``), or None.
        signatures: C2PA sidecar -> validation state, for a signed dataset (``simgen sign``) when ``c2pa-python``
            is installed; a signature that fails is also in ``invalid``.
        notes: What was not checked, and why (a signed dataset without ``c2pa-python``).
    """

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    chain_break: ChainBreak | None = None
    signatures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, corrupt, extra or invalid."""
        return not (self.missing or self.corrupt or self.extra or self.invalid)


def verify_dataset(root: str | Path) -> VerifyReport:
    """Recompute every checksum recorded in ``manifest.jsonl`` and ``dataset.json``, and the manifest's chain.

    A dataset whose ``dataset.json`` records a ``manifest_chain`` (every dataset the run loop or ``simgen mix``
    writes) has its manifest rechained line by line (:func:`~simgen.provenance.chain.check_chain`): the first
    line that was edited, inserted, removed or moved is reported by number and record. Datasets written before
    the chain existed have none and are checked as before. A dataset signed with ``simgen sign`` has its C2PA
    sidecars' bytes checked like any recorded file and, where ``c2pa-python`` is installed, every signature
    validated against its image and the dataset's records.

    A damaged record is reported, never fatal: a ``dataset.json`` that cannot be read is listed as
    corrupt and the manifest is still checked. Recorded paths are confined to ``root``: an absolute
    path, a ``..`` or a link leading out of the dataset is reported as invalid and never read.

    Raises:
        SimgenError: ``root`` is not a folder holding a ``dataset.json``.
    """
    root = Path(root)
    if not (root / DATASET_FILE).is_file():
        raise SimgenError(f"{root} has no {DATASET_FILE}; is it a finished simgen dataset?")
    report = VerifyReport()
    listed: set[str] = set()
    try:
        meta: dict[str, Any] | None = read_dataset_record(root)
    except SimgenError as exc:
        meta = None
        report.corrupt.append(DATASET_FILE)
        report.invalid.append(str(exc))
    if meta is not None:
        report.invalid.extend(_record_problems(meta, root / DATASET_FILE))
    checksums = meta.get("checksums") if meta else None
    checksums = checksums if isinstance(checksums, dict) else {}
    for rel, digest in checksums.items():
        _check(root, rel, digest, report, f"{DATASET_FILE} checksums")
        listed.add(rel)
    modality, key = dataset_modality(meta or {})
    frames = _check_manifest(root, report, listed, key)
    if meta is not None and "manifest_chain" in meta and frames is not None:
        report.chain_break = check_chain(root / MANIFEST_FILE, meta["manifest_chain"], key)
        if report.chain_break is not None:
            report.invalid.append(f"{root / MANIFEST_FILE}: {report.chain_break.message}")
    n_frames = meta.get(f"n_{key}s") if meta else None
    if isinstance(n_frames, int) and not isinstance(n_frames, bool) and frames is not None:
        lost = [i for i in range(n_frames) if i not in frames]
        if lost:
            shown = ", ".join(map(str, lost[:5])) + (f" and {len(lost) - 5} more" if len(lost) > 5 else "")
            report.invalid.append(f"{root / MANIFEST_FILE}: no line for {key} {shown} of {n_frames}")
    if meta is not None and isinstance(meta.get("c2pa"), dict):
        _check_signatures(root, report)
    for folder in _record_folders(meta, modality):
        for path in sorted((root / folder).glob("*")) if (root / folder).is_dir() else []:
            rel = path.relative_to(root).as_posix()
            if rel not in listed:
                report.extra.append(rel)
    return report


def _check_signatures(root: Path, report: VerifyReport) -> None:
    from simgen.errors import DependencyMissing

    try:
        from simgen.provenance.signing import check_signatures

        signatures = check_signatures(root)
    except DependencyMissing as exc:
        report.notes.append(f"C2PA signatures not checked: {exc}")
        return
    except SimgenError as exc:
        report.invalid.append(str(exc))
        return
    report.signatures = signatures.states
    report.invalid.extend(signatures.problems)


def _record_problems(meta: dict[str, Any], where: Path) -> list[str]:
    """The fields the tools read that are missing or wrong; a mix (``simgen mix``) has no render settings."""
    if "mix" not in meta:
        return dataset_record_problems(meta, where)
    _, key = dataset_modality(meta)
    problems = []
    for name, kind in {**DATASET_FIELDS, f"n_{key}s": int, "mix": dict}.items():
        try:
            record_field(meta, name, kind, where)
        except SimgenError as exc:
            problems.append(str(exc))
    return problems


def _record_folders(meta: dict[str, Any] | None, modality: str) -> list[str]:
    """Folders whose every file some manifest line must list: the frame folders, or the record folders listed."""
    if modality == "images" and not (meta and "mix" in meta):
        return list(FRAME_DIRS.values())
    files = meta.get("files") if meta else None
    values = files.values() if isinstance(files, dict) else ()
    return [v.rstrip("/") for v in values if isinstance(v, str) and v.endswith("/")]


def _check_manifest(root: Path, report: VerifyReport, listed: set[str], key: str) -> set[int] | None:
    """Check every file the manifest lists; return the records it has lines for (None without a manifest)."""
    manifest = root / MANIFEST_FILE
    if not manifest.is_file():
        if MANIFEST_FILE not in report.missing:
            report.missing.append(MANIFEST_FILE)
        return None
    frames: set[int] = set()
    for _, entry in manifest_entries(manifest, key):
        if isinstance(entry, SimgenError):
            report.invalid.append(str(entry))
            continue
        frames.add(entry[key])
        for f in recorded_files(entry):
            _check(root, f["path"], f["sha256"], report, f"{MANIFEST_FILE} {key} {entry[key]}")
            listed.add(f["path"])
    return frames


def _check(root: Path, rel: Any, digest: Any, report: VerifyReport, where: str) -> None:
    path = dataset_path(root, rel)
    if path is None:
        report.invalid.append(f"{where}: path {str(rel)[:120]!r} is outside the dataset (not read)")
        return
    if not isinstance(digest, str):
        report.invalid.append(f"{where}: the checksum of '{rel}' is not a string")
        return
    if not path.is_file():
        report.missing.append(rel)
        return
    report.checked += 1
    try:
        actual = sha256_file(path)
    except OSError:
        report.corrupt.append(rel)  # present but unreadable
        return
    if actual != digest:
        report.corrupt.append(rel)
