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
import os
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

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

if TYPE_CHECKING:
    from simgen.spec.loader import LoadedSpec

log = logging.getLogger(__name__)

#: Renderer names the backend accepts; CARLA renders with Unreal Engine whatever is asked. ``"fake"`` is the
#: FAKE test layer (:mod:`simgen.testing.fake_carla`), accepted only while :data:`FAKE_ENV` is set.
RENDERERS = ("auto", "unreal", "fake")
#: Test only: ``SIMGEN_FAKE_CARLA=<map.xodr>`` makes every CARLA backend of a run talk to FAKE in-process servers
#: (one per ``host:port``, the map built from that OpenDRIVE file) instead of real ones. The run's renderer is then
#: ``"fake"``, so dataset.json names it, and every backend logs a warning: it is never used silently.
FAKE_ENV = "SIMGEN_FAKE_CARLA"
#: Test only: a file where each FAKE connection appends ``"<pid> <worker> <host:port>"`` (which worker used which
#: server).
FAKE_LOG_ENV = "SIMGEN_FAKE_CARLA_LOG"
#: ``"host:port,host:port"``: the servers of a run, overriding the spec's ``carla.servers`` (``--carla-servers``).
#: Read in the main process and passed to every worker with the run's environment.
SERVERS_ENV = "SIMGEN_CARLA_SERVERS"
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


def parse_server_list(text: str, *, where: str) -> list[str]:
    """``"host:port,host:port"`` -> ``["host:port", ...]``.

    Raises:
        SpecError: An empty list, or an entry that is not ``host:port``, naming ``where`` it came from.
    """
    servers = [s.strip() for s in text.split(",") if s.strip()]
    if not servers:
        raise SpecError("expected 'host:port[,host:port...]', got nothing", path=where)
    for server in servers:
        try:
            parse_server(server)
        except ValueError as exc:
            raise SpecError(str(exc), path=where) from None
    return servers


@contextlib.contextmanager
def servers_override(servers: str | None) -> Iterator[list[str] | None]:
    """Run a block with :data:`SERVERS_ENV` set to ``servers`` (``--carla-servers``), restored afterwards.

    Raises:
        SpecError: ``servers`` is not ``host:port[,host:port...]``.
    """
    if servers is None:
        yield None
        return
    parsed = parse_server_list(servers, where="--carla-servers")
    before = os.environ.get(SERVERS_ENV)
    os.environ[SERVERS_ENV] = ",".join(parsed)
    try:
        yield parsed
    finally:
        if before is None:
            os.environ.pop(SERVERS_ENV, None)
        else:
            os.environ[SERVERS_ENV] = before


def preflight(
    spec: str | os.PathLike[str],
    *,
    workers: int,
    runner: str,
    asset_roots: Any = (),
    servers_given: bool = False,
    resolution_given: bool = False,
) -> list[str] | None:
    """Before a run of a spec or scenario file writes anything: reach every CARLA server it will use.

    Returns None for a spec of another backend. A local run of ``workers`` processes needs as many servers
    (a Ray run takes one shard per server at a time); every server must answer within ``carla.timeout_s``, so
    a run with no server fails in one line, with nothing written.

    Raises:
        SpecError: The spec is invalid, more local workers than servers, ``--carla-servers`` (``servers_given``)
            for a spec of another backend, or ``--resolution`` (``resolution_given``) for a CARLA spec (it rewrites
            PyBullet's ``camera``; the ego camera's size is ``carla.ego.camera.width``/``height``).
        BackendUnavailable: A server did not answer (naming ``host:port`` and how to start one).
    """
    from simgen.spec.loader import load_spec, read_spec_file

    raw = read_spec_file(spec)
    if raw.get("backend") != "carla":
        if servers_given:
            raise SpecError(f"--carla-servers applies to backend: carla specs; {spec} is backend: "
                            f"{raw.get('backend', 'pybullet')}", path="backend")  # fmt: skip
        return None
    if resolution_given:
        raise SpecError(
            "--resolution sets PyBullet's camera; for backend: carla set carla.ego.camera.width and height in the spec",
            path="carla.ego.camera",
        )
    from simgen.scenarios.engine import is_scenario

    if is_scenario(raw):
        from simgen.scenarios import load_scenario

        loaded = load_scenario(spec, asset_roots=asset_roots).base
    else:
        loaded = load_spec(spec, asset_roots=asset_roots)
    if runner == "local":
        CarlaBackend.worker_options(loaded, 0, workers)  # refuses more workers than servers
    return CarlaBackend.probe(loaded)


