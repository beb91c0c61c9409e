"""Peak memory and time of KID on large feature sets: the blocked kernel vs the pooled one it replaced.

``simgen.validators.functional.kid`` computes the polynomial kernel by blocks of rows and turns every
subset's kernel sums into quadratic forms of 0/1 memberships, so its memory does not grow with the set
sizes; the pooled kernel of the earlier version was (n1 + n2)² float64 values plus its temporaries.

Peak memory is measured with ``tracemalloc`` (numpy reports its buffers to it), over the call alone: the
feature matrices themselves (n x d float64, allocated before) are not counted.

Usage: python benchmarks/kid_memory.py [--n 8000] [--d 2048] [--pooled-n 4000]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from simgen.validators import functional as F


def pooled_kid(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator, subsets: int = 100,
               subset_size: int = 1000) -> tuple[float, float]:  # fmt: skip
    """The earlier implementation: the whole pooled kernel, then every subset indexed out of it."""
    z = np.concatenate([x, y])
    kernel = (z @ z.T / z.shape[1] + 1.0) ** 3
    n1 = len(x)
    return F.kid_from_kernel(kernel, np.arange(n1), np.arange(n1, len(z)), rng=rng, subsets=subsets,
                             subset_size=subset_size)  # fmt: skip


def measure(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    """``(result, peak MB, seconds)`` of one call."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak / 2**20, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8000, help="samples per side for the blocked KID")
    parser.add_argument("--d", type=int, default=2048, help="feature dimension")
    parser.add_argument("--pooled-n", type=int, default=4000, help="samples per side for the pooled KID (0: skip)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for n, label in ((args.pooled_n, "pooled+blocked"), (args.n, "blocked")):
        if n <= 0:
            continue
        x = np.abs(rng.normal(size=(n, args.d)))  # non-negative, like Inception pool features
        y = np.abs(rng.normal(size=(n, args.d))) * 1.05
        (mean, _), peak, secs = measure(F.kid, x, y, rng=np.random.default_rng(1))
        print(f"blocked KID, {n} + {n} x {args.d}: {mean:.6g}, peak {peak:.0f} MB, {secs:.1f} s")
        if label == "pooled+blocked":
            (ref, _), peak, secs = measure(pooled_kid, x, y, rng=np.random.default_rng(1))
            print(f"pooled KID,  {n} + {n} x {args.d}: {ref:.6g}, peak {peak:.0f} MB, {secs:.1f} s "
                  f"(|difference| {abs(ref - mean):.2e})")  # fmt: skip


if __name__ == "__main__":
    main()
