"""Inputs for the mix tests: a plain COCO folder of real photos, a tiny simgen image dataset, real tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def syn_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simgen image dataset: 4 frames of the default scene at 64x48 (PyBullet TinyRenderer)."""
    from simgen.engine import generate
    from simgen.spec import load_spec, read_spec_file

    spec = load_spec(read_spec_file(REPO / "scenes" / "tabletop_clutter.yaml"), base_dir=REPO / "scenes")
    out = tmp_path_factory.mktemp("syn") / "ds"
    generate(spec, out, n_frames=4, seed=2, workers=1, renderer="tiny", resolution=(64, 48))
    return out


@pytest.fixture(scope="session")
def real_coco(tmp_path_factory: pytest.TempPathFactory, syn_images: Path) -> Path:
    """A plain COCO folder as a labelling tool exports it: photos under photos/, ``instances.json``, no simgen files.

    The photos are crops of the two real photographs scikit-learn bundles (china.jpg, flower.jpg). Its categories have their own ids; one of
    them shares its name with a category of the synthetic set, so the mix must merge them by name.
    """
    import cv2
    from sklearn.datasets import load_sample_image

    root = tmp_path_factory.mktemp("real")
    (root / "photos").mkdir()
    syn_cat = json.loads((syn_images / "annotations.coco.json").read_text())["categories"][0]["name"]
    china, flower = load_sample_image("china.jpg"), load_sample_image("flower.jpg")
    photos = [china[100:], flower[50:], china[200:, 300:], flower[:, 200:], china[::-1], flower[:, ::-1]]
    images, annotations = [], []
    for i, photo in enumerate(photos):
        crop = np.ascontiguousarray(photo[:96, :128])
        cv2.imwrite(str(root / "photos" / f"p{i}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        images.append({"id": 100 + i, "file_name": f"photos/p{i}.jpg", "width": 128, "height": 96})
        annotations.append({"id": 500 + i, "image_id": 100 + i, "category_id": 7 if i % 2 else 3,
                            "bbox": [10.0, 12.0, 30.0, 20.0], "area": 600.0, "iscrowd": 0})  # fmt: skip
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": 3, "name": syn_cat, "supercategory": "thing"}, {"id": 7, "name": "cat"}]}  # fmt: skip
    (root / "instances.json").write_text(json.dumps(coco))
    return root


@pytest.fixture(scope="session")
def wine_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's 178 real wines as a CSV file."""
    from sklearn.datasets import load_wine

    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    load_wine(as_frame=True).frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def syn_table(tmp_path_factory: pytest.TempPathFactory, wine_csv: Path) -> Path:
    """A simgen table dataset: 240 rows sampled from a Gaussian copula fitted to the wines."""
    from simgen.generators.tabular.run import fit_table, sample_table

    root = tmp_path_factory.mktemp("syntable")
    fit_table(wine_csv, seed=0).save(root / "model")
    sample_table(root / "model", root / "ds", n_rows=240, seed=1, rows_per_block=100)
    return root / "ds"
