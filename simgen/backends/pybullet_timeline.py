"""What a timeline asks of the PyBullet backend: step the physics, and apply an event's action (plain data).

:func:`simgen.scenarios.timeline.capture_sequence` drives a built scene through these calls; it never imports
PyBullet. Actions (see :meth:`TimelineMixin.act`):

- ``{"kind": "lift", "uid": ..., "height_m": h}``: move an object up by ``h`` and release it at rest (a drop);
- ``{"kind": "impulse", "uid": ..., "impulse": [x, y, z]}``: add ``impulse / mass`` to its velocity (a throw);
- ``{"kind": "joints", "fixture": ..., "q": [...]}``: set a fixture's movable joints (in joint order), which
  are then held there at every step, as ``settle`` holds them.

A push is a force given to :meth:`TimelineMixin.step`, applied at the centre of mass before every step (PyBullet
clears external forces after each step).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pybullet as p

from simgen.backends.pybullet_links import HOLD_FORCE, snap_joints
from simgen.backends.pybullet_records import Body
from simgen.errors import AssetError, did_you_mean

#: Action kinds :meth:`TimelineMixin.act` applies.
ACTIONS = ("lift", "impulse", "joints")


class TimelineMixin:
    """Stepping and event actions for :class:`~simgen.backends.pybullet_backend.PyBulletBackend`."""

    _cid: int
    _bodies: list[Body]
    _objects: list[Body]
    _holds: list[tuple[int, list[tuple[int, float]]]]
    _physics: dict[str, Any]

    def _check_open(self) -> int: ...  # provided by the backend

    def step(self, n: int = 1, *, forces: Mapping[str, Sequence[float]] | None = None) -> None:
        """Advance the physics ``n`` fixed steps, holding fixture joints as ``settle`` does.

        Args:
            n: Steps.
            forces: Object uid -> force in newtons (world axes), applied at its centre of mass before each step.

        Raises:
            AssetError: A force names no object of the scene, or is not three finite numbers.
        """
        cid = self._check_open()
        pushed = [
            (self._object_body(uid, "forces"), _vector(f, f"forces['{uid}']")) for uid, f in (forces or {}).items()
        ]
        for body, _ in pushed:
            _wake(cid, body)
        for _ in range(int(n)):
            for body, force in pushed:
                com, _ = p.getBasePositionAndOrientation(body.body, physicsClientId=cid)
                p.applyExternalForce(body.body, -1, force, com, p.WORLD_FRAME, physicsClientId=cid)
            p.stepSimulation(physicsClientId=cid)
            if self._holds:
                snap_joints(cid, self._holds)

    def sleep_resting(self) -> int:
        """Put every object at rest to sleep (Bullet skips it until something touches it); return how many.

        Called once after ``settle``, before a sequence's events: a settled pile then costs nearly nothing to step
        (measured: 2.2 -> 0.23 ms a step with 20 objects on a table), and an event or a contact wakes what it
        moves. Rest is ``settle``'s test: no point of the object moves faster than ``physics.rest_velocity``.
        """
        cid = self._check_open()
        rest = float(self._physics["rest_velocity"])
        asleep = 0
        for b in self._objects:
            p.changeDynamics(b.body, -1, activationState=p.ACTIVATION_STATE_ENABLE_SLEEPING, physicsClientId=cid)
            lin, ang = p.getBaseVelocity(b.body, physicsClientId=cid)
            if math.hypot(*lin) + math.hypot(*ang) * b.reach < rest:
                p.changeDynamics(b.body, -1, activationState=p.ACTIVATION_STATE_SLEEP, physicsClientId=cid)
                asleep += 1
        return asleep

    def act(self, action: Mapping[str, Any]) -> None:
        """Apply one event action (see the module docstring).

        Raises:
            AssetError: An unknown kind or uid, a static body thrown, or joint positions that do not fit the fixture.
        """
        cid = self._check_open()
        kind = action.get("kind")
        if kind == "lift":
            body = self._object_body(str(action["uid"]), "lift")
            _wake(cid, body)
            pos, orn = p.getBasePositionAndOrientation(body.body, physicsClientId=cid)
            up = float(action["height_m"])
            p.resetBasePositionAndOrientation(body.body, (pos[0], pos[1], pos[2] + up), orn, physicsClientId=cid)
            p.resetBaseVelocity(body.body, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), physicsClientId=cid)
        elif kind == "impulse":
            uid = str(action["uid"])
            body = self._object_body(uid, "impulse")
            _wake(cid, body)
            mass = float(p.getDynamicsInfo(body.body, -1, physicsClientId=cid)[0])
            if mass <= 0.0:
                raise AssetError(f"impulse: object '{uid}' is static (mass 0) and cannot be thrown")
            impulse = _vector(action["impulse"], f"impulse['{uid}']")
            lin, ang = p.getBaseVelocity(body.body, physicsClientId=cid)
            p.resetBaseVelocity(
                body.body, [v + j / mass for v, j in zip(lin, impulse, strict=True)], ang, physicsClientId=cid
            )
        elif kind == "joints":
            self._set_fixture_joints(str(action["fixture"]), [float(q) for q in action["q"]])
        else:
            raise AssetError(f"act: unknown action kind {kind!r}{did_you_mean(str(kind), ACTIONS)}; kinds: {ACTIONS}")

    def _object_body(self, uid: str, where: str) -> Body:
        for b in self._objects:
            if b.uid == uid:
                return b
        uids = [b.uid for b in self._objects]
        raise AssetError(f"{where}: no object '{uid}' in the scene{did_you_mean(uid, uids)}")

    def _set_fixture_joints(self, fixture: str, q: list[float]) -> None:
        """Set and hold the movable joints of a fixture's bodies, in hold order (body order, then joint index)."""
        cid = self._cid
        bodies = {b.body for b in self._bodies if b.uid == fixture or b.uid.startswith(f"{fixture}/")}
        if not bodies:
            names = sorted({b.uid.split("/")[0] for b in self._bodies if b not in self._objects})
            raise AssetError(f"joints: no fixture '{fixture}'{did_you_mean(fixture, names)}; fixtures: {names}")
        held = [(k, body, joints) for k, (body, joints) in enumerate(self._holds) if body in bodies]
        width = sum(len(joints) for _, _, joints in held)
        if width != len(q):
            raise AssetError(f"joints: fixture '{fixture}' has {width} movable joints, got {len(q)} positions")
        i = 0
        for k, body, joints in held:
            new = [(joint, q[i + n]) for n, (joint, _) in enumerate(joints)]
            i += len(joints)
            self._holds[k] = (body, new)
            for joint, position in new:
                p.resetJointState(body, joint, position, 0.0, physicsClientId=cid)
            p.setJointMotorControlArray(
                body,
                [j for j, _ in new],
                p.POSITION_CONTROL,
                targetPositions=[x for _, x in new],
                targetVelocities=[0.0] * len(new),
                forces=[HOLD_FORCE] * len(new),
                physicsClientId=cid,
            )


def _wake(cid: int, body: Body) -> None:
    """Wake an object an event moves (it may sleep since :meth:`TimelineMixin.sleep_resting`)."""
    p.changeDynamics(body.body, -1, activationState=p.ACTIVATION_STATE_WAKE_UP, physicsClientId=cid)


def _vector(value: Any, where: str) -> list[float]:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        raise AssetError(f"{where}: expected three numbers, got {value!r}") from None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise AssetError(f"{where}: expected three finite numbers, got {value!r}")
    return out
