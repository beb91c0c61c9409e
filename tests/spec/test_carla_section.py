"""The ``carla:`` section of a scene spec: wired to ``backend: carla``, with the spec's error, path and hint rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simgen.backends.carla_spec import CarlaSection
from simgen.errors import SpecError
from simgen.randomizers import REGISTRY, core_randomizers
from simgen.spec import dump_spec, load_spec, read_spec_file, spec_json_schema

REPO = Path(__file__).resolve().parents[2]
CARLA_SCENES = sorted((REPO / "scenes" / "carla").glob("*.yaml"))
TABLETOP = REPO / "scenes" / "tabletop_clutter.yaml"


def carla_spec(**extra: Any) -> dict[str, Any]:
    return {"backend": "carla", "carla": {"town": "Town10HD_Opt", **extra}}


def problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as err:
        load_spec(raw)
    return err.value.problems


def test_a_carla_spec_loads_into_the_section_model_and_round_trips() -> None:
    raw = carla_spec(ego={"camera": {"width": 320, "height": 240}},
                     actors=[{"name": "cars", "kind": "vehicle", "count": {"kind": "intrange", "low": 1, "high": 5}}])  # fmt: skip
    loaded = load_spec(raw)
    assert isinstance(loaded.spec.carla, CarlaSection)
    assert loaded.spec.carla.ego.camera.width == 320
    assert dump_spec(loaded) == raw
    assert loaded.resolved()["carla"]["port"] == 2000  # defaults filled in for dataset.json


def test_backend_carla_without_its_section_names_the_field() -> None:
    [(path, message)] = problems({"backend": "carla"})
    assert path == "carla"
    assert "needs a 'carla:' section" in message and "docs/carla.md" in message


def test_a_pybullet_spec_with_a_carla_section_names_the_field() -> None:
    raw = read_spec_file(TABLETOP)
    raw["carla"] = {"host": "127.0.0.1"}
    [(path, message)] = problems(raw)
    assert path == "carla"
    assert "backend: carla only" in message and "'pybullet'" in message


def test_pybullet_sections_on_carla_are_refused() -> None:
    raw = carla_spec()
    raw["objects"] = read_spec_file(TABLETOP)["objects"]
    [(path, message)] = problems(raw)
    assert path == "objects" and "carla.actors" in message


def test_a_typo_inside_the_section_gets_its_path_and_a_did_you_mean() -> None:
    [(path, message)] = problems(carla_spec(ego={"camra": {"width": 64}}))
    assert path == "carla.ego.camra"
    assert "did you mean 'camera'" in message


def test_a_bad_value_deep_in_the_section_gets_its_path() -> None:
    raw = carla_spec(actors=[{"name": "people", "kind": "walker", "spawn": {"lane_types": ["Sidewalks"]}}])
    [(path, message)] = problems(raw)
    assert path == "carla.actors[0].spawn.lane_types[0]"
    assert "did you mean 'Sidewalk'" in message


def test_place_and_spawn_together_are_refused() -> None:
    raw = carla_spec(actors=[{"name": "x", "kind": "vehicle", "place": {"forward_m": 5}, "spawn": {"junctions": True}}])
    [(path, message)] = problems(raw)
    assert path == "carla.actors[0].place" and "not both" in message


def test_a_pybullet_spec_resolves_exactly_as_before() -> None:
    loaded = load_spec(TABLETOP)
    assert loaded.spec.carla is None
    assert "carla" not in loaded.resolved() and "carla" not in dump_spec(loaded)
    assert "carla" in spec_json_schema()["properties"]


def test_carla_randomizers_are_registered_and_cores_cannot_be_listed() -> None:
    assert {"carla/scene-v1", "carla/camera-mount-v1", "carla/weather-v1", "carla/time-of-day-v1"} <= set(REGISTRY)
    assert core_randomizers("carla") == (("carla/scene-v1",), ("carla/camera-mount-v1",))
    assert core_randomizers("pybullet")[0][0] == "scene/fixtures-v1"
    raw = carla_spec()
    raw["randomizers"] = [{"type": "carla/scene-v1"}]
    [(path, message)] = problems(raw)
    assert path == "randomizers[0].type" and "always runs" in message


def test_a_weather_randomizer_parameter_error_has_its_path() -> None:
    raw = carla_spec()
    raw["randomizers"] = [{"type": "carla/weather-v1", "preset": "ClearNoone"}]
    [(path, message)] = problems(raw)
    assert path.startswith("randomizers[0].preset")
    assert "ClearNoon" in message


@pytest.mark.parametrize("path", CARLA_SCENES, ids=lambda p: p.name)
def test_every_library_carla_scene_loads(path: Path) -> None:
    from simgen.scenarios import load_scenario
    from simgen.scenarios.engine import is_scenario

    raw = read_spec_file(path)
    assert raw["backend"] == "carla"
    if is_scenario(raw):
        scenario = load_scenario(path)
        assert scenario.base.spec.carla is not None
        design = scenario.design(0)
        assert design is not None and len(design.cells) >= 3
        for cell in design.cells:
            assert scenario.cell_spec(cell).spec.carla is not None  # every cell is a valid CARLA spec
    else:
        loaded = load_spec(path)
        assert dump_spec(loaded) == raw


def test_the_library_has_the_five_driving_scenes() -> None:
    assert {p.stem for p in CARLA_SCENES} == {
        "urban_sweep", "pedestrian_behind_parked", "cut_in", "night_rain", "dense_traffic"
    }  # fmt: skip


def test_bop_on_carla_is_refused_at_load_time() -> None:
    """BOP's masks need per-object unoccluded renders, which CARLA cannot make (labels.visibility is refused too)."""
    raw = carla_spec()
    raw["outputs"] = {"bop": True}
    [(path, message)] = problems(raw)
    assert path == "outputs.bop" and "labels.visibility" in message
