"""Pure numpy conversions between simgen's camera model and the matrices PyBullet renders with.

simgen's camera (see :mod:`simgen.frame`) is OpenCV's pinhole ``K`` in pixels with OpenCV axes (x right, y
down, z forward) and a pose ``T_world_cam``. Pixel coordinates are OpenCV's: pixel ``(col, row)`` has its
centre at ``(col, row)``, so the image spans ``[-0.5, W - 0.5]`` and a centred principal point is
``cx = (W - 1) / 2`` (:func:`simgen.randomizers.geometry.intrinsics_from_fov`). COCO boxes put ``(0, 0)`` at
the top-left *corner* instead: add 0.5 (:data:`simgen.labels.boxes.PIXEL_EDGE_OFFSET`).

PyBullet (both TinyRenderer and the EGL plugin) takes OpenGL matrices: a view matrix whose camera looks down
``-z`` with ``y`` up, and a projection matrix mapping to normalized device coordinates, both flattened
column-major into 16 floats.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: OpenCV camera axes -> OpenGL camera axes (flip y and z).
_CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def opengl_projection(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """The OpenGL projection matrix that renders exactly what the pinhole ``K`` sees.

    Handles a principal point away from the image centre and ``fx != fy``. Skew must be zero.

    Args:
        K: (3, 3) intrinsics in pixels, OpenCV's convention (``(0, 0)`` at the centre of the top-left pixel).
        width: Image width in pixels.
        height: Image height in pixels.
        near: Near clipping distance in metres (> 0).
        far: Far clipping distance in metres (> near).

    Returns:
        (4, 4) float64 projection matrix (row-major numpy; use :func:`gl_list` for PyBullet).

    Raises:
        ValueError: For a skewed ``K``, non-positive focal lengths or a bad near/far pair.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"camera.K: expected a 3x3 matrix, got shape {K.shape}")
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    if abs(skew) > 1e-12 * max(abs(fx), 1.0):
        raise ValueError(f"camera.K: skew must be 0 for PyBullet rendering, got {skew}")
    if fx <= 0 or fy <= 0:
        raise ValueError(f"camera.K: focal lengths must be positive, got fx={fx}, fy={fy}")
    if not 0 < near < far:
        raise ValueError(f"camera: expected 0 < near < far, got near={near}, far={far}")
    P = np.zeros((4, 4))
    # GL's viewport spans the pixel *edges*: x_ndc = 2e/W - 1 with e = u + 0.5 the pixel-edge coordinate of
    # OpenCV's u = fx x/z + cx. The GL camera has x_gl = x, z_gl = -z, w_clip = z.
    P[0, 0] = 2.0 * fx / width
    P[0, 2] = 1.0 - 2.0 * (cx + 0.5) / width
    # y_ndc = 1 - 2e/H with e = v + 0.5, v = fy y/z + cy (rows grow downwards); y_gl = -y.
    P[1, 1] = 2.0 * fy / height
    P[1, 2] = 2.0 * (cy + 0.5) / height - 1.0
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = -1.0
    return P


def opengl_view(T_world_cam: np.ndarray) -> np.ndarray:
    """The OpenGL view matrix (world -> GL camera) for a camera pose with OpenCV axes.

    Args:
        T_world_cam: (4, 4) camera pose in the world, OpenCV axes.

    Returns:
        (4, 4) float64 view matrix (row-major numpy; use :func:`gl_list` for PyBullet).
    """
    T = np.asarray(T_world_cam, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"camera.T_world_cam: expected a 4x4 matrix, got shape {T.shape}")
    return _CV_TO_GL @ invert_pose(T)


def gl_list(M: np.ndarray) -> list[float]:
    """Flatten a (4, 4) matrix column-major into the 16 floats PyBullet expects."""
    return [float(v) for v in np.asarray(M, dtype=np.float64).T.reshape(16)]


