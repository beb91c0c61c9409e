from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simgen.cli import app
from simgen.engine import generate
from simgen.engine.plan import MAX_FRAMES, MAX_SHARDS, Plan, Shard
from simgen.errors import PlanError, SimgenError

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "scenes" / "tabletop_clutter.yaml"


def _eager(plan: Plan) -> list[Shard]:
    """The shard list as the plan used to build it, all at once (the reference the lazy one must match)."""
    out = []
    for index, s0 in enumerate(range(0, plan.n_scenes, plan.scenes_per_shard)):
        s1 = min(s0 + plan.scenes_per_shard, plan.n_scenes)
        out.append(Shard(index, s0, s1, plan.scene_frames(s0).start, plan.scene_frames(s1 - 1).stop))
    return out


@pytest.mark.parametrize(("n", "fps", "shard"), [(1, 4, 64), (10, 4, 8), (200, 4, 64), (7, 1, 3), (9, 10, 4)])
def test_shards_cover_every_frame_once_on_scene_boundaries(n: int, fps: int, shard: int) -> None:
    plan = Plan.build(n, fps, shard_frames=shard)
    frames = [f for s in plan.shards for f in range(s.frame_start, s.frame_stop)]
    assert frames == list(range(n))
    for s in plan.shards:
        assert s.frame_start == s.scene_start * fps
    assert plan.n_scenes == -(-n // fps)
    assert list(plan.shards) == _eager(plan)
    assert plan.shards[-1] == _eager(plan)[-1] and plan.shards[1:3] == _eager(plan)[1:3]


def test_rejects_empty() -> None:
    with pytest.raises(ValueError):
        Plan.build(0, 4)


@pytest.mark.parametrize(
    ("n", "fps", "shard", "text"),
    [
        (10**9, 4, 64, "more than the 10,000,000 frames"),
        (MAX_FRAMES + 1, 4, 64, "more than the 10,000,000 frames"),
        (MAX_FRAMES, 1, 1, "shards, more than 1,000,000"),
        (True, 4, 64, "n_frames must be an integer >= 1"),
        (10, 0, 64, "frames_per_scene must be an integer >= 1"),
        (2.5, 1, 64, "n_frames must be an integer >= 1"),
    ],
)
def test_plan_size_is_bounded(n: object, fps: int, shard: int, text: str) -> None:
    with pytest.raises(PlanError, match=text) as info:
        Plan.build(n, fps, shard_frames=shard)  # type: ignore[arg-type]
    assert isinstance(info.value, SimgenError)


def test_the_largest_plan_is_lazy() -> None:
    """-n 10**9 used to build 15.6 M shards in memory; the largest allowed plan now costs nothing up front."""
    tracemalloc.start()
    start = time.perf_counter()
    plan = Plan.build(MAX_FRAMES, 1, shard_frames=MAX_FRAMES // MAX_SHARDS)
    shards = plan.shards
    last = shards[len(shards) - 1]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(shards) == MAX_SHARDS and last.frame_stop == MAX_FRAMES
    assert peak < 100_000 and time.perf_counter() - start < 0.5
    with pytest.raises(IndexError):
        shards[MAX_SHARDS]


def test_generate_refuses_a_huge_plan_before_touching_the_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    start = time.perf_counter()
    with pytest.raises(PlanError, match="more than the 10,000,000 frames"):
        generate(SPEC, out, n_frames=10**9, renderer="tiny", resolution=(64, 48))
    assert not out.exists() and time.perf_counter() - start < 10


def test_cli_refuses_a_huge_frame_count_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", str(SPEC), "-o", str(out), "-n", str(10**9), "--renderer", "tiny"])
    assert result.exit_code == 2, result.output
    assert "more than the 10,000,000 frames one run may plan" in result.output
    assert "Traceback" not in result.output and not out.exists()
