"""Labeled fixtures: a Franka Panda labeled per link, held joint angles, SDF fixtures, whole-body fixture instances.

Geometry is checked against hand-derived forward kinematics of panda.urdf and against the pinhole projection
of each link's own 3D box, computed independently in numpy.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pybullet as p
import pytest

from simgen.backends.pybullet_backend import PyBulletBackend
from simgen.backends.pybullet_camera import box_corners, pose_matrix, project_points
from simgen.errors import AssetError
from simgen.randomizers.robots import urdf_joint_limits, urdf_links

PANDA = "franka_panda/panda.urdf"
ANGLES = {
    "panda_joint1": 0.4,
    "panda_joint2": -0.3,
    "panda_joint3": 0.2,
    "panda_joint4": -2.0,
    "panda_joint5": 0.3,
    "panda_joint6": 1.9,
    "panda_joint7": 0.6,
    "panda_finger_joint1": 0.03,
    "panda_finger_joint2": 0.02,
}
BASE = (0.1, -0.05, 0.0)
YAW = 0.3
K = [[190.0, 0.0, 120.0], [0.0, 190.0, 90.0], [0.0, 0.0, 1.0]]


def panda_scene(pb: SimpleNamespace, *, labeled: bool = True) -> dict[str, Any]:
    arm = pb.fixture(
        "arm",
        pb.DATA / PANDA,
        position=list(BASE),
        orientation=list(pb.quat(0.0, 0.0, YAW)),
        labeled=labeled,
        category="panda",
        link_labels=labeled,
    )
    # A cube dropped onto the arm's forearm: contacts push on the joints while physics settles.
    cube = pb.obj("cube/0", path=pb.DATA / "cube_small.urdf", position=(0.25, 0.05, 0.75), scale=1.5)
    state = pb.scene([cube], ground="plane", fixtures=[arm])
    state["joints"] = {"arm": dict(ANGLES)}
    return state


def rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_panda_links_are_instances_with_their_own_poses_and_boxes(
    backend: PyBulletBackend, pb: SimpleNamespace
) -> None:
    state = panda_scene(pb)
    backend.build(state)
    settled = backend.settle()
    assert settled["steps"] > 20  # the cube really fell (onto the arm)

    # Joints are exactly where the scene state put them, after contacts pushed on them for the whole settle.
    arm = next(b for b in backend._bodies if b.uid == "arm")
    cid = backend.client_id
    for j in range(p.getNumJoints(arm.body, physicsClientId=cid)):
        name = p.getJointInfo(arm.body, j, physicsClientId=cid)[1].decode()
        if name in ANGLES:
            assert p.getJointState(arm.body, j, physicsClientId=cid)[0] == ANGLES[name], name

    T = pb.look_at([1.15, -0.85, 0.95], [0.05, 0.0, 0.45])
    frame = backend.render(pb.view(T, K, width=240, height=180), visibility=True)

    # Instances: the object first, then one per link with visual geometry, named as in the URDF.
    path = str(pb.DATA / PANDA)
    drawn = [link for link in urdf_links(path) if link not in ("panda_link8", "panda_grasptarget")]
    assert [o.uid for o in frame.objects] == ["cube/0", *(f"arm/{link}" for link in drawn)]
    assert [o.category for o in frame.objects[1:]] == [f"panda/{link}" for link in drawn]
    assert [o.instance_id for o in frame.objects] == list(range(1, len(drawn) + 2))
    assert all(o.labeled and o.asset == path for o in frame.objects[1:])
    links = {o.uid.split("/", 1)[1]: o for o in frame.objects[1:]}

    # Hand-checked poses (panda.urdf: joint1 at z 0.333 about z; joint2 rpy (-pi/2, 0, 0); joint3 at y -0.316).
    base = np.asarray(BASE)
    poses = {name: frame.object_poses[info.instance_id] for name, info in links.items()}
    np.testing.assert_allclose(poses["panda_link0"][:3, 3], base, atol=1e-9)
    np.testing.assert_allclose(poses["panda_link0"][:3, :3], rot_z(YAW), atol=1e-9)
    np.testing.assert_allclose(poses["panda_link1"][:3, 3], base + np.array([0.0, 0.0, 0.333]), atol=1e-6)
    np.testing.assert_allclose(poses["panda_link1"][:3, :3], rot_z(YAW + ANGLES["panda_joint1"]), atol=1e-6)
    q2 = ANGLES["panda_joint2"]
    offset = rot_z(YAW + ANGLES["panda_joint1"]) @ [0.316 * math.sin(q2), 0.0, 0.333 + 0.316 * math.cos(q2)]
    np.testing.assert_allclose(poses["panda_link3"][:3, 3], base + offset, atol=1e-6)

    # Each link's silhouette lies inside the projection of its own box, centred near the box's centre.
    assert frame.unoccluded_masks is not None and frame.unoccluded_px is not None
    occluded_somewhere = False
    for name, info in links.items():
        pose = poses[name]
        corners = box_corners(info.bbox3d_center, info.bbox3d_size) @ pose[:3, :3].T + pose[:3, 3]
        uv, z = project_points(frame.K, frame.T_world_cam, corners)
        assert np.all(z > 0)
        full = frame.unoccluded_masks[info.instance_id]
        visible = frame.instance_ids == info.instance_id
        rows, cols = np.nonzero(full)
        assert len(rows) > 15, name
        tol = 0.5  # a pixel is drawn when its centre is covered
        assert uv[:, 0].min() - tol <= cols.min() and cols.max() <= uv[:, 0].max() + tol, name  # OpenCV pixels
        assert uv[:, 1].min() - tol <= rows.min() and rows.max() <= uv[:, 1].max() + tol, name
        centre, _ = project_points(frame.K, frame.T_world_cam, (pose[:3, :3] @ info.bbox3d_center + pose[:3, 3])[None])
        extent = max(np.ptp(uv[:, 0]), np.ptp(uv[:, 1]))
        assert np.hypot(cols.mean() - centre[0, 0], rows.mean() - centre[0, 1]) < 0.25 * extent, name
        # Masks and counts from the same renders; the silhouette contains what is visible.
        assert int(full.sum()) == frame.unoccluded_px[info.instance_id]
        assert not np.any(visible & ~full), name
        occluded_somewhere |= bool(np.any(full & ~visible))
    assert occluded_somewhere, "no link hides another: weak test"
    assert frame.meta["visibility_union_px"] == 0  # the proxies drew every visible pixel themselves


def test_link_proxies_draw_exactly_the_link(tiny: PyBulletBackend, pb: SimpleNamespace) -> None:
    """TinyRenderer can hide single links by alpha 0: its link-alone render must equal the proxy's silhouette."""
    tiny.build(panda_scene(pb))
    T = pb.look_at([1.15, -0.85, 0.95], [0.05, 0.0, 0.45])
    cam = pb.view(T, K, width=240, height=180)
    frame = tiny.render(cam, visibility=True)
    assert frame.unoccluded_masks is not None
    cid = tiny.client_id
    arm = next(b for b in tiny._bodies if b.uid == "arm")
    others = [b for b in tiny._bodies if b is not arm]
    try:
        for b in others:
            for link, rgba in b.link_colors.items():
                p.changeVisualShape(b.body, link, rgbaColor=[*rgba[:3], 0.0], physicsClientId=cid)
        for inst in tiny._instances:
            if inst.link is None:
                continue
            for link, rgba in arm.link_colors.items():
                alpha = 1.0 if link == inst.link else 0.0
                p.changeVisualShape(arm.body, link, rgbaColor=[*rgba[:3], alpha], physicsClientId=cid)
            alone = tiny.render(cam).instance_ids == inst.instance_id
            proxy = frame.unoccluded_masks[inst.instance_id]
            assert int((alone ^ proxy).sum()) <= 1, inst.info.uid
    finally:
        tiny.build(pb.scene([]))  # colours changed behind the backend's back: leave a clean world


