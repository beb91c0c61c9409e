"""Scenario files through the real engine: design cells per scene, ``require`` on the rendered labels, coverage.

Every check reads the written dataset (COCO, manifest, dataset.json) through the real ``generate`` path and
the CLI; tiny renders (TinyRenderer, 96x72) keep each run to a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from simgen.cli import app
from simgen.engine import generate
from simgen.errors import RequireUnmet
from simgen.scenarios import evaluate, frame_labels_from_coco, frame_require_rng, load_scenario
from simgen.spec import read_spec_file

SCENES = Path(__file__).resolve().parents[2] / "scenes"
TINY: dict[str, Any] = {"renderer": "tiny", "resolution": (96, 72)}


def scenario(require: list[dict[str, Any]] | None = None, max_attempts: int = 40) -> dict[str, Any]:
    """tabletop_clutter, made small, with a pairwise design over three factors (2 x 2 x 2 levels)."""
    data = read_spec_file(SCENES / "tabletop_clutter.yaml")
    data["frames_per_scene"] = 2
    data["physics"]["max_steps"] = 240
    data["objects"][0]["count"] = {"kind": "intrange", "low": 3, "high": 6}
    data["objects"].append(
        {
            "name": "mugs",
            "assets": [{"asset": "pybullet_data:objects/mug.urdf", "category": "mug"}],
            "count": 2,
            "tags": ["target"],
            "region": {"center": [0.0, 0.0, 0.68], "size": [0.3, 0.2, 0.0]},
        }
    )
    data["labels"]["visibility"] = True
    data["factors"] = {
        "lighting": {"levels": {"dark": {"light": {"intensity": 0.3, "ambient": 0.1}}, "normal": None}},
        "clutter": {"levels": {"sparse": {"objects[name=clutter].count": 3}, "dense": {"objects[0]": {"count": 8}}}},
        "fov": {"path": "camera.fov_deg", "range": [40, 70], "steps": 2},
    }
    data["design"] = "pairwise"
    if require is not None:
        data["require"] = {"constraints": require, "max_attempts": max_attempts}
    return data


#: At least one object seen at all, and both mugs visible with 20+ pixels: the second often fails.
REQUIRE = [
    {"name": "anything", "select": {"visibility": {"ge": 0.0}}, "ge": 1},
    {"name": "two_mugs", "select": {"category": "mug", "visible_px": {"ge": 20}}, "ge": 2},
]


def write(tmp_path: Path, data: dict[str, Any], name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def coco_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "annotations.coco.json").read_text())


def manifest_of(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]


def frame_bytes(out: Path) -> dict[str, bytes]:
    """Every file but those that carry timings or the run's own settings."""
    skip = {"manifest.jsonl", "dataset.json", "preview.png"}
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in skip and ".shards" not in p.parts and not p.name.startswith(".")
    }


