"""The CARLA backend: builds a driving scene on a CARLA server, ticks it synchronously and renders the ego's cameras.

It implements :class:`~simgen.backends.base.Backend` on plain data: ``build(scene)`` reads ``scene["carla"]``
(a :class:`~simgen.backends.carla_spec.CarlaScene`), ``render(view)`` reads ``view["carla"]`` (a
:class:`~simgen.backends.carla_spec.CarlaView`). Everything CARLA-specific lives here and in the
``carla_*`` modules beside it: the connection, synchronous ticking, traffic-manager and pedestrian seeds,
blueprint and spawn-point choice, the camera rig and its frame-matched sensor queues, and the decoding of
CARLA's images into :class:`~simgen.frame.FrameBuffers` in simgen's frames (see
:mod:`~simgen.backends.carla_camera`). Labels are then computed by :func:`simgen.labels.annotate` like any
other backend's: visible boxes from the instance camera (occluded actors get none), amodal boxes and
truncation from the projected actor boxes.

Lifecycle and failure rules:

* The server is reached in the constructor. With no server, it fails within ``timeout_s`` with one
  :class:`~simgen.errors.BackendUnavailable` line naming ``host:port`` and how to start one.
* ``build`` puts the world in synchronous mode with a fixed step (the original settings are kept and
  restored), seeds the traffic manager (``set_random_device_seed``) and the pedestrians
  (``set_pedestrians_seed``) from the scene's seed, and spawns the ego, the actor groups and their
  controllers. ``settle`` runs the warm-up ticks. ``render`` ticks, then takes from each camera's queue
  the image whose ``frame`` is the tick's frame.
* Every actor and sensor this backend spawned is destroyed, and the world's settings restored, on
  ``close()``, on garbage collection, and whenever ``build``, ``settle`` or ``render`` fails (the error is
  raised after the clean-up). A server-side failure surfaces as one ``BackendUnavailable`` line.
* CARLA cannot render one object alone, so per-object visibility fractions are unavailable:
  :attr:`CarlaBackend.capabilities` says so and ``render(visibility=True)`` refuses.

The backend takes the ``carla`` module by injection (``carla_module=``), so the tests drive it end to end with
:mod:`simgen.testing.fake_carla`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import math
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from pydantic import ValidationError

from simgen.backends.carla_camera import (
    box_in_object_frame,
    camera_pose,
    intrinsics,
    pose_vector,
    transform_matrix,
    world_pose,
)
from simgen.backends.carla_labels import bgra_array, decode_depth, decode_instance, decode_rgb, id16, remap_instances
from simgen.backends.carla_sensors import CameraRig, spawn_rig
from simgen.backends.carla_spawn import SpawnPoint, lane_waypoints, spawn_candidates
from simgen.backends.carla_spec import (
    SERVER_HINT,
    ActorState,
    BlueprintPick,
    CameraState,
    CarlaScene,
    CarlaSection,
    CarlaView,
    ColorPick,
    EgoState,
    LaneSpawn,
    TrafficManagerState,
    parse_server,
)
from simgen.backends.carla_weather import make_weather, weather_values
from simgen.errors import BackendUnavailable, DependencyMissing, SimgenError, SpecError, did_you_mean
from simgen.frame import FrameBuffers, ModelPart, ObjectInfo
from simgen.sampling import rng_for

log = logging.getLogger(__name__)

#: Renderer names the backend accepts; CARLA renders with Unreal Engine whatever is asked.
RENDERERS = ("auto", "unreal")
#: Default minimum distance between spawned actors, metres.
DEFAULT_SEPARATION_M = {"vehicle": 8.0, "walker": 1.5}
#: Default lane types to spawn on.
DEFAULT_LANES = {"vehicle": ("Driving",), "walker": ("Sidewalk",)}
#: How many spawned actors may collide with another tracked actor's 16-bit instance id before giving up.
MAX_ID_RETRIES = 8


def import_carla() -> ModuleType:
    """The ``carla`` client module, or :class:`~simgen.errors.DependencyMissing` naming the extra."""
    try:
        import carla
    except ImportError as exc:
        raise DependencyMissing("carla", "carla", "the CARLA backend") from exc
    return carla


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _Session:
    """The connection and everything spawned through it; :meth:`close` undoes it all (idempotent)."""

    def __init__(self, carla: Any, host: str, port: int, timeout_s: float) -> None:
        self.carla = carla
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.client: Any = None
        self.world: Any = None
        self.tm: Any = None
        self.original_settings: Any = None
        self.spawned: list[Any] = []  # every actor we spawned, in spawn order
        self.maps: dict[int, Any] = {}
        self.closed = False

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self) -> None:
        try:
            client = self.carla.Client(self.host, self.port)
            client.set_timeout(float(self.timeout_s))
            world = client.get_world()
        except RuntimeError as exc:
            raise BackendUnavailable(
                f"no CARLA server answered at {self.where} within {self.timeout_s:g} s ({_first_line(exc)}); "
                f"{SERVER_HINT}"
            ) from None
        self.client, self.world = client, world
        try:
            server, ours = client.get_server_version(), client.get_client_version()
        except RuntimeError:
            return
        if str(server).split("-")[0] != str(ours).split("-")[0]:
            log.warning(
                "CARLA server %s runs %s but this client is %s; install carla==%s", self.where, server, ours, server
            )

    def carla_map(self) -> Any:
        """The world's ``carla.Map`` (a whole OpenDRIVE download: cached per world)."""
        key = int(getattr(self.world, "id", 0))
        if key not in self.maps:
            self.maps = {key: self.world.get_map()}
        return self.maps[key]

    def track(self, actor: Any) -> Any:
        self.spawned.append(actor)
        return actor

    def destroy(self, actors: list[Any]) -> None:
        """Stop and destroy ``actors`` (sensors and controllers first), in one batch."""
        if not actors:
            return
        gone = {int(a.id) for a in actors}
        self.spawned = [a for a in self.spawned if int(a.id) not in gone]
        for actor in actors:
            with contextlib.suppress(RuntimeError, AttributeError):
                if getattr(actor, "is_listening", False) or str(actor.type_id).startswith("controller."):
                    actor.stop()
        if self.client is None:
            return
        order = sorted(actors, key=lambda a: 0 if str(a.type_id).startswith(("sensor.", "controller.")) else 1)
        try:
            replies = self.client.apply_batch_sync([self.carla.command.DestroyActor(a.id) for a in order], False)
        except RuntimeError as exc:
            log.warning("CARLA server %s: destroying %d actors failed: %s", self.where, len(order), _first_line(exc))
            return
        failed = [r for r in replies if getattr(r, "error", "")]
        if failed:
            log.warning("CARLA server %s: %d actors were not destroyed: %s", self.where, len(failed), failed[0].error)

    def apply_sync(self, fixed_delta_seconds: float) -> None:
        if self.original_settings is None:
            self.original_settings = self.world.get_settings()
        settings = self.world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = float(fixed_delta_seconds)
        self.world.apply_settings(settings)

    def restore_settings(self) -> None:
        if self.tm is not None:
            with contextlib.suppress(RuntimeError):
                self.tm.set_synchronous_mode(False)
        if self.original_settings is not None and self.world is not None:
            try:
                self.world.apply_settings(self.original_settings)
            except RuntimeError as exc:
                log.warning("CARLA server %s: restoring the world settings failed: %s", self.where, _first_line(exc))
        self.original_settings = None

    def reset(self) -> None:
        """Destroy everything spawned and restore the world's settings; the connection stays."""
        try:
            self.destroy(list(self.spawned))
        finally:
            self.spawned = []
            self.restore_settings()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.reset()
        finally:
            self.client = self.world = self.tm = None


