"""Randomizers of CARLA scenes and views: they sample plain data and never touch a server.

* ``carla/scene-v1`` (scene): the whole ``scene["carla"]`` state from the spec's ``carla:`` section: the scene
  seed, actor counts, blueprint picks, vehicle colours, walker speeds, traffic-manager numbers.
* ``carla/camera-mount-v1`` (view): the ego camera rig of one view (mount jitter, field of view, ticks).
* ``carla/weather-v1`` (view): a named preset and/or any of the 14 weather fields as distributions.
* ``carla/time-of-day-v1`` (view): the sun's altitude and azimuth for an hour, latitude and day of the year.

A blueprint is drawn as a filter plus a number ``u`` in [0, 1): the backend takes the ``u``-th fraction of
the server's matching blueprints sorted by id, so the choice is replayable from the manifest and needs no
server to sample. :data:`RANDOMIZERS` lists the registry names and targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from simgen.backends.carla_spec import (
    ActorState,
    BlueprintChoice,
    BlueprintPick,
    CameraState,
    CarlaScene,
    CarlaSection,
    ColorChoice,
    ColorPick,
    EgoState,
    TrafficManagerState,
    blueprint_choices,
)
from simgen.backends.carla_weather import WEATHER_FIELDS, WEATHER_PRESETS, check_preset, sun_position
from simgen.errors import SpecError
from simgen.randomizers.base import Randomizer, RandomizerParams, SampleContext, Stage
from simgen.sampling import Bounds, Number, Scalar, sample, sample_int
from simgen.spec.errors import FieldProblem

#: Registry name -> ``"module:Class"``.
RANDOMIZERS: dict[str, str] = {
    "carla/scene-v1": "simgen.backends.carla_randomizers:CarlaSceneSampler",
    "carla/camera-mount-v1": "simgen.backends.carla_randomizers:CarlaCameraMount",
    "carla/weather-v1": "simgen.backends.carla_randomizers:CarlaWeather",
    "carla/time-of-day-v1": "simgen.backends.carla_randomizers:CarlaTimeOfDay",
}


def _section(ctx: SampleContext, name: str) -> CarlaSection:
    section = getattr(ctx.spec, "carla", None)
    if section is None:
        raise SpecError(f"{name} needs the spec's 'carla:' section (backend: carla)", path="carla")
    return section if isinstance(section, CarlaSection) else CarlaSection.model_validate(section)


def pick_blueprint(choices: list[BlueprintChoice], rng: np.random.Generator) -> BlueprintPick:
    """One weighted choice of filter, and the fraction ``u`` the backend resolves it with (always two draws)."""
    weights = np.asarray([c.weight for c in choices], dtype=float)
    k = int(rng.choice(len(choices), p=weights / weights.sum()))
    u = float(rng.uniform(0.0, 1.0))
    return BlueprintPick(filter=choices[k].filter, base_type=choices[k].base_type, u=u)


def pick_color(choice: ColorChoice, rng: np.random.Generator) -> ColorPick | None:
    """A vehicle colour: a recommended one (as a fraction), a random RGB, a fixed RGB, or None (always 4 draws)."""
    u = float(rng.uniform(0.0, 1.0))
    rgb = [int(c) for c in rng.integers(0, 256, size=3)]
    if choice == "recommended":
        return ColorPick(recommended_u=u)
    if choice == "random":
        return ColorPick(rgb=rgb)
    if isinstance(choice, list):
        return ColorPick(rgb=[int(c) for c in choice])
    return None


class CarlaSceneSampler(Randomizer):
    """The whole scene state ``scene["carla"]`` from the ``carla:`` section."""

    name: ClassVar[str] = "carla/scene-v1"
    stage: ClassVar[Stage] = "scene"
    reads: ClassVar[tuple[str, ...]] = ("carla",)

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"carla": CarlaScene as plain data}``."""
        section = _section(ctx, self.name)
        i = ctx.index
        seed = int(rng.integers(0, 2**32))
        ego_spec = section.ego
        ego = EgoState(
            blueprint=pick_blueprint(blueprint_choices([ego_spec.blueprint]), rng),
            color=pick_color(ego_spec.color, rng),
            autopilot=ego_spec.autopilot,
            labeled=ego_spec.labeled,
            category=ego_spec.category,
            spawn=ego_spec.spawn,
        )
        actors: dict[str, ActorState] = {}
        for group in section.actors:
            vehicle = group.kind == "vehicle"
            behaviour = group.walker
            for k in range(sample_int(group.count, rng, i)):
                uid = f"{group.name}/{k}"
                blueprint = pick_blueprint(group.choices(), rng)
                color = pick_color(group.color, rng)
                speed = float(sample(behaviour.speed_mps if behaviour else 1.4, rng, i))
                offset = None
                if group.place is not None:  # drawn only for placed groups: lane groups keep their draws
                    place = group.place
                    offset = [
                        float(sample(place.forward_m, rng, i)) + k * float(place.step_m),
                        float(sample(place.right_m, rng, i)),
                        float(sample(place.yaw_deg, rng, i)),
                        float(place.lift_m),
                    ]
                actors[uid] = ActorState(
                    uid=uid,
                    group=group.name,
                    kind=group.kind,
                    blueprint=blueprint,
                    color=color if vehicle else None,
                    category=group.category,
                    labeled=group.labeled,
                    tags=list(group.tags),
                    autopilot=vehicle and group.autopilot is not False,
                    walker_ai=not vehicle and (behaviour is None or behaviour.ai),
                    walker_speed_mps=None if vehicle else min(max(speed, 0.0), 10.0),
                    spawn=group.spawn,
                    offset=offset,
                )
        tm = section.traffic_manager
        tm_numbers = (float(sample(tm.distance_to_leading_m, rng, i)), float(sample(tm.speed_difference_pct, rng, i)))
        cross = float(sample(section.pedestrians_cross_factor, rng, i))
        ticks_per_view = sample_int(section.ego.camera.ticks_per_view, rng, i)  # one pace for the scene's views
        scene = CarlaScene(
            seed=seed,
            town=section.town,
            fixed_delta_seconds=section.fixed_delta_seconds,
            warmup_ticks=section.warmup_ticks,
            ticks_per_view=ticks_per_view,
            traffic_manager=TrafficManagerState(
                port=tm.port,
                hybrid_physics=tm.hybrid_physics,
                distance_to_leading_m=tm_numbers[0],
                speed_difference_pct=tm_numbers[1],
            ),
            pedestrians_cross_factor=cross,
            ego=ego,
            actors=actors,
            labels=section.labels,
            map_actors=section.map_actors,
        )
        return {"carla": scene.model_dump(mode="json")}


