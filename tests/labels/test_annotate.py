from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from simgen.frame import FrameBuffers, ObjectInfo
from simgen.labels import NEAR_M, LabelError, annotate, quaternion_xyzw_to_rotation, rle_decode

W, H = 100, 80
K = np.array([[100.0, 0.0, 49.5], [0.0, 100.0, 39.5], [0.0, 0.0, 1.0]])  # centred, OpenCV: cx = (W - 1) / 2
FLAT = (0.4, 0.4, 0.0)  # a flat box facing the camera projects exactly


def _pose(x: float, y: float, z: float, R: np.ndarray | None = None) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = (x, y, z)
    if R is not None:
        T[:3, :3] = R
    return T


# A camera away from the origin, so that T_cam_obj = inv(T_world_cam) @ T_world_obj is exercised.
T_WORLD_CAM = _pose(1.0, -2.0, 0.5, quaternion_xyzw_to_rotation([0.3, -0.2, 0.5, 0.8]))
Q_OBJ = np.array([0.0, 0.0, np.sin(0.3), np.cos(0.3)])  # 0.6 rad about the camera's z axis


def _scene(*, unoccluded: bool = True) -> FrameBuffers:
    """Hand-built frame; every object's pose is given in the camera frame (see each comment)."""
    ids = np.zeros((H, W), np.uint16)
    ids[30:50, 40:60] = 1  # A: flat 0.4 m square 2 m ahead -> amodal [40, 30, 20, 20]
    ids[30:50, 50:70] = 2  # B in front of A covers A's right half -> A visible [40, 30, 10, 20]
    ids[35:45, 90:100] = 3  # C: half outside the image on the right
    ids[60, 20] = 4  # D: sub-pixel object, one pixel
    ids[0:5, 80:90] = 6  # F: straddles the camera plane; a little of it is visible
    ids[70:80, 0:10] = 7  # G: unlabeled distractor
    cam_poses = {
        1: _pose(0.0, 0.0, 2.0),
        2: _pose(0.2, 0.0, 1.5),
        3: _pose(1.0, 0.0, 2.0),
        4: _pose(-0.59, 0.41, 2.0, quaternion_xyzw_to_rotation(Q_OBJ)),  # projects to the centre of pixel (20, 60)
        5: _pose(0.0, 0.0, -2.0),  # E: behind the camera
        6: _pose(1.1, 0.0, 1.5),
        7: _pose(-1.0, 0.9, 2.0),
    }
    objects = [
        ObjectInfo(6, "clutter/6", "can", True, (0.0, 0.0, 0.0), (0.2, 0.2, 5.0)),
        ObjectInfo(1, "clutter/1", "box", True, (0.0, 0.0, 0.0), FLAT),
        ObjectInfo(2, "clutter/2", "box", True, (0.0, 0.0, 0.0), FLAT),
        ObjectInfo(3, "clutter/3", "can", True, (0.0, 0.0, 0.0), (0.4, 0.2, 0.0)),
        ObjectInfo(4, "clutter/4", "can", True, (0.0, 0.0, 0.0), (0.001, 0.001, 0.001)),
        ObjectInfo(5, "clutter/5", "box", True, (0.0, 0.0, 0.0), FLAT),
        ObjectInfo(7, "distractor/0", "rock", False, (0.0, 0.0, 0.0), FLAT),
    ]
    return FrameBuffers(
        rgb=np.zeros((H, W, 3), np.uint8),
        depth_m=np.ones((H, W), np.float32),
        instance_ids=ids,
        K=K,
        T_world_cam=T_WORLD_CAM,
        objects=objects,
        object_poses={i: T_WORLD_CAM @ T for i, T in cam_poses.items()},
        unoccluded_px={1: 400, 2: 400, 3: 100, 4: 1, 5: 0, 6: 2000, 7: 100} if unoccluded else None,
    )


def _by_id(anns: list) -> dict:
    return {a.instance_id: a for a in anns}


