"""COCO instance annotations: a dataset writer like the others, whose records are merged by streaming.

:func:`frame_record` builds a frame's COCO record (the image and its annotations); the image modality makes it
for every frame, since other formats (YOLO) read it too. :class:`CocoWriter` is the ``coco`` writer of
``outputs:``: per frame it returns that record, which the engine appends to the shard's ``coco.jsonl``
fragment; at the end :func:`write_coco_records` streams the records, in frame order, into one
``annotations.coco.json`` without holding the frames in memory: the images go to the file as they come, the
annotations (numbered 1, 2, ... in frame order) to an anonymous spool file that is appended after them.
:func:`write_coco` does the same from fragment files of bare records in any order (it indexes their lines by
frame first). The output is byte-identical however the frames were split into fragments.

Layout of the merged file (one image or annotation per line)::

    {"info":{...},"licenses":[],"categories":[...],"images":[
    {...},
    ...
    ],"annotations":[
    {...},
    ...
    ]}

Besides the standard COCO fields, each image records ``frame_index``, ``scene_index``,
``depth_file``, ``instance_file``, ``K`` and ``T_world_cam``, and each annotation records
``instance_id``, ``uid``, ``bbox_amodal``, ``truncation``, ``visibility``, ``px_count_visible``,
``px_count_unoccluded``, ``pose``, ``bbox3d_size_m``, ``bbox3d_center_m`` and ``flags``.

A frame of a sequence (a scenario's ``timeline``) also carries the COCO-video / TAO fields: its image has
``video_id`` (the scene index + 1), ``frame_id`` (its place in the video, from 0) and ``timestamp_s`` (seconds
after the sequence's ``t = 0``), and each of its annotations ``video_id`` and ``track_id``, the same for one
object over all the frames of its video and unique in the dataset (``scene_index * TRACK_STRIDE + instance_id``).
The merged file then ends with ``videos`` (``id``, ``name``, ``scene_index``, ``n_frames``, ``fps``, ``width``,
``height``) and ``tracks`` (``id``, ``video_id``, ``category_id``, ``uid``, ``instance_id``), in id order.
``frame_index`` stays the frame's index in the dataset (image id - 1), so within a video it increases by 1 per
frame as TAO's does. A dataset without sequences has none of these fields: its bytes are unchanged.

Two pixel conventions, each the one its users expect (see :mod:`simgen.frame`): ``bbox``, ``bbox_amodal``
and ``segmentation`` are COCO's continuous pixel-edge coordinates (pixel column ``i`` spans ``[i, i + 1]``);
``K`` is OpenCV's pinhole matrix (the centre of pixel column ``i`` at ``u = i``, as ``cv2.projectPoints``
and BOP have it), so a point projected through ``K`` lies at ``u + 0.5`` in box coordinates.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from simgen.errors import CocoWriteError, did_you_mean
from simgen.frame import ObjectAnnotation
from simgen.io import atomic_open, sha256_file
from simgen.writers.base import FrameContext, FrameOutput

__all__ = ["COCO_FILE", "CocoWriteError", "CocoWriter", "frame_record", "write_coco", "write_coco_records"]

#: The merged COCO file, at the dataset's root.
COCO_FILE = "annotations.coco.json"
#: Decimals every float is rounded to, so that output bytes do not hinge on the last ulp.
FLOAT_DECIMALS = 6

#: Track ids are ``scene_index * TRACK_STRIDE + instance_id``: unique in a dataset, as instance ids fit in uint16.
TRACK_STRIDE = 1 << 16

#: Open fragment files kept at once while merging.
_MAX_OPEN = 32


def rounded(x: float, error: type[Exception] = CocoWriteError) -> float:
    """``x`` rounded to FLOAT_DECIMALS, so output bytes do not depend on float noise; refuses NaN and infinity."""
    v = float(x)
    if not math.isfinite(v):
        raise error(f"expected a finite number, got {v}")
    return round(v, FLOAT_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def _floats(values: Any) -> list[Any]:
    """Nested lists of rounded floats from an array-like."""
    a = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise CocoWriteError(f"expected finite numbers, got {a.tolist()}")
    return (np.round(a, FLOAT_DECIMALS) + 0.0).tolist()


def _opt(x: float | None) -> float | None:
    return None if x is None else rounded(x)


def annotation_record(
    ann: ObjectAnnotation, image_id: int, category_ids: Mapping[str, int], width: int, height: int
) -> dict[str, Any]:
    """The COCO annotation (without ``"id"``) of one :class:`~simgen.frame.ObjectAnnotation`.

    ``bbox`` is the visible box and ``area`` the visible pixel count. An object with no visible pixel
    (kept only with ``on_filtered="flag"`` or ``min_visible_px=0``) has ``bbox`` ``[0, 0, 0, 0]`` and
    area 0; its ``flags`` say why it is there.

    Raises:
        CocoWriteError: The category has no id, the RLE does not match the image size, or a value
            is not finite.
    """
    if ann.category not in category_ids:
        hint = did_you_mean(ann.category, category_ids)
        raise CocoWriteError(
            f"category_ids: no id for category '{ann.category}' of '{ann.uid}'{hint}; known: {sorted(category_ids)}"
        )
    size = [int(s) for s in ann.rle["size"]]  # type: ignore[attr-defined]
    if size != [height, width]:
        raise CocoWriteError(f"annotation '{ann.uid}': RLE size {size} does not match the image [{height}, {width}]")
    counts = ann.rle["counts"]
    T = np.asarray(ann.T_cam_obj, dtype=np.float64)
    return {
        "image_id": int(image_id),
        "category_id": int(category_ids[ann.category]),
        "bbox": _floats(ann.bbox_visible if ann.bbox_visible is not None else (0.0, 0.0, 0.0, 0.0)),
        "area": int(ann.px_count_visible),
        "segmentation": {"size": size, "counts": counts.decode("ascii") if isinstance(counts, bytes) else str(counts)},
        "iscrowd": 0,
        "instance_id": int(ann.instance_id),
        "uid": ann.uid,
        "bbox_amodal": None if ann.bbox_amodal is None else _floats(ann.bbox_amodal),
        "truncation": rounded(ann.truncation),
        "visibility": _opt(ann.visibility),
        "px_count_visible": int(ann.px_count_visible),
        "px_count_unoccluded": None if ann.px_count_unoccluded is None else int(ann.px_count_unoccluded),
        "pose": {
            "T_cam_obj": _floats(T),
            "quaternion_xyzw": _floats(ann.quaternion_xyzw),
            "translation_m": _floats(T[:3, 3]),
        },
        "bbox3d_size_m": _floats(ann.bbox3d_size),
        "bbox3d_center_m": _floats(ann.bbox3d_center),
        "flags": [str(f) for f in ann.flags],
    }


def frame_record(
    frame_index: int,
    scene_index: int,
    file_name: str,
    annotations: Sequence[ObjectAnnotation],
    category_ids: Mapping[str, int],
    *,
    depth_file: str | None,
    instance_file: str | None,
    K: np.ndarray,
    T_world_cam: np.ndarray,
    width: int,
    height: int,
    sequence: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One frame's line of a COCO fragment: ``{"image": {...}, "annotations": [...]}``.

    The image id is ``frame_index + 1``; annotations carry no ``"id"`` yet (:func:`write_coco`
    numbers them). Every float is rounded to :data:`FLOAT_DECIMALS` decimals. The result is plain,
    JSON-serializable data.

    Args:
        frame_index: Global frame index (0-based).
        scene_index: Index of the scene the frame belongs to.
        file_name: RGB image path relative to the dataset root, e.g. ``"images/000000.png"``.
        annotations: The frame's annotations, as :func:`simgen.labels.annotate` returns them.
        category_ids: Category name -> COCO category id.
        depth_file: Depth PNG path relative to the dataset root, or ``None`` when not written.
        instance_file: Instance-id PNG path relative to the dataset root, or ``None``.
        K: (3, 3) intrinsics.
        T_world_cam: (4, 4) camera pose in the world (OpenCV axes).
        width: Image width in pixels.
        height: Image height in pixels.
        sequence: For a frame of a sequence: ``video_id``, ``frame_id``, ``t_s``, ``n_frames`` and ``fps``
            (see the module docstring); the record then also holds its ``video``.

    Returns:
        The record.

    Raises:
        CocoWriteError: A negative index, an unknown category, a mask of the wrong size or a
            non-finite number.
    """
    if frame_index < 0 or scene_index < 0:
        raise CocoWriteError(f"frame_index and scene_index must be >= 0, got {frame_index} and {scene_index}")
    image_id = int(frame_index) + 1
    image = {
        "id": image_id,
        "file_name": str(file_name),
        "width": int(width),
        "height": int(height),
        "frame_index": int(frame_index),
        "scene_index": int(scene_index),
        "depth_file": depth_file,
        "instance_file": instance_file,
        "K": _floats(K),
        "T_world_cam": _floats(T_world_cam),
    }
    anns = [annotation_record(a, image_id, category_ids, int(width), int(height)) for a in annotations]
    if sequence is None:
        return {"image": image, "annotations": anns}
    video_id = int(sequence["video_id"])
    image.update(video_id=video_id, frame_id=int(sequence["frame_id"]), timestamp_s=rounded(sequence["t_s"]))
    for ann in anns:
        ann.update(video_id=video_id, track_id=int(scene_index) * TRACK_STRIDE + ann["instance_id"])
    video = {
        "id": video_id,
        "name": f"sequence_{int(scene_index):06d}",
        "scene_index": int(scene_index),
        "n_frames": int(sequence["n_frames"]),
        "fps": rounded(sequence["fps"]),
        "width": int(width),
        "height": int(height),
    }
    return {"image": image, "annotations": anns, "video": video}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


