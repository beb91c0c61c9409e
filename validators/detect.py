"""Which modality a dataset path holds, for ``simgen validate``: images, tables or text.

Rules, in order:

- a file: ``.csv``/``.tsv``/``.parquet``/``.pq`` is a table, ``.jsonl`` is text, ``.json`` is a COCO file (images);
- a folder with ``dataset.json``: its ``"modality"`` (``images`` when absent, as the engine writes it);
- a folder without one: ``annotations.coco.json`` means images, ``table.parquet``/``table.csv`` a table,
  ``records.jsonl`` text; any other folder is a folder of images.

:func:`data_file` then names the file a table or text folder is read from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from simgen.errors import SimgenError, did_you_mean

__all__ = ["MODALITIES", "Modality", "data_file", "detect_modality"]

Modality = Literal["images", "tables", "text"]
MODALITIES: tuple[str, ...] = ("images", "tables", "text")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
TABLE_FILES = ("table.parquet", "table.csv")
TEXT_FILES = ("records.jsonl",)


def _declared(folder: Path) -> str | None:
    path = folder / "dataset.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SimgenError(f"{path}: cannot read it ({exc})") from None
    modality = meta.get("modality", "images") if isinstance(meta, dict) else "images"
    if modality not in MODALITIES:
        raise SimgenError(
            f"{path}: modality '{modality}' is not one simgen validates{did_you_mean(str(modality), MODALITIES)}; "
            f"expected one of: {', '.join(MODALITIES)}"
        )
    return str(modality)


def detect_modality(path: str | Path) -> Modality:
    """The modality of a dataset file or folder (see the module docstring).

    Raises:
        SimgenError: The path does not exist, is a file of no known kind, or declares an unknown modality.
    """
    p = Path(path)
    if not p.exists():
        raise SimgenError(f"{p} does not exist")
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix in TABLE_SUFFIXES:
            return "tables"
        if suffix == ".jsonl":
            return "text"
        if suffix == ".json":
            return "images"
        known = ", ".join((*TABLE_SUFFIXES, ".jsonl", ".json"))
        raise SimgenError(f"{p}: cannot tell what it holds from the suffix '{suffix}'; expected one of: {known}")
    declared = _declared(p)
    if declared is not None:
        return declared  # type: ignore[return-value]
    if (p / "annotations.coco.json").is_file():
        return "images"
    if any((p / name).is_file() for name in TABLE_FILES):
        return "tables"
    if any((p / name).is_file() for name in TEXT_FILES):
        return "text"
    return "images"


def data_file(path: str | Path, modality: Modality) -> Path:
    """The file a table or text dataset is read from: the path itself, or the folder's table/records file.

    Raises:
        SimgenError: A folder without the file its modality needs.
    """
    p = Path(path)
    if p.is_file() or modality == "images":
        return p
    names = TABLE_FILES if modality == "tables" else TEXT_FILES
    for name in names:
        if (p / name).is_file():
            return p / name
    raise SimgenError(f"{p} is a {modality} dataset but holds no {' or '.join(names)}")
