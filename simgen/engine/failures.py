"""What a stopped run or a dead worker becomes: signals handled like Ctrl-C, and one clean line per failure.

Both runners (:mod:`simgen.engine.runner`, :mod:`simgen.engine.ray_runner`) use these, so neither imports
the other.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from simgen.engine.files import Layout
from simgen.engine.shard import MANIFEST_FRAGMENT, ShardJob
from simgen.errors import Interrupted, OutputWriteError, WorkerCrashed
from simgen.io import complete_jsonl_lines

# --- signals ----------------------------------------------------------------------------------------------


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
def sigint_blocked() -> Iterator[None]:
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


# --- failures as one line ---------------------------------------------------------------------------------


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
    """The first group (scene) of a shard with a record its manifest fragment has not committed (where it was).

    Reads the fragment's complete lines only (no checksums): this names a scene in an error message.
    """
    import json

    key = job.task.record_key
    done: set[int] = set()
    path = Layout(Path(job.out)).shard_dir(job.shard.name) / MANIFEST_FRAGMENT
    with contextlib.suppress(OSError):
        for line in complete_jsonl_lines(path):
            entry = json.loads(line)
            index = entry.get(key) if isinstance(entry, dict) else None
            if isinstance(index, int):
                done.add(index)
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
    key = job.task.record_key
    return (
        f"the worker running shard {job.shard.name} at scene {scene} ({key}s {frames.start}-{frames.stop - 1})",
        scene,
    )


def worker_crashed(
    job: ShardJob | None, how: str, after: str = "and again on its retry in a fresh worker"
) -> WorkerCrashed:
    """One line: which shard and scene a worker died in, the signal, and that ``--resume`` finishes the run."""
    where, scene = _where(job)
    kept = f"its finished {job.task.record_key}s are kept: " if job is not None else ""
    return WorkerCrashed(
        f"{where} died of {how}, {after}; {kept}rerun with --resume to finish",
        shard=None if job is None else job.shard.name,
        scene=scene,
        signal=how,
    )


def retry_notice(job: ShardJob | None, how: str) -> str:
    """What is logged when a worker died the first time and its shard is handed out again."""
    return f"{_where(job)[0]} died of {how}; retrying it once in a fresh worker"
