"""Run the same shard function as Ray tasks. Ray does scheduling, retries and cluster membership.

Every node must see the output folder at the same path (a shared filesystem), and have simgen and
the scene's assets installed. A task that dies is retried by Ray; the retried shard keeps every
intact frame the dead attempt finished (see :func:`simgen.engine.shard.run_shard`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from simgen.engine.shard import ShardJob, ShardResult, close_backends, run_shard
from simgen.errors import DependencyMissing

MAX_RETRIES = 3


def _task(job: ShardJob) -> ShardResult:
    return run_shard(job)


def run_ray(
    jobs: Sequence[ShardJob],
    progress: Callable[[int], None] | None = None,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
) -> list[ShardResult]:
    """Run jobs as Ray tasks (one CPU each) and return their results in job order.

    Args:
        jobs: The shards to run.
        progress: Called with a shard's frame count when it finishes.
        address: A running cluster (``ray://host:10001`` or ``auto``); None starts a local one.
        num_cpus: CPUs of a local cluster (ignored with ``address``).
    """
    try:
        import ray
    except ImportError:
        raise DependencyMissing("ray", "ray", "--runner ray") from None
    started_here = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written to $HOME for a local cluster
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        elif num_cpus:
            kwargs["num_cpus"] = num_cpus
        # One llvmpipe thread per task: tasks already fill the cores (PLATFORM.md).
        kwargs["runtime_env"] = {"env_vars": {"LP_NUM_THREADS": os.environ.get("LP_NUM_THREADS", "1")}}
        ray.init(**kwargs)
        started_here = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(_task)
        refs = {remote.remote(job): i for i, job in enumerate(jobs)}
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
    finally:
        close_backends()
        if started_here:
            ray.shutdown()
