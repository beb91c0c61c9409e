"""Run every shard of a plan: in this process, on a local process pool, or as Ray tasks.

A runner is started before the run is fully prepared (:func:`start_runner`), so worker processes
import simgen, and a Ray cluster starts, while this process probes the renderer and plans the shards.

What a run promises whatever happens to its processes:

* **A worker that dies** of a signal (a native crash in the simulator, SIGKILL, the OOM killer) breaks the
  whole ``concurrent.futures`` pool. The pool is rebuilt and every unfinished shard handed out again; each
  shard resumes from the records it committed (see :func:`simgen.engine.shard.run_shard`). The shard whose
  worker died gets one more try in a fresh worker; if that dies too, the run fails with one
  :class:`~simgen.errors.WorkerCrashed` line naming the shard, its scene and the signal.
* **Workers never outlive this process.** Each asks the kernel for SIGKILL when its parent dies
  (``prctl(PR_SET_PDEATHSIG)`` on Linux; a thread polling the parent's pid elsewhere), so SIGKILL or the
  OOM killer on the main process stops them at once, instead of leaving them to write frames and then
  sleep forever.
* **SIGTERM is Ctrl-C.** For the runner's lifetime (:func:`start_runner` to ``close``) SIGTERM raises
  :class:`~simgen.errors.Interrupted`, a ``KeyboardInterrupt``; ``close`` then stops the workers at once.
  Workers ignore SIGINT (a Ctrl-C reaches the whole process group): the main process alone handles it,
  so no worker prints a traceback, even while it is still importing.
* **A full or read-only disk** is one :class:`~simgen.errors.OutputWriteError` line, not a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Protocol

from simgen.engine.failures import (
    SigtermScope,
    raise_write_error,
    retry_notice,
    sigint_blocked,
    signal_name,
    worker_crashed,
)
from simgen.engine.shard import ShardJob, ShardResult, run_shard
from simgen.engine.worker import (
    WorkerSetup,
    bind_job,
    close_backends,
    init_worker,
    set_worker,
    warm_up,
    worker_run,
)
from simgen.errors import SimgenError

if TYPE_CHECKING:
    from simgen.engine.ray_runner import RayRunner

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
#: What a run's workers need, for a given number of workers sharing the cores.
Setup = Callable[[int], WorkerSetup]

#: Times a shard is handed out again after its worker died, before the run fails.
CRASH_RETRIES = 1


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def no_setup(workers: int) -> WorkerSetup:
    """A run whose workers need nothing special."""
    return WorkerSetup()


class Runner(Protocol):
    """Runs shard jobs and returns one result per job, in job order.

    Attributes:
        background_sink: Whether each worker has a spare core for finishing records on a second thread.
    """

    background_sink: bool

    def run(self, jobs: Sequence[ShardJob], progress: Progress | None = None) -> list[ShardResult]:
        """Run ``jobs``; ``progress`` gets the number of newly finished records."""
        ...

    def close(self) -> None:
        """Stop workers and free what the runner holds."""
        ...


# ---------------------------------------------------------------------------------------------- runners


class InProcessRunner:
    """Runs every job here, one after another (``--workers 1``).

    A native crash here ends this process: only the pool and Ray can report and retry it.
    """

    def __init__(self, setup: Setup = no_setup) -> None:
        self.background_sink = available_cores() > 1
        self.sigterm: SigtermScope | None = None
        # One process: the environment of a single worker (none for PyBullet), set here as a worker would.
        self.env = setup(1).env

    def run(self, jobs: Sequence[ShardJob], progress: Progress | None = None) -> list[ShardResult]:
        """Run ``jobs`` in order."""
        results = []
        for key, value in self.env.items():
            os.environ.setdefault(key, value)
        set_worker(0, 1)
        try:
            for job in jobs:
                try:
                    bind_job(job)
                    results.append(run_shard(job, progress))
                except OSError as exc:
                    raise_write_error(exc, job.out)
                    raise
        finally:
            close_backends()
        return results

    def close(self) -> None:
        """Nothing to stop; SIGTERM gets its previous handler back."""
        if self.sigterm is not None:
            self.sigterm.restore()


class PoolRunner:
    """A spawn-based process pool (a fresh interpreter per worker: no inherited GL or physics state).

    Its workers start, and import simgen, as soon as it is made. Jobs are handed out one at a time as
    workers free up, so the run's tail is at most one shard long. A worker that dies breaks the pool: it
    is rebuilt and the unfinished shards handed out again (see the module docstring).
    """

    def __init__(self, workers: int, setup: Setup = no_setup) -> None:
        self.workers = workers
        self.background_sink = available_cores() > workers
        self.ctx = mp.get_context("spawn")
        self.setup = setup(workers)
        self.env = self.setup.env
        self.sigterm: SigtermScope | None = None
        self.stopping: threading.Thread | None = None
        self.queue: Any = None
        self.running: dict[int, int] = {}  # worker pid -> index of the job it runs (its "start" message)
        self.seen: dict[int, int] = {}  # job index -> frames its current attempt reported
        self.reported: dict[int, int] = {}  # job index -> frames passed on to ``progress`` over all attempts
        self.pool, self.warming = self._start_pool()

    def _start_pool(self) -> tuple[ProcessPoolExecutor, list[Future[int]]]:
        """A new pool with every worker started (each submit starts one), importing simgen."""
        # A fresh queue per pool: a worker killed while writing to the old one may have left its lock held.
        self.queue = self.ctx.Queue()
        self.running, self.seen = {}, {}
        counter = self.ctx.Value("i", 0)  # each worker takes the next index as it starts (CARLA: its server)
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self.ctx,
            initializer=init_worker,
            initargs=(self.queue, self.env, os.getpid(), counter, self.workers),
        )
        with sigint_blocked():
            warming = [pool.submit(warm_up, self.setup.imports) for _ in range(self.workers)]
        return pool, warming

    def run(self, jobs: Sequence[ShardJob], progress: Progress | None = None) -> list[ShardResult]:
        """Run ``jobs`` on the pool; a shard whose worker dies is retried once in a fresh worker.

        Raises:
            WorkerCrashed: A shard's worker died again on its retry (or workers died twice before any shard).
            OutputWriteError: The filesystem refused a write (full, read-only, no permission).
        """
        results: dict[int, ShardResult] = {}
        crashes: dict[int | None, int] = {}  # job index (None: no job yet) -> times its worker died
        while len(results) < len(jobs):
            dead = self._run_until_broken(jobs, results, progress)
            if dead is None:
                break
            for index, how in dead:
                crashes[index] = crashes.get(index, 0) + 1
                job = None if index is None else jobs[index]
                if crashes[index] > CRASH_RETRIES:
                    raise worker_crashed(job, how)
                log.warning("%s", retry_notice(job, how))
            self.pool, self.warming = self._start_pool()
        self._drain(progress)
        for fut in self.warming:
            fut.result()  # a worker that could not even import simgen fails the run here, loudly
        # The workers exit (closing their simulators) while the caller merges the shards' fragments.
        self.stopping = threading.Thread(target=self.pool.shutdown, name="simgen-pool-shutdown", daemon=True)
        self.stopping.start()
        return [results[i] for i in range(len(jobs))]

    def _run_until_broken(
        self, jobs: Sequence[ShardJob], results: dict[int, ShardResult], progress: Progress | None
    ) -> list[tuple[int | None, str]] | None:
        """Hand out every unfinished job; None when all finished, else the dead workers' jobs and signals."""
        pending: dict[Future[ShardResult], int] = {
            self.pool.submit(worker_run, job, i): i for i, job in enumerate(jobs) if i not in results
        }
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            self._drain(progress)
            broken = False
            for fut in done:  # every finished shard is kept, also when another one's worker died meanwhile
                index = pending.pop(fut)
                try:
                    results[index] = fut.result()
                except BrokenProcessPool:
                    broken = True
                except OSError as exc:
                    raise_write_error(exc, jobs[index].out)
                    raise
            if broken:
                return self._dead_workers(progress)
        return None

    def _dead_workers(self, progress: Progress | None) -> list[tuple[int | None, str]]:
        """After the pool broke: which jobs' workers died, and of what; the broken pool is shut down."""
        processes = dict(getattr(self.pool, "_processes", None) or {})
        self.pool.shutdown(wait=True, cancel_futures=True)  # the executor has terminated the other workers
        self._drain(progress)  # the dead pool's last messages
        self.queue.close()
        codes = {pid: proc.exitcode for pid, proc in processes.items()}
        # The executor stops the survivors with SIGTERM: a worker that died otherwise is the one that crashed.
        culprits = [pid for pid, code in codes.items() if code != -signal.SIGTERM] or list(codes)
        # Never an empty answer: each break must count against some retry, or a persistent crash would loop.
        return [(self.running.get(pid), signal_name(codes[pid])) for pid in culprits] or [(None, "an unknown cause")]

    def close(self) -> None:
        """Stop the workers (they close their simulators as they exit) and wait for them.

        A run that did not finish (an error, Ctrl-C, SIGTERM) stops its workers at once: the shards they
        were running keep their committed frames, and ``--resume`` finishes them.
        """
        try:
            if self.stopping is None:
                for proc in list((getattr(self.pool, "_processes", None) or {}).values()):
                    with contextlib.suppress(OSError, AttributeError):
                        proc.terminate()
                self.pool.shutdown(wait=True, cancel_futures=True)
            else:
                self.stopping.join()
            self.queue.close()
            self.queue.join_thread()
        finally:
            if self.sigterm is not None:
                self.sigterm.restore()

    def _drain(self, progress: Progress | None) -> None:
        while True:
            try:
                kind, index, value = self.queue.get_nowait()
            except (queue_mod.Empty, OSError, ValueError):  # OSError, ValueError: a closed queue
                return
            if kind == "start":
                self.running[value] = index
                continue
            # A retried shard reports the frames its dead attempt finished again, as kept: count them once.
            self.seen[index] = self.seen.get(index, 0) + value
            new = self.seen[index] - self.reported.get(index, 0)
            if new > 0:
                self.reported[index] = self.seen[index]
                if progress:
                    progress(new)


