from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from simgen.errors import SimgenError
from simgen.frame import ModelPart
from simgen.labels import box_corners, rle_decode
from simgen.testing.writers import EXAMPLE_CATEGORIES, check_writer, example_contexts, read_ply, stage_frame_files
from simgen.writers.base import FrameContext
from simgen.writers.bop import BopWriteError, BopWriter, bop_bbox, bop_json

DATASET = {
    "categories": [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(EXAMPLE_CATEGORIES)]
}
CHUNK = 2
N_FRAMES = 5  # chunks 0, 1, 2; frame 2 (chunk 1, image 0) has nothing labeled


def _load(path: Path) -> dict:
    """As the BOP toolkit's inout.load_json(keys_to_int=True) reads it."""
    return json.loads(path.read_text(), object_hook=lambda d: {int(k) if k.isdigit() else k: v for k, v in d.items()})


def _imread(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[FrameContext], dict[str, str]]:
    root = tmp_path_factory.mktemp("bop")
    contexts = example_contexts(N_FRAMES, on_filtered="flag", min_visible_px=200)
    writer = BopWriter(chunk_size=CHUNK)
    files: dict[str, str] = {}
    records = []
    for ctx in contexts:
        stage_frame_files(root, ctx)
        out = writer.write_frame(root, ctx)
        files.update(out.files)
        records.append(json.loads(json.dumps(out.record)))
    files.update(writer.finalize(root, iter(records), DATASET))
    return root, contexts, files


def _chunk(root: Path, frame: int) -> tuple[Path, int]:
    chunk, im_id = divmod(frame, CHUNK)
    return root / "bop" / "train_pbr" / f"{chunk:06d}", im_id


def test_layout_and_checksums(written: tuple[Path, list[FrameContext], dict[str, str]]) -> None:
    root, contexts, files = written
    chunks = sorted(p.name for p in (root / "bop" / "train_pbr").iterdir())
    assert chunks == ["000000", "000001", "000002"]
    for chunk in chunks:
        for name in ("scene_camera", "scene_gt", "scene_gt_info"):
            assert f"bop/train_pbr/{chunk}/{name}.json" in files
    middle = _load(root / "bop/train_pbr/000001/scene_gt.json")
    assert sorted(middle) == [0, 1] and middle[0] == []  # frames 2 (nothing labeled) and 3
    assert sorted(_load(root / "bop/train_pbr/000002/scene_camera.json")) == [0]
    for rel, digest in files.items():
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == digest, rel
    camera = json.loads((root / "bop/camera.json").read_text())
    K = contexts[0].buffers.K
    assert camera == {
        "cx": K[0, 2],
        "cy": K[1, 2],
        "fx": K[0, 0],
        "fy": K[1, 1],
        "depth_scale": 1.0,
        "width": 96,
        "height": 72,
    }


def test_poses_and_camera_match_the_coco_record(written: tuple[Path, list[FrameContext], dict[str, str]]) -> None:
    root, contexts, _ = written
    models = _load(root / "bop/models/models_info.json")
    n = 0
    for ctx in contexts:
        folder, im_id = _chunk(root, ctx.frame)
        cam = _load(folder / "scene_camera.json")[im_id]
        gts = _load(folder / "scene_gt.json")[im_id]
        image = ctx.coco["image"]
        assert np.allclose(np.reshape(cam["cam_K"], (3, 3)), image["K"])
        assert cam["depth_scale"] == 1.0 and (cam["frame_index"], cam["scene_index"]) == (ctx.frame, ctx.scene)
        T_w2c = np.eye(4)
        T_w2c[:3, :3] = np.reshape(cam["cam_R_w2c"], (3, 3))
        T_w2c[:3, 3] = np.asarray(cam["cam_t_w2c"]) / 1000.0
        assert np.allclose(T_w2c @ np.asarray(image["T_world_cam"]), np.eye(4), atol=1e-5)
        assert len(gts) == len(ctx.coco["annotations"])
        for gt, ann in zip(gts, ctx.coco["annotations"], strict=True):
            T = np.asarray(ann["pose"]["T_cam_obj"])
            assert models[gt["obj_id"]]["category"] == gt["category"] == EXAMPLE_CATEGORIES[ann["category_id"] - 1]
            assert "model" not in gt
            assert np.allclose(np.reshape(gt["cam_R_m2c"], (3, 3)), T[:3, :3], atol=1e-6)
            assert np.allclose(gt["cam_t_m2c"], T[:3, 3] * 1000.0, atol=1e-3)
            assert np.allclose(gt["bbox3d_size_mm"], np.asarray(ann["bbox3d_size_m"]) * 1000.0, atol=1e-3)
            assert np.allclose(gt["bbox3d_center_mm"], np.asarray(ann["bbox3d_center_m"]) * 1000.0, atol=1e-3)
            assert (gt["uid"], gt["instance_id"], gt["flags"]) == (ann["uid"], ann["instance_id"], ann["flags"])
            # the world pose of the object, through BOP's own camera pose, is the one that was rendered
            T_m2c = np.eye(4)
            T_m2c[:3, :3], T_m2c[:3, 3] = np.reshape(gt["cam_R_m2c"], (3, 3)), np.asarray(gt["cam_t_m2c"]) / 1000.0
            T_world_obj = ctx.buffers.object_poses[ann["instance_id"]]
            assert np.allclose(T_w2c @ T_world_obj, T_m2c, atol=1e-5)
            n += 1
    assert n >= 16


