from __future__ import annotations

import numpy as np
import pytest

from simgen.labels import NEAR_M, amodal_box, box_corners, clip_extents, project_extents

W, H = 100, 80
# A centred camera in OpenCV's convention (cx = (W - 1) / 2): its optical axis meets the image centre, at
# COCO pixel-edge coordinate (W / 2, H / 2) = (50, 40).
K = np.array([[100.0, 0.0, 49.5], [0.0, 100.0, 39.5], [0.0, 0.0, 1.0]])


def _at(x: float, y: float, z: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    return T


def test_corners() -> None:
    c = box_corners(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]))
    assert c.shape == (8, 3)
    assert np.array_equal(c.min(axis=0), [0.0, 0.0, 0.0])
    assert np.array_equal(c.max(axis=0), [2.0, 4.0, 6.0])


def test_box_inside_the_image() -> None:
    # A 0.4 x 0.2 x 0.2 box 2 m ahead: its near face (z = 1.9) gives the extent.
    box, trunc = amodal_box(_at(0, 0, 2), K, np.zeros(3), np.array([0.4, 0.2, 0.2]), W, H)
    half_u, half_v = 100 * 0.2 / 1.9, 100 * 0.1 / 1.9
    assert box == pytest.approx((50 - half_u, 40 - half_v, 2 * half_u, 2 * half_v), abs=1e-9)
    assert trunc == 0.0


def test_box_centre_offset_in_the_object_frame() -> None:
    # Flat box: the extent is exact. Centre offset (0.1, 0, 0) in a frame rotated 90 deg about z.
    T = _at(0, 0, 2)
    T[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    box, _ = amodal_box(T, K, np.array([0.1, 0.0, 0.0]), np.array([0.2, 0.4, 0.0]), W, H)
    # object +x is camera +y: centre at v = 40 + 5, box 0.4 wide in u and 0.2 tall in v
    assert box == pytest.approx((40.0, 40.0, 20.0, 10.0), abs=1e-9)


def test_truncated_box() -> None:
    # Flat box spanning u in [90, 110] and v in [35, 45]: half of it lies right of the image.
    box, trunc = amodal_box(_at(1.0, 0, 2), K, np.zeros(3), np.array([0.4, 0.2, 0.0]), W, H)
    assert box == pytest.approx((90.0, 35.0, 10.0, 10.0), abs=1e-9)
    assert trunc == pytest.approx(0.5, abs=1e-12)


def test_box_outside_the_image_and_behind_the_camera() -> None:
    size = np.array([0.4, 0.2, 0.2])
    assert amodal_box(_at(3.0, 0, 2), K, np.zeros(3), size, W, H) == (None, 1.0)
    assert amodal_box(_at(0, 0, -2), K, np.zeros(3), size, W, H) == (None, 1.0)
    # touching the border exactly is not inside
    assert amodal_box(_at(1.2, 0, 2), K, np.zeros(3), np.array([0.4, 0.2, 0.0]), W, H) == (None, 1.0)


def test_box_straddling_the_camera_plane_is_clipped_in_3d() -> None:
    # x in [1, 1.2], y in [-0.1, 0.1], z in [-1, 4]: only the part with z >= NEAR_M is seen.
    # Its far end (x = 1, z = 4) sets the left edge at u = 50 + 100 * 1 / 4 = 75; the near end runs
    # off to the right and off the top and bottom. Projecting the corners behind the camera
    # instead would mirror them to the left (u = 50 - 100 * 1.2 = -70).
    box, trunc = amodal_box(_at(1.1, 0, 1.5), K, np.zeros(3), np.array([0.2, 0.2, 5.0]), W, H)
    assert box == pytest.approx((75.0, 0.0, 25.0, 80.0), abs=1e-9)
    unclipped = (50 + 100 * 1.2 / NEAR_M - 75.0) * (2 * 100 * 0.1 / NEAR_M)
    assert trunc == pytest.approx(1.0 - 25.0 * 80.0 / unclipped, rel=1e-12)
    ext = project_extents(_at(1.1, 0, 1.5), K, np.zeros((1, 3)), np.array([[0.2, 0.2, 5.0]]))
    assert ext[0] == pytest.approx([75.0, 40 - 100 * 0.1 / NEAR_M, 50 + 100 * 1.2 / NEAR_M, 40 + 100 * 0.1 / NEAR_M])


def test_box_around_the_camera_fills_the_image() -> None:
    box, trunc = amodal_box(np.eye(4), K, np.zeros(3), np.array([0.2, 0.2, 2.0]), W, H)
    assert box == (0.0, 0.0, 100.0, 80.0)
    assert trunc == pytest.approx(1.0 - 100 * 80 / (2 * 100 * 0.1 / NEAR_M) ** 2, rel=1e-12)


def test_degenerate_extents() -> None:
    boxes, truncs = clip_extents(np.array([[10, 10, 10, 10], [-10, 5, 10, 5], [np.nan] * 4, [50, 5, 150, 9]]), W, H)
    assert boxes == [(10.0, 10.0, 0.0, 0.0), (0.0, 5.0, 10.0, 0.0), None, (50.0, 5.0, 50.0, 4.0)]
    assert truncs == [0.0, 0.5, 1.0, 0.5]


def test_batch_matches_single() -> None:
    rng = np.random.default_rng(5)
    poses = np.stack([_at(*rng.uniform((-2, -2, -1), (2, 2, 5))) for _ in range(20)])
    centers, sizes = rng.normal(size=(20, 3)) * 0.1, rng.uniform(0.05, 1.5, size=(20, 3))
    boxes, truncs = clip_extents(project_extents(poses, K, centers, sizes), W, H)
    for n in range(20):
        assert (boxes[n], truncs[n]) == amodal_box(poses[n], K, centers[n], sizes[n], W, H)
