"""Issue 10: every malformed spec fails at load time with a SpecError naming the field, before anything is written."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from simgen.engine import generate
from simgen.errors import SpecError, did_you_mean
from simgen.spec import load_spec, read_spec_file
from simgen.spec.models import MAX_INSTANCES, oler_capacity

REPO = Path(__file__).resolve().parents[2]
SCENES = REPO / "scenes"
DEFAULT = SCENES / "tabletop_clutter.yaml"


@pytest.fixture
def raw() -> dict[str, Any]:
    return read_spec_file(DEFAULT)


def _put(d: dict[str, Any], path: str, value: Any) -> None:
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    cur: Any = d
    for p in parts[:-1]:
        cur = cur[p]
    cur[parts[-1]] = value


def refused(raw: dict[str, Any], **kwargs: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(raw, base_dir=SCENES, **kwargs)
    return info.value


def assert_names(err: SpecError, path: str, text: str) -> None:
    message = str(err)
    assert path in [p for p, _ in err.problems], message
    assert text in message, message
    assert len(message) < 600, message  # bounded, whatever the input


# --- 1. non-finite numbers -----------------------------------------------------------------------------------

NON_FINITE = [
    ("camera.far", math.inf, "camera.far"),
    ("camera.near", math.nan, "camera.near"),
    ("light.intensity", math.nan, "light.intensity"),
    ("objects.0.scale", -math.inf, "objects[0].scale"),
    ("objects.0.min_spacing", math.nan, "objects[0].min_spacing"),
    ("objects.0.region.center", [0, math.nan, 0], "objects[0].region.center[1]"),
    ("objects.0.assets.0.weight", math.inf, "objects[0].assets[0].weight"),
    ("objects.0.count", {"kind": "uniform", "low": 0, "high": math.inf}, "objects[0].count.high"),
    ("objects.0.drop_height", {"kind": "const", "value": math.nan}, "objects[0].drop_height.value"),
    ("camera.look_at.roll_deg", {"kind": "normal", "mean": 0, "std": math.inf}, "camera.look_at.roll_deg.std"),
    ("physics.gravity", -math.inf, "physics.gravity"),
    ("labels.min_visibility", math.nan, "labels.min_visibility"),
    ("randomizers.0.value", math.nan, "randomizers[0].value"),
    ("randomizers.0.hue", {"kind": "choice", "values": [0.1, math.inf]}, "randomizers[0].hue.values[1]"),
]


@pytest.mark.parametrize(("where", "value", "path"), NON_FINITE, ids=[n[2] for n in NON_FINITE])
def test_nan_and_infinity_are_refused_everywhere(raw: dict[str, Any], where: str, value: Any, path: str) -> None:
    _put(raw, where, value)
    err = refused(raw)
    assert path in [p for p, _ in err.problems], str(err)
    assert "finite" in str(err), str(err)


def test_non_finite_in_any_randomizer_parameter_is_refused(raw: dict[str, Any]) -> None:
    """Even where the randomizer's own Params would not look (a third party's), NaN never gets through."""
    raw["randomizers"][0]["extra"] = {"deep": [1.0, {"x": math.inf}]}
    assert_names(refused(raw), "randomizers[0].extra.deep[1].x", "finite")


def test_infinite_far_plane_fails_before_the_output_folder_exists(tmp_path: Path, raw: dict[str, Any]) -> None:
    """The issue's case: `camera.far: .inf` rendered the whole dataset, then failed writing dataset.json."""
    raw["camera"]["far"] = math.inf
    spec = tmp_path / "far.yaml"
    spec.write_text(yaml.safe_dump(raw))
    assert ".inf" in spec.read_text()
    out = tmp_path / "out"
    with pytest.raises(SpecError, match=r"camera\.far: .*finite"):
        generate(spec, out, n_frames=2, renderer="tiny", resolution=(64, 48))
    assert not out.exists()


# --- 2. ranges: every field and every distribution's support ---------------------------------------------------

