"""Run every shard of a plan: in this process, on a local process pool, or as Ray tasks.

A runner is started before the run is fully prepared (:func:`start_runner`), so worker processes
import simgen, and a Ray cluster starts, while this process probes the renderer and plans the shards.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import queue as queue_mod
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Protocol

from simgen.engine.shard import ShardJob, ShardResult, close_backends, run_shard

log = logging.getLogger(__name__)

Progress = Callable[[int], None]

_QUEUE: Any = None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class Runner(Protocol):
    """Runs shard jobs and returns one result per job, in job order.

    Attributes:
        background_sink: Whether each worker has a spare core for labeling and writing on a second thread.
    """

    background_sink: bool

    def run(self, jobs: Sequence[ShardJob], progress: Progress | None = None) -> list[ShardResult]:
        """Run ``jobs``; ``progress`` gets the number of newly finished frames."""
        ...

    def close(self) -> None:
        """Stop workers and free what the runner holds."""
        ...


def _init_worker(queue: Any, env: dict[str, str]) -> None:
    global _QUEUE  # per worker process: where run_shard reports finished frames
    _QUEUE = queue
    os.environ.update(env)  # before the first GL context: llvmpipe reads LP_NUM_THREADS once


def warm_up() -> int:
    """Import what a shard needs (pybullet, OpenCV, the scene builder), so a worker's first job starts at once."""
    for module in ("simgen.backends.pybullet_backend", "simgen.labels"):
        importlib.import_module(module)
    return os.getpid()


def _worker_run(job: ShardJob) -> ShardResult:
    return run_shard(job, progress=_QUEUE.put if _QUEUE is not None else None)


def worker_env(workers: int) -> dict[str, str]:
    """Environment for worker processes: llvmpipe rasterizes in the calling thread when several share the cores.

    llvmpipe starts one rasterizer thread per core by default; N workers x N threads thrash. With
    ``LP_NUM_THREADS=0`` each worker draws on its own thread, with no hand-off to a helper thread
    (measured here: 2 workers 13-15% faster than with one helper thread each). A value the user set wins.
    """
    env = {}
    if workers > 1 and "LP_NUM_THREADS" not in os.environ:
        env["LP_NUM_THREADS"] = "0"
    return env


class InProcessRunner:
    """Runs every job here, one after another (``--workers 1``)."""

    def __init__(self) -> None:
        self.background_sink = available_cores() > 1

    def run(self, jobs: Sequence[ShardJob], progress: Progress | None = None) -> list[ShardResult]:
        """Run ``jobs`` in order."""
        try:
            return [run_shard(job, progress) for job in jobs]
        finally:
            close_backends()

    def close(self) -> None:
        """Nothing to stop."""


class PoolRunner:
    """A spawn-based process pool (a fresh interpreter per worker: no inherited GL or physics state).

    Its workers start, and import simgen, as soon as it is made. Jobs are handed out one at a time as
    workers free up, so the run's tail is at most one shard long.
    """

    def __init__(self, workers: int) -> None:
        self.background_sink = available_cores() > workers
        ctx = mp.get_context("spawn")
        self.queue = ctx.Queue()
        self.pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(self.queue, worker_env(workers))
        )
        self.warming = [self.pool.submit(warm_up) for _ in range(workers)]
        self.stopping: threading.Thread | None = None

    def run(self, jobs: Sequence[ShardJob], progress: Progress | None = None) -> list[ShardResult]:
        """Run ``jobs`` on the pool."""
        results: dict[int, ShardResult] = {}
        pending = {self.pool.submit(_worker_run, job): i for i, job in enumerate(jobs)}
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            self._drain(progress)
            for fut in done:
                results[pending.pop(fut)] = fut.result()
        self._drain(progress)
        for fut in self.warming:
            fut.result()  # a worker that could not even import simgen fails the run here, loudly
        # The workers exit (closing their simulators) while the caller merges the shards' fragments.
        self.stopping = threading.Thread(target=self.pool.shutdown, name="simgen-pool-shutdown", daemon=True)
        self.stopping.start()
        return [results[i] for i in range(len(jobs))]

    def close(self) -> None:
        """Stop the workers (they close their simulators as they exit) and wait for them."""
        if self.stopping is None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        else:
            self.stopping.join()
        self.queue.close()
        self.queue.join_thread()

    def _drain(self, progress: Progress | None) -> None:
        while True:
            try:
                n = self.queue.get_nowait()
            except queue_mod.Empty:
                return
            if progress:
                progress(n)


def start_runner(runner: str, workers: int, *, n_jobs: int, ray_address: str | None = None) -> Runner:
    """Start the runner a run asked for.

    Args:
        runner: ``local`` or ``ray``.
        workers: Worker processes (local) or CPUs of a local Ray cluster.
        n_jobs: Shards the run will hand out (one shard, or one worker, runs in this process).
        ray_address: With ``ray``, a running cluster's address; None starts a local one.

    Returns:
        A started runner; call ``close()`` when done.
    """
    from simgen.errors import SimgenError

    if runner == "ray":
        from simgen.engine.ray_runner import RayRunner

        return RayRunner(address=ray_address, num_cpus=workers)
    if runner != "local":
        raise SimgenError(f"unknown runner '{runner}'; expected 'local' or 'ray'")
    if workers <= 1 or n_jobs <= 1:
        return InProcessRunner()
    return PoolRunner(min(workers, n_jobs))
