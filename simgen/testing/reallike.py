"""A "real-like" labeled image domain whose right answer is known, for testing and benchmarking ``simgen tune``.

No real labeled tabletop photos exist offline, so this module makes a stand-in that is *not* produced by
simgen's own code paths: it drives PyBullet directly (its own client, bodies, physics, camera and
TinyRenderer call; nothing from :mod:`simgen.backends`, :mod:`simgen.randomizers` or :mod:`simgen.engine`),
composites the renders onto real photographs (the two photos bundled with scikit-learn, China and Flower),
and runs every image through a camera pipeline written here (defocus, a warm white balance, vignetting,
read and shot noise, JPEG via OpenCV). Labels are COCO with pycocotools RLE masks, from PyBullet's
segmentation buffer.

What makes the answer known:

- every category has its own **fixed colour**, and two categories (``red_block``, ``blue_block``) share one
  geometry, so colour is what tells them apart: randomizing object colours (``appearance/color-v1``) must
  hurt a classifier trained on synthetic crops and tested on these;
- every image has a **photographic background** and a **camera pipeline**, so ``background/photo-v1`` and
  the sensor randomizers should help.

:func:`write_domain` writes a real set, a folder of background photos (other crops of the same two
photos, as a user would shoot their own environment) and a hand-written spec that switches everything
on, colour randomization included, with weak sensor settings: the starting point a tuner should improve.
Needs scikit-learn (the ``metrics`` extra) for the photos.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pybullet as p
import pybullet_data
from pycocotools import mask as mask_utils

from simgen.errors import DependencyMissing

__all__ = [
    "OBJECTS",
    "RealLikeDomain",
    "RealObject",
    "camera_pipeline",
    "hand_written_spec",
    "photos",
    "render_real_set",
    "write_backgrounds",
    "write_domain",
]


@dataclass(frozen=True)
class RealObject:
    """One object category of the real-like domain.

    Attributes:
        category: The COCO category name.
        urdf: Path inside pybullet_data.
        rgba: Its own fixed colour (PyBullet multiplies a texture by it).
        scale: PyBullet's ``globalScaling``.
    """

    category: str
    urdf: str
    rgba: tuple[float, float, float, float]
    scale: float = 1.0


#: The categories. Both blocks are the same cube: only their colours tell them apart.
OBJECTS: tuple[RealObject, ...] = (
    RealObject("duck", "duck_vhacd.urdf", (1.0, 0.82, 0.15, 1.0)),
    RealObject("mug", "objects/mug.urdf", (0.1, 0.6, 0.55, 1.0)),
    RealObject("red_block", "cube_small.urdf", (0.85, 0.12, 0.1, 1.0), 1.6),
    RealObject("blue_block", "cube_small.urdf", (0.12, 0.22, 0.85, 1.0), 1.6),
)

#: The camera shell of the real images (the hand-written spec guesses close to it).
CAMERA = {"distance": (0.45, 0.7), "elevation_deg": (35.0, 70.0), "fov_deg": 50.0, "target": (0.0, 0.0, 0.02)}


def photos() -> list[np.ndarray]:
    """The two real photos bundled with scikit-learn (China and Flower), RGB uint8, 427 x 640.

    Raises:
        DependencyMissing: scikit-learn is not installed (the ``metrics`` extra).
    """
    try:
        from sklearn.datasets import load_sample_images
    except ImportError as exc:
        raise DependencyMissing("scikit-learn", "metrics", "the real-like test domain's photos") from exc
    return [np.array(im, copy=True) for im in load_sample_images().images]


def _photo_crop(photo: np.ndarray, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random crop of a photo (a third to all of its height), resized to ``width`` x ``height``, maybe flipped."""
    ph, pw = photo.shape[:2]
    ch = int(rng.integers(ph // 3, ph + 1))
    cw = min(pw, round(ch * width / height))
    y0 = int(rng.integers(0, ph - ch + 1))
    x0 = int(rng.integers(0, pw - cw + 1))
    crop = cv2.resize(photo[y0 : y0 + ch, x0 : x0 + cw], (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop[:, ::-1]) if rng.integers(2) else crop


def camera_pipeline(rgb: np.ndarray, rng: np.random.Generator, *, jpeg_quality: int | None = None) -> bytes:
    """This domain's camera: defocus, warm white balance, vignetting, read and shot noise, then JPEG.

    Args:
        rgb: The composited image, uint8 (H, W, 3).
        rng: Draws the per-image settings and the noise.
        jpeg_quality: Fixed JPEG quality (default: drawn in [55, 80]).

    Returns:
        The JPEG file's bytes.
    """
    h, w = rgb.shape[:2]
    img = rgb.astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=float(rng.uniform(0.7, 1.3)))
    img *= np.array([1.08, 1.0, 0.88], np.float32)  # a warm cast, like an incandescent-lit room
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - (w - 1) / 2) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2
    img *= (1.0 - 0.3 * np.clip(r2 / 2.0, 0.0, 1.0))[..., None]
    photons = float(rng.uniform(150.0, 400.0))  # shot noise: Poisson in photon counts at full scale
    img = rng.poisson(np.clip(img, 0, 255) / 255.0 * photons).astype(np.float32) * (255.0 / photons)
    img += rng.normal(0.0, float(rng.uniform(2.0, 5.0)), img.shape).astype(np.float32)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    quality = int(rng.integers(55, 81)) if jpeg_quality is None else int(jpeg_quality)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


class _Scene:
    """One PyBullet client of its own (DIRECT), with a plane for settling that is removed before rendering."""

    def __init__(self) -> None:
        self.cid = p.connect(p.DIRECT)
        self.data = Path(pybullet_data.getDataPath())

    def close(self) -> None:
        p.disconnect(self.cid)

    def build(self, rng: np.random.Generator, n_objects: int) -> dict[int, str]:
        """Drop ``n_objects`` random objects on a plane, settle them, remove the plane; return body -> category."""
        cid = self.cid
        p.resetSimulation(physicsClientId=cid)
        p.setGravity(0, 0, -9.81, physicsClientId=cid)
        plane = p.loadURDF(str(self.data / "plane.urdf"), physicsClientId=cid)
        bodies: dict[int, str] = {}
        for k in range(n_objects):
            obj = OBJECTS[int(rng.integers(len(OBJECTS)))]
            xy = rng.uniform(-0.14, 0.14, size=2)
            yaw = float(rng.uniform(-math.pi, math.pi))
            quat = p.getQuaternionFromEuler([0.0, 0.0, yaw])
            body = p.loadURDF(
                str(self.data / obj.urdf),
                [float(xy[0]), float(xy[1]), 0.05 + 0.08 * k],
                quat,
                globalScaling=obj.scale,
                physicsClientId=cid,
            )
            for link in range(-1, p.getNumJoints(body, physicsClientId=cid)):
                p.changeVisualShape(body, link, rgbaColor=list(obj.rgba), physicsClientId=cid)
            bodies[body] = obj.category
        for _ in range(360):
            p.stepSimulation(physicsClientId=cid)
        p.removeBody(plane, physicsClientId=cid)
        return bodies

    def render(self, rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB and the body-id segmentation (-1 = nothing) from a random camera on the shell."""
        distance = float(rng.uniform(*CAMERA["distance"]))
        yaw = float(rng.uniform(-180.0, 180.0))
        elevation = float(rng.uniform(*CAMERA["elevation_deg"]))
        view = p.computeViewMatrixFromYawPitchRoll(
            list(CAMERA["target"]), distance, yaw, -elevation, 0.0, 2, physicsClientId=self.cid
        )
        proj = p.computeProjectionMatrixFOV(CAMERA["fov_deg"], width / height, 0.05, 5.0, physicsClientId=self.cid)
        az, el = math.radians(float(rng.uniform(0, 360))), math.radians(float(rng.uniform(35, 80)))
        light = [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]
        _, _, rgba, _, seg = p.getCameraImage(
            width,
            height,
            view,
            proj,
            lightDirection=light,
            shadow=1,
            lightAmbientCoeff=0.55,
            lightDiffuseCoeff=0.45,
            renderer=p.ER_TINY_RENDERER,
            physicsClientId=self.cid,
        )
        rgb = np.asarray(rgba, np.uint8).reshape(height, width, 4)[:, :, :3]
        return np.ascontiguousarray(rgb), np.asarray(seg, np.int32).reshape(height, width)


def render_real_set(
    out: str | Path,
    *,
    n_images: int,
    seed: int = 0,
    width: int = 320,
    height: int = 240,
    objects_per_image: tuple[int, int] = (2, 4),
    min_pixels: int = 40,
) -> Path:
    """Write a labeled real-like COCO set: ``out/annotations.coco.json`` and ``out/images/NNNNNN.jpg``.

    Args:
        out: The folder (created).
        n_images: Images to write.
        seed: Everything drawn (objects, poses, camera, light, backgrounds, camera pipeline) follows it.
        width: Image width.
        height: Image height.
        objects_per_image: Inclusive range of objects dropped per image.
        min_pixels: Objects with fewer visible pixels get no annotation.

    Returns:
        ``out``.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x2EA1]))
    backgrounds = photos()
    categories = [{"id": i + 1, "name": o.category} for i, o in enumerate(OBJECTS)]
    cat_id = {c["name"]: c["id"] for c in categories}
    images, annotations = [], []
    scene = _Scene()
    try:
        for i in range(n_images):
            bodies = scene.build(rng, int(rng.integers(objects_per_image[0], objects_per_image[1] + 1)))
            rgb, seg = scene.render(rng, width, height)
            photo = _photo_crop(backgrounds[int(rng.integers(len(backgrounds)))], rng, width, height)
            composite = np.where((seg < 0)[..., None], photo, rgb)
            name = f"images/{i:06d}.jpg"
            (out / name).write_bytes(camera_pipeline(composite, rng))
            images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
            for body, category in bodies.items():
                mask = seg == body
                if int(mask.sum()) < min_pixels:
                    continue
                rle = _rle(mask)
                x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": i + 1,
                        "category_id": cat_id[category],
                        "bbox": [x, y, w, h],
                        "area": int(mask.sum()),
                        "segmentation": rle,
                        "iscrowd": 0,
                    }
                )
    finally:
        scene.close()
    coco = {
        "info": {"description": f"simgen real-like domain (seed {seed})"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    (out / "annotations.coco.json").write_text(json.dumps(coco), encoding="utf-8")
    return out


def write_backgrounds(folder: str | Path, *, n: int = 12, seed: int = 1, width: int = 640, height: int = 480) -> Path:
    """Write ``n`` background photos (crops of the two photos) as JPEG files for ``background/photo-v1``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB6]))
    pool = photos()
    for i in range(n):
        crop = _photo_crop(pool[i % len(pool)], rng, width, height)
        cv2.imwrite(
            str(folder / f"bg{i:02d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
        )
    return folder


def hand_written_spec(
    *, photos_folder: str = "photos", width: int = 320, height: int = 240, randomizers: Sequence[str] | None = None
) -> dict[str, Any]:
    """The spec a user would write first for this domain: the right objects, everything randomized.

    Args:
        photos_folder: The background folder, relative to where the spec is written.
        width: Image width.
        height: Image height.
        randomizers: Keep only these randomizer types (default: all six).

    Returns:
        The spec as a mapping (dump it as YAML next to ``photos_folder``).
    """
    groups = [
        {
            "name": o.category,
            "assets": [{"asset": f"pybullet_data:{o.urdf}", "category": o.category}],
            "count": {"kind": "intrange", "low": 0, "high": 2},
            "color": list(o.rgba),
            "region": {"center": [0.0, 0.0, 0.05], "size": [0.28, 0.28, 0.0]},
            "drop_height": 0.05,
            **({"scale": o.scale} if o.scale != 1.0 else {}),
        }
        for o in OBJECTS
    ]
    every = [
        # Colour randomization "because everyone does it": wrong here, every real object keeps its colour.
        {"type": "appearance/color-v1", "saturation": {"kind": "uniform", "low": 0.3, "high": 1.0}},
        {"type": "background/photo-v1", "folder": photos_folder, "replace": "non-objects"},
        # The user's guesses at the camera: too clean.
        {"type": "sensor/defocus-blur-v1", "radius_px": {"kind": "uniform", "low": 0.0, "high": 0.4}},
        {"type": "sensor/gaussian-noise-v1", "sigma": {"kind": "uniform", "low": 0.0, "high": 1.5}},
        {"type": "sensor/jpeg-v1", "quality": {"kind": "intrange", "low": 90, "high": 100}},
        {"type": "sensor/vignette-v1"},
    ]
    keep = set(randomizers) if randomizers is not None else None
    chosen = [r for r in every if keep is None or r["type"] in keep]
    return {
        "version": 1,
        "name": "reallike_hand_written",
        "description": "Hand-written spec for simgen.testing.reallike: the right objects, everything randomized.",
        "frames_per_scene": 4,
        "ground": {"kind": "plane"},
        "objects": groups,
        "camera": {
            "width": width,
            "height": height,
            "fov_deg": CAMERA["fov_deg"],
            "look_at": {
                "target": list(CAMERA["target"]),
                "distance": {"kind": "uniform", "low": 0.45, "high": 0.7},
                "azimuth_deg": {"kind": "uniform", "low": -180, "high": 180},
                "elevation_deg": {"kind": "uniform", "low": 35, "high": 70},
            },
        },
        "light": {
            "azimuth_deg": {"kind": "uniform", "low": -180, "high": 180},
            "elevation_deg": {"kind": "uniform", "low": 35, "high": 80},
        },
        "physics": {"max_steps": 600},
        "labels": {"min_visible_px": 40},
        "randomizers": chosen,
    }


@dataclass(frozen=True)
class RealLikeDomain:
    """What :func:`write_domain` wrote.

    Attributes:
        real: The real-like COCO set folder.
        spec: The hand-written spec file.
        photos: The background photo folder the spec uses.
    """

    real: Path
    spec: Path
    photos: Path


def write_domain(
    root: str | Path,
    *,
    n_real: int = 60,
    seed: int = 0,
    width: int = 320,
    height: int = 240,
    randomizers: Sequence[str] | None = None,
) -> RealLikeDomain:
    """Write a real-like set, a background folder and the hand-written spec under ``root``.

    Args:
        root: The folder (created): ``real/``, ``spec/hand.yaml`` and ``spec/photos/``.
        n_real: Real images.
        seed: Seed of the real set (the backgrounds use ``seed + 1``).
        width: Image width of the real set and the spec.
        height: Image height.
        randomizers: Keep only these randomizer types in the spec (default: all).

    Returns:
        The paths.
    """
    import yaml

    root = Path(root)
    real = render_real_set(root / "real", n_images=n_real, seed=seed, width=width, height=height)
    photos_dir = write_backgrounds(root / "spec" / "photos", seed=seed + 1)
    spec = root / "spec" / "hand.yaml"
    spec.write_text(
        yaml.safe_dump(hand_written_spec(width=width, height=height, randomizers=randomizers), sort_keys=False),
        encoding="utf-8",
    )
    return RealLikeDomain(real, spec, photos_dir)
