"""Summaries and preview pictures of a generated dataset (core dependencies only)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from simgen.errors import SimgenError
from simgen.labels import rle_decode

COCO_FILE = "annotations.coco.json"


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


def load_coco(root: Path) -> dict[str, Any]:
    """Read a dataset's COCO file, with a clear error when it is missing."""
    path = root / COCO_FILE
    if not path.is_file():
        raise SimgenError(f"{root} has no {COCO_FILE}; is it a finished simgen dataset?")
    return json.loads(path.read_text())


def summarize(root: str | Path) -> DatasetSummary:
    """Frames, objects per class, a visibility histogram and objects per frame."""
    root = Path(root)
    coco = load_coco(root)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    per_cat = Counter(names.get(a["category_id"], str(a["category_id"])) for a in coco["annotations"])
    per_image = Counter(a["image_id"] for a in coco["annotations"])
    counts = [per_image.get(img["id"], 0) for img in coco["images"]]
    vis = [a["visibility"] for a in coco["annotations"] if a.get("visibility") is not None]
    edges = np.linspace(0.0, 1.0, 11)
    hist = np.histogram(vis, bins=edges)[0].tolist() if vis else []
    meta_path = root / "dataset.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
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
    )


def _palette(n: int) -> np.ndarray:
    hues = (np.arange(max(n, 1)) * 137.508) % 180  # golden-angle hues: neighbours never look alike
    hsv = np.stack([hues, np.full_like(hues, 200), np.full_like(hues, 255)], axis=1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def draw_frame(root: Path, image: dict[str, Any], anns: list[dict[str, Any]], names: dict[int, str]) -> np.ndarray:
    """The frame's RGB with each mask tinted and its visible box and category drawn."""
    bgr = cv2.imread(str(root / image["file_name"]), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SimgenError(f"cannot read {root / image['file_name']}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    colors = _palette(len(anns))
    overlay = rgb.copy()
    for ann, color in zip(anns, colors, strict=False):
        m = rle_decode(ann["segmentation"]).astype(bool)
        overlay[m] = color
    out = cv2.addWeighted(rgb, 0.55, overlay, 0.45, 0)
    for ann, color in zip(anns, colors, strict=False):
        x, y, w, h = ann["bbox"]
        c = tuple(int(v) for v in color)
        cv2.rectangle(out, (int(x), int(y)), (int(round(x + w)) - 1, int(round(y + h)) - 1), c, 1)
        label = names.get(ann["category_id"], "?")
        cv2.putText(out, label, (int(x), max(int(y) - 3, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, c, 1, cv2.LINE_AA)
    return out


def write_preview(root: str | Path, path: str | Path | None = None, *, max_frames: int = 12, cols: int = 4,
                  tile_width: int = 320) -> Path:  # fmt: skip
    """Write a grid of the first frames with masks and boxes drawn; returns its path (default ``root/preview.png``)."""
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
        tile = cv2.resize(tile, (tile_width, round(tile.shape[0] * scale)), interpolation=cv2.INTER_AREA)
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
    ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:
        raise SimgenError("PNG encoding of the preview failed")
    out.write_bytes(buf.tobytes())
    return out
