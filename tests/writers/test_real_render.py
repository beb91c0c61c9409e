"""The formats on a real PyBullet render: amodal boxes, YOLO polygons, BOP models and poses against the depth."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from simgen.errors import BackendUnavailable
from simgen.labels import clip_extents, project_extents
from simgen.testing.writers import RENDERED_CATEGORIES, read_ply, rendered_contexts, stage_frame_files
from simgen.writers.base import FrameContext
from simgen.writers.bop import BopWriter
from simgen.writers.yolo import YoloWriter


@pytest.fixture(scope="module", params=["tiny", "egl"])
def contexts(request: pytest.FixtureRequest) -> list[FrameContext]:
    """Both renderers: each maps K to its own rasterizer, and EGL shares geometry between equal bodies."""
    try:
        return rendered_contexts(renderer=request.param)
    except BackendUnavailable as exc:
        pytest.skip(f"{request.param} renderer unavailable here: {exc}")


@pytest.fixture(scope="module")
def bop(tmp_path_factory: pytest.TempPathFactory, contexts: list[FrameContext]) -> Path:
    root = tmp_path_factory.mktemp("bop-real")
    writer, records = BopWriter(), []
    for ctx in contexts:
        stage_frame_files(root, ctx)
        records.append(json.loads(json.dumps(writer.write_frame(root, ctx).record)))
    writer.finalize(root, iter(records), {"categories": list(RENDERED_CATEGORIES)})
    return root / "bop"


def _load(path: Path) -> dict:
    return json.loads(path.read_text(), object_hook=lambda d: {int(k) if k.isdigit() else k: v for k, v in d.items()})


def test_amodal_box_contains_the_visible_box(contexts: list[FrameContext]) -> None:
    """The projected 3D box alone left visible pixels outside it, by up to half a pixel (rasterization)."""
    overshoot = []
    n = 0
    for ctx in contexts:
        b = ctx.buffers
        for ann in ctx.annotations:
            x, y, w, h = ann.bbox_visible
            ax, ay, aw, ah = ann.bbox_amodal
            assert ax <= x and ay <= y and x + w <= ax + aw and y + h <= ay + ah, ann.uid
            info = next(o for o in b.objects if o.instance_id == ann.instance_id)
            ext = project_extents(ann.T_cam_obj, b.K, np.array([info.bbox3d_center]), np.array([info.bbox3d_size]))
            px, py, pw, ph = clip_extents(ext, b.width, b.height)[0][0]
            overshoot.append(max(px - x, py - y, x + w - px - pw, y + h - py - ph))
            n += 1
    assert n >= 15
    # Through OpenCV's K and the +0.5 to pixel edges, the projection and the pixels agree within half a pixel:
    # a wrong convention would shift every box by half a pixel and overshoot by up to a whole one.
    assert max(overshoot) < 0.5


def test_yolo_segment_boxes_are_the_coco_boxes(contexts: list[FrameContext]) -> None:
    """Ultralytics' box of a polygon (min and max of its vertices) is the COCO box; it was 1 px short."""
    n = 0
    for ctx in contexts:
        W, H = ctx.coco["image"]["width"], ctx.coco["image"]["height"]
        rows = [[float(v) for v in line.split()] for line in YoloWriter(segments=True).lines(ctx)]
        anns = [a for a in ctx.coco["annotations"] if not a["flags"] and a["area"] > 0]
        assert len(rows) == len(anns) > 5
        for row, ann in zip(rows, anns, strict=True):
            xy = np.array(row[1:]).reshape(-1, 2)
            x, y, w, h = ann["bbox"]
            expected = [x / W, y / H, (x + w) / W, (y + h) / H]
            np.testing.assert_allclose([*xy.min(axis=0), *xy.max(axis=0)], expected, atol=1e-6, rtol=0)
            n += 1
    assert n >= 15


