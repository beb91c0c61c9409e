"""Simulator backends, created by name and imported only when asked for.

``make_backend("pybullet")`` imports PyBullet; ``import simgen.backends`` alone imports no simulator.
"""

from __future__ import annotations

import functools
import importlib
import subprocess
import sys
from typing import TYPE_CHECKING

from simgen.errors import BackendUnavailable, RegistryError, did_you_mean

if TYPE_CHECKING:
    from simgen.backends.base import Backend

#: Backend name -> ``"module:Class"``, resolved lazily.
BACKENDS: dict[str, str] = {
    "pybullet": "simgen.backends.pybullet_backend:PyBulletBackend",
    "carla": "simgen.backends.carla:CarlaBackend",
}


def backend_names() -> list[str]:
    """The names :func:`make_backend` accepts, sorted."""
    return sorted(BACKENDS)


def make_backend(name: str, *, renderer: str = "auto") -> Backend:
    """Create a backend by name.

    Args:
        name: ``"pybullet"`` or ``"carla"``.
        renderer: Passed to the backend (PyBullet: ``"auto"``, ``"egl"`` or ``"tiny"``).

    Returns:
        A started backend; call ``close()`` (or use it as a context manager) when done.

    Raises:
        RegistryError: For an unknown name, with a "did you mean".
        BackendUnavailable: When the backend's module is not installed or the backend cannot start.
        DependencyMissing: When the backend's simulator package is missing (the message names the extra).
    """
    target = BACKENDS.get(name)
    if target is None:
        raise RegistryError(f"unknown backend '{name}'{did_you_mean(name, BACKENDS)}; choose one of {backend_names()}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # a dependency of the module is missing: let its own error speak
            raise
        raise BackendUnavailable(
            f"the '{name}' backend is not part of this simgen installation ({module_name} is missing)"
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise BackendUnavailable(f"the '{name}' backend module {module_name} has no class {class_name}")
    return cls(renderer=renderer)


@functools.cache
def _probe_pybullet_auto() -> str:
    # A child process, so the probe's EGL client never collides with one of ours (one per process).
    # It answers with its exit status: 0 is EGL; anything else (no EGL, an import error, a crash) is tiny.
    code = "import sys\nfrom simgen.backends.pybullet_egl import probe_renderer\nsys.exit(probe_renderer() != 'egl')"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return "tiny"
    return "egl" if proc.returncode == 0 else "tiny"


def resolve_renderer(name: str, renderer: str) -> str:
    """Turn ``"auto"`` into the renderer that will actually run, once, before any worker starts.

    Every worker then asks for that exact renderer, so a dataset is never rendered half with EGL and
    half with TinyRenderer (their pixels differ): a worker that cannot get it fails loudly instead.
    """
    if name == "pybullet" and renderer == "auto":
        return _probe_pybullet_auto()
    return renderer
