"""Links and joints of articulated PyBullet bodies: names, held joint positions, per-link 3D boxes and proxies.

Link names are the URDF's (``getBodyInfo`` gives the base link's, ``getJointInfo[12]`` each child's), so they
match :func:`simgen.randomizers.robots.urdf_links`. ``getVisualShapeData`` reports each visual frame relative
to its link's URDF frame (not the inertial frame), for the base link and for child links alike: a link's 3D
box is computed from its visual shapes alone, without any world pose.

**Held joints.** A fixture is static: every movable (revolute or prismatic) joint of a fixture body is held at
its build-time position while physics settles. A position motor with a large force resists within each step,
and :func:`snap_joints` resets the joints to their positions after every step, so they come out of ``settle``
bit-exactly where they were set (a motor alone leaves them ~1e-5 rad off under load).

**Link proxies.** PyBullet cannot hide one link of a body with EGL (its segmentation pass ignores alpha), so a
link is rendered alone through a *proxy*: a massless, collision-free body drawing the same visual shapes (same
mesh file name and scale, so EGL reuses the same geometry) at the link's world frame. PyBullet reports link
frames in float32 precision (~1e-8 m), far below a pixel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pybullet as p

from simgen.backends.pybullet_camera import pose_matrix
from simgen.backends.pybullet_geometry import (
    GEOM_BOX,
    GEOM_CAPSULE,
    GEOM_CYLINDER,
    GEOM_MESH,
    GEOM_SPHERE,
    visual_points,
)
from simgen.errors import AssetError, did_you_mean

#: Joint types a fixture holds at their set positions (pybullet.JOINT_REVOLUTE, pybullet.JOINT_PRISMATIC).
MOVABLE_JOINT_TYPES = (0, 1)
#: Motor force (N or N m) of the position motors that hold a fixture's joints during settle.
HOLD_FORCE = 1.0e4

#: One visual shape as ``getVisualShapeData`` reports it: (link, geometry type, dimensions, mesh file, frame
#: position, frame orientation, rgba).
VisualShape = tuple[int, int, tuple[float, ...], str, tuple[float, ...], tuple[float, ...], tuple[float, ...]]


def link_names(cid: int, body: int) -> dict[int, str]:
    """Link index (-1 for the base) -> URDF link name."""
    names = {-1: p.getBodyInfo(body, physicsClientId=cid)[0].decode("utf-8", "replace")}
    for j in range(p.getNumJoints(body, physicsClientId=cid)):
        names[j] = p.getJointInfo(body, j, physicsClientId=cid)[12].decode("utf-8", "replace")
    return names


def movable_joints(cid: int, body: int) -> dict[str, int]:
    """Joint name -> joint index of every revolute or prismatic joint of a body, in index order."""
    out = {}
    for j in range(p.getNumJoints(body, physicsClientId=cid)):
        info = p.getJointInfo(body, j, physicsClientId=cid)
        if info[2] in MOVABLE_JOINT_TYPES:
            out[info[1].decode("utf-8", "replace")] = j
    return out


def set_joints(cid: int, body: int, positions: Mapping[str, Any], where: str) -> list[tuple[int, float]]:
    """Reset named joints to positions, and set up motors that hold every movable joint where it now is.

    Args:
        cid: The physics client.
        body: The body.
        positions: Joint name -> position (radians or metres); may be empty.
        where: Scene-state path for error messages, e.g. ``joints['panda']``.

    Returns:
        ``(joint index, position)`` of every movable joint, for :func:`snap_joints`.

    Raises:
        AssetError: An unknown joint name (the message lists the valid ones) or a non-finite position.
    """
    joints = movable_joints(cid, body)
    for name, value in positions.items():
        if name not in joints:
            raise AssetError(
                f"{where}: the body has no movable joint '{name}'{did_you_mean(str(name), joints)}; "
                f"its movable joints are {list(joints)}"
            )
        try:
            position = float(value)
        except (TypeError, ValueError):
            raise AssetError(f"{where}['{name}']: expected a number, got {value!r}") from None
        if not math.isfinite(position):
            raise AssetError(f"{where}['{name}']: expected a finite number, got {value!r}")
        p.resetJointState(body, joints[name], position, 0.0, physicsClientId=cid)
    held = [(j, float(p.getJointState(body, j, physicsClientId=cid)[0])) for j in joints.values()]
    if held:
        p.setJointMotorControlArray(
            body,
            [j for j, _ in held],
            p.POSITION_CONTROL,
            targetPositions=[q for _, q in held],
            targetVelocities=[0.0] * len(held),
            forces=[HOLD_FORCE] * len(held),
            physicsClientId=cid,
        )
    return held


def snap_joints(cid: int, holds: Sequence[tuple[int, Sequence[tuple[int, float]]]]) -> None:
    """Reset held joints exactly to their positions, at zero velocity (call after each physics step)."""
    for body, held in holds:
        for joint, position in held:
            p.resetJointState(body, joint, position, 0.0, physicsClientId=cid)


def visual_shapes(cid: int, body: int) -> dict[int, list[VisualShape]]:
    """A body's visual shapes grouped by link, with mesh file names decoded."""
    out: dict[int, list[VisualShape]] = {}
    for s in p.getVisualShapeData(body, physicsClientId=cid):
        shape = (s[1], s[2], tuple(s[3]), s[4].decode("utf-8", "replace"), tuple(s[5]), tuple(s[6]), tuple(s[7]))
        out.setdefault(s[1], []).append(shape)
    return out


