"""The same shards as Ray tasks on a real local Ray cluster give the same bytes as the local pool."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def test_an_unreachable_cluster_is_one_clean_error(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    address = f"127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"RAY_AUTH_MODE": "disabled"}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "simgen", "generate", str(DEFAULT), "-o", str(tmp_path / "ds"), "-n", "2",
         "--runner", "ray", "--address", address, "--no-preview"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert time.monotonic() - start < 60  # ray.init alone retries for minutes
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot reach the Ray cluster at {address}: connection refused; start one with `ray start --head` "
        "or check --address"
    ], proc.stderr


def test_ray_init_failing_is_a_runner_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    from simgen.engine.ray_runner import RayRunner
    from simgen.errors import RunnerUnavailable

    def broken_init(**kwargs: object) -> None:
        raise ConnectionError("Could not find any running Ray instance.\nPlease specify the one to connect to.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", broken_init)
    with pytest.raises(
        RunnerUnavailable, match=r"^cannot start the Ray cluster at auto: Could not find any running Ray instance\.$"
    ):
        RayRunner(address="auto")
