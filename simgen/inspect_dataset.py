"""Summaries and preview pictures of a generated dataset (core dependencies only)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from simgen.engine.files import (
    COCO_FILE,
    DATASET_FILE,
    DATASET_KEYS,
    PREVIEW_RECORD,
    WORK_DIR,
    dataset_path,
    json_kind,
    read_dataset_record,
    read_json,
    simgen_record,
)
from simgen.errors import SimgenError
from simgen.io import atomic_write_bytes, atomic_write_json, encode_png
from simgen.labels import rle_decode


@dataclass
class DatasetSummary:
    """Counts that describe a dataset."""

    frames: int
    annotations: int
    per_category: dict[str, int]
    visibility_hist: list[int] = field(default_factory=list)
    visibility_edges: list[float] = field(default_factory=list)
    visibility_known: int = 0
    objects_per_frame: tuple[float, int, int] = (0.0, 0, 0)
    renderer: str | None = None
    seed: int | None = None
    scenario: bool = False


def load_coco(root: Path) -> dict[str, Any]:
    """Read a dataset's COCO file and check the fields simgen's tools use.

    Raises:
        SimgenError: The file is missing or damaged; the message names the file and the first bad field.
    """
    path = root / COCO_FILE
    if not path.is_file():
        raise SimgenError(f"{root} has no {COCO_FILE}; is it a finished simgen dataset?")
    coco = read_json(path)
    _check_coco(coco, path)
    return coco


def _check_coco(coco: Any, path: Path) -> None:
    if not isinstance(coco, dict):
        raise SimgenError(f"{path}: expected a JSON object, got {_kind(coco)}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise SimgenError(f"{path}: '{key}' must be a list, got {_kind(coco.get(key))}")
    for i, cat in enumerate(coco["categories"]):
        _require(cat, {"id": int, "name": str}, path, f"categories[{i}]")
    for i, img in enumerate(coco["images"]):
        _require(img, {"id": int, "file_name": str, "width": int, "height": int}, path, f"images[{i}]")
    for i, ann in enumerate(coco["annotations"]):
        where = f"annotations[{i}]"
        _require(ann, {"image_id": int, "category_id": int, "bbox": list, "segmentation": dict}, path, where)
        vis = ann.get("visibility")
        if vis is not None and not (_is_number(vis) and math.isfinite(vis)):
            raise SimgenError(f"{path}: {where}.visibility must be a finite number or null, got {_kind(vis)}")
        if len(ann["bbox"]) != 4 or not all(_is_number(v) and math.isfinite(v) for v in ann["bbox"]):
            raise SimgenError(f"{path}: {where}.bbox must be 4 finite numbers")


def _require(obj: Any, fields: dict[str, type], path: Path, where: str) -> None:
    if not isinstance(obj, dict):
        raise SimgenError(f"{path}: {where} must be an object, got {_kind(obj)}")
    for key, kind in fields.items():
        value = obj.get(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise SimgenError(f"{path}: {where}.{key} must be {json_kind(kind)}, got {_kind(value)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return "nothing" if value is None else json_kind(type(value))


def _dataset_meta(root: Path) -> dict[str, Any]:
    """dataset.json's renderer and seed, or nothing when the folder has no dataset.json (a plain COCO folder)."""
    if not (root / DATASET_FILE).is_file():
        return {}
    meta = read_dataset_record(root)
    renderer, seed = meta.get("renderer"), meta.get("seed")
    if renderer is not None and not isinstance(renderer, str):
        raise SimgenError(f"{root / DATASET_FILE}: 'renderer' must be a string, got {_kind(renderer)}")
    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool)):
        raise SimgenError(f"{root / DATASET_FILE}: 'seed' must be an integer, got {_kind(seed)}")
    return meta


def summarize(root: str | Path) -> DatasetSummary:
    """Frames, objects per class, a visibility histogram and objects per frame.

    Raises:
        SimgenError: The COCO file or dataset.json is missing or damaged.
    """
    root = Path(root)
    coco = load_coco(root)
    meta = _dataset_meta(root)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    per_cat = Counter(names.get(a["category_id"], str(a["category_id"])) for a in coco["annotations"])
    per_image = Counter(a["image_id"] for a in coco["annotations"])
    counts = [per_image.get(img["id"], 0) for img in coco["images"]]
    vis = [a["visibility"] for a in coco["annotations"] if a.get("visibility") is not None]
    edges = np.linspace(0.0, 1.0, 11)
    hist = np.histogram(vis, bins=edges)[0].tolist() if vis else []
    return DatasetSummary(
        frames=len(coco["images"]),
        annotations=len(coco["annotations"]),
        per_category={n: per_cat.get(n, 0) for n in names.values()},
        visibility_hist=hist,
        visibility_edges=edges.tolist(),
        visibility_known=len(vis),
        objects_per_frame=(float(np.mean(counts)) if counts else 0.0, min(counts, default=0), max(counts, default=0)),
        renderer=meta.get("renderer"),
        seed=meta.get("seed"),
        scenario=isinstance(meta.get("scenario"), dict),
    )