def link_box(shapes: Sequence[VisualShape]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(lo, hi)`` corners of the box around a link's visual shapes, in the link's URDF frame.

    Returns None when a shape cannot be read (an unknown mesh format); ``lo`` is +inf when the shapes draw
    nothing (planes only).
    """
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for _, gtype, dims, mesh_file, vpos, vorn, _ in shapes:
        pts = visual_points(gtype, dims, mesh_file)
        if pts is None:
            return None
        if len(pts) == 0:
            continue
        T = pose_matrix(vpos, vorn)
        local = pts @ T[:3, :3].T + T[:3, 3]
        lo, hi = np.minimum(lo, local.min(axis=0)), np.maximum(hi, local.max(axis=0))
    return lo, hi


def _shape_args(shape: VisualShape) -> dict[str, Any] | None:
    """Keyword arguments of ``createVisualShape`` that draw the same geometry (None: a plane or unknown)."""
    _, gtype, dims, mesh_file, vpos, vorn, _ = shape
    frame = {"visualFramePosition": list(vpos), "visualFrameOrientation": list(vorn)}
    if gtype == GEOM_MESH and mesh_file:
        return {"shapeType": p.GEOM_MESH, "fileName": mesh_file, "meshScale": list(dims[:3]), **frame}
    if gtype == GEOM_BOX:
        return {"shapeType": p.GEOM_BOX, "halfExtents": [d / 2.0 for d in dims[:3]], **frame}
    if gtype == GEOM_SPHERE:
        return {"shapeType": p.GEOM_SPHERE, "radius": dims[0], **frame}
    if gtype in (GEOM_CYLINDER, GEOM_CAPSULE):
        return {"shapeType": gtype, "radius": dims[1], "length": dims[0], **frame}
    return None


def proxy_visual(cid: int, shapes: Sequence[VisualShape]) -> int:
    """A visual shape (or shape array) that draws a link's visual shapes in its link frame; -1 if none can be.

    The proxy is white: it is only ever drawn for the segmentation mask of visibility renders.
    """
    args = [a for a in (_shape_args(s) for s in shapes) if a is not None]
    if not args:
        return -1
    if len(args) == 1:
        return p.createVisualShape(rgbaColor=[1.0, 1.0, 1.0, 1.0], physicsClientId=cid, **args[0])
    return p.createVisualShapeArray(
        shapeTypes=[a["shapeType"] for a in args],
        radii=[a.get("radius", 0.5) for a in args],
        halfExtents=[a.get("halfExtents", [1.0, 1.0, 1.0]) for a in args],
        lengths=[a.get("length", 1.0) for a in args],
        fileNames=[a.get("fileName", "") for a in args],
        meshScales=[a.get("meshScale", [1.0, 1.0, 1.0]) for a in args],
        visualFramePositions=[a["visualFramePosition"] for a in args],
        visualFrameOrientations=[a["visualFrameOrientation"] for a in args],
        physicsClientId=cid,
    )


def link_world_pose(cid: int, body: int, link: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """World pose (position, quaternion xyzw) of a child link's URDF frame, with forward kinematics."""
    state = p.getLinkState(body, link, computeForwardKinematics=True, physicsClientId=cid)
    return tuple(state[4]), tuple(state[5])
