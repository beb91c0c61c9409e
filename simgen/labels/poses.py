"""Rigid transforms and quaternions (x, y, z, w), as pure numpy functions."""

from __future__ import annotations

import math

import numpy as np

from simgen.labels.errors import LabelError

#: How far a pose's rotation may be from orthonormal before it is rejected.
RIGID_TOL = 1e-5


def check_rigid(T: np.ndarray, name: str) -> np.ndarray:
    """Return ``T`` as float64 after checking it is a rigid transform, or a stack (..., 4, 4) of them.

    Args:
        T: The transform(s) to check.
        name: What it is, for the error message (e.g. ``"T_world_cam"``).

    Raises:
        LabelError: Wrong shape, non-finite values, a last row other than ``[0, 0, 0, 1]`` or a
            rotation that is not orthonormal with determinant +1 (within :data:`RIGID_TOL`).
    """
    M = np.asarray(T, dtype=np.float64)
    if M.shape[-2:] != (4, 4):
        raise LabelError(f"{name}: expected (4, 4) transforms, got shape {M.shape}")
    R = M[..., :3, :3]
    bad_row = np.abs(M[..., 3, :] - (0.0, 0.0, 0.0, 1.0)).max(axis=-1) > RIGID_TOL
    bad_rot = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(axis=(-2, -1)) > RIGID_TOL
    bad_rot |= np.linalg.det(R) < 0
    bad = ~np.isfinite(M).all(axis=(-2, -1)) | bad_row | bad_rot
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0]) if M.ndim > 2 else ()
        what = M[where] if where else M
        at = f"[{', '.join(map(str, where))}]" if where else ""
        raise LabelError(
            f"{name}{at}: expected a rigid transform (finite, orthonormal rotation with det +1, "
            f"last row [0, 0, 0, 1]), got {what.tolist()}"
        )
    return M


def invert_rigid(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (4, 4) transform, exactly ``[R^T, -R^T t]`` (no general matrix inverse)."""
    M = np.asarray(T, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = M[:3, :3].T
    out[:3, 3] = -M[:3, :3].T @ M[:3, 3]
    return out


def camera_from_object(T_world_cam: np.ndarray, T_world_obj: np.ndarray) -> np.ndarray:
    """``T_cam_obj = inv(T_world_cam) @ T_world_obj``; broadcasts over a leading stack of objects."""
    return invert_rigid(T_world_cam) @ np.asarray(T_world_obj, dtype=np.float64)


def rotation_to_quaternion_xyzw(R: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion ``(x, y, z, w)`` of a rotation matrix, with ``w >= 0``.

    Shepperd's method: it divides by the largest of the four candidate components, so it stays
    accurate near 180-degree rotations where the trace formula loses all precision. At exactly
    ``w == 0`` the sign is fixed so that the first non-zero of ``(x, y, z)`` is positive, so every
    rotation has exactly one answer.

    Args:
        R: (3, 3) rotation matrix (or the top-left block of a rigid transform).

    Returns:
        ``(x, y, z, w)``, normalised.
    """
    m = np.asarray(R, dtype=np.float64)[:3, :3]
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = m.tolist()
    trace = m00 + m11 + m22
    if trace >= max(m00, m11, m22):
        s = 2.0 * math.sqrt(max(1.0 + trace, 0.0))
        w, x, y, z = 0.25 * s, (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s
    elif m00 >= m11 and m00 >= m22:
        s = 2.0 * math.sqrt(max(1.0 + m00 - m11 - m22, 0.0))
        w, x, y, z = (m21 - m12) / s, 0.25 * s, (m01 + m10) / s, (m02 + m20) / s
    elif m11 >= m22:
        s = 2.0 * math.sqrt(max(1.0 + m11 - m00 - m22, 0.0))
        w, x, y, z = (m02 - m20) / s, (m01 + m10) / s, 0.25 * s, (m12 + m21) / s
    else:
        s = 2.0 * math.sqrt(max(1.0 + m22 - m00 - m11, 0.0))
        w, x, y, z = (m10 - m01) / s, (m02 + m20) / s, (m12 + m21) / s, 0.25 * s
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    first = next((c for c in (x, y, z) if c != 0.0), 0.0)
    if w < 0.0 or (w == 0.0 and first < 0.0):
        x, y, z, w = -x, -y, -z, -w
    return x + 0.0, y + 0.0, z + 0.0, w + 0.0  # + 0.0 turns -0.0 into 0.0


def quaternion_xyzw_to_rotation(q: tuple[float, float, float, float] | np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix of a quaternion ``(x, y, z, w)`` (normalised first)."""
    x, y, z, w = (float(c) for c in np.asarray(q, dtype=np.float64) / np.linalg.norm(q))
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
