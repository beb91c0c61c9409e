"""The label validator catches each planted error and never stops at the first (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from simgen.validators.labels import LabelCheckOptions, Problem, summarize_problems, validate_labels


def _coco(root: Path) -> dict:
    return json.loads((root / "annotations.coco.json").read_text())


def _save(root: Path, coco: dict) -> None:
    (root / "annotations.coco.json").write_text(json.dumps(coco))


def test_a_clean_dataset_has_no_problems(make_dataset):
    root = make_dataset("clean", n_frames=4)
    assert validate_labels(root) == []
    assert validate_labels(root / "annotations.coco.json") == []


def _plant_all(root: Path) -> dict[str, tuple[int | None, int | None]]:
    """Plant one error of each kind; return kind -> (image id, annotation id) expected."""
    coco = _coco(root)
    anns = coco["annotations"]
    img = {im["id"]: im for im in coco["images"]}
    planted: dict[str, tuple[int | None, int | None]] = {}

    def ann(k: int) -> dict:
        return anns[k]

    a = ann(0)
    a["bbox"] = [a["bbox"][0] + 90, a["bbox"][1], a["bbox"][2], a["bbox"][3]]  # leaves the 96-px image
    planted["bbox_out_of_bounds"] = (a["image_id"], a["id"])
    planted["mask_box_mismatch"] = (a["image_id"], a["id"])  # the moved box is no longer the mask's box
    a = ann(1)
    a["category_id"] = 42
    planted["category_id_invalid"] = (a["image_id"], a["id"])
    a = ann(2)
    a["visibility"] = 1.5
    planted["visibility_out_of_range"] = (a["image_id"], a["id"])
    a = ann(3)
    a["segmentation"] = {"size": a["segmentation"]["size"], "counts": "@@@this is not an RLE"}
    planted["rle_invalid"] = (a["image_id"], a["id"])
    a = ann(4)
    a["bbox"] = [10.0, 10.0, 0.0, 5.0]
    planted["bbox_degenerate"] = (a["image_id"], a["id"])
    a = ann(5)
    a["area"] = a["area"] * 3 + 50
    planted["area_mismatch"] = (a["image_id"], a["id"])
    a = ann(6)
    a["bbox"] = [1.0, 2.0, "wide", 3.0]
    planted["bbox_malformed"] = (a["image_id"], a["id"])
    a = ann(7)
    a["truncation"] = -0.2
    planted["truncation_out_of_range"] = (a["image_id"], a["id"])
    a = ann(8)
    a["instance_id"] = 99  # not in the instance PNG
    planted["instance_mask_mismatch"] = (a["image_id"], a["id"])
    a = ann(9)
    a["image_id"] = 777
    planted["image_id_unknown"] = (None, a["id"])
    # Depth: frame 2 loses its depth file, frame 3's depth is all zero, frame 4's is 8-bit.
    (root / img[3]["depth_file"]).unlink()
    planted["depth_missing"] = (3, None)
    cv2.imwrite(str(root / img[4]["depth_file"]), np.zeros((96, 96), np.uint16))
    planted["depth_empty"] = (4, None)
    cv2.imwrite(str(root / img[5]["depth_file"]), np.full((96, 96), 7, np.uint8))
    planted["depth_invalid"] = (5, None)
    # Frame 6: the object pixels have no depth.
    d = cv2.imread(str(root / img[6]["depth_file"]), cv2.IMREAD_UNCHANGED)
    inst = cv2.imread(str(root / img[6]["instance_file"]), cv2.IMREAD_UNCHANGED)
    d[inst > 0] = 0
    cv2.imwrite(str(root / img[6]["depth_file"]), d)
    planted["depth_holes"] = (6, None)
    # Frame 7 declares the wrong size; frame 8's image is missing.
    img[7]["width"] = 128
    planted["image_size_mismatch"] = (7, None)
    (root / img[8]["file_name"]).unlink()
    planted["image_missing"] = (8, None)
    img[1]["K"] = [[0.0, 0, 1], [0, 1.0, 1], [0, 0, 1]]
    planted["intrinsics_invalid"] = (1, None)
    coco["annotations"].append(dict(coco["annotations"][-1]))  # a duplicated annotation id
    planted["duplicate_annotation_id"] = (None, coco["annotations"][-1]["id"])
    _save(root, coco)
    return planted


def test_every_planted_error_is_caught_in_one_pass(make_dataset):
    root = make_dataset("broken", n_frames=8)
    planted = _plant_all(root)
    problems = validate_labels(root)
    kinds = summarize_problems(problems)
    for kind, (image_id, ann_id) in planted.items():
        hits = [p for p in problems if p.kind == kind]
        assert hits, f"{kind} was not reported; got {kinds}"
        if ann_id is not None:
            assert any(p.annotation_id == ann_id for p in hits), (kind, hits)
        if image_id is not None:
            assert any(p.image_id == image_id for p in hits), (kind, hits)
    # Records carry the simgen frame index and read well.
    p = next(p for p in problems if p.kind == "visibility_out_of_range")
    assert isinstance(p, Problem) and p.frame == p.image_id - 1
    assert "visibility" in str(p) and "1.5" in p.message
    assert json.dumps([q.as_dict() for q in problems])


def test_polygon_and_uncompressed_rle_segmentations_are_accepted(make_dataset):
    root = make_dataset("poly", n_frames=2, buffers=False)
    coco = _coco(root)
    a = coco["annotations"][0]
    x, y, w, h = a["bbox"]
    a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    a["area"] = w * h
    b = coco["annotations"][1]
    from pycocotools import mask as mask_utils

    m = mask_utils.decode({"size": b["segmentation"]["size"], "counts": b["segmentation"]["counts"].encode()})
    flat = m.ravel(order="F")
    counts, last, run = [], 0, 0
    for v in flat:
        if v != last:
            counts.append(run)
            run, last = 0, v
        run += 1
    counts.append(run)
    b["segmentation"] = {"size": b["segmentation"]["size"], "counts": counts}
    _save(root, coco)
    problems = validate_labels(root, options=LabelCheckOptions(box_tolerance_px=1.5))
    assert [p for p in problems if p.annotation_id in (a["id"], b["id"])] == []


def test_an_unreadable_coco_file_is_a_clean_error(tmp_path):
    from simgen.errors import SimgenError

    (tmp_path / "annotations.coco.json").write_text("{not json")
    with pytest.raises(SimgenError, match="cannot read"):
        validate_labels(tmp_path)
    assert validate_labels({"images": "nope", "annotations": [], "categories": []})[0].kind == "coco_malformed"
