"""Decoding of CARLA's BGRA camera images, on arrays written by hand byte by byte."""

from __future__ import annotations

import numpy as np
import pytest

from simgen.backends.carla_labels import (
    DEPTH_CODE_MAX,
    bgra_array,
    decode_depth,
    decode_instance,
    decode_rgb,
    id16,
    remap_instances,
)
from simgen.labels import depth_to_png_mm


def _bgra(pixels: list[list[tuple[int, int, int, int]]]) -> np.ndarray:
    """An (H, W, 4) uint8 array from rows of (B, G, R, A) tuples, as CARLA's raw_data lays them out."""
    return np.array(pixels, dtype=np.uint8)


def test_raw_data_bytes_are_rows_of_bgra() -> None:
    raw = bytes([1, 2, 3, 255, 4, 5, 6, 255, 7, 8, 9, 255, 10, 11, 12, 255, 13, 14, 15, 255, 16, 17, 18, 255])
    arr = bgra_array(raw, width=3, height=2)
    assert arr.shape == (2, 3, 4)
    assert decode_rgb(arr)[0, 1].tolist() == [6, 5, 4]  # B=4, G=5, R=6 -> RGB (6, 5, 4)
    assert decode_rgb(arr)[1, 2].tolist() == [18, 17, 16]
    with pytest.raises(ValueError, match="2x3x4 = 24 bytes, got 20"):
        bgra_array(raw[:20], width=3, height=2)


def test_depth_decodes_r_plus_256_g_plus_65536_b_over_1000_m() -> None:
    # (B, G, R, A). Code R + 256 G + 65536 B; metres = code / (256^3 - 1) * 1000.
    img = _bgra(
        [
            [(0, 0, 0, 255), (0, 0, 1, 255), (0, 1, 0, 255)],
            [(1, 0, 0, 255), (0x80, 0x00, 0x00, 255), (255, 255, 255, 255)],
        ]
    )
    depth = decode_depth(img)
    assert depth.dtype == np.float32
    unit = 1000.0 / 16777215.0  # metres per code
    assert depth[0, 0] == 0.0
    assert depth[0, 1] == pytest.approx(1 * unit, rel=1e-6)  # R = 1
    assert depth[0, 2] == pytest.approx(256 * unit, rel=1e-6)  # G = 1
    assert depth[1, 0] == pytest.approx(65536 * unit, rel=1e-6)  # B = 1: 3.906 m
    assert depth[1, 1] == pytest.approx(128 * 65536 * unit, rel=1e-6)  # B = 0x80: 500.00003 m
    assert depth[1, 2] == 0.0  # all 255: the sky, nothing hit
    # 12.5 m exactly: code 209715.1875 -> 209715 = 0x033333: B=0x03, G=0x33, R=0x33.
    code = round(12.5 / 1000.0 * DEPTH_CODE_MAX)
    assert code == 0x033333
    assert decode_depth(_bgra([[(0x03, 0x33, 0x33, 255)]]))[0, 0] == pytest.approx(12.5, abs=1e-4)
    assert depth_to_png_mm(decode_depth(_bgra([[(0x03, 0x33, 0x33, 255)]])))[0, 0] == 12500


def test_instance_decodes_tag_in_r_and_id_g_plus_256_b() -> None:
    # PR #8334's example pixel: B=159, G=49, R=14 is a car (tag 14) with actor id 159 * 256 + 49 = 40753.
    img = _bgra([[(159, 49, 14, 255), (0, 0, 11, 255), (1, 0, 12, 255), (0, 7, 7, 255)]])
    tags, ids = decode_instance(img)
    assert tags.dtype == np.uint8 and ids.dtype == np.uint16
    assert tags.tolist() == [[14, 11, 12, 7]]
    assert ids.tolist() == [[40753, 0, 256, 7]]
    assert id16(40753) == 40753 and id16(65536 + 7) == 7  # actor ids wrap at 16 bits in the image


def test_remap_turns_actor_ids_into_instance_ids_and_everything_else_into_background() -> None:
    tags = np.array([[14, 14, 3, 12], [14, 1, 12, 14]], dtype=np.uint8)
    ids = np.array([[500, 500, 500, 901], [4242, 0, 901, 500]], dtype=np.uint16)
    # Actor 500 is a car (instance 1), actor 901 a pedestrian (instance 2); 4242 is a parked car of the map.
    out, counts = remap_instances(tags, ids, {500: 1, 901: 2}, {1: frozenset({14}), 2: frozenset({12})})
    assert out.dtype == np.uint16
    assert out.tolist() == [[1, 1, 0, 2], [0, 0, 2, 1]]  # the building pixel (tag 3) that shares id 500 is rejected
    assert counts == {"tag_rejected": 1, "unmatched": 1}  # one car-tagged pixel of no tracked actor (4242)
    out, counts = remap_instances(tags, ids, {500: 1, 901: 2}, None)
    assert out.tolist() == [[1, 1, 1, 2], [0, 0, 2, 1]]
    assert counts["tag_rejected"] == 0
