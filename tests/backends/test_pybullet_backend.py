"""The PyBullet backend against its contract (simgen.backends.base) with both renderers.

Every geometric check compares a rendered image with the pinhole model computed independently in numpy.
EGL runs on Mesa llvmpipe where available; where the plugin cannot load, the EGL cases are skipped with the reason.
The ``tiny``, ``egl`` and ``backend`` fixtures (one backend per renderer for the session) live in conftest.py.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pybullet as p
import pytest

from simgen.backends import make_backend
from simgen.backends.base import Backend
from simgen.backends.pybullet_backend import PyBulletBackend
from simgen.backends.pybullet_camera import box_corners, matrix_quaternion, project_points
from simgen.backends.pybullet_geometry import mesh_vertices
from simgen.errors import AssetError, BackendUnavailable, RegistryError
from simgen.testing.pybullet_scenes import (
    DATA,
    K_CENTRED,
    H,
    W,
    fixture,
    look_at,
    look_down,
    obj,
    physics_snapshot,
    quat,
    scene,
    view,
)

K_SHIFTED = [[131.7, 0.0, 63.3], [0.0, 97.2, 71.9], [0.0, 0.0, 1.0]]  # fx != fy, principal point off-centre


def mask_centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])  # OpenCV pixel coordinates: pixel (col, row) is centred at (col, row)


@pytest.fixture(scope="module")
def two_link_urdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-link body: a two-tone base (two box visuals) with an inertial offset, and a child link on a fixed joint."""
    path = tmp_path_factory.mktemp("urdf") / "two_link.urdf"
    path.write_text(
        textwrap.dedent("""\
        <robot name="two_link">
          <material name="red"><color rgba="1 0 0 1"/></material>
          <material name="blue"><color rgba="0 0 1 1"/></material>
          <link name="base">
            <inertial><origin xyz="0.03 0.01 0" rpy="0 0 0"/><mass value="0.2"/>
              <inertia ixx="0.001" ixy="0" ixz="0" iyy="0.001" iyz="0" izz="0.001"/></inertial>
            <visual><origin xyz="0 0 0" rpy="0 0 0"/><geometry><box size="0.1 0.06 0.04"/></geometry>
              <material name="red"/></visual>
            <visual><origin xyz="0.07 0 0" rpy="0 0 0.5"/><geometry><box size="0.04 0.04 0.04"/></geometry>
              <material name="blue"/></visual>
            <collision><geometry><box size="0.1 0.06 0.04"/></geometry></collision>
          </link>
          <link name="arm">
            <inertial><origin xyz="0 0 0"/><mass value="0.05"/>
              <inertia ixx="0.0001" ixy="0" ixz="0" iyy="0.0001" iyz="0" izz="0.0001"/></inertial>
            <visual><origin xyz="0 0 0.05" rpy="0 0 0"/><geometry><cylinder radius="0.01" length="0.1"/></geometry>
              <material name="blue"/></visual>
          </link>
          <joint name="fix" type="fixed"><parent link="base"/><child link="arm"/>
            <origin xyz="-0.04 0 0.02" rpy="0.3 0 0"/></joint>
        </robot>
        """)
    )
    return path


# ---------------------------------------------------------------------------------------------- factory


def test_make_backend_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(RegistryError, match="did you mean 'pybullet'"):
        make_backend("pybulet")


def test_make_backend_pybullet_follows_the_protocol() -> None:
    backend = make_backend("pybullet", renderer="tiny")
    try:
        assert isinstance(backend, Backend)
        assert backend.name == "pybullet" and backend.renderer == "tiny"
    finally:
        backend.close()
    backend.close()  # idempotent
    with pytest.raises(BackendUnavailable, match="closed"):
        backend.build(scene([]))


def test_unknown_renderer_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ValueError, match="did you mean 'tiny'"):
        PyBulletBackend(renderer="tinyy")


def test_context_manager_closes() -> None:
    with PyBulletBackend(renderer="tiny") as backend:
        assert backend.client_id >= 0
    assert backend.client_id == -1