def _section_of(loaded: LoadedSpec) -> CarlaSection:
    section = loaded.spec.carla
    if section is None:  # the spec model refuses backend: carla without it; a spec given as another backend's
        raise SpecError("the carla backend needs the spec's 'carla:' section", path="carla")
    return section


def _fake_module() -> Any:
    """The FAKE carla module of this process (:data:`FAKE_ENV`), announced in the log every time."""
    from simgen.testing.fake_carla import fake_farm

    xodr = os.environ.get(FAKE_ENV, "")
    log.warning("carla backend: %s is set, so the CARLA servers are FAKE (simgen.testing.fake_carla, map %s)",
                FAKE_ENV, xodr)  # fmt: skip
    return fake_farm(xodr, log_path=os.environ.get(FAKE_LOG_ENV) or None)


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
    ticks: int = 0  # ticks rendered since settling


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
        self.renderer = type(self).resolve_renderer(renderer)
        self.config = config if isinstance(config, CarlaSection) else CarlaSection.model_validate(dict(config or {}))
        host, port = parse_server(server) if server else (self.config.host, self.config.port)
        if carla_module is None and self.renderer == "fake":
            carla_module = _fake_module()
        self._session = _Session(carla_module or import_carla(), host, port, self.config.timeout_s)
        self._tm_port = tm_port
        self._finalizer = weakref.finalize(self, self._session.close)
        self._built: _Built | None = None
        self._session.connect()

    # -- what the engine asks the class (see simgen.backends) ------------------------------------------------

    @classmethod
    def resolve_renderer(cls, requested: str) -> str:
        """``"unreal"`` (what a server renders with), or ``"fake"`` while :data:`FAKE_ENV` is set (tests).

        Raises:
            BackendUnavailable: An unknown renderer (with a "did you mean"), ``"fake"`` without :data:`FAKE_ENV`,
                or a real renderer asked for while :data:`FAKE_ENV` is set.
        """
        if requested not in RENDERERS:
            raise BackendUnavailable(
                f"the carla backend renders with Unreal Engine; renderer '{requested}' is not one of "
                f"{list(RENDERERS)}{did_you_mean(requested, RENDERERS)}"
            )
        fake = bool(os.environ.get(FAKE_ENV))
        if requested == "fake" and not fake:
            raise BackendUnavailable(
                f"renderer 'fake' is simgen's FAKE CARLA layer for tests; it runs only with {FAKE_ENV}=<map.xodr> set"
            )
        if requested == "unreal" and fake:
            raise BackendUnavailable(f"{FAKE_ENV} is set, so every CARLA server is FAKE; unset it to render with one")
        return "fake" if fake else "unreal"

    @classmethod
    def worker_env(cls, workers: int) -> dict[str, str]:
        """The run's server list and test settings, passed on to every worker (a Ray worker too)."""
        return {k: os.environ[k] for k in (SERVERS_ENV, FAKE_ENV, FAKE_LOG_ENV) if os.environ.get(k)}

    @classmethod
    def categories(cls, loaded: LoadedSpec) -> list[str]:
        """Every category the spec's actors can get, in a fixed order (ids = position + 1), before any server runs.

        The ego's and each group's own ``category`` (when labeled) come first, then the label rules' in rule
        order (map actors get theirs from the rules too), then ``labels.unmatched`` unless it is ``"skip"``.
        """
        section = _section_of(loaded)
        found: list[str] = []
        if section.ego.labeled and section.ego.category:
            found.append(section.ego.category)
        found += [g.category for g in section.actors if g.labeled and g.category]
        found += [rule.category for rule in section.labels.rules]
        if section.labels.unmatched != "skip":
            found.append(section.labels.unmatched)
        return list(dict.fromkeys(found))

    @classmethod
    def servers(cls, loaded: LoadedSpec) -> list[str]:
        """The run's servers as ``"host:port"``: :data:`SERVERS_ENV` if set, else ``carla.servers``, else host:port.

        Raises:
            SpecError: :data:`SERVERS_ENV` holds something that is not ``host:port``.
        """
        text = os.environ.get(SERVERS_ENV, "").strip()
        if text:
            return parse_server_list(text, where=SERVERS_ENV)
        return [f"{h}:{p}" for h, p in _section_of(loaded).server_list()]

    @classmethod
    def exclusive_slots(cls, loaded: LoadedSpec) -> int:
        """How many shards may run at once: one per server (a synchronous server obeys one client)."""
        return len(cls.servers(loaded))

    @classmethod
    def worker_options(cls, loaded: LoadedSpec, worker: int, workers: int) -> dict[str, Any]:
        """The keyword arguments of worker ``worker``'s backend: the section, server ``worker % n``, a TM port.

        Each worker on a machine gets its own traffic-manager port (``traffic_manager.port + worker``): a second
        process asking for a port joins the first one's traffic manager, and with it the first one's server.

        Raises:
            SpecError: More workers than servers: two clients cannot share a synchronous server.
        """
        servers = cls.servers(loaded)
        if workers > len(servers):
            raise SpecError(
                f"{workers} workers but {len(servers)} CARLA server(s): each worker needs a server of its own "
                "(a server in synchronous mode obeys one client); list more with --carla-servers host:port,... or "
                "carla.servers, or run fewer --workers",
                path="carla.servers",
            )
        section = _section_of(loaded)
        return {
            "config": section,
            "server": servers[worker % len(servers)],
            "tm_port": int(section.traffic_manager.port) + worker,
        }

    @classmethod
    def probe(cls, loaded: LoadedSpec) -> list[str]:
        """Connect to every server of the run at once and return them; nothing is spawned or changed.

        Raises:
            BackendUnavailable: The first server that did not answer within ``carla.timeout_s``, in one line.
            DependencyMissing: The ``carla`` client is not installed.
        """
        from concurrent.futures import ThreadPoolExecutor

        servers = cls.servers(loaded)
        section = _section_of(loaded)
        renderer = cls.resolve_renderer("auto")

        def reach(server: str) -> None:
            cls(renderer, config=section, server=server).close()

        with ThreadPoolExecutor(max_workers=min(len(servers), 16)) as pool:
            for future in [pool.submit(reach, s) for s in servers]:
                future.result()
        return servers

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
        """Tick (at least once) and return the ego cameras' frame-matched images.

        The view is taken at ``view["carla"]["at_tick"]`` ticks after the scene settled when given (a view the
        world has already passed gets one tick), else after ``view["carla"]["ticks"]`` more ticks.

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
            # An absolute tick makes a view independent of which views before it were rendered (a resume).
            n = max(1, state.ticks) if state.at_tick is None else max(1, state.at_tick - built.ticks)
            for _ in range(n):
                frame = int(session.world.tick(session.timeout_s))
            built.ticks += n
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
            got = self._spawn_group(group, members, ego_point)
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
        self, group: str, members: list[ActorState], ego_point: SpawnPoint
    ) -> list[tuple[ActorState, Any, SpawnPoint | None]]:
        first = members[0]
        lane_points: list[SpawnPoint] = []
        if first.offset is None:
            lane_points = self._points(group, first.kind, first.spawn, ego_point.location, limit=4 * len(members) + 16)
        points = iter(lane_points)
        out: list[tuple[ActorState, Any, SpawnPoint | None]] = []
        for member in members:
            bp = self._blueprint(member.blueprint, member.color, f"carla.actors[{group}].blueprints")
            actor, where = None, None
            if member.offset is not None:  # placed relative to the ego: that one point, or missing
                point = ego_relative(ego_point, *member.offset, ego_lift_m=self.state.ego.spawn.lift_m)
                actor = self._try_spawn(bp, point)
                out.append((member, actor, point if actor is not None else None))
                continue
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


def ego_relative(
    ego: SpawnPoint, forward_m: float, right_m: float, yaw_deg: float, lift_m: float, *, ego_lift_m: float
) -> SpawnPoint:
    """The point ``forward_m`` ahead of and ``right_m`` to the right of the ego's spawn point, turned ``yaw_deg``.

    Its height is the ego's lane (its spawn point less ``ego_lift_m``) plus ``lift_m``.

    CARLA's world is left-handed (x forward, y right, z up; yaw turns x towards y), so with the ego's yaw
    ``a`` its forward axis is ``(cos a, sin a)`` and its right axis ``(-sin a, cos a)``.
    """
    a = math.radians(ego.rotation[1])
    x = ego.location[0] + forward_m * math.cos(a) - right_m * math.sin(a)
    y = ego.location[1] + forward_m * math.sin(a) + right_m * math.cos(a)
    z = ego.location[2] - ego_lift_m + lift_m
    yaw = (ego.rotation[1] + yaw_deg + 180.0) % 360.0 - 180.0
    return SpawnPoint((x, y, z), (0.0, yaw, 0.0), -1, -1, 0, 0.0, "EgoRelative", 0.0)


def _groups(actors: Mapping[str, ActorState]) -> list[tuple[str, list[ActorState]]]:
    """Actors grouped by their group, in order of first appearance."""
    out: dict[str, list[ActorState]] = {}
    for actor in actors.values():
        out.setdefault(actor.group, []).append(actor)
    return list(out.items())
