"""Randomizer tags select objects, fixtures and the ground (issue 11, item 6), and the loader refuses a tag that
selects nothing the randomizer can change."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from simgen.engine.scene_state import RandomizerSet, merge_patch, replay_scene, sample_scene
from simgen.errors import SpecError
from simgen.randomizers import REGISTRY
from simgen.randomizers.base import SampleContext
from simgen.sampling import rng_for
from simgen.spec import load_spec, read_spec_file
from simgen.spec.loader import LoadedSpec

REPO = Path(__file__).resolve().parents[2]
SCENES = REPO / "scenes"

#: Every appearance randomizer, with the parameters it needs.
APPEARANCE: dict[str, dict[str, Any]] = {
    "appearance/color-v1": {},
    "appearance/procedural-texture-v1": {"size": 16},
    "appearance/image-texture-v1": {"folder": "pybullet_data:"},
    "appearance/specular-v1": {},
    "appearance/ground-texture-v1": {"size": 16},
}


def tabletop(randomizers: list[dict[str, Any]], **changes: Any) -> LoadedSpec:
    """The default scene (a table and clutter) with these randomizers; ``changes`` replace top-level sections."""
    raw = read_spec_file(SCENES / "tabletop_clutter.yaml")
    raw["fixtures"][0]["tags"] = ["furniture"]
    raw["randomizers"] = randomizers
    raw.update(changes)
    return load_spec(raw, base_dir=SCENES)


def patch_of(name: str, tags: list[str], seed: int = 0, **changes: Any) -> dict[str, Any]:
    """The patch that randomizer ``name`` with ``tags`` gives for scene 0 of the default scene, through the engine."""
    loaded = tabletop([{"type": name, "tags": tags, **APPEARANCE[name]}], **changes)
    _, patches = sample_scene(loaded, RandomizerSet.from_spec(loaded), seed=seed, scene_index=0)
    return patches[f"3:{name}"]  # after the three core scene randomizers


@pytest.mark.parametrize("name", APPEARANCE)
@pytest.mark.parametrize("tag", ["table", "furniture"])  # a fixture by its name or by its tag
def test_a_fixture_tag_gives_the_fixture_alone_its_own_draw(name: str, tag: str) -> None:
    patch = patch_of(name, [tag])
    assert set(patch.get("fixtures", {})) == {"table"}
    assert not patch.get("objects") and "ground" not in patch
    (entry,) = patch["fixtures"].values()
    assert set(entry) & {"color", "texture", "specular"}
    loaded = tabletop([{"type": name, "tags": [tag], **APPEARANCE[name]}])
    state, _ = sample_scene(loaded, RandomizerSet.from_spec(loaded), seed=0, scene_index=0)
    (table,) = state["fixtures"]
    assert {k: table[k] for k in entry} == entry  # merged into the state's fixture list by uid
    assert table["asset"] == "pybullet_data:table/table.urdf"  # the rest of the entry is kept
    assert all("texture" not in o and "specular" not in o for o in state["objects"].values())


@pytest.mark.parametrize("name", APPEARANCE)
def test_adding_fixtures_and_the_ground_leaves_the_objects_draws_alone(name: str) -> None:
    """Objects draw first, then fixtures, then the ground: an objects-only spec keeps every value it had."""
    alone = patch_of(name, ["clutter"])
    both = patch_of(name, ["clutter", "table", "ground"])
    assert alone["objects"] and both["objects"] == alone["objects"]
    assert set(both["fixtures"]) == {"table"} and "ground" in both
    assert both["fixtures"]["table"] != both["ground"]  # each target its own draw


@pytest.mark.parametrize("name", APPEARANCE)
def test_fixture_draws_are_deterministic_and_depend_on_the_seed(name: str) -> None:
    first, again = patch_of(name, ["table"], seed=3), patch_of(name, ["table"], seed=3)
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    others = {json.dumps(patch_of(name, ["table"], seed=s), sort_keys=True) for s in range(4, 10)}
    assert len(others | {json.dumps(first, sort_keys=True)}) > 1


@pytest.mark.parametrize("name", [n for n in APPEARANCE if n != "appearance/ground-texture-v1"])
def test_the_ground_tag_selects_only_the_ground(name: str) -> None:
    patch = patch_of(name, ["ground"])
    assert set(patch) <= {"objects", "ground"} and not patch.get("objects") and patch["ground"]


def test_image_texture_can_texture_the_ground_alone() -> None:
    """Before issue 11, ``ground: true`` was the only way, and it textured every object as well."""
    patch = patch_of("appearance/image-texture-v1", ["ground"])
    assert patch == {"objects": {}, "ground": {"texture": patch["ground"]["texture"]}}
    assert patch["ground"]["texture"]["kind"] == "image"
    old_way = patch_of("appearance/image-texture-v1", [])
    assert old_way["objects"] and "ground" not in old_way


def test_untagged_randomizers_keep_their_old_targets() -> None:
    assert set(patch_of("appearance/color-v1", [])) == {"objects"}  # every object, no fixture, no ground
    assert set(patch_of("appearance/ground-texture-v1", [])) == {"ground"}  # the ground alone
    tagged = patch_of("appearance/ground-texture-v1", ["table"])
    assert set(tagged) == {"fixtures"} and set(tagged["fixtures"]) == {"table"}


def test_the_ground_tag_also_selects_a_fixture_tagged_ground() -> None:
    raw = read_spec_file(SCENES / "tabletop_clutter.yaml")
    raw["fixtures"][0]["tags"] = ["ground"]
    raw["randomizers"] = [{"type": "appearance/color-v1", "tags": ["ground"]}]
    loaded = load_spec(raw, base_dir=SCENES)
    _, patches = sample_scene(loaded, RandomizerSet.from_spec(loaded), seed=0, scene_index=0)
    patch = patches["3:appearance/color-v1"]
    assert set(patch["fixtures"]) == {"table"} and "color" in patch["ground"]


def test_fixture_patches_replay_and_merge_by_uid() -> None:
    loaded = tabletop([{"type": "appearance/procedural-texture-v1", "tags": ["table", "clutter"], "size": 16}])
    state, patches = sample_scene(loaded, RandomizerSet.from_spec(loaded), seed=5, scene_index=2)
    assert replay_scene(loaded, json.loads(json.dumps(patches))) == state  # the manifest rebuilds it
    base = {"fixtures": [{"uid": "a", "color": None}, {"uid": "b", "color": None}]}
    merged = merge_patch(base, {"fixtures": {"b": {"color": [1.0, 0.0, 0.0, 1.0]}}})
    assert merged["fixtures"] == [{"uid": "a", "color": None}, {"uid": "b", "color": [1.0, 0.0, 0.0, 1.0]}]
    assert base["fixtures"][1]["color"] is None  # the input is not changed
    assert merge_patch(base, {"fixtures": [{"uid": "c"}]})["fixtures"] == [{"uid": "c"}]  # a list still replaces
    with pytest.raises(ValueError, match="'tabel'"):
        merge_patch(base, {"fixtures": {"tabel": {"color": [0.0, 0.0, 0.0, 1.0]}}})


def test_a_robot_is_coloured_whole() -> None:
    """A fixture labeled per link is still one surface: one colour for all its links (documented choice)."""
    raw = read_spec_file(SCENES / "robot_workcell.yaml")
    raw["randomizers"] = [{"type": "appearance/color-v1", "tags": ["robot"]}]
    loaded = load_spec(raw, base_dir=SCENES)
    state, patches = sample_scene(loaded, RandomizerSet.from_spec(loaded), seed=0, scene_index=0)
    patch = patches["3:appearance/color-v1"]
    assert set(patch["fixtures"]) == {"panda"} and len(patch["fixtures"]["panda"]["color"]) == 4
    panda = next(f for f in state["fixtures"] if f["uid"] == "panda")
    assert panda["color"] == patch["fixtures"]["panda"]["color"] and panda["link_labels"] is True


# --- load-time checks --------------------------------------------------------------------------------------


def load_with(randomizer: dict[str, Any], **changes: Any) -> None:
    raw = read_spec_file(SCENES / "tabletop_clutter.yaml")
    raw["randomizers"] = [{"type": "appearance/color-v1", "tags": ["clutter"]}, randomizer]
    raw.update(changes)
    load_spec(raw, base_dir=SCENES)


@pytest.mark.parametrize(
    ("randomizer", "changes", "path", "message"),
    [
        (
            {"type": "physics/dynamics-v1", "tags": ["clutter", "table"]},
            {},
            "randomizers[1].tags[1]",
            "tag 'table' matches only fixtures, which physics/dynamics-v1 cannot change: it acts on object groups only",
        ),
        (
            {"type": "physics/dynamics-v1", "tags": ["ground"]},
            {},
            "randomizers[1].tags[0]",
            "tag 'ground' matches only the ground, which physics/dynamics-v1 cannot change",
        ),
        (
            {"type": "robot/joints-v1", "tags": ["clutter"]},
            {},
            "randomizers[1].tags[0]",
            "tag 'clutter' matches only object groups, which robot/joints-v1 cannot change: it acts on fixtures only",
        ),
        (
            {"type": "appearance/specular-v1", "tags": ["tabel"]},
            {},
            "randomizers[1].tags[0]",
            "tag 'tabel' matches nothing: no object group or fixture has it (did you mean 'table'?); "
            "known tags: clutter, ground, table",
        ),
        (
            {"type": "appearance/image-texture-v1", "tags": ["ground"], "folder": "pybullet_data:"},
            {"ground": {"kind": "none"}},
            "randomizers[1].tags[0]",
            "tag 'ground' matches nothing: no object group or fixture has it (and ground.kind is 'none', so there "
            "is no ground plane)",
        ),
        (
            {"type": "sensor/jpeg-v1", "tags": ["table"]},
            {},
            "randomizers[1].tags",
            "'sensor/jpeg-v1' takes no tags: it acts on the whole frame",
        ),
        (
            {"type": "occluders/flying-v1", "tags": ["clutter"]},
            {},
            "randomizers[1].tags",
            "'occluders/flying-v1' takes no tags",
        ),
    ],
    ids=["fixture-for-dynamics", "ground-for-dynamics", "objects-for-joints", "typo", "no-ground", "sensor", "view"],
)
def test_a_tag_that_selects_nothing_the_randomizer_changes_fails_at_load(
    randomizer: dict[str, Any], changes: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(SpecError) as info:
        load_with(randomizer, **changes)
    assert info.value.problems[0][0] == path
    assert message in info.value.problems[0][1]


@pytest.mark.parametrize("name", APPEARANCE)
def test_every_appearance_randomizer_accepts_fixture_and_ground_tags(name: str) -> None:
    load_with({"type": name, "tags": ["table", "ground"], **APPEARANCE[name]})
    assert set(REGISTRY.get(name).targets) == {"objects", "fixtures", "ground"}


def test_a_tag_that_selects_something_changeable_among_others_is_fine() -> None:
    raw = read_spec_file(SCENES / "robot_workcell.yaml")
    raw["objects"][0]["tags"] = ["robot"]  # now 'robot' names the clutter group and the panda fixture
    raw["randomizers"] = [{"type": "physics/dynamics-v1", "tags": ["robot"], "restitution": 0.2}]
    loaded = load_spec(raw, base_dir=SCENES)
    _, patches = sample_scene(loaded, RandomizerSet.from_spec(loaded), seed=0, scene_index=0)
    assert patches["3:physics/dynamics-v1"]["objects"]  # the objects of the group; the fixture is not touched


def test_every_randomizer_of_the_package_says_what_its_tags_select() -> None:
    """One that does not say would let a useless tag through silently (plugins may leave None)."""
    from simgen.randomizers import CORE_SCENE, CORE_VIEW

    for name in REGISTRY.names():
        cls = REGISTRY.get(name)
        if name in (*CORE_SCENE, *CORE_VIEW) or not cls.__module__.startswith("simgen.randomizers."):
            continue
        targets = cls.targets
        assert targets is not None and set(targets) <= {"objects", "fixtures", "ground"}, name


def test_targets_with_no_ground_plane() -> None:
    """A state whose ground is ``none`` has no ground to select, whatever the tags."""
    loaded = tabletop([])
    ctx = SampleContext(loaded.spec, 0, {"ground": {"kind": "none"}, "fixtures": [], "objects": {}})
    assert not ctx.targets(["ground"]).ground and not ctx.targets([], default="ground").ground
    state = copy.deepcopy(dict(ctx.state))
    state["ground"]["kind"] = "plane"
    ctx = SampleContext(loaded.spec, 0, state)
    assert ctx.targets(["ground"]).ground and not ctx.targets(["table"]).ground
    rng = rng_for(0, "t")
    assert ctx.targets(["ground"]).patch(lambda: {"x": float(rng.random())}, objects_key=False).keys() == {"ground"}


def test_the_cli_refuses_a_useless_tag_in_one_line_before_writing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from simgen.cli import app

    raw = read_spec_file(SCENES / "tabletop_clutter.yaml")
    raw["randomizers"] = [{"type": "physics/dynamics-v1", "tags": ["table"], "restitution": 0.3}]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(raw))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", str(spec), "-n", "1", "-o", str(out)])
    assert result.exit_code == 2, result.output
    (line,) = [ln for ln in result.output.splitlines() if ln.startswith("error:")]  # one line, whatever the width
    assert "randomizers[0].tags[0]: tag 'table' matches only fixtures, which physics/dynamics-v1 cannot change" in line
    assert not out.exists()
