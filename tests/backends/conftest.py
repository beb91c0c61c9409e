"""Shared PyBullet backends (one per renderer for the whole session) and scene-building helpers.

The EGL plugin keeps process-wide GL state, so one EGL backend serves every test module; where the plugin
cannot load, EGL cases are skipped with the reason. Test modules are imported with ``--import-mode=importlib``
and cannot import each other, so the scene helpers come as the ``pb`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pybullet as p
import pybullet_data
import pytest

from simgen.backends.pybullet_backend import PyBulletBackend
from simgen.errors import BackendUnavailable

DATA = Path(pybullet_data.getDataPath())
W, H = 160, 120
K_CENTRED = [[110.0, 0.0, 80.0], [0.0, 110.0, 60.0], [0.0, 0.0, 1.0]]


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


def look_down(x: float = 0.0, y: float = 0.0, z: float = 2.0) -> np.ndarray:
    """A camera at (x, y, z) looking straight down (OpenCV axes: x = world x, y = world -y, z = world -z)."""
    T = np.eye(4)
    T[:3, :3] = [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]
    T[:3, 3] = [x, y, z]
    return T


def look_at(eye: list[float], target: list[float]) -> np.ndarray:
    eye_a, target_a = np.asarray(eye, float), np.asarray(target, float)
    forward = (target_a - eye_a) / np.linalg.norm(target_a - eye_a)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = right, down, forward, eye_a
    return T


def view(
    T: np.ndarray,
    K: list[list[float]] = K_CENTRED,
    *,
    width: int = W,
    height: int = H,
    light: dict[str, Any] | None = None,
    occluders: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "camera": {"width": width, "height": height, "K": K, "near": 0.05, "far": 10.0, "T_world_cam": T.tolist()},
        "light": light
        or {
            "direction": [0.3, 0.2, 0.93],
            "color": [1.0, 1.0, 1.0],
            "distance": 10.0,
            "ambient": 0.6,
            "diffuse": 0.35,
            "specular": 0.05,
            "shadows": True,
        },
    }
    if occluders is not None:
        out["occluders"] = occluders
    return out


def obj(
    uid: str,
    *,
    path: Path | str | None = None,
    shape: dict[str, Any] | None = None,
    position: tuple[float, ...] = (0.0, 0.0, 0.0),
    orientation: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0),
    scale: float = 1.0,
    **extra: Any,
) -> dict[str, Any]:
    entry = {
        "uid": uid,
        "group": uid.split("/")[0],
        "asset": str(path or ""),
        "path": str(path) if path else None,
        "shape": shape,
        "category": uid.split("/")[0],
        "labeled": True,
        "tags": [],
        "position": list(position),
        "orientation": list(orientation),
        "scale": scale,
        "color": None,
        "mass": None,
    }
    entry.update(extra)
    return entry


def fixture(uid: str, path: Path | str, **extra: Any) -> dict[str, Any]:
    entry = {
        "uid": uid,
        "asset": str(path),
        "path": str(path),
        "shape": None,
        "position": [0.0, 0.0, 0.0],
        "orientation": [0.0, 0.0, 0.0, 1.0],
        "scale": 1.0,
        "color": None,
        "labeled": False,
        "category": uid,
        "link_labels": False,
    }
    entry.update(extra)
    return entry


def scene(
    objects: list[dict[str, Any]], *, ground: str = "none", fixtures: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "ground": {"kind": ground, "color": None},
        "fixtures": list(fixtures or []),
        "objects": {o["uid"]: o for o in objects},
        "physics": {"max_steps": 1500, "rest_velocity": 0.01, "gravity": -9.81, "timestep": 1.0 / 240.0},
    }


def quat(roll: float, pitch: float, yaw: float) -> tuple[float, float, float, float]:
    return tuple(p.getQuaternionFromEuler([roll, pitch, yaw]))  # type: ignore[return-value]


def physics_snapshot(backend: PyBulletBackend) -> list[Any]:
    """Pose and velocity of every body in the world, as PyBullet reports them (exact floats)."""
    cid = backend.client_id
    bodies = [p.getBodyUniqueId(i, physicsClientId=cid) for i in range(p.getNumBodies(physicsClientId=cid))]
    return [
        (b, p.getBasePositionAndOrientation(b, physicsClientId=cid), p.getBaseVelocity(b, physicsClientId=cid))
        for b in bodies
    ]


@pytest.fixture(scope="session")
def pb() -> SimpleNamespace:
    """The scene helpers above, for test modules (they cannot import this file)."""
    return SimpleNamespace(
        DATA=DATA,
        W=W,
        H=H,
        K=K_CENTRED,
        look_down=look_down,
        look_at=look_at,
        view=view,
        obj=obj,
        fixture=fixture,
        scene=scene,
        quat=quat,
        physics_snapshot=physics_snapshot,
    )
