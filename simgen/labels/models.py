"""3D models of objects: triangle meshes of their visual parts, and the BOP model measures.

An object's model is the union of its :class:`~simgen.frame.ModelPart` s, each placed in the object's own
frame (the frame of its pose), so that ``R @ X + t`` with the object's pose maps model points into the
camera. Mesh parts are read from their files (Wavefront OBJ, STL) and scaled; primitives are tessellated
(:data:`SEGMENTS` segments around z, every vertex on the exact surface).

The BOP measures follow the BOP toolkit's definitions (``scripts/calc_model_info.py``): ``min_*`` and
``size_*`` are the axis-aligned bounds of the vertices, and the diameter is the largest distance between
two vertices (:func:`mesh_diameter`, exact).
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from simgen.errors import ModelError
from simgen.frame import MODEL_PART_KINDS, ModelPart
from simgen.labels.poses import quaternion_xyzw_to_rotation

#: Segments around z of tessellated spheres, cylinders and capsules (and half as many rings per sphere).
SEGMENTS = 48
#: Point pairs per block of :func:`mesh_diameter` (memory: about 16 bytes each).
_DIAMETER_PAIRS = 1 << 21

Mesh = tuple[np.ndarray, np.ndarray]


def read_mesh(path: str | Path) -> Mesh:
    """Vertices and triangles of a Wavefront OBJ or STL file, unscaled.

    OBJ polygons are split into triangle fans (as PyBullet's loader does); every ``v`` line is a vertex,
    whether a face uses it or not (simgen's 3D boxes count them all too). STL triangles share no vertices;
    equal vertices are merged.

    Args:
        path: The mesh file.

    Returns:
        ``(vertices, faces)``: (N, 3) float64 and (M, 3) int64 arrays, read-only (cached per file version).

    Raises:
        ModelError: The file cannot be read or parsed, or has another format.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise ModelError(f"cannot read mesh '{path}': {exc}") from exc
    return _read_mesh(str(p), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _read_mesh(path: str, mtime_ns: int, size: int) -> Mesh:
    suffix = Path(path).suffix.lower()
    try:
        data = Path(path).read_bytes()
        if suffix == ".obj":
            verts, faces = _parse_obj(data)
        elif suffix == ".stl":
            verts, faces = _parse_stl(data)
        else:
            raise ModelError(f"mesh '{path}': expected a .obj or .stl file, got '{suffix}'")
    except (OSError, ValueError, IndexError, struct.error) as exc:
        raise ModelError(f"cannot parse mesh '{path}': {exc}") from exc
    if verts.shape[0] == 0:
        raise ModelError(f"mesh '{path}' has no vertices")
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise ModelError(f"mesh '{path}': a face refers to a vertex that does not exist")
    verts.setflags(write=False)
    faces.setflags(write=False)
    return verts, faces


def _parse_obj(data: bytes) -> Mesh:
    verts: list[list[bytes]] = []
    faces: list[tuple[int, int, int]] = []
    for line in data.splitlines():
        head = line[:2]
        if head in (b"v ", b"v\t"):
            verts.append(line.split()[1:4])
        elif head in (b"f ", b"f\t"):
            # "f 1 2 3", "f 1/1 2/2 3/3", "f 1//1 ..."; negative indices count back from the last vertex.
            idx = [int(tok.split(b"/")[0]) for tok in line.split()[1:]]
            idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
            faces += [(idx[0], idx[k], idx[k + 1]) for k in range(1, len(idx) - 1)]
    return np.array(verts, dtype=np.float64).reshape(-1, 3), np.array(faces, dtype=np.int64).reshape(-1, 3)


def _parse_stl(data: bytes) -> Mesh:
    corners: np.ndarray | None = None
    if len(data) >= 84:
        (n,) = struct.unpack_from("<I", data, 80)
        if len(data) == 84 + 50 * n:
            records = np.frombuffer(data, dtype=np.uint8, count=50 * n, offset=84).reshape(n, 50)
            corners = records[:, 12:48].copy().view("<f4").reshape(-1, 3).astype(np.float64)
    if corners is None:
        rows = [line.split()[1:4] for line in data.splitlines() if line.strip().startswith(b"vertex")]
        corners = np.array(rows, dtype=np.float64).reshape(-1, 3)
    verts, inverse = np.unique(corners, axis=0, return_inverse=True)
    return verts, inverse.reshape(-1, 3).astype(np.int64)


def box_mesh(size: Sequence[float]) -> Mesh:
    """The 8 corners and 12 outward-facing triangles of a box centred at the origin (``size``: full edges)."""
    half = np.asarray(size, dtype=np.float64) / 2.0
    signs = np.array([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])
    faces = [  # corner k has bit 2 - j set when axis j is +: counter-clockwise seen from outside
        (0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5),  # x-, x+
        (0, 4, 5), (0, 5, 1), (2, 3, 7), (2, 7, 6),  # y-, y+
        (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3),  # z-, z+
    ]  # fmt: skip
    return signs * half, np.array(faces, dtype=np.int64)


def round_mesh(radius: float, straight: float = 0.0, *, flat_caps: bool = False) -> Mesh:
    """A sphere (``straight`` 0), a capsule or a flat-capped cylinder along z, every vertex on its surface.

    Args:
        radius: The radius.
        straight: Half the length of the straight part (a capsule's hemispheres are centred at
            ``+-straight``; a cylinder spans ``[-straight, straight]``).
        flat_caps: A cylinder (flat caps) instead of a sphere or capsule (round caps).

    Returns:
        ``(vertices, faces)``, with :data:`SEGMENTS` segments around z and a single vertex at each pole.
    """
    n = SEGMENTS
    rings: list[tuple[float, float]] = []  # (ring radius, z), top to bottom, poles excluded
    if flat_caps:
        rings = [(radius, straight), (radius, -straight)]
    else:
        half = n // 2
        for i in range(1, half):
            theta = math.pi * i / half
            dz = straight if 2 * i <= half else -straight
            rings.append((radius * math.sin(theta), radius * math.cos(theta) + dz))
            if straight > 0 and 2 * i == half:  # the equator again, lowered: the capsule's straight part
                rings.append((radius, -straight))
    phi = 2.0 * math.pi * np.arange(n) / n
    ring_pts = [np.stack([r * np.cos(phi), r * np.sin(phi), np.full(n, z)], axis=1) for r, z in rings]
    top = (0.0, 0.0, straight if flat_caps else radius + straight)
    bottom = (0.0, 0.0, -straight if flat_caps else -(radius + straight))
    verts = np.concatenate([np.array([top]), *ring_pts, np.array([bottom])])
    faces: list[tuple[int, int, int]] = []
    first, last = 1, 1 + n * (len(rings) - 1)
    for j in range(n):  # counter-clockwise seen from outside
        k = (j + 1) % n
        faces.append((0, first + j, first + k))
        faces.append((len(verts) - 1, last + k, last + j))
    for r in range(len(rings) - 1):
        a, b = 1 + n * r, 1 + n * (r + 1)
        for j in range(n):
            k = (j + 1) % n
            faces += [(a + j, b + j, b + k), (a + j, b + k, a + k)]
    return verts, np.array(faces, dtype=np.int64)


def part_mesh(part: ModelPart) -> Mesh:
    """The triangle mesh of one part in its own frame, metres.

    Raises:
        ModelError: An unknown kind, non-positive dimensions, or an unreadable mesh file.
    """
    kind = part.kind
    if kind not in MODEL_PART_KINDS:
        raise ModelError(f"model part: unknown kind '{kind}', expected one of {list(MODEL_PART_KINDS)}")
    if kind == "mesh":
        if not part.mesh_file:
            raise ModelError("model part: a 'mesh' part needs its mesh_file")
        verts, faces = read_mesh(part.mesh_file)
        return verts * np.asarray(part.scale, dtype=np.float64), faces
    if kind == "box":
        if min(part.size) <= 0:
            raise ModelError(f"model part: a box needs positive sizes, got {list(part.size)}")
        return box_mesh(part.size)
    if part.radius <= 0 or (kind != "sphere" and part.length < 0):
        raise ModelError(f"model part: a {kind} needs radius > 0 and length >= 0, got {part.radius}, {part.length}")
    if kind == "sphere":
        return round_mesh(part.radius)
    return round_mesh(part.radius, part.length / 2.0, flat_caps=kind == "cylinder")


def model_mesh(parts: Sequence[ModelPart]) -> Mesh:
    """The mesh of a whole model: every part placed in the object frame, metres.

    Raises:
        ModelError: No parts, or a part that cannot be meshed.
    """
    if not parts:
        raise ModelError("the object has no model parts (its backend gave no visual geometry)")
    all_verts, all_faces, offset = [], [], 0
    for part in parts:
        verts, faces = part_mesh(part)
        R = quaternion_xyzw_to_rotation(part.orientation)
        all_verts.append(verts @ R.T + np.asarray(part.position, dtype=np.float64))
        all_faces.append(faces + offset)
        offset += len(verts)
    return np.concatenate(all_verts), np.concatenate(all_faces)


def mesh_diameter(points: np.ndarray) -> float:
    """The largest distance between two points (BOP's model diameter), exact.

    Only points that can be an end of the diameter are compared pairwise, in blocks: the vertices of the
    convex hull when scipy is installed (the ``metrics`` extra), and, with or without it, those that pass
    a bound: a point ``p`` can be an end only if ``|p - c| + R >= D0``, with ``c`` the box centre, ``R``
    the largest ``|q - c|`` and ``D0`` a distance already found. The pruning changes only which pairs are
    compared, so the result is the same value either way.

    Args:
        points: (N, 3) points.

    Returns:
        The diameter (0 for fewer than two distinct points).
    """
    pts = np.unique(np.asarray(points, dtype=np.float64).reshape(-1, 3), axis=0)
    if len(pts) < 2:
        return 0.0
    pts = _hull_vertices(pts)
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2.0
    radius = np.sqrt(((pts - centre) ** 2).sum(axis=1))
    # A lower bound from the extreme points along the axes and the box diagonals.
    dirs = np.array([[x, y, z] for x in (-1, 0, 1) for y in (-1, 0, 1) for z in (-1, 0, 1) if (x, y, z) > (0, 0, 0)])
    proj = pts @ dirs.T
    ends = pts[np.unique(np.concatenate([proj.argmin(axis=0), proj.argmax(axis=0)]))]
    found = _max_sq_distance(ends, ends)
    keep = pts[radius + radius.max() >= math.sqrt(found) * (1 - 1e-12)]
    return math.sqrt(max(found, _max_sq_distance(keep, keep)))


def _hull_vertices(pts: np.ndarray) -> np.ndarray:
    """The convex hull's vertices (a subset holding both ends of the diameter), or all points without scipy."""
    try:
        from scipy.spatial import ConvexHull, QhullError
    except ImportError:
        return pts
    try:
        return pts[np.sort(ConvexHull(pts).vertices)]
    except (QhullError, ValueError):  # flat or degenerate: every point stays a candidate
        return pts


def _max_sq_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Largest squared distance between a row of ``a`` and one of ``b``, by blocks of rows.

    Each pair's value is ``dx² + dy² + dz²`` summed in that order, whatever block it falls in, so the
    result does not depend on which candidates were pruned.
    """
    best = 0.0
    rows = max(1, _DIAMETER_PAIRS // max(len(b), 1))
    for start in range(0, len(a), rows):
        block = a[start : start + rows]
        sq = np.zeros((len(block), len(b)))
        for k in range(3):
            d = block[:, None, k] - b[None, :, k]
            sq += d * d
        best = max(best, float(sq.max()))
    return best


def model_info(vertices_mm: np.ndarray) -> dict[str, float]:
    """BOP's ``models_info.json`` entry of a model: ``diameter``, ``min_x/y/z`` and ``size_x/y/z`` (mm)."""
    v = np.asarray(vertices_mm, dtype=np.float64)
    lo, hi = v.min(axis=0), v.max(axis=0)
    size = hi - lo
    return {
        "diameter": mesh_diameter(v),
        "min_x": float(lo[0]), "min_y": float(lo[1]), "min_z": float(lo[2]),
        "size_x": float(size[0]), "size_y": float(size[1]), "size_z": float(size[2]),
    }  # fmt: skip


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit vertex normals, the angle-weighted sum of the incident faces' normals (as MeshLab, which BOP cites).

    Vertices no face uses get (0, 0, 0).
    """
    v = np.asarray(vertices, dtype=np.float64)
    normals = np.zeros_like(v)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(f):
        face_n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        length = np.linalg.norm(face_n, axis=1, keepdims=True)
        face_n = np.divide(face_n, length, out=np.zeros_like(face_n), where=length > 0)
        for k in range(3):
            a = v[f[:, (k + 1) % 3]] - v[f[:, k]]
            b = v[f[:, (k + 2) % 3]] - v[f[:, k]]
            angle = np.arctan2(np.linalg.norm(np.cross(a, b), axis=1), (a * b).sum(axis=1))
            np.add.at(normals, f[:, k], face_n * angle[:, None])
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, norm, out=np.zeros_like(normals), where=norm > 0)
