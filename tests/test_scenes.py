"""Every scene in scenes/ generates through the real engine (tiny resolution, one scene)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pycocotools.coco import COCO

from simgen.engine import generate
from simgen.spec import load_spec, read_spec_file

SCENES = sorted((Path(__file__).resolve().parents[1] / "scenes").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENES, ids=lambda p: p.stem)
def test_scene_generates(path: Path, tmp_path: Path) -> None:
    raw = read_spec_file(path)
    raw["frames_per_scene"] = 2
    raw["physics"] = {**raw.get("physics", {}), "max_steps": 240}
    loaded = load_spec(raw, base_dir=path.parent)
    result = generate(loaded, tmp_path / path.stem, n_frames=2, seed=1, resolution=(128, 96))
    coco = COCO(str(tmp_path / path.stem / "annotations.coco.json"))
    assert len(coco.getImgIds()) == 2
    assert len(coco.getAnnIds()) > 0, f"{path.stem}: no object was labeled"
    assert result.dataset["spec_name"] == raw["name"]
