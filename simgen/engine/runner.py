"""Run every shard of a plan: in this process, on a local process pool, or as Ray tasks."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from simgen.engine.shard import ShardJob, ShardResult, close_backends, run_shard

log = logging.getLogger(__name__)

Progress = Callable[[int], None]

_QUEUE: Any = None


def _init_worker(queue: Any, env: dict[str, str]) -> None:
    global _QUEUE  # per worker process: where run_shard reports finished frames
    _QUEUE = queue
    os.environ.update(env)


def _worker_run(job: ShardJob) -> ShardResult:
    return run_shard(job, progress=_QUEUE.put if _QUEUE is not None else None)


def worker_env(workers: int) -> dict[str, str]:
    """Environment for worker processes: one llvmpipe thread each when several share the cores."""
    env = {}
    if workers > 1 and "LP_NUM_THREADS" not in os.environ:
        env["LP_NUM_THREADS"] = "1"  # PLATFORM.md: llvmpipe already uses every core; N workers x N threads thrash
    return env


def run_local(jobs: Sequence[ShardJob], workers: int, progress: Progress | None = None) -> list[ShardResult]:
    """Run jobs in this process (``workers == 1``) or on a spawn-based process pool.

    Args:
        jobs: The shards to run.
        workers: Number of processes.
        progress: Called with the number of newly finished frames.

    Returns:
        One result per job, in job order.
    """
    if workers <= 1 or len(jobs) <= 1:
        try:
            return [run_shard(job, progress) for job in jobs]
        finally:
            close_backends()
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no inherited GL or physics state
    manager = ctx.Manager()
    try:
        queue = manager.Queue()
        results: dict[int, ShardResult] = {}
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(queue, worker_env(workers))
        ) as pool:
            pending = {pool.submit(_worker_run, job): i for i, job in enumerate(jobs)}
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(queue, progress)
                for fut in done:
                    results[pending.pop(fut)] = fut.result()
            _drain(queue, progress)
        return [results[i] for i in range(len(jobs))]
    finally:
        manager.shutdown()


def _drain(queue: Any, progress: Progress | None) -> None:
    while True:
        try:
            n = queue.get_nowait()
        except Exception:  # queue.Empty from the manager proxy
            return
        if progress:
            progress(n)
