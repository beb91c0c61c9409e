from __future__ import annotations

import json

import numpy as np
import pytest

from simgen.engine.scene_state import merge_patch
from simgen.errors import SpecError
from simgen.randomizers import REGISTRY
from simgen.randomizers.base import SampleContext
from simgen.randomizers.textures import (
    TEXTURE_KINDS,
    GroundTexture,
    GroundTextureParams,
    ProceduralTexture,
    TextureParams,
    checker,
    perlin_field,
    render_texture,
    sample_texture,
    stripes,
    value_noise_field,
)
from simgen.sampling import rng_for
from simgen.spec.loader import randomizer_params
from simgen.spec.models import RandomizerSpec
from simgen.testing import check_randomizer, example_context

WHITE, BLACK = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]
RED, BLUE = [0.9, 0.1, 0.2], [0.1, 0.3, 0.8]
RECORDS = {
    "checker": {"cells": 8},
    "stripes": {"period_px": 10.0, "angle_deg": 30.0},
    "value-noise": {"scale": 4, "octaves": 3, "persistence": 0.5},
    "perlin": {"scale": 4, "octaves": 3, "persistence": 0.5},
    "linear-gradient": {"angle_deg": 45.0},
    "radial-gradient": {"center": [0.4, 0.6], "radius": 0.7},
}
KIND_KEYS = {k: {"kind", "seed", "size", "colors", *v} for k, v in RECORDS.items()}
NOISE = {"value-noise", "perlin"}


def record(kind: str, seed: int = 5, size: int = 64, colors=(RED, BLUE)) -> dict:
    return {"kind": kind, "seed": seed, "size": size, "colors": [list(c) for c in colors], **RECORDS[kind]}


@pytest.fixture(scope="module")
def ctx():
    return example_context()


def tagged_ctx(ctx) -> SampleContext:
    objects = {"mug/0": {"tags": ["mug"]}, "mug/1": {"tags": ["mug", "red"]}, "box/0": {"tags": ["box"]}}
    return SampleContext(ctx.spec, 0, {"objects": objects})


# --- render_texture -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TEXTURE_KINDS)
def test_render_is_deterministic_from_the_record(kind: str) -> None:
    rec = record(kind)
    a = render_texture(rec)
    b = render_texture(json.loads(json.dumps(rec)))
    assert a.dtype == np.uint8 and a.shape == (64, 64, 3)
    assert np.array_equal(a, b)
    assert rec == record(kind), "render_texture must not change the record"


@pytest.mark.parametrize("kind", TEXTURE_KINDS)
def test_only_noise_depends_on_the_seed(kind: str) -> None:
    same = np.array_equal(render_texture(record(kind, seed=1)), render_texture(record(kind, seed=2)))
    assert same != (kind in NOISE)


@pytest.mark.parametrize("kind", TEXTURE_KINDS)
def test_pixels_lie_between_the_two_colours(kind: str) -> None:
    img = render_texture(record(kind)).reshape(-1, 3).astype(float)
    lo = np.minimum(RED, BLUE) * np.float64(255) - 0.5
    hi = np.maximum(RED, BLUE) * np.float64(255) + 0.5
    assert np.all(img >= lo) and np.all(img <= hi)
    assert len(np.unique(img, axis=0)) >= 2


@pytest.mark.parametrize("kind", ["value-noise", "perlin", "linear-gradient"])
def test_normalised_kinds_reach_both_colours(kind: str) -> None:
    img = render_texture(record(kind, colors=(BLACK, WHITE)))
    assert img.min() <= 2 and img.max() >= 253


def test_checker_has_exactly_the_expected_cells() -> None:
    img = checker(128, 8, WHITE, BLACK)
    expected = np.kron((np.indices((8, 8)).sum(axis=0) % 2), np.ones((16, 16), dtype=int))
    assert np.array_equal(img[..., 0], np.where(expected == 0, 255, 0))
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 0], img[..., 2])


def test_checker_with_uneven_cells_alternates() -> None:
    img = checker(100, 3, WHITE, BLACK)[..., 0]
    edges = np.nonzero(np.diff(img[0].astype(int)))[0] + 1
    assert list(edges) == [34, 67]
    assert np.array_equal(img, img.T)
    assert set(np.unique(img)) == {0, 255}