def test_joint_patches_are_checked(tiny: PyBulletBackend, pb: SimpleNamespace) -> None:
    state = panda_scene(pb)
    state["joints"] = {"arm": {"panda_joint9": 0.1}}
    with pytest.raises(AssetError, match=r"no movable joint 'panda_joint9'.*panda_joint1.*panda_finger_joint2"):
        tiny.build(state)
    state["joints"] = {"robot": {"panda_joint1": 0.1}}
    with pytest.raises(AssetError, match="no fixture 'robot'.*'arm'"):
        tiny.build(state)
    state["joints"] = {"arm": {"panda_joint1": "up"}}
    with pytest.raises(AssetError, match="expected a number"):
        tiny.build(state)
    # Every joint the randomizer may sample is one the backend accepts.
    state["joints"] = {
        "arm": {name: (lo + hi) / 2 for name, (lo, hi) in urdf_joint_limits(str(pb.DATA / PANDA)).items()}
    }
    tiny.build(state)


def test_unsampled_fixture_joints_are_held_too(tiny: PyBulletBackend, pb: SimpleNamespace) -> None:
    """A fixture is static: joints the scene state does not set stay at their initial positions under gravity."""
    state = panda_scene(pb, labeled=False)
    del state["joints"]
    tiny.build(state)
    tiny.settle()
    arm = next(b for b in tiny._bodies if b.uid == "arm")
    cid = tiny.client_id
    positions = [
        p.getJointState(arm.body, j, physicsClientId=cid)[0]
        for j in range(p.getNumJoints(arm.body, physicsClientId=cid))
    ]
    assert positions == [0.0] * len(positions)
    assert not tiny._instances[1:]  # unlabeled: no instance besides the cube


def shelf(pb: SimpleNamespace, **extra: Any) -> dict[str, Any]:
    return pb.fixture("shelf", pb.DATA / "kiva_shelf/model.sdf", **extra)


