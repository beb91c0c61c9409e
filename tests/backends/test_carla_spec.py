"""The ``carla:`` spec section, the sampled scene and view state, and the scene and camera randomizers."""

from __future__ import annotations

import importlib.util
import json
import types

import pytest
from pydantic import ValidationError

from simgen.backends.carla_randomizers import RANDOMIZERS, CarlaCameraMount, CarlaSceneSampler
from simgen.backends.carla_spec import (
    LANE_TYPES,
    SEMANTIC_TAGS,
    CarlaScene,
    CarlaSection,
    CarlaView,
    LabelMapping,
    parse_server,
)
from simgen.errors import SpecError
from simgen.randomizers.base import SampleContext
from simgen.registry import Registry
from simgen.sampling import rng_for
from simgen.spec.errors import spec_error_from_validation
from simgen.testing import check_randomizer

SECTION = {
    "host": "10.0.0.5",
    "port": 2000,
    "servers": ["10.0.0.5:2000", "10.0.0.6:2000", "[::1]:2003"],
    "town": "Town10HD_Opt",
    "fixed_delta_seconds": 0.05,
    "ego": {"blueprint": "vehicle.lincoln.mkz_2020", "camera": {"width": 64, "height": 48, "location_jitter_m": 0.05}},
    "actors": [
        {"name": "cars", "kind": "vehicle", "count": {"kind": "intrange", "low": 2, "high": 6},
         "blueprints": [{"filter": "vehicle.*", "base_type": "car", "weight": 3}, "vehicle.carlamotors.*"],
         "spawn": {"max_distance_m": 80}},
        {"name": "people", "kind": "walker", "count": 3, "walker": {"speed_mps": {"kind": "uniform", "low": 1, "high": 2}},
         "category": "pedestrian"},
    ],
}  # fmt: skip


def _error(data: dict) -> str:
    with pytest.raises(ValidationError) as err:
        CarlaSection.model_validate(data)
    return str(spec_error_from_validation(err.value, CarlaSection, None))


def _ctx(section: CarlaSection, index: int = 0) -> SampleContext:
    return SampleContext(spec=types.SimpleNamespace(carla=section), index=index)  # type: ignore[arg-type]


def test_section_round_trips_and_lists_servers() -> None:
    section = CarlaSection.model_validate(SECTION)
    assert section.model_dump(mode="json", exclude_unset=True) == SECTION
    assert section.server_list() == [("10.0.0.5", 2000), ("10.0.0.6", 2000), ("::1", 2003)]
    assert section.server_for_worker(4) == ("10.0.0.6", 2000)
    assert CarlaSection().server_list() == [("127.0.0.1", 2000)]
    assert parse_server("carla-3.farm:2000") == ("carla-3.farm", 2000)


@pytest.mark.parametrize(
    ("patch", "where", "what"),
    [
        ({"servers": ["10.0.0.5"]}, "servers[0]", "host:port"),
        ({"servers": ["h:70000"]}, "servers[0]", "1..65535"),
        ({"fixed_delta_seconds": 0.5}, "fixed_delta_seconds", "0.1"),
        ({"actors": [{"name": "a", "kind": "walker", "autopilot": True}]}, "actors[0].autopilot", "walkers have no autopilot"),
        ({"actors": [{"name": "a", "kind": "vehicle", "spawn": {"lane_types": ["Sidwalk"]}}]},
         "actors[0].spawn.lane_types[0]", "did you mean 'Sidewalk'"),
        ({"actors": [{"name": "a", "kind": "vehicle"}, {"name": "a", "kind": "walker"}]}, "actors[1].name", "unique"),
        ({"actors": [{"name": "ego", "kind": "vehicle"}]}, "actors[0].name", "'ego' names the ego vehicle"),
        ({"labels": {"rules": [{"category": "car", "semantic_tag": "Cars"}]}}, "labels.rules[0].semantic_tag",
         "did you mean 'Car'"),
        ({"labels": {"rules": [{"category": "car"}]}}, "labels.rules[0].category", "at least one of"),
        ({"ego": {"camera": {"fov_deg": 180}}}, "ego.camera.fov_deg", "[0.01, 179.99]"),
        ({"ego": {"camera": {"color": 1}}}, "ego.camera.color", ""),
        ({"actors": [{"name": "a", "kind": "vehicle", "count": 70000}]}, "actors[0].count", "10000"),
    ],
)  # fmt: skip
def test_section_errors_name_the_field(patch: dict, where: str, what: str) -> None:
    text = _error(patch)
    assert where in text
    assert what in text