class _FragmentIndex:
    """Frame index and byte offset of every line of every fragment, in compact arrays."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        frames = array("q")
        fragment = array("q")
        offsets = array("q")
        for k, path in enumerate(self.paths):
            offset = 0
            with open(path, "rb") as fh:
                for lineno, raw in enumerate(fh, start=1):
                    if not raw.endswith(b"\n"):
                        raise CocoWriteError(f"{path}:{lineno}: torn last line (no newline); the shard is not finished")
                    if raw.strip():
                        frames.append(_parse(raw, path, lineno)["image"]["frame_index"])
                        fragment.append(k)
                        offsets.append(offset)
                    offset += len(raw)
        order = np.argsort(np.array(frames, dtype=np.int64), kind="stable")
        self.frames = np.array(frames, dtype=np.int64)[order]
        self.fragment = np.array(fragment, dtype=np.int64)[order]
        self.offsets = np.array(offsets, dtype=np.int64)[order]
        dup = np.flatnonzero(np.diff(self.frames) == 0)
        if dup.size:
            i = int(dup[0])
            a, b = self.paths[int(self.fragment[i])], self.paths[int(self.fragment[i + 1])]
            raise CocoWriteError(f"frame {int(self.frames[i])} appears twice (in {a} and {b})")

    def __len__(self) -> int:
        return int(self.frames.size)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, parsed, in frame order (a few files open at a time)."""
        handles: dict[int, Any] = {}
        try:
            for k, offset in zip(self.fragment.tolist(), self.offsets.tolist(), strict=True):
                fh = handles.get(k)
                if fh is None:
                    if len(handles) >= _MAX_OPEN:
                        handles.pop(next(iter(handles))).close()
                    fh = handles[k] = open(self.paths[k], "rb")  # noqa: SIM115 - closed below
                fh.seek(offset)
                yield _parse(fh.readline(), self.paths[k], None)
        finally:
            for fh in handles.values():
                fh.close()


