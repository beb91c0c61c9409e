"""Shared PyBullet backends (TinyRenderer for the session, EGL per module) and the scene helpers.

PyBullet allows one EGL client per process, so each module's EGL backend is closed after it; where the plugin
cannot load, EGL cases are skipped with the reason. The scene helpers live in simgen.testing.pybullet_scenes
(also given as the ``pb`` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from simgen.backends.pybullet_backend import PyBulletBackend
from simgen.errors import BackendUnavailable
from simgen.testing import pybullet_scenes


@pytest.fixture(scope="session")
def tiny() -> Iterator[PyBulletBackend]:
    with PyBulletBackend(renderer="tiny") as backend:
        yield backend


@pytest.fixture(scope="module")
def egl() -> Iterator[PyBulletBackend]:
    # Module scope: PyBullet allows one EGL client per process, and the engine tests need theirs.
    try:
        backend = PyBulletBackend(renderer="egl")
    except BackendUnavailable as exc:
        pytest.skip(f"EGL renderer unavailable here: {exc}")
    with backend:
        yield backend


@pytest.fixture(params=["tiny", "egl"])
def backend(request: pytest.FixtureRequest) -> PyBulletBackend:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def pb() -> ModuleType:
    """The scene helpers of :mod:`simgen.testing.pybullet_scenes`, for test modules that prefer a fixture."""
    return pybullet_scenes
