"""Ultralytics YOLO labels: one ``labels/NNNNNN.txt`` per frame beside ``images/``, and ``data.yaml``.

Ultralytics finds an image's labels by swapping the last ``/images/`` of its path for ``/labels/`` and the
extension for ``.txt``, so ``images/000123.png`` is labelled by ``labels/000123.txt``. Each line is one
object, every coordinate normalised to [0, 1] by the image size and written with 6 decimals:

* boxes (the default): ``class cx cy w h``, from the COCO visible box (pixel-edge convention);
* segments (``segments=True``): ``class x1 y1 x2 y2 ...``, one polygon per object from its visible mask.

``class`` is the COCO ``category_id - 1``. Annotations with ``flags`` (kept by ``on_filtered: flag``) and
annotations without a visible pixel are left out: YOLO has no way to mark them. A frame with no object
gets an empty file (Ultralytics reads it as a background image).

Polygons follow the coordinates of COCO polygons, which Ultralytics' own COCO converter
(``ultralytics.data.converter.convert_coco``) divides by the width and height as they are: continuous
pixel-edge coordinates, pixel column ``i`` spanning ``[i, i + 1]``. Each vertex is a pixel *corner* on the
outline of the mask's pixels (not a pixel index, which would put the outline through the centres of the
border pixels). So the box Ultralytics takes from a polygon (``segments2boxes``: the min and max of its
vertices) is exactly the COCO box ``[x, x + w] x [y, y + h]`` of the same mask, as a detector trained from
``yolo_segments`` needs; and the polygon's area is the mask's pixel count (for a mask without holes).
Note that Ultralytics rasterises a polygon with ``cv2.fillPoly``, which treats vertices as pixel indices:
its training masks come out one pixel wider and taller than the mask, as they do for every COCO polygon.

A visible mask may fall into several parts (an occluder cuts it in two). YOLO's format holds one polygon
per object, so the parts are joined the way Ultralytics' converter joins multi-polygon annotations: every
external outline is spliced into the polygon through a zero-width bridge between their closest vertices.
Largest part first, then each remaining part (in decreasing area) at its closest point to the polygon so
far. The bridge adds no area, and holes are filled (external outlines only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np

from simgen.errors import YoloWriteError
from simgen.io import atomic_write_bytes, write_file
from simgen.labels.masks import rle_decode
from simgen.writers.base import FrameContext, FrameOutput

#: The file Ultralytics reads the class names and image folders from.
DATA_YAML = "data.yaml"
LABELS_DIR = "labels"
IMAGES_DIR = "images"


class YoloWriter:
    """Ultralytics YOLO detection (or segmentation) labels.

    Args:
        segments: Write segmentation polygons (``class x1 y1 ...``) instead of boxes (``class cx cy w h``).

    Raises:
        YoloWriteError: ``segments`` is not a bool.
    """

    name: ClassVar[str] = "yolo"

    def __init__(self, segments: bool = False) -> None:
        if not isinstance(segments, bool):
            raise YoloWriteError(f"segments: expected a bool, got {segments!r}")
        self.segments = segments

    def __repr__(self) -> str:
        return f"YoloWriter(segments={self.segments})"

    @staticmethod
    def label_path(ctx: FrameContext) -> str:
        """Relative path of a frame's label file: its RGB path with ``images/`` -> ``labels/`` and ``.txt``."""
        rgb = ctx.files.get("rgb")
        if rgb is None:
            return f"{LABELS_DIR}/{ctx.frame:06d}.txt"
        parts = PurePosixPath(rgb).parts
        if len(parts) < 2 or parts[0] != IMAGES_DIR:
            raise YoloWriteError(f"files['rgb']: expected a path under '{IMAGES_DIR}/', got '{rgb}'")
        return str(PurePosixPath(LABELS_DIR, *parts[1:]).with_suffix(".txt"))

    def lines(self, ctx: FrameContext) -> list[str]:
        """The label lines of one frame (no newlines), from its COCO record."""
        image = ctx.coco.get("image", {})
        width, height = int(image.get("width", ctx.buffers.width)), int(image.get("height", ctx.buffers.height))
        if width <= 0 or height <= 0:
            raise YoloWriteError(f"frame {ctx.frame}: image size must be positive, got {width}x{height}")
        n_classes = len(ctx.categories)
        out: list[str] = []
        for ann in ctx.coco.get("annotations", []):
            if ann.get("flags") or int(ann.get("area", 0)) <= 0:
                continue
            cls = int(ann["category_id"]) - 1
            if not 0 <= cls < n_classes:
                raise YoloWriteError(
                    f"frame {ctx.frame}: annotation '{ann.get('uid')}' has category_id {ann['category_id']}, "
                    f"expected 1..{n_classes} (one per category: {list(ctx.categories)})"
                )
            if self.segments:
                polygon = mask_polygon(rle_decode(ann["segmentation"]))
                coords = polygon / np.array([width, height], dtype=np.float64)
                out.append(f"{cls} " + " ".join(_num(v) for v in coords.ravel()))
            else:
                x, y, w, h = (float(v) for v in ann["bbox"])
                box = ((x + w / 2) / width, (y + h / 2) / height, w / width, h / height)
                out.append(f"{cls} " + " ".join(_num(v) for v in box))
        return out

    def write_frame(self, root: Path, ctx: FrameContext) -> FrameOutput:
        """Write ``labels/NNNNNN.txt`` (empty for a frame without objects).

        Like the engine's frame files it goes through a temporary name and a rename, without fsync: the
        manifest's checksum tells a resumed run to redo a label file lost in a crash.

        Args:
            root: The dataset folder.
            ctx: The frame.

        Returns:
            The label file's checksum; no record (``finalize`` needs none).

        Raises:
            YoloWriteError: An unknown category id, a bad image size or RGB path.
        """
        rel = self.label_path(ctx)
        lines = self.lines(ctx)
        data = "".join(line + "\n" for line in lines).encode("ascii")
        (Path(root) / rel).parent.mkdir(parents=True, exist_ok=True)
        return FrameOutput(files={rel: write_file(Path(root), rel, data)}, record=None)

    def finalize(self, root: Path, records: Iterable[dict[str, Any]], dataset: dict[str, Any]) -> dict[str, str]:
        """Write ``data.yaml``: class names and image folders (train and val are both ``images``).

        The file has no ``path:`` key on purpose: Ultralytics then takes the folder holding ``data.yaml``
        as the dataset root. A relative ``path: .`` is resolved against the working directory or
        Ultralytics' ``datasets_dir`` by most of its versions, and an absolute one would tie the bytes
        to where the dataset was written.

        Args:
            root: The dataset folder.
            records: Ignored (YOLO keeps no per-frame record); consumed nonetheless.
            dataset: The dataset record; its ``categories`` (``[{"id": 1, "name": ...}, ...]`` or names) give
                the class names.

        Returns:
            ``{"data.yaml": sha256}``.

        Raises:
            YoloWriteError: ``dataset`` has no usable ``categories``.
        """
        import yaml

        for _ in records:
            pass
        names = category_names(dataset.get("categories"))
        doc = {
            "train": IMAGES_DIR,
            "val": IMAGES_DIR,
            "nc": len(names),
            "names": dict(enumerate(names)),
        }
        data = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False).encode("utf-8")
        return {DATA_YAML: atomic_write_bytes(Path(root) / DATA_YAML, data)}