class CarlaCameraMount(Randomizer):
    """The ego camera rig of one view: the mount with Gaussian jitter, the field of view and the ticks before it."""

    name: ClassVar[str] = "carla/camera-mount-v1"
    stage: ClassVar[Stage] = "view"
    reads: ClassVar[tuple[str, ...]] = ("carla",)

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"carla": {"camera": CameraState, "ticks": n, "at_tick": t}}``.

        ``at_tick`` (when the scene state has its ``ticks_per_view``): view ``k`` of its scene is taken
        ``(k + 1) * ticks_per_view`` ticks after the scene settled.
        """
        cam = _section(ctx, self.name).ego.camera
        i = ctx.index
        loc_jitter = abs(float(sample(cam.location_jitter_m, rng, i)))
        rot_jitter = abs(float(sample(cam.rotation_jitter_deg, rng, i)))
        location = [float(sample(v, rng, i)) + loc_jitter * float(rng.normal()) for v in cam.location]
        rotation = [float(sample(v, rng, i)) + rot_jitter * float(rng.normal()) for v in cam.rotation]
        state = CameraState(
            width=cam.width,
            height=cam.height,
            fov_deg=float(sample(cam.fov_deg, rng, i)),
            location=location,
            rotation=rotation,
            sensor_timeout_s=cam.sensor_timeout_s,
        )
        ticks = sample_int(cam.ticks_per_view, rng, i)
        view: dict[str, Any] = {"camera": state.model_dump(mode="json"), "ticks": ticks}
        scene = ctx.state.get("carla") if isinstance(ctx.state, Mapping) else None
        per_scene = getattr(ctx.spec, "frames_per_scene", None)
        if isinstance(scene, Mapping) and "ticks_per_view" in scene and isinstance(per_scene, int):
            # View k of its scene is taken at an absolute tick, so a resumed run that renders it alone (after a
            # fresh build and settle) sees the world the first run saw.
            view["at_tick"] = (i % per_scene + 1) * int(scene["ticks_per_view"])
        return {"carla": view}


class WeatherParams(RandomizerParams):
    """Parameters of ``carla/weather-v1``."""

    preset: str | list[str] | None = Field(
        default=None, description=f"a preset name, or a list to choose from; one of {list(WEATHER_PRESETS)}"
    )
    preset_weights: list[Number] | None = None
    fields: dict[str, Scalar] = Field(
        default_factory=dict, description=f"any of the 14 fields ({', '.join(WEATHER_FIELDS)}), over the preset"
    )

    @model_validator(mode="after")
    def _known(self) -> WeatherParams:
        names = [self.preset] if isinstance(self.preset, str) else list(self.preset or [])
        for k, name in enumerate(names):
            try:
                check_preset(name)
            except ValueError as exc:
                raise FieldProblem(("preset",) if isinstance(self.preset, str) else ("preset", k), str(exc)) from None
        if self.preset_weights is not None:
            if not isinstance(self.preset, list) or len(self.preset_weights) != len(self.preset):
                raise FieldProblem(("preset_weights",), "give one weight per preset of the preset list")
            if min(self.preset_weights) < 0 or sum(self.preset_weights) <= 0:
                raise FieldProblem(("preset_weights",), "weights must be >= 0 with a positive sum")
        for name, value in self.fields.items():
            bounds = WEATHER_FIELDS.get(name)
            if bounds is None:
                from simgen.errors import did_you_mean

                raise FieldProblem(("fields", name), f"unknown weather field{did_you_mean(name, WEATHER_FIELDS)}")
            try:
                bounds.check(value)
            except ValueError as exc:
                raise FieldProblem(("fields", name), str(exc)) from None
        return self


class CarlaWeather(Randomizer):
    """A weather per view: a named preset (or a weighted choice of presets) and any fields drawn over it."""

    name: ClassVar[str] = "carla/weather-v1"
    stage: ClassVar[Stage] = "view"
    Params: ClassVar[type[RandomizerParams]] = WeatherParams
    example_params: ClassVar[dict[str, Any]] = {
        "preset": ["ClearNoon", "WetCloudySunset", "HardRainNight"],
        "fields": {"fog_density": {"kind": "uniform", "low": 0, "high": 40}},
    }

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"carla": {"weather": {"preset": name | None, "fields": {...}}}}``."""
        p: WeatherParams = self.params  # type: ignore[assignment]
        preset = p.preset
        if isinstance(preset, list):
            w = np.asarray(p.preset_weights or [1.0] * len(preset), dtype=float)
            preset = preset[int(rng.choice(len(preset), p=w / w.sum()))]
        fields = {}
        for name, value in p.fields.items():
            bounds: Bounds = WEATHER_FIELDS[name]
            fields[name] = min(max(float(sample(value, rng, ctx.index)), bounds.low), bounds.high)
        return {"carla": {"weather": {"preset": preset, "fields": fields}}}


