"""A BOP dataset tree (``bop/``), in the format of the BOP toolkit's ``docs/bop_datasets_format.md``.

Layout, like the ``train_pbr`` splits BlenderProc renders (chunks of ``chunk_size`` images)::

    bop/camera.json                              fx, fy, cx, cy, width, height, depth_scale (see Camera)
    bop/models/obj_{obj_id:06d}.ply              each object's 3D model: ASCII PLY, mm, vertex normals
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
resumed run which to redo); ``finalize`` writes the models and the JSON files atomically, fsynced. Each
chunk's JSON files are written the way the toolkit's ``inout.save_json`` writes them (one ``"key": value``
line per image, keys in ascending order). Matrices are row-major lists of 9, translations are in
millimetres, and simgen's depth PNG already holds millimetres, so ``depth_scale`` is 1.0. Camera axes and
``cam_K`` are OpenCV's (the centre of pixel column ``i`` at ``u = i``), as BOP's are.

Models. Each object's model is the mesh of the visual parts the backend drew it with
(:attr:`simgen.frame.ObjectInfo.model`, meshed by :func:`simgen.labels.models.model_mesh`): the asset's
OBJ/STL meshes at their URDF origins and scales times the instance's scale, primitives tessellated with
:data:`~simgen.labels.models.SEGMENTS` segments. Its vertices are in millimetres in the object's own
frame, the frame of ``cam_R_m2c``/``cam_t_m2c``: ``R @ X + t`` maps model points into the camera (mm).
``models_info.json`` holds BOP's measures of the written vertices: the exact diameter (the largest
distance between two vertices, :func:`~simgen.labels.models.mesh_diameter`) and the axis-aligned bounds.

Object ids. One ``obj_id`` is one model: one category with one geometry (asset and scale). The writer
keys each annotation by ``(category, SHA-256 of its model's PLY bytes)`` in ``write_frame`` (in the shard
workers, which cannot know each other's objects) and stores the key, not an id, in its record. ``finalize``
streams the records in frame order and numbers the keys 1, 2, ... in order of first appearance (frame,
then annotation order), writing each model as it first appears. So ids are the same whatever the workers,
shards or resumes, and the first frames of a longer run with the same seed get the same ids. Instances
whose scale is drawn from a continuous distribution each get their own model; draw scales from a
``choice`` to keep the models few.

Camera. ``scene_camera.json``'s per-image ``cam_K`` is the truth, as the BOP format says ("the matrix K
may be different for each image"; ``camera.json`` describes the sensor for simulation). ``camera.json``
holds that K when every image shares it; when the spec draws the field of view per frame, it holds the
first image's K. Its ``width``, ``height`` and ``depth_scale`` are the dataset's (every image shares them).

``scene_gt_info`` follows the toolkit's ``calc_gt_info.py``: boxes are ``[x, y, w, h]`` with
``w = x_max - x_min`` over pixel indices (one less than COCO's pixel-edge width; ``[-1, -1, -1, -1]``
when empty), ``px_count_valid`` counts silhouette pixels with depth > 0. Unlike the toolkit, which renders
on a canvas three times the image, the silhouette here is the one inside the image: ``bbox_obj`` is
clipped to the image and ``px_count_all`` counts in-image pixels, so ``visib_fract`` equals simgen's
(and COCO's) ``visibility`` and is higher than the toolkit's for objects cut by the image border.
Every annotation is listed, those kept with ``flags`` too (BOP keeps occluded objects; filter by
``visib_fract``). Each ``scene_gt`` entry also carries the instance's ``category``, ``asset``, ``uid``,
``instance_id``, label ``flags`` and 3D box (``bbox3d_center_mm``, ``bbox3d_size_mm``, in its model frame).

Where this differs from the BOP format document (also listed in the README):

* the model origin is the asset's own frame (its URDF link frame), not the centre of its 3D bounding box,
  and z is not necessarily "up": ``min_x/y/z`` say where the box lies;
* models carry no vertex colours or texture coordinates; there is no ``models_eval/`` (the resampled
  models the toolkit's evaluation scripts load): point them at ``models/``; no symmetries are annotated
  (``symmetries_discrete``/``symmetries_continuous``), so MSSD and MSPD treat every object as asymmetric;
* primitives are tessellated (48 segments): PyBullet draws its own tessellation, whose surface differs by
  at most ``r (1 - cos(pi / 48))`` (0.2% of the radius) from ours;
* ``bbox_obj``, ``px_count_all`` and ``visib_fract`` are computed inside the image (see above), and
  ``mask_visib`` is the renderer's instance mask rather than the toolkit's depth test with a tolerance;
* ``rgb/`` holds PNG files (BOP's ``train_pbr`` splits ship JPEG);
* no ``scene_gt_coco.json``, ``dataset_info.md`` or ``test_targets_*.json`` (COCO is
  ``annotations.coco.json`` at the dataset root); extra keys: ``category``, ``asset``, ``uid``,
  ``instance_id``, ``flags`` and ``bbox3d_*_mm`` in ``scene_gt.json``, ``frame_index`` and ``scene_index``
  in ``scene_camera.json``, ``category`` and ``asset`` in ``models_info.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from simgen import io
from simgen.errors import BopWriteError
from simgen.frame import ModelPart, ObjectInfo
from simgen.io import atomic_write_bytes, encode_png, sha256_file, write_file
from simgen.labels.depth import depth_to_png_mm
from simgen.labels.models import ModelError, model_info, model_mesh, vertex_normals
from simgen.labels.poses import invert_rigid
from simgen.writers.base import FrameContext, FrameOutput
from simgen.writers.coco import rounded

logger = logging.getLogger(__name__)

BOP_DIR = "bop"
SPLIT = "train_pbr"
CAMERA_FILE = f"{BOP_DIR}/camera.json"
MODELS_DIR = f"{BOP_DIR}/models"
MODELS_INFO_FILE = f"{MODELS_DIR}/models_info.json"
#: Largest object id that fits the format's 6-digit model file names.
MAX_OBJ_ID = 999_999
#: Above this many models, ``finalize`` warns: BOP methods expect a handful of objects.
MANY_MODELS = 1000
CHUNK_FILES = ("scene_camera", "scene_gt", "scene_gt_info")
#: Largest chunk size whose image ids still fit the format's 6 digits.
MAX_CHUNK_SIZE = 1_000_000
_EMPTY_BOX = [-1, -1, -1, -1]


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
    io.link_or_copy(src, dest)


def part_record(part: ModelPart) -> dict[str, Any]:
    """A model part as plain JSON (for the per-frame record)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(part).items()}


