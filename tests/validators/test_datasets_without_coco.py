from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from simgen.errors import SimgenError
from simgen.validators.datasets import load_image_set


def test_a_simgen_dataset_without_coco_is_refused_not_mixed_with_depth_pngs(tmp_path: Path) -> None:
    """outputs.coco: false leaves images/, depth/ and instances/ side by side: never read them all as photos."""
    for sub in ("images", "depth", "instances"):
        (tmp_path / sub).mkdir()
        for i in range(3):
            cv2.imwrite(str(tmp_path / sub / f"{i:06d}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    (tmp_path / "dataset.json").write_text(json.dumps({"simgen_version": "0", "formats": []}))
    with pytest.raises(SimgenError, match=r"without annotations.coco.json .*pass .*images"):
        load_image_set(tmp_path)
    assert len(load_image_set(tmp_path / "images").paths) == 3
