"""A BOP dataset tree (``bop/``), in the format of the BOP toolkit's ``docs/bop_datasets_format.md``.

Layout, like the ``train_pbr`` splits BlenderProc renders (chunks of ``chunk_size`` images)::

    bop/camera.json                              fx, fy, cx, cy, width, height, depth_scale (first frame)
    bop/models/models_info.json                  per obj_id: diameter, min_x/y/z, size_x/y/z (mm)
    bop/train_pbr/{chunk:06d}/scene_camera.json  per im_id: cam_K, depth_scale, cam_R_w2c, cam_t_w2c
    bop/train_pbr/{chunk:06d}/scene_gt.json      per im_id: [{obj_id, cam_R_m2c, cam_t_m2c, ...}, ...]
    bop/train_pbr/{chunk:06d}/scene_gt_info.json per im_id: [{bbox_obj, bbox_visib, px_count_*, visib_fract}]
    bop/train_pbr/{chunk:06d}/rgb/{im_id:06d}.png         hard link to images/NNNNNN.png (copy if linking fails)
    bop/train_pbr/{chunk:06d}/depth/{im_id:06d}.png       hard link to depth/NNNNNN.png (uint16 mm)
    bop/train_pbr/{chunk:06d}/mask/{im_id:06d}_{gt_id:06d}.png        full silhouette, 0/255
    bop/train_pbr/{chunk:06d}/mask_visib/{im_id:06d}_{gt_id:06d}.png  visible part, 0/255

with ``chunk = frame // chunk_size`` and ``im_id = frame % chunk_size``. Per-frame files follow the
engine's policy for frame files (temporary name and rename, no fsync: the manifest's checksums tell a
resumed run which to redo); ``finalize`` writes its JSON files atomically, fsynced. Each chunk's JSON files are
written the way the toolkit's ``inout.save_json`` writes them (one ``"key": value`` line per image, keys in
ascending order). Matrices are row-major lists of 9, translations are in millimetres, and simgen's depth
PNG already holds millimetres, so ``depth_scale`` is 1.0. Camera axes are OpenCV's in both.

Objects and models:

* ``obj_id`` is the COCO category id (YOLO class + 1), so one BOP object is one simgen category. BOP
  expects one rigid model per ``obj_id``; simgen may draw a scale per instance (and a category may
  pool several assets), so ``models_info.json`` describes, per ``obj_id``, the envelope of every
  instance written: ``min_*``/``size_*`` bound every instance's 3D box and ``diameter`` is the largest
  instance's box diagonal (an upper bound on the vertex diameter: simgen has boxes, not vertices). Each
  ``scene_gt`` entry also carries the instance's own ``bbox3d_center_mm`` and ``bbox3d_size_mm``
  (in its model frame), its ``asset``, ``uid``, ``instance_id`` and label ``flags``.
* The model frame is the object's own (base) frame, the one ``T_cam_obj`` and the asset's mesh use;
  BOP's models put the origin at the 3D box centre, simgen's assets may not. ``min_*`` and
  ``bbox3d_center_mm`` say where the box lies in that frame, so no pose is shifted: export meshes for
  ``models/`` in the asset's frame as loaded (scaled), not re-centred.

``scene_gt_info`` follows the toolkit's ``calc_gt_info.py``: boxes are ``[x, y, w, h]`` with
``w = x_max - x_min`` over pixel indices (one less than COCO's pixel-edge width; ``[-1, -1, -1, -1]``
when empty), ``px_count_valid`` counts silhouette pixels with depth > 0. Unlike the toolkit, which renders
on a canvas three times the image, the silhouette here is the one inside the image: ``bbox_obj`` is
clipped to the image and ``px_count_all`` counts in-image pixels, so ``visib_fract`` equals simgen's
(and COCO's) ``visibility`` and is higher than the toolkit's for objects cut by the image border.
Every annotation is listed, those kept with ``flags`` too (BOP keeps occluded objects; filter by
``visib_fract``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from simgen.engine.files import write_file
from simgen.errors import SimgenError
from simgen.labels.depth import depth_to_png_mm
from simgen.labels.poses import invert_rigid
from simgen.writers.atomic import atomic_write_bytes, encode_png, sha256_file
from simgen.writers.base import FrameContext, FrameOutput
from simgen.writers.coco import rounded

BOP_DIR = "bop"
SPLIT = "train_pbr"
CAMERA_FILE = f"{BOP_DIR}/camera.json"
MODELS_INFO_FILE = f"{BOP_DIR}/models/models_info.json"
CHUNK_FILES = ("scene_camera", "scene_gt", "scene_gt_info")
#: Largest chunk size whose image ids still fit the format's 6 digits.
MAX_CHUNK_SIZE = 1_000_000
_EMPTY_BOX = [-1, -1, -1, -1]


class BopWriteError(SimgenError, ValueError):
    """A frame or a record cannot be written as BOP (missing masks or files, records out of order ...)."""


def _r(x: float) -> float:
    return rounded(x, BopWriteError)  # the COCO writer's rounding, so both formats agree to the byte


def _rs(values: Any) -> list[float]:
    return [_r(v) for v in np.asarray(values, dtype=np.float64).ravel().tolist()]


def bop_bbox(mask: np.ndarray) -> list[int]:
    """The toolkit's ``misc.calc_2d_bbox`` of a mask: ``[x_min, y_min, x_max - x_min, y_max - y_min]``.

    Returns:
        The box, or ``[-1, -1, -1, -1]`` for an empty mask.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return list(_EMPTY_BOX)
    cols = np.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0]), int(rows[-1] - rows[0])]