@dataclass
class _Object:
    """A tracked actor: how to label it and where its box sits."""

    info: ObjectInfo
    actor: Any
    T_actor_obj: np.ndarray
    tags: frozenset[int]
    record: dict[str, Any]


@dataclass
class _Built:
    """A built scene."""

    state: CarlaScene
    ego: Any
    objects: list[_Object]
    missing: list[str]
    rig: CameraRig | None = None
    settled: bool = False
    frames: list[int] = field(default_factory=list)


class CarlaBackend:
    """Driving scenes on a CARLA server (0.9.15-0.9.16): ``build``, ``settle``, ``render``, ``close``.

    Args:
        renderer: ``"auto"`` or ``"unreal"`` (CARLA renders with Unreal Engine; recorded as ``"unreal"``).
        config: The spec's ``carla:`` section (a :class:`~simgen.backends.carla_spec.CarlaSection` or its
            mapping); its host, port and timeout are used. Default: a local server on port 2000.
        server: ``"host:port"`` overriding the config's, e.g. one of ``carla.servers`` per worker.
        tm_port: Traffic-manager port overriding the scene's. The traffic manager runs inside this client
            process and a second process asking for the same port joins the first one's, so give each worker
            on one machine its own (e.g. ``8000 + worker``).
        carla_module: The ``carla`` module to use; default ``import carla``. Tests pass
            :mod:`simgen.testing.fake_carla`.

    Raises:
        BackendUnavailable: No server answered within the timeout, or an unknown renderer.
        DependencyMissing: The ``carla`` client is not installed.
    """

    name: ClassVar[str] = "carla"
    #: What this backend can compute. CARLA has no per-object unoccluded render, so no visibility fractions.
    capabilities: ClassVar[dict[str, bool]] = {"visibility": False, "unoccluded_masks": False}

    def __init__(
        self,
        renderer: str = "auto",
        *,
        config: CarlaSection | Mapping[str, Any] | None = None,
        server: str | None = None,
        tm_port: int | None = None,
        carla_module: Any = None,
    ) -> None:
        if renderer not in RENDERERS:
            raise BackendUnavailable(
                f"the carla backend renders with Unreal Engine; renderer '{renderer}' is not one of {list(RENDERERS)}"
                f"{did_you_mean(renderer, RENDERERS)}"
            )
        self.renderer = "unreal"
        self.config = config if isinstance(config, CarlaSection) else CarlaSection.model_validate(dict(config or {}))
        host, port = parse_server(server) if server else (self.config.host, self.config.port)
        self._session = _Session(carla_module or import_carla(), host, port, self.config.timeout_s)
        self._tm_port = tm_port
        self._finalizer = weakref.finalize(self, self._session.close)
        self._built: _Built | None = None
        self._session.connect()

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def server(self) -> str:
        """``host:port`` of the server in use."""
        return self._session.where

    def close(self) -> None:
        """Destroy every actor and sensor spawned here, restore the world's settings, drop the connection."""
        self._built = None
        self._finalizer()

    def __enter__(self) -> CarlaBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Clean up everything on any failure; turn a server's RuntimeError into one BackendUnavailable line."""
        if self._session.closed:
            raise BackendUnavailable(f"carla backend ({self.server}): {what} after close()")
        try:
            yield
        except SimgenError:
            self._fail()
            raise
        except RuntimeError as exc:
            self._fail()
            raise BackendUnavailable(f"CARLA server {self.server}: {what} failed: {_first_line(exc)}") from exc
        except BaseException:
            self._fail()
            raise

    def _fail(self) -> None:
        self._built = None
        try:
            self._session.reset()
        except Exception as exc:  # never mask the error being raised
            log.warning("carla backend: clean-up after a failure failed too: %s", _first_line(exc))

    # -- build -------------------------------------------------------------------------------------------

    def build(self, scene: Mapping[str, Any]) -> None:
        """Spawn the scene ``scene["carla"]`` (a :class:`~simgen.backends.carla_spec.CarlaScene` as data).

        Raises:
            SpecError: A malformed scene state, or a blueprint filter no server blueprint matches.
            BackendUnavailable: The server failed (everything spawned so far is destroyed first).
        """
        state = _validated(CarlaScene, scene, "scene")
        with self._guard("build"):
            self._built = None
            self._session.destroy(list(self._session.spawned))
            if self._tm_port is not None:
                state = state.model_copy(
                    update={"traffic_manager": state.traffic_manager.model_copy(update={"port": self._tm_port})}
                )
            self._built = _Builder(self._session, state).build()

    def settle(self) -> dict[str, Any]:
        """Run the scene's warm-up ticks (actors land, traffic starts).

        Returns:
            ``{"steps", "frame", "poses": {uid: [x, y, z, qx, qy, qz, qw]}, "actors": {uid: {...}},
            "missing": [uid, ...]}``; poses in simgen's world frame, ``actors`` with each actor's id, blueprint
            and spawn point, ``missing`` the actors no spawn point could take.
        """
        built = self._require_built()
        world = self._session.world
        with self._guard("settle"):
            steps = built.state.warmup_ticks
            for _ in range(steps):
                world.tick(self._session.timeout_s)
            snapshot = world.get_snapshot()
            poses = {}
            for obj in built.objects:
                T = _object_pose(snapshot, obj)
                if T is not None:
                    poses[obj.info.uid] = pose_vector(T)
            built.settled = True
            return {
                "steps": steps,
                "frame": int(snapshot.frame),
                "poses": poses,
                "actors": {obj.info.uid: obj.record for obj in built.objects},
                "missing": list(built.missing),
            }

    # -- render ------------------------------------------------------------------------------------------

    def render(self, view: Mapping[str, Any], *, visibility: bool = False) -> FrameBuffers:
        """Tick ``view["carla"]["ticks"]`` times (at least once) and return the ego cameras' frame-matched images.

        Raises:
            BackendUnavailable: ``visibility=True`` (CARLA cannot render an object alone), a sensor that
                delivered no image of the tick's frame in time, or a server failure.
        """
        if visibility:
            raise BackendUnavailable(
                "labels.visibility: the carla backend cannot render an object alone, so visibility fractions "
                "are unavailable (capabilities['visibility'] is False); set labels.visibility: false"
            )
        state = _validated(CarlaView, view, "view")
        built = self._require_built()
        session = self._session
        with self._guard("render"):
            if state.weather is not None:
                session.world.set_weather(make_weather(session.carla, state.weather.preset, state.weather.fields))
            rig = self._rig(built, state.camera)
            frame = 0
            for _ in range(max(1, state.ticks)):
                frame = int(session.world.tick(session.timeout_s))
            images = {name: q.get(frame, state.camera.sensor_timeout_s) for name, q in rig.queues.items()}
            snapshot = session.world.get_snapshot()
            if int(snapshot.frame) != frame:
                raise BackendUnavailable(
                    f"CARLA server {self.server}: the world snapshot is of frame {snapshot.frame}, the tick was "
                    f"frame {frame}; is another client ticking this server?"
                )
            built.frames.append(frame)
            return self._buffers(built, state.camera, images, snapshot, frame)

    def _rig(self, built: _Built, camera: CameraState) -> CameraRig:
        if built.rig is not None and built.rig.same(camera):
            return built.rig
        if built.rig is not None:
            self._session.destroy(list(built.rig.sensors.values()))
            built.rig = None
        s = self._session
        built.rig = spawn_rig(s.carla, s.world, built.ego, camera, s.track)
        return built.rig

    def _buffers(
        self, built: _Built, camera: CameraState, images: dict[str, Any], snapshot: Any, frame: int
    ) -> FrameBuffers:
        for name, image in images.items():
            if (int(image.width), int(image.height)) != (camera.width, camera.height):
                raise BackendUnavailable(
                    f"carla sensor '{name}': got a {image.width}x{image.height} image, asked for "
                    f"{camera.width}x{camera.height}"
                )
        bgra = {name: bgra_array(img.raw_data, int(img.width), int(img.height)) for name, img in images.items()}
        T_ue_cam = transform_matrix(images["rgb"].transform)
        for name in ("depth", "instance"):
            if not np.allclose(transform_matrix(images[name].transform), T_ue_cam, atol=1e-3):
                raise BackendUnavailable(
                    f"carla sensor '{name}': its pose differs from the RGB camera's at frame {frame}"
                )
        objects: list[ObjectInfo] = []
        poses: dict[int, np.ndarray] = {}
        instance_of: dict[int, int] = {}
        allowed: dict[int, frozenset[int]] = {}
        actor_ids: dict[str, int] = {}
        for obj in built.objects:
            T = _object_pose(snapshot, obj)
            if T is None:  # the actor is gone (it fell off the map, or the server removed it)
                continue
            iid = obj.info.instance_id
            objects.append(obj.info)
            poses[iid] = T
            instance_of[id16(obj.actor.id)] = iid
            allowed[iid] = obj.tags
            actor_ids[str(iid)] = int(obj.actor.id)
        tags, carla_ids = decode_instance(bgra["instance"])
        check = allowed if built.state.labels.check_tags else None
        instance_ids, counts = remap_instances(tags, carla_ids, instance_of, check)
        fov = float(getattr(images["rgb"], "fov", camera.fov_deg))
        meta: dict[str, object] = {
            "carla": {
                "server": self.server,
                "frame": frame,
                "elapsed_seconds": float(snapshot.timestamp.elapsed_seconds),
                "actor_ids": actor_ids,
                "dropped_images": {name: q.dropped for name, q in (built.rig.queues.items() if built.rig else ())},
                "tag_rejected_px": counts["tag_rejected"],
                "unmatched_object_px": counts["unmatched"],
                "weather": weather_values(self._session.world.get_weather()),
            }
        }
        return FrameBuffers(
            rgb=decode_rgb(bgra["rgb"]),
            depth_m=decode_depth(bgra["depth"]),
            instance_ids=instance_ids,
            K=intrinsics(camera.width, camera.height, fov),
            T_world_cam=camera_pose(T_ue_cam),
            objects=objects,
            object_poses=poses,
            meta=meta,
        )

    def _require_built(self) -> _Built:
        if self._built is None:
            raise BackendUnavailable(f"carla backend ({self.server}): no scene is built; call build() first")
        return self._built