def start_runner(
    runner: str, workers: int, *, n_jobs: int, ray_address: str | None = None, setup: Setup = no_setup
) -> Runner:
    """Start the runner a run asked for; SIGTERM is handled like Ctrl-C until its ``close()``.

    Args:
        runner: ``local`` or ``ray``.
        workers: Worker processes (local) or CPUs of a local Ray cluster.
        n_jobs: Shards the run will hand out (one shard, or one worker, runs in this process).
        ray_address: With ``ray``, a running cluster's address; None starts a local one.
        setup: What the workers need (environment, modules to import), given how many share the cores.

    Returns:
        A started runner; call ``close()`` when done.

    Raises:
        SimgenError: An unknown runner.
        RunnerUnavailable: Ray cannot start or reach its cluster.
    """
    if runner not in ("local", "ray"):
        raise SimgenError(f"unknown runner '{runner}'; expected 'local' or 'ray'")
    sigterm = SigtermScope()
    try:
        started: InProcessRunner | PoolRunner | RayRunner
        if runner == "ray":
            from simgen.engine.ray_runner import RayRunner

            started = RayRunner(address=ray_address, num_cpus=workers, setup=setup)
            sigterm.reassert()  # ray.init installs its own SIGTERM handler (it exits the process)
        elif workers <= 1 or n_jobs <= 1:
            started = InProcessRunner(setup)
        else:
            started = PoolRunner(min(workers, n_jobs), setup)
    except BaseException:
        sigterm.restore()
        raise
    started.sigterm = sigterm
    return started
