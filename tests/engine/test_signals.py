"""Signals on a real ``simgen generate --workers 2``: workers die with their parent, SIGTERM is handled like
Ctrl-C, and a Ctrl-C while the workers still import prints no traceback from them.

Each run is a subprocess in its own session (so a Ctrl-C can go to its whole process group, as a terminal's
does); its worker pids are read with psutil before it is signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from simgen.spec import read_spec_file

psutil = pytest.importorskip("psutil")

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenes" / "tabletop_clutter.yaml"
INTERRUPTED = "interrupted; rerun with --resume to finish"


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = 4
    raw["frames_per_scene"] = 2
    raw["physics"]["max_steps"] = 300
    raw["camera"]["width"], raw["camera"]["height"] = 64, 48
    path = tmp_path_factory.mktemp("spec") / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


class Run:
    """A ``simgen generate --workers 2`` subprocess of many frames, and the processes it started."""

    def __init__(self, spec: Path, out: Path) -> None:
        self.out = out
        env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simgen", "generate", str(spec), "-o", str(out), "-n", "400", "--seed", "1",
             "--workers", "2", "--shard-frames", "2", "--no-preview"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
        )  # fmt: skip
        self.children: list[Any] = []

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, f"simgen exited early ({self.proc.returncode}): {self.proc.stderr.read()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)
        self.children = psutil.Process(self.proc.pid).children(recursive=True)

    def workers_started(self) -> bool:
        kids = psutil.Process(self.proc.pid).children(recursive=True)
        return sum("spawn_main" in " ".join(k.cmdline()) for k in kids if k.is_running()) >= 2

    def frames_written(self) -> bool:
        return any((self.out / "images").glob("*.png"))

    def alive_children(self, within: float) -> list[int]:
        """Pids of the recorded children still running (not zombies) after up to ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            alive = [c.pid for c in self.children if _running(c)]
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.1)

    def files(self) -> dict[str, int]:
        return {str(p.relative_to(self.out)): p.stat().st_size for p in self.out.rglob("*") if p.is_file()}

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        _, stderr = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, stderr

    def kill_leftovers(self) -> None:
        for child in [*self.children, psutil.Process(self.proc.pid) if self.proc.poll() is None else None]:
            if child is not None and _running(child):
                child.kill()


def _running(proc: Any) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def run(spec_file: Path, tmp_path: Path) -> Iterator[Run]:
    started = Run(spec_file, tmp_path / "ds")
    try:
        yield started
    finally:
        started.kill_leftovers()
        if started.proc.poll() is None:
            started.proc.kill()
        started.proc.communicate()


def _assert_nothing_more_is_written(run: Run) -> None:
    before = run.files()
    time.sleep(1.5)
    assert run.files() == before


def test_workers_die_with_a_main_process_killed_by_sigkill(run: Run) -> None:
    run.wait_for(run.frames_written, "the first frames")
    workers = [c for c in run.children if "spawn_main" in " ".join(c.cmdline())]
    assert len(workers) == 2
    os.kill(run.proc.pid, signal.SIGKILL)  # as the OOM killer does
    run.proc.wait(timeout=10)
    assert run.alive_children(within=5.0) == []
    _assert_nothing_more_is_written(run)


def test_sigterm_is_handled_like_ctrl_c(run: Run) -> None:
    run.wait_for(run.frames_written, "the first frames")
    os.kill(run.proc.pid, signal.SIGTERM)
    code, stderr = run.finish()
    assert code == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert INTERRUPTED in stderr.splitlines()[-1]
    assert run.alive_children(within=5.0) == []
    assert not (run.out / "annotations.coco.json").exists()


def test_ctrl_c_while_workers_import_prints_no_traceback(run: Run) -> None:
    run.wait_for(run.workers_started, "the worker processes")
    time.sleep(0.3)  # they are importing simgen now (that takes a second or more)
    os.killpg(run.proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    code, stderr = run.finish()
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert code == 128 + signal.SIGINT, stderr
    assert INTERRUPTED in stderr.splitlines()[-1]
    assert run.alive_children(within=5.0) == []
