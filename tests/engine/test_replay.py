"""replay encodes frames with the shard loop's own encoder: identical whatever outputs are on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from simgen.cli import app
from simgen.engine import generate
from simgen.engine.replay import replay_frame
from simgen.spec import read_spec_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenes" / "tabletop_clutter.yaml"


def small_spec(folder: Path, outputs: dict[str, bool]) -> Path:
    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = 3
    raw["frames_per_scene"] = 2
    raw["physics"]["max_steps"] = 200
    raw["outputs"] = outputs
    path = folder / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("outputs", "kinds"),
    [
        ({"depth": False}, ["rgb", "instances"]),
        ({"instances": False}, ["rgb", "depth"]),
        ({"depth": False, "instances": False}, ["rgb"]),
        ({"rgb": False}, ["depth", "instances"]),
    ],
)
def test_replay_is_identical_with_outputs_off(tmp_path: Path, outputs: dict[str, bool], kinds: list[str]) -> None:
    out = tmp_path / "ds"
    generate(small_spec(tmp_path, outputs), out, n_frames=2, seed=4, renderer="tiny", resolution=(64, 48))
    replayed = replay_frame(out, 1)
    assert replayed.identical == dict.fromkeys(kinds, True)
    assert list(replayed.files) == kinds
    assert replayed.settled_match
    shown = CliRunner().invoke(app, ["replay", str(out), "--frame", "1"])
    assert shown.exit_code == 0, shown.output
    assert "differs" not in shown.output
