"""Process-wide state of PyBullet's EGL plugin, and keeping its prints off stdout.

See :mod:`simgen.backends.pybullet_backend` for the measured quirks this works around: one EGL client per
process, warm-up frames, and GL information printed to C-level stdout on load, first frames and disconnect.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pybullet as p

#: Frames rendered right after loading the plugin: its first frames have no shadows.
EGL_WARMUP_FRAMES = 2
#: Physics clients of this process that run the EGL plugin (one at a time).
EGL_CLIENTS: set[int] = set()
EGL_LOCK = threading.Lock()
EGL_BUSY = "another EGL backend is alive in this process (the plugin supports one at a time)"


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Point file descriptors 1 and 2 at /dev/null inside the block (C-level prints included).

    The EGL plugin prints GL details to stdout and "EGL device choice" to stderr on every load and
    close; a failed load is reported through its return value, so nothing useful is lost.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved: list[tuple[int, int]] = []
    for fd in (1, 2):
        try:
            saved.append((fd, os.dup(fd)))
        except OSError:  # no such fd: nothing to protect
            continue
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd, _ in saved:
        os.dup2(devnull, fd)
    os.close(devnull)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # flush C stdio buffers into /dev/null before restoring
            ctypes.CDLL(None).fflush(None)
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def disconnect(cid: int, quiet: bool) -> None:
    """Disconnect a physics client; the EGL plugin prints on the way out, so silence fd 1 for it."""
    with quiet_stdout() if quiet else contextlib.nullcontext(), contextlib.suppress(p.error):
        p.disconnect(physicsClientId=cid)
    if quiet:
        with EGL_LOCK:
            EGL_CLIENTS.discard(cid)


def mesa_cache_dir() -> str:
    """A per-user Mesa shader cache folder in the temporary directory."""
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return str(Path(tempfile.gettempdir()) / f"simgen-mesa-shader-cache-{uid}")


def load_egl_plugin(cid: int) -> str | None:
    """Load the EGL plugin into a (still empty) client and draw its warm-up frames.

    Returns:
        None on success, else why it failed (the client may then be half-configured: replace it).
    """
    spec = importlib.util.find_spec("eglRenderer")
    if spec is None or not spec.origin:
        return "pybullet's eglRenderer module is missing"
    os.environ.setdefault("MESA_SHADER_CACHE_DIR", mesa_cache_dir())
    try:
        with quiet_stdout():
            plugin = p.loadPlugin(spec.origin, "_eglRendererPlugin", physicsClientId=cid)
            if plugin >= 0:
                for _ in range(EGL_WARMUP_FRAMES):  # the first frames of a fresh plugin have no shadows
                    p.getCameraImage(8, 8, renderer=p.ER_BULLET_HARDWARE_OPENGL, physicsClientId=cid)
    except p.error as exc:
        return str(exc)
    return None if plugin >= 0 else "loadPlugin returned -1 (no EGL device?)"


def probe_renderer() -> str:
    """``egl`` if this process can start PyBullet's EGL renderer and draw with it, else ``tiny``.

    Meant for a short-lived child process (see :func:`simgen.backends.resolve_renderer`): it imports
    nothing but pybullet, so it costs a fraction of a second on top of the EGL start itself.
    """
    cid = p.connect(p.DIRECT)
    if cid < 0:
        return "tiny"
    error = load_egl_plugin(cid)
    disconnect(cid, quiet=True)
    return "egl" if error is None else "tiny"
