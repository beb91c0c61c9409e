"""Mixing JSONL text records: a ``.jsonl`` file, or a folder holding ``records.jsonl`` (simgen's text output).

Every line is one JSON object. The mix writes them to ``records.jsonl`` in the mix's order, one compact line
each with sorted keys, with ``origin`` and ``generation`` set (simgen's :class:`~simgen.generators.text.records.
TextRecord` has both; a record that already has them keeps them, a REAL record must be real) and where it came
from under ``meta.mix``: ``{"source": "real", "source_id": "<16 hex>", "index": 12}`` (a record whose
``meta`` is not an object keeps it and gets no ``meta.mix``; the manifest still says).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simgen.io import atomic_open, sha256_file
from simgen.mix.core import MixCounts, MixError, Source, resolve_provenance, select, simgen_facts

__all__ = ["RECORDS_FILE", "TextSource", "mix_text", "read_text_source", "records_file"]

RECORDS_FILE = "records.jsonl"
#: The most bytes a JSONL input may have (a guard against pointing at the wrong file).
MAX_BYTES = 256 << 20


@dataclass
class TextSource(Source):
    """A JSONL input: the :class:`Source` and its records."""

    records: list[dict[str, Any]] = field(default_factory=list)


def records_file(path: Path) -> Path | None:
    """The JSONL file a path names: the file itself, or a folder's ``records.jsonl``."""
    if path.is_file():
        return path if path.suffix.lower() in (".jsonl", ".ndjson") else None
    return path / RECORDS_FILE if (path / RECORDS_FILE).is_file() else None


def read_text_source(path: Path, role: str, *, default_generation: int = 0) -> TextSource:
    """Read a JSONL input (one object a line, blank lines skipped) and resolve each record's provenance.

    Raises:
        MixError: No JSONL at ``path``, a file too large, a line that is not a JSON object, or records whose
            provenance is wrong for their side.
    """
    file = records_file(path)
    if file is None:
        raise MixError(f"{path}: no JSONL records here (expected a .jsonl file or a folder with {RECORDS_FILE})")
    if file.stat().st_size > MAX_BYTES:
        raise MixError(f"{file}: larger than {MAX_BYTES >> 20} MiB; is it the right file?")
    records: list[dict[str, Any]] = []
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MixError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            raise MixError(f"{file} line {number}: not valid JSON") from None
        if not isinstance(obj, dict):
            raise MixError(f"{file} line {number}: expected a JSON object, got {type(obj).__name__}")
        records.append(obj)
    o, g = resolve_provenance(role, [r.get("origin") for r in records], [r.get("generation") for r in records],
                              default_generation=default_generation, where=str(file))  # fmt: skip
    facts = simgen_facts(file.parent) if file.name == RECORDS_FILE else None
    return TextSource(role=role, path=path, kind="jsonl", main_file=file, sha256=sha256_file(file), origins=o,
                      generations=g, simgen=facts, records=records)  # fmt: skip


def mix_text(
    root: Path, real: TextSource, syn: TextSource, counts: MixCounts, seed: int
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Write ``records.jsonl``; return its checksum and the manifest entries (one per record, in order)."""
    sides = {"real": real, "synthetic": syn}
    entries: list[dict[str, Any]] = []
    with atomic_open(root / RECORDS_FILE, "w") as fh:
        for role, i in select(counts, real.n, syn.n, seed):
            src = sides[role]
            record = {**src.records[i], "origin": src.origins[i], "generation": src.generations[i]}
            meta = record.get("meta", {})
            if isinstance(meta, dict):
                record["meta"] = {**meta, "mix": {"source": role, "source_id": src.id, "index": i}}
            fh.write(json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
            entries.append({"origin": src.origins[i], "generation": src.generations[i], "source": role,
                            "source_id": src.id, "source_index": i})  # fmt: skip
    return {RECORDS_FILE: sha256_file(root / RECORDS_FILE)}, entries


def text_files() -> dict[str, str]:
    """``dataset.json``'s ``files`` of mixed text."""
    return {"records": RECORDS_FILE}


PACKAGES: Sequence[str] = ("numpy",)
