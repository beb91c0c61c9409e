"""Vertex sets of PyBullet visual shapes, for exact 3D boxes of what is rendered.

A 3D box computed from the *visual* geometry encloses exactly the pixels the renderer draws; PyBullet's
``getAABB`` is computed from the *collision* geometry (often a convex decomposition or a plain box, plus a
margin) and so may be larger or smaller than the rendered mesh.
"""

from __future__ import annotations

import functools
import logging
import struct
from pathlib import Path

import numpy as np

from simgen.backends.pybullet_camera import matrix_quaternion
from simgen.frame import ModelPart

logger = logging.getLogger(__name__)

# PyBullet's geometry type codes (pybullet.GEOM_*), fixed by its C API.
GEOM_SPHERE = 2
GEOM_BOX = 3
GEOM_CYLINDER = 4
GEOM_MESH = 5
GEOM_PLANE = 6
GEOM_CAPSULE = 7


@functools.lru_cache(maxsize=512)
def _mesh_vertices_cached(path: str) -> np.ndarray | None:
    suffix = Path(path).suffix.lower()
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        logger.debug("cannot read mesh %s: %s", path, exc)
        return None
    try:
        if suffix == ".obj":
            verts = _obj_vertices(data)
        elif suffix == ".stl":
            verts = _stl_vertices(data)
        else:
            return None
    except (ValueError, struct.error) as exc:
        logger.debug("cannot parse mesh %s: %s", path, exc)
        return None
    if verts.size == 0:
        return None
    verts.setflags(write=False)
    return verts


def mesh_vertices(path: str | Path) -> np.ndarray | None:
    """All vertices of a Wavefront OBJ or STL mesh file, unscaled, as a read-only (N, 3) array.

    Results are cached per path. Returns None for other formats (Collada, VTK) or unreadable files, so the
    caller can fall back to another method.
    """
    return _mesh_vertices_cached(str(path))


def _obj_vertices(data: bytes) -> np.ndarray:
    rows = [line.split()[1:4] for line in data.splitlines() if line[:2] in (b"v ", b"v\t")]
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def _stl_vertices(data: bytes) -> np.ndarray:
    if len(data) >= 84:
        (n,) = struct.unpack_from("<I", data, 80)
        if len(data) == 84 + 50 * n:
            records = np.frombuffer(data, dtype=np.uint8, count=50 * n, offset=84).reshape(n, 50)
            return records[:, 12:48].copy().view("<f4").reshape(-1, 3).astype(np.float64)
    rows = [line.split()[1:4] for line in data.splitlines() if line.strip().startswith(b"vertex")]
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def visual_points(geometry_type: int, dimensions: tuple[float, ...], mesh_file: str) -> np.ndarray | None:
    """Points whose bounding box is the bounding box of one visual shape, in the shape's own frame.

    Args:
        geometry_type: ``pybullet.GEOM_*`` code from ``getVisualShapeData``.
        dimensions: Its ``dimensions`` field: the mesh scale, the box's full edge lengths, the sphere radius
            first, or ``(length, radius)`` for cylinders and capsules (both along z).
        mesh_file: Its mesh file name (empty for primitives).

    Returns:
        (N, 3) points, an empty (0, 3) array for shapes that draw nothing here (planes), or None when the
        geometry cannot be read (unknown mesh format, or PyBullet reported no data).
    """
    dims = np.asarray(dimensions, dtype=np.float64)
    if geometry_type == GEOM_MESH:
        if not mesh_file:
            return None
        verts = mesh_vertices(mesh_file)
        return None if verts is None else verts * dims[:3]
    if geometry_type == GEOM_BOX:
        half = dims[:3] / 2.0
    elif geometry_type == GEOM_SPHERE:
        half = np.full(3, dims[0])
    elif geometry_type in (GEOM_CYLINDER, GEOM_CAPSULE):
        length, radius = dims[0], dims[1]
        half_z = length / 2.0 + (radius if geometry_type == GEOM_CAPSULE else 0.0)
        half = np.array([radius, radius, half_z])
    elif geometry_type == GEOM_PLANE:
        return np.zeros((0, 3))
    else:
        return None
    signs = np.array([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])
    return signs * half  # all 8 corners: the visual frame may be rotated


def primitive_half_extents(shape: dict[str, object], scale: float) -> np.ndarray:
    """Half edge lengths of the box around a primitive shape spec (see :mod:`simgen.backends.base`)."""
    kind = shape.get("shape")
    if kind == "box":
        size = np.asarray(shape["size"], dtype=np.float64) * scale  # type: ignore[arg-type]
        return size / 2.0
    radius = float(shape["radius"]) * scale  # type: ignore[arg-type]
    if kind == "sphere":
        return np.full(3, radius)
    length = float(shape["length"]) * scale  # type: ignore[arg-type]
    half_z = length / 2.0 + (radius if kind == "capsule" else 0.0)
    return np.array([radius, radius, half_z])


def model_part(geometry_type: int, dimensions: tuple[float, ...], mesh_file: str, T: np.ndarray) -> ModelPart | None:
    """One visual shape as a :class:`~simgen.frame.ModelPart` placed at ``T`` (its frame in the object frame).

    Args:
        geometry_type: ``pybullet.GEOM_*`` code from ``getVisualShapeData``.
        dimensions: Its ``dimensions`` field (see :func:`visual_points`).
        mesh_file: Its mesh file name (empty for primitives).
        T: (4, 4) pose of the shape's frame in the object (base link) frame.

    Returns:
        The part, or None for a shape that draws no model geometry here (a plane) or is unknown.
    """
    dims = tuple(float(v) for v in dimensions)
    frame = {
        "position": tuple(float(v) for v in np.asarray(T, dtype=np.float64)[:3, 3]),
        "orientation": matrix_quaternion(np.asarray(T, dtype=np.float64)[:3, :3]),
    }
    if geometry_type == GEOM_MESH:
        return ModelPart("mesh", mesh_file=mesh_file, scale=dims[:3], **frame) if mesh_file else None  # type: ignore[arg-type]
    if geometry_type == GEOM_BOX:
        return ModelPart("box", size=dims[:3], **frame)  # type: ignore[arg-type]
    if geometry_type == GEOM_SPHERE:
        return ModelPart("sphere", radius=dims[0], **frame)  # type: ignore[arg-type]
    if geometry_type in (GEOM_CYLINDER, GEOM_CAPSULE):
        kind = "cylinder" if geometry_type == GEOM_CYLINDER else "capsule"
        return ModelPart(kind, length=dims[0], radius=dims[1], **frame)  # type: ignore[arg-type]
    return None