def _palette(n: int) -> np.ndarray:
    hues = (np.arange(max(n, 1)) * 137.508) % 180  # golden-angle hues: neighbours never look alike
    hsv = np.stack([hues, np.full_like(hues, 200), np.full_like(hues, 255)], axis=1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def draw_frame(root: Path, image: dict[str, Any], anns: list[dict[str, Any]], names: dict[int, str]) -> np.ndarray:
    """The frame's picture with each mask tinted and its visible box and category drawn.

    The picture is COCO's ``file_name``: the RGB, or (a dataset written with ``outputs.rgb: false``) the
    depth or instance PNG, stretched to grey.

    Raises:
        SimgenError: The picture is missing, outside the dataset or unreadable, or a mask is damaged.
    """
    rgb = _read_picture(root, image)
    height, width = rgb.shape[:2]
    colors = _palette(len(anns))
    overlay = rgb.copy()
    for ann, color in zip(anns, colors, strict=False):
        overlay[_mask(root, ann, (height, width))] = color
    out = cv2.addWeighted(rgb, 0.55, overlay, 0.45, 0)
    for ann, color in zip(anns, colors, strict=False):
        # Clipped to the picture: a damaged box must not overflow OpenCV's 32-bit coordinates.
        x, y, w, h = ann["bbox"]
        x0, x1 = np.clip([x, x + w], -1, width + 1)
        y0, y1 = np.clip([y, y + h], -1, height + 1)
        c = tuple(int(v) for v in color)
        cv2.rectangle(out, (int(x0), int(y0)), (int(round(x1)) - 1, int(round(y1)) - 1), c, 1)
        label = names.get(ann["category_id"], "?")
        cv2.putText(out, label, (int(x0), max(int(y0) - 3, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, c, 1, cv2.LINE_AA)
    return out


def _read_picture(root: Path, image: dict[str, Any]) -> np.ndarray:
    """An (H, W, 3) uint8 RGB view of the image record's file (16-bit single-channel PNGs stretched to grey)."""
    name = image["file_name"]
    path = dataset_path(root, name)
    if path is None:
        raise SimgenError(f"{root / COCO_FILE}: image {image['id']} file_name {name[:120]!r} is outside the dataset")
    if not path.is_file():
        raise SimgenError(f"{path}: missing (image {image['id']} of {COCO_FILE})")
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise SimgenError(f"{path}: not a readable image (truncated or damaged?)")
    if pixels.ndim == 2:  # depth in mm or instance ids: stretch the values that are there to 0..255
        values = pixels.astype(np.float64)
        lo, hi = float(values.min()), float(values.max())
        grey = ((values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)).astype(np.uint8)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
    elif pixels.shape[2] == 4:
        rgb = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    else:
        rgb = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if rgb.dtype != np.uint8:
        rgb = (rgb // 257).astype(np.uint8)
    if rgb.shape[:2] != (image["height"], image["width"]):
        raise SimgenError(
            f"{path}: {rgb.shape[1]}x{rgb.shape[0]} pixels, but {COCO_FILE} says {image['width']}x{image['height']}"
        )
    return np.ascontiguousarray(rgb)


def _mask(root: Path, ann: dict[str, Any], shape: tuple[int, int]) -> np.ndarray:
    """An annotation's mask, after checking its RLE fully (pycocotools' decoder trusts its input)."""
    rle = ann["segmentation"]
    where = f"{root / COCO_FILE}: annotation {str(ann.get('id', '?'))[:20]} segmentation"
    size, counts = rle.get("size"), rle.get("counts")
    if list(size or ()) != list(shape) or not isinstance(counts, str):
        raise SimgenError(f"{where}: expected an RLE of size {list(shape)} with string counts")
    runs = _rle_runs(counts)
    if runs is None or any(r < 0 or r >= 2**32 for r in runs) or sum(runs) != shape[0] * shape[1]:
        raise SimgenError(f"{where}: damaged RLE counts")
    return rle_decode(rle)


def _rle_runs(counts: str) -> list[int] | None:
    """Run lengths of COCO's compressed RLE string (pycocotools' ``rleFrString``), or None if it is malformed."""
    runs: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n or k > 7:  # cut short, or longer than any 32-bit count
                return None
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def write_preview(root: str | Path, path: str | Path | None = None, *, max_frames: int = 12, cols: int = 4,
                  tile_width: int = 320) -> Path:  # fmt: skip
    """Write a grid of the first frames with masks and boxes drawn; returns its path (default ``root/preview.png``).

    A preview written inside a simgen dataset is recorded in ``.simgen/``, so ``--overwrite`` knows it is simgen's.

    Raises:
        SimgenError: The dataset has no frames, or its COCO file or a picture is missing or damaged.
    """
    root = Path(root)
    coco = load_coco(root)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    images = coco["images"][:max_frames]
    if not images:
        raise SimgenError(f"{root} has no frames to preview")
    tiles = []
    for img in images:
        tile = draw_frame(root, img, by_image.get(img["id"], []), names)
        scale = tile_width / tile.shape[1]
        tile = cv2.resize(tile, (tile_width, max(1, round(tile.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, f"#{img['id'] - 1}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    cols = min(cols, len(tiles))
    rows = -(-len(tiles) // cols)
    h, w = tiles[0].shape[:2]
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        grid[r * h : r * h + tile.shape[0], c * w : c * w + tile.shape[1]] = tile[:h, :w]
    out = Path(path) if path is not None else root / "preview.png"
    atomic_write_bytes(out, encode_png(grid))
    _record_preview(root, out)
    return out


def _record_preview(root: Path, out: Path) -> None:
    """Note a preview written inside a simgen dataset in ``.simgen/preview.json``."""
    try:
        rel = out.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return  # written elsewhere: not part of the dataset
    if simgen_record(root / DATASET_FILE, DATASET_KEYS) is None or rel.startswith(WORK_DIR + "/"):
        return
    (root / WORK_DIR).mkdir(exist_ok=True)
    atomic_write_json(root / WORK_DIR / PREVIEW_RECORD, {"path": rel})
