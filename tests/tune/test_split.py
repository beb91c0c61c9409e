"""The real set is split once, by seed and by image, stratified, with a clear error below the minimum."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from simgen.errors import OutputExistsError, SimgenError
from simgen.tune.split import MIN_IMAGES, split_real

CLASSES = ["a", "b", "c"]


def _real(root: Path, n: int, *, rare: int | None = None) -> Path:
    """``n`` 16x16 images; image i holds class i % 3 (class 'c' only in the first ``rare`` images when given)."""
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"im{i}.png"), np.full((16, 16, 3), i, np.uint8))
        images.append({"id": i + 10, "file_name": f"images/im{i}.png", "width": 16, "height": 16})
        cat = i % 3 + 1
        if rare is not None and cat == 3 and i >= rare:
            cat = 1
        anns.append(
            {"id": i + 1, "image_id": i + 10, "category_id": cat, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0}
        )
    cats = [{"id": k + 1, "name": c} for k, c in enumerate(CLASSES)] + [{"id": 9, "name": "unused"}]
    (root / "annotations.coco.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def _names(part: Path) -> list[str]:
    return [im["source_file_name"] for im in json.loads((part / "annotations.coco.json").read_text())["images"]]


def test_the_split_is_by_image_seeded_and_stratified(tmp_path):
    real = _real(tmp_path / "real", 30)
    s = split_real(real, tmp_path / "out", classes=CLASSES, seed=0, holdout=0.3)
    tune, held = _names(s.tune), _names(s.heldout)
    assert len(held) == 9 and len(tune) == 21 and not set(tune) & set(held)
    assert sorted(tune + held) == sorted(f"images/im{i}.png" for i in range(30))
    assert all(s.counts[p][c] >= 2 for p in ("tune", "heldout") for c in CLASSES)
    assert s.counts["heldout"] == {"a": 3, "b": 3, "c": 3}  # stratified: 30% of each class's 10 images
    # Each part is a COCO folder whose images exist and whose annotations are its own images'.
    coco = json.loads((s.heldout / "annotations.coco.json").read_text())
    ids = {im["id"] for im in coco["images"]}
    assert {a["image_id"] for a in coco["annotations"]} == ids
    assert all((s.heldout / im["file_name"]).is_file() for im in coco["images"])
    # Same seed: the same split; another seed: another split.
    again = split_real(real, tmp_path / "out2", classes=CLASSES, seed=0, holdout=0.3)
    assert _names(again.heldout) == held
    other = split_real(real, tmp_path / "out3", classes=CLASSES, seed=1, holdout=0.3)
    assert _names(other.heldout) != held


def test_a_split_is_reused_and_never_redone_with_other_settings(tmp_path):
    real = _real(tmp_path / "real", 30)
    first = split_real(real, tmp_path / "out", classes=CLASSES, seed=0)
    stamp = (first.heldout / "annotations.coco.json").stat().st_mtime_ns
    second = split_real(real, tmp_path / "out", classes=CLASSES, seed=0)
    assert second == first and (first.heldout / "annotations.coco.json").stat().st_mtime_ns == stamp
    with pytest.raises(OutputExistsError, match="different seed"):
        split_real(real, tmp_path / "out", classes=CLASSES, seed=5)


def test_too_few_real_images_is_a_clear_error_stating_the_minimum(tmp_path):
    with pytest.raises(
        SimgenError,
        match=rf"12 labeled images are too few.*at least {MIN_IMAGES} labeled images, "
        r"with at least 2 images of each category in each part",
    ):
        split_real(_real(tmp_path / "small", 12), tmp_path / "o1", classes=CLASSES)
    assert not (tmp_path / "o1" / "split.json").exists()
    # Enough images, but one category in too few of them for two per part.
    with pytest.raises(SimgenError, match=r"category 'c' is in only 1 images; need at least 20"):
        split_real(_real(tmp_path / "rare", 30, rare=3), tmp_path / "o2", classes=CLASSES)
    with pytest.raises(SimgenError, match="share 1 category name"):
        split_real(_real(tmp_path / "r3", 30), tmp_path / "o3", classes=["a", "zebra"])
