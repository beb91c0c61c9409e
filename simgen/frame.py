"""Plain data that flows from a backend to the label functions and the writers.

Conventions, fixed for every backend:

* Camera frame is OpenCV's: x right, y down, z forward. ``K`` is OpenCV's 3x3 pinhole matrix in pixels:
  ``u = fx x / z + cx`` is the column *index*, the centre of pixel column ``i`` is at ``u = i`` (so a
  centred principal point is ``cx = (W - 1) / 2``), as ``cv2.projectPoints``, ``cv2.solvePnP`` and BOP's
  ``cam_K`` have it. Boxes and polygons (COCO, YOLO) use COCO's continuous pixel-edge coordinates instead,
  in which pixel column ``i`` spans ``[i, i + 1]``: a projected point ``u`` lies at ``u + 0.5`` there
  (see :mod:`simgen.labels.boxes`).
* ``T_world_cam`` maps camera coordinates to world coordinates (camera pose in the world).
* Poses are 4x4 float64 matrices in metres; ``T_world_obj`` maps object coordinates to world.
* ``depth_m`` is the z-depth along the optical axis in metres, ``0`` where nothing was hit.
* ``instance_ids`` is uint16, ``0`` for background and for anything that is not an instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: The conventions above, as ``dataset.json`` records them under ``"camera_convention"``.
CAMERA_CONVENTION = {
    "K": "opencv: the centre of pixel (col, row) is (u, v) = (col, row); a centred camera has cx = (W - 1) / 2",
    "boxes": "coco: continuous pixel edges, pixel column i spans [i, i + 1]; a point u of K lies at u + 0.5",
    "axes": "opencv: x right, y down, z forward; T_world_cam maps camera to world coordinates",
}


def centred_principal_point(size: int) -> float:
    """Where the optical axis of a centred camera meets an image axis of ``size`` pixels, in ``K``'s pixels.

    ``(size - 1) / 2``: the one place that states OpenCV's convention (the centre of pixel ``i`` at ``i``)
    for code that builds a ``K``.
    """
    return (float(size) - 1.0) / 2.0


#: Kinds of :class:`ModelPart`.
MODEL_PART_KINDS = ("mesh", "box", "sphere", "cylinder", "capsule")


@dataclass(frozen=True)
class ModelPart:
    """One visual part of an object's 3D model, as the backend draws it, placed in the object's frame.

    Plain, hashable data: a writer meshes it (:func:`simgen.labels.models.model_mesh`) without asking the
    simulator. Cylinders and capsules lie along their frame's z axis.

    Attributes:
        kind: One of :data:`MODEL_PART_KINDS`.
        position: Origin of the part's frame in the object frame, metres.
        orientation: Rotation of the part's frame in the object frame, unit quaternion (x, y, z, w).
        mesh_file: Absolute path of a ``"mesh"`` part's file (Wavefront OBJ or STL); empty otherwise.
        scale: Per-axis factors from the mesh file's coordinates to metres (a ``"mesh"`` part).
        size: Full edge lengths of a ``"box"``, metres.
        radius: Radius of a sphere, cylinder or capsule, metres.
        length: Length of a cylinder, or of a capsule's straight part (without its caps), metres.
    """

    kind: str
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orientation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    mesh_file: str = ""
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size: tuple[float, float, float] = (0.0, 0.0, 0.0)
    radius: float = 0.0
    length: float = 0.0


@dataclass(frozen=True)
class ObjectInfo:
    """One object instance as the labels see it.

    Attributes:
        instance_id: Its value in ``FrameBuffers.instance_ids`` (1..65535).
        uid: Stable name within the scene, e.g. ``"clutter/3"`` or ``"arm/link4"``.
        category: Category name.
        labeled: Whether it is annotated (distractors are not, unless asked).
        bbox3d_center: Centre of its 3D box in the object frame, metres, shape (3,).
        bbox3d_size: Edge lengths of its 3D box in the object frame, metres, shape (3,).
        asset: The asset reference it came from (for BOP models and provenance).
        model: The visual parts it is drawn with, in its own frame (the frame of its pose): its 3D model
            (BOP's ``models/``). Empty when the backend cannot tell.
    """

    instance_id: int
    uid: str
    category: str
    labeled: bool
    bbox3d_center: tuple[float, float, float]
    bbox3d_size: tuple[float, float, float]
    asset: str = ""
    model: tuple[ModelPart, ...] = ()


@dataclass
class FrameBuffers:
    """Everything a backend returns for one rendered view.

    Attributes:
        rgb: uint8 array (H, W, 3).
        depth_m: float32 array (H, W), z-depth in metres, 0 where nothing was hit.
        instance_ids: uint16 array (H, W), 0 for background.
        K: float64 (3, 3) intrinsics.
        T_world_cam: float64 (4, 4) camera pose in the world (OpenCV camera axes).
        objects: The instances present in the scene, visible or not.
        object_poses: ``instance_id -> T_world_obj`` (4, 4) for every object in ``objects``.
        unoccluded_px: ``instance_id -> pixel count`` of each object rendered alone (no occluders),
            or ``None`` when visibility fractions were not asked for.
        unoccluded_masks: ``instance_id -> bool (H, W) mask`` of each object rendered alone (its full
            silhouette, what BOP calls ``mask/``), or ``None`` when visibility was not asked for.
    """

    rgb: np.ndarray
    depth_m: np.ndarray
    instance_ids: np.ndarray
    K: np.ndarray
    T_world_cam: np.ndarray
    objects: list[ObjectInfo]
    object_poses: dict[int, np.ndarray]
    unoccluded_px: dict[int, int] | None = None
    unoccluded_masks: dict[int, np.ndarray] | None = None
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.rgb.shape[1])


@dataclass
class ObjectAnnotation:
    """The labels of one object instance in one frame, computed from ``FrameBuffers`` alone.

    Boxes are COCO ``[x, y, w, h]`` in continuous pixel-edge coordinates: the image's top-left pixel
    corner is (0, 0) and pixel column ``i`` spans ``[i, i + 1]``.

    Attributes:
        instance_id: Its value in the instance mask.
        uid: Stable object name within the scene.
        category: Category name.
        bbox_visible: Tight box around the visible mask pixels; ``None`` when no pixel is visible.
        bbox_amodal: The object's full extent, clipped to the image: the box around its projected 3D box
            and its visible pixels (so it contains ``bbox_visible``, which rasterization can widen by up
            to half a pixel beyond the projection); ``None`` when the 3D box falls entirely outside the
            image or behind the camera and no pixel is visible.
        truncation: Fraction of the unclipped amodal box area that lies outside the image, in [0, 1].
        px_count_visible: Number of visible mask pixels.
        px_count_unoccluded: Pixels of the object rendered alone, or ``None`` if not computed.
        visibility: ``px_count_visible / px_count_unoccluded`` in [0, 1], or ``None`` if not computed.
        T_cam_obj: (4, 4) pose of the object in the camera frame (OpenCV axes), metres.
        quaternion_xyzw: Rotation part of ``T_cam_obj`` as a unit quaternion (x, y, z, w), w >= 0.
        bbox3d_size: Edge lengths of the object's 3D box, metres.
        bbox3d_center: Centre of the 3D box in the object frame, metres.
        rle: COCO RLE of the visible mask (``{"size": [h, w], "counts": str}``).
        flags: Why the object fell under a label filter (empty when it passed).
    """

    instance_id: int
    uid: str
    category: str
    bbox_visible: tuple[float, float, float, float] | None
    bbox_amodal: tuple[float, float, float, float] | None
    truncation: float
    px_count_visible: int
    px_count_unoccluded: int | None
    visibility: float | None
    T_cam_obj: np.ndarray
    quaternion_xyzw: tuple[float, float, float, float]
    bbox3d_size: tuple[float, float, float]
    bbox3d_center: tuple[float, float, float]
    rle: dict[str, object]
    flags: list[str] = field(default_factory=list)
