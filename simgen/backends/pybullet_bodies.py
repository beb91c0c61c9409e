"""Bodies the PyBullet backend creates besides URDF/OBJ loads: SDF fixtures, visual-only primitives, dynamics.

* **SDF fixtures.** ``loadSDF`` may return several bodies, each at the pose its file declares. The fixture's
  position and orientation are composed *before* that pose (``T_fixture * T_sdf``), so an SDF model keeps its
  internal layout; ``globalScaling`` scales the internal poses too. Every link gets mass 0, so nothing falls.
* **Visual-only primitives** (flying occluders): ``baseMass=0`` and no collision shape, so they take no part
  in physics; the backend creates them for one render and removes them afterwards.
* **Dynamics patches** (``physics/dynamics-v1``): friction and restitution on every link of a body.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pybullet as p

from simgen.backends.pybullet_camera import compose_poses
from simgen.backends.pybullet_geometry import primitive_half_extents
from simgen.errors import AssetError, did_you_mean

PRIMITIVES = ("box", "sphere", "cylinder", "capsule")
_PRIMITIVE_FIELDS = {
    "box": "'size': [x, y, z]",
    "sphere": "'radius'",
    "cylinder": "'radius' and 'length'",
    "capsule": "'radius' and 'length'",
}
#: Scene-state dynamics keys -> ``changeDynamics`` keyword arguments.
DYNAMICS = {
    "lateral_friction": "lateralFriction",
    "spinning_friction": "spinningFriction",
    "rolling_friction": "rollingFriction",
    "restitution": "restitution",
}


def primitive_half(shape: Any, scale: float, where: str) -> np.ndarray:
    """Half extents of a primitive shape spec, validated (see :mod:`simgen.backends.base`).

    Raises:
        AssetError: An unknown shape (with a suggestion), missing fields, or non-positive dimensions.
    """
    kind = shape.get("shape") if isinstance(shape, Mapping) else None
    if kind not in PRIMITIVES:
        raise AssetError(
            f"{where}.shape: expected one of {PRIMITIVES}, got '{kind}'{did_you_mean(str(kind), PRIMITIVES)}"
        )
    try:
        half = primitive_half_extents(dict(shape), scale)
    except (KeyError, TypeError, ValueError) as exc:
        raise AssetError(f"{where}: a {kind} needs {_PRIMITIVE_FIELDS[kind]}; got {dict(shape)}") from exc
    if half.shape != (3,) or not np.all(np.isfinite(half)) or np.any(half <= 0):
        raise AssetError(f"{where}: dimensions must be positive, got {dict(shape)}")
    return half


def primitive_visual(cid: int, shape: Mapping[str, Any], half: np.ndarray, scale: float, rgba: Sequence[float]) -> int:
    """A visual shape for a validated primitive (``half`` from :func:`primitive_half`)."""
    kind = shape["shape"]
    color = [float(c) for c in rgba]
    if kind == "box":
        return p.createVisualShape(p.GEOM_BOX, halfExtents=half.tolist(), rgbaColor=color, physicsClientId=cid)
    if kind == "sphere":
        return p.createVisualShape(p.GEOM_SPHERE, radius=float(half[0]), rgbaColor=color, physicsClientId=cid)
    geom = p.GEOM_CYLINDER if kind == "cylinder" else p.GEOM_CAPSULE
    radius, length = float(shape["radius"]) * scale, float(shape["length"]) * scale
    return p.createVisualShape(geom, radius=radius, length=length, rgbaColor=color, physicsClientId=cid)


def primitive_collision(cid: int, shape: Mapping[str, Any], half: np.ndarray, scale: float) -> int:
    """A collision shape for a validated primitive (``half`` from :func:`primitive_half`)."""
    kind = shape["shape"]
    if kind == "box":
        return p.createCollisionShape(p.GEOM_BOX, halfExtents=half.tolist(), physicsClientId=cid)
    if kind == "sphere":
        return p.createCollisionShape(p.GEOM_SPHERE, radius=float(half[0]), physicsClientId=cid)
    geom = p.GEOM_CYLINDER if kind == "cylinder" else p.GEOM_CAPSULE
    radius, length = float(shape["radius"]) * scale, float(shape["length"]) * scale
    return p.createCollisionShape(geom, radius=radius, height=length, physicsClientId=cid)


def occluder_shape(entry: Any, where: str) -> tuple[dict[str, Any], np.ndarray]:
    """The primitive shape spec and half extents of a flying occluder entry of a view state.

    Occluder entries hold the primitive's fields at their top level:
    ``{"shape": "box", "size": [x, y, z], "position": ..., "orientation": ..., "color": ..., "labeled": ...}``.
    """
    if not isinstance(entry, Mapping):
        raise AssetError(f"{where}: expected a mapping, got {entry!r}")
    shape = {k: entry[k] for k in ("shape", "size", "radius", "length") if entry.get(k) is not None}
    return shape, primitive_half(shape, 1.0, where)


def create_visual_body(cid: int, visual: int, position: Sequence[float], orientation: Sequence[float]) -> int:
    """A massless, collision-free body drawing one visual shape at a pose (its base frame is the pose)."""
    return p.createMultiBody(
        baseMass=0.0,
        baseCollisionShapeIndex=-1,
        baseVisualShapeIndex=visual,
        basePosition=[float(v) for v in position],
        baseOrientation=[float(v) for v in orientation],
        physicsClientId=cid,
    )


def load_sdf(
    cid: int,
    path: str,
    position: Sequence[float],
    orientation: Sequence[float],
    scale: float,
    where: str,
) -> list[int]:
    """Load an SDF file as static bodies placed at ``T_fixture * T_sdf`` (see the module docstring).

    Args:
        cid: The physics client.
        path: The file name to load through (may be a spelling of the real path, see the backend).
        position: The fixture's position.
        orientation: The fixture's orientation (quaternion xyzw).
        scale: ``globalScaling``.
        where: Scene-state path for error messages.

    Returns:
        The body ids, in the file's order.

    Raises:
        AssetError: PyBullet cannot load the file, or it holds no body.
    """
    try:
        bodies = list(p.loadSDF(path, globalScaling=float(scale), physicsClientId=cid))
    except p.error as exc:
        raise AssetError(f"{where}: PyBullet cannot load '{path}': {exc}") from exc
    if not bodies:
        raise AssetError(f"{where}: the SDF file '{path}' holds no model")
    pos_f = [float(v) for v in position]
    orn_f = [float(v) for v in orientation]
    for body in bodies:
        for link in (-1, *range(p.getNumJoints(body, physicsClientId=cid))):
            p.changeDynamics(body, link, mass=0.0, physicsClientId=cid)
        pos, orn = p.getBasePositionAndOrientation(body, physicsClientId=cid)
        new_pos, new_orn = compose_poses(pos_f, orn_f, pos, orn)
        new_orn = new_orn / np.linalg.norm(new_orn)
        p.resetBasePositionAndOrientation(
            body, [float(v) for v in new_pos], [float(v) for v in new_orn], physicsClientId=cid
        )
    return bodies


def apply_dynamics(cid: int, body: int, links: Sequence[int], dynamics: Any, where: str) -> None:
    """Set friction and restitution (any subset of :data:`DYNAMICS`) on every link of a body.

    Raises:
        AssetError: Not a mapping, an unknown key (with a suggestion), or a negative or non-finite value.
    """
    if dynamics is None:
        return
    if not isinstance(dynamics, Mapping):
        raise AssetError(f"{where}: expected a mapping of {list(DYNAMICS)}, got {dynamics!r}")
    kwargs: dict[str, float] = {}
    for key, value in dynamics.items():
        if value is None:
            continue
        if key not in DYNAMICS:
            raise AssetError(
                f"{where}: unknown key '{key}'{did_you_mean(str(key), DYNAMICS)}; expected {list(DYNAMICS)}"
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise AssetError(f"{where}.{key}: expected a number, got {value!r}") from None
        if not math.isfinite(number) or number < 0:
            raise AssetError(f"{where}.{key}: expected a finite number >= 0, got {value!r}")
        kwargs[DYNAMICS[key]] = number
    if kwargs:
        for link in links:
            p.changeDynamics(body, link, physicsClientId=cid, **kwargs)
