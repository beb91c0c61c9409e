"""Hand-built scene and view states for testing a PyBullet backend (plain data, see simgen.backends.base)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pybullet as p
import pybullet_data

DATA = Path(pybullet_data.getDataPath())
W, H = 160, 120
K_CENTRED = [[110.0, 0.0, 79.5], [0.0, 110.0, 59.5], [0.0, 0.0, 1.0]]  # OpenCV: cx = (W - 1) / 2
K = K_CENTRED
DEFAULT_LIGHT = {
    "direction": [0.3, 0.2, 0.93],
    "color": [1.0, 1.0, 1.0],
    "distance": 10.0,
    "ambient": 0.6,
    "diffuse": 0.35,
    "specular": 0.05,
    "shadows": True,
}


def look_down(x: float = 0.0, y: float = 0.0, z: float = 2.0) -> np.ndarray:
    """A camera at (x, y, z) looking straight down (OpenCV axes: x = world x, y = world -y, z = world -z)."""
    T = np.eye(4)
    T[:3, :3] = [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]
    T[:3, 3] = [x, y, z]
    return T


def look_at(eye: list[float], target: list[float]) -> np.ndarray:
    """A camera at ``eye`` looking at ``target`` with world z up (OpenCV axes)."""
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
    near: float = 0.05,
    far: float = 10.0,
    light: dict[str, Any] | None = None,
    occluders: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A view state: the camera, a light (a fixed default unless given) and optional occluders."""
    out: dict[str, Any] = {
        "camera": {"width": width, "height": height, "K": K, "near": near, "far": far, "T_world_cam": T.tolist()},
        "light": light or dict(DEFAULT_LIGHT),
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
    """An object entry (category and group from the uid's prefix); ``extra`` sets or adds fields."""
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
    """A fixture entry at the origin; ``extra`` sets or adds fields."""
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
    objects: list[dict[str, Any]],
    *,
    ground: str = "none",
    fixtures: list[dict[str, Any]] | None = None,
    table: bool = False,
) -> dict[str, Any]:
    """A scene state; ``table`` adds pybullet_data's table as a fixture."""
    all_fixtures = list(fixtures or [])
    if table:
        all_fixtures.append(fixture("table", DATA / "table/table.urdf", asset="pybullet_data:table/table.urdf"))
    return {
        "ground": {"kind": ground, "color": None},
        "fixtures": all_fixtures,
        "objects": {o["uid"]: o for o in objects},
        "physics": {"max_steps": 1500, "rest_velocity": 0.01, "gravity": -9.81, "timestep": 1.0 / 240.0},
    }


def quat(roll: float, pitch: float, yaw: float) -> tuple[float, float, float, float]:
    """PyBullet's quaternion (x, y, z, w) of roll, pitch, yaw in radians."""
    return tuple(p.getQuaternionFromEuler([roll, pitch, yaw]))  # type: ignore[return-value]


def physics_snapshot(backend: Any) -> list[Any]:
    """Pose and velocity of every body in a backend's world, as PyBullet reports them (exact floats)."""
    cid = backend.client_id
    bodies = [p.getBodyUniqueId(i, physicsClientId=cid) for i in range(p.getNumBodies(physicsClientId=cid))]
    return [
        (b, p.getBasePositionAndOrientation(b, physicsClientId=cid), p.getBaseVelocity(b, physicsClientId=cid))
        for b in bodies
    ]
