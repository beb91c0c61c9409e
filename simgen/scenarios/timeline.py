"""Sequences: frames captured *during* the physics, with events firing at given times (a scenario's ``timeline``).

A sequence is one scene's frames. The scene is built (and, with ``capture.settle``, settled); that moment is
``t = 0``. Physics then advances in the spec's fixed steps (``physics.timestep``); frame ``j`` is captured at
step ``round(start_s / dt) + j * every_steps``. An event fires at step ``round(at_s / dt)``, before anything
is rendered at that step:

- ``drop``: the target is lifted ``height_m`` and released at rest; ``throw``: its velocity changes by
  ``impulse / mass``; ``push``: a force acts on it at every step of ``duration_s``;
- ``robot``: a fixture's movable joints follow a trajectory, linearly interpolated, set at every step
  (they stay at the last point afterwards);
- ``camera``: the camera orbits its look-at target about the world z axis and/or dollies along its optical
  axis, linearly over ``duration_s`` (several camera events compose, in order);
- ``light``: from then on the light is the one sampled from the spec with the event's patch (patches of
  several light events add up, in order).

**Motion blur** (``motion_blur: {subframes, shutter}``): frame ``j``'s RGB is the mean of ``subframes``
renders spread over ``shutter`` of the capture interval around its centre step (midpoints of equal
sub-intervals, rounded to whole steps), so the blur comes from the actual motion of objects and camera. The
depth, the instance mask and every label come from the render at the centre step. A sub-frame that would fall
before ``t = 0`` renders the ``t = 0`` state.

What is pure lives here too (:func:`schedule`, :func:`camera_pose`, :func:`trajectory_at`, :func:`event_targets`)
and :func:`start_sequence` and :func:`capture_sequence` drive any backend that offers ``step``, ``act`` and
``render_rgb`` besides the protocol, through plain-data calls: they never import a simulator. Objects at rest
at ``t = 0`` sleep until an event or a contact wakes them, so stepping a settled scene costs only what moves.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from simgen.errors import SpecError
from simgen.frame import FrameBuffers
from simgen.scenarios.models import Event, MotionBlur, Timeline

__all__ = [
    "MAX_SEQUENCE_STEPS",
    "CapturedFrame",
    "Schedule",
    "SequencePlan",
    "blur_offsets",
    "camera_pose",
    "capture_sequence",
    "event_targets",
    "schedule",
    "sequence_plan",
    "start_sequence",
    "step_of",
    "trajectory_at",
]

#: The most physics steps one sequence may take (about 7.5 minutes of stepping with 30 objects).
MAX_SEQUENCE_STEPS = 1_000_000
#: Distance in front of the camera it orbits about when its randomizer reports no look-at target.
DEFAULT_PIVOT_M = 1.0


def _round(x: float) -> int:
    """Round half away from zero (symmetric offsets: -1.5 -> -2, 1.5 -> 2), unlike Python's round."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def step_of(seconds: float, dt: float) -> int:
    """The physics step at which ``seconds`` after ``t = 0`` falls (rounded to the nearest step)."""
    return _round(seconds / dt)


def blur_offsets(every_steps: int, blur: MotionBlur | None) -> tuple[int, ...]:
    """Step offsets of a frame's sub-frames around its centre step (empty without motion blur).

    The shutter spans ``shutter * every_steps`` steps; the sub-frames sit at the midpoints of ``subframes``
    equal parts of it, rounded to whole steps.
    """
    if blur is None:
        return ()
    span = blur.shutter * every_steps
    n = blur.subframes
    return tuple(_round(span * ((i + 0.5) / n - 0.5)) for i in range(n))


@dataclass(frozen=True)
class Schedule:
    """When a sequence's frames are rendered and its events fire, in physics steps from ``t = 0``.

    Attributes:
        dt: Seconds per step.
        centres: Centre step of each frame (where its labels are taken).
        offsets: Sub-frame offsets around each centre (empty without motion blur).
        event_steps: Step at which each event fires, in event order.
    """

    dt: float
    centres: tuple[int, ...]
    offsets: tuple[int, ...]
    event_steps: tuple[int, ...]

    def subframe_steps(self, j: int) -> tuple[int, ...]:
        """The steps of frame ``j``'s sub-frames (none before step 0)."""
        return tuple(max(0, self.centres[j] + o) for o in self.offsets)

    @property
    def last_step(self) -> int:
        """The last step anything is rendered at."""
        last = self.centres[-1]
        return last + max(self.offsets, default=0)


