"""The label validator: check every label of a COCO dataset and list every problem found.

Core dependencies only (numpy, OpenCV, pycocotools): it runs without torch. It never stops at the
first problem; each one becomes a :class:`Problem` record.

Checks, by ``kind``:

- file level: ``coco_malformed``, ``duplicate_image_id``, ``duplicate_annotation_id``,
  ``category_malformed``;
- images: ``image_missing``, ``image_unreadable``, ``image_size_mismatch``, ``image_size_invalid``,
  ``intrinsics_invalid``;
- annotations: ``image_id_unknown``, ``category_id_invalid``, ``bbox_malformed``,
  ``bbox_degenerate``, ``bbox_out_of_bounds``, ``iscrowd_invalid``, ``rle_invalid`` (it does not
  decode, or its size is not the image's), ``mask_box_mismatch`` (the box is not the mask's
  bounding box), ``area_mismatch``, ``visibility_out_of_range``, ``truncation_out_of_range``,
  ``instance_mask_mismatch`` (the RLE and the instance PNG disagree);
- per-frame buffers: ``depth_missing``, ``depth_unreadable``, ``depth_invalid`` (not uint16 single
  channel), ``depth_size_mismatch``, ``depth_empty`` (no valid pixel), ``depth_holes`` (an object's
  visible pixels mostly have no depth), ``instances_missing``, ``instances_unreadable``,
  ``instances_invalid``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from simgen.errors import SimgenError

__all__ = ["LabelCheckOptions", "Problem", "summarize_problems", "validate_labels"]

COCO_FILE = "annotations.coco.json"


@dataclass(frozen=True)
class Problem:
    """One problem found in a dataset's labels.

    Attributes:
        kind: A short machine-readable name, e.g. ``bbox_out_of_bounds``.
        message: What is wrong, with the values.
        image_id: The COCO image id, when the problem belongs to an image.
        annotation_id: The COCO annotation id, when it belongs to an annotation.
        frame: The simgen frame index (``frame_index``), when known.
    """

    kind: str
    message: str
    image_id: int | None = None
    annotation_id: int | None = None
    frame: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)

    def __str__(self) -> str:
        where = []
        if self.frame is not None:
            where.append(f"frame {self.frame}")
        if self.image_id is not None:
            where.append(f"image {self.image_id}")
        if self.annotation_id is not None:
            where.append(f"annotation {self.annotation_id}")
        return f"{self.kind} ({', '.join(where) or 'dataset'}): {self.message}"


@dataclass(frozen=True)
class LabelCheckOptions:
    """Tolerances and switches of :func:`validate_labels`.

    Attributes:
        box_tolerance_px: How far (pixels) a box may leave the image, or differ from its mask's box.
        area_tolerance: Relative tolerance between ``area`` and the mask's pixel count.
        instance_iou_min: Least IoU between an RLE and its ``instance_id`` pixels in the instance PNG.
        depth_hole_fraction: An object is ``depth_holes`` when more than this share of its visible
            pixels has depth 0.
        check_files: Open image, depth and instance files (sizes, dtypes, contents).
    """

    box_tolerance_px: float = 1.0
    area_tolerance: float = 0.01
    instance_iou_min: float = 0.99
    depth_hole_fraction: float = 0.5
    check_files: bool = True


def _finite_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG header, else by decoding; None when unreadable."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if img is None else (img.shape[1], img.shape[0])


class _Checker:
    def __init__(self, root: Path, coco: dict[str, Any], options: LabelCheckOptions) -> None:
        self.root, self.coco, self.opt = root, coco, options
        self.problems: list[Problem] = []
        self.frames: dict[int, int | None] = {}
        self.rles: dict[int, Any] = {}  # id(annotation) -> its decodable RLE

    def add(self, kind: str, message: str, image_id: Any = None, annotation_id: Any = None) -> None:
        iid = image_id if isinstance(image_id, int) else None
        aid = annotation_id if isinstance(annotation_id, int) else None
        self.problems.append(Problem(kind, message, iid, aid, self.frames.get(iid) if iid is not None else None))

    def run(self) -> list[Problem]:
        coco = self.coco
        for key in ("images", "annotations", "categories"):
            if not isinstance(coco.get(key), list):
                self.add("coco_malformed", f"'{key}' must be a list, got {type(coco.get(key)).__name__}")
        if self.problems:
            return self.problems
        category_ids = set()
        for c in coco["categories"]:
            if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
                self.add("category_malformed", f"a category needs an int 'id' and a str 'name', got {c!r}")
            else:
                category_ids.add(c["id"])
        images: dict[int, dict[str, Any]] = {}
        for img in coco["images"]:
            iid = img.get("id") if isinstance(img, dict) else None
            if not isinstance(iid, int):
                self.add("coco_malformed", f"an image entry has no int 'id': {str(img)[:80]}")
                continue
            if iid in images:
                self.add("duplicate_image_id", f"image id {iid} appears more than once", iid)
                continue
            images[iid] = img
            frame = img.get("frame_index")
            self.frames[iid] = frame if isinstance(frame, int) else None
        seen_ann: Counter[Any] = Counter(a.get("id") for a in coco["annotations"] if isinstance(a, dict))
        for aid, n in seen_ann.items():
            if n > 1:
                self.add("duplicate_annotation_id", f"annotation id {aid} appears {n} times", None, aid)
        sizes = {iid: self.check_image(img) for iid, img in images.items()}
        by_image: dict[int, list[dict[str, Any]]] = {}
        for ann in coco["annotations"]:
            if not isinstance(ann, dict):
                self.add("coco_malformed", f"an annotation is not an object: {str(ann)[:80]}")
                continue
            iid = ann.get("image_id")
            if iid not in images:
                self.add("image_id_unknown", f"image_id {iid!r} is not in 'images'", None, ann.get("id"))
                continue
            by_image.setdefault(iid, []).append(ann)
            self.check_annotation(ann, images[iid], sizes[iid], category_ids)
        if self.opt.check_files:
            for iid, img in images.items():
                self.check_buffers(img, by_image.get(iid, []), sizes[iid])
        return self.problems

    def check_image(self, img: dict[str, Any]) -> tuple[int, int] | None:
        """Declared (w, h) when valid, after comparing with the file."""
        iid = img["id"]
        w, h = img.get("width"), img.get("height")
        declared = (int(w), int(h)) if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0 else None
        if declared is None:
            self.add("image_size_invalid", f"width/height must be positive ints, got {w!r} x {h!r}", iid)
        name = img.get("file_name")
        if self.opt.check_files:
            path = self.root / str(name)
            if not isinstance(name, str) or not path.is_file():
                self.add("image_missing", f"image file {name!r} does not exist", iid)
            else:
                actual = _image_size(path)
                if actual is None:
                    self.add("image_unreadable", f"{name} cannot be decoded", iid)
                elif declared is not None and actual != declared:
                    self.add("image_size_mismatch", f"{name} is {actual[0]}x{actual[1]}, the labels say "
                             f"{declared[0]}x{declared[1]}", iid)  # fmt: skip
        k = img.get("K")
        if k is not None:
            arr = np.asarray(k, dtype=object)
            ok = arr.shape == (3, 3) and all(_finite_number(v) for v in arr.ravel())
            if not ok or float(arr[0, 0]) <= 0 or float(arr[1, 1]) <= 0:
                self.add("intrinsics_invalid", f"K must be a 3x3 matrix with positive focal lengths, got {k!r}", iid)
        return declared

    def check_annotation(self, ann: dict[str, Any], img: dict[str, Any], size: tuple[int, int] | None,
                         category_ids: set[int]) -> None:  # fmt: skip
        iid, aid, tol = img["id"], ann.get("id"), self.opt.box_tolerance_px
        if ann.get("category_id") not in category_ids:
            self.add("category_id_invalid", f"category_id {ann.get('category_id')!r} is not a listed category",
                     iid, aid)  # fmt: skip
        if ann.get("iscrowd", 0) not in (0, 1):
            self.add("iscrowd_invalid", f"iscrowd must be 0 or 1, got {ann.get('iscrowd')!r}", iid, aid)
        for key in ("visibility", "truncation"):
            v = ann.get(key)
            if v is not None and not (_finite_number(v) and 0.0 <= v <= 1.0):
                self.add(f"{key}_out_of_range", f"{key} must be None or in [0, 1], got {v!r}", iid, aid)
        bbox = ann.get("bbox")
        box_ok = isinstance(bbox, list | tuple) and len(bbox) == 4 and all(_finite_number(v) for v in bbox)
        if not box_ok:
            self.add("bbox_malformed", f"bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}", iid, aid)
        else:
            x, y, w, h = (float(v) for v in bbox)
            if w <= 0 or h <= 0:
                self.add("bbox_degenerate", f"bbox width and height must be positive, got {w:g} x {h:g}", iid, aid)
            if size is not None and (x < -tol or y < -tol or x + w > size[0] + tol or y + h > size[1] + tol):
                self.add("bbox_out_of_bounds", f"bbox [{x:g}, {y:g}, {w:g}, {h:g}] leaves the {size[0]}x{size[1]} "
                         "image", iid, aid)  # fmt: skip
        rle = self.decode_rle(ann, size, iid, aid)
        if rle is None:
            return
        self.rles[id(ann)] = rle
        area_px = float(mask_utils.area(rle))
        if box_ok:
            mbox = mask_utils.toBbox(rle).tolist() if area_px > 0 else [0.0, 0.0, 0.0, 0.0]
            if area_px == 0 or max(abs(a - b) for a, b in zip(mbox, bbox, strict=True)) > tol:
                self.add("mask_box_mismatch", f"bbox {[round(float(v), 2) for v in bbox]} is not the mask's box "
                         f"{[round(v, 2) for v in mbox]} ({int(area_px)} px)", iid, aid)  # fmt: skip
        area = ann.get("area")
        if area is not None and (not _finite_number(area) or abs(float(area) - area_px) >
                                 max(1.0, self.opt.area_tolerance * area_px)):  # fmt: skip
            self.add("area_mismatch", f"area {area!r} but the mask has {int(area_px)} pixels", iid, aid)

    def decode_rle(self, ann: dict[str, Any], size: tuple[int, int] | None, iid: int, aid: Any) -> Any:
        seg = ann.get("segmentation")
        if seg is None or seg == []:
            return None
        try:
            if isinstance(seg, dict):
                counts = seg.get("counts")
                rle_size = seg.get("size")
                if not (isinstance(rle_size, list | tuple) and len(rle_size) == 2):
                    raise ValueError(f"size must be [height, width], got {rle_size!r}")
                if size is not None and (int(rle_size[0]), int(rle_size[1])) != (size[1], size[0]):
                    raise ValueError(f"size {list(rle_size)} is not the image's [{size[1]}, {size[0]}]")
                rle = {"size": [int(rle_size[0]), int(rle_size[1])], "counts": counts}
                if isinstance(counts, list):
                    if sum(int(c) for c in counts) != rle["size"][0] * rle["size"][1]:
                        raise ValueError("uncompressed counts do not add up to height x width")
                    rle = mask_utils.frPyObjects(rle, *rle["size"])
                elif isinstance(counts, str):
                    rle["counts"] = counts.encode("ascii")
                else:
                    raise ValueError(f"counts must be a str or a list, got {type(counts).__name__}")
                m = mask_utils.decode(rle)
                if m.shape != tuple(rle["size"]):
                    raise ValueError(f"decodes to shape {m.shape}, not {tuple(rle['size'])}")
                if isinstance(counts, str) and int(m.sum()) != int(mask_utils.area(rle)):
                    raise ValueError("run lengths are inconsistent")
                return rle
            if isinstance(seg, list):
                if size is None:
                    return None
                if not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
                    raise ValueError("each polygon needs an even number (>= 6) of coordinates")
                return mask_utils.merge(mask_utils.frPyObjects(seg, size[1], size[0]))
            raise ValueError(f"segmentation must be an RLE dict or polygons, got {type(seg).__name__}")
        except Exception as exc:  # pycocotools raises bare Exceptions on corrupt counts
            self.add("rle_invalid", f"segmentation does not decode: {exc}", iid, aid)
            return None

    def _read_buffer(self, img: dict[str, Any], key: str, label: str, size: tuple[int, int] | None) -> Any:
        rel = img.get(key)
        if rel is None:
            return None
        iid = img["id"]
        path = self.root / str(rel)
        if not path.is_file():
            self.add(f"{label}_missing", f"{key} {rel!r} does not exist", iid)
            return None
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if arr is None:
            self.add(f"{label}_unreadable", f"{rel} cannot be decoded", iid)
            return None
        if arr.dtype != np.uint16 or arr.ndim != 2:
            self.add(f"{label}_invalid", f"{rel} must be a single-channel uint16 PNG, got {arr.dtype} "
                     f"{'x'.join(map(str, arr.shape))}", iid)  # fmt: skip
            return None
        if size is not None and (arr.shape[1], arr.shape[0]) != size:
            kind = "depth_size_mismatch" if label == "depth" else "instances_invalid"
            self.add(kind, f"{rel} is {arr.shape[1]}x{arr.shape[0]}, the image is {size[0]}x{size[1]}", iid)
            return None
        return arr

    def check_buffers(self, img: dict[str, Any], anns: list[dict[str, Any]], size: tuple[int, int] | None) -> None:
        iid = img["id"]
        depth = self._read_buffer(img, "depth_file", "depth", size)
        instances = self._read_buffer(img, "instance_file", "instances", size)
        if depth is not None and not (depth > 0).any():
            self.add("depth_empty", f"{img['depth_file']} has no valid (non-zero) pixel", iid)
            depth = None
        if depth is None and instances is None:
            return
        for ann in anns:
            rle = self.rles.get(id(ann))
            if rle is None:
                continue
            m = mask_utils.decode(rle).astype(bool)
            n = int(m.sum())
            if n == 0:
                continue
            if depth is not None:
                holes = float((depth[m] == 0).mean())
                if holes > self.opt.depth_hole_fraction:
                    self.add("depth_holes", f"{holes:.0%} of the object's {n} visible pixels have no depth",
                             iid, ann.get("id"))  # fmt: skip
            inst_id = ann.get("instance_id")
            if instances is not None and isinstance(inst_id, int):
                other = instances == inst_id
                union = int((m | other).sum())
                iou = int((m & other).sum()) / union if union else 1.0
                if iou < self.opt.instance_iou_min:
                    self.add("instance_mask_mismatch", f"the RLE and instance id {inst_id} in {img['instance_file']}"
                             f" overlap with IoU {iou:.3f}", iid, ann.get("id"))  # fmt: skip


def validate_labels(dataset: str | Path | dict[str, Any], *, root: str | Path | None = None,
                    options: LabelCheckOptions | None = None) -> list[Problem]:  # fmt: skip
    """Check every label of a COCO dataset; return every problem found (empty when all is well).

    Args:
        dataset: A simgen dataset folder, a COCO ``.json`` file, or a COCO document (dict).
        root: The folder file names are relative to (default: the dataset folder or the JSON's folder).
        options: Tolerances; see :class:`LabelCheckOptions`.

    Returns:
        The problems, in the order found.

    Raises:
        SimgenError: The COCO file cannot be read at all.
    """
    opt = options or LabelCheckOptions()
    if isinstance(dataset, dict):
        coco, base = dataset, Path(root) if root is not None else Path(".")
    else:
        path = Path(dataset)
        coco_file = path / COCO_FILE if path.is_dir() else path
        if not coco_file.is_file():
            raise SimgenError(f"{path} has no {COCO_FILE}; is it a COCO dataset?")
        try:
            coco = json.loads(coco_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SimgenError(f"cannot read {coco_file}: {exc}") from exc
        base = Path(root) if root is not None else coco_file.parent
    if not isinstance(coco, dict):
        return [Problem("coco_malformed", f"the COCO document must be an object, got {type(coco).__name__}")]
    return _Checker(base, coco, opt).run()


def summarize_problems(problems: list[Problem]) -> dict[str, int]:
    """Problem counts by kind, most frequent first."""
    return dict(Counter(p.kind for p in problems).most_common())
