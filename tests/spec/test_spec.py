from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from simgen.errors import AssetError, SpecError
from simgen.spec import dump_spec, dump_spec_yaml, load_spec, read_spec_file, spec_json_schema

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenes" / "tabletop_clutter.yaml"


@pytest.fixture
def raw() -> dict[str, Any]:
    return read_spec_file(DEFAULT)


def test_default_spec_round_trips_exactly(raw: dict[str, Any]) -> None:
    loaded = load_spec(DEFAULT)
    assert dump_spec(loaded) == raw
    assert yaml.safe_load(dump_spec_yaml(loaded)) == raw


@pytest.mark.parametrize("path", sorted((REPO / "scenes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_library_scene_loads_and_round_trips(path: Path) -> None:
    assert dump_spec(load_spec(path)) == read_spec_file(path)


def test_minimal_spec_round_trips_without_adding_defaults() -> None:
    raw = {"objects": [{"name": "boxes", "assets": [{"shape": "box", "size": [0.1, 0.1, 0.1]}], "count": 3}]}
    loaded = load_spec(raw)
    assert dump_spec(loaded) == raw
    assert loaded.resolved()["camera"]["width"] == 640  # defaults are filled in the resolved form only


def test_json_spec_loads(tmp_path: Path, raw: dict[str, Any]) -> None:
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(raw))
    assert dump_spec(load_spec(path, base_dir=DEFAULT.parent)) == raw


def test_digest_is_stable_and_sensitive(raw: dict[str, Any]) -> None:
    a = load_spec(raw, base_dir=DEFAULT.parent).digest()
    assert a == load_spec(copy.deepcopy(raw), base_dir=DEFAULT.parent).digest()
    raw["frames_per_scene"] = 5
    assert load_spec(raw, base_dir=DEFAULT.parent).digest() != a


def test_schema_is_json_schema() -> None:
    schema = spec_json_schema()
    assert schema["type"] == "object"
    assert {"objects", "camera", "light", "randomizers"} <= set(schema["properties"])
    json.dumps(schema)


def _set(path: str, value: Any):
    """Return a mutator setting a dotted/indexed path like 'objects.0.count'."""

    def mutate(d: dict[str, Any]) -> None:
        parts = path.split(".")
        cur: Any = d
        for p in parts[:-1]:
            cur = cur[int(p)] if p.isdigit() else cur[p]
        last = parts[-1]
        if isinstance(cur, list):
            cur[int(last)] = value
        else:
            cur[last] = value

    return mutate


def _delete(path: str):
    def mutate(d: dict[str, Any]) -> None:
        parts = path.split(".")
        cur: Any = d
        for p in parts[:-1]:
            cur = cur[int(p)] if p.isdigit() else cur[p]
        del cur[parts[-1]]

    return mutate


BAD_SPECS = [
    # (id, mutation, expected field path, expected text in the message)
    ("count-high-not-int", _set("objects.0.count", {"kind": "intrange", "low": 1, "high": "x"}), "objects[0].count.high", "valid integer"),
    ("count-kind-typo", _set("objects.0.count", {"kind": "intrang", "low": 1, "high": 3}), "objects[0].count", "did you mean 'intrange'"),
    ("count-high-below-low", _set("objects.0.count", {"kind": "intrange", "low": 5, "high": 3}), "objects[0].count", "high must be >= low"),
    ("field-typo", _set("objects.0.cont", 3), "objects[0].cont", "did you mean 'count'"),
    ("camera-field-typo", _set("camera.widht", 3), "camera.widht", "did you mean 'width'"),
    ("top-level-typo", _set("frames_per_scen", 3), "frames_per_scen", "did you mean 'frames_per_scene'"),
    ("fov-not-number", _set("camera.fov_deg", "wide"), "camera.fov_deg", "valid number"),
    ("width-negative", _set("camera.width", -5), "camera.width", "greater than 0"),
    ("far-before-near", _set("camera.far", 0.01), "camera.far", "far must be > near"),
    ("fov-and-intrinsics", _set("camera.intrinsics", {"fx": 500, "fy": 500, "cx": 320, "cy": 240}), "camera.intrinsics", "not both"),
    ("distribution-without-kind", _set("objects.0.scale", {"low": 1}), "objects[0].scale", "needs a 'kind'"),
    ("uniform-missing-high", _set("camera.look_at.distance", {"kind": "uniform", "low": 1}), "camera.look_at.distance.high", "missing"),
    ("normal-negative-std", _set("light.intensity", {"kind": "normal", "mean": 1, "std": -1}), "light.intensity.std", "greater than or equal to 0"),
    ("loguniform-zero", _set("objects.0.drop_height", {"kind": "loguniform", "low": 0, "high": 1}), "objects[0].drop_height.low", "greater than 0"),
    ("choice-weights-mismatch", _set("objects.0.scale", {"kind": "choice", "values": [1, 2], "weights": [1]}), "objects[0].scale", "one entry per value"),
    ("rotation-typo", _set("objects.0.rotation", "yew"), "objects[0].rotation", "did you mean 'yaw'"),
    ("region-two-values", _set("objects.0.region.size", [1, 2]), "objects[0].region.size", "expected 3 values"),
    ("frames-per-scene-zero", _set("frames_per_scene", 0), "frames_per_scene", "greater than or equal to 1"),
    ("group-name-spaces", _set("objects.0.name", "my group"), "objects[0].name", "pattern"),
    ("empty-asset-pool", _set("objects.0.assets", []), "objects[0].assets", "at least 1"),
    ("randomizer-unknown", _set("randomizers.0.type", "appearance/colour-v1"), "randomizers[0].type", "did you mean 'appearance/color-v1'"),
    ("randomizer-param-typo", _set("randomizers.0.satruation", 1), "randomizers[0].satruation", "did you mean 'saturation'"),
    ("randomizer-param-bad-range", _set("randomizers.0.hue", {"kind": "uniform", "low": 1, "high": 0}), "randomizers[0].hue", "high must be >= low"),
    ("randomizer-tag-typo", _set("randomizers.0.tags", ["cluter"]), "randomizers[0].tags[0]", "did you mean 'clutter'"),
    ("randomizer-missing-type", _delete("randomizers.0.type"), "randomizers[0].type", "missing"),
    ("core-randomizer-listed", _set("randomizers.0.type", "camera/look-at-shell-v1"), "randomizers[0].type", "always runs"),
    ("backend-typo", _set("backend", "pybulet"), "backend", "did you mean 'pybullet'"),
    ("version-wrong", _set("version", 2), "version", "expected 1"),
    ("labels-visibility-above-one", _set("labels.min_visibility", 1.5), "labels.min_visibility", "less than or equal to 1"),
    ("on-filtered-typo", _set("labels.on_filtered", "dorp"), "labels.on_filtered", "did you mean 'drop'"),
    ("primitive-box-without-size", _set("objects.0.assets", [{"shape": "box"}]), "objects[0].assets[0].size", "a box needs size"),
    ("duplicate-names", _set("fixtures.0.name", "clutter"), "objects[0].name", "used twice"),
    ("physics-negative-steps", _set("physics.max_steps", -1), "physics.max_steps", "greater than or equal to 0"),
]


@pytest.mark.parametrize(("mutate", "path", "text"), [b[1:] for b in BAD_SPECS], ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_names_the_field(raw: dict[str, Any], mutate, path: str, text: str) -> None:
    mutate(raw)
    with pytest.raises(SpecError) as info:
        load_spec(raw, base_dir=DEFAULT.parent)
    err = info.value
    message = str(err)
    assert text in message, message
    if path == "<root>":
        assert err.path == "", message
    else:
        assert path in [p for p, _ in err.problems], message
        assert f"{path}:" in message


def test_bad_spec_file_names_the_file(tmp_path: Path, raw: dict[str, Any]) -> None:
    raw["objects"][0]["count"] = {"kind": "intrange", "low": 1, "high": "x"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError) as info:
        load_spec(path, base_dir=DEFAULT.parent, check_assets=False)
    assert str(info.value).startswith(f"{path}: objects[0].count.high:")


def test_several_problems_are_all_listed(raw: dict[str, Any]) -> None:
    raw["camera"]["widht"] = 1
    raw["light"]["intensity"] = "bright"
    with pytest.raises(SpecError) as info:
        load_spec(raw, base_dir=DEFAULT.parent)
    paths = [p for p, _ in info.value.problems]
    assert "camera.widht" in paths and "light.intensity" in paths


@pytest.mark.parametrize(
    ("text", "needle"),
    [("objects: [unclosed", "cannot parse"), ("- a list\n- at the top\n", "must be a mapping")],
)
def test_unparseable_files(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=needle):
        load_spec(path)


def test_missing_file_suggests_sibling(tmp_path: Path) -> None:
    (tmp_path / "tabletop.yaml").write_text("name: x\n")
    with pytest.raises(SpecError, match="did you mean 'tabletop.yaml'"):
        load_spec(tmp_path / "tabeltop.yaml")


@pytest.mark.parametrize("ref", ["../../etc/passwd", "/etc/passwd", "pybullet_data:../../../../etc/passwd"])
def test_asset_path_escape_is_refused(raw: dict[str, Any], ref: str) -> None:
    raw["objects"][0]["assets"].append(ref)
    with pytest.raises(AssetError, match=r"objects\[0\]\.assets\[8\]"):
        load_spec(raw, base_dir=DEFAULT.parent)


def test_symlink_out_of_the_spec_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "thing.urdf").write_text("<robot name='x'/>")
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    (spec_dir / "link.urdf").symlink_to(outside / "thing.urdf")
    raw = {"objects": [{"name": "g", "assets": ["link.urdf"]}]}
    with pytest.raises(AssetError, match="outside the allowed asset roots"):
        load_spec(raw, base_dir=spec_dir)
    with pytest.raises(SpecError, match="outside the spec's folder"):  # a spec cannot widen its own sandbox
        load_spec({**raw, "asset_roots": [str(outside)]}, base_dir=spec_dir)
    load_spec(raw, base_dir=spec_dir, asset_roots=[outside])  # the caller (--asset-root) can


def test_user_asset_relative_to_spec(tmp_path: Path) -> None:
    (tmp_path / "meshes").mkdir()
    (tmp_path / "meshes" / "part.obj").write_text("v 0 0 0\n")
    load_spec({"objects": [{"name": "g", "assets": ["meshes/part.obj"]}]}, base_dir=tmp_path)
    with pytest.raises(AssetError, match="did you mean 'part.obj'"):
        load_spec({"objects": [{"name": "g", "assets": ["meshes/prat.obj"]}]}, base_dir=tmp_path)
    (tmp_path / "meshes" / "part.stl").write_text("solid")
    with pytest.raises(AssetError, match="expected one of"):
        load_spec({"objects": [{"name": "g", "assets": ["meshes/part.stl"]}]}, base_dir=tmp_path)


def test_bundled_asset_typo_suggests(raw: dict[str, Any]) -> None:
    raw["objects"][0]["assets"].append("pybullet_data:duck_vhacd.urd")
    with pytest.raises(AssetError, match="did you mean 'duck_vhacd.urdf'"):
        load_spec(raw, base_dir=DEFAULT.parent)