def test_bop_obj_ids_are_one_per_asset_and_scale(bop: Path, contexts: list[FrameContext]) -> None:
    """cube/0 and cube/2 (scale 1) share a model, cube/1 (scale 1.5) has its own; every other object its own.

    With EGL, cube/2 shares cube/0's cached geometry, and PyBullet reports it without a mesh file name.
    """
    ids: dict[str, int] = {}
    for ctx in contexts:
        for gt in _load(bop / "train_pbr/000000/scene_gt.json")[ctx.frame]:
            assert ids.setdefault(gt["uid"], gt["obj_id"]) == gt["obj_id"]
    assert ids["cube/0"] == ids["cube/2"] != ids["cube/1"]
    assert len(set(ids.values())) == len(ids) - 1
    info = _load(bop / "models/models_info.json")
    assert sorted(info) == list(range(1, len(ids)))
    assert info[ids["cube/1"]]["diameter"] == pytest.approx(1.5 * info[ids["cube/0"]]["diameter"], rel=1e-6)
    for obj_id, m in info.items():
        vertices, _, _ = read_ply(bop / f"models/obj_{obj_id:06d}.ply")
        sq = ((vertices[:, None, :] - vertices[None, :, :]) ** 2).sum(axis=2)
        assert m["diameter"] == pytest.approx(float(np.sqrt(sq.max())), abs=1e-5)  # BOP: max vertex distance
    ball = next(m for m in info.values() if m["category"] == "ball")
    # A sphere's diameter is its width, not its box diagonal (+73% with the box rule).
    assert ball["diameter"] == pytest.approx(max(ball["size_x"], ball["size_y"], ball["size_z"]), rel=2e-3)


def _surface_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest triangle of a mesh (closest point on a triangle, Ericson 5.1.5)."""
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    out = np.empty(len(points))
    for i, p in enumerate(points):
        ab, ac, ap = b - a, c - a, p - a
        d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
        bp, cp = p - b, p - c
        d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
        d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
        va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
        with np.errstate(divide="ignore", invalid="ignore"):
            denom = va + vb + vc
            v, w = vb / denom, vc / denom
            closest = a + ab * v[:, None] + ac * w[:, None]  # inside the face
            t_ab = np.clip(d1 / (d1 - d3), 0, 1)
            t_ac = np.clip(d2 / (d2 - d6), 0, 1)
            t_bc = np.clip((d4 - d3) / ((d4 - d3) + (d5 - d6)), 0, 1)
        edges = [
            (vc <= 0) & (d1 >= 0) & (d3 <= 0),
            (vb <= 0) & (d2 >= 0) & (d6 <= 0),
            (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0),
        ]
        closest = np.where(edges[0][:, None], a + ab * t_ab[:, None], closest)
        closest = np.where(edges[1][:, None], a + ac * t_ac[:, None], closest)
        closest = np.where(edges[2][:, None], b + (c - b) * t_bc[:, None], closest)
        for mask, corner in (((d1 <= 0) & (d2 <= 0), a), ((d3 >= 0) & (d4 <= d3), b), ((d6 >= 0) & (d5 <= d6), c)):
            closest = np.where(mask[:, None], corner, closest)
        out[i] = np.sqrt(np.nan_to_num(((closest - p) ** 2).sum(1), nan=np.inf).min())
    return out


def test_bop_models_and_poses_meet_the_depth_map(bop: Path, contexts: list[FrameContext]) -> None:
    """Back-projected the OpenCV way (pixel (u, v) at its index), each visible depth pixel lies on its model.

    The depth PNG holds whole millimetres, so points may sit up to 0.5 mm off the surface along the ray.
    """
    chunk = bop / "train_pbr/000000"
    cameras, scene_gt = _load(chunk / "scene_camera.json"), _load(chunk / "scene_gt.json")
    errors = []
    for ctx in contexts:
        depth = cv2.imread(str(chunk / "depth" / f"{ctx.frame:06d}.png"), cv2.IMREAD_UNCHANGED).astype(np.float64)
        K = np.reshape(cameras[ctx.frame]["cam_K"], (3, 3))
        for gt_id, gt in enumerate(scene_gt[ctx.frame]):
            mask = cv2.imread(str(chunk / "mask_visib" / f"{ctx.frame:06d}_{gt_id:06d}.png"), cv2.IMREAD_UNCHANGED) > 0
            rows, cols = np.nonzero(mask & (depth > 0))
            if len(rows) < 20:
                continue
            keep = np.linspace(0, len(rows) - 1, min(len(rows), 80)).astype(int)
            z = depth[rows[keep], cols[keep]]
            cam = np.stack([(cols[keep] - K[0, 2]) * z / K[0, 0], (rows[keep] - K[1, 2]) * z / K[1, 1], z], axis=1)
            R, t = np.reshape(gt["cam_R_m2c"], (3, 3)), np.asarray(gt["cam_t_m2c"])
            vertices, _, faces = read_ply(bop / f"models/obj_{gt['obj_id']:06d}.ply")
            d = _surface_distance((cam - t) @ R, vertices, faces)  # camera (mm) -> model frame (mm)
            errors.append(np.median(d))
            assert np.median(d) < 1.0, (gt["uid"], np.median(d))
    assert len(errors) >= 12
    assert np.median(errors) < 0.5
