"""A FAKE ``carla`` module, answered by a tiny in-process simulator instead of a CARLA server.

It implements the client, world, blueprint, actor, sensor and traffic-manager calls the CARLA backend makes.

It is a test double, not a simulator: actors are their bounding boxes, drive straight ahead, and land on a flat
ground plane. What it does exactly as CARLA does is what simgen's labels depend on:

* **Geometry** uses the real client's classes (``carla.Transform``, ``Location``, ``Rotation``,
  ``BoundingBox.get_world_vertices``, ``WeatherParameters``, ``WorldSettings``) and a real ``carla.Map`` built
  from OpenDRIVE text, so the ``carla`` client wheel must be installed (it runs without a server).
* **Images** are synthesised from the actors' boxes: the convex hull of each box's projected vertices
  (``cv2.convexHull``) is filled far to near, a pixel being drawn when its centre lies inside (the rule a
  rasterizer follows; ``cv2.fillConvexPoly`` would also draw the outline, up to a pixel beyond it), so nearer
  actors occlude farther ones and a hidden actor has no pixel. The pinhole is its own (focal length from the
  *horizontal* ``fov``, pixel centres at integer coordinates, the principal point at the image centre),
  independent of simgen's conversion code. Depth is one
  value per box (its nearest clipped vertex) over an analytic ground plane.
* **Encodings** are CARLA's: BGRA ``raw_data``; depth as ``R + 256 G + 65536 B`` over ``256^3 - 1`` times
  1000 m (sky: all 255); instance segmentation with the semantic tag in R and the actor id's low 16 bits in
  G (low byte) and B (high byte); map geometry carries tags with ids of no actor.
* **Delivery** runs like a server's: images of a tick can arrive late from another thread
  (``image_delay_s``), stale images of earlier ticks can be re-sent ahead of the new one
  (``stale_repeats``), and chosen frames can be lost (``drop_frames``), to test frame matching.

Everything else (traffic-manager seeds, settings, weather) is recorded on :class:`FakeServer` for tests to
assert on. ``fail_spawn_at`` plants a server error at the n-th spawn call.
"""

from __future__ import annotations

import collections
import fnmatch
import math
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np

from simgen.backends.carla_camera import ue_matrix, ue_rotation
from simgen.errors import DependencyMissing


def real_carla() -> Any:
    """The installed ``carla`` client (the fake reuses its geometry classes)."""
    try:
        import carla
    except ImportError as exc:
        raise DependencyMissing("carla", "carla", "simgen.testing.fake_carla (it reuses the client's classes)") from exc
    return carla


@dataclass(frozen=True)
class BlueprintSpec:
    """A blueprint of the fake's library.

    Attributes:
        id: Blueprint id, e.g. ``"vehicle.tesla.model3"``.
        tags: Blueprint tags (``filter`` matches them as well as the id).
        extent: Half sizes of the actor's bounding box, metres (none for sensors and controllers).
        box_z: ``bounding_box.location.z``: the box centre above the actor's origin.
        semantic_tags: ``actor.semantic_tags`` (the first is drawn into the instance image's R channel).
        attributes: Attribute id -> default value, or ``(default, [recommended values])``.
    """

    id: str
    tags: tuple[str, ...] = ()
    extent: tuple[float, float, float] | None = None
    box_z: float = 0.0
    semantic_tags: tuple[int, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)


_CAMERA = {"image_size_x": "800", "image_size_y": "600", "fov": "90.0", "sensor_tick": "0.0", "lens_k": "-1.0",
           "lens_kcube": "0.0", "lens_circle_multiplier": "0.0", "role_name": "front"}  # fmt: skip
_COLORS = ("255,0,0", "0,0,255", "20,20,20", "230,230,230")


def _vehicle(bp_id: str, base_type: str, extent: tuple[float, float, float], tags: tuple[int, ...]) -> BlueprintSpec:
    attrs = {"base_type": base_type, "role_name": "autopilot", "color": (_COLORS[0], list(_COLORS))}
    return BlueprintSpec(bp_id, ("vehicle", base_type), extent, extent[2], tags, attrs)


#: The fake's blueprint library: a few of each kind, with CARLA-like sizes and 0.9.16 semantic tags.
DEFAULT_BLUEPRINTS: tuple[BlueprintSpec, ...] = (
    _vehicle("vehicle.tesla.model3", "car", (2.4, 1.05, 0.75), (14,)),
    _vehicle("vehicle.lincoln.mkz_2020", "car", (2.45, 1.05, 0.75), (14,)),
    _vehicle("vehicle.carlamotors.carlacola", "truck", (2.6, 1.3, 1.25), (15,)),
    _vehicle("vehicle.mercedes.sprinter", "van", (2.96, 1.0, 1.28), (14,)),
    _vehicle("vehicle.mitsubishi.fusorosa", "bus", (5.1, 1.95, 1.9), (16,)),
    _vehicle("vehicle.yamaha.yzf", "motorcycle", (1.1, 0.43, 0.8), (18, 13)),
    _vehicle("vehicle.diamondback.century", "bicycle", (0.82, 0.19, 0.8), (19, 13)),
    BlueprintSpec("walker.pedestrian.0001", ("walker", "pedestrian"), (0.19, 0.19, 0.93), 0.0, (12,),
                  {"is_invincible": "true", "speed": ("1.3", ["1.3", "2.5"])}),
    BlueprintSpec("walker.pedestrian.0002", ("walker", "pedestrian"), (0.21, 0.21, 0.88), 0.0, (12,),
                  {"is_invincible": "true", "speed": ("1.2", ["1.2", "2.4"])}),
    BlueprintSpec("controller.ai.walker", ("controller",)),
    BlueprintSpec("sensor.camera.rgb", ("sensor", "camera"), attributes={**_CAMERA, "motion_blur_intensity": "0.45"}),
    BlueprintSpec("sensor.camera.depth", ("sensor", "camera"), attributes=dict(_CAMERA)),
    BlueprintSpec("sensor.camera.instance_segmentation", ("sensor", "camera"), attributes=dict(_CAMERA)),
    BlueprintSpec("traffic.traffic_light", ("traffic",), (0.3, 0.3, 1.6), 1.6, (7,)),
    BlueprintSpec("traffic.stop", ("traffic",), (0.1, 0.4, 0.4), 2.0, (8,)),
)  # fmt: skip