def _parse(raw: bytes, path: Path, lineno: int | None) -> dict[str, Any]:
    where = f"{path}:{lineno}" if lineno is not None else str(path)
    try:
        rec = json.loads(raw)
    except ValueError as exc:
        raise CocoWriteError(f"{where}: not a JSON line ({exc})") from exc
    if not (isinstance(rec, dict) and isinstance(rec.get("image"), dict) and isinstance(rec.get("annotations"), list)):
        raise CocoWriteError(f"{where}: expected {{'image': {{...}}, 'annotations': [...]}} as frame_record writes")
    if not isinstance(rec["image"].get("frame_index"), int) or "id" not in rec["image"]:
        raise CocoWriteError(f"{where}: the image has no integer 'frame_index' or no 'id'")
    return rec


def write_coco(
    out_path: str | os.PathLike[str],
    fragment_paths: Sequence[str | os.PathLike[str]],
    categories: Sequence[Mapping[str, Any]],
    info: Mapping[str, Any],
) -> dict[str, int]:
    """Merge fragments of :func:`frame_record` lines, in any order, into one COCO file (see :func:`write_coco_records`).

    Memory holds only a (frame, offset) index, about 24 bytes a frame.

    Args:
        out_path: The COCO file to write.
        fragment_paths: JSONL fragments of :func:`frame_record` lines (in shard order; any order works).
        categories: COCO categories, ``[{"id": 1, "name": ..., "supercategory": ...}, ...]``.
        info: The COCO ``info`` object.

    Returns:
        Counts, as :func:`write_coco_records` returns them.

    Raises:
        CocoWriteError: A torn or malformed line, a frame present twice, an annotation whose image
            or category is unknown.
    """
    index = _FragmentIndex([Path(p) for p in fragment_paths])
    return write_coco_records(out_path, index.records(), categories, info)


