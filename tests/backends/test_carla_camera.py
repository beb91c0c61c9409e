"""CARLA frames and projection, checked against the real client's classes and pixels computed by hand.

The hand-computed pixels use the pinhole of a 64x48 camera with a horizontal field of view of 90 degrees:
``f = 64 / (2 tan 45) = 32`` and the image centre at ``((64 - 1) / 2, (48 - 1) / 2) = (31.5, 23.5)``. A point
``(forward, right, up)`` metres from the camera lands at ``u = 31.5 + 32 right / forward`` and
``v = 23.5 - 32 up / forward`` (pixel centres at integers, as simgen's ``K``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simgen.backends.carla_camera import (
    FLIP_Y,
    box_in_object_frame,
    camera_pose,
    intrinsics,
    principal_point,
    sensor_matrix,
    ue_matrix,
    ue_pose,
    ue_rotation,
    world_points,
    world_pose,
)
from simgen.labels import NEAR_M, amodal_box, check_rigid
from simgen.labels.poses import invert_rigid

carla = pytest.importorskip("carla", reason="the carla client (pip install 'simgen[carla]') is not installed")

W, H = 64, 48


def _project(K: np.ndarray, T_world_cam: np.ndarray, points_world: np.ndarray) -> np.ndarray:
    cam = (invert_rigid(T_world_cam) @ np.c_[points_world, np.ones(len(points_world))].T).T[:, :3]
    uvw = cam @ K.T
    return uvw[:, :2] / uvw[:, 2:3]


def _vertices(bbox: carla.BoundingBox, transform: carla.Transform) -> np.ndarray:
    return np.array([[v.x, v.y, v.z] for v in bbox.get_world_vertices(transform)])


def test_intrinsics_of_a_90_degree_camera() -> None:
    K = intrinsics(W, H, 90.0)
    assert pytest.approx(np.array([[32.0, 0.0, 31.5], [0.0, 32.0, 23.5], [0.0, 0.0, 1.0]])) == K
    assert principal_point(W) == 31.5
    assert intrinsics(800, 600, 60.0)[0, 0] == pytest.approx(400.0 / math.tan(math.radians(30.0)))
    with pytest.raises(ValueError, match="fov_deg"):
        intrinsics(W, H, 180.0)


def test_ue_matrix_is_carlas_get_matrix() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        loc = rng.uniform(-100, 100, 3)
        pitch, yaw, roll = rng.uniform(-89, 89), rng.uniform(-180, 180), rng.uniform(-180, 180)
        t = carla.Transform(carla.Location(*loc), carla.Rotation(pitch=pitch, yaw=yaw, roll=roll))
        assert ue_matrix(loc, (pitch, yaw, roll)) == pytest.approx(np.array(t.get_matrix()), abs=1e-5)
        back = ue_rotation(ue_matrix(loc, (pitch, yaw, roll)))
        assert ue_matrix(loc, back) == pytest.approx(ue_matrix(loc, (pitch, yaw, roll)), abs=1e-9)


def test_axis_conversions_are_rigid_and_round_trip() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        T_ue = ue_matrix(rng.uniform(-50, 50, 3), (rng.uniform(-80, 80), rng.uniform(-180, 180), rng.uniform(-30, 30)))
        T_cam = camera_pose(T_ue)
        T_obj = world_pose(T_ue)
        check_rigid(T_cam, "T_world_cam")  # determinant +1: the flips cancel
        check_rigid(T_obj, "T_world_obj")
        assert np.linalg.det(T_cam[:3, :3]) == pytest.approx(1.0)
        assert sensor_matrix(T_cam) == pytest.approx(T_ue, abs=1e-12)
        assert ue_pose(T_obj) == pytest.approx(T_ue, abs=1e-12)
    # A camera at the origin looking along CARLA's +x: OpenCV z is CARLA x, OpenCV x is CARLA y (right),
    # OpenCV y is down; in simgen's (y-flipped) world, "right" is -y.
    T = camera_pose(np.eye(4))
    assert T[:3, :3] == pytest.approx(np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]))


def test_projection_of_real_bounding_box_vertices_matches_hand_computed_pixels() -> None:
    # Camera 2 m above the origin, looking along +x; a 2 x 1 x 1 m box centred 10 m ahead, 2 m right, at camera height.
    cam = carla.Transform(carla.Location(0.0, 0.0, 2.0), carla.Rotation())
    bbox = carla.BoundingBox(carla.Location(0.0, 0.0, 0.0), carla.Vector3D(1.0, 0.5, 0.5))
    actor = carla.Transform(carla.Location(10.0, 2.0, 2.0), carla.Rotation())
    uv = _project(intrinsics(W, H, 90.0), camera_pose(np.array(cam.get_matrix())), world_points(_vertices(bbox, actor)))
    # forward 9 or 11, right 1.5 or 2.5, up -0.5 or +0.5: u = 31.5 + 32 right / forward, v = 23.5 - 32 up / forward.
    expected = {
        (31.5 + 32 * 1.5 / 9, 23.5 + 32 * 0.5 / 9), (31.5 + 32 * 1.5 / 9, 23.5 - 32 * 0.5 / 9),
        (31.5 + 32 * 2.5 / 9, 23.5 + 32 * 0.5 / 9), (31.5 + 32 * 2.5 / 9, 23.5 - 32 * 0.5 / 9),
        (31.5 + 32 * 1.5 / 11, 23.5 + 32 * 0.5 / 11), (31.5 + 32 * 1.5 / 11, 23.5 - 32 * 0.5 / 11),
        (31.5 + 32 * 2.5 / 11, 23.5 + 32 * 0.5 / 11), (31.5 + 32 * 2.5 / 11, 23.5 - 32 * 0.5 / 11),
    }  # fmt: skip
    got = np.array(sorted(map(tuple, uv.tolist())))
    assert got == pytest.approx(np.array(sorted(expected)), abs=1e-4)
    assert uv[:, 0].max() == pytest.approx(31.5 + 80 / 9, abs=1e-5)  # 40.3889: nearest face, farthest right


def test_projection_of_turned_and_pitched_cameras() -> None:
    K = intrinsics(W, H, 90.0)
    # Yaw 90: the camera faces CARLA +y; its right is -x, so a point 10 m ahead and 1 m towards +x is on the left.
    cam = camera_pose(np.array(carla.Transform(carla.Location(), carla.Rotation(yaw=90.0)).get_matrix()))
    uv = _project(K, cam, world_points(np.array([[1.0, 10.0, 0.0]])))
    assert uv[0] == pytest.approx([31.5 - 3.2, 23.5], abs=1e-5)  # carla's matrices are float32
    # Pitch -30: looking down; a point 10 m ahead at camera height is 30 degrees above the optical axis,
    # and one along the axis lands on the principal point.
    cam = camera_pose(np.array(carla.Transform(carla.Location(), carla.Rotation(pitch=-30.0)).get_matrix()))
    pts = np.array([[10.0, 0.0, 0.0], [10 * math.cos(math.radians(30)), 0.0, -5.0]])
    uv = _project(K, cam, world_points(pts))
    assert uv[0] == pytest.approx([31.5, 23.5 - 32 * math.tan(math.radians(30))], abs=1e-5)
    assert uv[1] == pytest.approx([31.5, 23.5], abs=1e-5)


def test_object_frame_and_box_give_the_real_world_vertices() -> None:
    rng = np.random.default_rng(11)
    for rotation in [(0.0, 0.0, 0.0), (5.0, 30.0, -10.0)]:
        bbox = carla.BoundingBox(carla.Location(0.3, -0.2, 0.75), carla.Vector3D(2.4, 1.05, 0.75))
        bbox.rotation = carla.Rotation(pitch=rotation[0], yaw=rotation[1], roll=rotation[2])
        actor = carla.Transform(
            carla.Location(*rng.uniform(-50, 50, 3)),
            carla.Rotation(pitch=rng.uniform(-10, 10), yaw=rng.uniform(-180, 180), roll=rng.uniform(-10, 10)),
        )
        T_actor_obj, center, size = box_in_object_frame((0.3, -0.2, 0.75), (2.4, 1.05, 0.75), rotation)
        T_world_obj = world_pose(np.array(actor.get_matrix()) @ T_actor_obj)
        check_rigid(T_world_obj, "T_world_obj")
        corners = np.array([[sx, sy, sz] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (-0.5, 0.5)]) * size
        ours = (corners + center) @ T_world_obj[:3, :3].T + T_world_obj[:3, 3]
        real = world_points(_vertices(bbox, actor))
        # Same 8 points (float32 inside carla: a few micrometres), whatever the order.
        dist = np.linalg.norm(ours[:, None, :] - real[None, :, :], axis=2)
        assert dist.min(axis=1).max() < 1e-4
        assert dist.min(axis=0).max() < 1e-4
    assert FLIP_Y @ np.array([0.3, -0.2, 0.75]) == pytest.approx(
        box_in_object_frame((0.3, -0.2, 0.75), (1, 1, 1), (0, 0, 0))[1]
    )


def test_amodal_box_of_a_box_straddling_the_camera_plane_is_clipped_and_truncated() -> None:
    # A box from 1 m behind to 3 m ahead of the camera, 0.5 to 1.5 m to its right: the near plane cuts it.
    K = intrinsics(W, H, 90.0)
    cam = carla.Transform(carla.Location(0.0, 0.0, 0.0), carla.Rotation())
    actor = carla.Transform(carla.Location(1.0, 1.0, 0.0), carla.Rotation())
    T_actor_obj, center, size = box_in_object_frame((0.0, 0.0, 0.0), (2.0, 0.5, 0.5), (0.0, 0.0, 0.0))
    T_cam_obj = invert_rigid(camera_pose(np.array(cam.get_matrix()))) @ world_pose(
        np.array(actor.get_matrix()) @ T_actor_obj
    )
    box, truncation = amodal_box(T_cam_obj, K, center, size, W, H, near_m=NEAR_M)
    # Left edge: the nearest-left vertex in front is 3 m ahead, 0.5 m right: u = 31.5 + 32 * 0.5 / 3, plus the
    # half pixel between OpenCV's pixel centres and COCO's pixel edges. Everything else runs off the image.
    x0 = 31.5 + 32 * 0.5 / 3 + 0.5
    assert box == pytest.approx((x0, 0.0, W - x0, float(H)), abs=1e-9)
    assert truncation > 0.99
    # Entirely behind the camera: no box, fully truncated.
    behind = carla.Transform(carla.Location(-5.0, 0.0, 0.0), carla.Rotation())
    T_cam_obj = invert_rigid(camera_pose(np.array(cam.get_matrix()))) @ world_pose(np.array(behind.get_matrix()))
    assert amodal_box(T_cam_obj, K, center, size, W, H) == (None, 1.0)
