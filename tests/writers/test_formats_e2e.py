"""A real generated dataset written as COCO, YOLO and BOP: read every format back and compare."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from simgen.engine import generate
from simgen.engine.verify import verify_dataset
from simgen.labels import rle_decode
from simgen.spec import load_spec, read_spec_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenes" / "tabletop_clutter.yaml"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = 8
    raw["frames_per_scene"] = 2
    raw["physics"]["max_steps"] = 300
    raw["labels"] = {"min_visible_px": 10, "visibility": True}
    raw["outputs"] = {"yolo": True, "bop": True}
    out = tmp_path_factory.mktemp("formats") / "ds"
    generate(load_spec(raw, base_dir=DEFAULT.parent), out, n_frames=4, seed=21, resolution=(160, 120), shard_frames=2)
    return out


def _int_keys(d: dict) -> dict:
    return {int(k) if k.isdigit() else k: v for k, v in d.items()}


@pytest.mark.slow
def test_yolo_boxes_match_coco(dataset: Path) -> None:
    coco = json.loads((dataset / "annotations.coco.json").read_text())
    names = yaml.safe_load((dataset / "data.yaml").read_text())["names"]
    assert [names[i] for i in sorted(names)] == [c["name"] for c in coco["categories"]]
    for image in coco["images"]:
        w, h = image["width"], image["height"]
        stem = Path(image["file_name"]).stem
        rows = [line.split() for line in (dataset / "labels" / f"{stem}.txt").read_text().splitlines()]
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"] and not a["flags"]]
        assert len(rows) == len(anns)
        for row, ann in zip(rows, anns, strict=True):
            cls, cx, cy, bw, bh = int(row[0]), *map(float, row[1:])
            assert cls == ann["category_id"] - 1
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
            assert np.allclose(box, ann["bbox"], atol=0.5)


@pytest.mark.slow
def test_bop_matches_coco_boxes_poses_masks_and_visibility(dataset: Path) -> None:
    coco = json.loads((dataset / "annotations.coco.json").read_text())
    chunk = dataset / "bop" / "train_pbr" / "000000"
    scene_gt = json.loads((chunk / "scene_gt.json").read_text(), object_hook=_int_keys)
    gt_info = json.loads((chunk / "scene_gt_info.json").read_text(), object_hook=_int_keys)
    cams = json.loads((chunk / "scene_camera.json").read_text(), object_hook=_int_keys)
    models = json.loads((dataset / "bop" / "models" / "models_info.json").read_text(), object_hook=_int_keys)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    for image in coco["images"]:
        im_id = image["frame_index"]
        assert np.allclose(np.reshape(cams[im_id]["cam_K"], (3, 3)), image["K"], atol=1e-5)
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        assert len(scene_gt[im_id]) == len(anns) > 0
        for gt_id, (gt, info, ann) in enumerate(zip(scene_gt[im_id], gt_info[im_id], anns, strict=True)):
            assert models[gt["obj_id"]]["category"] == gt["category"] == names[ann["category_id"]]
            assert (dataset / "bop" / "models" / f"obj_{gt['obj_id']:06d}.ply").is_file()
            T = np.asarray(ann["pose"]["T_cam_obj"])
            assert np.allclose(np.reshape(gt["cam_R_m2c"], (3, 3)), T[:3, :3], atol=1e-5)
            assert np.allclose(gt["cam_t_m2c"], T[:3, 3] * 1000.0, atol=1e-3)
            x, y, bw, bh = info["bbox_visib"]
            assert np.allclose([x, y, bw + 1, bh + 1], ann["bbox"], atol=0.5)  # BOP's w = x_max - x_min
            assert info["px_count_visib"] == ann["px_count_visible"]
            assert info["visib_fract"] == pytest.approx(ann["visibility"], abs=1e-6)
            visib = cv2.imread(str(chunk / "mask_visib" / f"{im_id:06d}_{gt_id:06d}.png"), cv2.IMREAD_UNCHANGED) > 0
            assert np.array_equal(visib, rle_decode(ann["segmentation"]).astype(bool))
            full = cv2.imread(str(chunk / "mask" / f"{im_id:06d}_{gt_id:06d}.png"), cv2.IMREAD_UNCHANGED) > 0
            assert (full | visib).sum() == full.sum()  # the silhouette contains the visible part
        depth_bop = cv2.imread(str(chunk / "depth" / f"{im_id:06d}.png"), cv2.IMREAD_UNCHANGED)
        depth_ours = cv2.imread(str(dataset / image["depth_file"]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(depth_bop * cams[im_id]["depth_scale"], depth_ours)


@pytest.mark.slow
def test_every_format_file_is_checksummed(dataset: Path) -> None:
    report = verify_dataset(dataset)
    assert report.ok, report
    assert report.checked > 4 * 3 + 4  # images, depth, instances, labels and the BOP files
    assert (dataset / "bop" / "models" / "models_info.json").is_file()
    assert json.loads((dataset / "dataset.json").read_text())["formats"] == ["coco", "yolo", "bop"]