def test_default_label_mapping_covers_the_perception_classes() -> None:
    labels = LabelMapping()
    cat = labels.category
    assert cat("vehicle.tesla.model3", "car", (14,)) == "car"
    assert cat("vehicle.carlamotors.carlacola", "truck", (15,)) == "truck"
    assert cat("vehicle.mitsubishi.fusorosa", "bus", (16,)) == "bus"
    assert cat("vehicle.yamaha.yzf", "motorcycle", (13, 18)) == "motorcycle"  # the rider is part of it
    assert cat("vehicle.diamondback.century", "bicycle", (19, 13)) == "bicycle"
    assert cat("walker.pedestrian.0001", None, (12,)) == "pedestrian"
    assert cat("traffic.traffic_light", None, (7,)) == "traffic light"
    assert cat("traffic.stop", None, (8,)) == "traffic sign"
    assert cat("static.prop.bin", None, (20,)) is None
    custom = LabelMapping.model_validate(
        {"rules": [{"blueprint": "vehicle.*ambulance*", "category": "emergency"}, {"semantic_tag": "Car", "category": "car"}],
         "unmatched": "other"}
    )  # fmt: skip
    assert custom.category("vehicle.ford.ambulance", "van", (15,)) == "emergency"
    assert custom.category("static.prop.bin", None, (20,)) == "other"


@pytest.mark.skipif(importlib.util.find_spec("carla") is None, reason="the carla client is not installed")
def test_names_match_the_installed_client() -> None:
    import carla

    assert {k: int(v) for k, v in carla.CityObjectLabel.names.items() if k != "Any"} == SEMANTIC_TAGS
    assert set(LANE_TYPES) == set(carla.LaneType.names) - {"NONE", "Any"}


def test_scene_randomizer_samples_a_valid_replayable_state() -> None:
    section = CarlaSection.model_validate(SECTION)
    r = CarlaSceneSampler()
    check_randomizer(r, _ctx(section))
    patch = r.sample(rng_for(5, "scene", 0), _ctx(section))
    state = CarlaScene.model_validate(patch["carla"])
    assert json.loads(json.dumps(patch)) == patch
    cars = [a for a in state.actors.values() if a.group == "cars"]
    people = [a for a in state.actors.values() if a.group == "people"]
    assert 2 <= len(cars) <= 6 and len(people) == 3
    assert all(a.autopilot and not a.walker_ai and a.color is not None for a in cars)
    assert all(a.walker_ai and not a.autopilot and 1 <= a.walker_speed_mps <= 2 for a in people)  # type: ignore[operator]
    assert all(a.category == "pedestrian" for a in people)
    assert {a.blueprint.filter for a in cars} <= {"vehicle.*", "vehicle.carlamotors.*"}
    assert list(state.actors) == [*(f"cars/{k}" for k in range(len(cars))), "people/0", "people/1", "people/2"]
    assert state.town == "Town10HD_Opt" and 0 <= state.seed < 2**32
    assert state.ego.blueprint.filter == "vehicle.lincoln.mkz_2020"
    # The same draw again (replay), another scene index differs.
    assert r.sample(rng_for(5, "scene", 0), _ctx(section)) == patch
    assert r.sample(rng_for(5, "scene", 1), _ctx(section, 1)) != patch


def test_camera_randomizer_jitters_the_mount() -> None:
    section = CarlaSection.model_validate(SECTION)
    r = CarlaCameraMount()
    check_randomizer(r, _ctx(section))
    views = [CarlaView.model_validate(r.sample(rng_for(s, "view"), _ctx(section))["carla"]) for s in range(20)]
    xs = [v.camera.location[0] for v in views]
    assert all(abs(x - 1.5) < 0.05 * 6 for x in xs) and len(set(xs)) == 20
    assert {(v.camera.width, v.camera.height, v.ticks, v.camera.fov_deg) for v in views} == {(64, 48, 10, 90.0)}


def test_randomizers_need_the_carla_section_and_register_under_versioned_names() -> None:
    with pytest.raises(SpecError, match="carla"):
        CarlaSceneSampler().sample(rng_for(0, "x"), SampleContext(spec=types.SimpleNamespace(carla=None), index=0))  # type: ignore[arg-type]
    registry: Registry = Registry("randomizer")
    for name, target in RANDOMIZERS.items():
        registry.register(name, target)
        assert registry.get(name).name == name


def test_without_the_carla_client_the_backend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from simgen.backends.carla import CarlaBackend
    from simgen.errors import DependencyMissing

    monkeypatch.setitem(sys.modules, "carla", None)  # as if the wheel were not installed
    with pytest.raises(DependencyMissing, match=r"pip install 'simgen\[carla\]'"):
        CarlaBackend()
