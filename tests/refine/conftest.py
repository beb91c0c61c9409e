"""Fixtures for the refine tests: a small hand-built dataset in simgen's exact layout, offline hubs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

CATEGORIES = ["duck", "mug", "cube"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def synthetic_frame(
    rng: np.random.Generator,
    width: int,
    height: int,
    n_objects: int = 3,
    *,
    overlap: bool = False,
    omit: int | None = None,
    move: tuple[int, int, int] | None = None,
) -> dict[str, Any]:
    """A render-like frame: a textured table with shaded boxes and discs, depth and instance ids.

    Args:
        rng: Randomness of the layout.
        width: Image width.
        height: Image height.
        n_objects: Objects to place.
        overlap: Allow objects to overlap (later ones occlude earlier ones); otherwise they keep apart.
        omit: Leave this object index out of the image (its labels stay): a planted "erased object".
        move: ``(index, dx, dy)``: draw this object displaced in the image (labels stay): a planted shift.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    # Wood-ish table: low-contrast stripes plus smooth noise, so the background has some real edges.
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * 0.9 + yy * 0.25) / max(width / 5, 4) + rng.uniform(0, 6))
    noise = cv2.GaussianBlur(rng.random((height, width)), (0, 0), 2.0)
    base = np.array([150, 110, 70], dtype=np.float64)
    rgb = base[None, None, :] * (0.8 + 0.25 * stripes[..., None] + 0.2 * (noise[..., None] - 0.5))
    depth = 900.0 + 0.6 * yy  # a tilted table plane, mm
    inst = np.zeros((height, width), dtype=np.uint16)
    objects = []
    s = min(width, height)
    taken = np.zeros((height, width), dtype=bool)
    for k in range(n_objects):
        colour = rng.uniform(30, 240, size=3)
        for _ in range(200):
            r = int(s * rng.uniform(0.10, 0.16))
            cx = int(rng.uniform(r + 2, width - r - 2))
            cy = int(rng.uniform(r + 2, height - r - 2))
            m = np.zeros((height, width), dtype=np.uint8)
            if k % 2 == 0:
                cv2.rectangle(m, (cx - r, cy - r), (cx + r, cy + int(0.7 * r)), 1, -1)
            else:
                cv2.circle(m, (cx, cy), r, 1, -1)
            m = m.astype(bool)
            grown = cv2.dilate(m.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
            if overlap or not (grown & taken).any():
                break
        taken |= m
        inst[m] = k + 1
        depth[m] = 800.0 - 15.0 * k  # later objects are nearer (and drawn over earlier ones)
        drawn, dcy = m, cy
        if move is not None and move[0] == k:
            drawn = np.roll(m, (move[2], move[1]), axis=(0, 1))
            dcy = cy + move[2]
        if omit != k:
            shade = 0.85 + 0.15 * (yy - dcy) / max(r, 1)  # a little shading, like a lit object
            rgb[drawn] = np.clip(colour[None, :] * shade[drawn][:, None], 0, 255)
        objects.append({"instance_id": k + 1, "category": CATEGORIES[k % len(CATEGORIES)]})
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    return {"rgb": rgb, "depth": depth.astype(np.uint16), "instances": inst, "objects": objects}


def write_dataset(out: Path, n_frames: int = 3, width: int = 64, height: int = 64, seed: int = 0) -> Path:
    """Write a dataset in simgen's layout (dataset.json, manifest.jsonl, COCO, images/depth/instances)."""
    for sub in ("images", "depth", "instances"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(CATEGORIES)]
    images, annotations, manifest = [], [], []
    ann_id = 1
    for i in range(n_frames):
        f = synthetic_frame(np.random.default_rng([seed, i]), width, height)
        name = f"{i:06d}.png"
        cv2.imwrite(str(out / "images" / name), cv2.cvtColor(f["rgb"], cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / "depth" / name), f["depth"])
        cv2.imwrite(str(out / "instances" / name), f["instances"])
        images.append({
            "id": i + 1, "file_name": f"images/{name}", "width": width, "height": height,
            "depth_file": f"depth/{name}", "instance_file": f"instances/{name}", "K": [[50.0, 0, width / 2], [0, 50.0, height / 2], [0, 0, 1]],
            "T_world_cam": np.eye(4).tolist(), "frame_index": i, "scene_index": i // 2,
        })  # fmt: skip
        for obj in f["objects"]:
            m = f["instances"] == obj["instance_id"]
            if not m.any():
                continue
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append({
                "id": ann_id, "image_id": i + 1, "category_id": CATEGORIES.index(obj["category"]) + 1,
                "bbox": [x, y, w, h], "area": float(m.sum()), "segmentation": rle, "iscrowd": 0,
                "instance_id": obj["instance_id"], "visibility": 1.0, "bbox_amodal": [x, y, w, h],
                "pose": {"R": np.eye(3).tolist(), "t": [0.0, 0.0, 0.9]}, "flags": [],
            })  # fmt: skip
            ann_id += 1
        manifest.append({
            "frame": i, "scene": i // 2, "view": {"azimuth_deg": 10.0 * i}, "timings_ms": {"render": 1.0},
            "files": {k: {"path": f"{k}/{name}", "sha256": "0" * 64} for k in ("images", "depth", "instances")},
        })  # fmt: skip
    coco = {"info": {"description": "test"}, "images": images, "annotations": annotations, "categories": cats}
    (out / "annotations.coco.json").write_text(json.dumps(coco))
    (out / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    dataset = {
        "simgen_version": "0.1.0", "spec": {"name": "handmade"}, "spec_sha256": "0" * 64, "seed": seed,
        "n_frames": n_frames, "backend": "handmade", "renderer": "numpy", "categories": cats,
    }  # fmt: skip
    (out / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return out


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_dataset(n_frames=3, width=64, height=64, seed=0)`` -> dataset folder."""

    def make(name: str = "ds", **kw: Any) -> Path:
        return write_dataset(tmp_path / name, **kw)

    return make


@pytest.fixture
def frame_factory() -> Callable[..., dict[str, Any]]:
    """Factory: ``frame_factory(seed, width=64, height=64, **kw)`` -> a synthetic frame (see ``synthetic_frame``)."""

    def make(seed: int, width: int = 64, height: int = 64, **kw: Any) -> dict[str, Any]:
        return synthetic_frame(np.random.default_rng([7, seed]), width, height, **kw)

    return make


def shift_image(img: np.ndarray, dx: int, dy: int = 0) -> np.ndarray:
    """The whole image shifted by (dx, dy) pixels, edges reflected."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)


def photometric(img: np.ndarray, seed: int) -> np.ndarray:
    """A plausible 'realism' change that keeps the structure: colour gains, blur, noise, fine texture."""
    rng = np.random.default_rng(seed)
    x = img.astype(np.float32) * rng.uniform(0.8, 1.2, 3)[None, None] + rng.uniform(-20, 20)
    x = cv2.GaussianBlur(x, (0, 0), 0.8) + rng.normal(0, 6, img.shape)
    tex = cv2.GaussianBlur(rng.random(img.shape[:2]).astype(np.float32), (0, 0), 1.0)
    return np.clip(x + 25 * (tex[..., None] - 0.5), 0, 255).astype(np.uint8)


@pytest.fixture
def planted() -> SimpleNamespace:
    """Planted image changes: ``shift``, ``photometric``."""
    return SimpleNamespace(shift=shift_image, photometric=photometric)


class FunctionRefiner:
    """A refiner that applies ``fn(image, frame_seed) -> image``: identity, planted failures, photometric changes."""

    def __init__(self, fn: Callable[[np.ndarray, int], np.ndarray], name: str = "function") -> None:
        self.fn = fn
        self.name = name
        self.calls: list[dict[str, Any]] = []

    def describe(self) -> dict[str, Any]:
        return {"family": "test", "name": self.name}

    def refine(self, images, controls, prompts, seeds):  # type: ignore[no-untyped-def]
        self.calls.append({"n": len(images), "prompts": list(prompts), "seeds": list(seeds), "controls": controls})
        return [self.fn(im, s) for im, s in zip(images, seeds, strict=True)]


@pytest.fixture
def function_refiner() -> type[FunctionRefiner]:
    """The ``FunctionRefiner`` class."""
    return FunctionRefiner