def test_importing_backends_imports_no_simulator() -> None:
    code = "import sys, simgen.backends; assert 'pybullet' not in sys.modules, 'pybullet imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fresh_backend_is_quiet_and_needs_no_warm_up() -> None:
    """In a fresh process nothing reaches stdout (EGL prints on load, first frames and exit), and the very
    first frame after a build already equals later ones (EGL's first frames lack shadows without a warm-up)."""
    code = textwrap.dedent("""
        import json, sys
        import numpy as np
        from simgen.backends import make_backend
        state, cam = json.loads(sys.stdin.read())
        b = make_backend("pybullet", renderer="auto")
        b.build(state)
        first, second = b.render(cam), b.render(cam)
        b.close()
        b2 = make_backend("pybullet", renderer="auto")  # never closed: the exit path must be quiet too
        b2.build(state)
        b2.render(cam)
        print(b.renderer, np.array_equal(first.rgb, second.rgb), flush=True)
    """)
    cube = obj("cube/0", path=DATA / "cube_small.urdf", position=(0.0, 0.0, 0.1), scale=3.0)
    payload = json.dumps([scene([cube], ground="plane"), view(look_at([0.5, -0.5, 0.8], [0.0, 0.0, 0.0]))])
    out = subprocess.run([sys.executable, "-c", code], input=payload, check=True, capture_output=True, text=True).stdout
    assert out.strip() in ("egl True", "tiny True"), out


# ---------------------------------------------------------------------------------------------- projection