def test_gt_info_and_masks_match_coco_and_the_buffers(written: tuple[Path, list[FrameContext], dict[str, str]]) -> None:
    root, contexts, _ = written
    flagged = 0
    for ctx in contexts:
        folder, im_id = _chunk(root, ctx.frame)
        infos = _load(folder / "scene_gt_info.json")[im_id]
        depth = _imread(folder / "depth" / f"{im_id:06d}.png")
        assert depth.dtype == np.uint16
        for gt_id, (info, ann) in enumerate(zip(infos, ctx.coco["annotations"], strict=True)):
            visible = rle_decode(ann["segmentation"])
            mask_visib = _imread(folder / "mask_visib" / f"{im_id:06d}_{gt_id:06d}.png")
            mask = _imread(folder / "mask" / f"{im_id:06d}_{gt_id:06d}.png")
            assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
            assert np.array_equal(mask_visib > 0, visible)
            assert np.array_equal(mask > 0, ctx.buffers.unoccluded_masks[ann["instance_id"]])
            # BOP's box is the toolkit's calc_2d_bbox: (x_min, y_min, x_max - x_min, y_max - y_min)
            x, y, w, h = info["bbox_visib"]
            assert np.allclose([x, y, w + 1, h + 1], ann["bbox"], atol=0.5)
            assert info["px_count_visib"] == ann["area"] == int(visible.sum())
            assert info["px_count_all"] == ann["px_count_unoccluded"] == int((mask > 0).sum())
            assert info["px_count_valid"] == int(((mask > 0) & (depth > 0)).sum())
            assert info["visib_fract"] == ann["visibility"]
            assert info["bbox_obj"] == bop_bbox(mask > 0)
            flagged += bool(ann["flags"])
    assert flagged > 0  # flagged annotations are kept, with their flags
    first = _load(_chunk(root, 0)[0] / "scene_gt_info.json")[0][0]
    assert first["px_count_valid"] < first["px_count_all"]  # the patch without depth
    assert first["visib_fract"] < 1.0


def test_rgb_and_depth_are_hard_links_to_the_engine_files(
    written: tuple[Path, list[FrameContext], dict[str, str]],
) -> None:
    root, contexts, _ = written
    for ctx in contexts:
        folder, im_id = _chunk(root, ctx.frame)
        for kind in ("rgb", "depth"):
            engine, bop = root / ctx.files[kind], folder / kind / f"{im_id:06d}.png"
            assert os.path.samefile(engine, bop)


def test_copies_when_linking_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = example_contexts(1)[0]
    stage_frame_files(tmp_path, ctx)

    def no_link(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    out = BopWriter().write_frame(tmp_path, ctx)
    rgb = tmp_path / "bop/train_pbr/000000/rgb/000000.png"
    assert not os.path.samefile(rgb, tmp_path / ctx.files["rgb"])
    assert rgb.read_bytes() == (tmp_path / ctx.files["rgb"]).read_bytes()
    assert "bop/train_pbr/000000/rgb/000000.png" in out.files


def _max_pairwise(points: np.ndarray) -> float:
    d = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((d**2).sum(axis=2)).max())


