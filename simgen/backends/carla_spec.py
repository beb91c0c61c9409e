"""Pydantic models of the ``carla:`` spec section, and of the plain scene and view state the CARLA backend applies.

Two layers, as for PyBullet:

* :class:`CarlaSection` is what a person writes under ``carla:``: the server, the world settings, the ego
  vehicle and its camera mount, actor groups, the label mapping. Numbers may be distributions
  (:mod:`simgen.sampling`).
* :class:`CarlaScene` and :class:`CarlaView` are the *sampled* state (plain numbers) that the randomizers of
  :mod:`simgen.backends.carla_randomizers` produce and :class:`~simgen.backends.carla.CarlaBackend` applies:
  ``scene["carla"]`` and ``view["carla"]``.

Everything is validated without the ``carla`` package: the names of lane types, semantic tags and weather
presets are written out here (a test checks them against the installed client).

Frames in this section are CARLA's own (x forward, y right, z up, rotations ``[pitch, yaw, roll]`` in
degrees), because users copy them from CARLA's docs and tools; the backend converts to simgen's frames.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from simgen.backends.carla_weather import WEATHER_FIELDS, check_preset, check_weather_fields
from simgen.errors import did_you_mean
from simgen.sampling import Bounds, Integer, IntScalar, Number, Scalar, integral, support
from simgen.spec.errors import FieldProblem

#: ``carla.LaneType`` names a spawn region may ask for (``NONE`` and ``Any`` are not lanes).
LANE_TYPES: tuple[str, ...] = (
    "Driving", "Stop", "Shoulder", "Biking", "Sidewalk", "Border", "Restricted", "Parking", "Bidirectional",
    "Median", "Special1", "Special2", "Special3", "RoadWorks", "Tram", "Rail", "Entry", "Exit", "OffRamp", "OnRamp",
)  # fmt: skip

#: ``carla.CityObjectLabel`` of the 0.9.14-0.9.16 servers (the R channel of the instance camera).
SEMANTIC_TAGS: dict[str, int] = {
    "NONE": 0, "Roads": 1, "Sidewalks": 2, "Buildings": 3, "Walls": 4, "Fences": 5, "Poles": 6, "TrafficLight": 7,
    "TrafficSigns": 8, "Vegetation": 9, "Terrain": 10, "Sky": 11, "Pedestrians": 12, "Rider": 13, "Car": 14,
    "Truck": 15, "Bus": 16, "Train": 17, "Motorcycle": 18, "Bicycle": 19, "Static": 20, "Dynamic": 21, "Other": 22,
    "Water": 23, "RoadLines": 24, "Ground": 25, "Bridge": 26, "RailTrack": 27, "GuardRail": 28,
}  # fmt: skip

#: Semantic tags of things a perception dataset labels; pixels with these tags but no known actor are counted.
OBJECT_TAGS: frozenset[int] = frozenset(
    SEMANTIC_TAGS[n]
    for n in ("Pedestrians", "Rider", "Car", "Truck", "Bus", "Motorcycle", "Bicycle", "TrafficLight", "TrafficSigns")
)

#: Default label mapping, first match wins: the actor's semantic tags decide (a bicycle's rider is part of it).
DEFAULT_CATEGORY_RULES: tuple[dict[str, str], ...] = (
    {"semantic_tag": "Car", "category": "car"},
    {"semantic_tag": "Truck", "category": "truck"},
    {"semantic_tag": "Bus", "category": "bus"},
    {"semantic_tag": "Motorcycle", "category": "motorcycle"},
    {"semantic_tag": "Bicycle", "category": "bicycle"},
    {"semantic_tag": "Pedestrians", "category": "pedestrian"},
    {"semantic_tag": "TrafficLight", "category": "traffic light"},
    {"semantic_tag": "TrafficSigns", "category": "traffic sign"},
)

#: Map actors labeled by default: traffic lights and signs (they are actors, with ids in the instance image).
DEFAULT_MAP_ACTORS: tuple[str, ...] = (
    "traffic.traffic_light",
    "traffic.stop",
    "traffic.yield",
    "traffic.speed_limit.*",
)

#: How to start a server, quoted by every connection error.
SERVER_HINT = (
    "start one with `docker run -d --rm --gpus all --net=host carlasim/carla:0.9.16 bash CarlaUE4.sh -RenderOffScreen "
    "-nosound` (see docs/carla.md), or point carla.host/carla.port or --carla-servers at one"
)

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$", max_length=100)]
Label = Annotated[str, Field(min_length=1, max_length=200)]
Tag = Annotated[str, Field(min_length=1, max_length=100)]
Pattern = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.*?\[\]\-]+$")]
Port = Annotated[Integer, Field(ge=1, le=65535)]
Metres = Annotated[Number, Field(ge=0, le=1e4)]


def _choice(options: tuple[str, ...], what: str) -> AfterValidator:
    def check(v: str) -> str:
        if v not in options:
            raise ValueError(f"unknown {what} '{v}'{did_you_mean(v, options)}; expected one of {list(options)}")
        return v

    return AfterValidator(check)


LaneTypeName = Annotated[str, _choice(LANE_TYPES, "lane type")]
SemanticTagName = Annotated[str, _choice(tuple(SEMANTIC_TAGS), "semantic tag")]


def parse_server(text: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``; IPv6 hosts go in brackets (``"[::1]:2000"``).

    Raises:
        ValueError: No port, a port outside 1..65535, or an empty host.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected 'host:port', got '{text}'")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be in 1..65535, got {port} in '{text}'")
    return host.strip("[]"), int(port)


def _server(v: str) -> str:
    parse_server(v)
    return v


Server = Annotated[str, Field(min_length=3, max_length=300), AfterValidator(_server)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=False, strict=True, allow_inf_nan=False)


def _vec3(bounds: Bounds, what: str) -> Any:
    def check(v: list[Any]) -> list[Any]:
        if len(v) != 3:
            raise ValueError(f"expected 3 values {what}, not {len(v)}")
        return v

    return Annotated[
        list[Annotated[Scalar, bounds]], AfterValidator(check), Field(json_schema_extra={"minItems": 3, "maxItems": 3})
    ]


Vec3Position = _vec3(Bounds(-1e4, 1e4), "[x, y, z] (metres)")
Vec3Rotation = _vec3(Bounds(-360, 360), "[pitch, yaw, roll] (degrees)")


def _rgb255(v: list[int]) -> list[int]:
    if len(v) != 3 or not all(0 <= c <= 255 for c in v):
        raise ValueError(f"expected [r, g, b] with each channel in 0..255, got {v}")
    return v


RGB255 = Annotated[list[Integer], AfterValidator(_rgb255)]
#: A vehicle colour: ``"recommended"`` (one of the blueprint's recommended colours), ``"random"`` (any RGB),
#: a fixed ``[r, g, b]`` (0..255), or None (the blueprint's default).
ColorChoice = Literal["recommended", "random"] | RGB255 | None


class BlueprintChoice(_Model):
    """Blueprints matching a filter (CARLA's wildcard on ids and tags), optionally of one ``base_type``."""

    filter: Pattern = Field(description="CARLA blueprint filter, e.g. 'vehicle.*' or 'walker.pedestrian.*'")
    base_type: Annotated[str, Field(min_length=1, max_length=50)] | None = Field(
        default=None, description="only blueprints whose 'base_type' attribute is this (car, truck, van, bus, ...)"
    )
    weight: Annotated[Number, Field(ge=0, le=1e6)] = 1.0


BlueprintRef = Pattern | BlueprintChoice


def blueprint_choices(refs: list[BlueprintRef]) -> list[BlueprintChoice]:
    """Every entry as a :class:`BlueprintChoice` (a bare string is a filter of weight 1)."""
    return [r if isinstance(r, BlueprintChoice) else BlueprintChoice(filter=r) for r in refs]


class LaneSpawn(_Model):
    """Lane-aware spawn points: waypoints sampled along the map's lanes (see :mod:`simgen.backends.carla_spawn`)."""

    lane_types: list[LaneTypeName] | None = Field(
        default=None, description="lane types to spawn on; default ['Driving'] for vehicles, ['Sidewalk'] for walkers"
    )
    spacing_m: Annotated[Number, Field(ge=0.5, le=100)] = Field(default=2.0, description="waypoint spacing along lanes")
    min_separation_m: Metres | None = Field(
        default=None, description="minimum distance between spawned actors; default 8 m (vehicles), 1.5 m (walkers)"
    )
    max_distance_m: Annotated[Number, Field(gt=0, le=1e5)] | None = Field(
        default=None, description="only points this close to the ego's spawn point (the ego itself: no limit)"
    )
    roads: list[Annotated[Integer, Field(ge=0, le=2**31 - 1)]] | None = Field(
        default=None, description="only these OpenDRIVE road ids"
    )
    junctions: bool = Field(default=False, description="also spawn inside junctions")
    lift_m: Annotated[Number, Field(ge=0, le=5)] = Field(
        default=0.3, description="spawn this far above the lane, so the actor drops onto it instead of into it"
    )


class EgoOffset(_Model):
    """A place relative to the ego's spawn point, in the ego's frame (x forward, y right, CARLA's axes).

    For scripted situations the lanes alone cannot make: a vehicle parked just ahead, a pedestrian behind it, a
    car in the next lane angled into the ego's. The ego's spawn point is on a lane, so small offsets stay on the
    road; a point where the server refuses to spawn (a wall) leaves the actor ``missing``.
    """

    forward_m: Annotated[Scalar, Bounds(-1000, 1000)] = Field(default=10.0, description="ahead of the ego")
    right_m: Annotated[Scalar, Bounds(-1000, 1000)] = Field(default=0.0, description="to the ego's right")
    yaw_deg: Annotated[Scalar, Bounds(-360, 360)] = Field(
        default=0.0, description="heading relative to the ego's (positive: turning right)"
    )
    step_m: Annotated[Number, Field(ge=-100, le=100)] = Field(
        default=0.0, description="each next actor of the group this much further ahead"
    )
    lift_m: Annotated[Number, Field(ge=0, le=5)] = Field(default=0.3, description="spawn this far above the ground")


class WalkerBehaviour(_Model):
    """A walker's AI controller: walks to random navigable points at a sampled speed."""

    ai: bool = True
    speed_mps: Annotated[Scalar, Bounds(0, 10)] = 1.4


class ActorGroup(_Model):
    """Vehicles or walkers chosen by blueprint filters, spawned on lanes, driven by the traffic manager or AI."""

    name: Name
    kind: Literal["vehicle", "walker"]
    blueprints: list[BlueprintRef] | None = Field(
        default=None, max_length=1000, description="default ['vehicle.*'] or ['walker.pedestrian.*']"
    )
    count: Annotated[IntScalar, Bounds(0, 10000, integer=True)] = 1
    spawn: LaneSpawn = Field(default_factory=LaneSpawn)
    place: EgoOffset | None = Field(
        default=None, description="spawn relative to the ego (scripted situations) instead of on lane spawn points"
    )
    autopilot: bool | None = Field(default=None, description="vehicles: traffic manager autopilot (default true)")
    walker: WalkerBehaviour | None = Field(default=None, description="walkers: AI controller (default on)")
    color: ColorChoice = Field(default="recommended", description="vehicles whose blueprint has a 'color' attribute")
    category: Label | None = Field(default=None, description="overrides the label mapping for the whole group")
    labeled: bool = True
    tags: list[Tag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _kind_fields(self) -> ActorGroup:
        if self.kind == "walker" and self.autopilot:
            raise FieldProblem(("autopilot",), "walkers have no autopilot; use walker: {ai: true}")
        if self.kind == "vehicle" and self.walker is not None:
            raise FieldProblem(("walker",), "walker settings apply to kind: walker only")
        if self.place is not None and "spawn" in self.model_fields_set:
            raise FieldProblem(("place",), "give spawn (lane spawn points) or place (relative to the ego), not both")
        if self.blueprints is not None:
            if not self.blueprints:
                raise FieldProblem(("blueprints",), "give at least one blueprint filter (or leave it out)")
            if sum(b.weight for b in blueprint_choices(self.blueprints)) <= 0:
                raise FieldProblem(("blueprints",), "every blueprint weight is 0: at least one must be > 0")
        return self

    def choices(self) -> list[BlueprintChoice]:
        """The blueprint choices, with the kind's default when none were given."""
        default = "vehicle.*" if self.kind == "vehicle" else "walker.pedestrian.*"
        return blueprint_choices(self.blueprints or [default])


class CameraMount(_Model):
    """The camera rig on the ego: RGB, depth and instance cameras share this mount and these intrinsics."""

    location: Vec3Position = Field(
        default_factory=lambda: [1.5, 0.0, 2.4], description="metres in the ego's frame (x forward, y right, z up)"
    )
    rotation: Vec3Rotation = Field(default_factory=lambda: [0.0, 0.0, 0.0], description="[pitch, yaw, roll], degrees")
    location_jitter_m: Annotated[Scalar, Bounds(0, 10)] = Field(
        default=0.0, description="std of a Gaussian offset per axis, per view"
    )
    rotation_jitter_deg: Annotated[Scalar, Bounds(0, 90)] = Field(
        default=0.0, description="std of a Gaussian offset of pitch, yaw and roll, per view"
    )
    width: Annotated[Integer, Field(gt=0, le=8192)] = 640
    height: Annotated[Integer, Field(gt=0, le=8192)] = 480
    fov_deg: Annotated[Scalar, Bounds(0.01, 179.99)] = Field(
        default=90.0, description="HORIZONTAL field of view in degrees (CARLA's 'fov'), [0.01, 179.99]"
    )
    ticks_per_view: Annotated[IntScalar, Bounds(0, 100000, integer=True)] = Field(
        default=10, description="simulation ticks between two views of a scene (traffic moves on)"
    )
    sensor_timeout_s: Annotated[Number, Field(gt=0, le=600)] = Field(
        default=10.0, description="how long to wait for the images of a tick"
    )


class Ego(_Model):
    """The ego vehicle: it carries the cameras; unlabeled unless asked."""

    blueprint: BlueprintRef = "vehicle.lincoln.mkz_2020"
    spawn: LaneSpawn = Field(default_factory=LaneSpawn)
    autopilot: bool = True
    color: ColorChoice = "recommended"
    labeled: bool = False
    category: Label | None = None
    camera: CameraMount = Field(default_factory=CameraMount)


class CategoryRule(_Model):
    """``category`` for actors matching every given matcher (blueprint wildcard, base_type, semantic tag)."""

    category: Label
    blueprint: Pattern | None = Field(default=None, description="fnmatch pattern on the blueprint id")
    base_type: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    semantic_tag: SemanticTagName | None = Field(default=None, description="one of the actor's semantic tags")

    @model_validator(mode="after")
    def _some_matcher(self) -> CategoryRule:
        if self.blueprint is None and self.base_type is None and self.semantic_tag is None:
            raise FieldProblem(("category",), "a rule needs at least one of blueprint, base_type, semantic_tag")
        return self

    def matches(self, blueprint: str, base_type: str | None, tags: tuple[int, ...]) -> bool:
        """Whether an actor with this blueprint id, base_type attribute and semantic tags matches."""
        if self.blueprint is not None and not fnmatch.fnmatchcase(blueprint, self.blueprint):
            return False
        if self.base_type is not None and base_type != self.base_type:
            return False
        return self.semantic_tag is None or SEMANTIC_TAGS[self.semantic_tag] in tags


class LabelMapping(_Model):
    """Category of each actor: the first matching rule; a group's own ``category`` overrides it."""

    rules: list[CategoryRule] = Field(
        default_factory=lambda: [CategoryRule(**r) for r in DEFAULT_CATEGORY_RULES], max_length=1000
    )
    unmatched: Literal["skip"] | Label = Field(
        default="skip",
        description="'skip': an actor no rule matches is not labeled (it still occludes); else its category",
    )
    check_tags: bool = Field(
        default=True,
        description="a pixel counts for an actor only if its tag (R) is one of the actor's semantic tags",
    )

    def category(self, blueprint: str, base_type: str | None, tags: tuple[int, ...]) -> str | None:
        """The category of an actor, or None when no rule matches and ``unmatched`` is ``"skip"``."""
        for rule in self.rules:
            if rule.matches(blueprint, base_type, tags):
                return rule.category
        return None if self.unmatched == "skip" else self.unmatched


class MapActors(_Model):
    """Actors the map itself holds (traffic lights and signs) that are labeled too."""

    blueprints: list[Pattern] = Field(default_factory=lambda: list(DEFAULT_MAP_ACTORS), max_length=100)
    max_distance_m: Annotated[Number, Field(gt=0, le=1e5)] = Field(
        default=150.0, description="only those this close to the ego when the scene is built"
    )


class TrafficManager(_Model):
    """The traffic manager: synchronous, seeded per scene by the backend."""

    port: Port = 8000
    hybrid_physics: bool = False
    distance_to_leading_m: Annotated[Scalar, Bounds(0, 100)] = 2.5
    speed_difference_pct: Annotated[Scalar, Bounds(-100, 100)] = Field(
        default=30.0, description="percent below the speed limit (negative: above)"
    )


class CarlaSection(_Model):
    """The ``carla:`` section of a scene spec."""

    host: Annotated[str, Field(min_length=1, max_length=255)] = "127.0.0.1"
    port: Port = 2000
    timeout_s: Annotated[Number, Field(gt=0, le=600)] = Field(
        default=10.0, description="client timeout: connecting and every server call"
    )
    servers: list[Server] = Field(
        default_factory=list, max_length=4096, description="'host:port' per server; worker k uses servers[k % n]"
    )
    town: Annotated[str, Field(pattern=r"^[A-Za-z0-9_/]+$", max_length=200)] | None = Field(
        default=None, description="e.g. Town10HD_Opt; None keeps the server's current map"
    )
    fixed_delta_seconds: Annotated[Number, Field(gt=0, le=0.1)] = Field(
        default=0.05, description="synchronous step, (0, 0.1] s (physics substepping allows at most 0.1 s)"
    )
    warmup_ticks: Annotated[Integer, Field(ge=0, le=100000)] = Field(
        default=20, description="ticks after spawning, before the first view (actors land, traffic starts)"
    )
    traffic_manager: TrafficManager = Field(default_factory=TrafficManager)
    pedestrians_cross_factor: Annotated[Scalar, Bounds(0, 1)] = Field(
        default=0.0, description="fraction of walkers that may cross roads"
    )
    ego: Ego = Field(default_factory=Ego)
    actors: list[ActorGroup] = Field(default_factory=list, max_length=256)
    labels: LabelMapping = Field(default_factory=LabelMapping)
    map_actors: MapActors = Field(default_factory=MapActors)

    @model_validator(mode="after")
    def _unique_groups(self) -> CarlaSection:
        seen: set[str] = set()
        for i, group in enumerate(self.actors):
            if group.name in seen or group.name == "ego":
                why = "'ego' names the ego vehicle" if group.name == "ego" else "group names must be unique"
                raise FieldProblem(("actors", i, "name"), f"name '{group.name}' is taken: {why}")
            seen.add(group.name)
        return self

    @model_validator(mode="after")
    def _fits_instance_ids(self) -> CarlaSection:
        total = 0
        for group in self.actors:
            found = support(group.count)
            total += max(0, math.floor(found[1] + 0.5)) if found else 0
        if total > 60000:  # leave room for the ego and the map's traffic lights and signs in uint16 ids
            raise FieldProblem(
                ("actors",), f"the groups may spawn up to {total} actors; at most 60000 fit the instance ids"
            )
        return self

    def server_list(self) -> list[tuple[str, int]]:
        """Every server as ``(host, port)``: ``servers`` when given, else ``host:port``."""
        return [parse_server(s) for s in self.servers] or [(self.host, self.port)]

    def server_for_worker(self, worker: int) -> tuple[str, int]:
        """The server of worker ``worker`` (0-based): servers are assigned round-robin."""
        servers = self.server_list()
        return servers[worker % len(servers)]


# ------------------------------------------------------------------------------------------------------------
# The sampled state the backend applies: plain numbers only.
# ------------------------------------------------------------------------------------------------------------


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


Unit = Annotated[float, Field(ge=0.0, lt=1.0)]


class BlueprintPick(_State):
    """Which blueprint to spawn: the ``u``-th fraction of the filter's matches, sorted by id."""

    filter: str
    base_type: str | None = None
    u: Unit


class ColorPick(_State):
    """A vehicle colour: a fixed ``rgb``, or the ``u``-th fraction of the blueprint's recommended colours."""

    rgb: RGB255 | None = None
    recommended_u: Unit | None = None


class ActorState(_State):
    """One actor to spawn (an entry of ``scene["carla"]["actors"]``, keyed by its uid ``"<group>/<k>"``)."""

    uid: str
    group: str
    kind: Literal["vehicle", "walker"]
    blueprint: BlueprintPick
    color: ColorPick | None = None
    category: str | None = None
    labeled: bool = True
    tags: list[str] = Field(default_factory=list)
    autopilot: bool = False
    walker_ai: bool = False
    walker_speed_mps: Annotated[float, Field(ge=0, le=10)] | None = None
    spawn: LaneSpawn = Field(default_factory=LaneSpawn)
    offset: Annotated[list[float], Field(min_length=4, max_length=4)] | None = Field(
        default=None, description="[forward_m, right_m, yaw_deg, lift_m] from the ego's spawn point, else lane spawn"
    )


class EgoState(_State):
    """The ego vehicle to spawn."""

    blueprint: BlueprintPick
    color: ColorPick | None = None
    autopilot: bool = True
    labeled: bool = False
    category: str | None = None
    spawn: LaneSpawn = Field(default_factory=LaneSpawn)


def _weather_fields(v: dict[str, float]) -> dict[str, float]:
    check_weather_fields(v)
    return v


def _preset(v: str | None) -> str | None:
    return None if v is None else check_preset(v)


class WeatherState(_State):
    """A weather to apply: a preset's values (or the class defaults), then ``fields`` over them."""

    preset: Annotated[str | None, AfterValidator(_preset)] = None
    fields: Annotated[dict[str, float], AfterValidator(_weather_fields)] = Field(default_factory=dict)
    time_of_day: dict[str, float] | None = Field(default=None, description="what the sun was computed from")


class TrafficManagerState(_State):
    """Traffic manager settings with every number drawn."""

    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    hybrid_physics: bool = False
    distance_to_leading_m: Annotated[float, Field(ge=0, le=100)] = 2.5
    speed_difference_pct: Annotated[float, Field(ge=-100, le=100)] = 30.0


class CarlaScene(_State):
    """``scene["carla"]``: everything the backend needs to build one scene."""

    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = Field(
        description="scene entropy: spawn sampling, traffic manager and pedestrian seeds derive from it"
    )
    town: str | None = None
    fixed_delta_seconds: Annotated[float, Field(gt=0, le=0.1)] = 0.05
    warmup_ticks: Annotated[int, Field(ge=0, le=100000)] = 20
    ticks_per_view: Annotated[int, Field(ge=0, le=100000)] = Field(
        default=10, description="view k of the scene is taken (k + 1) x this many ticks after settling"
    )
    traffic_manager: TrafficManagerState = Field(default_factory=TrafficManagerState)
    pedestrians_cross_factor: Annotated[float, Field(ge=0, le=1)] = 0.0
    ego: EgoState
    actors: dict[str, ActorState] = Field(default_factory=dict)
    weather: WeatherState | None = None
    labels: LabelMapping = Field(default_factory=LabelMapping)
    map_actors: MapActors = Field(default_factory=MapActors)

    @model_validator(mode="after")
    def _uids(self) -> CarlaScene:
        for key, actor in self.actors.items():
            if actor.uid != key:
                raise FieldProblem(("actors", key, "uid"), f"uid '{actor.uid}' differs from its key '{key}'")
        return self


class CameraState(_State):
    """The camera rig of one view, every number drawn."""

    width: Annotated[int, Field(gt=0, le=8192)] = 640
    height: Annotated[int, Field(gt=0, le=8192)] = 480
    fov_deg: Annotated[float, Field(gt=0, lt=180)] = 90.0
    location: Annotated[list[float], Field(min_length=3, max_length=3)] = Field(default_factory=lambda: [1.5, 0.0, 2.4])
    rotation: Annotated[list[float], Field(min_length=3, max_length=3)] = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    sensor_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0


class CarlaView(_State):
    """``view["carla"]``: one view of a built scene."""

    camera: CameraState = Field(default_factory=CameraState)
    ticks: Annotated[int, BeforeValidator(integral), Field(ge=0, le=100000)] = Field(
        default=1, description="ticks before this view's images (at least one tick always runs)"
    )
    at_tick: Annotated[int, Field(ge=0, le=10**9)] | None = Field(
        default=None,
        description="ticks since the scene settled at which this view is taken (replaces ticks): the backend ticks "
        "up to it, at least once, so a view renders the same world whether or not the views before it were rendered "
        "(a resumed run redoes single frames)",
    )
    weather: WeatherState | None = None


__all__ = [
    "DEFAULT_CATEGORY_RULES",
    "DEFAULT_MAP_ACTORS",
    "LANE_TYPES",
    "OBJECT_TAGS",
    "SEMANTIC_TAGS",
    "SERVER_HINT",
    "WEATHER_FIELDS",
    "ActorGroup",
    "ActorState",
    "BlueprintChoice",
    "BlueprintPick",
    "CameraMount",
    "CameraState",
    "CarlaScene",
    "CarlaSection",
    "CarlaView",
    "CategoryRule",
    "ColorPick",
    "Ego",
    "EgoOffset",
    "EgoState",
    "LabelMapping",
    "LaneSpawn",
    "MapActors",
    "TrafficManager",
    "TrafficManagerState",
    "WalkerBehaviour",
    "WeatherState",
    "blueprint_choices",
    "parse_server",
]
