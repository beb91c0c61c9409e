"""Patches: parsing keys, deep-merging onto a raw spec, and refusing what cannot apply."""

from __future__ import annotations

import pytest

from simgen.errors import SpecError
from simgen.scenarios.patches import (
    Selector,
    apply_patch,
    frozen_path,
    overlaps,
    parse_key,
    resolve_patch,
)

BASE = {
    "camera": {"fov_deg": {"kind": "uniform", "low": 45, "high": 65}, "look_at": {"distance": 1.0}},
    "light": {"color": [1.0, 1.0, 1.0], "intensity": 1.0},
    "objects": [
        {"name": "clutter", "count": {"kind": "intrange", "low": 10, "high": 30}, "tags": ["clutter"]},
        {"name": "hero", "count": 1},
    ],
    "randomizers": [{"type": "appearance/color-v1", "saturation": 0.5}],
}


def test_parse_key_steps():
    assert parse_key("camera.look_at.distance") == ["camera", "look_at", "distance"]
    assert parse_key("light.color[0]") == ["light", "color", 0]
    assert parse_key("objects[name=clutter].count") == ["objects", Selector("name", "clutter"), "count"]
    assert parse_key("randomizers[type=appearance/color-v1].saturation")[1] == Selector("type", "appearance/color-v1")


@pytest.mark.parametrize(
    "key", ["", "a..b", "a[", "a[-1]", "a[x==y]", "1abc", "a.b c", "a[name=x]]", "__import__('os')"]
)
def test_parse_key_refuses_malformed(key):
    with pytest.raises(ValueError):
        parse_key(key)


def test_mappings_merge_and_lists_replace():
    out = apply_patch(BASE, {"light": {"intensity": 0.2}, "camera": {"look_at": {"elevation_deg": 10}}})
    assert out["light"] == {"color": [1.0, 1.0, 1.0], "intensity": 0.2}  # merged, colour kept
    assert out["camera"]["look_at"] == {"distance": 1.0, "elevation_deg": 10}
    out = apply_patch(BASE, {"light": {"color": [0.2, 0.2]}})
    assert out["light"]["color"] == [0.2, 0.2]  # replaced wholesale, not merged by index
    assert BASE["light"]["color"] == [1.0, 1.0, 1.0]  # the base is never changed


def test_a_distribution_replaces_whole_but_a_plain_mapping_merges_into_one():
    out = apply_patch(BASE, {"camera": {"fov_deg": {"kind": "const", "value": 30}}})
    assert out["camera"]["fov_deg"] == {"kind": "const", "value": 30}  # no low/high left behind
    out = apply_patch(BASE, {"camera.fov_deg": {"high": 90}})
    assert out["camera"]["fov_deg"] == {"kind": "uniform", "low": 45, "high": 90}


def test_list_elements_by_index_and_by_field():
    out = apply_patch(BASE, {"objects[name=clutter].count": 3, "objects[1]": {"count": 5}, "light.color[2]": 0.5})
    assert out["objects"][0]["count"] == 3 and out["objects"][1]["count"] == 5
    assert out["light"]["color"] == [1.0, 1.0, 0.5]
    ops = resolve_patch(BASE, {"objects[name=hero]": {"count": 2, "tags": ["x"]}})
    assert ops == [(("objects", 1, "count"), 2), (("objects", 1, "tags"), ["x"])]


def test_missing_mappings_are_created():
    out = apply_patch({"objects": []}, {"physics": {"gravity": -1.0}})
    assert out["physics"] == {"gravity": -1.0}


@pytest.mark.parametrize(
    ("patch", "path", "needle"),
    [
        ({"objects[name=cluter].count": 1}, "objects[name=cluter].count", "did you mean 'clutter'"),
        ({"objects[5].count": 1}, "objects[5].count", "index 5 is past its end"),
        ({"objects.count": 1}, "objects.count", "objects is a list"),
        ({"objects[0].count.low": 1}, "", ""),  # into a distribution mapping: fine
        ({"objects[1].count.low": 1}, "objects[1].count.low", "not a mapping"),
        ({"fixtures[0].name": "x"}, "fixtures[0].name", "absent from the base spec"),
        ({"light": {"bad key": 1}}, "light", "not a spec path"),
    ],
)
def test_resolve_errors_name_the_key(patch, path, needle):
    if not path:
        resolve_patch(BASE, patch)
        return
    with pytest.raises(SpecError) as exc:
        resolve_patch(BASE, patch)
    assert exc.value.path == path
    assert needle in str(exc.value)


def test_ambiguous_selector():
    base = {"objects": [{"name": "a", "category": "x"}, {"name": "b", "category": "x"}]}
    with pytest.raises(SpecError, match="2 elements of objects have category=x"):
        resolve_patch(base, {"objects[category=x].count": 1})


def test_overlaps_and_frozen_paths():
    a = resolve_patch(BASE, {"light": {"intensity": 0.2}})
    b = resolve_patch(BASE, {"light.color": [1, 0, 0]})
    assert overlaps(a, b) is None
    c = resolve_patch(BASE, {"light": {"intensity": 2.0}})
    assert overlaps(a, c) == (("light", "intensity"), ("light", "intensity"))
    whole = resolve_patch(BASE, {"objects": []})
    inside = resolve_patch(BASE, {"objects[name=hero].count": 2})
    assert overlaps(whole, inside) == (("objects",), ("objects", 1, "count"))
    assert overlaps(inside, whole) == (("objects", 1, "count"), ("objects",))
    assert frozen_path(resolve_patch(BASE, {"camera": {"width": 10}})) == ("camera", "width")
    assert frozen_path(resolve_patch(BASE, {"frames_per_scene": 2})) == ("frames_per_scene",)
    assert frozen_path(resolve_patch(BASE, {"camera": {"look_at": {"distance": 2}}})) is None