def bop_json(content: Mapping[Any, Any]) -> bytes:
    """JSON bytes laid out like the toolkit's ``inout.save_json``: one sorted key per line.

    Keys are sorted by value (numerically for image and object ids), values are compact JSON with sorted keys.
    """
    if not content:
        return b"{}\n"
    lines = [
        f"  {json.dumps(str(k))}: {json.dumps(v, sort_keys=True, allow_nan=False)}" for k, v in sorted(content.items())
    ]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("utf-8")


def link_or_copy(src: Path, dest: Path) -> None:
    """Make ``dest`` a hard link to ``src`` (a copy where linking fails), replacing ``dest`` atomically.

    Raises:
        BopWriteError: ``src`` is not a file.
    """
    if not src.is_file():
        raise BopWriteError(f"{src}: no such file to link into the BOP tree")
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    try:
        try:
            os.link(src, tmp)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        # rename() of two links to the same file does nothing and leaves the source name behind.
        if os.path.lexists(tmp):
            tmp.unlink()


@dataclass
class _ModelBox:
    """Running envelope of one obj_id's instance boxes, in mm."""

    lo: np.ndarray
    hi: np.ndarray
    diameter: float
    assets: set[str] = field(default_factory=set)

    def add(self, center: np.ndarray, size: np.ndarray, asset: str) -> None:
        self.lo = np.minimum(self.lo, center - size / 2)
        self.hi = np.maximum(self.hi, center + size / 2)
        self.diameter = max(self.diameter, float(np.linalg.norm(size)))
        if asset:
            self.assets.add(asset)


