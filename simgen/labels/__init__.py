"""Labels as pure numpy functions of :class:`~simgen.frame.FrameBuffers`: they never ask a simulator.

* :func:`annotate`: every label of one frame (visible and amodal boxes, truncation, visibility,
  pose, COCO RLE mask) with the label filters applied.
* :mod:`~simgen.labels.masks`: per-instance counts, boxes and RLE in one pass over the id image.
* :mod:`~simgen.labels.boxes`: 3D box projection with near-plane clipping, truncation, OpenCV's ``K`` vs
  COCO's pixel edges.
* :mod:`~simgen.labels.models`: 3D models (meshes of an object's visual parts) and their BOP diameter.
* :mod:`~simgen.labels.poses`: rigid transforms and quaternions.
* :mod:`~simgen.labels.depth`: depth as uint16 PNG millimetres.
"""

from __future__ import annotations

from simgen.labels.annotate import annotate
from simgen.labels.boxes import (
    NEAR_M,
    PIXEL_EDGE_OFFSET,
    amodal_box,
    box_corners,
    clip_extents,
    project_extents,
    union_box,
)
from simgen.labels.depth import DEPTH_MM_MAX, depth_to_png_mm, png_mm_to_depth
from simgen.labels.errors import LabelError
from simgen.labels.masks import InstanceMask, empty_rle, instance_masks, mask_bbox, rle_decode, rle_encode
from simgen.labels.poses import (
    camera_from_object,
    check_rigid,
    invert_rigid,
    quaternion_xyzw_to_rotation,
    rotation_to_quaternion_xyzw,
)

__all__ = [
    "DEPTH_MM_MAX",
    "NEAR_M",
    "PIXEL_EDGE_OFFSET",
    "InstanceMask",
    "LabelError",
    "amodal_box",
    "annotate",
    "box_corners",
    "camera_from_object",
    "check_rigid",
    "clip_extents",
    "depth_to_png_mm",
    "empty_rle",
    "instance_masks",
    "invert_rigid",
    "mask_bbox",
    "png_mm_to_depth",
    "project_extents",
    "quaternion_xyzw_to_rotation",
    "rle_decode",
    "rle_encode",
    "rotation_to_quaternion_xyzw",
    "union_box",
]