# fmt: off
RANGES = [
    # (id, where, value, path, text)
    ("count-negative", "objects.0.count", -1, "objects[0].count", "[0, 65535]"),
    ("count-normal", "objects.0.count", {"kind": "normal", "mean": 3, "std": 2}, "objects[0].count", "truncnormal"),
    ("count-uniform-below-0", "objects.0.count", {"kind": "uniform", "low": -2, "high": 3}, "objects[0].count", "uniform low"),
    ("count-over-ids", "objects.0.count", 10**9, "objects[0].count", "65535"),
    ("fov-zero", "camera.fov_deg", 0, "camera.fov_deg", "[0.01, 179.99]"),
    ("fov-180", "camera.fov_deg", 180, "camera.fov_deg", "[0.01, 179.99]"),
    ("fov-support", "camera.fov_deg", {"kind": "uniform", "low": 40, "high": 200}, "camera.fov_deg", "uniform high"),
    ("intrinsics-negative", "camera.intrinsics", {"fx": -500, "fy": 500, "cx": 320, "cy": 240}, "camera.intrinsics.fx", "(0, 1000000]"),
    ("distance-zero", "camera.look_at.distance", 0, "camera.look_at.distance", "[0.001, 10000]"),
    ("distance-support", "camera.look_at.distance", {"kind": "truncnormal", "mean": 1, "std": 1, "low": -1, "high": 2}, "camera.look_at.distance", "truncnormal low"),
    ("elevation-over-90", "camera.look_at.elevation_deg", 120, "camera.look_at.elevation_deg", "[-90, 90]"),
    ("far-not-beyond-near", "camera.far", 0.01, "camera.far", "far must be > near"),
    ("light-color-above-1", "light.color", [1, 1, 2], "light.color[2]", "[0, 1]"),
    ("object-color-negative", "objects.0.color", [0.5, -0.1, 0.5], "objects[0].color[1]", "[0, 1]"),
    ("mass-zero", "objects.0.mass", 0, "objects[0].mass", "(0, 1000000]"),
    ("scale-zero", "objects.0.scale", {"kind": "choice", "values": [1, 0]}, "objects[0].scale", "choice values[1]"),
    ("jitter-negative-std", "camera.look_at.target_jitter", -0.1, "camera.look_at.target_jitter", "[0, 1000]"),
    ("std-negative", "light.intensity", {"kind": "normal", "mean": 1, "std": -1}, "light.intensity.std", "greater than or equal to 0"),
    ("timestep-too-long", "physics.timestep", 0.5, "physics.timestep", "less than or equal to 0.1"),
    ("timestep-zero", "physics.timestep", 0, "physics.timestep", "greater than 0"),
    ("max-steps-unbounded", "physics.max_steps", 10**9, "physics.max_steps", "less than or equal to 100000"),
    ("box-size-zero", "objects.0.assets", [{"shape": "box", "size": [0.1, 0, 0.1]}], "objects[0].assets[0].size[1]", "(0, 1000]"),
    ("region-size-negative", "objects.0.region.size", [0.5, -0.5, 0], "objects[0].region.size[1]", "[0, 20000]"),
    ("saturation-5", "randomizers.0.saturation", 5, "randomizers[0].saturation", "[0, 1]"),
    ("alpha-negative", "randomizers.0.alpha", -1, "randomizers[0].alpha", "[0, 1]"),
]
# fmt: on


@pytest.mark.parametrize(("where", "value", "path", "text"), [r[1:] for r in RANGES], ids=[r[0] for r in RANGES])
def test_out_of_range_values_and_supports_are_refused(
    raw: dict[str, Any], where: str, value: Any, path: str, text: str
) -> None:
    if where == "camera.intrinsics":
        del raw["camera"]["fov_deg"]
    _put(raw, where, value)
    assert_names(refused(raw), path, text)


def test_the_boundaries_themselves_load(raw: dict[str, Any]) -> None:
    raw["camera"]["fov_deg"] = {"kind": "uniform", "low": 0.01, "high": 179.99}
    raw["objects"][0]["count"] = {"kind": "truncnormal", "mean": 20, "std": 30, "low": 0, "high": 40}
    raw["light"]["color"] = [0, 1, {"kind": "choice", "values": [0, 0.5, 1]}]
    raw["physics"]["max_steps"] = 100_000
    raw["physics"]["timestep"] = 0.1
    raw["randomizers"][0]["alpha"] = {"kind": "uniform", "low": 0, "high": 1}
    load_spec(raw, base_dir=SCENES)


