from __future__ import annotations

import numpy as np
import pytest

from simgen.labels import LabelError, depth_to_png_mm, png_mm_to_depth


def test_depth_round_trip_to_the_millimetre() -> None:
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.01, 60.0, size=(30, 40)).astype(np.float32)
    depth[0, :5] = 0.0
    mm = depth_to_png_mm(depth)
    assert mm.dtype == np.uint16
    assert np.all(mm[0, :5] == 0)
    back = png_mm_to_depth(mm)
    assert back.dtype == np.float32
    assert np.abs(back - depth).max() <= 0.0005 + 1e-6


def test_depth_special_values() -> None:
    depth = np.array([[0.0, 0.0001, 0.0015, 1.2344, 65.535, 70.0, np.inf, np.nan, -1.0]])
    assert depth_to_png_mm(depth).tolist() == [[0, 1, 2, 1234, 65535, 65535, 0, 0, 0]]


def test_depth_bad_input() -> None:
    with pytest.raises(LabelError, match="2D"):
        depth_to_png_mm(np.zeros(3))
    with pytest.raises(LabelError, match="uint16"):
        png_mm_to_depth(np.zeros((2, 2), np.int32))