@pytest.mark.parametrize("K", [K_CENTRED, K_SHIFTED], ids=["centred", "shifted-fx-ne-fy"])
def test_projection_matches_the_pinhole_model(backend: PyBulletBackend, K: list[list[float]]) -> None:
    """A thin plate parallel to the image: its mask centroid is the projection of its centre, its depth is known."""
    sizes = (0.3, 0.2, 0.004)
    centre = np.array([0.06, -0.04, 0.5])
    plate = obj(
        "plate/0", shape={"shape": "box", "size": list(sizes)}, position=tuple(centre), orientation=quat(0.0, 0.0, 0.4)
    )
    backend.build(scene([plate]))
    T = look_down(z=2.0)
    frame = backend.render(view(T, K))
    mask = frame.instance_ids == 1
    front = centre + np.array([0.0, 0.0, sizes[2] / 2])
    uv, z = project_points(np.asarray(K), T, front[None])
    err = mask_centroid(mask) - uv[0]
    assert np.abs(err).max() < 0.25, f"{backend.renderer}: centroid off by {err} px"
    expected_area = K[0][0] * K[1][1] * sizes[0] * sizes[1] / z[0] ** 2
    assert mask.sum() == pytest.approx(expected_area, rel=0.03)
    assert np.median(frame.depth_m[mask]) == pytest.approx(z[0], abs=1e-3)
    assert np.percentile(np.abs(frame.depth_m[mask] - z[0]), 90) < 1e-3
    # Nothing else was hit: depth 0 and instance 0 there; types as the contract says.
    assert np.all(frame.depth_m[~mask] == 0) and np.all(frame.instance_ids[~mask] == 0)
    assert frame.rgb.shape == (H, W, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth_m.dtype == np.float32 and frame.instance_ids.dtype == np.uint16
    assert frame.K.dtype == np.float64 and frame.T_world_cam.dtype == np.float64
    np.testing.assert_array_equal(frame.K, K)


def test_egl_refuses_images_it_would_upsample(egl: PyBulletBackend) -> None:
    assert egl.max_resolution == (1024, 768)
    with pytest.raises(BackendUnavailable, match="1024x768"):
        egl.render(view(look_down(), width=1280, height=960))


# ---------------------------------------------------------------------------------------------- build, boxes, frames


def test_boxes_poses_and_masks_agree(backend: PyBulletBackend, two_link_urdf: Path) -> None:
    """Each object's projected 3D box encloses its mask; poses are the asset's own (link) frame, not the COM."""
    objects = [
        obj(
            "duck/0",
            path=DATA / "duck_vhacd.urdf",
            position=(-0.25, -0.15, 0.1),
            orientation=quat(0.4, 0.2, 1.0),
            scale=2.0,
        ),  # URDF whose inertial frame is offset from its link frame
        obj(
            "rock/0",
            path=DATA / "random_urdfs/000/000.urdf",
            position=(0.0, -0.15, 0.1),
            orientation=quat(1.0, 0.3, 0.2),
            scale=1.5,
        ),
        obj(
            "cube/0",
            path=DATA / "cube_small.urdf",
            position=(0.25, -0.15, 0.1),
            orientation=quat(0.0, 0.0, 0.3),
            scale=2.0,
        ),
        obj(
            "mesh/0", path=DATA / "duck.obj", position=(-0.25, 0.15, 0.1), orientation=quat(1.5, 0.0, 0.5), scale=0.1
        ),  # a bare .obj: mesh frame is the pose, inertial frame at its box centre
        obj(
            "cyl/0",
            shape={"shape": "cylinder", "radius": 0.04, "length": 0.12},
            position=(0.0, 0.15, 0.1),
            orientation=quat(0.7, 0.4, 0.0),
        ),
        obj("two/0", path=two_link_urdf, position=(0.25, 0.15, 0.1), orientation=quat(0.2, 0.6, 0.9), scale=1.5),
        obj(
            "cap/0",
            shape={"shape": "capsule", "radius": 0.03, "length": 0.08},
            position=(0.05, 0.0, 0.1),
            orientation=quat(0.0, 1.2, 0.3),
        ),
    ]
    backend.build(scene(objects))
    T = look_at([0.3, -0.6, 0.9], [0.0, 0.0, 0.1])
    frame = backend.render(view(T))
    infos = {o.uid: o for o in frame.objects}
    assert [o.instance_id for o in frame.objects] == list(range(1, len(objects) + 1))
    assert set(np.unique(frame.instance_ids)) == set(range(len(objects) + 1))
    for spec in objects:
        info = infos[spec["uid"]]
        pose = frame.object_poses[info.instance_id]
        np.testing.assert_allclose(pose[:3, 3], spec["position"], atol=1e-12)
        q = np.asarray(matrix_quaternion(pose[:3, :3]))
        expected = np.asarray(spec["orientation"]) * np.sign(spec["orientation"][3] or 1.0)
        np.testing.assert_allclose(q, expected, atol=1e-12)
        corners = box_corners(info.bbox3d_center, info.bbox3d_size) @ pose[:3, :3].T + pose[:3, 3]
        uv, z = project_points(frame.K, frame.T_world_cam, corners)
        assert np.all(z > 0)
        rows, cols = np.nonzero(frame.instance_ids == info.instance_id)
        assert len(rows) > 30, info.uid
        tol = 0.5  # a pixel is drawn when its centre is covered; allow half a pixel for rasterization rules
        assert cols.min() >= uv[:, 0].min() - tol and cols.max() <= uv[:, 0].max() + tol, info.uid
        assert rows.min() >= uv[:, 1].min() - tol and rows.max() <= uv[:, 1].max() + tol, info.uid
        # ... and is not much larger than the mask's own extent (a frame offset would show up here too).
        assert (cols.max() - cols.min() + 1) > 0.6 * np.ptp(uv[:, 0]), info.uid
        assert (rows.max() - rows.min() + 1) > 0.6 * np.ptp(uv[:, 1]), info.uid

    duck = mesh_vertices(DATA / "duck.obj")
    assert duck is not None
    duck_centre = (duck.min(axis=0) + duck.max(axis=0)) / 2
    np.testing.assert_allclose(infos["duck/0"].bbox3d_center, duck_centre * 0.05 * 2.0, atol=1e-9)
    np.testing.assert_allclose(infos["duck/0"].bbox3d_size, np.ptp(duck, axis=0) * 0.05 * 2.0, atol=1e-9)
    np.testing.assert_allclose(infos["mesh/0"].bbox3d_center, duck_centre * 0.1, atol=1e-9)
    np.testing.assert_allclose(infos["cube/0"].bbox3d_size, [0.1, 0.1, 0.1], atol=1e-6)
    np.testing.assert_allclose(infos["cyl/0"].bbox3d_size, [0.08, 0.08, 0.12], atol=1e-12)
    np.testing.assert_allclose(infos["cap/0"].bbox3d_size, [0.06, 0.06, 0.14], atol=1e-12)
    # two_link: base box [-0.05, 0.05] x ..., the rotated blue cube reaches 0.07 + 0.02 * (cos .5 + sin .5) in x.
    reach = 0.07 + 0.02 * (math.cos(0.5) + math.sin(0.5))
    assert infos["two/0"].bbox3d_center[0] - infos["two/0"].bbox3d_size[0] / 2 == pytest.approx(-0.05 * 1.5, abs=1e-6)
    assert infos["two/0"].bbox3d_center[0] + infos["two/0"].bbox3d_size[0] / 2 == pytest.approx(reach * 1.5, abs=1e-6)
    assert infos["duck/0"].asset == str(DATA / "duck_vhacd.urdf") and infos["duck/0"].category == "duck"


def test_same_mesh_at_two_scales_renders_at_both(backend: PyBulletBackend) -> None:
    """EGL caches meshes by file name, ignoring scale; the backend must defeat that cache."""
    objects = [
        obj("cube/0", path=DATA / "cube_small.urdf", position=(-0.2, 0.0, 0.0), scale=2.0),
        obj("cube/1", path=DATA / "cube_small.urdf", position=(0.2, 0.0, 0.0), scale=4.0),
        obj("cube/2", path=DATA / "cube_small.urdf", position=(0.0, 0.25, 0.0), scale=2.0),
    ]
    backend.build(scene(objects))
    frame = backend.render(view(look_down(z=2.0)))
    small, large, small_again = (int((frame.instance_ids == i).sum()) for i in (1, 2, 3))
    assert large / small == pytest.approx(4.0, rel=0.15)
    assert abs(small_again - small) <= 0.1 * small
    np.testing.assert_allclose([o.bbox3d_size[0] for o in frame.objects], [0.1, 0.2, 0.1], atol=1e-6)


def test_frames_do_not_depend_on_what_was_built_before(backend: PyBulletBackend, two_link_urdf: Path) -> None:
    """Caches (3D boxes, EGL geometry) must not make a frame depend on earlier scenes of the same process."""

    def make(offset: float, yaw: float) -> dict[str, Any]:
        return scene(
            [
                obj(
                    "duck/0",
                    path=DATA / "duck_vhacd.urdf",
                    position=(offset, 0.0, 0.1),
                    orientation=quat(0.3, 0.1, yaw),
                    scale=1.7,
                ),
                obj(
                    "two/0",
                    path=two_link_urdf,
                    position=(-0.2, offset, 0.1),
                    orientation=quat(yaw, 0.5, 0.2),
                    scale=1.3,
                ),
                obj(
                    "two/1",
                    path=two_link_urdf,
                    position=(0.2, -offset, 0.1),
                    orientation=quat(0.1, yaw, 0.9),
                    scale=1.3,
                ),
            ]
        )

    cam = view(look_at([0.2, -0.5, 0.8], [0.0, 0.0, 0.1]))
    target = make(0.05, 0.7)
    backend.build(make(-0.1, 2.0))  # same assets and scales, other poses
    backend.render(cam)
    backend.build(target)
    again = backend.render(cam)
    backend._box_cache.clear()  # white box: start from a clean cache, as a fresh process would
    backend.build(target)
    fresh = backend.render(cam)
    assert again.objects == fresh.objects
    np.testing.assert_array_equal(again.rgb, fresh.rgb)
    np.testing.assert_array_equal(again.instance_ids, fresh.instance_ids)
    assert all(np.array_equal(again.object_poses[i], fresh.object_poses[i]) for i in fresh.object_poses)
    # Both instances of the multi-link asset got a box from their own visual data, and the boxes agree.
    two0, two1 = fresh.objects[1], fresh.objects[2]
    np.testing.assert_allclose(two0.bbox3d_size, two1.bbox3d_size, atol=1e-9)
    assert all(b.box_exact for b in backend._objects)


def test_unreadable_visual_falls_back_to_the_collision_box(
    tiny: PyBulletBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simgen.backends.pybullet_build as module

    monkeypatch.setattr(module, "visual_points", lambda *args: None)  # as for a Collada mesh
    tiny._box_cache.clear()
    orientation = quat(0.3, 0.2, 0.1)
    tiny.build(scene([obj("duck/0", path=DATA / "duck_vhacd.urdf", position=(0.1, 0.0, 0.1), orientation=orientation)]))
    tiny._box_cache.clear()
    record = tiny._objects[0]
    assert not record.box_exact
    info = record.info
    assert info is not None and all(0.02 < s < 0.2 for s in info.bbox3d_size)
    frame = tiny.render(view(look_down()), visibility=True)
    np.testing.assert_allclose(frame.object_poses[1][:3, 3], [0.1, 0.0, 0.1], atol=1e-12)  # pose restored
    assert frame.unoccluded_px == {1: int((frame.instance_ids == 1).sum())}


def test_colour_mass_ground_and_fixture(tiny: PyBulletBackend) -> None:
    objects = [
        obj(
            "cube/0",
            path=DATA / "cube_small.urdf",
            position=(0.0, 0.0, 0.8),
            scale=2.0,
            color=[1.0, 0.0, 0.0, 1.0],
            mass=0.7,
        )
    ]
    tiny.build(scene(objects, ground="plane", table=True))
    body = next(b for b in tiny._objects if b.instance_id == 1).body
    assert p.getDynamicsInfo(body, -1, physicsClientId=tiny.client_id)[0] == pytest.approx(0.7)
    frame = tiny.render(view(look_at([0.0, -1.5, 2.0], [0.0, 0.0, 0.6])))
    cube = frame.instance_ids == 1
    assert cube.sum() > 20
    r, g, b = (frame.rgb[cube][:, c].astype(float).mean() for c in range(3))
    assert r > 2 * g and r > 2 * b
    # Ground and table are drawn (depth > 0 everywhere) but are not instances.
    assert np.all(frame.depth_m > 0)
    assert set(np.unique(frame.instance_ids)) == {0, 1}


def test_build_refuses_bad_entries(tiny: PyBulletBackend, tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="needs a resolved 'path'"):
        tiny.build(scene([obj("x/0")]))
    stl = tmp_path / "thing.stl"
    stl.write_bytes(b"solid x\nendsolid x\n")
    with pytest.raises(AssetError, match=r"\.urdf or \.obj"):
        tiny.build(scene([obj("x/0", path=stl)]))
    with pytest.raises(AssetError, match="did you mean 'capsule'"):
        tiny.build(scene([obj("x/0", shape={"shape": "capsul", "radius": 0.1, "length": 0.1})]))
    with pytest.raises(AssetError, match="'radius' and 'length'"):
        tiny.build(scene([obj("x/0", shape={"shape": "cylinder", "radius": 0.1})]))
    with pytest.raises(AssetError, match="cannot load"):
        tiny.build(scene([obj("x/0", path=tmp_path / "missing.urdf")]))


def test_light_comes_from_its_direction(backend: PyBulletBackend) -> None:
    objects = [obj("cube/0", shape={"shape": "box", "size": [0.3, 0.3, 0.3]}, position=(0.0, 0.0, 0.0))]
    backend.build(scene(objects))
    T = look_down(z=2.0)
    top = {
        "direction": [0.0, 0.0, 1.0],
        "color": [1.0, 1.0, 1.0],
        "distance": 5.0,
        "ambient": 0.3,
        "diffuse": 0.7,
        "specular": 0.0,
        "shadows": False,
    }
    side = {**top, "direction": [1.0, 0.0, 0.0]}
    lit, grazed = (backend.render(view(T, light=light)) for light in (top, side))
    mask = lit.instance_ids == 1
    assert lit.rgb[mask].mean() > grazed.rgb[mask].mean() + 10


# ---------------------------------------------------------------------------------------------- physics


def _pile(two_link_urdf: Path | None = None) -> dict[str, Any]:
    assets = ["duck_vhacd.urdf", "cube_small.urdf", "random_urdfs/000/000.urdf", "sphere_small.urdf"]
    rng = np.random.default_rng(7)
    objects = []
    for i in range(8):
        q = rng.normal(size=4)
        objects.append(
            obj(
                f"clutter/{i}",
                path=DATA / assets[i % len(assets)],
                position=(rng.uniform(-0.15, 0.15), rng.uniform(-0.1, 0.1), 0.68 + 0.06 * i),
                orientation=tuple(q / np.linalg.norm(q)),
                scale=float(rng.uniform(0.9, 1.3)),
            )
        )
    objects.append(
        obj(
            "box/0",
            shape={"shape": "box", "size": [0.08, 0.05, 0.03]},
            position=(0.05, 0.05, 1.3),
            color=[0.2, 0.8, 0.2, 1.0],
        )
    )
    if two_link_urdf is not None:
        objects.append(obj("two/0", path=two_link_urdf, position=(-0.05, 0.0, 1.4), orientation=quat(0.3, 0.2, 0.1)))
    return scene(objects, ground="plane", table=True)


def test_settle_is_deterministic_across_builds_instances_and_processes(
    tiny: PyBulletBackend, two_link_urdf: Path
) -> None:
    pile = _pile(two_link_urdf)
    tiny.build(pile)
    first = tiny.settle()
    assert first["at_rest"] and 0 < first["steps"] < 1500
    assert list(first["poses"]) == list(pile["objects"])
    assert all(len(v) == 7 and all(isinstance(x, float) for x in v) for v in first["poses"].values())

    other = _pile()
    other["objects"]["box/0"]["position"] = [0.0, 0.0, 0.9]
    tiny.build(other)
    tiny.settle()
    tiny.build(pile)
    assert tiny.settle() == first, "a previous build leaked into this one"

    with PyBulletBackend(renderer="tiny") as fresh:
        fresh.build(pile)
        assert fresh.settle() == first

    code = textwrap.dedent("""
        import json, sys
        from simgen.backends.pybullet_backend import PyBulletBackend
        with PyBulletBackend(renderer="tiny") as b:
            b.build(json.loads(sys.stdin.read()))
            print(json.dumps(b.settle()))
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(pile), check=True, capture_output=True, text=True
    )
    assert json.loads(done.stdout) == first  # JSON keeps every float's repr, so this is bit-exact


def test_settle_does_not_depend_on_the_renderer(tiny: PyBulletBackend, egl: PyBulletBackend) -> None:
    pile = _pile()
    tiny.build(pile)
    egl.build(pile)
    assert egl.settle() == tiny.settle()


def test_one_egl_backend_per_process(egl: PyBulletBackend) -> None:
    """Closing a second EGL client corrupts the first one's rendering, so a second one is never started."""
    with pytest.raises(BackendUnavailable, match="one at a time"):
        PyBulletBackend(renderer="egl")
    with PyBulletBackend(renderer="auto") as fallback:
        assert fallback.renderer == "tiny"


# ---------------------------------------------------------------------------------------------- visibility


def test_visibility_counts_and_restores_everything(backend: PyBulletBackend, two_link_urdf: Path) -> None:
    pile = _pile(two_link_urdf)
    backend.build(pile)
    settled = backend.settle()
    cam = view(look_at([0.35, -0.45, 1.25], [0.0, 0.0, 0.65]))
    before = physics_snapshot(backend)
    plain = backend.render(cam)
    frame = backend.render(cam, visibility=True)
    assert physics_snapshot(backend) == before, "visibility renders changed the physics state"
    again = backend.render(cam)
    np.testing.assert_array_equal(again.rgb, plain.rgb)  # colours and bodies are back
    np.testing.assert_array_equal(again.instance_ids, plain.instance_ids)
    np.testing.assert_array_equal(frame.instance_ids, plain.instance_ids)
    assert frame.unoccluded_px is not None and plain.unoccluded_px is None
    assert frame.unoccluded_masks is not None and plain.unoccluded_masks is None
    assert set(frame.unoccluded_px) == set(frame.unoccluded_masks) == {o.instance_id for o in frame.objects}
    visible = np.bincount(frame.instance_ids.ravel(), minlength=len(frame.objects) + 1)
    assert all(frame.unoccluded_px[i] >= visible[i] for i in frame.unoccluded_px)
    assert any(frame.unoccluded_px[i] > visible[i] for i in frame.unoccluded_px), "nothing is occluded: weak test"
    assert 0 < frame.meta["visibility_renders"] <= len(frame.objects)
    # The full silhouettes come from the same renders as the counts (what the BOP writer checks), contain the
    # visible pixels, and needed no help from them (the union with the visible mask added nothing).
    for i, mask in frame.unoccluded_masks.items():
        assert mask.dtype == bool and mask.shape == frame.instance_ids.shape
        assert int(mask.sum()) == frame.unoccluded_px[i]
        assert not np.any((frame.instance_ids == i) & ~mask), i
    assert frame.meta["visibility_union_px"] == 0

    # The grouped renders must give what each object shows when it is alone in the world.
    for uid, pose in settled["poses"].items():
        alone = obj(
            uid,
            path=pile["objects"][uid]["path"],
            shape=pile["objects"][uid]["shape"],
            position=tuple(pose[:3]),
            orientation=tuple(pose[3:]),
            scale=pile["objects"][uid]["scale"],
        )
        backend.build(scene([alone]))
        solo = backend.render(cam)
        instance_id = list(pile["objects"]).index(uid) + 1
        assert abs(int((solo.instance_ids == 1).sum()) - frame.unoccluded_px[instance_id]) <= 1, uid
        assert int(((solo.instance_ids == 1) ^ frame.unoccluded_masks[instance_id]).sum()) <= 1, uid


def test_renderer_probe_agrees_with_the_backend() -> None:
    # Both in fresh processes (one EGL client per process): the probe's answer is what "auto" then gets.
    from simgen.backends import _probe_pybullet_auto

    code = "from simgen.backends.pybullet_backend import PyBulletBackend as B\nprint(B(renderer='auto').renderer)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert _probe_pybullet_auto() == proc.stdout.strip().splitlines()[-1]


def _red_quad(folder: Path, texture_width: int) -> Path:
    """A 1 m square OBJ quad facing +z whose material is a uniformly red texture ``texture_width`` x 4 pixels."""
    from simgen.writers.atomic import encode_png

    texture = np.zeros((4, texture_width, 3), dtype=np.uint8)
    texture[:, :, 0] = 255
    (folder / "red.png").write_bytes(encode_png(texture))
    (folder / "quad.mtl").write_text("newmtl red\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd red.png\n")
    (folder / "quad.obj").write_text(
        "mtllib quad.mtl\nv -0.5 -0.5 0\nv 0.5 -0.5 0\nv 0.5 0.5 0\nv -0.5 0.5 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvn 0 0 1\nusemtl red\nf 1/1/1 2/2/1 3/3/1\nf 1/1/1 3/3/1 4/4/1\n"
    )
    return folder / "quad.obj"


@pytest.mark.parametrize("texture_width", [5, 8])
def test_egl_draws_textures_of_any_width_unsheared(egl: PyBulletBackend, tmp_path: Path, texture_width: int) -> None:
    # PyBullet's EGL plugin uploads 8-bit RGB texture rows under GL_UNPACK_ALIGNMENT 4: a width that is not a
    # multiple of 4 was read 1-3 bytes further per row (a sheared image, channels rotated from row to row, and
    # an over-read past the pixel buffer that crashed bin_picking with SIGSEGV). A uniformly red texture must
    # draw red on every row.
    from simgen.backends.pybullet_egl import unpack_alignment

    assert unpack_alignment() == 1
    quad = _red_quad(tmp_path, texture_width)
    egl.build(scene([], fixtures=[fixture("quad", quad)]))
    frame = egl.render(view(look_down(z=0.6), width=64, height=48))
    rgb = frame.rgb[8:40, 16:48].reshape(-1, 3).astype(int)  # well inside the quad
    red = (rgb[:, 0] > 60) & (rgb[:, 0] > 3 * rgb[:, 1:].max(axis=1))
    assert red.all(), f"{int((~red).sum())} of {len(red)} pixels are not red, e.g. {rgb[~red][:3].tolist()}"