def schedule(timeline: Timeline, dt: float, n_frames: int) -> Schedule:
    """The schedule of a sequence of ``n_frames`` frames with ``dt`` seconds per physics step.

    Raises:
        SpecError: Two sub-frames fall on the same step (``timeline.motion_blur.subframes``), or the sequence
            would take more than :data:`MAX_SEQUENCE_STEPS` steps (``timeline.capture``).
    """
    capture = timeline.capture
    offsets = blur_offsets(capture.every_steps, timeline.motion_blur)
    if len(set(offsets)) < len(offsets):
        raise SpecError(
            f"{len(offsets)} sub-frames over {timeline.motion_blur.shutter:g} of {capture.every_steps} steps "  # type: ignore[union-attr]
            f"fall on the same steps {list(offsets)}; raise capture.every_steps or the shutter, or use fewer subframes",
            path="timeline.motion_blur.subframes",
        )
    start = step_of(capture.start_s, dt)
    centres = tuple(start + j * capture.every_steps for j in range(n_frames))
    plan = Schedule(float(dt), centres, offsets, tuple(step_of(e.at_s, dt) for e in timeline.events))
    if plan.last_step > MAX_SEQUENCE_STEPS:
        raise SpecError(
            f"a sequence of {n_frames} frames every {capture.every_steps} steps from {capture.start_s:g} s takes "
            f"{plan.last_step:,} physics steps, more than {MAX_SEQUENCE_STEPS:,}",
            path="timeline.capture",
        )
    return plan


# --- pure pieces of the events ------------------------------------------------------------------------------


def _progress(t: float, at_s: float, duration_s: float) -> float:
    return min(max((t - at_s) / duration_s, 0.0), 1.0)


def camera_pose(T_world_cam: np.ndarray, pivot: Sequence[float], events: Sequence[Event], t: float) -> np.ndarray:
    """The camera pose at time ``t`` after the timeline's camera events (OpenCV axes, world z up).

    An orbit turns the camera about the vertical axis through ``pivot`` (keeping it aimed at the same point);
    a dolly moves it back along its optical axis by ``dolly_m`` (forward when negative). Each moves linearly
    over its ``duration_s`` from its ``at_s``; several compose in order.
    """
    T = np.array(T_world_cam, dtype=np.float64)
    c = np.asarray(pivot, dtype=np.float64)
    for event in events:
        move = event.camera
        if move is None or t < event.at_s:
            continue
        f = _progress(t, event.at_s, move.duration_s)
        if move.orbit_deg:
            a = math.radians(move.orbit_deg * f)
            Rz = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
            T[:3, 3] = c + Rz @ (T[:3, 3] - c)
            T[:3, :3] = Rz @ T[:3, :3]
        if move.dolly_m:
            T[:3, 3] -= T[:3, 2] * (move.dolly_m * f)
    return T


def trajectory_at(points: Sequence[tuple[float, Sequence[float]]], t_rel: float) -> list[float]:
    """Joint positions at ``t_rel`` seconds after a robot event: linear between points, held beyond the ends."""
    if t_rel <= points[0][0]:
        return [float(q) for q in points[0][1]]
    for (t0, q0), (t1, q1) in itertools.pairwise(points):
        if t_rel <= t1:
            w = (t_rel - t0) / (t1 - t0)
            return [float(a + w * (b - a)) for a, b in zip(q0, q1, strict=True)]
    return [float(q) for q in points[-1][1]]


def event_targets(
    event: Event, objects: Mapping[str, Mapping[str, Any]], rng: np.random.Generator, where: str
) -> list[str]:
    """The object uids a ``drop``, ``throw`` or ``push`` acts on in this scene.

    ``target`` is a uid (``clutter/0``), or a group name or tag: ``pick: one`` draws one of its objects
    with ``rng`` (one draw per event, always made, so events never shift each other's picks), ``all`` takes them all.

    Raises:
        SpecError: Nothing of this scene matches (a count drawn smaller than the uid, say).
    """
    target = event.target
    assert target is not None  # the model requires a target for these actions
    draw = rng.random()
    if target in objects:
        return [target]
    matched = [uid for uid, o in objects.items() if o.get("group") == target or target in (o.get("tags") or ())]
    if not matched:
        raise SpecError(
            f"'{target}' matches no object of this scene (objects: {', '.join(objects) or 'none'})",
            path=f"{where}.target",
        )
    if event.pick == "all":
        return matched
    return [matched[min(int(draw * len(matched)), len(matched) - 1)]]


# --- running a sequence ----------------------------------------------------------------------------------------