# --- 3. typed values -----------------------------------------------------------------------------------------

# fmt: off
TYPED = [
    ("const-big", "objects.0.count", {"kind": "const", "value": "big"}, "objects[0].count", "must be a number"),
    ("choice-strings", "objects.0.scale", {"kind": "choice", "values": [1, "x"]}, "objects[0].scale", "must be a number"),
    ("sweep-list", "light.ambient", {"kind": "sweep", "values": [0.5, [1]]}, "light.ambient", "must be a number"),
    ("count-true", "objects.0.count", True, "objects[0].count", "valid integer"),
    ("intrange-true", "objects.0.count", {"kind": "intrange", "low": 0, "high": True}, "objects[0].count.high", "valid integer"),
    ("scale-false", "objects.0.scale", False, "objects[0].scale", "valid number"),
    ("number-as-string", "camera.far", "6.0", "camera.far", "valid number"),
    ("width-true", "camera.width", True, "camera.width", "valid integer"),
    ("bool-as-string", "light.shadows", "yes", "light.shadows", "valid boolean"),
    ("bool-as-number", "labels.visibility", 1, "labels.visibility", "valid boolean"),
    ("randomizer-true", "randomizers.0.saturation", True, "randomizers[0].saturation", "valid number"),
]
# fmt: on


@pytest.mark.parametrize(("where", "value", "path", "text"), [t[1:] for t in TYPED], ids=[t[0] for t in TYPED])
def test_values_have_their_type(raw: dict[str, Any], where: str, value: Any, path: str, text: str) -> None:
    _put(raw, where, value)
    assert_names(refused(raw), path, text)


def test_integral_floats_still_count(raw: dict[str, Any]) -> None:
    raw["objects"][0]["count"] = {"kind": "intrange", "low": 10.0, "high": 30}
    raw["frames_per_scene"] = 4.0
    load_spec(raw, base_dir=SCENES)


# --- vectors of the wrong length -----------------------------------------------------------------------------

VECTORS = [
    ("light.color", [1, 1], "light.color", "expected 3 values [r, g, b], not 2"),
    ("light.color", [1, 1, 1, 1], "light.color", "expected 3 values [r, g, b], not 4"),
    ("objects.0.color", [1, 1, 1, 1, 1], "objects[0].color", "expected 3 or 4 values"),
    ("fixtures.0.position", [0, 0], "fixtures[0].position", "expected 3 values [x, y, z], not 2"),
    ("camera.look_at.target", [0, 0, 0, 0], "camera.look_at.target", "not 4"),
    ("fixtures.0.rotation_deg", [0], "fixtures[0].rotation_deg", "not 1"),
]


@pytest.mark.parametrize(("where", "value", "path", "text"), VECTORS, ids=[f"{v[0]}-{len(v[1])}" for v in VECTORS])
def test_vectors_have_their_length(raw: dict[str, Any], where: str, value: Any, path: str, text: str) -> None:
    _put(raw, where, value)
    assert_names(refused(raw), path, text)


# --- 5. the backend's instance-id limit, before sampling ------------------------------------------------------


def test_counts_beyond_the_uint16_instance_ids_are_refused(raw: dict[str, Any]) -> None:
    group = copy.deepcopy(raw["objects"][0])
    raw["objects"][0]["count"] = 30_000
    raw["objects"].append({**group, "name": "more", "count": {"kind": "intrange", "low": 0, "high": 40_000}})
    err = refused(raw)
    assert_names(err, "objects[1].count", f"more than the {MAX_INSTANCES} instance ids")
    assert "70001" in str(err)  # 30000 + 40000 + the table


def test_occluders_and_fixtures_count_towards_the_instance_ids(raw: dict[str, Any]) -> None:
    raw["objects"][0]["count"] = MAX_INSTANCES - 1  # plus the table: exactly the limit
    load_spec(raw, base_dir=SCENES)
    raw["randomizers"].append({"type": "occluders/flying-v1", "count": {"kind": "intrange", "low": 0, "high": 2}})
    assert_names(refused(raw), "objects[0].count", "65537")