def write_coco_records(
    out_path: str | os.PathLike[str],
    records: Iterable[Mapping[str, Any]],
    categories: Sequence[Mapping[str, Any]],
    info: Mapping[str, Any],
) -> dict[str, int]:
    """Write :func:`frame_record` records, streamed once in frame order, as one COCO file, atomically.

    Images are written as they come; annotations, numbered 1, 2, ... in frame order, go to an anonymous
    spool file that is appended after the images (nothing is left behind, whatever happens). The file
    appears under ``out_path`` only once complete (temporary name, fsync, rename), byte-deterministically.

    Args:
        out_path: The COCO file to write.
        records: ``{"image": {...}, "annotations": [...]}`` records in increasing ``frame_index`` order.
        categories: COCO categories, ``[{"id": 1, "name": ..., "supercategory": ...}, ...]``.
        info: The COCO ``info`` object.

    Returns:
        Counts: ``images``, ``annotations``, ``categories``, ``images_without_annotations`` and
        ``flagged_annotations`` (annotations with non-empty ``flags``); with sequences also ``videos`` and ``tracks``.

    Raises:
        CocoWriteError: A malformed record, a frame present twice or out of order, an annotation whose image
            or category is unknown.
    """
    out = Path(out_path)
    category_ids = {int(c["id"]) for c in categories}
    if len(category_ids) != len(categories):
        raise CocoWriteError(f"categories: ids must be unique, got {[c['id'] for c in categories]}")
    stats = {"images": 0, "annotations": 0, "categories": len(categories), "images_without_annotations": 0}
    stats["flagged_annotations"] = 0
    previous = -1
    videos: dict[int, dict[str, Any]] = {}
    tracks: dict[int, dict[str, Any]] = {}
    with atomic_open(out, "w") as fh, tempfile.TemporaryFile("w+", encoding="utf-8", dir=out.parent) as spool:
        fh.write(f'{{"info":{_dumps(dict(info))},"licenses":[],"categories":{_dumps([dict(c) for c in categories])}')
        fh.write(',"images":[')
        for rec in records:
            image = _checked_record(rec)
            frame = image["frame_index"]
            if frame <= previous:
                raise CocoWriteError(f"frame {frame} appears twice or out of frame order (after frame {previous})")
            previous = frame
            if image["id"] != frame + 1:
                raise CocoWriteError(f"frame {frame}: image id {image['id']} is not frame_index + 1")
            fh.write(("\n" if stats["images"] == 0 else ",\n") + _dumps(image))
            stats["images"] += 1
            stats["images_without_annotations"] += not rec["annotations"]
            if "video_id" in image:
                _add_video(rec, image, videos, tracks)
            for ann in rec["annotations"]:
                _check_annotation(ann, image, category_ids)
                stats["annotations"] += 1
                stats["flagged_annotations"] += bool(ann.get("flags"))
                spool.write(
                    ("\n" if stats["annotations"] == 1 else ",\n") + _dumps({"id": stats["annotations"], **ann})
                )
        fh.write("\n" if stats["images"] else "")
        fh.write('],"annotations":[')
        spool.seek(0)
        shutil.copyfileobj(spool, fh)
        fh.write("\n" if stats["annotations"] else "")
        fh.write("]")
        if videos:  # only a dataset of sequences: any other keeps its bytes
            for key, table in (("videos", videos), ("tracks", tracks)):
                fh.write(f',"{key}":[' + ",".join("\n" + _dumps(table[k]) for k in sorted(table)) + "\n]")
            stats["videos"], stats["tracks"] = len(videos), len(tracks)
        fh.write("}\n")
    return stats


