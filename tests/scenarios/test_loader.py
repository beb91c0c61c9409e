"""Loading scenarios: sections split off the spec, every level validated at load time, precise errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from simgen.errors import SpecError
from simgen.scenarios import load_scenario
from simgen.spec import read_spec_file

SCENES = Path(__file__).resolve().parents[2] / "scenes"


def scenario() -> dict:
    data = read_spec_file(SCENES / "tabletop_clutter.yaml")
    data["labels"]["visibility"] = True
    data["factors"] = {
        "lighting": {
            "levels": {
                "dark": {"light": {"intensity": 0.15, "ambient": 0.05}},
                "backlit": {"light.azimuth_deg": 180, "light.elevation_deg": 8},
                "normal": None,
            }
        },
        "clutter": {"levels": {"sparse": {"objects[name=clutter].count": 3}, "dense": {"objects[0]": {"count": 40}}}},
        "fov": {"path": "camera.fov_deg", "range": [30, 90], "steps": 3},
    }
    data["design"] = "pairwise"
    data["require"] = [
        {"name": "occluded_mug", "select": {"category": "mug", "visibility": {"le": 0.3}}, "ge": 1},
        {"name": "lit", "stat": "brightness", "ge": 0.05, "probability": 0.5},
    ]
    return data


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_load_a_scenario_file(tmp_path):
    s = load_scenario(write(tmp_path, scenario()))
    assert [f.name for f in s.factors] == ["lighting", "clutter", "fov"]
    assert s.base.spec.objects[0].name == "clutter" and "factors" not in s.raw
    assert s.design_spec.kind == "pairwise" and [c.name for c in s.require.constraints] == ["occluded_mug", "lit"]
    design = s.design(seed=3)
    assert len(design) == 9  # 3 x 3 is the lower bound of a pairwise design with two 3-level factors
    assert design.frames_per_scene == 4
    assert s.design(seed=3).cells == design.cells
    cell = {"lighting": "dark", "clutter": "dense", "fov": 60.0}
    spec = s.cell_spec(cell).spec
    assert spec.light.intensity == 0.15 and spec.light.ambient == 0.05 and spec.objects[0].count == 40
    assert spec.camera.fov_deg == 60.0
    assert s.cell_spec(cell) is s.cell_spec(dict(cell))  # cached
    base = s.cell_spec({"lighting": "normal", "clutter": "sparse", "fov": 30})
    assert base.spec.light.intensity == s.base.spec.light.intensity  # the empty level leaves the spec alone
    assert s.categories()[:2] == ["duck", "mug"] and s.tags()["clutter"] == ("clutter",)
    assert s.to_json()["design"] == {"kind": "pairwise"} and len(s.digest()) == 64


def test_a_plain_spec_is_a_scenario_without_factors(tmp_path):
    s = load_scenario(SCENES / "tabletop_clutter.yaml")
    assert s.factors == () and s.design(0) is None and s.require is None


def test_factors_without_a_design_get_the_full_design(tmp_path):
    data = scenario()
    del data["design"]
    s = load_scenario(write(tmp_path, data))
    assert len(s.design(0)) == 18


def edit(data: dict, dotted: str, value) -> dict:
    data = copy.deepcopy(data)
    *parents, last = dotted.split("/")
    node = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is KeyError:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return data


@pytest.mark.parametrize(
    ("where", "value", "path", "needle"),
    [
        # a level that breaks the spec: the factor, the level and the field
        (
            "factors/lighting/levels/dark",
            {"light": {"color": [2, 0, 0]}},
            "factors.lighting.levels.dark.light.color[0]",
            "[0, 1]",
        ),
        (
            "factors/lighting/levels/dark",
            {"light": {"colour": [1, 0, 0]}},
            "factors.lighting.levels.dark.light.colour",
            "did you mean 'color'",
        ),
        (
            "factors/clutter/levels/dense",
            {"objects[name=cluter].count": 3},
            "factors.clutter.levels.dense.objects[name=cluter].count",
            "did you mean 'clutter'",
        ),
        (
            "factors/clutter/levels/dense",
            {"objects[0].count": -1},
            "factors.clutter.levels.dense.objects[0].count",
            "count",
        ),
        ("factors/clutter/levels/dense", {"frames_per_scene": 2}, "factors.clutter.levels.dense", "whole run"),
        ("factors/clutter/levels/dense", {"camera": {"width": 64}}, "factors.clutter.levels.dense", "camera.width"),
        (
            "factors/clutter/levels/dense",
            {"light.intensity": 3},
            "factors.clutter",
            "factor 'lighting' writes light.intensity",
        ),
        ("factors/clutter/levels/dense", "many", "factors.clutter.levels.dense", "a level is a patch"),
        (
            "factors/clutter/levels/dense",
            {"light": {"intensity": float("nan")}},
            "factors.clutter.levels.dense.light.intensity",
            "finite",
        ),
        ("factors/fov/range", [30, 200], "factors.fov.range[1]", "camera.fov_deg: value must lie in [0.01, 179.99]"),
        ("factors/fov/path", "camera.fov", "factors.fov.path", "did you mean 'fov_deg'"),
        (
            "factors/fov/path",
            "light.shadows",
            "factors.fov.range[0]",
            "writing 30 at light.shadows makes the spec invalid",
        ),
        ("factors/fov/range", [90, 30], "factors.fov.range", "low < high"),
        ("factors/fov/range", [30, 30.000001], "factors.fov.steps", "repeat values once rounded"),
        ("factors/fov/steps", KeyError, "factors.fov.steps", "give this range 'steps'"),
        ("factors/fov/levels", {"a": {}}, "factors.fov.path", "not 'path' too"),
        ("factors/bad name", {"levels": {"a": {}}}, "factors.bad name", "invalid name: expected the pattern"),
        ("design", "pairwize", "design.kind", "did you mean 'pairwise'"),
        ("design", {"kind": "sobol", "n": 12}, "design.n", "use 8 or 16"),
        ("design", {"kind": "t-wise"}, "design.strength", "needs 'strength'"),
        ("design", {"kind": "t-wise", "strength": 4}, "design.strength", "at least 4 factors"),
        ("require/0/select/category", "mugg", "require[0].select.category[0]", "did you mean 'mug'"),
        ("require/0/select/tag", "clutterr", "require[0].select.tag[0]", "did you mean 'clutter'"),
        ("require/0/gee", 1, "require[0].gee", "did you mean 'ge'"),
        ("require/1/name", "occluded_mug", "require[1].name", "used twice"),
        ("require/0/probability", 2, "require[0].probability", "less than or equal to 1"),
        ("labels/visibility", False, "require[0].select.visibility", "labels.visibility: true"),
        ("factor", {}, "factor", "did you mean 'factors'"),
        (
            "timeline",
            {"capture": {"frames": 4}, "events": [{"target": "clutterr", "throw": {"impulse": [0, 0, 1]}}]},
            "timeline.events[0].target",
            "did you mean 'clutter'",
        ),
        (
            "timeline",
            {"capture": {"frames": 4}, "events": [{"light": {"intensity": 50}}]},
            "timeline.events[0].light.intensity",
            "[0, 10]",
        ),
        (
            "timeline",
            {
                "capture": {"frames": 4},
                "events": [
                    {"target": "table", "robot": {"trajectory": [{"t_s": 1, "q": [0]}, {"t_s": 0.5, "q": [1]}]}}
                ],
            },
            "timeline.events[0].robot.trajectory[1].t_s",
            "must increase",
        ),
    ],
)
def test_errors_name_the_field(tmp_path, where, value, path, needle):
    path_file = write(tmp_path, edit(scenario(), where, value))
    with pytest.raises(SpecError) as exc:
        load_scenario(path_file)
    assert exc.value.path == path, str(exc.value)
    assert needle in str(exc.value)
    assert str(exc.value).startswith(str(path_file))  # the file is named


def test_a_level_that_turns_visibility_off_is_refused(tmp_path):
    data = edit(scenario(), "factors/clutter/levels/sparse", {"labels.visibility": False})
    with pytest.raises(SpecError, match="level 'sparse' of factor 'clutter' turns off"):
        load_scenario(write(tmp_path, data))


def test_a_combination_that_breaks_the_spec_is_reported_with_its_cell(tmp_path):
    data = scenario()
    # each level is valid alone; spaced objects in the small region are not (Oler's packing bound)
    data["factors"]["spacing"] = {"levels": {"spaced": {"objects[0].min_spacing": 0.1}, "free": None}}
    data["factors"]["region"] = {"levels": {"small": {"objects[0].region.size": [0.2, 0.2, 0.0]}, "wide": None}}
    s = load_scenario(write(tmp_path, data))
    cell = {"lighting": "dark", "clutter": "sparse", "fov": 30, "spacing": "spaced", "region": "wide"}
    assert s.cell_spec(cell).spec.objects[0].min_spacing == 0.1
    s.cell_spec({**cell, "clutter": "dense", "spacing": "free", "region": "small"})
    with pytest.raises(SpecError) as exc:
        s.cell_spec({**cell, "clutter": "dense", "region": "small"})
    assert exc.value.path == "objects[0].min_spacing"
    assert "in cell (lighting=dark, clutter=dense, fov=30, spacing=spaced, region=small)" in str(exc.value)
    assert "cannot all be 0.1 m apart" in str(exc.value) and str(exc.value).startswith(str(tmp_path))


def test_cells_with_unknown_levels_or_factors(tmp_path):
    s = load_scenario(write(tmp_path, scenario()))
    cell = {"lighting": "dark", "clutter": "sparse", "fov": 30}
    with pytest.raises(SpecError, match="unknown level 'drak'") as exc:
        s.cell_spec({**cell, "lighting": "drak"})
    assert "did you mean 'dark'" in str(exc.value)
    with pytest.raises(SpecError, match=r"expected a number in \[30, 90\], got 100"):
        s.cell_spec({**cell, "fov": 100})
    with pytest.raises(SpecError, match="gives no level of factor 'fov'"):
        s.cell_spec({"lighting": "dark", "clutter": "sparse"})
    with pytest.raises(SpecError, match="unknown factor 'fv'"):
        s.cell_spec({**cell, "fv": 30})


def test_a_timeline_is_validated(tmp_path):
    data = scenario()
    data["timeline"] = {
        "capture": {"every_steps": 4, "frames": 12},
        "motion_blur": {"subframes": 3},
        "events": [
            {"at_s": 0.0, "target": "clutter", "drop": {"height_m": 0.5}},
            {"at_s": 0.1, "target": "clutter/0", "throw": {"impulse": [0.1, 0, 0.2]}},
            {"at_s": 0.2, "camera": {"orbit_deg": 45, "duration_s": 0.5}},
            {"at_s": 0.3, "light": {"intensity": 0.3}},
        ],
    }
    s = load_scenario(write(tmp_path, data))
    assert [e.action for e in s.timeline.events] == ["drop", "throw", "camera", "light"]


def test_sections_round_trip_and_have_a_json_schema(tmp_path):
    from simgen.scenarios.models import ScenarioSections

    s = load_scenario(write(tmp_path, scenario()))
    again = load_scenario({**s.raw, **s.to_json()}, base_dir=tmp_path)
    assert again.to_json() == s.to_json() and again.digest() == s.digest()
    assert again.design(4).cells == s.design(4).cells
    schema = ScenarioSections.model_json_schema()
    assert set(schema["properties"]) == {"factors", "design", "require", "timeline"}
