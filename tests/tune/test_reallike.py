"""The real-like domain: valid COCO, objects in their own fixed colours, seeded, and no simgen rendering code."""

from __future__ import annotations

import ast
import colorsys
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

import simgen.testing.reallike as reallike

pytest.importorskip("sklearn")


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_the_real_set_is_valid_coco_in_fixed_colours_and_seeded(tmp_path):
    root = reallike.render_real_set(tmp_path / "a", n_images=8, seed=3)
    coco = COCO(str(root / "annotations.coco.json"))
    assert len(coco.getImgIds()) == 8 and len(coco.getAnnIds()) >= 12
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    hue_of = {o.category: colorsys.rgb_to_hsv(*o.rgba[:3])[0] for o in reallike.OBJECTS}
    right = 0
    for ann in coco.loadAnns(coco.getAnnIds()):
        img = coco.loadImgs(ann["image_id"])[0]
        rgb = cv2.cvtColor(cv2.imread(str(root / img["file_name"])), cv2.COLOR_BGR2RGB)
        mask = mask_utils.decode(ann["segmentation"]).astype(bool)
        assert mask.sum() == ann["area"] and np.allclose(mask_utils.toBbox(ann["segmentation"]), ann["bbox"])
        mean = rgb[mask].mean(axis=0) / 255.0
        hue = colorsys.rgb_to_hsv(*mean)[0]
        dist = {c: min(abs(hue - h), 1 - abs(hue - h)) for c, h in hue_of.items()}
        right += min(dist, key=dist.get) == names[ann["category_id"]]
    # Each object keeps its own colour (through shading, the camera's warm cast, noise and JPEG).
    assert right / len(coco.getAnnIds()) >= 0.9
    assert _digest(root) == _digest(reallike.render_real_set(tmp_path / "b", n_images=8, seed=3))
    assert _digest(root) != _digest(reallike.render_real_set(tmp_path / "c", n_images=8, seed=4))


def test_the_domain_uses_no_simgen_rendering_or_randomizer_code():
    tree = ast.parse(Path(reallike.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in imported if m and m.startswith("simgen")} == {"simgen.errors"}


def test_write_domain_writes_a_spec_that_loads(tmp_path):
    from simgen.spec import load_spec

    d = reallike.write_domain(tmp_path, n_real=2, randomizers=["appearance/color-v1", "background/photo-v1"])
    loaded = load_spec(d.spec)
    assert [r.type for r in loaded.spec.randomizers] == ["appearance/color-v1", "background/photo-v1"]
    cats = {c["name"] for c in json.loads((d.real / "annotations.coco.json").read_text())["categories"]}
    from simgen.engine import categories

    assert set(categories(loaded)) == cats
    assert len(list(d.photos.glob("*.jpg"))) == 12
