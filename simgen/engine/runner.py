"""Run every shard of a plan: in this process, on a local process pool, or as Ray tasks.

A runner is started before the run is fully prepared (:func:`start_runner`), so worker processes
import simgen, and a Ray cluster starts, while this process probes the renderer and plans the shards.

What a run promises whatever happens to its processes:

* **A worker that dies** of a signal (a native crash in the simulator, SIGKILL, the OOM killer) breaks the
  whole ``concurrent.futures`` pool. The pool is rebuilt and every unfinished shard handed out again; each
  shard resumes from the frames it committed (see :func:`simgen.engine.shard.run_shard`). The shard whose
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
import ctypes
import importlib
import json
import logging
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from simgen.engine.shard import MANIFEST_FRAGMENT, ShardJob, ShardResult, close_backends, run_shard
from simgen.errors import Interrupted, OutputWriteError, SimgenError, WorkerCrashed

if TYPE_CHECKING:
    from simgen.engine.ray_runner import RayRunner

log = logging.getLogger(__name__)

Progress = Callable[[int], None]

#: Times a shard is handed out again after its worker died, before the run fails.
CRASH_RETRIES = 1
#: Test only: makes a pool worker kill itself at a scene (see :func:`_install_test_crash`).
TEST_CRASH_ENV = "SIMGEN_TEST_CRASH"
#: Seconds between two checks of the parent's pid where ``PR_SET_PDEATHSIG`` is unavailable.
PARENT_POLL_S = 0.5
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

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


# ---------------------------------------------------------------------------------------------- signals


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


class SigtermScope:
    """SIGTERM raises :class:`~simgen.errors.Interrupted` (a KeyboardInterrupt) until :meth:`restore`.

    Only the main thread can set signal handlers; elsewhere this does nothing (the embedding program
    owns its signals then).
    """

    def __init__(self) -> None:
        self.active = threading.current_thread() is threading.main_thread()
        self.previous: Any = signal.signal(signal.SIGTERM, _raise_interrupted) if self.active else None

    def reassert(self) -> None:
        """Take SIGTERM back from a library that installed its own handler meanwhile (Ray does, in ``init``)."""
        if self.active:
            signal.signal(signal.SIGTERM, _raise_interrupted)

    def restore(self) -> None:
        """Put back the handler that was there before (once)."""
        if self.active:
            self.active = False
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self.previous is None else self.previous)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Hold SIGINT back from this thread while it spawns workers: they inherit the mask through ``exec``.

    A worker only ignores SIGINT once its initializer runs, after it has imported simgen (a second or
    more); a Ctrl-C before that would print a KeyboardInterrupt traceback from every worker. Blocked, it
    stays pending in each worker until the initializer has ignored it, and in this process until the
    block ends, when it is delivered as usual.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def signal_name(exitcode: int | None) -> str:
    """``SIGSEGV`` for a process killed by signal 11 (exit code -11), else ``exit code N``."""
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


# ---------------------------------------------------------------------------------------------- worker side


def die_with_parent(parent_pid: int) -> None:
    """Make this process exit when ``parent_pid`` (its parent) dies, however it dies.

    On Linux the kernel sends SIGKILL on the parent's death (``PR_SET_PDEATHSIG``); the parent may have died
    before that request, so the parent's pid is checked right after it. Elsewhere a daemon thread polls it.
    PR_SET_PDEATHSIG fires when the parent *thread* that spawned this process exits: the pool is started
    and rebuilt from the thread that runs the shards, which outlives its workers.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before the request: nobody will signal us
                    os._exit(1)
                return
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="simgen-parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _init_worker(queue: Any, env: dict[str, str], parent_pid: int) -> None:
    global _QUEUE  # per worker process: where run_shard reports finished frames
    _QUEUE = queue
    # The main process handles Ctrl-C and stops the pool; SIGINT was blocked since this process started.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    die_with_parent(parent_pid)
    os.environ.update(env)  # before the first GL context: llvmpipe reads LP_NUM_THREADS once
    crash = os.environ.get(TEST_CRASH_ENV)
    if crash:
        _install_test_crash(crash)


def _install_test_crash(setting: str) -> None:
    """Test only: kill this worker with a signal when it starts a scene (``SIMGEN_TEST_CRASH``).

    ``SIMGEN_TEST_CRASH="scene=5,signal=SIGSEGV,times=1,state=/tmp/x/crashes"`` kills the worker that starts
    scene 5, for the first ``times`` workers that get there (counted in the ``state`` file, one byte per
    crash, across processes). Read once, in the worker initializer; never set outside tests.
    """
    opts = dict(item.split("=", 1) for item in setting.split(","))
    scene, times, state = int(opts["scene"]), int(opts.get("times", "1")), Path(opts["state"])
    signum = signal.Signals[opts.get("signal", "SIGSEGV")]
    from simgen.engine import shard

    original = shard.sample_scene

    def sample_scene(loaded: Any, randomizers: Any, seed: int, scene_index: int) -> Any:
        if scene_index == scene and (state.stat().st_size if state.exists() else 0) < times:
            with open(state, "ab") as fh:
                fh.write(b"x")
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file for a crash on purpose
            os.kill(os.getpid(), signum)
            time.sleep(60)  # a signal that is caught or ignored must not let the test pass
        return original(loaded, randomizers, seed, scene_index)

    shard.sample_scene = sample_scene  # type: ignore[assignment]