def test_occluded_object_keeps_its_amodal_box() -> None:
    a = _by_id(annotate(_scene()))[1]
    assert a.uid == "clutter/1" and a.category == "box"
    assert a.bbox_visible == (40.0, 30.0, 10.0, 20.0)
    assert a.bbox_amodal == pytest.approx((40.0, 30.0, 20.0, 20.0), abs=1e-9)
    assert a.truncation == pytest.approx(0.0, abs=1e-12)
    assert (a.px_count_visible, a.px_count_unoccluded, a.visibility) == (200, 400, 0.5)
    assert np.allclose(a.T_cam_obj, _pose(0.0, 0.0, 2.0), atol=1e-12)
    assert a.quaternion_xyzw == pytest.approx((0.0, 0.0, 0.0, 1.0), abs=1e-12)
    assert np.array_equal(rle_decode(a.rle), _scene().instance_ids == 1)
    json.dumps(a.rle)
    assert a.flags == []


def test_truncated_object() -> None:
    c = _by_id(annotate(_scene()))[3]
    assert c.bbox_amodal == pytest.approx((90.0, 35.0, 10.0, 10.0), abs=1e-9)
    assert c.truncation == pytest.approx(0.5, abs=1e-12)
    assert c.bbox_visible == (90.0, 35.0, 10.0, 10.0)


def test_sub_pixel_object_has_a_one_pixel_box_and_its_pose() -> None:
    d = _by_id(annotate(_scene()))[4]
    assert d.bbox_visible == (20.0, 60.0, 1.0, 1.0)
    assert d.px_count_visible == 1 and d.visibility == 1.0
    x, y, w, h = d.bbox_amodal
    assert w > 0 and h > 0 and x < 20.5 < x + w and y < 60.5 < y + h
    assert d.quaternion_xyzw == pytest.approx(tuple(Q_OBJ), abs=1e-12)
    assert np.allclose(d.T_cam_obj[:3, 3], (-0.59, 0.41, 2.0), atol=1e-12)


def test_object_straddling_the_camera_plane() -> None:
    f = _by_id(annotate(_scene()))[6]
    assert f.bbox_amodal == pytest.approx((75.0, 0.0, 25.0, 80.0), abs=1e-9)
    unclipped = (50 + 100 * 1.2 / NEAR_M - 75.0) * (2 * 100 * 0.1 / NEAR_M)
    assert f.truncation == pytest.approx(1.0 - 25.0 * 80.0 / unclipped, rel=1e-9)
    assert f.bbox_visible == (80.0, 0.0, 10.0, 5.0)


def test_object_behind_the_camera_is_dropped_or_flagged() -> None:
    assert 5 not in _by_id(annotate(_scene()))
    e = _by_id(annotate(_scene(), on_filtered="flag"))[5]
    assert e.bbox_visible is None and e.bbox_amodal is None and e.truncation == 1.0
    assert (e.px_count_visible, e.visibility) == (0, 0.0)
    assert e.flags == ["min_visible_px"]
    assert not rle_decode(e.rle).any()


def test_order_and_unlabeled_objects() -> None:
    anns = annotate(_scene())
    assert [a.instance_id for a in anns] == [1, 2, 3, 4, 6]  # 5: no pixel, 7: unlabeled


def test_filters_drop_versus_flag() -> None:
    kwargs = {"min_visible_px": 150, "min_visibility": 0.6}
    assert [a.instance_id for a in annotate(_scene(), **kwargs)] == [2]
    flagged = {a.instance_id: a.flags for a in annotate(_scene(), on_filtered="flag", **kwargs)}
    assert flagged == {
        1: ["min_visibility"],
        2: [],
        3: ["min_visible_px"],
        4: ["min_visible_px"],
        5: ["min_visible_px", "min_visibility"],
        6: ["min_visible_px", "min_visibility"],
    }


def test_without_unoccluded_counts_visibility_is_not_computed() -> None:
    anns = annotate(_scene(unoccluded=False), min_visibility=0.9)
    assert [a.instance_id for a in anns] == [1, 2, 3, 4, 6]
    assert all(a.visibility is None and a.px_count_unoccluded is None for a in anns)