def test_models_are_ply_in_mm_one_obj_id_per_category_and_geometry(
    written: tuple[Path, list[FrameContext], dict[str, str]],
) -> None:
    """An obj_id mixed every scale of a category before; now it is one mesh, in mm, in the pose's frame."""
    root, contexts, files = written
    info = _load(root / "bop/models/models_info.json")
    seen: dict[tuple[str, tuple[float, ...]], int] = {}
    order: list[int] = []
    for ctx in contexts:
        folder, im_id = _chunk(root, ctx.frame)
        for gt, ann in zip(_load(folder / "scene_gt.json")[im_id], ctx.annotations, strict=True):
            obj_id = gt["obj_id"]
            key = (gt["category"], tuple(ann.bbox3d_size))
            assert seen.setdefault(key, obj_id) == obj_id  # one geometry, one id ...
            if obj_id not in order:
                order.append(obj_id)
            rel = f"bop/models/obj_{obj_id:06d}.ply"
            assert rel in files
            vertices, normals, faces = read_ply(root / rel)
            corners = box_corners(np.asarray(ann.bbox3d_center), np.asarray(ann.bbox3d_size)) * 1000.0
            assert np.abs(np.sort(vertices, axis=0) - np.sort(corners, axis=0)).max() < 1e-5  # the box, in mm
            assert len(faces) == 12 and np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
            m = info[obj_id]
            assert m["diameter"] == pytest.approx(_max_pairwise(vertices), abs=1e-6)
            assert [m["min_x"], m["min_y"], m["min_z"]] == pytest.approx(vertices.min(axis=0).tolist(), abs=1e-6)
            assert [m["size_x"], m["size_y"], m["size_z"]] == pytest.approx(np.ptp(vertices, axis=0).tolist(), abs=1e-6)
            assert (m["category"], m["asset"]) == (gt["category"], gt["asset"])
    assert len(set(seen.values())) == len(seen)  # ... and one id per geometry
    assert order == list(range(1, len(order) + 1)) == sorted(info)  # numbered in order of first appearance


def test_one_model_shared_by_instances_is_one_obj_id(tmp_path: Path) -> None:
    ctx = example_contexts(1)[0]
    model = (ModelPart("box", size=(0.1, 0.06, 0.08)),)
    objects = [replace(o, model=model) for o in ctx.buffers.objects]
    ctx = replace(ctx, buffers=replace(ctx.buffers, objects=objects))
    stage_frame_files(tmp_path, ctx)
    writer = BopWriter()
    writer.finalize(tmp_path, iter([json.loads(json.dumps(writer.write_frame(tmp_path, ctx).record))]), DATASET)
    gts = _load(tmp_path / "bop/train_pbr/000000/scene_gt.json")[0]
    ids = {(gt["category"], gt["obj_id"]) for gt in gts}
    assert ids == {("box", 1), ("can", 2)}  # the same mesh under two categories: two objects
    assert sorted(p.name for p in (tmp_path / "bop/models").iterdir()) == [
        "models_info.json",
        "obj_000001.ply",
        "obj_000002.ply",
    ]
    assert (tmp_path / "bop/models/obj_000001.ply").read_bytes() == (
        tmp_path / "bop/models/obj_000002.ply"
    ).read_bytes()


def test_obj_ids_do_not_depend_on_chunks(tmp_path: Path) -> None:
    contexts = example_contexts(4)
    outputs = {}
    for chunk_size in (1, 3):
        root = tmp_path / str(chunk_size)
        writer, records = BopWriter(chunk_size=chunk_size), []
        for ctx in contexts:
            stage_frame_files(root, ctx)
            records.append(json.loads(json.dumps(writer.write_frame(root, ctx).record)))
        writer.finalize(root, iter(records), DATASET)
        models = sorted((root / "bop/models").iterdir())
        outputs[chunk_size] = {p.name: p.read_bytes() for p in models}
    assert outputs[1] == outputs[3] and len(outputs[1]) > 3


def test_an_object_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    ctx = example_contexts(1)[0]
    stage_frame_files(tmp_path, ctx)
    objects = [replace(o, model=()) for o in ctx.buffers.objects]
    with pytest.raises(BopWriteError, match=r"instance 1 .*no 3D model"):
        BopWriter().write_frame(tmp_path, replace(ctx, buffers=replace(ctx.buffers, objects=objects)))
    objects = [replace(o, model=(ModelPart("mesh", mesh_file=str(tmp_path / "gone.obj")),)) for o in objects]
    with pytest.raises(BopWriteError, match="cannot build its 3D model.*gone.obj"):
        BopWriter().write_frame(tmp_path, replace(ctx, buffers=replace(ctx.buffers, objects=objects)))


