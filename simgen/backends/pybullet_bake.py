"""Textures baked into mesh materials: the only way the PyBullet 3.2.7 EGL plugin draws a texture correctly.

Measured (``tests/backends/test_pybullet_appearance.py``): with EGL, ``changeVisualShape(textureUniqueId=t)``
shows the right image only in the first build of a process. The plugin hands the texture's index in its own
list (emptied by every ``resetSimulation``) to its GL renderer, which indexes a list that is never emptied, so
from the second build on a texture draws the image that was loaded at that index in some earlier build. It
also passes a graphics *instance* id where a *shape* index is expected, so a body that shares cached geometry
shifts every later texture onto another body. ``changeTexture`` does not reach the plugin at all.

A texture that comes with a mesh's material (``map_Kd`` in its ``.mtl``) is bound when the mesh is loaded and
is always right. So, with EGL, a textured body is loaded from *baked* files, written once per
``(source, texture)`` into the texture cache folder (:func:`simgen.backends.pybullet_appearance.texture_cache_dir`):

* an OBJ mesh: a copy whose every face uses one material ``simgen`` with ``map_Kd <texture>.png``
  (vertices, texture coordinates and faces unchanged, so the 3D box and the silhouette are unchanged);
* a URDF: a copy whose visual OBJ meshes are baked copies (relative file names, so the EGL per-scale spelling
  of the URDF's path still reaches them) and whose other file names are absolute;
* a primitive (box, sphere, cylinder, capsule): a generated OBJ mesh with texture coordinates (each box face
  shows the whole texture; spheres, cylinders and capsules wrap it around z). Its collision shape stays the
  primitive, so physics is unchanged; the tessellation (48 segments around) differs slightly from PyBullet's
  own, so a baked primitive's silhouette differs from the untextured one by a pixel at most along the edge.

Visual meshes that are not OBJ files (STL, Collada) have no texture coordinates and are left untextured.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from simgen.backends.pybullet_appearance import texture_cache_dir, write_atomic
from simgen.errors import AssetError

logger = logging.getLogger(__name__)

#: Segments around the z axis of baked spheres, cylinders and capsules (and half as many rings per sphere).
SEGMENTS = 48
_MATERIAL = "simgen"


def _key(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(x) for x in parts).encode("utf-8")).hexdigest()[:32]


def _file_id(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def cached_texture(texture_png: str) -> str:
    """The texture's base name inside the cache folder (a user's image is copied there once, by content)."""
    src = Path(texture_png)
    folder = texture_cache_dir()
    if src.parent.resolve() == folder.resolve():
        return src.name
    return _copy_image(*_file_id(src), suffix=src.suffix.lower())


@functools.lru_cache(maxsize=1024)
def _copy_image(path: str, mtime_ns: int, size: int, suffix: str) -> str:
    data = Path(path).read_bytes()
    name = f"image-{hashlib.sha256(data).hexdigest()[:32]}{suffix}"
    target = texture_cache_dir() / name
    if not target.is_file():
        write_atomic(target, data)
    return name


def _material(name: str, texture: str) -> bytes:
    return (
        f"newmtl {_MATERIAL}\nKa 1.0 1.0 1.0\nKd 1.0 1.0 1.0\nKs 0.0 0.0 0.0\nd 1.0\nillum 1\nmap_Kd {texture}\n"
    ).encode()


def baked_obj(obj_path: str, texture_png: str) -> str:
    """A copy of an OBJ mesh drawn with the texture (see the module docstring); returns its absolute path.

    Raises:
        AssetError: The mesh or the texture cannot be read.
    """
    try:
        texture = cached_texture(texture_png)
        return _baked_obj(*_file_id(Path(obj_path)), texture=texture)
    except OSError as exc:
        raise AssetError(f"cannot bake texture {texture_png} into mesh {obj_path}: {exc}") from exc


@functools.lru_cache(maxsize=1024)
def _baked_obj(path: str, mtime_ns: int, size: int, *, texture: str) -> str:
    name = f"mesh-{_key('obj', path, mtime_ns, size, texture)}"
    folder = texture_cache_dir()
    target = folder / f"{name}.obj"
    if target.is_file():
        return str(target)
    out = [f"mtllib {name}.mtl"]
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        word = line.split(maxsplit=1)[0] if line.strip() else ""
        if word == "mtllib":
            continue
        out.append(f"usemtl {_MATERIAL}" if word == "usemtl" else line)
    if not any(line.startswith("usemtl") for line in out):
        out.insert(1, f"usemtl {_MATERIAL}")
    write_atomic(folder / f"{name}.mtl", _material(name, texture))
    write_atomic(target, ("\n".join(out) + "\n").encode("utf-8"))
    return str(target)


def baked_urdf(urdf_path: str, texture_png: str) -> str:
    """A copy of a URDF whose visual OBJ meshes are baked with the texture; returns its absolute path.

    Raises:
        AssetError: The URDF, one of its visual meshes or the texture cannot be read.
    """
    try:
        texture = cached_texture(texture_png)
        return _baked_urdf(*_file_id(Path(urdf_path)), texture=texture)
    except (OSError, ElementTree.ParseError) as exc:
        raise AssetError(f"cannot bake texture {texture_png} into {urdf_path}: {exc}") from exc


def _resolve(base: Path, filename: str) -> Path:
    """A URDF file reference as PyBullet finds it: the same lookup the asset sandbox checked at load time."""
    from simgen.assets import find_referenced_file

    found = find_referenced_file(base / "x.urdf", filename)
    return found if found is not None else (base / filename).resolve()


@functools.lru_cache(maxsize=256)
def _baked_urdf(path: str, mtime_ns: int, size: int, *, texture: str) -> str:
    folder = texture_cache_dir()
    target = folder / f"urdf-{_key('urdf', path, mtime_ns, size, texture)}.urdf"
    if target.is_file():
        return str(target)
    base = Path(path).parent
    tree = ElementTree.parse(path)
    root = tree.getroot()
    visual_meshes = {id(m) for visual in root.iter("visual") for m in visual.iter("mesh")}
    for element in root.iter():
        filename = element.get("filename")
        if not filename:
            continue
        source = _resolve(base, filename)
        if id(element) in visual_meshes and source.suffix.lower() == ".obj":
            element.set("filename", Path(_baked_obj(*_file_id(source), texture=texture)).name)
        else:
            if id(element) in visual_meshes:
                logger.info("%s: visual mesh %s is not an OBJ file; it stays untextured", path, source.name)
            element.set("filename", str(source))
    write_atomic(target, ElementTree.tostring(root, encoding="utf-8", xml_declaration=True))
    return str(target)


def baked_primitive(shape: Mapping[str, Any], half: np.ndarray, texture_png: str) -> str:
    """A textured OBJ mesh of a primitive shape with the given half extents; returns its absolute path."""
    kind = str(shape["shape"])
    try:
        texture = cached_texture(texture_png)
    except OSError as exc:
        raise AssetError(f"cannot read texture {texture_png}: {exc}") from exc
    dims = tuple(round(float(v), 12) for v in half)
    return _baked_primitive(kind, dims, texture)


@functools.lru_cache(maxsize=1024)
def _baked_primitive(kind: str, half: tuple[float, float, float], texture: str) -> str:
    folder = texture_cache_dir()
    name = f"{kind}-{_key(kind, *half, texture)}"
    target = folder / f"{name}.obj"
    if target.is_file():
        return str(target)
    if kind == "box":
        verts, uvs, normals, faces = _box(np.asarray(half))
    else:
        radius, half_z = half[0], half[2]
        straight = 0.0 if kind == "sphere" else half_z - (radius if kind == "capsule" else 0.0)
        verts, uvs, normals, faces = _round(radius, max(straight, 0.0), flat_caps=kind == "cylinder")
    lines = [f"mtllib {name}.mtl", f"o {name}"]
    lines += [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in verts]
    lines += [f"vt {u:.9g} {v:.9g}" for u, v in uvs]
    lines += [f"vn {x:.9g} {y:.9g} {z:.9g}" for x, y, z in normals]
    lines.append(f"usemtl {_MATERIAL}")
    lines += [" ".join(["f", *(f"{i + 1}/{i + 1}/{i + 1}" for i in tri)]) for tri in faces]
    write_atomic(folder / f"{name}.mtl", _material(name, texture))
    write_atomic(target, ("\n".join(lines) + "\n").encode("utf-8"))
    return str(target)


Mesh = tuple[
    list[tuple[float, float, float]],
    list[tuple[float, float]],
    list[tuple[float, float, float]],
    list[tuple[int, int, int]],
]


def _box(half: np.ndarray) -> Mesh:
    verts: list[tuple[float, float, float]] = []
    uvs: list[tuple[float, float]] = []
    normals: list[tuple[float, float, float]] = []
    faces: list[tuple[int, int, int]] = []
    eye = np.eye(3)
    # (normal, t1, t2) with t1 x t2 = normal, so (-,-), (+,-), (+,+), (-,+) runs counter-clockwise seen from outside.
    for n, t1, t2 in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        for sign in (1.0, -1.0):
            a, b = (t1, t2) if sign > 0 else (t2, t1)
            start = len(verts)
            for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = sign * eye[n] * half[n] + su * eye[a] * half[a] + sv * eye[b] * half[b]
                verts.append((float(p[0]), float(p[1]), float(p[2])))
                uvs.append(((su + 1) / 2.0, (sv + 1) / 2.0))
                normals.append(tuple(float(v) for v in sign * eye[n]))  # type: ignore[misc]
            faces += [(start, start + 1, start + 2), (start, start + 2, start + 3)]
    return verts, uvs, normals, faces


def _round(radius: float, straight: float, *, flat_caps: bool) -> Mesh:
    """A sphere (``straight`` 0), a capsule (hemispheres centred at +-``straight``) or a flat-capped cylinder.

    Rings run from the top (+z) to the bottom; each ring has ``SEGMENTS + 1`` vertices (the seam is duplicated
    for its texture coordinate), ``u`` goes around z and ``v`` up the height.
    """
    n = SEGMENTS
    # (ring radius, z, normal's z part and radial part) of each ring, top to bottom.
    rings: list[tuple[float, float, float, float]] = []
    if flat_caps:
        rings = [(radius, straight, 0.0, 1.0), (radius, -straight, 0.0, 1.0)]
    else:
        count = n // 2
        for i in range(count + 1):
            theta = math.pi * i / count
            sin_t, cos_t = (0.0, 1.0) if i == 0 else ((0.0, -1.0) if i == count else (math.sin(theta), math.cos(theta)))
            dz = straight if 2 * i <= count else -straight
            rings.append((radius * sin_t, radius * cos_t + dz, cos_t, sin_t))
            if straight > 0 and 2 * i == count:  # the equator again, lowered: the capsule's straight part
                rings.append((radius, -straight, 0.0, 1.0))
    top, bottom = rings[0][1], rings[-1][1]
    span = (top - bottom) or 1.0
    verts: list[tuple[float, float, float]] = []
    uvs: list[tuple[float, float]] = []
    normals: list[tuple[float, float, float]] = []
    faces: list[tuple[int, int, int]] = []
    rows = []
    for ring_radius, z, nz, nr in rings:
        row = []
        for j in range(n + 1):
            phi = 2.0 * math.pi * j / n
            c, s = math.cos(phi), math.sin(phi)
            row.append(len(verts))
            verts.append((ring_radius * c, ring_radius * s, z))
            uvs.append((j / n, (z - bottom) / span))
            normals.append((nr * c, nr * s, nz))
        rows.append(row)
    for upper, lower in itertools.pairwise(rows):
        for j in range(n):
            a, b, c, d = upper[j], lower[j], lower[j + 1], upper[j + 1]
            if upper is rows[0] and not flat_caps:  # the top pole: one triangle
                faces.append((a, b, c))
            elif lower is rows[-1] and not flat_caps:  # the bottom pole
                faces.append((a, b, d))
            else:
                faces += [(a, b, c), (a, c, d)]
    if flat_caps:
        for z, nz, rim_row in ((straight, 1.0, rows[0]), (-straight, -1.0, rows[1])):
            centre = len(verts)
            verts.append((0.0, 0.0, z))
            uvs.append((0.5, 0.5))
            normals.append((0.0, 0.0, nz))
            rim = []
            for j in range(n + 1):
                x, y, _ = verts[rim_row[j]]
                rim.append(len(verts))
                verts.append((x, y, z))
                uvs.append((0.5 + 0.5 * x / radius, 0.5 + 0.5 * y / radius))
                normals.append((0.0, 0.0, nz))
            for j in range(n):  # counter-clockwise seen from outside
                faces.append((centre, rim[j], rim[j + 1]) if nz > 0 else (centre, rim[j + 1], rim[j]))
    return verts, uvs, normals, faces


def clear_memo() -> None:
    """Forget the in-process memo of baked files (tests remove the cache folder)."""
    for fn in (_copy_image, _baked_obj, _baked_urdf, _baked_primitive):
        fn.cache_clear()