@dataclass
class SequencePlan:
    """Everything a sequence needs besides the backend, resolved for one scene and one attempt (plain data).

    Attributes:
        timeline: The timeline.
        schedule: Its steps (see :func:`schedule`).
        view: The sequence's view state at ``t = 0`` (camera, light, occluders).
        targets: Object uids each event acts on (empty lists for camera and light events).
        lights: The view's light from each light event on (None for other events).
        visibility: Whether centre renders compute visibility fractions.
    """

    timeline: Timeline
    schedule: Schedule
    view: dict[str, Any]
    targets: list[list[str]] = field(default_factory=list)
    lights: list[dict[str, Any] | None] = field(default_factory=list)
    visibility: bool = False

    def view_at(self, t: float) -> dict[str, Any]:
        """The view state at time ``t``: the camera moved by the camera events, the light of the last light event."""
        view = dict(self.view)
        events = self.timeline.events
        if any(e.camera is not None for e in events):
            camera = dict(view["camera"])
            T = np.asarray(camera["T_world_cam"], dtype=np.float64)
            target = (camera.get("sampled") or {}).get("target")
            ahead = T[:3, 3] + DEFAULT_PIVOT_M * T[:3, 2]
            pivot = np.asarray(target, dtype=np.float64) if target is not None else ahead
            camera["T_world_cam"] = camera_pose(T, pivot, events, t).tolist()
            view["camera"] = camera
        for event, light in zip(events, self.lights, strict=True):
            if light is not None and t >= event.at_s:
                view["light"] = light
        return view

    def fired(self, j: int) -> list[int]:
        """Indices of the events that fired since frame ``j - 1``'s centre, up to frame ``j``'s (for the manifest)."""
        sched = self.schedule
        lo = sched.centres[j - 1] if j > 0 else -1
        return [i for i, s in enumerate(sched.event_steps) if lo < s <= sched.centres[j]]


def sequence_plan(
    timeline: Timeline,
    dt: float,
    n_frames: int,
    view: dict[str, Any],
    objects: Mapping[str, Mapping[str, Any]],
    seed: int,
    key: int,
    *,
    lights: Sequence[dict[str, Any] | None] | None = None,
    visibility: bool = False,
) -> SequencePlan:
    """A :class:`SequencePlan` with its schedule and event targets resolved (what the engine and benchmarks call).

    Args:
        timeline: The timeline.
        dt: Seconds per physics step (the spec's ``physics.timestep``).
        n_frames: Frames of the sequence.
        view: The view state at ``t = 0``.
        objects: The scene state's ``objects`` (uid -> entry with ``group`` and ``tags``).
        seed: The seed event picks draw from (the engine: the attempt's seed).
        key: What names the sequence in the seed (the engine: its first frame).
        lights: Per event, the view's light from a light event on (None for other events).
        visibility: Whether centre renders compute visibility fractions.

    Raises:
        SpecError: An event's target matches no object of ``objects``.
        ValueError: The timeline has light events and ``lights`` does not give them.
    """
    from simgen.sampling import rng_for

    events = timeline.events
    lights = list(lights) if lights is not None else [None] * len(events)
    if len(lights) != len(events) or any(
        e.light is not None and lit is None for e, lit in zip(events, lights, strict=False)
    ):
        raise ValueError("lights: give the view's light of every light event (None for the other events)")
    targets = [
        event_targets(e, objects, rng_for(seed, "timeline", key, i), f"timeline.events[{i}]")
        if e.action in ("drop", "throw", "push")
        else []
        for i, e in enumerate(events)
    ]
    return SequencePlan(timeline, schedule(timeline, dt, n_frames), view, targets, lights, visibility)


@dataclass
class CapturedFrame:
    """One frame of a sequence, as :func:`capture_sequence` yields it.

    Attributes:
        index: Frame of the sequence (0-based).
        step: Its centre step.
        t_s: Its centre time, seconds.
        buffers: The centre render (RGB replaced by the motion-blurred mean when blur is on).
        view: The view state at the centre time.
        renders: Renders made for this frame (1 + sub-frames that are not the centre).
    """

    index: int
    step: int
    t_s: float
    buffers: FrameBuffers
    view: dict[str, Any]
    renders: int


