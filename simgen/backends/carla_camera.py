"""CARLA's cameras and frames in simgen's conventions: pure numpy, no server, no ``carla`` import.

CARLA (Unreal Engine 4) uses a *left-handed* frame: x forward, y right, z up, in metres; a rotation is
``(pitch, yaw, roll)`` in degrees, composed as ``carla.Transform.get_matrix`` does (:func:`ue_matrix` is the
same matrix, tested against it). simgen's frames are right-handed (:mod:`simgen.frame`), and its poses must
be rigid (rotation determinant +1), so every CARLA quantity is converted once, here:

* **World.** simgen's world is CARLA's with y flipped: ``p_world = S p_ue`` with ``S = diag(1, -1, 1)``
  (x forward, y left, z up, as ROS has it). The numbers change sign, the scene does not mirror.
* **Objects.** An actor's frame gets the same flip, so ``T_world_obj = S T_ue S`` is rigid; its 3D box
  centre is ``S`` times CARLA's ``bounding_box.location`` and its edge lengths are twice the ``extent``.
* **Cameras.** A CARLA camera looks along its +x axis with y right and z up. OpenCV's camera axes are
  x right, y down, z forward: ``p_cv = P p_ue_cam`` with :data:`UE_TO_CV_CAMERA`. So
  ``T_world_cam = S T_ue_sensor C`` with ``C = diag(P^T, 1)`` (determinant ``(-1)(+1)(-1) = +1``).
* **Intrinsics.** CARLA's ``fov`` is the *horizontal* field of view, pixels are square and the principal
  point is the image centre: ``fx = fy = W / (2 tan(fov / 2))``. Where that centre lies in pixel
  coordinates is simgen's pixel convention, decided in exactly one place, :func:`principal_point`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: CARLA (UE4, left-handed) world or object coordinates -> simgen's right-handed ones: flip y.
FLIP_Y = np.diag([1.0, -1.0, 1.0])
#: CARLA camera axes (x forward, y right, z up) -> OpenCV camera axes (x right, y down, z forward).
UE_TO_CV_CAMERA = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])

_S4 = np.diag([1.0, -1.0, 1.0, 1.0])
_C4 = np.eye(4)
_C4[:3, :3] = UE_TO_CV_CAMERA.T


def principal_point(size: int) -> float:
    """The image centre along one axis of ``size`` pixels, in the pixel coordinates ``K`` uses.

    The one place that decides simgen's pixel convention for CARLA cameras. simgen's ``K`` is OpenCV's
    (:mod:`simgen.frame`): the centre of pixel column ``i`` is at ``u = i``, so the centre of the image,
    where Unreal's optical axis meets it, is at ``(size - 1) / 2``. If simgen's convention changes, point
    this function at the shared helper; nothing else here needs to change.
    """
    return (float(size) - 1.0) / 2.0


def intrinsics(width: int, height: int, fov_deg: float) -> np.ndarray:
    """The pinhole ``K`` of a CARLA camera: square pixels, horizontal ``fov_deg``, principal point at the centre.

    Args:
        width: ``image_size_x``, pixels.
        height: ``image_size_y``, pixels.
        fov_deg: CARLA's ``fov`` attribute: the horizontal field of view in degrees, in (0, 180).

    Returns:
        (3, 3) float64.

    Raises:
        ValueError: A non-positive size or a field of view outside (0, 180).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"camera: expected a positive image size, got {width}x{height}")
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"camera.fov_deg: expected a horizontal field of view in (0, 180) degrees, got {fov_deg}")
    f = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    return np.array([[f, 0.0, principal_point(width)], [0.0, f, principal_point(height)], [0.0, 0.0, 1.0]])


def ue_matrix(location: Sequence[float], rotation: Sequence[float]) -> np.ndarray:
    """The (4, 4) matrix of a CARLA transform, exactly as ``carla.Transform.get_matrix`` builds it.

    Args:
        location: ``(x, y, z)`` in metres, CARLA's world (or parent) frame.
        rotation: ``(pitch, yaw, roll)`` in degrees.

    Returns:
        float64 (4, 4) mapping CARLA local coordinates to CARLA parent coordinates.
    """
    pitch, yaw, roll = (math.radians(float(a)) for a in rotation)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    cr, sr = math.cos(roll), math.sin(roll)
    M = np.eye(4)
    M[:3, :3] = [
        [cp * cy, cy * sp * sr - sy * cr, -cy * sp * cr - sy * sr],
        [cp * sy, sy * sp * sr + cy * cr, -sy * sp * cr + cy * sr],
        [sp, -cp * sr, cp * cr],
    ]
    M[:3, 3] = [float(v) for v in location]
    return M


