"""Runners: which one a run gets, how it starts, how work is cut for it, and what it refuses up front."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from simgen.backends.pybullet_backend import PyBulletBackend
from simgen.engine import generate, runner
from simgen.engine import run as run_module
from simgen.engine.failures import signal_name
from simgen.engine.plan import Plan
from simgen.engine.run import SHARDS_PER_WORKER, RunConfig, shard_size
from simgen.errors import Interrupted, OutputExistsError, SimgenError
from simgen.spec import load_spec, read_spec_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenes" / "tabletop_clutter.yaml"


def test_one_worker_or_one_shard_runs_in_process() -> None:
    for workers, n_jobs in ((1, 10), (4, 1)):
        started = runner.start_runner("local", workers, n_jobs=n_jobs)
        started.close()
        assert isinstance(started, runner.InProcessRunner)
    with pytest.raises(SimgenError, match="unknown runner 'dask'"):
        runner.start_runner("dask", 2, n_jobs=4)


def test_sigterm_raises_interrupted_while_a_runner_lives() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    started = runner.start_runner("local", 1, n_jobs=1)
    try:
        with pytest.raises(Interrupted) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at the next bytecode; never reached
        assert isinstance(info.value, KeyboardInterrupt) and info.value.exit_code == 143
    finally:
        started.close()
    assert signal.getsignal(signal.SIGTERM) == previous


def test_signal_names() -> None:
    assert signal_name(-signal.SIGSEGV) == "SIGSEGV"
    assert signal_name(-signal.SIGKILL) == "SIGKILL"
    assert signal_name(3) == "exit code 3"


def test_pool_workers_start_before_the_first_job() -> None:
    pool = runner.start_runner("local", 2, n_jobs=8)
    try:
        assert isinstance(pool, runner.PoolRunner)
        # The warm-up imports ran in other processes, before any shard was handed out.
        pids = {fut.result(timeout=120) for fut in pool.warming}
        assert pids and os.getpid() not in pids
        assert len(pool.pool._processes) == 2
    finally:
        pool.close()


def test_worker_env_gives_llvmpipe_one_thread_per_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LP_NUM_THREADS", raising=False)
    assert PyBulletBackend.worker_env(1) == {}
    assert PyBulletBackend.worker_env(2) == {"LP_NUM_THREADS": "0"}
    monkeypatch.setenv("LP_NUM_THREADS", "3")  # the user's own setting wins, and reaches Ray's tasks too
    assert PyBulletBackend.worker_env(2) == {"LP_NUM_THREADS": "3"}


def test_pool_workers_get_the_backends_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from simgen.engine.images import ImageModality

    monkeypatch.delenv("LP_NUM_THREADS", raising=False)
    spec = load_spec(read_spec_file(DEFAULT), base_dir=DEFAULT.parent)
    pool = runner.start_runner("local", 2, n_jobs=8, setup=ImageModality(spec).worker_setup)
    try:
        assert isinstance(pool, runner.PoolRunner)
        assert pool.env == {"LP_NUM_THREADS": "0"}
        assert "simgen.backends.pybullet_backend" in pool.setup.imports
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("n_frames", "workers", "expected"),
    [(64, 2, 2), (100_000, 2, 64), (10_000, 8, 64), (1, 4, 1), (320, 1, 20)],
)
def test_default_shard_size_gives_every_worker_many_short_shards(
    tmp_path: Path, n_frames: int, workers: int, expected: int
) -> None:
    frames = shard_size(tmp_path / "new", RunConfig(out=tmp_path / "new", n_records=n_frames, workers=workers), "frame")
    assert frames == expected
    plan = Plan.build(n_frames, 1, shard_frames=frames)
    # With one-frame scenes the plan follows the request exactly: enough shards for a short tail.
    assert len(plan.shards) >= min(n_frames, SHARDS_PER_WORKER * workers) or frames == 64


def test_bad_output_folder_is_refused_before_any_worker_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"not a dataset")

    def no_runner(*args: object, **kwargs: object) -> None:
        raise AssertionError("a runner was started for a folder that is refused anyway")

    monkeypatch.setattr(run_module, "start_runner", no_runner)
    spec = load_spec(read_spec_file(DEFAULT), base_dir=DEFAULT.parent)
    with pytest.raises(OutputExistsError, match="--resume"):
        generate(spec, out, n_frames=4, workers=2)
    with pytest.raises(OutputExistsError, match="not a simgen dataset"):
        generate(spec, out, n_frames=4, workers=2, overwrite=True)
    with pytest.raises(OutputExistsError, match="no simgen run to resume"):
        generate(spec, out, n_frames=4, workers=2, resume=True)
    assert (out / "holiday.jpg").read_bytes() == b"not a dataset"