def depth_to_metres(depth_buffer: np.ndarray, near: float, far: float, hit: np.ndarray | None = None) -> np.ndarray:
    """Convert PyBullet's non-linear depth buffer to z-depth in metres along the optical axis.

    Args:
        depth_buffer: (H, W) depth buffer values ``d`` in [0, 1].
        near: Near clipping distance used to render.
        far: Far clipping distance used to render.
        hit: Optional (H, W) bool mask of pixels where something was hit; elsewhere the result is 0.
            Without it, pixels at ``d >= 1`` (the far plane, i.e. nothing) are set to 0.

    Returns:
        (H, W) float32 z-depth, ``z = far * near / (far - (far - near) * d)``, 0 where nothing was hit.
    """
    d = np.asarray(depth_buffer, dtype=np.float64)
    z = (far * near) / (far - (far - near) * d)
    miss = ~hit if hit is not None else d >= 1.0
    z[miss] = 0.0
    return z.astype(np.float32)


def pose_matrix(position: Sequence[float], quat_xyzw: Sequence[float]) -> np.ndarray:
    """A (4, 4) pose from a position and a unit quaternion (x, y, z, w)."""
    x, y, z, w = (float(q) for q in quat_xyzw)
    T = np.eye(4)
    T[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    T[:3, 3] = [float(p) for p in position]
    return T


def matrix_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """The unit quaternion (x, y, z, w), ``w >= 0``, of a (3, 3) rotation matrix (Shepperd's method)."""
    R = np.asarray(R, dtype=np.float64)
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    qa = np.asarray(q)
    qa /= np.linalg.norm(qa)
    if qa[3] < 0:
        qa = -qa
    return (float(qa[0]), float(qa[1]), float(qa[2]), float(qa[3]))


def quat_multiply(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Hamilton product ``a * b`` of two quaternions (x, y, z, w), in float64."""
    ax, ay, az, aw = (float(v) for v in a)
    bx, by, bz, bw = (float(v) for v in b)
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def compose_poses(
    pos_a: Sequence[float], quat_a: Sequence[float], pos_b: Sequence[float], quat_b: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """``a * b`` for poses given as (position, quaternion xyzw), in float64.

    PyBullet's ``multiplyTransforms`` and ``invertTransform`` work in float32 (errors ~1e-8); these do not.
    """
    R = pose_matrix((0.0, 0.0, 0.0), quat_a)[:3, :3]
    return np.asarray(pos_a, dtype=np.float64) + R @ np.asarray(pos_b, dtype=np.float64), quat_multiply(quat_a, quat_b)


def invert_pose_quat(pos: Sequence[float], quat: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of a pose given as (position, quaternion xyzw), in float64."""
    conj = np.array([-float(quat[0]), -float(quat[1]), -float(quat[2]), float(quat[3])])
    R_inv = pose_matrix((0.0, 0.0, 0.0), conj)[:3, :3]
    return -(R_inv @ np.asarray(pos, dtype=np.float64)), conj


def invert_pose(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (4, 4) pose."""
    T = np.asarray(T, dtype=np.float64)
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inv


def project_points(K: np.ndarray, T_world_cam: np.ndarray, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points with the pinhole model.

    Args:
        K: (3, 3) intrinsics.
        T_world_cam: (4, 4) camera pose, OpenCV axes.
        points_world: (N, 3) points in the world.

    Returns:
        ``(uv, z)``: (N, 2) OpenCV pixel coordinates (``(0, 0)`` at the centre of the top-left pixel) and (N,)
        z-depths.
    """
    T_cam_world = invert_pose(T_world_cam)
    pts = np.asarray(points_world, dtype=np.float64)
    cam = pts @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam @ np.asarray(K, dtype=np.float64).T)[:, :2] / z[:, None]
    return uv, z


def box_corners(center: Sequence[float], size: Sequence[float]) -> np.ndarray:
    """The 8 corners (8, 3) of an axis-aligned box given by its centre and edge lengths."""
    c = np.asarray(center, dtype=np.float64)
    h = np.asarray(size, dtype=np.float64) / 2.0
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    return c + signs * h
