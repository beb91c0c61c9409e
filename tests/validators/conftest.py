"""Builders of small datasets in simgen's output layout, from real photos and real handwritten digits.

The "real" domain uses scikit-learn's bundled photos (china.jpg, flower.jpg) as backgrounds and its
real 8x8 handwritten digits as objects, so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CATEGORIES = [{"id": 1, "name": "zero"}, {"id": 2, "name": "one"}, {"id": 3, "name": "two"}]


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    """The two real photos bundled with scikit-learn (RGB uint8, 427x640)."""
    from sklearn.datasets import load_sample_images

    return [np.array(im, copy=True) for im in load_sample_images().images]


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's real handwritten digits 0-2: images (n, 8, 8) in [0, 16] and labels."""
    from sklearn.datasets import load_digits

    d = load_digits(n_class=3)
    return d.images, d.target


def _encode(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def write_dataset(root: Path, frames: list[tuple[np.ndarray, list[tuple[int, np.ndarray]]]], *,
                  buffers: bool = True, manifest: bool = True, seed: int = 0) -> Path:  # fmt: skip
    """Write frames in simgen's layout; each frame is ``(rgb, [(category_id, bool mask), ...])``."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "depth", "instances"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    images, anns, lines = [], [], []
    ann_id = 1
    for i, (rgb, objects) in enumerate(frames):
        h, w = rgb.shape[:2]
        name = f"images/{i:06d}.png"
        cv2.imwrite(str(root / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        inst = np.zeros((h, w), np.uint16)
        depth = np.full((h, w), 1500, np.uint16)
        entry: dict[str, Any] = {"id": i + 1, "file_name": name, "width": w, "height": h, "frame_index": i,
                                 "scene_index": i // 2, "K": [[100.0, 0, w / 2], [0, 100.0, h / 2], [0, 0, 1]]}  # fmt: skip
        for k, (cat, mask) in enumerate(objects, start=1):
            inst[mask] = k
            depth[mask] = 900 + 10 * k
            x, y, bw, bh = mask_utils.toBbox(_encode(mask)).tolist()
            anns.append({"id": ann_id, "image_id": i + 1, "category_id": cat, "bbox": [x, y, bw, bh],
                         "area": int(mask.sum()), "segmentation": _encode(mask), "iscrowd": 0, "instance_id": k,
                         "visibility": 1.0, "truncation": 0.0, "px_count_visible": int(mask.sum())})  # fmt: skip
            ann_id += 1
        if buffers:
            entry["depth_file"] = f"depth/{i:06d}.png"
            entry["instance_file"] = f"instances/{i:06d}.png"
            cv2.imwrite(str(root / entry["depth_file"]), depth)
            cv2.imwrite(str(root / entry["instance_file"]), inst)
        images.append(entry)
        view = {
            "0:camera/look-at-shell-v1": {"camera": {"width": w, "height": h, "sampled": {
                "distance": float(rng.uniform(0.6, 1.4)), "azimuth_deg": float(rng.uniform(-180, 180)),
                "elevation_deg": float(rng.uniform(20, 70)), "roll_deg": 0.0, "fov_deg": 60.0}}},
            "1:light/directional-v1": {"light": {"shadows": True, "sampled": {
                "azimuth_deg": float(rng.uniform(0, 360)), "intensity": float(rng.uniform(0.5, 1.5))}}},
        }  # fmt: skip
        sensor = {"2:sensor/noise-v1": {"sigma": float(rng.uniform(0, 4)), "enabled": True}}
        lines.append(json.dumps({"frame": i, "scene": i // 2, "view": view, "sensor": sensor, "files": {}}))
    coco = {"images": images, "annotations": anns, "categories": CATEGORIES, "info": {"description": "test"}}
    (root / "annotations.coco.json").write_text(json.dumps(coco))
    (root / "dataset.json").write_text(json.dumps({"seed": seed, "n_frames": len(frames), "categories": CATEGORIES}))
    if manifest:
        (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root


def digit_scenes(photo: np.ndarray, digit_images: np.ndarray, labels: np.ndarray, *, n_frames: int,
                 per_frame: int = 3, size: int = 96, obj: int = 28, seed: int = 0,
                 transform: Callable[[np.ndarray], np.ndarray] | None = None, stroke: tuple[int, int, int] = (0, 0, 0),
                 ) -> list[tuple[np.ndarray, list[tuple[int, np.ndarray]]]]:  # fmt: skip
    """Frames of ``size`` x ``size`` photo patches with handwritten digits pasted as objects."""
    rng = np.random.default_rng(seed)
    frames = []
    k = 0
    for _ in range(n_frames):
        y0 = int(rng.integers(0, photo.shape[0] - size * 2))
        x0 = int(rng.integers(0, photo.shape[1] - size * 2))
        bg = cv2.resize(photo[y0 : y0 + 2 * size, x0 : x0 + 2 * size], (size, size), interpolation=cv2.INTER_AREA)
        rgb = bg.copy()
        objects = []
        slots = [(4, 4), (size - obj - 4, 4), (4, size - obj - 4), (size - obj - 4, size - obj - 4)]
        for sx, sy in [slots[j] for j in rng.permutation(len(slots))[:per_frame]]:
            img = digit_images[k % len(digit_images)]
            label = int(labels[k % len(labels)])
            k += 1
            g = cv2.resize((img / 16.0).astype(np.float32), (obj, obj), interpolation=cv2.INTER_CUBIC).clip(0, 1)
            if transform is not None:
                g = transform(g)
            mask = np.zeros((size, size), bool)
            mask[sy : sy + obj, sx : sx + obj] = g > 0.35
            if not mask.any():
                continue
            color = np.array(stroke, np.float32)
            patch = rgb[sy : sy + obj, sx : sx + obj].astype(np.float32)
            alpha = g[..., None]
            rgb[sy : sy + obj, sx : sx + obj] = (patch * (1 - alpha) + color * alpha).astype(np.uint8)
            objects.append((label + 1, mask))
        frames.append((rgb, objects))
    return frames


@pytest.fixture
def make_dataset(
    tmp_path: Path, photos: list[np.ndarray], digits: tuple[np.ndarray, np.ndarray]
) -> Callable[..., Path]:
    """``make_dataset(name, photo=0, n_frames=6, offset=0, transform=None, **kw)`` -> dataset folder."""

    def make(name: str, *, photo: int = 0, n_frames: int = 6, offset: int = 0,
             transform: Callable[[np.ndarray], np.ndarray] | None = None, seed: int = 0, **kw: Any) -> Path:  # fmt: skip
        images, labels = digits
        frames = digit_scenes(photos[photo], images[offset:], labels[offset:], n_frames=n_frames, seed=seed,
                              transform=transform)  # fmt: skip
        return write_dataset(tmp_path / name, frames, seed=seed, **kw)

    return make


@pytest.fixture
def tiny_torchscript(tmp_path: Path) -> Callable[[Path, int], Path]:
    """``tiny_torchscript(path, dim=2048)``: save a tiny scripted net mapping (N, 3, S, S) to (N, dim)."""
    pytest.importorskip("torch")
    from simgen.testing.tiny_extractor import write_tiny_extractor

    return write_tiny_extractor