def part_from_record(record: Mapping[str, Any]) -> ModelPart:
    """The model part of :func:`part_record` (tuples restored, so it hashes).

    Raises:
        BopWriteError: Unknown or malformed fields.
    """
    try:
        fields = {k: tuple(float(x) for x in v) if isinstance(v, list) else v for k, v in record.items()}
        return ModelPart(**fields)
    except (TypeError, ValueError) as exc:
        raise BopWriteError(f"a BOP record holds a malformed model part {dict(record)!r}: {exc}") from exc


def ply_bytes(vertices_mm: np.ndarray, faces: np.ndarray) -> bytes:
    """An ASCII PLY of a triangle mesh with vertex normals, as the BOP models are (6 decimals, mm).

    Vertex coordinates are rounded to 6 decimals first, and the normals are computed from the rounded
    vertices, so the file is a pure function of what it holds.
    """
    v = np.round(np.asarray(vertices_mm, dtype=np.float64), 6) + 0.0
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n = np.round(vertex_normals(v, f), 6) + 0.0
    header = [
        "ply",
        "format ascii 1.0",
        "comment simgen model: millimetres, in the object frame of cam_R_m2c and cam_t_m2c",
        f"element vertex {len(v)}",
        *(f"property float {name}" for name in ("x", "y", "z", "nx", "ny", "nz")),
        f"element face {len(f)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    rows = [" ".join(f"{x:.6f}" for x in row) for row in np.hstack([v, n]).tolist()]
    tris = [f"3 {a} {b} {c}" for a, b, c in f.tolist()]
    return ("\n".join([*header, *rows, *tris]) + "\n").encode("ascii")


def _model_ply(parts: tuple[ModelPart, ...]) -> bytes:
    """The PLY bytes of a model, in mm."""
    vertices, faces = model_mesh(parts)
    return ply_bytes(vertices * 1000.0, faces)


@functools.lru_cache(maxsize=4096)
def _model_digest(parts: tuple[ModelPart, ...]) -> str:
    """SHA-256 of a model's PLY bytes (cached, not the bytes: a scene's objects recur in each of its views)."""
    return hashlib.sha256(_model_ply(parts)).hexdigest()


def _check_model(info: ObjectInfo | None, where: str) -> tuple[ModelPart, ...]:
    if info is None or not info.model:
        raise BopWriteError(
            f"{where}: no 3D model (FrameBuffers.objects[].model is empty): BOP's models/obj_*.ply are the "
            "meshes of each object's visual parts, which the backend must report"
        )
    return tuple(info.model)


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
            files and the models from: ``{"frame", "chunk", "im_id", "width", "height", "scene_camera",
            "scene_gt", "scene_gt_info", "models"}``; each ``scene_gt`` entry names its model by the
            SHA-256 of its PLY bytes, and ``models`` maps each such digest to the model's parts.

        Raises:
            BopWriteError: No unoccluded masks (the spec needs ``labels.visibility: true``), no RGB or
                depth file, an unknown category, an object without a usable 3D model, or masks that
                disagree with the frame.
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
        infos = {o.instance_id: o for o in buffers.objects}
        models: dict[str, list[dict[str, Any]]] = {}
        scene_gt: list[dict[str, Any]] = []
        scene_gt_info: list[dict[str, Any]] = []
        if ctx.annotations:
            for sub in ("mask", "mask_visib"):
                (root / base / sub).mkdir(parents=True, exist_ok=True)
        for gt_id, ann in enumerate(ctx.annotations):
            iid = ann.instance_id
            where = f"frame {ctx.frame}, instance {iid} ('{ann.uid}')"
            if ann.category not in ctx.categories:
                raise BopWriteError(f"{where}: category '{ann.category}' is not one of {list(ctx.categories)}")
            parts = _check_model(infos.get(iid), where)
            try:
                digest = _model_digest(parts)
            except ModelError as exc:
                raise BopWriteError(f"{where}: cannot build its 3D model: {exc}") from exc
            models.setdefault(digest, [part_record(part) for part in parts])
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
                    "model": digest,  # finalize turns (category, model) into the obj_id
                    "category": ann.category,
                    "cam_R_m2c": _rs(T[:3, :3]),
                    "cam_t_m2c": _rs(T[:3, 3] * 1000.0),
                    "bbox3d_center_mm": _rs(np.asarray(ann.bbox3d_center) * 1000.0),
                    "bbox3d_size_mm": _rs(np.asarray(ann.bbox3d_size) * 1000.0),
                    "asset": str(infos[iid].asset),
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
            "models": models,
        }
        return FrameOutput(files=files, record=record)

    def finalize(self, root: Path, records: Iterable[dict[str, Any]], dataset: dict[str, Any]) -> dict[str, str]:
        """Write each chunk's three JSON files, the models, ``models_info.json`` and ``camera.json``.

        Records arrive in frame order, so a chunk's records are contiguous: one chunk is held in memory
        at a time. Object ids are given in order of first appearance (see the module docstring).

        Args:
            root: The dataset folder.
            records: The records of :meth:`write_frame`, in frame order.
            dataset: The dataset record (unused: everything comes from the records).

        Returns:
            Relative path -> SHA-256 of every file written.

        Raises:
            BopWriteError: Records out of frame order, written with another ``chunk_size``, or malformed;
                images of different sizes; a model whose mesh cannot be read or changed since its frames
                were written; more than 999,999 models.
        """
        root = Path(root)
        out: dict[str, str] = {}
        models = _ModelTable(root, out)
        camera = _Camera()
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
                gts, infos, cam, parts = rec["scene_gt"], rec["scene_gt_info"], rec["scene_camera"], rec["models"]
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
            camera.add(frame, cam, rec)
            pending["scene_camera"][im_id] = cam
            pending["scene_gt"][im_id] = [models.entry(frame, gt, parts) for gt in gts]
            pending["scene_gt_info"][im_id] = infos
        flush()

        if camera.first is not None:
            out[CAMERA_FILE] = _write(root / CAMERA_FILE, bop_json(camera.as_json()))
        (root / MODELS_INFO_FILE).parent.mkdir(parents=True, exist_ok=True)
        out[MODELS_INFO_FILE] = _write(root / MODELS_INFO_FILE, bop_json(models.info))
        if len(models.info) > MANY_MODELS:
            logger.warning(
                "BOP: %d models (one per category and geometry); scales drawn from a continuous distribution "
                "give each instance its own model: draw them from a choice for a handful of objects",
                len(models.info),
            )
        return out


