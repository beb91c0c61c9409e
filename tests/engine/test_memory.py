"""The allocator setting that keeps long runs flat: measured in a fresh process, on real numpy buffers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from simgen.engine import memory

SCRIPT = r"""
import os, sys
import numpy as np
from simgen.engine.memory import pin_mmap_threshold

if sys.argv[1] == "pin":
    assert pin_mmap_threshold()
def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
frame = np.ones(2**20 // 8)  # a frame-sized buffer: glibc maps it, and raises its threshold when it is freed
del frame
base = rss_mib()
frames = [np.ones(2**20 // 8) for _ in range(100)]
last = frames[-1]  # the newest block stays alive, as the next frame's buffers do
del frames
print(round(rss_mib() - base))
"""


def _resident_after_free(mode: str) -> int:
    """MiB still resident after freeing 99 of 100 1-MiB buffers, in a fresh process without glibc overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | {"SIMGEN_MALLOC_TUNING": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True, env=env)
    return int(proc.stdout.strip())


@pytest.mark.skipif(memory._libc() is None, reason="needs glibc")
def test_pinned_threshold_gives_freed_frame_buffers_back() -> None:
    # Without the pin, glibc serves the 100 blocks from the heap, and freeing 99 of them below the
    # live one returns nothing; with it, each block is its own mapping and goes back when freed.
    assert _resident_after_free("default") >= 90
    assert _resident_after_free("pin") <= 5


def test_tuning_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    memory._libc.cache_clear()
    monkeypatch.setenv("SIMGEN_MALLOC_TUNING", "0")
    try:
        assert memory._libc() is None
        memory.release_free_memory()  # a no-op, not an error
    finally:
        memory._libc.cache_clear()


def test_recycle_policy_learns_its_budget_from_the_first_full_cycle() -> None:
    mib = 2**20
    # First client: 400 MiB after its first scene, 480 after 8 scenes -> a budget of 80.
    # Second client: 420 after scene 1, then 470, 490, 501 before scenes 5, 6, 7: 81 grown -> restart.
    # Third client: 430 after scene 1.
    reads = iter([400, 480, 420, 470, 490, 501, 430])
    policy = memory.RecyclePolicy(max_builds=8, min_builds=4, rss=lambda: next(reads) * mib)
    assert not any(policy.due(b) for b in range(8))  # no budget yet: only the build count counts
    assert policy.due(8) and policy.budget == 80 * mib
    assert not policy.due(1)  # a new client: its own start
    assert not policy.due(3)  # below min_builds the resident size is not even read
    assert not policy.due(4)  # grown 50
    assert not policy.due(5)  # grown 70
    assert policy.due(6)  # grown 81 >= 80: restart early
    assert not policy.due(1)
    assert policy.due(8)  # the build count still caps a cycle
    policy.reset()
    assert policy.budget is None and policy.start is None


def test_recycle_policy_ignores_growth_from_before_the_client() -> None:
    # A process that grew for other reasons between clients (a Ray worker's own memory) keeps full cycles.
    reads = iter([400, 480, 900, 940, 960, 975])
    policy = memory.RecyclePolicy(max_builds=8, min_builds=4, rss=lambda: next(reads) * 2**20)
    policy.due(1), policy.due(8)
    assert not policy.due(1) and not any(policy.due(b) for b in (4, 5, 6))
    assert policy.due(8)


def test_resident_bytes_reads_this_process() -> None:
    rss = memory.resident_bytes()
    if rss is None:
        pytest.skip("no /proc here")
    assert 10 * 2**20 < rss < 64 * 2**30