def test_vertical_stripes_have_the_period() -> None:
    img = stripes(64, 16.0, 0.0, WHITE, BLACK)[..., 0]
    assert np.all(img == img[0])  # angle 0: every row the same, so the stripes are vertical
    assert list(img[0, :16]) == [255] * 8 + [0] * 8
    assert np.array_equal(img[0, :48], img[0, 16:64])


@pytest.mark.parametrize("field", [perlin_field, value_noise_field])
def test_noise_is_smooth_and_tileable(field) -> None:
    n = field(np.random.default_rng(0), 128, 4, 1, 0.5)
    assert n.min() == 0.0 and n.max() == 1.0
    dx = np.abs(np.diff(n, axis=1))
    dy = np.abs(np.diff(n, axis=0))
    assert max(dx.max(), dy.max()) < 0.08  # one pixel moves less than 8% of the range
    assert dx.mean() < 0.02
    wrap = np.abs(n[:, 0] - n[:, -1]).max()
    assert wrap < 0.08, "the lattice wraps, so the left and right edges meet"


def test_more_octaves_add_detail() -> None:
    def roughness(octaves: int) -> float:
        return float(np.abs(np.diff(perlin_field(np.random.default_rng(0), 128, 4, octaves, 0.5), axis=1)).mean())

    assert roughness(4) > 1.3 * roughness(1)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({**record("checker"), "kind": "chekcer"}, "did you mean 'checker'"),
        ({**record("checker"), "period_px": 3.0}, "Extra inputs"),
        ({**record("perlin", size=8), "scale": 16}, "must not exceed size"),
        ({**record("stripes"), "colors": [[2.0, 0, 0], [0, 0, 0]]}, "less than or equal to 1"),
        ({k: v for k, v in record("checker").items() if k != "cells"}, "Field required"),
    ],
)
def test_bad_records_are_refused(bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        render_texture(bad)


# --- randomizers ----------------------------------------------------------------------------------------


def test_procedural_texture_targets_tags_and_records_render(ctx) -> None:
    r = ProceduralTexture(TextureParams(size=32), tags=["mug"])
    patch = r.sample(rng_for(0, "t"), tagged_ctx(ctx))
    assert set(patch) == {"objects"} and set(patch["objects"]) == {"mug/0", "mug/1"}
    assert json.loads(json.dumps(patch)) == patch
    for entry in patch["objects"].values():
        rec = entry["texture"]
        assert set(rec) == KIND_KEYS[rec["kind"]] and rec["size"] == 32
        assert render_texture(rec).shape == (32, 32, 3)


def test_every_kind_is_drawn_and_renders() -> None:
    p = TextureParams(size=16)
    seen = set()
    for seed in range(60):
        rec = sample_texture(p, rng_for(seed, "t"), 0)
        assert set(rec) == KIND_KEYS[rec["kind"]]
        render_texture(rec)
        seen.add(rec["kind"])
    assert seen == set(TEXTURE_KINDS)


def test_kind_can_be_fixed_or_chosen_from_a_list() -> None:
    fixed = TextureParams(kind="checker", size=16)
    assert {sample_texture(fixed, rng_for(s, "t"), 0)["kind"] for s in range(10)} == {"checker"}
    chosen = TextureParams.model_validate({"kind": {"kind": "choice", "values": ["perlin", "stripes"]}, "size": 16})
    assert {sample_texture(chosen, rng_for(s, "t"), 0)["kind"] for s in range(20)} == {"perlin", "stripes"}


def test_drawn_parameters_follow_the_spec() -> None:
    p = TextureParams.model_validate(
        {"kind": "perlin", "size": 64, "scale": {"kind": "intrange", "low": 2, "high": 3}, "octaves": 2}
    )
    recs = [sample_texture(p, rng_for(s, "t"), 0) for s in range(20)]
    assert {r["scale"] for r in recs} == {2, 3} and {r["octaves"] for r in recs} == {2}
    assert len({r["seed"] for r in recs}) == 20


@pytest.mark.parametrize(
    ("values", "path", "match"),
    [
        ({"kind": "chekcer"}, "randomizers[0].kind", "did you mean 'checker'"),
        ({"kind": {"kind": "choice", "values": ["perlin", "plaid"]}}, "randomizers[0].kind", "unknown texture kind"),
        ({"cells": 0}, "randomizers[0].cells", r"must lie in \[1, 1024\]"),
        ({"size": 16, "scale": 32}, "randomizers[0]", r"scale: value must lie in \[1, 16\]"),
        ({"color_a": {"hue": 0.5, "sat": 1}}, "randomizers[0].color_a.sat", "unknown field 'sat'"),
    ],
)
def test_bad_texture_params_fail_at_load(values: dict, path: str, match: str) -> None:
    cls = REGISTRY.get("appearance/procedural-texture-v1")
    with pytest.raises(SpecError, match=match) as info:
        randomizer_params(RandomizerSpec(type=cls.name, **values), cls, "randomizers[0]", None)
    assert info.value.path == path


def test_ground_modes(ctx) -> None:
    tex = GroundTexture(GroundTextureParams(mode="texture", size=32)).sample(rng_for(0, "g"), ctx)
    assert set(tex) == {"ground"} and set(tex["ground"]) == {"texture"}
    assert render_texture(tex["ground"]["texture"]).shape == (32, 32, 3)
    col = GroundTexture(GroundTextureParams(mode="color")).sample(rng_for(0, "g"), ctx)
    assert set(col["ground"]) == {"color"} and len(col["ground"]["color"]) == 4
    assert all(0.0 <= c <= 1.0 for c in col["ground"]["color"]) and col["ground"]["color"][3] == 1.0
    both = GroundTexture(GroundTextureParams(size=16))
    got = {next(iter(both.sample(rng_for(s, "g"), ctx)["ground"])) for s in range(20)}
    assert got == {"texture", "color"}
    never = GroundTexture(GroundTextureParams(texture_probability=0.0))
    assert all("color" in never.sample(rng_for(s, "g"), ctx)["ground"] for s in range(10))


def test_ground_patch_merges_into_the_scene_state(ctx) -> None:
    patch = GroundTexture(GroundTextureParams(mode="texture", size=16)).sample(rng_for(0, "g"), ctx)
    state = merge_patch({"ground": {"kind": "plane", "color": None}, "objects": {}}, patch)
    assert state["ground"]["kind"] == "plane" and state["ground"]["texture"] == patch["ground"]["texture"]


@pytest.mark.parametrize("name", ["appearance/procedural-texture-v1", "appearance/ground-texture-v1"])
def test_texture_randomizers_conform(name: str, ctx) -> None:
    check_randomizer(REGISTRY.get(name)(), ctx)


def test_image_textures_refuse_a_broken_photo_and_the_backend_refuses_a_corrupt_one(tmp_path) -> None:
    """Issue 10: a folder's undecodable photo is an error naming it, never a grey surface in the dataset."""
    import dataclasses

    import cv2

    from simgen.backends.pybullet_appearance import texture_file
    from simgen.errors import AssetError
    from simgen.randomizers.materials import ImageTexture, ImageTextureParams

    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((8, 8, 3), 200, np.uint8))
    ctx = dataclasses.replace(example_context(), base_dir=tmp_path, roots=())
    randomizer = ImageTexture(ImageTextureParams(folder="photos"), [])
    record = next(iter(randomizer.sample(rng_for(0), ctx)["objects"].values()))["texture"]
    assert record == {"kind": "image", "path": str(folder / "a.png")}
    assert texture_file(record, "objects['x'].texture") == str(folder / "a.png")

    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n then junk")  # listed, but no image
    with pytest.raises(AssetError, match=r"appearance/image-texture-v1: .*b.png is not a readable image"):
        randomizer.sample(rng_for(0), ctx)
    (folder / "b.png").unlink()
    data = (folder / "a.png").read_bytes()
    (folder / "a.png").write_bytes(data[:-20])  # the header is intact, the end is cut off
    with pytest.raises(AssetError, match=r"objects\['x'\].texture.path: .*a.png is truncated or corrupt"):
        texture_file(record, "objects['x'].texture")