class _ModelTable:
    """Object ids by first appearance of ``(category, model digest)``; writes each model when first seen."""

    def __init__(self, root: Path, out: dict[str, str]) -> None:
        self.root, self.out = root, out
        self.ids: dict[tuple[str, str], int] = {}
        self.info: dict[int, dict[str, Any]] = {}

    def entry(self, frame: int, gt: Mapping[str, Any], parts: Mapping[str, Any]) -> dict[str, Any]:
        """The ``scene_gt`` entry of one record entry: its model key replaced by the obj_id."""
        try:
            digest, category = str(gt["model"]), str(gt["category"])
        except (KeyError, TypeError) as exc:
            raise BopWriteError(f"frame {frame}: a scene_gt entry lacks {exc}: {str(gt)[:200]}") from exc
        key = (category, digest)
        obj_id = self.ids.get(key)
        if obj_id is None:
            obj_id = self.ids[key] = len(self.ids) + 1
            if obj_id > MAX_OBJ_ID:
                raise BopWriteError(f"more than {MAX_OBJ_ID} models: BOP's obj_id has 6 digits")
            if digest not in parts:
                raise BopWriteError(f"frame {frame}: no parts for model {digest[:12]} in the record")
            self._write_model(obj_id, digest, parts[digest], category, str(gt.get("asset", "")), frame)
        entry = {k: v for k, v in gt.items() if k != "model"}
        entry["obj_id"] = obj_id
        return entry

    def _write_model(
        self, obj_id: int, digest: str, records: Sequence[Mapping[str, Any]], category: str, asset: str, frame: int
    ) -> None:
        where = f"obj_id {obj_id} ('{category}', {asset or 'a primitive'}, first in frame {frame})"
        try:
            data = _model_ply(tuple(part_from_record(r) for r in records))
        except ModelError as exc:
            raise BopWriteError(f"{where}: cannot build its 3D model: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise BopWriteError(f"{where}: its mesh files changed since the frames were written; generate again")
        rel = f"{MODELS_DIR}/obj_{obj_id:06d}.ply"
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        self.out[rel] = _write(self.root / rel, data)
        vertices = np.array([line.split()[:3] for line in _ply_vertex_lines(data)], dtype=np.float64)
        info = {k: _r(v) for k, v in model_info(vertices).items()}
        self.info[obj_id] = {**info, "category": category, "asset": asset}


def _ply_vertex_lines(data: bytes) -> list[bytes]:
    """The vertex lines of a PLY written by :func:`ply_bytes` (so the measures are those of the file)."""
    lines = data.split(b"\n")
    n = next(int(line.split()[-1]) for line in lines if line.startswith(b"element vertex"))
    start = lines.index(b"end_header") + 1
    return lines[start : start + n]


class _Camera:
    """``camera.json``: the dataset's image size and depth scale, and its K (the first image's if it varies)."""

    def __init__(self) -> None:
        self.first: dict[str, Any] | None = None
        self.K_varies = False

    def add(self, frame: int, cam: Mapping[str, Any], rec: Mapping[str, Any]) -> None:
        try:
            size = (int(rec["width"]), int(rec["height"]))
            K, depth_scale = [float(v) for v in cam["cam_K"]], float(cam["depth_scale"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BopWriteError(f"frame {frame}: a BOP record lacks {exc} or is malformed") from exc
        if self.first is None:
            self.first = {"size": size, "K": K, "depth_scale": depth_scale}
            return
        if size != self.first["size"] or depth_scale != self.first["depth_scale"]:
            raise BopWriteError(
                f"frame {frame}: {size[0]}x{size[1]} with depth_scale {depth_scale}, but the first frame is "
                f"{self.first['size'][0]}x{self.first['size'][1]} with {self.first['depth_scale']}: camera.json "
                "describes one sensor"
            )
        self.K_varies = self.K_varies or self.first["K"] != K

    def as_json(self) -> dict[str, Any]:
        """The ``camera.json`` content (call after at least one :meth:`add`)."""
        first = self.first or {"K": [0.0] * 9, "size": (0, 0), "depth_scale": 1.0}
        K, (width, height) = first["K"], first["size"]
        if self.K_varies:
            logger.info("BOP: K varies per image; camera.json holds the first image's, scene_camera.json each one's")
        return {
            "cx": K[2], "cy": K[5], "fx": K[0], "fy": K[4], "depth_scale": first["depth_scale"],
            "width": width, "height": height,
        }  # fmt: skip


def _write(path: Path, data: bytes) -> str:
    return atomic_write_bytes(path, data)
