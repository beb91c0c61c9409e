"""The same shards as Ray tasks on a real local Ray cluster give the same bytes as the local pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from simgen.engine import generate
from simgen.spec import load_spec, read_spec_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenes" / "tabletop_clutter.yaml"


@pytest.mark.slow
def test_ray_local_cluster_matches_local_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = 4
    raw["frames_per_scene"] = 2
    raw["physics"]["max_steps"] = 300
    spec = load_spec(raw, base_dir=DEFAULT.parent)
    kwargs = {"n_frames": 8, "seed": 11, "resolution": (80, 60), "shard_frames": 2}
    local = generate(spec, tmp_path / "local", workers=2, **kwargs)
    remote = generate(spec, tmp_path / "ray", workers=2, runner="ray", **kwargs)
    assert remote.dataset["run"]["runner"] == "ray"
    assert local.renderer == remote.renderer
    for sub in ("images", "depth", "instances"):
        names = sorted(p.name for p in (tmp_path / "local" / sub).glob("*.png"))
        assert names == sorted(p.name for p in (tmp_path / "ray" / sub).glob("*.png")) and len(names) == 8
        for name in names:
            assert (tmp_path / "local" / sub / name).read_bytes() == (tmp_path / "ray" / sub / name).read_bytes()
    assert (tmp_path / "local/annotations.coco.json").read_bytes() == (
        tmp_path / "ray/annotations.coco.json"
    ).read_bytes()
