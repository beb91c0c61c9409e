"""Run the same shard function as Ray tasks. Ray does scheduling, retries and cluster membership.

Every node must see the output folder at the same path (a shared filesystem), and have simgen and
the scene's assets installed. A task that dies is retried by Ray; the retried shard keeps every
intact frame the dead attempt finished (see :func:`simgen.engine.shard.run_shard`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from simgen.engine.runner import warm_up
from simgen.engine.shard import ShardJob, ShardResult, close_backends, run_shard
from simgen.errors import DependencyMissing

MAX_RETRIES = 3


def _task(job: ShardJob, env: dict[str, str]) -> ShardResult:
    # Set here rather than through a runtime_env: Ray then reuses its pre-started workers instead of
    # starting a dedicated set for that environment. It must precede the worker's first GL context.
    for key, value in env.items():
        os.environ.setdefault(key, value)
    return run_shard(job)


class RayRunner:
    """Shards as Ray tasks (one CPU each), on a running cluster or a local one started here.

    The cluster starts (and its workers import simgen) as soon as this is made, while the caller
    prepares the run.

    Args:
        address: A running cluster (``ray://host:10001`` or ``auto``); None starts a local one.
        num_cpus: CPUs of a local cluster (ignored with ``address``).
    """

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise DependencyMissing("ray", "ray", "--runner ray") from None
        self.ray = ray
        self.started_here = False
        self.background_sink = False  # one task per CPU: the cores are full
        if not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written to $HOME for a local cluster
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                kwargs["address"] = address
            elif num_cpus:
                kwargs["num_cpus"] = num_cpus
            ray.init(**kwargs)
            self.started_here = True
        # Tasks already fill the cores: llvmpipe draws on each task's own thread (see runner.worker_env).
        self.env = {"LP_NUM_THREADS": os.environ.get("LP_NUM_THREADS", "0")}
        cpus = int(ray.cluster_resources().get("CPU", 1))
        warm = ray.remote(num_cpus=1)(warm_up)
        self.warming = [warm.remote() for _ in range(max(1, cpus))]

    def run(self, jobs: Sequence[ShardJob], progress: Callable[[int], None] | None = None) -> list[ShardResult]:
        """Run ``jobs`` as Ray tasks and return their results in job order.

        Args:
            jobs: The shards to run.
            progress: Called with a shard's frame count when it finishes.
        """
        ray = self.ray
        remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(_task)
        refs = {remote.remote(job, self.env): i for i, job in enumerate(jobs)}
        results: dict[int, ShardResult] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = refs[ref]
                results[i] = ray.get(ref)
                if progress:
                    progress(results[i].frames + results[i].reused)
        return [results[i] for i in range(len(jobs))]

    def close(self) -> None:
        """Shut down the local cluster this runner started (a running cluster is left alone)."""
        close_backends()
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()
        self.started_here = False