def ue_rotation(R: np.ndarray) -> tuple[float, float, float]:
    """``(pitch, yaw, roll)`` in degrees of a rotation matrix built as :func:`ue_matrix` builds it.

    Pitch lies in [-90, 90]; at exactly +-90 degrees (gimbal lock) roll is set to 0.
    """
    m = np.asarray(R, dtype=np.float64)[:3, :3]
    pitch = math.degrees(math.asin(min(max(m[2, 0], -1.0), 1.0)))
    if abs(m[2, 0]) > 1.0 - 1e-12:
        yaw = math.degrees(math.atan2(-m[0, 1], m[1, 1]))  # roll = 0: column 1 is (-sy, cy, 0)
        return pitch, yaw, 0.0
    yaw = math.degrees(math.atan2(m[1, 0], m[0, 0]))
    roll = math.degrees(math.atan2(-m[2, 1], m[2, 2]))
    return pitch, yaw, roll


def transform_matrix(transform: object) -> np.ndarray:
    """The (4, 4) float64 matrix of a ``carla.Transform`` (or anything with ``get_matrix()``)."""
    return np.asarray(transform.get_matrix(), dtype=np.float64)  # type: ignore[attr-defined]


def world_pose(T_ue: np.ndarray) -> np.ndarray:
    """Simgen's ``T_world_obj`` (right-handed, rigid) of a CARLA actor's (4, 4) transform matrix."""
    return _S4 @ np.asarray(T_ue, dtype=np.float64) @ _S4


def ue_pose(T_world: np.ndarray) -> np.ndarray:
    """Inverse of :func:`world_pose`: the CARLA matrix of a simgen object pose."""
    return _S4 @ np.asarray(T_world, dtype=np.float64) @ _S4


def camera_pose(T_ue_sensor: np.ndarray) -> np.ndarray:
    """Simgen's ``T_world_cam`` (OpenCV camera axes) of a CARLA camera's (4, 4) transform matrix."""
    return _S4 @ np.asarray(T_ue_sensor, dtype=np.float64) @ _C4


def sensor_matrix(T_world_cam: np.ndarray) -> np.ndarray:
    """Inverse of :func:`camera_pose`: the CARLA transform matrix of a camera with simgen pose ``T_world_cam``."""
    return _S4 @ np.asarray(T_world_cam, dtype=np.float64) @ _C4.T


def world_points(points_ue: np.ndarray) -> np.ndarray:
    """CARLA world points (N, 3) in simgen's world (y flipped)."""
    return np.asarray(points_ue, dtype=np.float64) * np.array([1.0, -1.0, 1.0])


def pose_vector(T_world: np.ndarray) -> list[float]:
    """``[x, y, z, qx, qy, qz, qw]`` of a rigid (4, 4) pose (the shape :meth:`Backend.settle` reports)."""
    from simgen.labels.poses import rotation_to_quaternion_xyzw

    T = np.asarray(T_world, dtype=np.float64)
    return [float(v) for v in T[:3, 3]] + list(rotation_to_quaternion_xyzw(T[:3, :3]))


def box_in_object_frame(
    location: Sequence[float], extent: Sequence[float], rotation: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An actor's ``bounding_box`` as simgen sees it: the object frame, and the box centre and size in it.

    ``carla.BoundingBox.get_world_vertices(T)`` places the corners ``R_box (+-extent) + location`` in the
    actor frame and then applies ``T``. simgen's boxes are axis-aligned in the object frame, so the object
    frame is the actor frame turned by the box's rotation (the identity for every CARLA actor seen so far):
    ``T_actor_obj = [R_box, 0]`` and the centre in it is ``R_box^T location``.

    Args:
        location: ``bounding_box.location`` (x, y, z), metres, actor frame.
        extent: ``bounding_box.extent`` (half sizes), metres.
        rotation: ``bounding_box.rotation`` (pitch, yaw, roll), degrees.

    Returns:
        ``(T_actor_obj_ue, center, size)``: a CARLA (4, 4) matrix to right-multiply the actor's transform
        with (before :func:`world_pose`), and the centre and edge lengths in simgen's object frame.
    """
    T_box = ue_matrix((0.0, 0.0, 0.0), rotation)
    center_ue = T_box[:3, :3].T @ np.asarray(location, dtype=np.float64)
    size = 2.0 * np.abs(np.asarray(extent, dtype=np.float64))
    return T_box, FLIP_Y @ center_ue, size