class _Clock:
    """Advances a backend's physics step by step, firing the events at their steps."""

    def __init__(self, backend: Any, plan: SequencePlan) -> None:
        self.backend, self.plan = backend, plan
        self.step = 0
        self.fired_upto = -1
        sched, events = plan.schedule, plan.timeline.events
        self.instant: dict[int, list[int]] = {}
        self.pushes: list[tuple[int, int, list[str], list[float]]] = []
        self.robots: list[tuple[int, int, Event]] = []
        for i, (event, s) in enumerate(zip(events, sched.event_steps, strict=True)):
            if event.push is not None:
                n = max(1, step_of(event.push.duration_s, sched.dt))
                self.pushes.append((s, s + n, plan.targets[i], [float(v) for v in event.push.force]))
            elif event.robot is not None:
                end = s + step_of(event.robot.trajectory[-1].t_s, sched.dt)
                self.robots.append((s, end, event))
            elif event.drop is not None or event.throw is not None:
                self.instant.setdefault(s, []).append(i)
        self.boundaries = sorted({s for s in sched.event_steps} | {b for _, b, _, _ in self.pushes})

    def _fire(self, s: int) -> None:
        """Apply what happens at step ``s`` (once): instantaneous events, then robot joint positions."""
        if s <= self.fired_upto:
            return
        self.fired_upto = s
        events = self.plan.timeline.events
        for i in self.instant.get(s, ()):
            event = events[i]
            for uid in self.plan.targets[i]:
                if event.drop is not None:
                    self.backend.act({"kind": "lift", "uid": uid, "height_m": float(event.drop.height_m)})
                else:
                    assert event.throw is not None
                    impulse = [float(v) for v in event.throw.impulse]
                    self.backend.act({"kind": "impulse", "uid": uid, "impulse": impulse})
        for start, end, event in self.robots:
            if start <= s <= end:
                assert event.robot is not None and event.target is not None
                points = [(pt.t_s, pt.q) for pt in event.robot.trajectory]
                q = trajectory_at(points, (s - start) * self.plan.schedule.dt)
                self.backend.act({"kind": "joints", "fixture": event.target, "q": q})

    def _forces(self, s: int) -> dict[str, list[float]]:
        forces: dict[str, list[float]] = {}
        for start, stop, uids, force in self.pushes:
            if start <= s < stop:
                for uid in uids:
                    total = forces.setdefault(uid, [0.0, 0.0, 0.0])
                    forces[uid] = [a + b for a, b in zip(total, force, strict=True)]
        return forces

    def advance_to(self, target: int) -> None:
        """Step physics up to step ``target``, firing every event on the way and at ``target`` itself."""
        while self.step < target:
            s = self.step
            self._fire(s)
            forces = self._forces(s)
            moving = forces or any(start <= s <= end for start, end, _ in self.robots)
            if moving:
                n = 1
            else:  # nothing time-varying: step in one call up to the next event (or the target)
                nxt = next((b for b in self.boundaries if b > s), target)
                n = min(nxt, target) - s
            self.backend.step(n, forces=forces or None)
            self.step += n
        self._fire(target)


def start_sequence(backend: Any, timeline: Timeline) -> dict[str, Any] | None:
    """Bring a freshly built scene to ``t = 0``: settle it (``capture.settle``) and let what rests sleep.

    Sleeping objects cost nearly nothing to step until an event or a contact wakes them, so a sequence pays
    for the physics of what moves, not of the whole pile (the backend's ``sleep_resting``, when it has one).

    Returns:
        ``settle``'s record, or None when the scene is not settled.
    """
    if not timeline.capture.settle:
        return None
    settled = backend.settle()
    sleep = getattr(backend, "sleep_resting", None)
    if sleep is not None:
        settled = {**settled, "asleep": sleep()}
    return settled


def capture_sequence(backend: Any, plan: SequencePlan) -> Iterator[CapturedFrame]:
    """Run a sequence on a built (and settled) backend, yielding each frame as soon as it is rendered.

    The backend must offer ``step(n, forces=None)``, ``act(action)`` and ``render_rgb(view)`` besides
    ``render``; bring it to ``t = 0`` with :func:`start_sequence` first. Nothing
    is computed that a frame does not need: a sub-frame is an RGB-only render, and only the centre render makes
    instance masks, depth and visibility.

    Args:
        backend: The backend, with the scene built at ``t = 0``.
        plan: The sequence (see :class:`SequencePlan`).

    Yields:
        Each frame, in order (stop iterating to abandon the rest of the sequence).
    """
    clock = _Clock(backend, plan)
    sched = plan.schedule
    for j, centre in enumerate(sched.centres):
        t_c = centre * sched.dt
        sub_steps = sched.subframe_steps(j)
        acc: np.ndarray | None = None
        buffers: FrameBuffers | None = None
        renders = 0
        for s in sorted({*sub_steps, centre}):
            clock.advance_to(s)
            if s == centre:
                buffers = backend.render(plan.view_at(t_c), visibility=plan.visibility)
                rgb = buffers.rgb
            else:
                rgb = backend.render_rgb(plan.view_at(s * sched.dt))
            renders += 1
            count = sub_steps.count(s)  # a sub-frame clamped to t = 0 may repeat a step: it counts each time
            if count:
                term = rgb.astype(np.float64) * count
                acc = term if acc is None else acc + term
        assert buffers is not None
        if acc is not None:
            blurred = np.clip(np.rint(acc / len(sub_steps)), 0, 255).astype(np.uint8)
            buffers = replace(buffers, rgb=blurred, meta={**buffers.meta, "motion_blur_subframes": len(sub_steps)})
        yield CapturedFrame(j, centre, t_c, buffers, plan.view_at(t_c), renders)