def _validated(model: type[Any], data: Mapping[str, Any], what: str) -> Any:
    """``data["carla"]`` validated as ``model``, or a SpecError with the field path."""
    from simgen.spec.errors import spec_error_from_validation

    if not isinstance(data, Mapping) or "carla" not in data:
        raise SpecError(f"the carla backend needs the {what} state under the key 'carla'", path=what)
    try:
        return model.model_validate(data["carla"])
    except ValidationError as exc:
        found = spec_error_from_validation(exc, model, None)
        where = f"{what}.carla"
        raise SpecError(problems=[(f"{where}.{p}" if p else where, m) for p, m in found.problems]) from None


def _object_pose(snapshot: Any, obj: _Object) -> np.ndarray | None:
    """``T_world_obj`` of a tracked actor at ``snapshot``'s frame, or None when the actor is gone."""
    snap = snapshot.find(obj.actor.id)
    if snap is None:
        return None
    return world_pose(transform_matrix(snap.get_transform()) @ obj.T_actor_obj)


class _Builder:
    """One build: blueprints, spawn points, controllers, the traffic manager and the tracked objects."""

    def __init__(self, session: _Session, state: CarlaScene) -> None:
        self.s = session
        self.carla = session.carla
        self.state = state
        self.ids16: set[int] = set()
        self.taken: list[tuple[float, float, float]] = []
        self.waypoints: dict[tuple[Any, ...], list[Any]] = {}

    def build(self) -> _Built:
        self._world()
        s, state, world = self.s, self.state, self.s.world
        s.apply_sync(state.fixed_delta_seconds)
        self._traffic_manager(state.traffic_manager)
        world.set_pedestrians_seed(int(rng_for(state.seed, "pedestrians").integers(0, 2**32)))
        world.set_pedestrians_cross_factor(float(state.pedestrians_cross_factor))
        if state.weather is not None:
            world.set_weather(make_weather(self.carla, state.weather.preset, state.weather.fields))
        self.library = world.get_blueprint_library()
        self.map = s.carla_map()
        present = list(world.get_actors())
        self.ids16 = {id16(a.id) for a in present}
        ego, ego_point = self._spawn_ego(state.ego)
        centre = ego_point.location
        spawned: list[tuple[ActorState, Any, SpawnPoint]] = []
        missing: list[str] = []
        for group, members in _groups(state.actors):
            got = self._spawn_group(group, members, centre)
            spawned += [g for g in got if g[1] is not None]  # type: ignore[misc]
            missing += [a.uid for a, actor, _ in got if actor is None]
        if missing:
            log.warning("carla: no free spawn point for %d actors (%s ...)", len(missing), missing[0])
        world.tick(s.timeout_s)  # the actors exist on the server before controllers attach to them
        self._drive(ego, state.ego.autopilot, spawned)
        objects = self._objects(ego, ego_point, spawned, present, centre)
        return _Built(state, ego, objects, missing)

    def _world(self) -> None:
        town = self.state.town
        if town is None:
            return
        current = str(self.s.carla_map().name).rsplit("/", 1)[-1]
        if current == town:
            return
        self.s.restore_settings()  # load_world in synchronous mode would wait for a tick no one sends
        self.s.world = self.s.client.load_world(town)

    def _traffic_manager(self, tm_state: TrafficManagerState) -> None:
        tm = self.s.client.get_trafficmanager(int(tm_state.port))
        self.s.tm = tm
        tm.set_synchronous_mode(True)
        tm.set_random_device_seed(int(rng_for(self.state.seed, "traffic_manager").integers(0, 2**32)))
        tm.set_hybrid_physics_mode(bool(tm_state.hybrid_physics))
        tm.set_global_distance_to_leading_vehicle(float(tm_state.distance_to_leading_m))
        tm.global_percentage_speed_difference(float(tm_state.speed_difference_pct))

    def _blueprint(self, pick: BlueprintPick, color: ColorPick | None, where: str) -> Any:
        matches = list(self.library.filter(pick.filter))
        if pick.base_type is not None:
            matches = [
                bp
                for bp in matches
                if bp.has_attribute("base_type") and bp.get_attribute("base_type").as_str() == pick.base_type
            ]
        if not matches:
            ids = [bp.id for bp in self.library]
            what = f"'{pick.filter}'" + (f" with base_type '{pick.base_type}'" if pick.base_type else "")
            raise SpecError(
                f"no blueprint of the CARLA server {self.s.where} matches {what}{did_you_mean(pick.filter, ids)}",
                path=where,
            )
        matches.sort(key=lambda bp: bp.id)
        bp = matches[min(int(pick.u * len(matches)), len(matches) - 1)]
        if color is not None and bp.has_attribute("color"):
            if color.rgb is not None:
                bp.set_attribute("color", ",".join(str(int(c)) for c in color.rgb))
            elif color.recommended_u is not None:
                options = list(bp.get_attribute("color").recommended_values)
                if options:
                    bp.set_attribute("color", options[min(int(color.recommended_u * len(options)), len(options) - 1)])
        if bp.has_attribute("is_invincible"):
            bp.set_attribute("is_invincible", "false")
        return bp

    def _points(self, key: str, kind: str, spawn: LaneSpawn, centre: Any, limit: int) -> list[SpawnPoint]:
        lanes = tuple(spawn.lane_types or DEFAULT_LANES[kind])
        cache = (spawn.spacing_m, lanes, spawn.junctions, tuple(spawn.roads) if spawn.roads is not None else None)
        if cache not in self.waypoints:
            self.waypoints[cache] = lane_waypoints(
                self.map, spawn.spacing_m, lanes, junctions=spawn.junctions, roads=spawn.roads
            )
        separation = spawn.min_separation_m if spawn.min_separation_m is not None else DEFAULT_SEPARATION_M[kind]
        return spawn_candidates(
            self.waypoints[cache],
            rng_for(self.state.seed, "spawn", key),
            min_separation_m=separation,
            lift_m=spawn.lift_m,
            centre=centre,
            max_distance_m=spawn.max_distance_m if centre is not None else None,
            taken=self.taken,
            limit=limit,
        )

    def _try_spawn(self, bp: Any, point: SpawnPoint) -> Any:
        """Spawn at ``point``, or None where the server refuses; re-spawn an actor whose 16-bit id is taken."""
        carla = self.carla
        transform = carla.Transform(
            carla.Location(x=point.location[0], y=point.location[1], z=point.location[2]),
            carla.Rotation(pitch=point.rotation[0], yaw=point.rotation[1], roll=point.rotation[2]),
        )
        for _ in range(MAX_ID_RETRIES):
            actor = self.s.world.try_spawn_actor(bp, transform)
            if actor is None:
                return None
            self.s.track(actor)
            if id16(actor.id) not in self.ids16:
                self.ids16.add(id16(actor.id))
                self.taken.append(point.location)
                return actor
            # Actor ids beyond 65535 wrap in the instance image: this one would share pixels with another.
            self.s.destroy([actor])
        return None

    def _spawn_ego(self, ego: EgoState) -> tuple[Any, SpawnPoint]:
        bp = self._blueprint(ego.blueprint, ego.color, "carla.ego.blueprint")
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", "hero")  # CARLA streams large-map tiles and hybrid physics around 'hero'
        for point in self._points("ego", "vehicle", ego.spawn, None, limit=64):
            actor = self._try_spawn(bp, point)
            if actor is not None:
                return actor, point
        raise BackendUnavailable(
            f"CARLA server {self.s.where}: no free spawn point for the ego vehicle on map "
            f"'{self.map.name}' (carla.ego.spawn: lane types {ego.spawn.lane_types or ['Driving']})"
        )

    def _spawn_group(
        self, group: str, members: list[ActorState], centre: Any
    ) -> list[tuple[ActorState, Any, SpawnPoint | None]]:
        first = members[0]
        points = iter(self._points(group, first.kind, first.spawn, centre, limit=4 * len(members) + 16))
        out: list[tuple[ActorState, Any, SpawnPoint | None]] = []
        for member in members:
            bp = self._blueprint(member.blueprint, member.color, f"carla.actors[{group}].blueprints")
            actor, where = None, None
            for point in points:
                actor = self._try_spawn(bp, point)
                if actor is not None:
                    where = point
                    break
            out.append((member, actor, where))
        return out

    def _drive(self, ego: Any, ego_autopilot: bool, spawned: list[tuple[ActorState, Any, SpawnPoint]]) -> None:
        port = self.s.tm.get_port()
        if ego_autopilot:
            ego.set_autopilot(True, port)
        walkers = []
        for member, actor, _ in spawned:
            if member.kind == "vehicle" and member.autopilot:
                actor.set_autopilot(True, port)
            elif member.kind == "walker" and member.walker_ai:
                walkers.append((member, actor))
        if not walkers:
            return
        world = self.s.world
        controller_bp = self.library.find("controller.ai.walker")
        controllers = []
        for member, actor in walkers:
            controller = self.s.track(world.spawn_actor(controller_bp, self.carla.Transform(), attach_to=actor))
            controllers.append((member, controller))
        world.tick(self.s.timeout_s)  # a controller starts only once it exists on the server
        for member, controller in controllers:
            controller.start()
            target = world.get_random_location_from_navigation()
            if target is not None:
                controller.go_to_location(target)
            controller.set_max_speed(float(member.walker_speed_mps if member.walker_speed_mps is not None else 1.4))

    def _objects(
        self,
        ego: Any,
        ego_point: SpawnPoint,
        spawned: list[tuple[ActorState, Any, SpawnPoint]],
        present: list[Any],
        centre: tuple[float, float, float],
    ) -> list[_Object]:
        labels = self.state.labels
        objects: list[_Object] = []

        def add(actor: Any, uid: str, category: str | None, labeled: bool, record: dict[str, Any]) -> None:
            tags = tuple(int(t) for t in actor.semantic_tags)
            base_type = dict(actor.attributes).get("base_type")
            category = category or labels.category(str(actor.type_id), base_type, tags)
            bb = actor.bounding_box
            T_actor_obj, center, size = box_in_object_frame(
                (bb.location.x, bb.location.y, bb.location.z),
                (bb.extent.x, bb.extent.y, bb.extent.z),
                (bb.rotation.pitch, bb.rotation.yaw, bb.rotation.roll),
            )
            c, z = tuple(float(v) for v in center), tuple(float(v) for v in size)
            info = ObjectInfo(
                instance_id=len(objects) + 1,
                uid=uid,
                category=category or "unlabeled",
                labeled=bool(labeled and category),
                bbox3d_center=c,  # type: ignore[arg-type]
                bbox3d_size=z,  # type: ignore[arg-type]
                asset=str(actor.type_id),
                model=(ModelPart(kind="box", position=c, size=z),),
            )
            record = {"actor_id": int(actor.id), "blueprint": str(actor.type_id), "semantic_tags": list(tags), **record}
            objects.append(_Object(info, actor, T_actor_obj, frozenset(tags), record))

        for member, actor, point in spawned:
            add(actor, member.uid, member.category, member.labeled, {"group": member.group, "spawn": point.as_dict()})
        add(ego, "ego", self.state.ego.category, self.state.ego.labeled, {"group": "ego", "spawn": ego_point.as_dict()})
        patterns = self.state.map_actors.blueprints
        near = self.state.map_actors.max_distance_m
        for actor in sorted(present, key=lambda a: int(a.id)):
            if not any(fnmatch.fnmatchcase(str(actor.type_id), p) for p in patterns):
                continue
            loc = actor.get_transform().location
            if math.dist((loc.x, loc.y, loc.z), centre) > near:
                continue
            add(actor, f"map/{int(actor.id)}", None, True, {"group": "map"})
        if len(objects) > 65535:
            raise BackendUnavailable(f"carla: {len(objects)} objects do not fit simgen's uint16 instance ids")
        return objects


def _groups(actors: Mapping[str, ActorState]) -> list[tuple[str, list[ActorState]]]:
    """Actors grouped by their group, in order of first appearance."""
    out: dict[str, list[ActorState]] = {}
    for actor in actors.values():
        out.setdefault(actor.group, []).append(actor)
    return list(out.items())