class TimeOfDayParams(RandomizerParams):
    """Parameters of ``carla/time-of-day-v1``."""

    hour: Any = Field(default=12.0, description="local solar time in hours, [0, 24]")
    latitude_deg: Number = Field(default=41.4, ge=-90, le=90, description="CARLA's towns are modelled on Barcelona")
    day_of_year: Any = Field(default=172.0, description="1 to 366")
    north_azimuth_deg: Number = Field(
        default=0.0, ge=-360, le=360, description="added to the azimuth: where the town's north is for CARLA's sun"
    )

    @model_validator(mode="before")
    @classmethod
    def _distributions(cls, data: Any) -> Any:
        from simgen.sampling import parse_distribution

        if isinstance(data, dict):
            data = dict(data)
            for key, bounds in (("hour", Bounds(0, 24)), ("day_of_year", Bounds(1, 366))):
                if key in data:
                    try:
                        data[key] = bounds.check(parse_distribution(data[key]))
                    except ValueError as exc:
                        raise FieldProblem((key,), str(exc)) from None
        return data


class CarlaTimeOfDay(Randomizer):
    """The sun for an hour of the day: ``sun_altitude_angle`` and ``sun_azimuth_angle`` (negative altitude: night)."""

    name: ClassVar[str] = "carla/time-of-day-v1"
    stage: ClassVar[Stage] = "view"
    Params: ClassVar[type[RandomizerParams]] = TimeOfDayParams
    example_params: ClassVar[dict[str, Any]] = {"hour": {"kind": "uniform", "low": 0, "high": 24}}

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"carla": {"weather": {"fields": {sun altitude and azimuth}, "time_of_day": {...}}}}``."""
        p: TimeOfDayParams = self.params  # type: ignore[assignment]
        hour = min(max(float(sample(p.hour, rng, ctx.index)), 0.0), 24.0)
        day = min(max(float(sample(p.day_of_year, rng, ctx.index)), 1.0), 366.0)
        altitude, azimuth = sun_position(hour, p.latitude_deg, day)
        return {
            "carla": {
                "weather": {
                    "fields": {
                        "sun_altitude_angle": altitude,
                        "sun_azimuth_angle": (azimuth + p.north_azimuth_deg) % 360,
                    },
                    "time_of_day": {"hour": hour, "day_of_year": day, "latitude_deg": p.latitude_deg},
                }
            }
        }
