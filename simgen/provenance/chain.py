"""A hash chain through ``manifest.jsonl``: tamper-evident, and it names the first record that was changed.

``dataset.json`` records the SHA-256 of the whole manifest, which says *that* it changed but not *where*. The
chain links every line to the lines before it: each line ends with a ``"chain"`` field ::

    h_0 = SHA-256("sha256-chain-v1")
    h_i = SHA-256(h_{i-1} || SHA-256(canonical(line_i)))        line_i carries "chain": hex(h_i)

and ``dataset.json`` keeps the head ``h_n`` and the count ``n`` under ``manifest_chain``. An edited, removed,
inserted or reordered line no longer matches its own link, so :func:`check_chain` names the first broken
record; rewriting the links from there on changes the head, which ``dataset.json`` still holds.

``canonical(line)`` is the line's JSON with sorted keys, without ``chain`` and without ``timings_ms``: wall-clock
timings differ from run to run and the chain must not, so the same seed gives the same links and the same head
whatever the workers or resumes (the manifest's checksum in ``dataset.json`` still covers the timings).

Why in the lines and not a sidecar file: a line then carries its own proof, tools that copy or filter the
manifest keep it, and nothing new appears in the folder (``--overwrite`` only removes files simgen's records
list). The other fields of a line are untouched and keep their order; ``chain`` is the last one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simgen.io import dumps_line

__all__ = [
    "CHAIN_ALGORITHM",
    "CHAIN_FIELD",
    "ChainBreak",
    "ChainWriter",
    "check_chain",
    "rechain",
]

#: The manifest field holding a line's link.
CHAIN_FIELD = "chain"
#: Names the construction; ``dataset.json`` records it, so a later scheme can be told apart.
CHAIN_ALGORITHM = "sha256-chain-v1"
#: Manifest fields left out of a line's digest: the link itself, and the run's timings.
UNCHAINED = (CHAIN_FIELD, "timings_ms")
_GENESIS = hashlib.sha256(CHAIN_ALGORITHM.encode()).digest()


def entry_digest(entry: Any) -> bytes:
    """SHA-256 of a manifest entry's canonical JSON (sorted keys, without the link and the timings)."""
    if isinstance(entry, dict):
        entry = {k: v for k, v in entry.items() if k not in UNCHAINED}
    text = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).digest()


def link(previous: bytes, entry: Any) -> bytes:
    """The next link: SHA-256 of the previous link and the entry's :func:`entry_digest`."""
    return hashlib.sha256(previous + entry_digest(entry)).digest()


class ChainWriter:
    """Chains manifest entries as they are written: :meth:`line` gives each entry's line with its link."""

    def __init__(self) -> None:
        self.head = _GENESIS
        self.records = 0

    def line(self, entry: dict[str, Any]) -> str:
        """The entry as one manifest line (with its newline), its link added last."""
        self.head = link(self.head, entry)
        self.records += 1
        body = {k: v for k, v in entry.items() if k != CHAIN_FIELD}
        return dumps_line({**body, CHAIN_FIELD: self.head.hex()}) + "\n"

    def record(self) -> dict[str, Any]:
        """What ``dataset.json`` records under ``manifest_chain``."""
        return {"algorithm": CHAIN_ALGORITHM, "field": CHAIN_FIELD, "records": self.records, "head": self.head.hex()}


@dataclass(frozen=True)
class ChainBreak:
    """The first place where the manifest and its chain disagree.

    Attributes:
        line: The manifest line number (1-based) of the first broken record (0: ``manifest_chain`` itself is bad).
        record: That line's record (``"frame 4"``), when the line says.
        message: What is wrong, one line.
    """

    line: int
    record: str | None
    message: str


def _label(entry: Any, record_key: str) -> str | None:
    index = entry.get(record_key) if isinstance(entry, dict) else None
    return f"{record_key} {index}" if isinstance(index, int) and not isinstance(index, bool) else None


def check_chain(manifest: Path, recorded: Any, record_key: str = "frame") -> ChainBreak | None:
    """Recompute the chain of ``manifest`` and compare it with each line's link and the ``recorded`` head.

    Args:
        manifest: ``manifest.jsonl``.
        recorded: ``dataset.json``'s ``manifest_chain`` record.
        record_key: The manifest key of a record's index, to name the broken record.

    Returns:
        None when every link holds and the chain ends in the recorded head, else the first break.
    """
    if not isinstance(recorded, dict) or recorded.get("algorithm") != CHAIN_ALGORITHM:
        algorithm = recorded.get("algorithm") if isinstance(recorded, dict) else None
        return ChainBreak(0, None, f"manifest_chain: expected algorithm '{CHAIN_ALGORITHM}', got {algorithm!r}")
    head, records = recorded.get("head"), recorded.get("records")
    if not isinstance(head, str) or not isinstance(records, int) or isinstance(records, bool):
        return ChainBreak(0, None, "manifest_chain: 'head' must be a string and 'records' an integer")
    current = _GENESIS
    number = 0
    with open(manifest, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                entry = json.loads(raw)
            except (ValueError, RecursionError):
                return ChainBreak(number, None, f"chain broken at line {number}: the line is not JSON")
            current = link(current, entry)
            if not isinstance(entry, dict) or entry.get(CHAIN_FIELD) != current.hex():
                label = _label(entry, record_key)
                where = f"line {number}" + (f" ({label})" if label else "")
                return ChainBreak(number, label, f"chain broken at {where}: the record is not the one chained "
                                  "there (edited, inserted, removed or moved)")  # fmt: skip
    if records != number or head != current.hex():
        return ChainBreak(number, None, f"chain head differs from dataset.json's (recorded {records} records, "
                          f"found {number}): records were cut from the end, or the chain was rewritten")  # fmt: skip
    return None


def chain_entries(entries: Iterable[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """The manifest lines of ``entries`` with their links, and the ``manifest_chain`` record."""
    writer = ChainWriter()
    lines = [writer.line(e) for e in entries]
    return lines, writer.record()


def rechain(root: str | Path) -> dict[str, Any]:
    """Relink ``manifest.jsonl`` of the dataset in ``root`` (atomically) after a tool rewrote it on purpose.

    ``simgen refine`` adds a record to every line, which breaks every link: it must call this, then store the
    returned record as ``dataset.json``'s ``manifest_chain`` and the manifest's new checksum.

    Returns:
        The ``manifest_chain`` record.
    """
    from simgen.engine.files import MANIFEST_FILE
    from simgen.io import atomic_open

    path = Path(root) / MANIFEST_FILE
    writer = ChainWriter()
    with atomic_open(path, "w") as out, open(path, "rb") as src:
        for raw in src:
            if raw.strip():
                out.write(writer.line(json.loads(raw)))
    return writer.record()
