from __future__ import annotations

import cv2
import numpy as np
import pytest

from simgen.labels import LabelError, empty_rle, instance_masks, mask_bbox, rle_decode, rle_encode


def _random_ids(rng: np.random.Generator, height: int, width: int, n: int) -> np.ndarray:
    ids = np.zeros((height, width), np.uint16)
    for i in range(1, n + 1):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(0, width // 3)), int(rng.integers(0, height // 3)))
        cv2.ellipse(ids, center, axes, float(rng.uniform(0, 180)), 0, 360, i, -1)
    speckle = rng.random((height, width)) < 0.01
    ids[speckle] = rng.integers(1, n + 1, size=int(speckle.sum()))
    return ids


def _check_against_reference(ids: np.ndarray) -> None:
    got = instance_masks(ids)
    present = sorted(int(i) for i in np.unique(ids) if i != 0)
    assert list(got) == present
    for i, m in got.items():
        mask = ids == i
        assert m.instance_id == i
        assert m.px_count == int(mask.sum())
        assert m.rle == rle_encode(mask)  # byte-identical to pycocotools.mask.encode
        assert m.bbox == mask_bbox(mask) == cv2.boundingRect(mask.astype(np.uint8))
        assert np.array_equal(rle_decode(m.rle), mask)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_instance_masks_match_pycocotools_and_opencv(seed: int) -> None:
    rng = np.random.default_rng(seed)
    _check_against_reference(_random_ids(rng, 48 + seed, 64 + 3 * seed, 12))


def test_instance_masks_edge_cases() -> None:
    ids = np.zeros((6, 5), np.uint16)
    ids[0, 0] = 3  # first pixel
    ids[5, 4] = 65535  # last pixel: no trailing zero run
    ids[4:, 1] = 7  # bottom of one column ...
    ids[:2, 2] = 7  # ... wraps to the top of the next: one run in column-major order
    ids[:, 3] = 9  # a full column
    _check_against_reference(ids)
    got = instance_masks(ids)
    assert got[7].bbox == (1, 0, 2, 6)
    assert got[65535].bbox == (4, 5, 1, 1)
    assert got[3].bbox == (0, 0, 1, 1)


def test_single_pixel_never_has_a_zero_area_box() -> None:
    ids = np.zeros((8, 10), np.uint16)
    ids[7, 5] = 2
    assert instance_masks(ids)[2].bbox == (5, 7, 1, 1)


def test_whole_image_and_empty_image() -> None:
    _check_against_reference(np.full((4, 3), 5, np.uint16))
    assert instance_masks(np.zeros((4, 3), np.uint16)) == {}
    assert instance_masks(np.zeros((0, 3), np.uint16)) == {}
    assert empty_rle(4, 3) == rle_encode(np.zeros((4, 3), bool))
    assert mask_bbox(np.zeros((4, 3), bool)) is None


def test_other_integer_dtypes() -> None:
    ids = np.zeros((5, 5), np.int32)
    ids[1:3, 2:4] = 70000
    assert instance_masks(ids)[70000].bbox == (2, 1, 2, 2)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(LabelError, match="2D"):
        instance_masks(np.zeros((2, 2, 2), np.uint16))
    with pytest.raises(LabelError, match="integer"):
        instance_masks(np.zeros((2, 2), np.float32))
    with pytest.raises(LabelError, match="negative"):
        instance_masks(np.full((2, 2), -1, np.int16))
