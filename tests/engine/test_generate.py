"""End-to-end generation through the real PyBullet backend, labels and writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from typer.testing import CliRunner

from simgen.cli import app
from simgen.engine import generate
from simgen.spec import load_spec, read_spec_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenes" / "tabletop_clutter.yaml"


def small_spec(count: int = 6):
    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = count
    raw["frames_per_scene"] = 2
    raw["physics"]["max_steps"] = 400
    return load_spec(raw, base_dir=DEFAULT.parent)


def tree_bytes(root: Path, parts: tuple[str, ...] = ("images", "depth", "instances")) -> dict[str, bytes]:
    files = {}
    for part in parts:
        for p in sorted((root / part).glob("*.png")):
            files[str(p.relative_to(root))] = p.read_bytes()
    files["annotations.coco.json"] = (root / "annotations.coco.json").read_bytes()
    return files


@pytest.mark.slow
def test_cli_generate_then_inspect(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    runner = CliRunner()
    result = runner.invoke(
        app, ["generate", str(DEFAULT), "-n", "4", "-o", str(out), "--seed", "7", "--resolution", "160x120"]
    )
    assert result.exit_code == 0, result.output
    coco = COCO(str(out / "annotations.coco.json"))
    assert len(coco.getImgIds()) == 4
    assert len(coco.getAnnIds()) > 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["seed"] == 7 and meta["renderer"] in ("egl", "tiny") and meta["spec_sha256"]
    assert meta["spec"]["camera"]["width"] == 160
    assert meta["packages"]["pybullet"]
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0, 1, 2, 3]
    first = json.loads(lines[0])
    assert "scene_patches" in first and first["timings_ms"]["render"] > 0
    assert (out / "preview.png").stat().st_size > 1000

    # A non-empty folder is never overwritten silently.
    again = runner.invoke(app, ["generate", str(DEFAULT), "-n", "4", "-o", str(out)])
    assert again.exit_code == 2
    assert "--resume" in again.output and "--overwrite" in again.output

    shown = runner.invoke(app, ["inspect", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "objects per frame" in shown.output


@pytest.mark.slow
def test_one_and_two_workers_give_identical_bytes(tmp_path: Path) -> None:
    spec = small_spec()
    a = generate(spec, tmp_path / "w1", n_frames=8, seed=3, workers=1, resolution=(96, 72), shard_frames=2)
    b = generate(spec, tmp_path / "w2", n_frames=8, seed=3, workers=2, resolution=(96, 72), shard_frames=4)
    assert a.renderer == b.renderer
    ta, tb = tree_bytes(tmp_path / "w1"), tree_bytes(tmp_path / "w2")
    assert ta.keys() == tb.keys() and len(ta) == 8 * 3 + 1
    assert [k for k in ta if ta[k] != tb[k]] == []


@pytest.mark.slow
def test_different_seeds_differ(tmp_path: Path) -> None:
    spec = small_spec(3)
    generate(spec, tmp_path / "a", n_frames=2, seed=1, resolution=(64, 48))
    generate(spec, tmp_path / "b", n_frames=2, seed=2, resolution=(64, 48))
    assert (tmp_path / "a/images/000000.png").read_bytes() != (tmp_path / "b/images/000000.png").read_bytes()


def test_bad_spec_through_the_cli_is_one_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = {"kind": "intrang", "low": 1, "high": 2}
    import yaml

    bad.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["generate", str(bad), "-n", "1", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "objects[0].count: unknown distribution kind 'intrang' (did you mean 'intrange'?)" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_recycling_the_egl_client_changes_no_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import simgen.backends.pybullet_backend as pybullet_backend
    from simgen.backends.base import Recycling
    from simgen.engine.worker import close_backends

    spec = small_spec(4)
    a = generate(spec, tmp_path / "plain", n_frames=6, seed=2, resolution=(64, 48))
    close_backends()
    monkeypatch.setattr(pybullet_backend, "EGL_RECYCLING", Recycling(1, 1))  # a fresh client for every scene
    b = generate(spec, tmp_path / "recycled", n_frames=6, seed=2, resolution=(64, 48))
    assert a.renderer == b.renderer
    assert tree_bytes(tmp_path / "plain") == tree_bytes(tmp_path / "recycled")


def test_rgb_off_coco_names_the_depth_image_and_the_preview_shows_it(tmp_path: Path) -> None:
    import yaml

    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = 3
    raw["frames_per_scene"] = 2
    raw["physics"]["max_steps"] = 200
    raw["outputs"] = {"rgb": False}
    spec = tmp_path / "no_rgb.yaml"
    spec.write_text(yaml.safe_dump(raw))
    out = tmp_path / "ds"
    args = ["generate", str(spec), "-n", "2", "-o", str(out), "--resolution", "64x48", "--renderer", "tiny"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output  # the preview step used to exit 2 here
    assert (out / "preview.png").is_file()
    coco = json.loads((out / "annotations.coco.json").read_text())
    assert [img["file_name"] for img in coco["images"]] == ["depth/000000.png", "depth/000001.png"]
    assert all((out / img["file_name"]).is_file() for img in coco["images"])
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["coco_images"] == "depth" and "rgb" not in meta["files"]
    assert not (out / "images").exists()  # no folder for an output that is off


def test_no_image_output_at_all_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from simgen.errors import SimgenError

    raw = read_spec_file(DEFAULT)
    raw["outputs"] = {"rgb": False, "depth": False, "instances": False}
    with pytest.raises(SimgenError, match="at least one of them"):
        generate(load_spec(raw, base_dir=DEFAULT.parent), tmp_path / "o", n_frames=1, resolution=(64, 48))
    assert not (tmp_path / "o").exists()