def test_sdf_fixture_is_placed_static_and_labeled(tiny: PyBulletBackend, pb: SimpleNamespace) -> None:
    cid = tiny.client_id
    tiny.build(pb.scene([], fixtures=[shelf(pb)]))
    lo0, hi0 = (np.asarray(v) for v in p.getAABB(tiny._bodies[0].body, physicsClientId=cid))
    link0 = pose_matrix(*tiny._link_pose(tiny._bodies[0]))
    np.testing.assert_allclose(link0[:3, 3], [0.0, 1.0, 0.0], atol=1e-12)  # the pose the SDF file declares

    at = np.array([0.4, -0.9, 0.02])
    placed = shelf(pb, position=at.tolist(), color=[0.2, 0.5, 0.9, 1.0], labeled=True, category="pod")
    # A cube dropped over the shelf's middle lands on a shelf board, not on the ground.
    cube = pb.obj("cube/0", path=pb.DATA / "cube_small.urdf", position=(0.4, 0.1, 1.5), scale=1.5)
    tiny.build(pb.scene([cube], ground="plane", fixtures=[placed]))
    body = tiny._bodies[1].body
    lo, hi = (np.asarray(v) for v in p.getAABB(body, physicsClientId=cid))
    np.testing.assert_allclose(lo, lo0 + at, atol=1e-9)
    np.testing.assert_allclose(hi, hi0 + at, atol=1e-9)
    before = p.getBasePositionAndOrientation(body, physicsClientId=cid)
    settled = tiny.settle()
    assert p.getBasePositionAndOrientation(body, physicsClientId=cid) == before
    assert settled["at_rest"] and settled["poses"]["cube/0"][2] > 0.5
    assert all(
        c == pytest.approx(e)
        for c, e in zip(p.getVisualShapeData(body, physicsClientId=cid)[0][7], [0.2, 0.5, 0.9, 1.0], strict=True)
    )

    # A rotation composes before the file's own pose: the shelf's link frame is T_fixture * T_sdf.
    yaw = pb.quat(0.0, 0.0, math.pi / 2)
    tiny.build(pb.scene([], fixtures=[shelf(pb, position=at.tolist(), orientation=list(yaw), labeled=True)]))
    T = pose_matrix(*tiny._link_pose(tiny._bodies[0]))
    np.testing.assert_allclose(T, pose_matrix(at, yaw) @ link0, atol=1e-9)

    # Labeled: one instance after the objects, with the category, a box from the visual mesh, and its pose.
    frame = tiny.render(pb.view(pb.look_at([3.5, -1.5, 2.0], [0.4, -0.9, 1.0])), visibility=True)
    (info,) = frame.objects
    assert (info.instance_id, info.uid, info.category) == (1, "shelf", "shelf")
    np.testing.assert_allclose(frame.object_poses[1], T, atol=1e-9)
    assert np.all(np.asarray(info.bbox3d_size) > 0.4) and (frame.instance_ids == 1).sum() > 100
    assert frame.unoccluded_px is not None and frame.unoccluded_px[1] == (frame.instance_ids == 1).sum()


def test_sdf_renders_with_egl(egl: PyBulletBackend, pb: SimpleNamespace) -> None:
    egl.build(pb.scene([], fixtures=[shelf(pb, labeled=True, scale=0.5)]))
    frame = egl.render(pb.view(pb.look_at([2.0, -1.0, 1.2], [0.0, 0.5, 0.4])))
    assert (frame.instance_ids == 1).sum() > 100


def test_sdf_objects_and_labeled_fixtures(tiny: PyBulletBackend, pb: SimpleNamespace) -> None:
    with pytest.raises(AssetError, match="static fixtures only"):
        tiny.build(pb.scene([pb.obj("pod/0", path=pb.DATA / "kiva_shelf/model.sdf")]))
    # A labeled fixture without link labels is one instance, after every object, with its own box.
    table = pb.fixture("table", pb.DATA / "table/table.urdf", labeled=True, category="furniture")
    cube = pb.obj("cube/0", path=pb.DATA / "cube_small.urdf", position=(0.0, 0.0, 0.8))
    tiny.build(pb.scene([cube], fixtures=[table]))
    frame = tiny.render(pb.view(pb.look_at([0.0, -2.0, 2.0], [0.0, 0.0, 0.5])))
    assert [(o.instance_id, o.uid, o.category) for o in frame.objects] == [
        (1, "cube/0", "cube"),
        (2, "table", "furniture"),
    ]
    assert set(np.unique(frame.instance_ids)) == {0, 1, 2}
    # table.urdf: a 1.5 x 1 x 0.05 top centred at z 0.6, legs 0.58 high from z 0: the box of the visual meshes.
    np.testing.assert_allclose(frame.objects[1].bbox3d_size, [1.5, 1.0, 0.625], atol=1e-9)
    np.testing.assert_allclose(frame.objects[1].bbox3d_center, [0.0, 0.0, 0.3125], atol=1e-9)