# --- 6. silent garbage becomes an error ----------------------------------------------------------------------


def test_all_zero_asset_weights_are_refused(raw: dict[str, Any]) -> None:
    for entry in raw["objects"][0]["assets"]:
        entry["weight"] = 0
    assert_names(refused(raw), "objects[0].assets", "every asset weight is 0")
    raw["objects"][0]["assets"][3]["weight"] = 0.5
    load_spec(raw, base_dir=SCENES)


def test_oler_capacity_is_exact_for_points_and_segments() -> None:
    assert oler_capacity(0, 0, 0.1) == 1
    assert oler_capacity(1.0, 0, 0.25) == 5  # 0, 0.25, 0.5, 0.75, 1.0
    assert oler_capacity(1.0, 1.0, 1.0) == 4  # the four corners of a unit square
    # Never below a square grid's count, which always fits.
    for w, h, d in [(3.0, 3.0, 1.0), (4.0, 4.0, 0.6), (0.7, 0.45, 0.05)]:
        assert oler_capacity(w, h, d) >= (math.floor(w / d) + 1) * (math.floor(h / d) + 1)


def test_min_spacing_that_cannot_be_met_is_refused(raw: dict[str, Any]) -> None:
    group = raw["objects"][0]  # 10 to 30 objects in a 0.7 x 0.45 m region
    group["min_spacing"] = 0.5
    assert_names(
        refused(raw), "objects[0].min_spacing", "30 objects (the most count can draw) cannot all be 0.5 m apart"
    )
    group["count"] = 4  # the four corners fit
    load_spec(raw, base_dir=SCENES)
    group["region"]["size"] = [{"kind": "uniform", "low": 0.1, "high": 0.7}, 0.45, 0]
    assert_names(refused(raw), "objects[0].min_spacing", "0.1 x 0.45 m region")  # the smallest region it can draw


@pytest.mark.parametrize(
    ("asset", "what"),
    [({"shape": "box", "size": [0.1, 0.1, 0.1]}, "a box primitive"), ("pybullet_data:duck.obj", "not a .urdf file")],
)
def test_link_labels_need_a_urdf(raw: dict[str, Any], asset: Any, what: str) -> None:
    raw["fixtures"][0].update(asset=asset, labeled=True, link_labels=True)
    assert_names(refused(raw, check_assets=False), "fixtures[0].link_labels", what)


@pytest.mark.parametrize("text", ["", "# nothing here\n", "{}\n", "name: empty\n"])
def test_an_empty_spec_says_what_is_required(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.path == "objects"
    assert "nothing to render: a spec needs at least one object group under 'objects'" in str(info.value)


def test_primitive_sizes_it_does_not_take_are_refused(raw: dict[str, Any]) -> None:
    raw["objects"][0]["assets"] = [{"shape": "sphere", "radius": 0.05, "size": [0.1, 0.1, 0.1]}]
    assert_names(refused(raw), "objects[0].assets[0].size", "a sphere has no size; it takes radius")


# --- 7. messages ---------------------------------------------------------------------------------------------


def test_did_you_mean_never_suggests_the_name_itself() -> None:
    assert did_you_mean("yaw", ["yaw", "none", "so3"]) == ""
    assert did_you_mean("1", ["1"]) == ""
    assert did_you_mean("YAW", ["none", "yaw"]) == " (did you mean 'yaw'?)"
    assert did_you_mean("x" * 10_000, ["x"]) == ""  # no quadratic difflib on a huge name


def test_version_given_as_a_string_says_it_wants_the_number(raw: dict[str, Any]) -> None:
    raw["version"] = "1"
    err = refused(raw)
    assert str(err) == "version: expected the number 1, got the string '1' (drop the quotes)"
    raw["version"] = 1.0
    load_spec(raw, base_dir=SCENES)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("objects.0.rotation", "yaw" * 100_000),
        ("objects.0.count", {"kind": "x" * 100_000}),
        ("objects.0.count", 10**5000),  # repr() of it raises ValueError in Python 3.11
        ("objects.0.region.size", list(range(100_000))),
        ("camera." + "k" * 100_000, 1),
    ],
    ids=["long-string", "long-kind", "huge-int", "long-list", "long-key"],
)
def test_huge_inputs_give_short_messages(raw: dict[str, Any], where: str, value: Any) -> None:
    if where.startswith("camera.k"):
        raw["camera"]["k" * 100_000] = value
    else:
        _put(raw, where, value)
    err = refused(raw)
    assert err.path and len(str(err)) < 400, str(err)[:1000]


