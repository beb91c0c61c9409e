"""3D models: mesh files, primitive tessellations, model placement, BOP's diameter and measures."""

from __future__ import annotations

import builtins
import math
import struct
from pathlib import Path

import numpy as np
import pybullet_data
import pytest

from simgen.frame import ModelPart
from simgen.labels import models as M
from simgen.labels.poses import quaternion_xyzw_to_rotation

DATA = Path(pybullet_data.getDataPath())


def _brute_diameter(points: np.ndarray) -> float:
    d = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((d**2).sum(axis=2)).max())


def _volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume (divergence theorem): positive for a closed mesh with outward, counter-clockwise faces."""
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def _closed(faces: np.ndarray) -> bool:
    """Every directed edge appears once and its reverse once: closed, consistently oriented."""
    edges = [(int(a), int(b)) for f in faces for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))]
    unique = set(edges)
    return len(unique) == len(edges) and all((b, a) in unique for a, b in edges)


def test_diameter_is_the_largest_vertex_distance_not_the_box_diagonal() -> None:
    """The box diagonal overstated it by 73% for the ball and 39% for the teddy."""
    ball, _ = M.read_mesh(DATA / "textured_sphere_smooth.obj")
    teddy, _ = M.read_mesh(DATA / "teddy2_VHACD_CHs.obj")
    for verts, box_excess in ((ball, 0.73), (teddy, 0.39)):
        d = M.mesh_diameter(verts)
        assert d == _brute_diameter(verts)
        assert np.linalg.norm(np.ptp(verts, axis=0)) / d - 1 == pytest.approx(box_excess, abs=0.01)
    cube, _ = M.box_mesh((0.1, 0.2, 0.3))
    assert M.mesh_diameter(cube) == pytest.approx(math.sqrt(0.14), rel=1e-15)
    assert M.mesh_diameter(M.round_mesh(0.5)[0]) == pytest.approx(1.0, rel=1e-15)  # pole to pole
    assert M.mesh_diameter(np.zeros((4, 3))) == 0.0


def test_diameter_is_the_same_value_with_and_without_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    clouds = [
        rng.normal(size=(400, 3)) * [3, 1, 0.5],
        rng.uniform(size=(300, 3)),
        np.c_[rng.normal(size=(50, 2)), np.zeros(50)],
    ]
    with_scipy = [M.mesh_diameter(c) for c in clouds]
    real_import = builtins.__import__

    def no_scipy(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    without = [M.mesh_diameter(c) for c in clouds]
    assert with_scipy == without == [_brute_diameter(c) for c in clouds]  # bit for bit


def test_obj_and_stl_files_are_read_with_their_faces(tmp_path: Path) -> None:
    obj = tmp_path / "quad.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvn 0 0 1\nf 1/1/1 2/1/1 3/1/1 4/1/1\nf -4 -2 -1\n")
    verts, faces = M.read_mesh(obj)
    assert verts.shape == (4, 3) and faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 2, 3]]
    tri = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    binary = tmp_path / "tri.stl"
    binary.write_bytes(b"\0" * 80 + struct.pack("<I", 1) + np.zeros(3, np.float32).tobytes() + tri.tobytes() + b"\0\0")
    ascii_stl = tmp_path / "tri_ascii.stl"
    ascii_stl.write_text("solid t\nfacet normal 0 0 1\nouter loop\n" + "".join(f"vertex {x} {y} {z}\n" for x, y, z in tri)
                         + "endloop\nendfacet\nendsolid t\n")  # fmt: skip
    for path in (binary, ascii_stl):
        verts, faces = M.read_mesh(path)
        assert np.array_equal(verts[faces[0]], tri)
    with pytest.raises(M.ModelError, match="cannot read mesh"):
        M.read_mesh(tmp_path / "missing.obj")
    (tmp_path / "bad.obj").write_text("v 0 0 0\nf 1 2 3\n")
    with pytest.raises(M.ModelError, match="does not exist"):
        M.read_mesh(tmp_path / "bad.obj")


@pytest.mark.parametrize(
    ("part", "volume"),
    [
        (ModelPart("box", size=(0.1, 0.2, 0.3)), 0.006),
        (ModelPart("sphere", radius=0.05), 4 / 3 * math.pi * 0.05**3),
        (ModelPart("cylinder", radius=0.05, length=0.2), math.pi * 0.05**2 * 0.2),
        (ModelPart("capsule", radius=0.05, length=0.2), math.pi * 0.05**2 * 0.2 + 4 / 3 * math.pi * 0.05**3),
    ],
    ids=["box", "sphere", "cylinder", "capsule"],
)
def test_primitives_are_closed_outward_meshes_on_their_surface(part: ModelPart, volume: float) -> None:
    verts, faces = M.part_mesh(part)
    assert _closed(faces)
    assert _volume(verts, faces) == pytest.approx(volume, rel=0.01)  # positive: faces point outwards
    r = np.hypot(verts[:, 0], verts[:, 1])
    if part.kind == "cylinder":  # rims and cap centres
        assert np.all(np.isclose(r, part.radius) | (r == 0)) and np.allclose(np.abs(verts[:, 2]), part.length / 2)
    elif part.kind != "box":  # at the radius from the axis segment |z| <= length / 2
        beyond = np.clip(np.abs(verts[:, 2]) - part.length / 2, 0, None)
        np.testing.assert_allclose(np.hypot(r, beyond), part.radius, rtol=1e-12)


def test_model_mesh_places_every_part_in_the_object_frame() -> None:
    q = (0.0, 0.0, math.sin(0.4), math.cos(0.4))
    parts = (
        ModelPart("box", position=(0.1, 0.0, 0.0), orientation=q, size=(0.02, 0.04, 0.06)),
        ModelPart("mesh", position=(0.0, 0.0, 0.2), mesh_file=str(DATA / "cube.obj"), scale=(0.05, 0.05, 0.1)),
    )
    verts, faces = M.model_mesh(parts)
    box, _ = M.box_mesh((0.02, 0.04, 0.06))
    cube, cube_faces = M.read_mesh(DATA / "cube.obj")
    np.testing.assert_allclose(verts[:8], box @ quaternion_xyzw_to_rotation(q).T + [0.1, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(verts[8:], cube * [0.05, 0.05, 0.1] + [0.0, 0.0, 0.2], atol=1e-15)
    assert faces[12:].min() == 8 and np.array_equal(faces[12:] - 8, cube_faces)
    with pytest.raises(M.ModelError, match="no model parts"):
        M.model_mesh(())
    with pytest.raises(M.ModelError, match="unknown kind 'cone'"):
        M.model_mesh((ModelPart("cone"),))


def test_model_info_and_normals() -> None:
    verts, faces = M.box_mesh((10.0, 20.0, 30.0))
    info = M.model_info(verts + np.array([1.0, 2.0, 3.0]))
    assert info == {"diameter": pytest.approx(math.sqrt(1400.0)), "min_x": -4.0, "min_y": -8.0, "min_z": -12.0,
                    "size_x": 10.0, "size_y": 20.0, "size_z": 30.0}  # fmt: skip
    normals = M.vertex_normals(verts, faces)
    np.testing.assert_allclose(normals, np.sign(verts) / math.sqrt(3), atol=1e-12)  # angle-weighted: the diagonal
