"""Writers come from ``outputs:`` generically (COCO is one of them), and a backend's capabilities are checked up front."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from simgen.cli import app
from simgen.engine import generate
from simgen.engine.replay import replay_frame
from simgen.engine.verify import verify_dataset
from simgen.errors import SpecError
from simgen.spec import load_spec, read_spec_file
from simgen.writers.coco import CocoWriter
from simgen.writers.registry import writers_for
from simgen.writers.yolo import YoloWriter

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenes" / "tabletop_clutter.yaml"


def _raw(**outputs: bool) -> dict:
    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = 3
    raw["frames_per_scene"] = 2
    raw["physics"]["max_steps"] = 200
    raw["outputs"] = outputs
    return raw


def test_writers_follow_outputs_in_order_with_their_options() -> None:
    outputs = load_spec(_raw(yolo=True, yolo_segments=True), base_dir=DEFAULT.parent).spec.outputs
    chosen = writers_for(outputs)
    assert [type(w) for w in chosen] == [CocoWriter, YoloWriter]
    assert chosen[1].segments is True  # type: ignore[attr-defined]
    assert [w.name for w in writers_for({"rgb": True, "coco": False, "bop": True})] == ["bop"]


def test_a_third_party_writer_plugs_in_through_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import simgen.registry as registry_module
    from simgen.registry import Registry
    from simgen.writers import registry as writers_registry

    ep = EntryPoint(name="labelme", value="simgen.writers.yolo:YoloWriter", group="simgen.writers")
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [ep] if group == "simgen.writers" else [])
    fresh: Registry = Registry("writer", group="simgen.writers", versioned=False)
    fresh.register("coco", "simgen.writers.coco:CocoWriter")
    monkeypatch.setattr(writers_registry, "WRITERS", fresh)
    chosen = writers_for({"coco": True, "labelme": True, "labelme_segments": True})
    assert [type(w) for w in chosen] == [CocoWriter, YoloWriter] and chosen[1].segments is True  # type: ignore[attr-defined]


@pytest.mark.slow
def test_coco_off_writes_no_coco_and_the_tools_cope(tmp_path: Path) -> None:
    spec = tmp_path / "no_coco.yaml"
    spec.write_text(yaml.safe_dump(_raw(coco=False, yolo=True)))
    out = tmp_path / "ds"
    args = ["generate", str(spec), "-n", "2", "-o", str(out), "--resolution", "64x48", "--renderer", "tiny"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no preview" in result.output and "outputs.coco: false" in result.output
    assert not (out / "annotations.coco.json").exists()
    assert not list((out / ".simgen").rglob("coco.jsonl"))
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["formats"] == ["yolo"] and "coco" not in meta["files"] and meta["counts"] == {}
    assert "annotations.coco.json" not in meta["checksums"] and "data.yaml" in meta["checksums"]
    assert (out / "labels" / "000000.txt").is_file()
    assert verify_dataset(out).ok
    assert all(replay_frame(out, 1, renderer="tiny").identical.values())
    inspected = CliRunner().invoke(app, ["inspect", str(out)])
    assert inspected.exit_code == 2
    assert "outputs.coco: false" in inspected.output and "Traceback" not in inspected.output


def test_visibility_on_a_backend_without_it_is_refused_before_anything_is_written(tmp_path: Path) -> None:

    carla_scene = DEFAULT.parent / "carla" / "night_rain.yaml"
    raw = yaml.safe_load(carla_scene.read_text())
    raw.setdefault("labels", {})["visibility"] = True
    loaded = load_spec(raw, base_dir=carla_scene.parent)
    with pytest.raises(SpecError, match=r"labels\.visibility: the 'carla' backend cannot render objects alone"):
        generate(loaded, tmp_path / "ds", n_frames=2)
    assert not (tmp_path / "ds").exists()
