"""Settings validation, prompts, per-frame seeds and control images (no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from simgen.errors import SimgenError
from simgen.refine.controls import canny_control, control_images, depth_control, parse_control
from simgen.refine.settings import RefineSettings, RefineSettingsError, frame_seed, render_prompt


def test_defaults_are_valid_and_serialize():
    s = RefineSettings()
    assert s.control == ("canny",)
    data = s.to_json()
    assert data["control"] == "canny" and data["controlnet"] == []


def test_control_and_controlnet_forms():
    assert RefineSettings(control="canny+depth").control == ("canny", "depth")
    assert RefineSettings(control=["depth"]).control == ("depth",)
    assert RefineSettings(controlnet="some/cn").controlnet == ("some/cn",)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"control": "canny+edges"}, "--control: expected canny, depth or canny\\+depth, got 'canny\\+edges'"),
        ({"strength": 0.0}, "--strength"),
        ({"strength": 1.5}, "--strength"),
        ({"steps": 0}, "--steps"),
        ({"steps": 2, "strength": 0.3}, "runs no denoising step"),
        ({"seed": -1}, "--seed"),
        ({"batch_size": 0}, "--batch-size"),
        ({"device": "gpu"}, "--device: expected one of auto, cuda, cpu, got 'gpu'"),
        ({"dtype": "bf16"}, "--dtype"),
        ({"pipeline": "fluxx"}, "did you mean 'flux'"),
        ({"prompt_template": "a photo of {categorys}"}, "did you mean 'categories'"),
        ({"prompt_template": "a photo of {"}, "malformed"),
        ({"controlnet": ("a/b", "c/d", "e/f"), "control": "canny+depth"}, "one union ControlNet or one per control"),
        ({"cpu_offload": True, "device": "cpu"}, "--cpu-offload"),
    ],
)
def test_invalid_settings_name_the_option(kwargs, match):
    with pytest.raises(RefineSettingsError, match=match) as info:
        RefineSettings(**kwargs)
    assert isinstance(info.value, SimgenError)


def test_prompt_rendering():
    cats = ["duck", "mug", "duck", "glass", "teddy_bear", "berry"]
    prompt = render_prompt("a photo of {categories} on a wooden table", cats, frame=3, scene=1)
    assert prompt == "a photo of two ducks, a mug, a glass, a teddy bear and a berry on a wooden table"
    assert render_prompt("{category_list}|{n_objects}|{frame}|{scene}", ["ox", "ox"], frame=7, scene=None) == "ox|2|7|"
    assert render_prompt("{categories}", [], frame=0, scene=0) == "objects"
    assert render_prompt("{categories}", ["apple"], frame=0, scene=0) == "an apple"


def test_frame_seed_depends_on_seed_and_frame_only():
    assert frame_seed(0, 5) == frame_seed(0, 5)
    seeds = {frame_seed(s, i) for s in range(3) for i in range(50)}
    assert len(seeds) == 150
    assert all(0 <= x < 2**63 for x in seeds)


def test_parse_control():
    assert parse_control("Canny + Depth") == ("canny", "depth")
    assert parse_control("depth+depth") == ("depth",)
    with pytest.raises(ValueError, match="control"):
        parse_control("")


def test_canny_control_is_white_edges_on_black():
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[8:24, 8:24] = 255
    out = canny_control(rgb)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 255}
    assert out[8, 8:24].max() == 255 and out[0, 0].max() == 0
    assert (out[..., 0] == out[..., 1]).all()


def test_depth_control_is_near_bright_and_missing_black():
    depth = np.full((16, 16), 2000, np.uint16)
    depth[4:8, 4:8] = 500  # near
    depth[0, :] = 0  # no data
    out = depth_control(depth)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert out[5, 5, 0] > out[12, 12, 0]
    assert (out[0] == 0).all()
    assert depth_control(np.zeros((4, 4), np.uint16)).max() == 0


def test_control_images_order_and_missing_depth():
    rgb = np.zeros((8, 8, 3), np.uint8)
    depth = np.full((8, 8), 1000, np.uint16)
    out = control_images(("depth", "canny"), rgb, depth)
    assert len(out) == 2 and out[1].max() == 0
    with pytest.raises(ValueError, match="depth map"):
        control_images(("depth",), rgb, None)
