"""Run the same shard function as Ray tasks. Ray does scheduling, retries and cluster membership.

Every node must see the output folder at the same path (a shared filesystem), and have simgen and
the scene's assets installed. A task that dies is retried by Ray; the retried shard keeps every
intact record the dead attempt finished (see :func:`simgen.engine.shard.run_shard`). It imports the worker
side and the failure helpers, never the local runner.

Failures are one line each: a cluster that cannot be started or reached is a
:class:`~simgen.errors.RunnerUnavailable` (an unreachable ``host:port`` is found by a short TCP probe
first, since ``ray.init`` itself retries for minutes), a task whose workers kept dying a
:class:`~simgen.errors.WorkerCrashed`, a full disk an :class:`~simgen.errors.OutputWriteError`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from simgen.engine.failures import SigtermScope, raise_write_error, worker_crashed
from simgen.engine.shard import ShardJob, ShardResult, run_shard
from simgen.engine.worker import WorkerSetup, bind_job, close_backends, job_slots, set_worker, warm_up
from simgen.errors import DependencyMissing, RunnerUnavailable, SimgenError

MAX_RETRIES = 3
#: Seconds the TCP probe of a cluster address waits before calling it unreachable.
CONNECT_TIMEOUT_S = 5.0


def _task(job: ShardJob, env: dict[str, str], slot: int | None = None, slots: int = 1) -> ShardResult:
    # Set here rather than through a runtime_env: Ray then reuses its pre-started workers instead of
    # starting a dedicated set for that environment. It must precede the worker's first simulator.
    for key, value in env.items():
        os.environ.setdefault(key, value)
    if slot is None:
        set_worker(0, 1)
        bind_job(job)
        return run_shard(job)
    # A slot is a server this task holds alone (CARLA); the next task of the slot may run in another process,
    # so the client lets the server go (actors destroyed, settings restored) before the slot is handed back.
    set_worker(slot, slots)
    try:
        bind_job(job)
        return run_shard(job)
    finally:
        close_backends()


def _no_setup(workers: int) -> WorkerSetup:
    return WorkerSetup()


def probe_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse at once a cluster address whose host and port do not accept a connection.

    ``auto``, ``local`` and anything that is not ``[ray://]host:port`` are left to ``ray.init``.

    Raises:
        RunnerUnavailable: Nothing listens at ``host:port`` (or the host does not resolve).
    """
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise RunnerUnavailable(
            f"cannot reach the Ray cluster at {address}: {why.lower()}; start one with `ray start --head` "
            "or check --address"
        ) from None


class RayRunner:
    """Shards as Ray tasks (one CPU each), on a running cluster or a local one started here.

    The cluster starts (and its workers import simgen) as soon as this is made, while the caller
    prepares the run.

    Args:
        address: A running cluster (``ray://host:10001``, ``host:6379`` or ``auto``); None starts a local one.
        num_cpus: CPUs of a local cluster (ignored with ``address``).
        setup: What the tasks need (environment, modules to import), given how many share the cores.

    Raises:
        DependencyMissing: Ray is not installed.
        RunnerUnavailable: The cluster cannot be reached or started.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        setup: Callable[[int], WorkerSetup] = _no_setup,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise DependencyMissing("ray", "ray", "--runner ray") from None
        self.ray = ray
        self.started_here = False
        self.background_sink = False  # one task per CPU: the cores are full
        self.sigterm: SigtermScope | None = None
        if not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written to $HOME for a local cluster
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                probe_address(address)
                kwargs["address"] = address
            elif num_cpus:
                kwargs["num_cpus"] = num_cpus
            self._init(kwargs)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # One task per CPU: the tasks always share the cores, as several workers do.
        worker_setup = setup(max(2, cpus))
        self.env = worker_setup.env
        warm = ray.remote(num_cpus=1)(warm_up)
        self.warming = [warm.remote(worker_setup.imports) for _ in range(max(1, cpus))]

    def _init(self, kwargs: dict[str, Any]) -> None:
        where = f"the Ray cluster at {kwargs['address']}" if "address" in kwargs else "a local Ray cluster"
        try:
            self.ray.init(**kwargs)
        except (KeyboardInterrupt, SimgenError):
            raise
        except Exception as exc:  # ray.init raises ConnectionError, RuntimeError, ValueError, its own types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunnerUnavailable(f"cannot start {where}: {first}") from None
        self.started_here = True

    def run(self, jobs: Sequence[ShardJob], progress: Callable[[int], None] | None = None) -> list[ShardResult]:
        """Run ``jobs`` as Ray tasks and return their results in job order.

        Args:
            jobs: The shards to run.
            progress: Called with a shard's frame count when it finishes.

        Raises:
            WorkerCrashed: A task's worker died on every try Ray gave it.
            OutputWriteError: The filesystem refused a write.
        """
        ray = self.ray
        remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(_task)
        slots = job_slots(jobs[0]) if jobs else None
        if slots is not None:
            return self._run_in_slots(remote, jobs, slots, progress)
        refs = {remote.remote(job, self.env): i for i, job in enumerate(jobs)}
        results: dict[int, ShardResult] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = refs[ref]
                results[i] = self._result(ref, jobs[i])
                if progress:
                    progress(results[i].frames + results[i].reused)
        return [results[i] for i in range(len(jobs))]

    def _run_in_slots(
        self, remote: Any, jobs: Sequence[ShardJob], slots: int, progress: Callable[[int], None] | None
    ) -> list[ShardResult]:
        """At most ``slots`` tasks at once, each holding its slot (a CARLA server: ``servers[slot]``) alone.

        The driver hands a finished task's slot to the next shard, so two tasks never drive one server, however
        many CPUs the cluster has.
        """
        free = list(range(slots))
        todo = list(range(len(jobs)))
        running: dict[Any, tuple[int, int]] = {}  # ref -> (job index, slot)
        results: dict[int, ShardResult] = {}
        while todo or running:
            while todo and free:
                i, slot = todo.pop(0), free.pop(0)
                running[remote.remote(jobs[i], self.env, slot, slots)] = (i, slot)
            done, _ = self.ray.wait(list(running), num_returns=1)
            for ref in done:
                i, slot = running.pop(ref)
                free.append(slot)
                results[i] = self._result(ref, jobs[i])
                if progress:
                    progress(results[i].frames + results[i].reused)
        return [results[i] for i in range(len(jobs))]

    def _result(self, ref: Any, job: ShardJob) -> ShardResult:
        """A task's result; its failure as one clean line where it has one."""
        errors = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except (errors.WorkerCrashedError, errors.NodeDiedError, errors.LocalRayletDiedError) as exc:
            raise worker_crashed(job, type(exc).__name__, f"also on Ray's {MAX_RETRIES} retries") from None
        except errors.OutOfMemoryError:
            raise worker_crashed(job, "out of memory (Ray's memory monitor)", "and Ray gave up") from None
        except errors.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise_write_error(cause, job.out)
                if isinstance(cause, SimgenError):
                    raise cause from None
            raise

    def close(self) -> None:
        """Shut down the local cluster this runner started (a running cluster is left alone)."""
        try:
            close_backends()
            if self.started_here and self.ray.is_initialized():
                self.ray.shutdown()
            self.started_here = False
        finally:
            if self.sigterm is not None:
                self.sigterm.restore()