class BopWriter:
    """A BOP ``train_pbr`` tree under ``bop/`` (see the module docstring).

    Needs the RGB and depth PNGs (``ctx.files["rgb"]``, ``ctx.files["depth"]``) and each object's
    unoccluded silhouette (``FrameBuffers.unoccluded_masks``, rendered with ``labels.visibility: true``).

    Args:
        chunk_size: Images per ``train_pbr`` chunk folder (BOP uses 1000).

    Raises:
        BopWriteError: ``chunk_size`` is not an integer in 1..1,000,000.
    """

    name: ClassVar[str] = "bop"

    def __init__(self, chunk_size: int = 1000) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
            raise BopWriteError(f"chunk_size: expected an integer, got {chunk_size!r}")
        if not 1 <= int(chunk_size) <= MAX_CHUNK_SIZE:
            raise BopWriteError(f"chunk_size: expected 1..{MAX_CHUNK_SIZE}, got {chunk_size}")
        self.chunk_size = int(chunk_size)

    def __repr__(self) -> str:
        return f"BopWriter(chunk_size={self.chunk_size})"

    def locate(self, frame: int) -> tuple[int, int]:
        """``(chunk, im_id)`` of a frame."""
        return divmod(int(frame), self.chunk_size)

    def chunk_dir(self, chunk: int) -> str:
        """Relative path of one chunk's folder."""
        return f"{BOP_DIR}/{SPLIT}/{chunk:06d}"

    def write_frame(self, root: Path, ctx: FrameContext) -> FrameOutput:
        """Link the frame's RGB and depth, write its masks, and return its camera and ground-truth entries.

        Args:
            root: The dataset folder (holding ``ctx.files``).
            ctx: The frame.

        Returns:
            Checksums of the linked images and the masks, and the record ``finalize`` assembles the chunk
            files from: ``{"frame", "chunk", "im_id", "width", "height", "scene_camera", "scene_gt",
            "scene_gt_info"}``.

        Raises:
            BopWriteError: No unoccluded masks (the spec needs ``labels.visibility: true``), no RGB or
                depth file, an unknown category, or masks that disagree with the frame.
        """
        root = Path(root)
        buffers = ctx.buffers
        if buffers.unoccluded_masks is None:
            raise BopWriteError(
                f"frame {ctx.frame}: the BOP writer needs every object's unoccluded mask "
                "(FrameBuffers.unoccluded_masks, BOP's mask/ and visib_fract): the spec needs "
                "`labels.visibility: true`, and the backend must fill unoccluded_masks when it renders with visibility"
            )
        missing = [k for k in ("rgb", "depth") if k not in ctx.files]
        if missing:
            raise BopWriteError(
                f"frame {ctx.frame}: the BOP writer needs the frame's {' and '.join(missing)} PNG "
                f"(outputs.rgb and outputs.depth), got files {sorted(ctx.files)}"
            )
        if ctx.frame < 0:
            raise BopWriteError(f"frame must be >= 0, got {ctx.frame}")
        chunk, im_id = self.locate(ctx.frame)
        base = self.chunk_dir(chunk)
        height, width = buffers.height, buffers.width
        files: dict[str, str] = {}

        for kind in ("rgb", "depth"):
            src = root / ctx.files[kind]
            rel = f"{base}/{kind}/{im_id:06d}{src.suffix}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(src, root / rel)
            files[rel] = sha256_file(root / rel)

        ids = np.asarray(buffers.instance_ids)
        valid_depth = depth_to_png_mm(buffers.depth_m) > 0
        category_ids = {name: i + 1 for i, name in enumerate(ctx.categories)}
        assets = {o.instance_id: o.asset for o in buffers.objects}
        scene_gt: list[dict[str, Any]] = []
        scene_gt_info: list[dict[str, Any]] = []
        if ctx.annotations:
            for sub in ("mask", "mask_visib"):
                (root / base / sub).mkdir(parents=True, exist_ok=True)
        for gt_id, ann in enumerate(ctx.annotations):
            iid = ann.instance_id
            where = f"frame {ctx.frame}, instance {iid} ('{ann.uid}')"
            if ann.category not in category_ids:
                raise BopWriteError(f"{where}: category '{ann.category}' is not one of {list(ctx.categories)}")
            full = buffers.unoccluded_masks.get(iid)
            if full is None:
                if ann.px_count_unoccluded not in (None, 0):
                    raise BopWriteError(f"{where}: no unoccluded mask, but {ann.px_count_unoccluded} unoccluded pixels")
                full = np.zeros((height, width), dtype=bool)
            full = np.asarray(full, dtype=bool)
            if full.shape != (height, width):
                raise BopWriteError(f"{where}: unoccluded mask has shape {full.shape}, expected {(height, width)}")
            visib = ids == iid
            px_all, px_visib = int(full.sum()), int(visib.sum())
            if ann.px_count_unoccluded is not None and ann.px_count_unoccluded != px_all:
                raise BopWriteError(
                    f"{where}: the unoccluded mask has {px_all} pixels but unoccluded_px says "
                    f"{ann.px_count_unoccluded}; the backend's masks and counts must come from the same render"
                )
            for sub, mask in (("mask", full), ("mask_visib", visib)):
                rel = f"{base}/{sub}/{im_id:06d}_{gt_id:06d}.png"
                files[rel] = write_file(root, rel, encode_png(mask.astype(np.uint8) * np.uint8(255)))
            T = np.asarray(ann.T_cam_obj, dtype=np.float64)
            scene_gt.append(
                {
                    "obj_id": category_ids[ann.category],
                    "cam_R_m2c": _rs(T[:3, :3]),
                    "cam_t_m2c": _rs(T[:3, 3] * 1000.0),
                    "bbox3d_center_mm": _rs(np.asarray(ann.bbox3d_center) * 1000.0),
                    "bbox3d_size_mm": _rs(np.asarray(ann.bbox3d_size) * 1000.0),
                    "asset": str(assets.get(iid, "")),
                    "uid": ann.uid,
                    "instance_id": int(iid),
                    "flags": [str(f) for f in ann.flags],
                }
            )
            scene_gt_info.append(
                {
                    "bbox_obj": bop_bbox(full),
                    "bbox_visib": bop_bbox(visib),
                    "px_count_all": px_all,
                    "px_count_valid": int((full & valid_depth).sum()),
                    "px_count_visib": px_visib,
                    "visib_fract": _r(min(px_visib / px_all, 1.0)) if px_all > 0 else 0.0,
                }
            )

        T_cam_world = invert_rigid(np.asarray(buffers.T_world_cam, dtype=np.float64))
        scene_camera = {
            "cam_K": _rs(buffers.K),
            "depth_scale": 1.0,
            "cam_R_w2c": _rs(T_cam_world[:3, :3]),
            "cam_t_w2c": _rs(T_cam_world[:3, 3] * 1000.0),
            "frame_index": int(ctx.frame),
            "scene_index": int(ctx.scene),
        }
        record = {
            "frame": int(ctx.frame),
            "chunk": chunk,
            "im_id": im_id,
            "width": width,
            "height": height,
            "scene_camera": scene_camera,
            "scene_gt": scene_gt,
            "scene_gt_info": scene_gt_info,
        }
        return FrameOutput(files=files, record=record)

    def finalize(self, root: Path, records: Iterable[dict[str, Any]], dataset: dict[str, Any]) -> dict[str, str]:
        """Write each chunk's three JSON files, ``camera.json`` and ``models/models_info.json``.

        Records arrive in frame order, so a chunk's records are contiguous: one chunk is held in memory
        at a time.

        Args:
            root: The dataset folder.
            records: The records of :meth:`write_frame`, in frame order.
            dataset: The dataset record; its ``categories`` name the objects in ``models_info.json``.

        Returns:
            Relative path -> SHA-256 of every file written.

        Raises:
            BopWriteError: Records out of frame order, written with another ``chunk_size``, or malformed.
        """
        root = Path(root)
        out: dict[str, str] = {}
        names = _category_names(dataset.get("categories"))
        models: dict[int, _ModelBox] = {}
        camera: dict[str, Any] | None = None
        chunk: int | None = None
        pending: dict[str, dict[int, Any]] = {k: {} for k in CHUNK_FILES}
        last_frame = -1

        def flush() -> None:
            if chunk is None:
                return
            folder = root / self.chunk_dir(chunk)
            folder.mkdir(parents=True, exist_ok=True)
            for key in CHUNK_FILES:
                out[f"{self.chunk_dir(chunk)}/{key}.json"] = _write(folder / f"{key}.json", bop_json(pending[key]))
                pending[key] = {}

        for rec in records:
            try:
                frame, rec_chunk, im_id = int(rec["frame"]), int(rec["chunk"]), int(rec["im_id"])
                gts, infos, cam = rec["scene_gt"], rec["scene_gt_info"], rec["scene_camera"]
            except (KeyError, TypeError, ValueError) as exc:
                raise BopWriteError(f"a BOP record lacks {exc} or is malformed: {str(rec)[:200]}") from exc
            if frame <= last_frame:
                raise BopWriteError(f"records must come in increasing frame order: frame {frame} after {last_frame}")
            if (rec_chunk, im_id) != self.locate(frame):
                raise BopWriteError(
                    f"frame {frame} was written as chunk {rec_chunk}, image {im_id}; this writer has chunk_size "
                    f"{self.chunk_size} (use the chunk_size the frames were written with)"
                )
            if len(gts) != len(infos):
                raise BopWriteError(f"frame {frame}: {len(gts)} scene_gt entries but {len(infos)} scene_gt_info")
            last_frame = frame
            if rec_chunk != chunk:
                flush()
                chunk = rec_chunk
            pending["scene_camera"][im_id] = cam
            pending["scene_gt"][im_id] = gts
            pending["scene_gt_info"][im_id] = infos
            if camera is None:
                K = cam["cam_K"]
                camera = {
                    "cx": K[2], "cy": K[5], "fx": K[0], "fy": K[4], "depth_scale": cam["depth_scale"],
                    "width": int(rec["width"]), "height": int(rec["height"]),
                }  # fmt: skip
            for gt in gts:
                center = np.asarray(gt["bbox3d_center_mm"], dtype=np.float64)
                size = np.asarray(gt["bbox3d_size_mm"], dtype=np.float64)
                box = models.get(int(gt["obj_id"]))
                if box is None:
                    box = models[int(gt["obj_id"])] = _ModelBox(center - size / 2, center + size / 2, 0.0)
                box.add(center, size, str(gt.get("asset", "")))
        flush()

        if camera is not None:
            out[CAMERA_FILE] = _write(root / CAMERA_FILE, bop_json(camera))
        info = {}
        for obj_id, box in models.items():
            size = box.hi - box.lo
            info[obj_id] = {
                "diameter": _r(box.diameter),
                "min_x": _r(box.lo[0]), "min_y": _r(box.lo[1]), "min_z": _r(box.lo[2]),
                "size_x": _r(size[0]), "size_y": _r(size[1]), "size_z": _r(size[2]),
                "category": names.get(obj_id, str(obj_id)),
                "assets": sorted(box.assets),
            }  # fmt: skip
        (root / MODELS_INFO_FILE).parent.mkdir(parents=True, exist_ok=True)
        out[MODELS_INFO_FILE] = _write(root / MODELS_INFO_FILE, bop_json(info))
        return out


def _write(path: Path, data: bytes) -> str:
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def _category_names(categories: Any) -> dict[int, str]:
    """``id -> name`` from ``[{"id": 1, "name": ...}, ...]`` or a list of names (empty if neither)."""
    out: dict[int, str] = {}
    for i, c in enumerate(categories or [], start=1):
        if isinstance(c, str):
            out[i] = c
        elif isinstance(c, Mapping) and "id" in c and "name" in c:
            out[int(c["id"])] = str(c["name"])
    return out
