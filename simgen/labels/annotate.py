"""Every label of one frame, computed from its :class:`~simgen.frame.FrameBuffers` alone."""

from __future__ import annotations

from typing import Literal

import numpy as np

from simgen.errors import did_you_mean
from simgen.frame import FrameBuffers, ObjectAnnotation, ObjectInfo
from simgen.labels.boxes import NEAR_M, clip_extents, project_extents, union_box
from simgen.labels.errors import LabelError
from simgen.labels.masks import empty_rle, instance_masks, mask_bbox
from simgen.labels.poses import check_rigid, invert_rigid, rotation_to_quaternion_xyzw

ON_FILTERED = ("drop", "flag")


def _check_args(min_visible_px: int, min_visibility: float, on_filtered: str) -> None:
    if isinstance(min_visible_px, bool) or not isinstance(min_visible_px, int | np.integer) or min_visible_px < 0:
        raise LabelError(f"min_visible_px: expected an integer >= 0, got {min_visible_px!r}")
    if not 0.0 <= float(min_visibility) <= 1.0:
        raise LabelError(f"min_visibility: expected a number in [0, 1], got {min_visibility!r}")
    if on_filtered not in ON_FILTERED:
        hint = did_you_mean(str(on_filtered), ON_FILTERED)
        raise LabelError(f"on_filtered: expected one of {list(ON_FILTERED)}, got {on_filtered!r}{hint}")


def _check_buffers(buffers: FrameBuffers, labeled: list[ObjectInfo]) -> None:
    height, width = buffers.height, buffers.width
    ids = buffers.instance_ids
    if ids.shape != (height, width):
        raise LabelError(f"buffers.instance_ids: expected shape {(height, width)} (as rgb), got {ids.shape}")
    if np.asarray(buffers.K).shape != (3, 3) or not np.all(np.isfinite(buffers.K)):
        raise LabelError(f"buffers.K: expected a finite (3, 3) matrix, got {np.asarray(buffers.K).tolist()}")
    seen: set[int] = set()
    for obj in buffers.objects:
        if not 1 <= obj.instance_id <= 65535:
            raise LabelError(f"buffers.objects: instance_id of '{obj.uid}' must be in 1..65535, got {obj.instance_id}")
        if obj.instance_id in seen:
            raise LabelError(f"buffers.objects: instance_id {obj.instance_id} appears twice (at '{obj.uid}')")
        seen.add(obj.instance_id)
    for obj in labeled:
        if obj.instance_id not in buffers.object_poses:
            raise LabelError(f"buffers.object_poses: no pose for instance {obj.instance_id} ('{obj.uid}')")
        if buffers.unoccluded_px is not None and obj.instance_id not in buffers.unoccluded_px:
            raise LabelError(f"buffers.unoccluded_px: no count for instance {obj.instance_id} ('{obj.uid}')")


def annotate(
    buffers: FrameBuffers,
    *,
    min_visible_px: int = 1,
    min_visibility: float = 0.0,
    on_filtered: Literal["drop", "flag"] = "drop",
) -> list[ObjectAnnotation]:
    """Label every labeled object of a frame: boxes, truncation, visibility, pose and RLE mask.

    Objects with ``labeled=False`` are skipped (they still occlude: their pixels are not anyone's).
    Visible quantities come from ``buffers.instance_ids``; truncation comes from the object's 3D box
    projected through ``K`` (clipped against a near plane of :data:`~simgen.labels.boxes.NEAR_M` metres,
    so objects straddling the camera plane are exact). The amodal box is the box around that projection
    and the object's pixels (its unoccluded silhouette when ``buffers.unoccluded_masks`` has it, else its
    visible pixels), clipped to the image: rasterization draws pixels up to half a pixel beyond the exact
    outline, and the amodal box must contain the visible box.

    Args:
        buffers: One rendered frame.
        min_visible_px: Objects with fewer visible pixels fall under the filter (flag ``"min_visible_px"``).
        min_visibility: Objects whose visibility was computed and is lower fall under the filter
            (flag ``"min_visibility"``).
        on_filtered: ``"drop"`` filtered objects, or ``"flag"`` them (kept, with ``flags`` naming why).

    Returns:
        One annotation per kept object, in ascending ``instance_id`` order.

    Raises:
        LabelError: A bad argument, or buffers that break the :mod:`simgen.frame` contract (shapes,
            duplicate ids, a missing pose or unoccluded count, a non-rigid pose).
    """
    _check_args(min_visible_px, min_visibility, on_filtered)
    labeled = sorted((o for o in buffers.objects if o.labeled), key=lambda o: o.instance_id)
    _check_buffers(buffers, labeled)
    if not labeled:
        return []
    height, width = buffers.height, buffers.width
    masks = instance_masks(buffers.instance_ids)
    T_cam_world = invert_rigid(check_rigid(buffers.T_world_cam, "buffers.T_world_cam"))
    T_world_obj = np.stack([np.asarray(buffers.object_poses[o.instance_id], dtype=np.float64) for o in labeled])
    try:
        check_rigid(T_world_obj, "pose")
    except LabelError:  # name the object whose pose is bad
        for o in labeled:
            check_rigid(buffers.object_poses[o.instance_id], f"buffers.object_poses[{o.instance_id}] ('{o.uid}')")
        raise
    T_cam_obj = T_cam_world @ T_world_obj
    centers = np.array([o.bbox3d_center for o in labeled], dtype=np.float64)
    sizes = np.array([o.bbox3d_size for o in labeled], dtype=np.float64)
    extents = project_extents(T_cam_obj, buffers.K, centers, sizes, near_m=NEAR_M)
    amodal, truncation = clip_extents(extents, width, height)
    no_pixels: dict[str, object] | None = None

    out: list[ObjectAnnotation] = []
    for n, obj in enumerate(labeled):
        mask = masks.get(obj.instance_id)
        visible = mask.px_count if mask else 0
        unoccluded = None if buffers.unoccluded_px is None else int(buffers.unoccluded_px[obj.instance_id])
        visibility = None
        if unoccluded is not None:
            visibility = min(max(visible / unoccluded, 0.0), 1.0) if unoccluded > 0 else 0.0
        flags = []
        if visible < min_visible_px:
            flags.append("min_visible_px")
        if visibility is not None and visibility < min_visibility:
            flags.append("min_visibility")
        if flags and on_filtered == "drop":
            continue
        if mask is None and no_pixels is None:
            no_pixels = empty_rle(height, width)
        full = None if buffers.unoccluded_masks is None else buffers.unoccluded_masks.get(obj.instance_id)
        drawn = mask_bbox(full) if full is not None else None
        box = union_box(union_box(amodal[n], drawn), mask.bbox if mask else None)
        out.append(
            ObjectAnnotation(
                instance_id=obj.instance_id,
                uid=obj.uid,
                category=obj.category,
                bbox_visible=tuple(float(v) for v in mask.bbox) if mask else None,  # type: ignore[arg-type]
                bbox_amodal=box,
                truncation=truncation[n],
                px_count_visible=visible,
                px_count_unoccluded=unoccluded,
                visibility=visibility,
                T_cam_obj=T_cam_obj[n].copy(),
                quaternion_xyzw=rotation_to_quaternion_xyzw(T_cam_obj[n]),
                bbox3d_size=tuple(float(v) for v in obj.bbox3d_size),  # type: ignore[arg-type]
                bbox3d_center=tuple(float(v) for v in obj.bbox3d_center),  # type: ignore[arg-type]
                rle=mask.rle if mask else dict(no_pixels),  # type: ignore[arg-type]
                flags=flags,
            )
        )
    return out
