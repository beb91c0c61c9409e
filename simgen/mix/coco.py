"""Mixing COCO image datasets: a simgen dataset, a folder holding a COCO JSON, or the JSON file itself.

The mix is one COCO file, ``annotations.coco.json``, with its images copied (hard-linked where the file system
allows) to ``images/000000.png`` ... in the mix's order. Categories are merged by name (REAL's first, then any
SYN adds) and renumbered 1, 2, ...; annotations keep every field and are renumbered in image order.

Each image entry keeps its own fields and gains its provenance, which pycocotools ignores and carries along
(``coco.dataset["images"]``, ``coco.imgs[i]``)::

    {"id": 1, "file_name": "images/000000.png", "width": ..., "height": ...,
     "origin": "real", "generation": 0,
     "source": {"role": "real", "id": "<16 hex of the source's COCO JSON SHA-256>", "image_id": 17,
                "file_name": "photos/dog.jpg"}}

A simgen image dataset gives its images the origin and generation its manifest records for their frame; an
image that already records them (a previous mix) keeps them. The frame's depth and instance files are not
copied: ``depth_file`` and ``instance_file`` are dropped from the entry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simgen.io import atomic_open, link_or_copy, sha256_file
from simgen.mix.core import MixCounts, MixError, Source, manifest_provenance, resolve_provenance, select, simgen_facts

__all__ = ["CocoSource", "coco_file", "mix_coco", "read_coco_source"]

COCO_FILE = "annotations.coco.json"
IMAGES_DIR = "images"
#: Image fields of a simgen frame that name files the mix does not copy.
DROPPED_FIELDS = ("depth_file", "instance_file")


@dataclass
class CocoSource(Source):
    """A COCO input: the :class:`Source`, its parsed JSON and where its image files are.

    Attributes:
        coco: The COCO dict.
        image_files: Each image's file on disk, in ``coco["images"]`` order.
    """

    coco: dict[str, Any] = field(default_factory=dict)
    image_files: list[Path] = field(default_factory=list)


def coco_file(path: Path) -> Path | None:
    """The COCO JSON a path names: the file, a folder's ``annotations.coco.json``, or a folder's only COCO JSON."""
    if path.is_file():
        return path if path.suffix.lower() == ".json" else None
    if not path.is_dir():
        return None
    if (path / COCO_FILE).is_file():
        return path / COCO_FILE
    candidates = [p for p in sorted(path.glob("*.json")) if p.name != "dataset.json" and _looks_like_coco(p)]
    return candidates[0] if len(candidates) == 1 else None


def _looks_like_coco(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(1 << 16)
    except (OSError, UnicodeDecodeError):
        return False
    return '"images"' in head or '"annotations"' in head


def _load(file: Path) -> dict[str, Any]:
    try:
        coco = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MixError(f"{file}: not a readable COCO JSON file ({type(exc).__name__}: {exc})") from None
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise MixError(f"{file}: not a COCO file: it has no 'images' list")
    for key in ("annotations", "categories"):
        if not isinstance(coco.get(key, []), list):
            raise MixError(f"{file}: '{key}' must be a list")
    for i, image in enumerate(coco["images"]):
        if not (isinstance(image, dict) and "id" in image and isinstance(image.get("file_name"), str)):
            raise MixError(f"{file}: images[{i}] needs an 'id' and a 'file_name'")
    return coco


def _image_path(folder: Path, file_name: str, where: str) -> Path:
    for candidate in (folder / file_name, folder / IMAGES_DIR / file_name):
        if candidate.is_file():
            return candidate
    raise MixError(f"{where}: image file '{file_name}' not found (looked in {folder} and {folder / IMAGES_DIR})")


def read_coco_source(path: Path, role: str, *, default_generation: int = 0) -> CocoSource:
    """Read a COCO input, find its image files and resolve each image's provenance.

    Raises:
        MixError: No COCO JSON at ``path``, a malformed one, a missing image file, or images whose provenance is
            wrong for their side.
    """
    file = coco_file(path)
    if file is None:
        raise MixError(f"{path}: no COCO file here (expected a .json file or a folder with {COCO_FILE})")
    coco = _load(file)
    folder = file.parent
    facts = simgen_facts(folder) if file.name == COCO_FILE else None
    frames = manifest_provenance(folder, "frame") if facts is not None and "mix" not in facts else {}
    images = coco["images"]
    origins: list[Any] = []
    generations: list[Any] = []
    for image in images:
        recorded = frames.get(image.get("frame_index"), (None, None, {})) if frames else (None, None, {})
        origins.append(image.get("origin", recorded[0]))
        generations.append(image.get("generation", recorded[1]))
    o, g = resolve_provenance(role, origins, generations, default_generation=default_generation, where=str(file),
                              label="image")  # fmt: skip
    files = [_image_path(folder, im["file_name"], f"{file} image {im['id']}") for im in images]
    return CocoSource(role=role, path=path, kind="coco", main_file=file, sha256=sha256_file(file), origins=o,
                      generations=g, simgen=facts, coco=coco, image_files=files)  # fmt: skip


def _categories(real: CocoSource, syn: CocoSource) -> tuple[list[dict[str, Any]], dict[str, dict[Any, int]]]:
    """Categories merged by name (REAL's order, then SYN's new ones), and each side's old id -> new id."""
    merged: list[dict[str, Any]] = []
    by_name: dict[str, int] = {}
    remap: dict[str, dict[Any, int]] = {}
    for src in (real, syn):
        ids: dict[Any, int] = {}
        for cat in src.coco.get("categories", []):
            name = cat.get("name") if isinstance(cat, dict) else None
            if not isinstance(name, str):
                raise MixError(f"{src.main_file}: every category needs a 'name', got {cat!r}"[:200])
            if name not in by_name:
                by_name[name] = len(merged) + 1
                merged.append({**cat, "id": by_name[name]})
            ids[cat.get("id")] = by_name[name]
        remap[src.role] = ids
    return merged, remap