def test_zero_unoccluded_pixels_gives_zero_visibility() -> None:
    buffers = _scene()
    buffers.unoccluded_px = {**buffers.unoccluded_px, 1: 0}
    assert _by_id(annotate(buffers))[1].visibility == 0.0


def test_bad_arguments_and_buffers() -> None:
    with pytest.raises(LabelError, match="did you mean 'drop'"):
        annotate(_scene(), on_filtered="dorp")  # type: ignore[arg-type]
    with pytest.raises(LabelError, match="min_visible_px"):
        annotate(_scene(), min_visible_px=-1)
    with pytest.raises(LabelError, match="min_visibility"):
        annotate(_scene(), min_visibility=1.5)
    b = _scene()
    del b.object_poses[3]
    with pytest.raises(LabelError, match=r"no pose for instance 3 \('clutter/3'\)"):
        annotate(b)
    b = _scene()
    b.objects.append(dataclasses.replace(b.objects[0], uid="twin"))
    with pytest.raises(LabelError, match="appears twice"):
        annotate(b)
    b = _scene()
    b.instance_ids = b.instance_ids[:, :50]
    with pytest.raises(LabelError, match="instance_ids"):
        annotate(b)
    b = _scene()
    b.object_poses[2] = b.object_poses[2] @ np.diag([2.0, 1.0, 1.0, 1.0])
    with pytest.raises(LabelError, match=r"object_poses\[2\] \('clutter/2'\)"):
        annotate(b)
    b = _scene()
    del b.unoccluded_px[1]
    with pytest.raises(LabelError, match="unoccluded_px"):
        annotate(b)


def test_no_labeled_objects() -> None:
    b = _scene()
    b.objects = [o for o in b.objects if not o.labeled]
    assert annotate(b) == []


def test_amodal_box_contains_the_pixels_rasterization_adds() -> None:
    """A pixel is drawn when its centre is covered, so the pixels can reach half a pixel past the projection.

    A's projection spans columns [40, 60] exactly; pixels drawn one column further on each side (their centres
    within half a pixel of the outline, as a rasterizer with its own rounding draws them) must stay inside.
    """
    buffers = _scene()
    ids = buffers.instance_ids.copy()
    ids[30:50, 39] = 1  # one column left of A's projected outline, none occluding
    buffers = dataclasses.replace(buffers, instance_ids=ids)
    a = _by_id(annotate(buffers))[1]
    assert a.bbox_visible == (39.0, 30.0, 11.0, 20.0)
    assert a.bbox_amodal == pytest.approx((39.0, 30.0, 21.0, 20.0), abs=1e-9)  # the projection, widened
    # With visibility renders, the unoccluded silhouette counts too: the hidden part's extra column as well.
    full = np.zeros((H, W), bool)
    full[30:50, 39:61] = True
    buffers = dataclasses.replace(buffers, unoccluded_masks={1: full})
    a = _by_id(annotate(buffers))[1]
    assert a.bbox_amodal == pytest.approx((39.0, 30.0, 22.0, 20.0), abs=1e-9)
    assert a.truncation == pytest.approx(0.0, abs=1e-12)  # truncation stays the projection's


def test_k_is_opencv_pixel_centres_and_boxes_are_pixel_edges() -> None:
    """A point on the optical axis of a centred OpenCV camera (cx = (W - 1) / 2) is the image centre: between
    pixels 49 and 50, at COCO pixel-edge coordinate 50 (it was 49.5 when K and boxes shared one convention)."""
    p = K @ np.array([0.0, 0.0, 2.0])
    assert p[:2] / p[2] == pytest.approx(((W - 1) / 2, (H - 1) / 2))
    buffers = _scene()
    buffers.instance_ids[buffers.instance_ids == 1] = 0  # no pixel: the amodal box is the projection alone
    tiny = [dataclasses.replace(o, bbox3d_size=(1e-6, 1e-6, 0.0)) if o.instance_id == 1 else o for o in buffers.objects]
    a = _by_id(annotate(dataclasses.replace(buffers, objects=tiny), min_visible_px=0))[1]
    assert a.bbox_visible is None
    assert a.bbox_amodal == pytest.approx((W / 2, H / 2, 0.0, 0.0), abs=1e-4)
