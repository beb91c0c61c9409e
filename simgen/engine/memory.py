"""Keep a long run's memory flat: glibc allocator settings for a process that renders many frames.

glibc raises its mmap threshold each time a large block is freed, so after the first frames every
frame-sized buffer (RGB, depth, masks, PNG bytes) comes from the heap instead of its own mapping,
and the heap fragments and grows for hundreds of frames before it levels off. Pinning the threshold
keeps large buffers in mappings that go back to the OS when freed. A simulator closed by the EGL
recycling frees a lot at once; ``malloc_trim`` then hands those pages back.

Both are no-ops where glibc is absent (macOS, musl) or when ``SIMGEN_MALLOC_TUNING=0``.

With the threshold pinned, every large block is a mapping of its own, whose end is at most a page
past the block's: native code that reads past a large buffer faults, where it would have read a
neighbouring heap block unnoticed. That is how PyBullet's EGL texture over-read surfaced (fixed at its
cause, see :mod:`simgen.backends.pybullet_egl`). The pinning stays: it makes such bugs loud.
:class:`RecyclePolicy` decides when a leaking simulator client is restarted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
#: Blocks at least this large get their own mapping (glibc's initial default, which it then raises).
MMAP_THRESHOLD_BYTES = 128 * 1024


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if os.environ.get("SIMGEN_MALLOC_TUNING", "1") == "0":
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018  (glibc only: AttributeError elsewhere)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def pin_mmap_threshold() -> bool:
    """Stop glibc from raising its mmap threshold in this process (once); return whether it applied."""
    libc = _libc()
    if libc is None or os.environ.get("MALLOC_MMAP_THRESHOLD_"):  # the user's own setting wins
        return False
    ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    return ok


def release_free_memory() -> None:
    """Return the heap's free pages to the OS (after a simulator is closed)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def resident_bytes() -> int | None:
    """This process's resident set size, or None where ``/proc`` is absent."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class RecyclePolicy:
    """When to restart a simulator client that leaks a little with every scene it builds.

    A client is restarted after ``max_builds`` scenes. What the process grew by over that first cycle,
    from the end of the client's first scene (its fixed start-up cost is in by then), becomes a budget:
    a later client is restarted as soon as it has grown by as much (after at least ``min_builds``
    scenes), so peak memory does not creep up with run length while scene content varies from cycle to
    cycle. Growth that is not the client's (a long-lived Ray worker's own) does not shorten cycles.

    Args:
        max_builds: Scenes per client at most.
        min_builds: Scenes per client at least (bounds the restart cost when the budget is tight).
        rss: Reads the resident size (:func:`resident_bytes`; replaceable in tests).
    """

    #: The smallest budget, so a first cycle that happened to shrink does not force the shortest cycles.
    MIN_BUDGET = 8 * 2**20

    def __init__(self, max_builds: int, min_builds: int, rss: Callable[[], int | None] = resident_bytes) -> None:
        self.max_builds, self.min_builds, self.rss = max_builds, min(min_builds, max_builds), rss
        self.budget: int | None = None
        self.start: int | None = None

    def due(self, builds: int) -> bool:
        """Whether a client that has built ``builds`` scenes should be restarted before the next one."""
        if builds == 1:
            self.start = self.rss()
        if builds >= self.max_builds:
            if self.budget is None and self.start is not None:
                now = self.rss()
                self.budget = None if now is None else max(now - self.start, self.MIN_BUDGET)
            return True
        if self.budget is None or self.start is None or builds < self.min_builds:
            return False
        now = self.rss()
        return now is not None and now - self.start >= self.budget

    def reset(self) -> None:
        """Forget the budget (a new run may render at another size)."""
        self.budget = self.start = None
