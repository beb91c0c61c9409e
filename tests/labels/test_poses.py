from __future__ import annotations

import math

import numpy as np
import pytest

from simgen.labels import (
    LabelError,
    camera_from_object,
    check_rigid,
    invert_rigid,
    quaternion_xyzw_to_rotation,
    rotation_to_quaternion_xyzw,
)


def test_quaternion_round_trip_on_random_rotations() -> None:
    rng = np.random.default_rng(1234)
    for q in rng.normal(size=(500, 4)):
        q /= np.linalg.norm(q)
        q = q if q[3] >= 0 else -q
        R = quaternion_xyzw_to_rotation(q)
        got = np.array(rotation_to_quaternion_xyzw(R))
        assert got[3] >= 0
        assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-12)
        assert np.allclose(got, q, atol=1e-9)
        assert np.allclose(quaternion_xyzw_to_rotation(got), R, atol=1e-12)


def test_quaternion_near_and_at_half_turns() -> None:
    rng = np.random.default_rng(7)
    for axis in rng.normal(size=(50, 3)):
        axis /= np.linalg.norm(axis)
        for angle in (math.pi, math.pi - 1e-9):
            q = np.array([*(axis * math.sin(angle / 2)), math.cos(angle / 2)])
            got = np.array(rotation_to_quaternion_xyzw(quaternion_xyzw_to_rotation(q)))
            assert got[3] >= 0
            assert np.allclose(got, q, atol=1e-7) or np.allclose(got, -q, atol=1e-7)
    # exactly w == 0: one canonical answer, first non-zero of (x, y, z) positive
    assert rotation_to_quaternion_xyzw(np.diag([1.0, -1.0, -1.0])) == (1.0, 0.0, 0.0, 0.0)
    assert rotation_to_quaternion_xyzw(np.diag([-1.0, 1.0, -1.0])) == (0.0, 1.0, 0.0, 0.0)
    assert rotation_to_quaternion_xyzw(np.eye(3)) == (0.0, 0.0, 0.0, 1.0)


def test_camera_from_object_and_rigid_inverse() -> None:
    rng = np.random.default_rng(3)

    def random_pose() -> np.ndarray:
        q = rng.normal(size=4)
        T = np.eye(4)
        T[:3, :3] = quaternion_xyzw_to_rotation(q)
        T[:3, 3] = rng.normal(size=3)
        return T

    T_world_cam, T_world_obj = random_pose(), random_pose()
    assert np.allclose(invert_rigid(T_world_cam), np.linalg.inv(T_world_cam), atol=1e-12)
    assert np.allclose(camera_from_object(T_world_cam, T_world_obj), np.linalg.inv(T_world_cam) @ T_world_obj)
    stack = np.stack([T_world_obj, T_world_cam])
    assert camera_from_object(T_world_cam, stack).shape == (2, 4, 4)


def test_check_rigid_rejects_bad_transforms() -> None:
    good = np.eye(4)
    assert check_rigid(good, "T").dtype == np.float64
    scaled = np.diag([2.0, 1.0, 1.0, 1.0])
    mirrored = np.diag([-1.0, 1.0, 1.0, 1.0])
    with pytest.raises(LabelError, match="T_world_cam: expected a rigid"):
        check_rigid(scaled, "T_world_cam")
    with pytest.raises(LabelError, match="rigid"):
        check_rigid(mirrored, "T")
    with pytest.raises(LabelError, match=r"poses\[1\]"):
        check_rigid(np.stack([good, scaled]), "poses")
    with pytest.raises(LabelError, match="shape"):
        check_rigid(np.eye(3), "T")
    nan = np.eye(4)
    nan[0, 3] = np.nan
    with pytest.raises(LabelError):
        check_rigid(nan, "T")