def test_deeply_nested_values_are_refused_quickly(raw: dict[str, Any]) -> None:
    deep: Any = math.nan
    for _ in range(50_000):
        deep = [deep]
    raw["randomizers"][0]["hue"] = deep
    err = refused(raw)
    assert err.path.startswith("randomizers[0].hue[0][0]") and "levels" in err.path and len(str(err)) < 400


def test_a_spec_with_thousands_of_problems_lists_twenty(raw: dict[str, Any]) -> None:
    group = raw["objects"][0]
    raw["objects"] = [{**copy.deepcopy(group), "name": f"g{i}", "count": "many"} for i in range(500)]
    err = refused(raw)
    assert len(err.problems) == 21 and err.problems[-1] == ("...", "and up to 480 more problems")
    assert len(str(err)) < 3000


@pytest.mark.parametrize(
    ("where", "value", "path"),
    [
        ("objects.0.tags", ["t"] * 1_000_000, "objects[0].tags"),
        ("objects.0.scale", {"kind": "choice", "values": [1.0] * 1_000_000}, "objects[0].scale.values"),
        ("asset_roots", ["."] * 100_000, "asset_roots"),
        ("randomizers", [{"type": "sensor/jpeg-v1"}] * 100_000, "randomizers"),
    ],
    ids=["tags", "choice-values", "asset-roots", "randomizers"],
)
def test_lists_a_run_would_multiply_are_bounded(raw: dict[str, Any], where: str, value: Any, path: str) -> None:
    """Every tag is copied into every object of every scene, every root is resolved, every effect runs per frame."""
    _put(raw, where, value) if "." in where else raw.__setitem__(where, value)
    assert_names(refused(raw), path, "List should have at most")


def test_urdf_links_count_towards_the_instance_ids(raw: dict[str, Any]) -> None:
    """With the URDF at hand, the loader counts one id per link of a per-link fixture."""
    from simgen.assets import pybullet_data_dir
    from simgen.randomizers.robots import urdf_links

    raw["fixtures"].append(
        {"name": "arm", "asset": "pybullet_data:franka_panda/panda.urdf", "labeled": True, "link_labels": True}
    )
    links = len(urdf_links(str(pybullet_data_dir() / "franka_panda" / "panda.urdf")))
    raw["objects"][0]["count"] = MAX_INSTANCES - 1 - links  # + the table + one id per link: exactly the limit
    load_spec(raw, base_dir=SCENES)
    raw["objects"][0]["count"] = MAX_INSTANCES - 2  # within the limit only if the arm took one id
    err = refused(raw)
    assert err.path == "objects[0].count" and f"up to {MAX_INSTANCES - 1 + links}" in str(err)
    # Without the files at hand (check_assets=False), the model alone counts one id per fixture.
    load_spec(raw, base_dir=SCENES, check_assets=False)


def test_the_ground_colour_is_a_constant(raw: dict[str, Any]) -> None:
    """The engine takes ground.color as it is: a distribution loaded, then failed mid-run in float()."""
    raw["ground"] = {"color": [{"kind": "uniform", "low": 0, "high": 1}, 0.5, 0.5]}
    assert_names(refused(raw), "ground.color[0]", "valid number")
    raw["ground"] = {"color": [0.2, 0.5, 0.5, 1.0]}
    load_spec(raw, base_dir=SCENES)


@pytest.mark.parametrize("where", ["", "camera"])
def test_an_empty_key_is_named(raw: dict[str, Any], where: str) -> None:
    """Found by benchmarks/fuzz.py: a top-level key '' gave an error with an empty field path."""
    (raw[where] if where else raw)[""] = True
    err = refused(raw)
    assert err.path == (f"{where}.''" if where else "''") and "unknown field ''" in str(err)