#: Tags drawn where no actor is: the ground (roads) and the sky.
TAG_ROAD, TAG_SKY = 1, 11
_GROUND_RGB, _SKY_RGB = (110, 110, 110), (120, 170, 230)
DEPTH_CODE_MAX = 256**3 - 1


# --------------------------------------------------------------------------------------------------------
# Blueprints
# --------------------------------------------------------------------------------------------------------


class FakeAttribute:
    """``carla.ActorAttribute``: a string value and its recommended values."""

    def __init__(self, attr_id: str, value: str, recommended: Sequence[str] = ()) -> None:
        self.id = attr_id
        self.value = str(value)
        self.recommended_values = list(recommended)

    def as_str(self) -> str:
        """As ``carla.ActorAttribute.as_str``."""
        return self.value

    def __str__(self) -> str:
        return self.value


class FakeBlueprint:
    """``carla.ActorBlueprint``: an id, tags and settable attributes (a copy per ``filter``/``find``)."""

    def __init__(self, spec: BlueprintSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.tags = list(spec.tags)
        self._attrs: dict[str, FakeAttribute] = {}
        for key, value in spec.attributes.items():
            default, recommended = value if isinstance(value, tuple) else (value, [])
            self._attrs[key] = FakeAttribute(key, default, recommended)

    def has_attribute(self, key: str) -> bool:
        """As ``carla.ActorBlueprint.has_attribute``."""
        return key in self._attrs

    def get_attribute(self, key: str) -> FakeAttribute:
        """As ``carla.ActorBlueprint.get_attribute``."""
        if key not in self._attrs:
            raise IndexError(f"blueprint '{self.id}' has no attribute '{key}'")
        return self._attrs[key]

    def set_attribute(self, key: str, value: str) -> None:
        """As ``carla.ActorBlueprint.set_attribute``."""
        self.get_attribute(key).value = str(value)

    def values(self) -> dict[str, str]:
        """Every attribute's current value (what a spawned actor's ``attributes`` hold)."""
        return {k: a.value for k, a in self._attrs.items()}

    def __repr__(self) -> str:
        return f"FakeBlueprint({self.id})"


class FakeBlueprintLibrary:
    """``carla.BlueprintLibrary``: ``filter`` matches a wildcard against ids and tags, ``find`` an exact id."""

    def __init__(self, specs: Iterable[BlueprintSpec]) -> None:
        self._specs = list(specs)

    def filter(self, pattern: str) -> list[FakeBlueprint]:
        """As ``carla.BlueprintLibrary.filter``."""
        return [
            FakeBlueprint(s)
            for s in self._specs
            if fnmatch.fnmatchcase(s.id, pattern) or any(fnmatch.fnmatchcase(t, pattern) for t in s.tags)
        ]

    def find(self, bp_id: str) -> FakeBlueprint:
        """As ``carla.BlueprintLibrary.find``."""
        for s in self._specs:
            if s.id == bp_id:
                return FakeBlueprint(s)
        raise IndexError(f"blueprint '{bp_id}' not found")

    def __iter__(self) -> Iterator[FakeBlueprint]:
        return (FakeBlueprint(s) for s in self._specs)

    def __len__(self) -> int:
        return len(self._specs)


# --------------------------------------------------------------------------------------------------------
# Actors
# --------------------------------------------------------------------------------------------------------


class FakeActor:
    """``carla.Actor``: its pose lives on the :class:`FakeServer`."""

    def __init__(self, server: FakeServer, actor_id: int, spec: BlueprintSpec, attributes: dict[str, str]) -> None:
        carla = server.carla
        self._server = server
        self.id = actor_id
        self.type_id = spec.id
        self.attributes = dict(attributes)
        self.semantic_tags = list(spec.semantic_tags)
        ext = spec.extent or (0.0, 0.0, 0.0)
        self.bounding_box = carla.BoundingBox(carla.Location(0.0, 0.0, spec.box_z), carla.Vector3D(*ext))
        self.spec = spec
        self.parent: FakeActor | None = None
        self.matrix = np.eye(4)  # CARLA matrix: world pose, or the pose relative to the parent when attached
        self.autopilot = False
        self.settled = False

    @property
    def is_alive(self) -> bool:
        """As ``carla.Actor.is_alive``."""
        return self.id in self._server.actors

    def world_matrix(self) -> np.ndarray:
        """The actor's CARLA world matrix (its parent's composed with its own when attached)."""
        return self.matrix if self.parent is None else self.parent.world_matrix() @ self.matrix

    def get_transform(self) -> Any:
        """As ``carla.Actor.get_transform``."""
        return self._server.transform(self.world_matrix())

    def get_location(self) -> Any:
        """As ``carla.Actor.get_location``."""
        return self.get_transform().location

    def set_autopilot(self, enabled: bool = True, tm_port: int = 8000) -> None:
        """As ``carla.Actor.set_autopilot``."""
        self._server.calls.append(("set_autopilot", self.id, bool(enabled), int(tm_port)))
        self.autopilot = bool(enabled)

    def destroy(self) -> bool:
        """As ``carla.Actor.destroy``."""
        return self._server.destroy(self.id)

    def __repr__(self) -> str:
        return f"FakeActor(id={self.id}, type_id={self.type_id})"


class FakeSensor(FakeActor):
    """``carla.Sensor``: ``listen`` registers the callback the server delivers images to."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.callback: Callable[[Any], None] | None = None

    def listen(self, callback: Callable[[Any], None]) -> None:
        """As ``carla.Sensor.listen``."""
        self.callback = callback

    def stop(self) -> None:
        """As ``carla.Sensor.stop``."""
        self.callback = None

    @property
    def is_listening(self) -> bool:
        """As ``carla.Sensor.is_listening``."""
        return self.callback is not None


class FakeWalkerController(FakeActor):
    """``carla.WalkerAIController``: walks its parent straight ahead at ``max_speed`` once started."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.started = False
        self.max_speed = 1.4
        self.target: Any = None

    def start(self) -> None:
        """As ``carla.WalkerAIController.start``."""
        self.started = True

    def stop(self) -> None:
        """As ``carla.WalkerAIController.stop``."""
        self.started = False

    def go_to_location(self, location: Any) -> None:
        """As ``carla.WalkerAIController.go_to_location``."""
        self.target = location

    def set_max_speed(self, speed: float) -> None:
        """As ``carla.WalkerAIController.set_max_speed``."""
        self.max_speed = float(speed)


class FakeActorList(list):
    """``carla.ActorList``: a list with ``filter`` (wildcard on ``type_id``) and ``find``."""

    def filter(self, pattern: str) -> FakeActorList:
        """As ``carla.ActorList.filter``."""
        return FakeActorList(a for a in self if fnmatch.fnmatchcase(a.type_id, pattern))

    def find(self, actor_id: int) -> FakeActor | None:
        """As ``carla.ActorList.find``."""
        return next((a for a in self if a.id == actor_id), None)


@dataclass
class FakeImage:
    """``carla.Image``: BGRA bytes plus the frame, time and sensor pose they belong to."""

    frame: int
    timestamp: float
    transform: Any
    width: int
    height: int
    fov: float
    raw_data: bytes


class FakeTrafficManager:
    """``carla.TrafficManager``: records every call on the server."""

    def __init__(self, server: FakeServer, port: int) -> None:
        self._server = server
        self.port = port

    def get_port(self) -> int:
        """As ``carla.TrafficManager.get_port``."""
        return self.port

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name in ("set_synchronous_mode", "set_random_device_seed", "set_hybrid_physics_mode",
                    "set_global_distance_to_leading_vehicle", "global_percentage_speed_difference"):  # fmt: skip
            return lambda *args: self._server.tm_calls.append((name, *args))
        raise AttributeError(name)


@dataclass(frozen=True)
class DestroyActor:
    """``carla.command.DestroyActor``."""

    actor_id: Any

    @property
    def id(self) -> int:
        """As ``carla.command.DestroyActor.id``."""
        return int(getattr(self.actor_id, "id", self.actor_id))


# --------------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------------


@dataclass
class StaticProp:
    """Map geometry that is no actor (a parked car, a bin): it occludes and carries a tag and an Unreal id."""

    matrix: np.ndarray
    extent: tuple[float, float, float]
    tag: int
    object_id: int
    rgb: tuple[int, int, int] = (60, 60, 60)


class FakeServer:
    """The state of the fake simulator, shared by every fake client connected to it.

    Args:
        xodr: OpenDRIVE text of the map (a real ``carla.Map`` is built from it).
        map_name: The map's name, as ``world.get_map().name`` reports it.
        blueprints: The blueprint library.
        image_delay_s: Deliver each tick's images this long after the tick, from a timer thread (0: before
            ``tick()`` returns).
        stale_repeats: Sensor kind (``"rgb"``, ``"depth"``, ``"instance_segmentation"``) -> how many images of
            earlier ticks to re-send ahead of each new one.
        drop_frames: Sensor kind -> frames whose image is never delivered.
        fail_spawn_at: Raise ``RuntimeError`` at this spawn call (1-based), as a failing server would.
        first_actor_id: The id of the first actor spawned.
        autopilot_speed_mps: Speed of vehicles on autopilot (straight ahead).
        ground_z: Height of the ground plane.
        version: What ``get_server_version`` answers.
        any_town: ``load_world`` accepts any town name (and keeps this map); else only this map's name.
    """

    def __init__(
        self,
        xodr: str,
        *,
        map_name: str = "Carla/Maps/simgen_crossing",
        blueprints: Sequence[BlueprintSpec] = DEFAULT_BLUEPRINTS,
        image_delay_s: float = 0.0,
        stale_repeats: dict[str, int] | None = None,
        drop_frames: dict[str, set[int]] | None = None,
        fail_spawn_at: int | None = None,
        first_actor_id: int = 100,
        autopilot_speed_mps: float = 8.0,
        ground_z: float = 0.0,
        version: str = "0.9.16",
        any_town: bool = False,
    ) -> None:
        carla = real_carla()
        self.carla = carla
        self.map = carla.Map(map_name, xodr)
        self.library = FakeBlueprintLibrary(blueprints)
        self.version = version
        self.any_town = any_town
        self.image_delay_s = image_delay_s
        self.stale_repeats = dict(stale_repeats or {})
        self.drop_frames = {k: set(v) for k, v in (drop_frames or {}).items()}
        self.fail_spawn_at = fail_spawn_at
        self.autopilot_speed_mps = autopilot_speed_mps
        self.ground_z = ground_z
        self.settings = carla.WorldSettings()
        self.weather = carla.WeatherParameters()
        self.frame = 1000
        self.elapsed = 0.0
        self.actors: dict[int, FakeActor] = {}
        self.next_id = first_actor_id
        self.static_props: list[StaticProp] = []
        self.calls: list[tuple[Any, ...]] = []
        self.tm_calls: list[tuple[Any, ...]] = []
        self.spawn_calls = 0
        self.pedestrians_seed: int | None = None
        self.settings_history: list[tuple[bool, float | None]] = []
        self._history: dict[int, collections.deque[FakeImage]] = {}
        self._nav_rng: np.random.Generator | None = None
        self._timers: list[threading.Timer] = []
        self.lock = threading.RLock()

    # -- helpers for tests ---------------------------------------------------------------------------------

    def transform(self, matrix: np.ndarray) -> Any:
        """A ``carla.Transform`` of a CARLA matrix."""
        carla = self.carla
        pitch, yaw, roll = ue_rotation(matrix)
        x, y, z = (float(v) for v in matrix[:3, 3])
        return carla.Transform(carla.Location(x=x, y=y, z=z), carla.Rotation(pitch=pitch, yaw=yaw, roll=roll))

    def add_actor(
        self, type_id: str, location: Sequence[float], yaw: float = 0.0, *, settled: bool = True
    ) -> FakeActor:
        """Place an actor directly (a traffic light the map holds, or a test's own vehicle)."""
        bp = self.library.find(type_id)
        actor = self._new_actor(bp)
        actor.matrix = ue_matrix(location, (0.0, yaw, 0.0))
        actor.settled = settled
        return actor

    def add_static_prop(
        self, location: Sequence[float], extent: Sequence[float], *, yaw: float = 0.0, tag: int = 14, object_id: int
    ) -> StaticProp:
        """Place map geometry that is no actor (``object_id`` is its Unreal id in the instance image)."""
        prop = StaticProp(ue_matrix(location, (0.0, yaw, 0.0)), tuple(float(e) for e in extent), tag, object_id)  # type: ignore[arg-type]
        self.static_props.append(prop)
        return prop

    def ours(self) -> list[FakeActor]:
        """Live actors that a client spawned (not the map's own)."""
        return [a for a in self.actors.values() if getattr(a, "spawned", False)]

    def recent_images(self, kind: str) -> list[FakeImage]:
        """The last images (up to 8, oldest first) the live sensor of ``kind`` rendered ("rgb", "depth", ...)."""
        for sensor in self.actors.values():
            if isinstance(sensor, FakeSensor) and sensor.type_id.rsplit(".", 1)[-1] == kind:
                return list(self._history.get(sensor.id, ()))
        return []

    def place(self, actor_id: int, location: Sequence[float], rotation: Sequence[float] = (0.0, 0.0, 0.0)) -> None:
        """Move an actor (CARLA world frame; ``rotation`` is pitch, yaw, roll in degrees)."""
        actor = self.actors[int(actor_id)]
        actor.matrix = ue_matrix(location, rotation)
        actor.settled = True

    def wait_deliveries(self) -> None:
        """Wait for every delayed image delivery to finish."""
        for timer in list(self._timers):
            timer.join()

    # -- simulation ------------------------------------------------------------------------------------

    def _new_actor(self, bp: FakeBlueprint) -> FakeActor:
        cls: type[FakeActor] = FakeActor
        if bp.id.startswith("sensor."):
            cls = FakeSensor
        elif bp.id == "controller.ai.walker":
            cls = FakeWalkerController
        actor = cls(self, self.next_id, bp.spec, bp.values())
        self.next_id += 1
        self.actors[actor.id] = actor
        return actor

    def spawn(self, bp: FakeBlueprint, transform: Any, attach_to: FakeActor | None, try_only: bool) -> FakeActor | None:
        """Spawn an actor (``try_only``: None on a collision instead of raising), or raise a planted failure."""
        with self.lock:
            self.spawn_calls += 1
            if self.fail_spawn_at is not None and self.spawn_calls == self.fail_spawn_at:
                raise RuntimeError("fake server: spawn failed (a planted failure)")
            matrix = np.asarray(transform.get_matrix(), dtype=np.float64)
            if attach_to is None and bp.spec.extent is not None and self._collides(bp.spec, matrix):
                if try_only:
                    return None
                raise RuntimeError("Spawn failed because of collision at spawn position")
            actor = self._new_actor(bp)
            actor.spawned = True  # type: ignore[attr-defined]
            actor.matrix = matrix
            actor.parent = attach_to
            self.calls.append(("spawn", actor.id, bp.id))
            return actor

    def _collides(self, spec: BlueprintSpec, matrix: np.ndarray) -> bool:
        assert spec.extent is not None
        radius = 0.8 * max(spec.extent[0], spec.extent[1])
        here = matrix[:2, 3]
        others = [
            (a.world_matrix()[:2, 3], a.spec.extent) for a in self.actors.values() if a.spec.extent and a.parent is None
        ]
        others += [(p.matrix[:2, 3], p.extent) for p in self.static_props]
        return any(float(np.hypot(*(here - at))) < radius + 0.8 * max(ext[0], ext[1]) for at, ext in others)

    def destroy(self, actor_id: int) -> bool:
        """Remove an actor and whatever is attached to it; False if it does not exist."""
        with self.lock:
            actor = self.actors.pop(int(actor_id), None)
            if actor is None:
                return False
            for child in [a for a in self.actors.values() if a.parent is actor]:
                self.actors.pop(child.id, None)
            self.calls.append(("destroy", int(actor_id)))
            return True

    def tick(self) -> int:
        """Advance one fixed step: land new actors, drive the moving ones, render and deliver every camera."""
        with self.lock:
            self.frame += 1
            dt = float(self.settings.fixed_delta_seconds or 0.05)
            self.elapsed += dt
            controllers = {
                a.parent.id: a for a in self.actors.values() if isinstance(a, FakeWalkerController) and a.parent
            }
            for actor in list(self.actors.values()):
                if actor.parent is not None or actor.spec.extent is None:
                    continue
                if not actor.settled:  # gravity, in one step: the box rests on the ground
                    actor.matrix = actor.matrix.copy()
                    actor.matrix[2, 3] = self.ground_z + (actor.spec.extent[2] - actor.spec.box_z)
                    actor.settled = True
                    continue
                speed = 0.0
                if actor.autopilot:
                    speed = self.autopilot_speed_mps
                elif actor.id in controllers and controllers[actor.id].started:
                    speed = controllers[actor.id].max_speed
                if speed:
                    actor.matrix = actor.matrix.copy()
                    actor.matrix[:3, 3] += speed * dt * actor.matrix[:3, 0]
            self._deliver_all()
            return self.frame

    def snapshot(self) -> Any:
        """Every actor's transform at the current frame."""
        with self.lock:
            poses = {a.id: self.transform(a.world_matrix()) for a in self.actors.values()}
            return FakeSnapshot(self.frame, self.elapsed, poses)

    def random_navigation_location(self) -> Any:
        """A sidewalk point drawn with the pedestrians' seed (the server's navigation mesh stands in)."""
        from simgen.backends.carla_spawn import lane_waypoints

        if self._nav_rng is None:
            self._nav_rng = np.random.default_rng(self.pedestrians_seed or 0)
        points = lane_waypoints(self.map, 5.0, ["Sidewalk"]) or lane_waypoints(self.map, 5.0, ["Driving"])
        if not points:
            return None
        return points[int(self._nav_rng.integers(len(points)))].transform.location

    # -- rendering -------------------------------------------------------------------------------------

    def _deliver_all(self) -> None:
        for sensor in [a for a in self.actors.values() if isinstance(a, FakeSensor) and a.callback is not None]:
            kind = sensor.type_id.rsplit(".", 1)[-1]
            image = self.render(sensor)
            history = self._history.setdefault(sensor.id, collections.deque(maxlen=8))
            repeats = self.stale_repeats.get(kind, 0)
            batch = list(history)[-repeats:] if repeats else []
            history.append(image)
            if self.frame not in self.drop_frames.get(kind, set()):
                batch.append(image)
            callback = sensor.callback
            if self.image_delay_s > 0:
                timer = threading.Timer(self.image_delay_s, _deliver, (callback, batch))
                self._timers = [t for t in self._timers if t.is_alive()] + [timer]
                timer.start()
            else:
                _deliver(callback, batch)

    def render(self, sensor: FakeSensor) -> FakeImage:
        """Synthesise the image ``sensor`` sees now (RGB, depth or instance segmentation)."""
        kind = sensor.type_id.rsplit(".", 1)[-1]
        width, height = int(sensor.attributes["image_size_x"]), int(sensor.attributes["image_size_y"])
        fov = float(sensor.attributes["fov"])
        M = sensor.world_matrix()
        cam = _Pinhole(M, width, height, fov)
        rgb, depth, tags, ids = cam.background(self.ground_z)
        layers = []
        for actor in self.actors.values():
            if actor.spec.extent is None:  # sensors and controllers are not drawn
                continue
            verts = [(v.x, v.y, v.z) for v in actor.bounding_box.get_world_vertices(actor.get_transform())]
            color = _actor_rgb(actor)
            layers.append((np.asarray(verts), actor.semantic_tags[0] if actor.semantic_tags else 0, actor.id, color))
        for prop in self.static_props:
            corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * prop.extent
            world = corners @ prop.matrix[:3, :3].T + prop.matrix[:3, 3]
            layers.append((world, prop.tag, prop.object_id, prop.rgb))
        drawn = []
        for verts, tag, object_id, color in layers:
            poly = cam.polygon(verts)
            if poly is not None:
                drawn.append((poly[1], poly[0], tag, object_id, color))
        for z, hull, tag, object_id, color in sorted(drawn, key=lambda d: -d[0]):  # far to near: painter's order
            sel = fill_convex(hull, height, width)
            rgb[sel], depth[sel], tags[sel], ids[sel] = color, z, tag, object_id & 0xFFFF
        light = 0.25 + 0.75 * min(max(math.sin(math.radians(self.weather.sun_altitude_angle)), 0.0), 1.0)
        bgra = np.empty((height, width, 4), dtype=np.uint8)
        bgra[..., 3] = 255
        if kind == "rgb":
            bgra[..., 2::-1] = np.clip(rgb * light, 0, 255).astype(np.uint8)
        elif kind == "depth":
            bgra[..., :3] = encode_depth(depth)[..., :3]
        else:
            bgra[..., :3] = encode_instance(tags, ids)[..., :3]
        return FakeImage(self.frame, self.elapsed, self.transform(M), width, height, fov, bgra.tobytes())


def _deliver(callback: Callable[[Any], None] | None, images: list[FakeImage]) -> None:
    if callback is None:
        return
    for image in images:
        callback(image)


def _actor_rgb(actor: FakeActor) -> tuple[int, int, int]:
    text = actor.attributes.get("color")
    if text:
        r, g, b = (int(c) for c in text.split(","))
        return r, g, b
    # A fixed colour per blueprint, as a real server draws a blueprint the same whatever id its actor got (ids
    # depend on the server's history, which differs between workers).
    k = zlib.crc32(actor.type_id.encode()) * 2654435761 % 2**32  # Knuth's multiplicative hash
    return 64 + k % 160, 64 + (k >> 8) % 160, 64 + (k >> 16) % 160


class _Pinhole:
    """The fake's own camera model: CARLA matrices in, pixel coordinates with centres at integers out."""

    near = 0.1

    def __init__(self, M: np.ndarray, width: int, height: int, fov_deg: float) -> None:
        self.M, self.inv = M, np.linalg.inv(M)
        self.width, self.height = width, height
        self.f = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
        self.cx, self.cy = (width - 1) / 2.0, (height - 1) / 2.0

    def background(self, ground_z: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The ground plane below the horizon, the sky above: rgb, depth (metres, inf for sky), tags, ids."""
        v, u = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        rays = np.stack([np.ones_like(u), (u - self.cx) / self.f, -(v - self.cy) / self.f], axis=-1)  # x=1: planar
        dz = rays @ self.M[2, :3]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (ground_z - self.M[2, 3]) / dz
        ground = (dz < 0) & (t > 0)
        depth = np.where(ground, t, np.inf)
        rgb = np.empty((self.height, self.width, 3))
        rgb[:] = _SKY_RGB
        rgb[ground] = _GROUND_RGB
        tags = np.where(ground, TAG_ROAD, TAG_SKY).astype(np.uint8)
        return rgb, depth, tags, np.zeros((self.height, self.width), dtype=np.uint16)

    def polygon(self, world: np.ndarray) -> tuple[np.ndarray, float] | None:
        """The convex hull (pixels) of a box's 8 world corners cut by the near plane, and its nearest depth."""
        local = world @ self.inv[:3, :3].T + self.inv[:3, 3]  # x forward, y right, z up
        pts = _clip_front(local, self.near)
        if len(pts) == 0:
            return None
        uv = np.stack([self.f * pts[:, 1] / pts[:, 0] + self.cx, -self.f * pts[:, 2] / pts[:, 0] + self.cy], axis=1)
        hull = cv2.convexHull(np.clip(uv, -1e6, 1e6).astype(np.float32)).reshape(-1, 2).astype(np.float64)
        return hull, float(pts[:, 0].min())


def fill_convex(hull: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels whose centre lies inside a convex polygon (pixel coordinates, centres at integers), as a renderer draws.

    ``cv2.fillConvexPoly`` also draws the outline, which colours pixels up to a pixel beyond the polygon; this is
    the exact centre rule, so a box drawn here is within half a pixel of its projection, as with a real renderer.
    """
    mask = np.zeros((height, width), dtype=bool)
    if len(hull) < 3:
        return mask
    x0, y0 = max(int(np.ceil(hull[:, 0].min())), 0), max(int(np.ceil(hull[:, 1].min())), 0)
    x1, y1 = min(int(np.floor(hull[:, 0].max())), width - 1), min(int(np.floor(hull[:, 1].max())), height - 1)
    if x1 < x0 or y1 < y0:
        return mask
    v, u = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64)
    a, b = hull, np.roll(hull, -1, axis=0)
    cross = (b[:, 0, None, None] - a[:, 0, None, None]) * (v - a[:, 1, None, None]) - (
        b[:, 1, None, None] - a[:, 1, None, None]
    ) * (u - a[:, 0, None, None])
    inside = np.all(cross >= 0, axis=0) | np.all(cross <= 0, axis=0)
    mask[y0 : y1 + 1, x0 : x1 + 1] = inside
    return mask


def _clip_front(pts: np.ndarray, near: float) -> np.ndarray:
    """A box's corners (8, 3) cut by the plane ``x = near``: the corners in front plus the edge crossings."""
    front = pts[:, 0] >= near
    out = [pts[front]]
    for a in range(8):
        for b in range(a + 1, 8):
            if bin(a ^ b).count("1") == 1 and front[a] != front[b]:
                t = (near - pts[a, 0]) / (pts[b, 0] - pts[a, 0])
                out.append((pts[a] + t * (pts[b] - pts[a]))[None])
    return np.concatenate(out)


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """CARLA's depth encoding (BGRA uint8) of metres; infinite or 1000 m and beyond are the sky (all 255)."""
    d = np.asarray(depth_m, dtype=np.float64)
    codes = np.where(np.isfinite(d), np.rint(np.clip(d, 0.0, 1000.0) / 1000.0 * DEPTH_CODE_MAX), DEPTH_CODE_MAX)
    codes = codes.astype(np.uint32)
    out = np.empty((*d.shape, 4), dtype=np.uint8)
    out[..., 2] = codes & 0xFF
    out[..., 1] = (codes >> 8) & 0xFF
    out[..., 0] = (codes >> 16) & 0xFF
    out[..., 3] = 255
    return out


def encode_instance(tags: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """CARLA's instance-segmentation encoding (BGRA uint8): tag in R, id low byte in G, high byte in B."""
    ids = np.asarray(ids).astype(np.uint32)
    out = np.empty((*ids.shape, 4), dtype=np.uint8)
    out[..., 2] = np.asarray(tags, dtype=np.uint8)
    out[..., 1] = ids & 0xFF
    out[..., 0] = (ids >> 8) & 0xFF
    out[..., 3] = 255
    return out


# --------------------------------------------------------------------------------------------------------
# The module surface: Client, World
# --------------------------------------------------------------------------------------------------------


class FakeSnapshot:
    """``carla.WorldSnapshot``: the frame, the time and every actor's transform at that frame."""

    def __init__(self, frame: int, elapsed: float, poses: dict[int, Any]) -> None:
        self.frame = frame
        self.timestamp = SimpleNamespace(frame=frame, elapsed_seconds=elapsed)
        self._poses = poses

    def find(self, actor_id: int) -> Any:
        """As ``carla.WorldSnapshot.find``."""
        pose = self._poses.get(int(actor_id))
        return None if pose is None else SimpleNamespace(id=int(actor_id), get_transform=lambda: pose)


class FakeWorld:
    """``carla.World`` on a :class:`FakeServer`."""

    def __init__(self, server: FakeServer) -> None:
        self._server = server
        self.id = 1

    def get_settings(self) -> Any:
        """As ``carla.World.get_settings``."""
        return _copy_settings(self._server.carla, self._server.settings)

    def apply_settings(self, settings: Any) -> int:
        """As ``carla.World.apply_settings``."""
        s = self._server
        s.settings = _copy_settings(s.carla, settings)
        s.settings_history.append((bool(settings.synchronous_mode), settings.fixed_delta_seconds))
        return s.frame

    def tick(self, seconds: float = 0.0) -> int:
        """As ``carla.World.tick``."""
        if not self._server.settings.synchronous_mode:
            raise RuntimeError("fake server: tick() outside synchronous mode")
        return self._server.tick()

    def get_snapshot(self) -> FakeSnapshot:
        """As ``carla.World.get_snapshot``."""
        return self._server.snapshot()

    def get_map(self) -> Any:
        """As ``carla.World.get_map``."""
        return self._server.map

    def get_blueprint_library(self) -> FakeBlueprintLibrary:
        """As ``carla.World.get_blueprint_library``."""
        return self._server.library

    def try_spawn_actor(
        self, bp: FakeBlueprint, transform: Any, attach_to: Any = None, attachment_type: Any = None
    ) -> Any:
        """As ``carla.World.try_spawn_actor``."""
        return self._server.spawn(bp, transform, attach_to, try_only=True)

    def spawn_actor(self, bp: FakeBlueprint, transform: Any, attach_to: Any = None, attachment_type: Any = None) -> Any:
        """As ``carla.World.spawn_actor``."""
        return self._server.spawn(bp, transform, attach_to, try_only=False)

    def get_actors(self, actor_ids: Iterable[int] | None = None) -> FakeActorList:
        """As ``carla.World.get_actors``."""
        actors = list(self._server.actors.values())
        if actor_ids is not None:
            wanted = set(actor_ids)
            actors = [a for a in actors if a.id in wanted]
        return FakeActorList(actors)

    def set_weather(self, weather: Any) -> None:
        """As ``carla.World.set_weather``."""
        from simgen.backends.carla_weather import WEATHER_FIELDS

        copy = self._server.carla.WeatherParameters()
        for name in WEATHER_FIELDS:
            setattr(copy, name, getattr(weather, name))
        self._server.weather = copy

    def get_weather(self) -> Any:
        """As ``carla.World.get_weather``."""
        return self._server.weather

    def set_pedestrians_seed(self, seed: int) -> None:
        """As ``carla.World.set_pedestrians_seed``."""
        self._server.pedestrians_seed = int(seed)
        self._server._nav_rng = None

    def set_pedestrians_cross_factor(self, factor: float) -> None:
        """As ``carla.World.set_pedestrians_cross_factor``."""
        self._server.calls.append(("set_pedestrians_cross_factor", float(factor)))

    def get_random_location_from_navigation(self) -> Any:
        """As ``carla.World.get_random_location_from_navigation``."""
        return self._server.random_navigation_location()


def _copy_settings(carla: Any, settings: Any) -> Any:
    out = carla.WorldSettings()
    for name in ("synchronous_mode", "no_rendering_mode", "fixed_delta_seconds", "substepping",
                 "max_substep_delta_time", "max_substeps"):  # fmt: skip
        setattr(out, name, getattr(settings, name))
    return out


class FakeClient:
    """``carla.Client``: reaches the :class:`FakeServer` registered at its host and port, or times out."""

    def __init__(self, module: FakeCarla, host: str = "127.0.0.1", port: int = 2000, worker_threads: int = 0) -> None:
        self._module = module
        self.host, self.port = host, int(port)
        self.timeout = 5.0

    @property
    def _server(self) -> FakeServer:
        server = self._module.servers.get((self.host, self.port))
        if server is None:
            raise RuntimeError(
                f"time-out of {int(self.timeout * 1000)}ms while waiting for the simulator, make sure the simulator "
                f"is ready and connected to {self.host}:{self.port}"
            )
        return server

    def set_timeout(self, seconds: float) -> None:
        """As ``carla.Client.set_timeout``."""
        self.timeout = float(seconds)

    def get_world(self) -> FakeWorld:
        """As ``carla.Client.get_world``."""
        return FakeWorld(self._server)

    def get_server_version(self) -> str:
        """As ``carla.Client.get_server_version``."""
        return self._server.version

    def get_client_version(self) -> str:
        """As ``carla.Client.get_client_version``."""
        return "0.9.16"

    def load_world(self, map_name: str, *args: Any) -> FakeWorld:
        """As ``carla.Client.load_world``."""
        server = self._server
        if not server.any_town and server.map.name.rsplit("/", 1)[-1] != map_name:
            raise RuntimeError(f"map '{map_name}' not found")
        return FakeWorld(server)

    def get_trafficmanager(self, port: int = 8000) -> FakeTrafficManager:
        """As ``carla.Client.get_trafficmanager``."""
        return FakeTrafficManager(self._server, int(port))

    def apply_batch_sync(self, commands: Sequence[Any], do_tick: bool = False) -> list[Any]:
        """As ``carla.Client.apply_batch_sync``."""
        server = self._server
        out = []
        for command in commands:
            ok = server.destroy(command.id)
            out.append(SimpleNamespace(actor_id=command.id, error="" if ok else f"actor {command.id} not found"))
        return out

    def apply_batch(self, commands: Sequence[Any], do_tick: bool = False) -> None:
        """As ``carla.Client.apply_batch``."""
        self.apply_batch_sync(commands, do_tick)


class FakeCarla:
    """A FAKE ``carla`` module: pass it as ``CarlaBackend(carla_module=...)``.

    The geometry and weather classes are the real client's; ``Client`` reaches the fake servers registered here.

    Args:
        servers: ``{(host, port): FakeServer}``; a client of any other address times out.
    """

    def __init__(self, servers: dict[tuple[str, int], FakeServer] | None = None) -> None:
        carla = real_carla()
        self.servers = dict(servers or {})
        for name in ("Transform", "Location", "Rotation", "Vector3D", "BoundingBox", "WeatherParameters",
                     "WorldSettings", "AttachmentType", "LaneType", "CityObjectLabel", "Map"):  # fmt: skip
            setattr(self, name, getattr(carla, name))
        self.command = SimpleNamespace(DestroyActor=DestroyActor)

    def Client(self, host: str = "127.0.0.1", port: int = 2000, worker_threads: int = 0) -> FakeClient:
        """``carla.Client(host, port)``."""
        return FakeClient(self, host, port, worker_threads)


def fake_carla(server: FakeServer, host: str = "127.0.0.1", port: int = 2000) -> FakeCarla:
    """A fake ``carla`` module with ``server`` listening at ``host:port``."""
    return FakeCarla({(host, port): server})


class FakeFarm(FakeCarla):
    """A FAKE ``carla`` module with a FAKE server at every address, each made on first contact from one map.

    This is what the engine's CARLA runs use while ``SIMGEN_FAKE_CARLA=<map.xodr>`` is set (see
    :data:`simgen.backends.carla.FAKE_ENV`): one farm per process, one :class:`FakeServer` per ``host:port``, so a
    worker's server keeps its actors and frame counter between scenes as a real one does. Its servers load any
    town by name (the map stays the OpenDRIVE file's).

    Args:
        xodr: OpenDRIVE text of every server's map.
        log_path: A file where each new client appends ``"<pid> <worker> <host:port>"`` (the worker index the
            engine gave this process), so a test can see which worker used which server.
    """

    def __init__(self, xodr: str, log_path: str | None = None) -> None:
        super().__init__()
        self.xodr = xodr
        self.log_path = log_path

    def Client(self, host: str = "127.0.0.1", port: int = 2000, worker_threads: int = 0) -> FakeClient:
        """``carla.Client(host, port)``: starts the FAKE server at that address on first contact."""
        key = (str(host), int(port))
        if key not in self.servers:
            self.servers[key] = FakeServer(self.xodr, any_town=True)
        if self.log_path:
            import os

            from simgen.engine.worker import current_worker

            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()} {current_worker()} {host}:{port}\n")
        return FakeClient(self, host, port, worker_threads)


_FARMS: dict[tuple[str, str | None], FakeFarm] = {}


def fake_farm(xodr_path: str, log_path: str | None = None) -> FakeFarm:
    """This process's :class:`FakeFarm` for the map ``xodr_path`` (made once, then reused).

    Raises:
        SimgenError: ``xodr_path`` cannot be read.
    """
    from simgen.errors import SimgenError

    key = (xodr_path, log_path)
    if key not in _FARMS:
        try:
            with open(xodr_path, encoding="utf-8") as fh:
                xodr = fh.read()
        except OSError as exc:
            raise SimgenError(
                f"SIMGEN_FAKE_CARLA: cannot read the FAKE layer's OpenDRIVE map '{xodr_path}': {exc.strerror}"
            ) from None
        _FARMS[key] = FakeFarm(xodr, log_path)
    return _FARMS[key]