def mix_coco(
    root: Path, real: CocoSource, syn: CocoSource, counts: MixCounts, seed: int
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Copy the chosen images into ``root/images`` and write ``annotations.coco.json``.

    Returns:
        The COCO file's checksum, and the manifest entries (one per image, in order, with its file's checksum).

    Raises:
        MixError: An annotation whose category is not among its file's categories.
    """
    categories, remap = _categories(real, syn)
    sides = {"real": real, "synthetic": syn}
    anns_by_image: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for src in (real, syn):
        for ann in src.coco.get("annotations", []):
            anns_by_image.setdefault((src.role, ann.get("image_id")), []).append(ann)
    (root / IMAGES_DIR).mkdir()
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for k, (role, i) in enumerate(select(counts, real.n, syn.n, seed)):
        src = sides[role]
        image = src.coco["images"][i]
        rel = f"{IMAGES_DIR}/{k:06d}{src.image_files[i].suffix.lower()}"
        link_or_copy(src.image_files[i], root / rel)
        digest = sha256_file(root / rel)
        kept = {key: v for key, v in image.items() if key not in ("id", "file_name", "origin", "generation", "source",
                                                                    *DROPPED_FIELDS)}  # fmt: skip
        source = {"role": role, "id": src.id, "image_id": image["id"], "file_name": image["file_name"]}
        images.append({"id": k + 1, "file_name": rel, **kept, "origin": src.origins[i],
                       "generation": src.generations[i], "source": source})  # fmt: skip
        for ann in anns_by_image.get((role, image["id"]), []):
            cat = remap[role].get(ann.get("category_id"))
            if cat is None:
                raise MixError(f"{src.main_file}: annotation {ann.get('id')} has category_id "
                               f"{ann.get('category_id')!r}, which no category has")  # fmt: skip
            rest = {key: v for key, v in ann.items() if key not in ("id", "image_id", "category_id")}
            annotations.append({"id": len(annotations) + 1, "image_id": k + 1, "category_id": cat, **rest})
        entries.append({"origin": src.origins[i], "generation": src.generations[i], "source": role,
                        "source_id": src.id, "source_index": i, "source_image_id": image["id"],
                        "files": {"image": {"path": rel, "sha256": digest}}})  # fmt: skip
    coco = {
        "info": {
            "description": f"simgen mix of {real.main_file.name} (real) and {syn.main_file.name} (synthetic)",
            "version": "1.0",
        },
        "licenses": _licenses(real, syn),
        "categories": categories,
        "images": images,
        "annotations": annotations,
    }
    with atomic_open(root / COCO_FILE, "w") as fh:
        # One image or annotation per line, as simgen's own COCO files: diffable, and still one JSON document.
        fh.write(_dumps_coco(coco))
    return {COCO_FILE: sha256_file(root / COCO_FILE)}, entries


def _licenses(real: CocoSource, syn: CocoSource) -> list[Any]:
    out: list[Any] = []
    for src in (real, syn):
        for lic in src.coco.get("licenses", []) or []:
            if lic not in out:
                out.append(lic)
    return out


def _dumps_coco(coco: dict[str, Any]) -> str:
    def dumps(obj: Any) -> str:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    head = ",".join(f"{dumps(k)}:{dumps(coco[k])}" for k in ("info", "licenses", "categories"))
    body = ",".join(
        f"{dumps(k)}:[\n" + ",\n".join(dumps(x) for x in coco[k]) + "\n]" for k in ("images", "annotations")
    )
    return "{" + head + "," + body + "}\n"


def coco_files() -> dict[str, str]:
    """``dataset.json``'s ``files`` of a mixed COCO dataset."""
    return {"coco": COCO_FILE, "images": f"{IMAGES_DIR}/"}


PACKAGES: Sequence[str] = ("numpy",)