def test_camera_json_holds_the_shared_k_and_refuses_mixed_sizes(tmp_path: Path) -> None:
    contexts = example_contexts(3)
    writer, records = BopWriter(), []
    for ctx in contexts:
        stage_frame_files(tmp_path, ctx)
        records.append(json.loads(json.dumps(writer.write_frame(tmp_path, ctx).record)))
    writer.finalize(tmp_path, iter(records), DATASET)
    K = np.reshape(records[0]["scene_camera"]["cam_K"], (3, 3))
    camera = json.loads((tmp_path / "bop/camera.json").read_text())
    assert [camera[k] for k in ("fx", "fy", "cx", "cy")] == [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]
    records[2]["width"] = 97
    with pytest.raises(BopWriteError, match="one sensor"):
        writer.finalize(tmp_path, iter(records), DATASET)


def test_json_files_are_laid_out_like_the_toolkit_writes_them(
    written: tuple[Path, list[FrameContext], dict[str, str]],
) -> None:
    root, _, _ = written
    text = (root / "bop/train_pbr/000000/scene_gt.json").read_text()
    lines = text.splitlines()
    assert (
        lines[0] == "{" and lines[-1] == "}" and lines[1].startswith('  "0": [{') and lines[2].startswith('  "1": [{')
    )
    assert bop_json({10: 1, 2: 2}) == b'{\n  "2": 2,\n  "10": 1\n}\n'  # numeric order, as the toolkit sorts int keys
    assert bop_json({}) == b"{}\n"


def test_missing_unoccluded_masks_is_a_clear_error(tmp_path: Path) -> None:
    ctx = example_contexts(1)[0]
    stage_frame_files(tmp_path, ctx)
    ctx = replace(ctx, buffers=replace(ctx.buffers, unoccluded_masks=None))
    with pytest.raises(BopWriteError, match=r"labels\.visibility: true") as err:
        BopWriter().write_frame(tmp_path, ctx)
    assert isinstance(err.value, SimgenError)


def test_inconsistent_masks_and_missing_files_are_refused(tmp_path: Path) -> None:
    ctx = example_contexts(1)[0]
    stage_frame_files(tmp_path, ctx)
    masks = dict(ctx.buffers.unoccluded_masks)
    masks[1] = masks[1] & (np.arange(masks[1].shape[1]) % 2 == 0)
    bad = replace(ctx, buffers=replace(ctx.buffers, unoccluded_masks=masks))
    with pytest.raises(BopWriteError, match="same render"):
        BopWriter().write_frame(tmp_path, bad)
    masks.pop(1)
    with pytest.raises(BopWriteError, match="no unoccluded mask"):
        BopWriter().write_frame(tmp_path, replace(ctx, buffers=replace(ctx.buffers, unoccluded_masks=masks)))
    with pytest.raises(BopWriteError, match="depth PNG"):
        BopWriter().write_frame(tmp_path, replace(ctx, files={"rgb": ctx.files["rgb"]}))


def test_finalize_refuses_records_out_of_order_or_from_another_chunk_size(tmp_path: Path) -> None:
    contexts = example_contexts(3)
    records = []
    for ctx in contexts:
        stage_frame_files(tmp_path, ctx)
        records.append(BopWriter(chunk_size=2).write_frame(tmp_path, ctx).record)
    with pytest.raises(BopWriteError, match="increasing frame order"):
        BopWriter(chunk_size=2).finalize(tmp_path, iter([records[1], records[0]]), DATASET)
    with pytest.raises(BopWriteError, match="chunk_size"):
        BopWriter(chunk_size=1000).finalize(tmp_path, iter(records), DATASET)
    with pytest.raises(BopWriteError, match="lacks"):
        BopWriter(chunk_size=2).finalize(tmp_path, iter([{"frame": 0}]), DATASET)


@pytest.mark.parametrize("chunk_size", [0, -1, 2.5, True, 1_000_001])
def test_chunk_size_is_checked(chunk_size: object) -> None:
    with pytest.raises(BopWriteError, match="chunk_size"):
        BopWriter(chunk_size=chunk_size)  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_check_writer_passes(chunk_size: int) -> None:
    check_writer(BopWriter(chunk_size=chunk_size), example_contexts(4, on_filtered="flag", min_visible_px=200))