def _add_video(
    rec: Mapping[str, Any],
    image: Mapping[str, Any],
    videos: dict[int, dict[str, Any]],
    tracks: dict[int, dict[str, Any]],
) -> None:
    """Record a sequence frame's video and its annotations' tracks (each must agree with what was seen before)."""
    video = rec.get("video")
    if not isinstance(video, dict) or video.get("id") != image["video_id"]:
        raise CocoWriteError(f"frame {image['frame_index']}: a frame with a video_id needs its 'video' record")
    seen = videos.setdefault(video["id"], video)
    if seen != video:
        raise CocoWriteError(f"frame {image['frame_index']}: video {video['id']} is {video}, before {seen}")
    for ann in rec["annotations"]:
        track = {
            "id": ann.get("track_id"),
            "video_id": video["id"],
            "category_id": ann.get("category_id"),
            "uid": ann.get("uid"),
            "instance_id": ann.get("instance_id"),
        }
        known = tracks.setdefault(track["id"], track)
        if known != track:
            raise CocoWriteError(f"frame {image['frame_index']}: track {track['id']} is {track}, before {known}")


def _checked_record(rec: Any) -> dict[str, Any]:
    """The image of a record shaped as :func:`frame_record` makes it."""
    if not (
        isinstance(rec, Mapping) and isinstance(rec.get("image"), dict) and isinstance(rec.get("annotations"), list)
    ):
        raise CocoWriteError("expected {'image': {...}, 'annotations': [...]} as frame_record writes")
    image = rec["image"]
    frame = image.get("frame_index")
    if not isinstance(frame, int) or isinstance(frame, bool) or "id" not in image:
        raise CocoWriteError("the image has no integer 'frame_index' or no 'id'")
    return image


def _check_annotation(ann: Any, image: Mapping[str, Any], category_ids: set[int]) -> None:
    if not isinstance(ann, Mapping) or ann.get("image_id") != image["id"]:
        got = ann.get("image_id") if isinstance(ann, Mapping) else ann
        raise CocoWriteError(f"frame {image['frame_index']}: annotation image_id {got} != {image['id']}")
    if ann.get("category_id") not in category_ids:
        raise CocoWriteError(
            f"frame {image['frame_index']}: annotation '{ann.get('uid')}' has category_id "
            f"{ann.get('category_id')}, not one of {sorted(category_ids)}"
        )


def coco_info(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """The COCO ``info`` object of a dataset record: what it shows, simgen's version, the spec hash and seed."""
    import simgen

    name = dataset.get("spec_name")
    return {
        "description": f"simgen dataset of scene '{name}'" if name else "simgen dataset",
        "version": dataset.get("simgen_version", simgen.__version__),
        "spec_sha256": dataset.get("spec_sha256"),
        "seed": dataset.get("seed"),
    }


class CocoWriter:
    """COCO instance annotations, ``annotations.coco.json`` (``outputs.coco``; on by default).

    Attributes:
        stats: After :meth:`finalize`, the counts the run records in ``dataset.json`` (``images``,
            ``annotations``, ...); None before.
    """

    name: ClassVar[str] = "coco"

    def __init__(self) -> None:
        self.stats: dict[str, int] | None = None

    def __repr__(self) -> str:
        return "CocoWriter()"

    def write_frame(self, root: Path, ctx: FrameContext) -> FrameOutput:
        """No file per frame: the frame's COCO record (``ctx.coco``) is its fragment record."""
        return FrameOutput(files={}, record=ctx.coco)

    def finalize(self, root: Path, records: Iterable[dict[str, Any]], dataset: dict[str, Any]) -> dict[str, str]:
        """Write ``annotations.coco.json`` from every frame's record, streamed once in frame order.

        Args:
            root: The dataset folder.
            records: The frames' COCO records, in frame order.
            dataset: The dataset record: its ``categories`` (``[{"id", "name", "supercategory"}, ...]``) and the
                ``info`` fields (``spec_name``, ``simgen_version``, ``spec_sha256``, ``seed``).

        Returns:
            ``{"annotations.coco.json": sha256}``.

        Raises:
            CocoWriteError: No categories, or a malformed record (see :func:`write_coco_records`).
        """
        categories = dataset.get("categories")
        if not isinstance(categories, list):
            raise CocoWriteError(f"dataset['categories']: expected the category list, got {categories!r:.80}")
        path = Path(root) / COCO_FILE
        self.stats = write_coco_records(path, records, categories, coco_info(dataset))
        return {COCO_FILE: sha256_file(path)}
