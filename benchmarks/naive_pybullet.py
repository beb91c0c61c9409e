"""A plain PyBullet dataset script written the way PyBullet's docs and examples teach.

It is the baseline (c) of benchmarks/throughput.py: the default renderer, a fresh scene dropped and
settled for every frame, boxes from the segmentation mask, and the same files simgen writes (RGB PNG,
16-bit depth PNG in mm, 16-bit instance PNG, boxes as JSON). It is deliberately not simgen code.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pybullet as p
import pybullet_data

ASSETS = [
    "duck_vhacd.urdf", "objects/mug.urdf", "teddy_vhacd.urdf", "lego/lego.urdf", "jenga/jenga.urdf",
    "cube_small.urdf", "sphere_small.urdf", "random_urdfs/000/000.urdf",
]  # fmt: skip


def main(out: Path, n_frames: int, n_objects: int = 30, width: int = 640, height: int = 480, seed: int = 0) -> float:
    """Render n_frames into out; return frames per second."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "depth", "instances", "boxes"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    p.connect(p.DIRECT)
    p.setAdditionalSearchPath(pybullet_data.getDataPath())
    near, far = 0.05, 6.0
    start = time.perf_counter()
    for frame in range(n_frames):
        p.resetSimulation()
        p.setGravity(0, 0, -9.81)
        p.loadURDF("plane.urdf")
        p.loadURDF("table/table.urdf", useFixedBase=True)
        ids = []
        for _ in range(n_objects):
            pos = [rng.uniform(-0.35, 0.35), rng.uniform(-0.22, 0.22), 0.68 + rng.uniform(0, 0.35)]
            orn = p.getQuaternionFromEuler(rng.uniform(-math.pi, math.pi, 3).tolist())
            ids.append(p.loadURDF(ASSETS[rng.integers(len(ASSETS))], pos, orn))
        for _ in range(1000):  # let the objects fall and settle
            p.stepSimulation()
        dist, yaw, pitch = rng.uniform(0.8, 1.3), rng.uniform(-180, 180), -rng.uniform(35, 75)
        view = p.computeViewMatrixFromYawPitchRoll([0, 0, 0.63], dist, yaw, pitch, 0, 2)
        proj = p.computeProjectionMatrixFOV(55, width / height, near, far)
        _, _, rgba, depth_buf, seg = p.getCameraImage(width, height, view, proj)
        rgb = np.reshape(rgba, (height, width, 4))[:, :, :3].astype(np.uint8)
        depth_buf = np.reshape(depth_buf, (height, width))
        depth = far * near / (far - (far - near) * depth_buf)
        seg = np.reshape(seg, (height, width))
        boxes = []
        for body in ids:
            ys, xs = np.where(seg == body)
            if len(xs):
                boxes.append({"body": body, "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                                     int(ys.max() - ys.min() + 1)], "area": int(len(xs))})
        cv2.imwrite(str(out / "images" / f"{frame:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / "depth" / f"{frame:06d}.png"), np.clip(depth * 1000, 0, 65535).astype(np.uint16))
        cv2.imwrite(str(out / "instances" / f"{frame:06d}.png"), np.clip(seg, 0, 65535).astype(np.uint16))
        (out / "boxes" / f"{frame:06d}.json").write_text(json.dumps(boxes))
    elapsed = time.perf_counter() - start
    p.disconnect()
    return n_frames / elapsed


if __name__ == "__main__":
    print(f"{main(Path(sys.argv[1]), int(sys.argv[2])):.3f}")
