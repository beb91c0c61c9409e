"""Process-wide state of PyBullet's EGL plugin, and keeping its prints off stdout.

See :mod:`simgen.backends.pybullet_backend` for the measured quirks this works around: one EGL client per
process, warm-up frames, and GL information printed to C-level stdout on load, first frames and disconnect.

**Texture rows.** The plugin uploads every texture as tightly packed 8-bit RGB (``stb_image`` with 3
components) through ``glTexImage2D``, under OpenGL's default ``GL_UNPACK_ALIGNMENT`` of 4. A texture whose
width is not a multiple of 4 has rows of ``3 * width`` bytes that are not a multiple of 4, so OpenGL reads
each row one to three bytes further on than the last: the image is drawn sheared, with its colour channels
rotated, and the upload reads up to ``3 * height`` bytes past the end of the pixel buffer. pybullet_data's
``tray/tray.jpg`` (853x1461) over-reads 1460 bytes of a 3.7 MB buffer; with glibc's mmap threshold pinned
(:mod:`simgen.engine.memory`) that buffer is a mapping of its own, 527 bytes too short, and whether the page
after it is mapped depends on the address-space layout: a bare SIGSEGV in ``loadURDF`` (measured: 4 of 5
runs of ``bin_picking`` at 320x240, in a process's second scene). :func:`load_egl_plugin` therefore sets
``GL_UNPACK_ALIGNMENT`` to 1 in the plugin's GL context, right after loading it: every texture is then read
exactly, and drawn as TinyRenderer draws it. Textures whose width is a multiple of 4 are unchanged, bit for bit.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pybullet as p

#: Frames rendered right after loading the plugin: its first frames have no shadows.
EGL_WARMUP_FRAMES = 2
#: Physics clients of this process that run the EGL plugin (one at a time).
EGL_CLIENTS: set[int] = set()
EGL_LOCK = threading.Lock()
EGL_BUSY = "another EGL backend is alive in this process (the plugin supports one at a time)"
#: The plugin never frees meshes on resetSimulation (8-10 MB per build, measured): a worker's EGL client is closed
#: and started again after at most this many builds, which frees it ...
EGL_RECYCLE_BUILDS = int(os.environ.get("SIMGEN_EGL_RECYCLE_BUILDS", "8"))
#: ... or after at least this many, once it has grown as much as the first client did (see RecyclePolicy).
EGL_RECYCLE_MIN_BUILDS = int(os.environ.get("SIMGEN_EGL_RECYCLE_MIN_BUILDS", str(EGL_RECYCLE_BUILDS // 2)))
_GL_UNPACK_ALIGNMENT = 0x0CF5


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
            if plugin < 0:
                return "loadPlugin returned -1 (no EGL device?)"
            # Before any texture is uploaded: rows of any width are then read exactly (see the module docstring).
            error = set_unpack_alignment(1)
            if error is not None:
                return error
            for _ in range(EGL_WARMUP_FRAMES):  # the first frames of a fresh plugin have no shadows
                p.getCameraImage(8, 8, renderer=p.ER_BULLET_HARDWARE_OPENGL, physicsClientId=cid)
    except p.error as exc:
        return str(exc)
    return None


def _gl_pixel_store() -> tuple[Callable[[int, int], None], Callable[[int, Any], None]] | str:
    """``glPixelStorei`` and ``glGetIntegerv`` of the GL context current on this thread, or why there are none."""
    # The plugin's GL loader opens libEGL.so.1 (else libEGL.so): the same library, so the same current context.
    egl = None
    for name in ("libEGL.so.1", "libEGL.so"):
        with contextlib.suppress(OSError):
            egl = ctypes.CDLL(name)
            break
    if egl is None:
        return "cannot open libEGL"
    egl.eglGetCurrentContext.restype = ctypes.c_void_p
    egl.eglGetProcAddress.restype = ctypes.c_void_p
    egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]
    if not egl.eglGetCurrentContext():
        return "no GL context is current on this thread"
    store, get = egl.eglGetProcAddress(b"glPixelStorei"), egl.eglGetProcAddress(b"glGetIntegerv")
    if not store or not get:
        return "libEGL does not resolve glPixelStorei and glGetIntegerv"
    return (
        ctypes.CFUNCTYPE(None, ctypes.c_uint, ctypes.c_int)(store),
        ctypes.CFUNCTYPE(None, ctypes.c_uint, ctypes.POINTER(ctypes.c_int))(get),
    )


def unpack_alignment() -> int | None:
    """``GL_UNPACK_ALIGNMENT`` of the GL context current on this thread, or None without one."""
    fns = _gl_pixel_store()
    if isinstance(fns, str):
        return None
    value = ctypes.c_int(-1)
    fns[1](_GL_UNPACK_ALIGNMENT, ctypes.byref(value))
    return value.value


def set_unpack_alignment(alignment: int) -> str | None:
    """Set ``GL_UNPACK_ALIGNMENT`` in the GL context current on this thread (the plugin's; see the module docstring).

    Returns:
        None on success, else why it could not be set (the plugin would then over-read texture buffers).
    """
    fns = _gl_pixel_store()
    if isinstance(fns, str):
        return f"cannot set GL_UNPACK_ALIGNMENT: {fns}"
    fns[0](_GL_UNPACK_ALIGNMENT, alignment)
    if unpack_alignment() != alignment:
        return f"GL_UNPACK_ALIGNMENT did not change to {alignment}"
    return None


def probe_renderer() -> str:
    """``egl`` if this process can start PyBullet's EGL renderer and draw with it, else ``tiny``.

    Meant for a short-lived child process (see :func:`probe_auto_renderer`): it imports
    nothing but pybullet, so it costs a fraction of a second on top of the EGL start itself.
    """
    cid = p.connect(p.DIRECT)
    if cid < 0:
        return "tiny"
    error = load_egl_plugin(cid)
    disconnect(cid, quiet=True)
    return "egl" if error is None else "tiny"


@functools.cache
def probe_auto_renderer() -> str:
    """What ``renderer="auto"`` gets on this machine, ``egl`` or ``tiny``: asked once per process, of a child process.

    A child process, so the probe's EGL client never collides with one of ours (one per process). It answers
    with its exit status: 0 is EGL; anything else (no EGL, an import error, a crash) is TinyRenderer.
    """
    code = "import sys\nfrom simgen.backends.pybullet_egl import probe_renderer\nsys.exit(probe_renderer() != 'egl')"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return "tiny"
    return "egl" if proc.returncode == 0 else "tiny"
