"""Randomizers through the real engine: sensor effects never touch labels; appearance changes pixels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from simgen.engine import generate
from simgen.spec import load_spec, read_spec_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenes" / "tabletop_clutter.yaml"
SENSOR_EFFECTS = [
    {"type": "sensor/gaussian-noise-v1", "sigma": 6.0},
    {"type": "sensor/motion-blur-v1", "length_px": 5.0},
    {"type": "sensor/jpeg-v1", "quality": 30},
    {"type": "sensor/exposure-v1", "ev": 0.7},
    {"type": "sensor/vignette-v1"},
    {"type": "sensor/chromatic-aberration-v1"},
    {"type": "sensor/dead-pixels-v1"},
]


def spec_with(randomizers: list[dict], **changes):
    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = 6
    raw["frames_per_scene"] = 2
    raw["physics"]["max_steps"] = 300
    raw["randomizers"] = randomizers
    raw.update(changes)
    return load_spec(raw, base_dir=DEFAULT.parent)


def images(root: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted((root / "images").glob("*.png"))]


@pytest.mark.slow
def test_sensor_effects_leave_every_annotation_byte_identical(tmp_path: Path) -> None:
    kwargs = {"n_frames": 4, "seed": 9, "resolution": (96, 72)}
    generate(spec_with([]), tmp_path / "plain", **kwargs)
    generate(spec_with(SENSOR_EFFECTS), tmp_path / "sensor", **kwargs)
    for name in [f"{d}/{i:06d}.png" for d in ("depth", "instances") for i in range(4)]:
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "sensor" / name).read_bytes(), name
    # The COCO header names the spec (its hash differs); every image and annotation line is byte-identical.
    plain = (tmp_path / "plain/annotations.coco.json").read_text().splitlines()
    sensor = (tmp_path / "sensor/annotations.coco.json").read_text().splitlines()
    assert len(plain) > 4 and plain[1:] == sensor[1:]
    for a, b in zip(images(tmp_path / "plain"), images(tmp_path / "sensor"), strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 2.0  # the effects did change the pixels


@pytest.mark.slow
def test_object_colour_randomizer_changes_object_pixels_between_seeds(tmp_path: Path) -> None:
    color = [{"type": "appearance/color-v1", "tags": ["clutter"]}]
    kwargs = {"n_frames": 2, "resolution": (96, 72)}
    # Same scene layout (no colour draws in the core randomizers), different colour draws:
    generate(spec_with([]), tmp_path / "none", seed=4, **kwargs)
    generate(spec_with(color), tmp_path / "color", seed=4, **kwargs)
    ids = cv2.imread(str(tmp_path / "none/instances/000000.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(ids, cv2.imread(str(tmp_path / "color/instances/000000.png"), cv2.IMREAD_UNCHANGED))
    objects = ids > 0
    a, b = images(tmp_path / "none")[0], images(tmp_path / "color")[0]
    assert np.abs(a[objects].astype(int) - b[objects].astype(int)).mean() > 10
    assert np.abs(a[~objects].astype(int) - b[~objects].astype(int)).mean() < 10  # the rest barely changes
