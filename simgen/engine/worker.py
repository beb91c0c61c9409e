"""The worker side of a run: each process's backend cache, its warm-up, its environment and its ties to the parent.

A worker process (a pool worker or a Ray worker) keeps one simulator client per ``(backend, renderer)`` and
reuses it, reset per scene, for every shard it runs (:func:`acquire_backend`). A worker has an index (a pool
worker's order of start, a Ray task's slot); a backend that needs the run's spec (CARLA: which server this
worker uses) gets its arguments from the shard's job and that index (:func:`bind_job`). A client that leaks with every
build asks to be restarted now and then (its ``recycling``, see :class:`~simgen.backends.base.Recycling`);
restarting never changes the output. Pool workers are initialized by :func:`init_worker` (signals,
environment, dying with the parent) and warmed up by :func:`warm_up` while the main process prepares the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simgen.engine.memory import RecyclePolicy, pin_mmap_threshold, release_free_memory

if TYPE_CHECKING:
    from simgen.backends.base import Backend
    from simgen.engine.shard import ShardJob, ShardResult

log = logging.getLogger(__name__)

#: Test only: makes a pool worker kill itself at a scene (see :func:`_install_test_crash`).
TEST_CRASH_ENV = "SIMGEN_TEST_CRASH"
#: Seconds between two checks of the parent's pid where ``PR_SET_PDEATHSIG`` is unavailable.
PARENT_POLL_S = 0.5
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_QUEUE: Any = None


@dataclass(frozen=True)
class WorkerSetup:
    """What a run's worker processes need before their first job.

    Attributes:
        env: Environment variables set in each worker before its first simulator (a value the user set wins).
        imports: Modules each worker imports while the main process prepares the run (the simulator, labels).
    """

    env: dict[str, str] = field(default_factory=dict)
    imports: tuple[str, ...] = ()


# --- which worker this process is, and what its backend is built with ---------------------------------------

#: ``[index, count]`` of this process among the run's workers (0 of 1 in the main process). A pool worker takes
#: its index from the pool's counter as it starts; a Ray task gets the slot the driver gave it.
_WORKER: list[int] = [0, 1]
#: Backend name -> the keyword arguments the current shard's backend is built with (from its spec).
_OPTIONS: dict[str, dict[str, Any]] = {}


def current_worker() -> int:
    """This process's worker index (0-based): CARLA's worker k uses server ``k % len(servers)``."""
    return _WORKER[0]


def set_worker(index: int, count: int) -> None:
    """Record this process's worker index and the run's worker count (before its first shard)."""
    _WORKER[:] = [int(index), max(int(count), 1)]


def bind_job(job: ShardJob) -> None:
    """Before a shard runs here: the arguments its backend gets, from the job's spec and this worker's index.

    Only a backend that asks for them (``worker_options``, see :func:`simgen.backends.worker_options`) makes
    this process load the spec; a PyBullet shard binds nothing.

    Raises:
        SimgenError: The backend refuses the run (CARLA: more workers than servers).
    """
    from simgen.backends import has_worker_options, worker_options

    name, source = getattr(job.task, "backend", None), getattr(job.task, "source", None)
    _OPTIONS.clear()
    if not isinstance(name, str) or source is None or not has_worker_options(name):
        return
    index, count = _WORKER
    _OPTIONS[name] = worker_options(name, source.load(), index, count)


def job_slots(job: ShardJob) -> int | None:
    """How many shards of this job's run may run at once (CARLA: one per server), or None for no limit."""
    from simgen.backends import exclusive_slots, has_worker_options

    name, source = getattr(job.task, "backend", None), getattr(job.task, "source", None)
    if not isinstance(name, str) or source is None or not has_worker_options(name):
        return None
    return exclusive_slots(name, source.load())


def _options_key(options: dict[str, Any]) -> str:
    return json.dumps(options, sort_keys=True, default=repr)


# --- the backend cache ------------------------------------------------------------------------------------

_BACKENDS: dict[tuple[str, str, str], Backend] = {}
_BUILDS: dict[tuple[str, str, str], int] = {}
_RECYCLE: dict[tuple[str, str, str], RecyclePolicy] = {}


