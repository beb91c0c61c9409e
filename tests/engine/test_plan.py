from __future__ import annotations

import pytest

from simgen.engine.plan import Plan


@pytest.mark.parametrize(("n", "fps", "shard"), [(1, 4, 64), (10, 4, 8), (200, 4, 64), (7, 1, 3), (9, 10, 4)])
def test_shards_cover_every_frame_once_on_scene_boundaries(n: int, fps: int, shard: int) -> None:
    plan = Plan.build(n, fps, shard_frames=shard)
    frames = [f for s in plan.shards for f in range(s.frame_start, s.frame_stop)]
    assert frames == list(range(n))
    for s in plan.shards:
        assert s.frame_start == s.scene_start * fps
    assert plan.n_scenes == -(-n // fps)


def test_rejects_empty() -> None:
    with pytest.raises(ValueError):
        Plan.build(0, 4)
