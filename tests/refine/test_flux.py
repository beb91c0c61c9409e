"""simgen refine with a tiny random FLUX ControlNet pipeline saved to disk and loaded through from_pretrained.

The tiny model's images are noise, so the label check rejects them: these tests cover loading,
determinism, provenance and error messages, not image quality.
"""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from simgen.cli import app
from simgen.errors import DependencyMissing
from simgen.refine import ModelNotFound, RefineSettings, frame_seed, refine_dataset
from simgen.refine.run import REFINED_COCO

pytestmark = pytest.mark.torch

TINY = ["--steps", "2", "--strength", "0.5", "--max-sequence-length", "32", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_flux(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from simgen.testing.tiny_flux import build_tiny_flux_controlnet

    return build_tiny_flux_controlnet(tmp_path_factory.mktemp("models") / "tiny-flux")


@pytest.fixture(scope="module")
def tiny_flux_union(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from simgen.testing.tiny_flux import build_tiny_flux_controlnet

    return build_tiny_flux_controlnet(tmp_path_factory.mktemp("models") / "tiny-flux-union", union=True)


def _refine(out: Path, *args: str) -> dict:
    result = CliRunner().invoke(app, ["refine", str(out), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _images(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "refined").rglob("*.png"))}


def test_cli_refines_through_from_pretrained_deterministically(make_dataset, tiny_flux):
    a, b, c = make_dataset("a", n_frames=2), make_dataset("b", n_frames=2), make_dataset("c", n_frames=2)
    summary = _refine(a, "--model", str(tiny_flux), *TINY, "--seed", "3", "--batch-size", "2")
    _refine(b, "--model", str(tiny_flux), *TINY, "--seed", "3", "--batch-size", "2")
    _refine(c, "--model", str(tiny_flux), *TINY, "--seed", "4", "--batch-size", "2")
    assert summary["frames"]["total"] == 2
    # Random weights paint noise: the check must not accept it.
    assert summary["frames"]["rejected"] == 2 and summary["frames"]["accepted"] == 0
    assert _images(a) == _images(b), "same seed, same bytes"
    assert _images(a) != _images(c), "another seed, other images"
    for png in (a / "refined" / "rejected").glob("*.png"):
        assert cv2.imread(str(png)).shape == (64, 64, 3)

    record = json.loads((a / "dataset.json").read_text())["refine"]
    model = record["model"]
    assert model["family"] == "flux" and model["pipeline_class"] == "FluxControlNetImg2ImgPipeline"
    assert model["model"]["path"] == str(tiny_flux.resolve()) and len(model["model"]["config_sha256"]) == 64
    assert model["controlnet"][0]["subfolder"] == "controlnet" and model["dtype"] == "float32"
    assert model["versions"]["diffusers"] and model["versions"]["torch"]
    assert record["settings"]["steps"] == 2 and record["settings"]["strength"] == 0.5 and record["seed"] == 3
    for i, line in enumerate((a / "manifest.jsonl").read_text().splitlines()):
        r = json.loads(line)["refine"]
        assert r["seed"] == frame_seed(3, i) and r["status"] == "rejected" and r["check"]["reasons"]
    refined = json.loads((a / REFINED_COCO).read_text())
    assert refined["images"] == [] and refined["info"]["refine"]["model"]["family"] == "flux"


def test_batching_does_not_change_a_frame(make_dataset, tiny_flux):
    a, b = make_dataset("a", n_frames=2), make_dataset("b", n_frames=2)
    _refine(a, "--model", str(tiny_flux), *TINY, "--batch-size", "1", "--on-mismatch", "flag")
    _refine(b, "--model", str(tiny_flux), *TINY, "--batch-size", "2", "--on-mismatch", "flag")
    for name in ("refined/000000.png", "refined/000001.png"):
        x, y = (cv2.imread(str(d / name)).astype(int) for d in (a, b))
        assert np.abs(x - y).max() <= 2  # per-frame generators; only float batching noise may differ


def test_canny_depth_with_a_union_controlnet_and_text_to_image(make_dataset, tiny_flux_union):
    out = make_dataset(n_frames=1)
    _refine(out, "--model", str(tiny_flux_union), *TINY, "--control", "canny+depth")
    model = json.loads((out / "dataset.json").read_text())["refine"]["model"]
    assert model["controlnet_union"] is True and model["control_mode"] == [0, 2]
    out2 = make_dataset("t2i", n_frames=1)
    args = ["--model", str(tiny_flux_union), "--steps", "2", "--strength", "1", "--max-sequence-length", "32"]
    _refine(out2, *args, "--control", "depth")
    model = json.loads((out2 / "dataset.json").read_text())["refine"]["model"]
    assert model["pipeline_class"] == "FluxControlNetPipeline" and model["control_mode"] == 2


def test_two_controlnets_for_canny_depth(make_dataset, tiny_flux):
    out = make_dataset(n_frames=1)
    cn = str(tiny_flux / "controlnet")
    _refine(out, "--model", str(tiny_flux), *TINY, "--control", "canny+depth", "--controlnet", cn, "--controlnet", cn)
    model = json.loads((out / "dataset.json").read_text())["refine"]["model"]
    assert len(model["controlnet"]) == 2 and model["controlnet_union"] is False


def test_a_single_plain_controlnet_cannot_serve_two_controls(make_dataset, tiny_flux):
    out = make_dataset(n_frames=1)
    result = CliRunner().invoke(app, ["refine", str(out), "--model", str(tiny_flux), *TINY, "--control", "canny+depth"])
    assert result.exit_code != 0 and "union ControlNet" in str(result.exception)


def test_sd_controlnet_path_same_interface(make_dataset, tmp_path):
    from simgen.testing.tiny_flux import build_tiny_sd_controlnet

    model = build_tiny_sd_controlnet(tmp_path / "tiny-sd")
    out = make_dataset(n_frames=2)
    summary = _refine(out, "--model", str(model), "--steps", "2", "--strength", "0.5", "--device", "cpu")
    assert summary["frames"]["total"] == 2
    record = json.loads((out / "dataset.json").read_text())["refine"]
    assert record["model"]["family"] == "sd"
    assert record["model"]["pipeline_class"] == "StableDiffusionControlNetImg2ImgPipeline"
    assert record["check"]["min_object_score"] == 0.5  # the same label check runs


def test_missing_local_model_is_a_clear_error(make_dataset, tmp_path):
    out = make_dataset(n_frames=1)
    with pytest.raises(ModelNotFound, match="no such folder"):
        refine_dataset(out, RefineSettings(model=str(tmp_path / "missing")))
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(ModelNotFound, match="model_index.json is missing"):
        refine_dataset(out, RefineSettings(model=str(tmp_path / "notamodel")))


def test_uncached_hub_model_offline_names_the_download(make_dataset, monkeypatch, tmp_path):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    out = make_dataset(n_frames=1)
    start = time.perf_counter()
    with pytest.raises(ModelNotFound) as info:
        refine_dataset(out)  # defaults: black-forest-labs/FLUX.1-dev
    assert time.perf_counter() - start < 5
    assert "huggingface-cli download black-forest-labs/FLUX.1-dev" in str(info.value)
    assert "HF_HUB_OFFLINE" in str(info.value)
    result = CliRunner().invoke(app, ["refine", str(out), "--controlnet", "InstantX/FLUX.1-dev-Controlnet-Canny"])
    assert result.exit_code != 0 and "huggingface-cli download" in str(result.exception)


def test_uncached_controlnet_offline_names_the_download(make_dataset, tiny_flux, monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    out = make_dataset(n_frames=1)
    with pytest.raises(ModelNotFound, match="huggingface-cli download InstantX/FLUX.1-dev-Controlnet-Canny"):
        refine_dataset(out, RefineSettings(model=str(tiny_flux), controlnet=("InstantX/FLUX.1-dev-Controlnet-Canny",)))


def test_missing_extra_names_the_pip_install(make_dataset, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real_find_spec(name, *a)
    )
    out = make_dataset(n_frames=1)
    with pytest.raises(DependencyMissing, match=r"pip install 'simgen\[refine\]'") as info:
        refine_dataset(out, RefineSettings(model="/does/not/matter"))  # the extra is reported first
    assert info.value.package == "diffusers" and info.value.extra == "refine"
    result = CliRunner().invoke(app, ["refine", str(out)])
    assert result.exit_code != 0 and "simgen[refine]" in str(result.exception)


def test_failing_import_of_the_extra_names_the_pip_install(monkeypatch):
    from simgen.refine.loading import import_refine_extra

    real_import = builtins.__import__

    def no_diffusers(name, *args, **kwargs):
        if name == "diffusers" or name.startswith("diffusers."):
            raise ImportError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "diffusers", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_diffusers)
    with pytest.raises(DependencyMissing, match=r"diffusers is needed .*pip install 'simgen\[refine\]'"):
        import_refine_extra()


def test_device_cuda_runs_on_a_gpu_and_fails_clearly_without_one(make_dataset, tiny_flux):
    import torch

    from simgen.refine import RefineSettingsError

    out = make_dataset(n_frames=1)
    settings = RefineSettings(model=str(tiny_flux), device="cuda", steps=2, strength=0.5, max_sequence_length=32)
    if not torch.cuda.is_available():
        with pytest.raises(RefineSettingsError, match="no CUDA device"):
            refine_dataset(out, settings)
        return
    result = refine_dataset(out, settings)  # on a GPU machine: the real CUDA + bfloat16 path
    assert result.summary["frames"]["total"] == 1
    model = json.loads((out / "dataset.json").read_text())["refine"]["model"]
    assert model["device"] == "cuda" and model["dtype"] in ("bfloat16", "float16")