def test_factor_file_renders_each_scene_in_its_design_cell(tmp_path):
    path = write(tmp_path, scenario())
    out = tmp_path / "out"
    result = generate(path, out, n_frames=8, seed=5, **TINY)
    design = load_scenario(path).design(5)
    assert design is not None and design.kind == "pairwise"
    coco = coco_of(out)
    assert len(coco["images"]) == 8
    for image in coco["images"]:
        i = image["frame_index"]
        assert image["scenario_cell"] == design.record(i)
        assert image["scenario_cell"]["index"] == design.cell_index_for_scene(i // 2)
    # Scenes take the cells round robin: 4 scenes here, so 4 different cells.
    assert len({json.dumps(im["scenario_cell"], sort_keys=True) for im in coco["images"]}) == 4
    for line in manifest_of(out):
        assert line["scenario_cell"] == design.record(line["frame"])
    # The cells really change the scene: a sparse cell has 3 + 2 objects, a dense one 8 + 2.
    counts = {line["frame"]: line["n_objects"] for line in manifest_of(out)}
    for i, n in counts.items():
        assert n == (5 if design.assign(i)["clutter"] == "sparse" else 10)
    record = result.dataset["scenario"]
    assert record["design"]["kind"] == "pairwise" and len(record["design"]["cells"]) == len(design.cells)
    assert "rejection" not in record and "require" not in manifest_of(out)[0]
    assert [c["name"] for c in result.dataset["categories"]][:1] == ["duck"]


def test_require_holds_on_every_written_frame_from_coco_alone(tmp_path):
    path = write(tmp_path, scenario(REQUIRE))
    out = tmp_path / "out"
    result = generate(path, out, n_frames=8, seed=1, **TINY)
    coco = coco_of(out)
    constraints = load_scenario(path).require.constraints
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    assert len(coco["images"]) == 8
    for image in coco["images"]:
        labels = frame_labels_from_coco(image, by_image.get(image["id"], []), coco["categories"])
        results = evaluate(constraints, labels, frame_require_rng(1, image["frame_index"]))
        assert all(r.passed for r in results), (image["frame_index"], results)
    rejection = result.dataset["scenario"]["rejection"]
    lines = manifest_of(out)
    attempts = sum(len(line["require"]["attempts"]) for line in lines)
    assert rejection["frames"] == 8 and rejection["attempts"] == attempts
    # The mug constraint fails on some attempts (so the rejection loop really ran) ...
    assert rejection["constraints"]["two_mugs"]["rejected"] > 0
    assert 0 < rejection["acceptance_rate"] < 1
    # ... and a rejected attempt leaves no file behind: exactly one image per frame.
    assert len(list((out / "images").iterdir())) == 8
    assert all(line["require"]["attempt"] == len(line["require"]["attempts"]) - 1 for line in lines)
    disk = json.loads((out / "dataset.json").read_text())
    assert disk["scenario"]["rejection"] == rejection


def test_impossible_require_stops_with_one_clean_error_and_no_coco(tmp_path):
    impossible = [{"name": "hundred_mugs", "select": {"category": "mug"}, "ge": 100}]
    path = write(tmp_path, scenario(impossible, max_attempts=3))
    out = tmp_path / "out"
    with pytest.raises(RequireUnmet) as info:
        generate(path, out, n_frames=2, seed=0, **TINY)
    message = str(info.value)
    assert "hundred_mugs" in message and "3" in message and "\n" not in message.strip()
    assert not (out / "annotations.coco.json").exists()
    assert not list(out.rglob("*.png"))  # attempts are checked before anything of the frame is written
    runner = CliRunner()
    cli = runner.invoke(
        app, ["generate", str(path), "-n", "2", "-o", str(tmp_path / "cli"), "--renderer", "tiny",
              "--resolution", "96x72", "--no-preview"],
    )  # fmt: skip
    assert cli.exit_code == 2, cli.output
    assert "hundred_mugs" in cli.output and "Traceback" not in cli.output


def test_scenario_output_is_identical_with_one_or_two_workers(tmp_path):
    path = write(tmp_path, scenario(REQUIRE))
    one, two = tmp_path / "one", tmp_path / "two"
    a = generate(path, one, n_frames=8, seed=2, workers=1, shard_frames=2, **TINY)
    b = generate(path, two, n_frames=8, seed=2, workers=2, shard_frames=2, **TINY)
    assert frame_bytes(one) == frame_bytes(two)
    assert a.dataset["scenario"] == b.dataset["scenario"]
    strip = [{k: v for k, v in line.items() if k != "timings_ms"} for line in manifest_of(one)]
    assert strip == [{k: v for k, v in line.items() if k != "timings_ms"} for line in manifest_of(two)]
    # A resumed run (every shard already done: none renders again) rebuilds the same rejection statistics.
    again = generate(path, one, n_frames=8, seed=2, workers=1, shard_frames=2, resume=True, **TINY)
    assert again.made == 0 and again.dataset["scenario"] == a.dataset["scenario"]
    assert frame_bytes(one) == frame_bytes(two)


def test_impossible_require_with_two_workers_is_the_same_clean_error(tmp_path):
    impossible = [{"name": "hundred_mugs", "select": {"category": "mug"}, "ge": 100}]
    path = write(tmp_path, scenario(impossible, max_attempts=2))
    with pytest.raises(RequireUnmet, match="hundred_mugs"):
        generate(path, tmp_path / "out", n_frames=4, seed=0, workers=2, shard_frames=2, **TINY)


def test_coverage_command_writes_json_and_html(tmp_path):
    assert "coverage" in {c.name for c in app.registered_commands}  # simgen.cli lists the plugin
    path = write(tmp_path, scenario(REQUIRE))
    out = tmp_path / "out"
    generate(path, out, n_frames=8, seed=1, **TINY)
    result = CliRunner().invoke(app, ["coverage", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "coverage.json").read_text())
    assert report["frames"] == 8 and report["cells"]["covered"] == 4
    assert report["t_wise"]["percent"] is not None and report["acceptance"]["frames"] == 8
    html = (out / "coverage.html").read_text()
    assert "<html" in html.lower() and "two_mugs" in html
    plain = tmp_path / "plain"
    generate(SCENES / "tabletop_clutter.yaml", plain, n_frames=1, seed=0, **TINY)
    refused = CliRunner().invoke(app, ["coverage", str(plain)])
    assert refused.exit_code == 2 and "scenario" in refused.output
    # simgen inspect has the same summary, computed without writing anything.
    (out / "coverage.json").unlink()
    inspected = CliRunner().invoke(app, ["inspect", str(out)], env={"COLUMNS": "80"})
    assert inspected.exit_code == 0, inspected.output
    cells, tw = report["cells"], report["t_wise"]
    assert f"scenario coverage: 8 frames in {cells['covered']} cells" in inspected.output
    assert f"{tw['strength']}-wise coverage {tw['percent']:.1f}%" in inspected.output
    assert not (out / "coverage.json").exists()
    assert "scenario coverage" not in CliRunner().invoke(app, ["inspect", str(plain)]).output
