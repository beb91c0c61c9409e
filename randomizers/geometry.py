"""Small rotation and camera helpers shared by randomizers (numpy only)."""

from __future__ import annotations

import math

import numpy as np

from simgen.frame import centred_principal_point


def quat_from_euler(roll: float, pitch: float, yaw: float) -> list[float]:
    """Quaternion (x, y, z, w) of extrinsic X-Y-Z rotations (radians), as PyBullet's getQuaternionFromEuler."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return [
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
        cr * cp * cy + sr * sp * sy,
    ]


def random_quaternion(rng: np.random.Generator) -> list[float]:
    """A uniformly random rotation (normalised 4D Gaussian), as (x, y, z, w) with w >= 0."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return [float(v) for v in q]


def look_at(eye: np.ndarray, target: np.ndarray, roll_rad: float = 0.0) -> np.ndarray:
    """Camera pose ``T_world_cam`` (OpenCV axes: x right, y down, z forward) looking from ``eye`` at ``target``."""
    forward = target - eye
    norm = np.linalg.norm(forward)
    if norm < 1e-9:
        raise ValueError("camera eye and target coincide")
    forward = forward / norm
    up = np.array([0.0, 0.0, 1.0])
    if abs(float(forward @ up)) > 0.999:  # looking straight down or up: any horizontal "up" will do
        up = np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    if roll_rad:
        c, s = math.cos(roll_rad), math.sin(roll_rad)
        right, down = c * right + s * down, -s * right + c * down
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose


def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> np.ndarray:
    """Pinhole K for a vertical field of view, square pixels, principal point at the image centre.

    OpenCV's pixel convention (see :mod:`simgen.frame`): the centre of pixel column ``i`` is at ``u = i``, so
    the image centre is ``cx = (width - 1) / 2``. The field of view spans the full image, edge to edge.
    """
    fy = (height / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    cx, cy = centred_principal_point(width), centred_principal_point(height)
    return np.array([[fy, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def spherical(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector for an azimuth (from +x towards +y) and an elevation above the xy plane."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def as_list(a: np.ndarray) -> list:
    """A nested list of plain floats (JSON-serializable, no numpy scalars)."""
    return np.asarray(a, dtype=float).tolist()