def acquire_backend(name: str, renderer: str) -> Backend:
    """This process's simulator for the next scene: one client per ``(name, renderer)``, reused and reset per scene.

    The client is built with the arguments :func:`bind_job` found for the current shard (none for PyBullet; a
    CARLA shard's spec section and this worker's server), and one is kept per set of arguments.
    A client whose ``recycling`` says it leaks is closed and started again when its policy says so (the
    output does not change: a fresh client settles and renders bit-identically).
    """
    options = _OPTIONS.get(name, {})
    key = (name, renderer, _options_key(options))
    backend = _BACKENDS.get(key)
    recycling = getattr(backend, "recycling", None) if backend is not None else None
    if backend is not None and recycling is not None:
        policy = _RECYCLE.setdefault(key, RecyclePolicy(recycling.max_builds, min_builds=recycling.min_builds))
        if policy.due(_BUILDS.get(key, 0)):
            log.debug("restarting the %s client after %d builds", name, _BUILDS.get(key, 0))
            backend.close()
            release_free_memory()
            backend = None
    if backend is None:
        pin_mmap_threshold()
        from simgen.backends import make_backend

        backend = _BACKENDS[key] = make_backend(name, renderer=renderer, **options)
        _BUILDS[key] = 0
    _BUILDS[key] += 1
    return backend


def close_backends() -> None:
    """Close this process's cached simulators and forget their recycling budgets (a new run may differ)."""
    while _BACKENDS:
        _, backend = _BACKENDS.popitem()
        backend.close()
    _BUILDS.clear()
    _RECYCLE.clear()


# --- a pool worker's life ---------------------------------------------------------------------------------


def warm_up(imports: Sequence[str] = ()) -> int:
    """Import what a shard needs (the simulator, OpenCV, the labels), so a worker's first job starts at once."""
    for module in imports:
        importlib.import_module(module)
    return os.getpid()


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


def init_worker(queue: Any, env: dict[str, str], parent_pid: int, counter: Any = None, workers: int = 1) -> None:
    """Initializer of a pool worker: ignore Ctrl-C, die with the parent, set the run's environment.

    ``counter`` (a shared ``multiprocessing.Value``) hands each of the pool's ``workers`` its index, in start order.
    """
    global _QUEUE  # per worker process: where run_shard reports finished records
    _QUEUE = queue
    if counter is not None:
        with counter.get_lock():
            index = int(counter.value)
            counter.value += 1
        set_worker(index % max(workers, 1), workers)
    # The main process handles Ctrl-C and stops the pool; SIGINT was blocked since this process started.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    die_with_parent(parent_pid)
    apply_env(env)
    crash = os.environ.get(TEST_CRASH_ENV)
    if crash:
        _install_test_crash(crash)


def apply_env(env: dict[str, str]) -> None:
    """Set the run's worker environment (before the first simulator: llvmpipe reads its threads once)."""
    os.environ.update(env)


def worker_run(job: ShardJob, index: int) -> ShardResult:
    """Run one shard in a pool worker, telling the main process which shard it runs and each finished record."""
    from simgen.engine.shard import run_shard

    bind_job(job)
    if _QUEUE is None:
        return run_shard(job)
    queue = _QUEUE
    queue.put(("start", index, os.getpid()))  # which shard this process runs: named if it dies
    return run_shard(job, progress=lambda n: queue.put(("frames", index, n)))


def _install_test_crash(setting: str) -> None:
    """Test only: kill this worker with a signal when it starts a scene (``SIMGEN_TEST_CRASH``).

    ``SIMGEN_TEST_CRASH="scene=5,signal=SIGSEGV,times=1,state=/tmp/x/crashes"`` kills the worker that starts
    scene 5, for the first ``times`` workers that get there (counted in the ``state`` file, one byte per
    crash, across processes). Read once, in the worker initializer; never set outside tests.
    """
    opts = dict(item.split("=", 1) for item in setting.split(","))
    scene, times, state = int(opts["scene"]), int(opts.get("times", "1")), Path(opts["state"])
    signum = signal.Signals[opts.get("signal", "SIGSEGV")]
    from simgen.engine import images

    original = images.sample_scene

    def sample_scene(loaded: Any, randomizers: Any, seed: int, scene_index: int) -> Any:
        if scene_index == scene and (state.stat().st_size if state.exists() else 0) < times:
            with open(state, "ab") as fh:
                fh.write(b"x")
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file for a crash on purpose
            os.kill(os.getpid(), signum)
            time.sleep(60)  # a signal that is caught or ignored must not let the test pass
        return original(loaded, randomizers, seed, scene_index)

    images.sample_scene = sample_scene  # type: ignore[assignment]