def category_names(categories: Sequence[Mapping[str, Any] | str] | None) -> list[str]:
    """Category names in id order from ``[{"id": 1, "name": ...}, ...]`` (ids 1..n) or a list of names.

    Raises:
        YoloWriteError: Missing categories, or ids that are not exactly 1..n.
    """
    if not categories:
        raise YoloWriteError("dataset['categories']: expected the category list, got none")
    if all(isinstance(c, str) for c in categories):
        return [str(c) for c in categories]
    try:
        by_id = {int(c["id"]): str(c["name"]) for c in categories}  # type: ignore[index]
    except (TypeError, KeyError, ValueError) as exc:
        raise YoloWriteError(
            f"dataset['categories']: expected [{{'id': 1, 'name': ...}}, ...] or names, got {list(categories)!r}"
        ) from exc
    if sorted(by_id) != list(range(1, len(categories) + 1)):
        raise YoloWriteError(f"dataset['categories']: ids must be 1..{len(categories)}, got {sorted(by_id)}")
    return [by_id[i] for i in range(1, len(categories) + 1)]


def _num(v: float) -> str:
    return f"{min(max(float(v), 0.0), 1.0):.6f}"


def mask_polygon(mask: np.ndarray) -> np.ndarray:
    """One polygon around every part of a boolean mask (see the module docstring), as (N, 2) x, y pixel edges.

    The outline of each part runs along pixel edges, through pixel corners: a single pixel at column 3,
    row 2 is the square ``(3, 2), (3, 3), (4, 3), (4, 2)``. It is traced with ``cv2.findContours`` on the
    mask upsampled 2x: there, the outer pixels of a part lie at even indices on its left and top sides and
    odd ones on its right and bottom sides, so ``(i + 1) // 2`` maps each contour vertex onto the pixel
    corner it stands for, exactly.

    Args:
        mask: (H, W) boolean mask with at least one pixel set.

    Returns:
        (N, 2) float64 vertices, N >= 4, integers in ``[0, W] x [0, H]``.

    Raises:
        YoloWriteError: The mask is empty.
    """
    import cv2

    m = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        raise YoloWriteError("mask_polygon: the mask is empty")
    y0, x0 = int(rows[0]), int(cols[0])
    crop = m[y0 : rows[-1] + 1, x0 : cols[-1] + 1].astype(np.uint8)
    twice = np.ascontiguousarray(np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1))
    contours, _ = cv2.findContours(twice, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    parts: list[np.ndarray] = []
    for c in contours:
        corners = (c.reshape(-1, 2).astype(np.int64) + 1) // 2 + np.array([x0, y0])
        parts.append(_simplify(corners))
    # Largest part first; ties broken by vertex count and box corner, so the order is total.
    parts.sort(key=lambda p: (-_area(p), -len(p), tuple(p.min(axis=0)[::-1])))
    polygon = parts[0]
    for part in parts[1:]:
        d = ((polygon[:, None, :] - part[None, :, :]) ** 2).sum(axis=2)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        loop = np.concatenate([np.roll(part, -int(j), axis=0), part[j : j + 1]])
        polygon = np.concatenate([polygon[: i + 1], loop, polygon[i:]])
    return polygon.astype(np.float64)


def _simplify(ring: np.ndarray) -> np.ndarray:
    """A closed ring without repeated vertices and without vertices in the middle of a straight run."""
    keep = np.any(ring != np.roll(ring, 1, axis=0), axis=1)
    ring = ring[keep] if keep.any() else ring[:1]
    if len(ring) < 3:
        return ring
    before, after = ring - np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0) - ring
    cross = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    straight = (cross == 0) & ((before * after).sum(axis=1) > 0)
    return ring[~straight]


def _area(ring: np.ndarray) -> float:
    """Unsigned shoelace area of a closed ring."""
    x, y = ring[:, 0].astype(np.float64), ring[:, 1].astype(np.float64)
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2.0