def warm_up() -> int:
    """Import what a shard needs (pybullet, OpenCV, the scene builder), so a worker's first job starts at once."""
    for module in ("simgen.backends.pybullet_backend", "simgen.labels"):
        importlib.import_module(module)
    return os.getpid()


def _worker_run(job: ShardJob, index: int) -> ShardResult:
    if _QUEUE is None:
        return run_shard(job)
    queue = _QUEUE
    queue.put(("start", index, os.getpid()))  # which shard this process runs: named if it dies
    return run_shard(job, progress=lambda n: queue.put(("frames", index, n)))


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


# ---------------------------------------------------------------------------------------------- errors


def raise_write_error(exc: BaseException, out: str | os.PathLike[str]) -> None:
    """Raise ``exc`` as one clean line if the filesystem refused a write (full, read-only, no permission).

    Args:
        exc: An exception a shard raised.
        out: The dataset folder, named when the error carries no file name (a failed ``write``).

    Raises:
        OutputWriteError: For such an OSError; anything else returns and the caller re-raises ``exc``.
    """
    if isinstance(exc, OSError) and OutputWriteError.convertible(exc):
        raise OutputWriteError.from_os_error(exc, out) from None


def first_unfinished_scene(job: ShardJob) -> int:
    """The first scene of a shard with a frame its manifest fragment has not committed (where it was).

    Reads the fragment's complete lines only (no checksums): this names a scene in an error message.
    """
    from simgen.engine.files import Layout

    done: set[int] = set()
    path = Layout(Path(job.out)).shard_dir(job.shard.name) / MANIFEST_FRAGMENT
    with contextlib.suppress(OSError):
        for line in path.read_bytes().split(b"\n")[:-1]:
            try:
                frame = json.loads(line).get("frame")
            except (ValueError, AttributeError, RecursionError):
                break
            if isinstance(frame, int):
                done.add(frame)
    for scene in range(job.shard.scene_start, job.shard.scene_stop):
        if any(f not in done for f in job.plan.scene_frames(scene)):
            return scene
    return job.shard.scene_stop - 1


def _where(job: ShardJob | None) -> tuple[str, int | None]:
    """``the worker running shard X ... at scene N (frames a-b)`` parts of a crash message, and the scene."""
    if job is None:
        return "a worker process", None
    scene = first_unfinished_scene(job)
    frames = job.plan.scene_frames(scene)
    return (
        f"the worker running shard {job.shard.name} at scene {scene} (frames {frames.start}-{frames.stop - 1})",
        scene,
    )


def worker_crashed(
    job: ShardJob | None, how: str, after: str = "and again on its retry in a fresh worker"
) -> WorkerCrashed:
    """One line: which shard and scene a worker died in, the signal, and that ``--resume`` finishes the run."""
    where, scene = _where(job)
    kept = "its finished frames are kept: " if job is not None else ""
    return WorkerCrashed(
        f"{where} died of {how}, {after}; {kept}rerun with --resume to finish",
        shard=None if job is None else job.shard.name,
        scene=scene,
        signal=how,
    )


def retry_notice(job: ShardJob | None, how: str) -> str:
    """What is logged when a worker died the first time and its shard is handed out again."""
    return f"{_where(job)[0]} died of {how}; retrying it once in a fresh worker"


# ---------------------------------------------------------------------------------------------- runners


class InProcessRunner:
    """Runs every job here, one after another (``--workers 1``).

    A native crash here ends this process: only the pool and Ray can report and retry it.
    """

    def __init__(self) -> None:
        self.background_sink = available_cores() > 1
        self.sigterm: SigtermScope | None = None

    def run(self, jobs: Sequence[ShardJob], progress: Progress | None = None) -> list[ShardResult]:
        """Run ``jobs`` in order."""
        results = []
        try:
            for job in jobs:
                try:
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

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.background_sink = available_cores() > workers
        self.ctx = mp.get_context("spawn")
        self.env = worker_env(workers)
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
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self.ctx,
            initializer=_init_worker,
            initargs=(self.queue, self.env, os.getpid()),
        )
        with _sigint_blocked():
            warming = [pool.submit(warm_up) for _ in range(self.workers)]
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
            self.pool.submit(_worker_run, job, i): i for i, job in enumerate(jobs) if i not in results
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


def start_runner(runner: str, workers: int, *, n_jobs: int, ray_address: str | None = None) -> Runner:
    """Start the runner a run asked for; SIGTERM is handled like Ctrl-C until its ``close()``.

    Args:
        runner: ``local`` or ``ray``.
        workers: Worker processes (local) or CPUs of a local Ray cluster.
        n_jobs: Shards the run will hand out (one shard, or one worker, runs in this process).
        ray_address: With ``ray``, a running cluster's address; None starts a local one.

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

            started = RayRunner(address=ray_address, num_cpus=workers)
            sigterm.reassert()  # ray.init installs its own SIGTERM handler (it exits the process)
        elif workers <= 1 or n_jobs <= 1:
            started = InProcessRunner()
        else:
            started = PoolRunner(min(workers, n_jobs))
    except BaseException:
        sigterm.restore()
        raise
    started.sigterm = sigterm
    return started
