"""Simulator backends, resolved by name through the shared :class:`~simgen.registry.Registry`, imported when asked for.

``make_backend("pybullet")`` imports PyBullet; ``import simgen.backends`` alone imports no simulator. A
third-party backend registers under the entry-point group ``simgen.backends``
(``mysim = "pkg.module:MySimBackend"``) and is then a spec's ``backend: mysim``; a ``"pkg.module:Class"``
string works too.

Besides the :class:`~simgen.backends.base.Backend` protocol, the engine asks a backend's *class* a few
questions, each optional with a default (see :mod:`simgen.backends.base`): which renderer ``"auto"`` means
here (:func:`resolve_renderer`), the environment its worker processes need (:func:`worker_env`), its label
categories for a spec (:func:`backend_categories`), what it can compute (:func:`backend_capabilities`), the
arguments each worker builds it with (:func:`worker_options`) and how many shards may run at once
(:func:`exclusive_slots`: one per CARLA server).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

# The spec models hold the CARLA section (simgen.backends.carla_spec), which uses the spec's error helpers: load
# the spec package first, so importing a backend module before it never meets a half-initialized carla_spec.
import simgen.spec  # noqa: F401
from simgen.errors import BackendUnavailable
from simgen.registry import Registry, import_string

if TYPE_CHECKING:
    from simgen.backends.base import Backend
    from simgen.spec.loader import LoadedSpec

__all__ = [
    "BACKENDS",
    "backend_capabilities",
    "backend_categories",
    "backend_class",
    "backend_module",
    "backend_names",
    "exclusive_slots",
    "has_worker_options",
    "make_backend",
    "resolve_renderer",
    "worker_env",
    "worker_options",
]

#: Backend name -> ``"module:Class"``, resolved lazily; third parties add theirs through entry points.
BACKENDS: Registry[Any] = Registry("backend", group="simgen.backends", versioned=False)
BACKENDS.register("pybullet", "simgen.backends.pybullet_backend:PyBulletBackend")
BACKENDS.register("carla", "simgen.backends.carla:CarlaBackend")


def backend_names() -> list[str]:
    """The names :func:`make_backend` accepts, sorted."""
    return BACKENDS.names()


def backend_module(name: str) -> str | None:
    """The module a backend lives in (what a worker imports ahead of its first job), or None for a class."""
    target = BACKENDS.target(name)
    return target.partition(":")[0] if isinstance(target, str) else target.__module__


def backend_class(name: str) -> type[Any]:
    """The class of the backend registered under ``name``.

    Raises:
        RegistryError: An unknown name, with a "did you mean".
        BackendUnavailable: The backend's module is not part of this installation, or lacks its class.
    """
    target = BACKENDS.target(name)
    if not isinstance(target, str):
        return target
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
    return cls


def make_backend(name: str, *, renderer: str = "auto", **options: Any) -> Backend:
    """Create a backend by name.

    Args:
        name: ``"pybullet"``, ``"carla"``, an entry point's name or ``"pkg.module:Class"``.
        renderer: Passed to the backend (PyBullet: ``"auto"``, ``"egl"`` or ``"tiny"``).
        **options: The backend's other keyword arguments (CARLA: ``config``, ``server``).

    Returns:
        A started backend; call ``close()`` (or use it as a context manager) when done.

    Raises:
        RegistryError: For an unknown name, with a "did you mean".
        BackendUnavailable: When the backend's module is not installed or the backend cannot start.
        DependencyMissing: When the backend's simulator package is missing (the message names the extra).
    """
    return backend_class(name)(renderer=renderer, **options)


def resolve_renderer(name: str, renderer: str) -> str:
    """Turn ``"auto"`` into the renderer that will actually run, once, before any worker starts.

    Every worker then asks for that exact renderer, so a dataset is never rendered half with one renderer and
    half with another (their pixels differ): a worker that cannot get it fails loudly instead. The backend's
    class answers through ``resolve_renderer(requested)`` (PyBullet probes EGL in a child process); a
    backend without one runs what was asked.

    Raises:
        SimgenError: The backend does not know the renderer (with a "did you mean").
    """
    hook = getattr(backend_class(name), "resolve_renderer", None)
    return hook(renderer) if hook is not None else renderer


def worker_env(name: str, workers: int) -> dict[str, str]:
    """Environment variables worker processes set before their first simulator, when ``workers`` share the cores."""
    hook = getattr(backend_class(name), "worker_env", None)
    return dict(hook(workers)) if hook is not None else {}


def backend_categories(name: str, loaded: LoadedSpec) -> list[str]:
    """The label categories of a spec on this backend, in id order (id = position + 1).

    The backend's class answers through ``categories(loaded)``; by default they come from the spec alone
    (:func:`simgen.backends.base.spec_categories`).
    """
    from simgen.backends.base import spec_categories

    hook = getattr(backend_class(name), "categories", None)
    return list(hook(loaded)) if hook is not None else spec_categories(loaded)


def worker_options(name: str, loaded: LoadedSpec, worker: int, workers: int) -> dict[str, Any]:
    """The keyword arguments worker ``worker`` (of ``workers``) builds its backend with, from the run's spec.

    The backend's class answers through ``worker_options(loaded, worker, workers)`` (CARLA: the spec's
    ``carla:`` section and the worker's own server); a backend without one takes none (PyBullet).
    """
    hook = getattr(backend_class(name), "worker_options", None)
    return dict(hook(loaded, worker, workers)) if hook is not None else {}


def has_worker_options(name: str) -> bool:
    """Whether the backend builds from the run's spec (so a worker must load it before its first scene)."""
    return getattr(backend_class(name), "worker_options", None) is not None


def exclusive_slots(name: str, loaded: LoadedSpec) -> int | None:
    """How many shards may run at once, each holding its slot alone (CARLA: one per server); None: no limit."""
    hook = getattr(backend_class(name), "exclusive_slots", None)
    return int(hook(loaded)) if hook is not None else None


def backend_capabilities(name: str) -> Mapping[str, bool]:
    """What the backend can compute (``{"visibility": True}``); a capability it does not list is unavailable."""
    caps = getattr(backend_class(name), "capabilities", None)
    return dict(caps) if isinstance(caps, Mapping) else {}


def _probe_pybullet_auto() -> str:
    """What ``"auto"`` means for PyBullet here (kept for callers of the old name; see the PyBullet backend)."""
    return import_string("simgen.backends.pybullet_egl:probe_auto_renderer")()
