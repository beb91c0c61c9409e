"""Generate a tiny dataset with simgen's engine, then refine it (the real layout, end to end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simgen.cli import app
from simgen.refine import refine_dataset
from simgen.refine.run import REFINED_COCO


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, default_spec_path: Path) -> Path:
    from simgen.engine import generate

    out = tmp_path_factory.mktemp("gen") / "ds"
    generate(default_spec_path, out, n_frames=2, seed=0, resolution=(128, 96), renderer="tiny")
    return out


@pytest.fixture(scope="module")
def default_spec_path() -> Path:
    return Path(__file__).resolve().parents[2] / "scenes" / "tabletop_clutter.yaml"


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_generated_renders_pass_unchanged_and_fail_shifted(generated, tmp_path, function_refiner, planted):
    same = refine_dataset(_copy(generated, tmp_path / "same"), refiner=function_refiner(lambda im, s: im))
    assert same.summary["frames"]["accepted"] == 2 and same.summary["objects"]["fail"] == 0
    assert same.summary["objects"]["pass"] > same.summary["objects"]["unverified"]
    shifted = refine_dataset(_copy(generated, tmp_path / "shift"), refiner=function_refiner(
        lambda im, s: planted.shift(im, 10)))  # fmt: skip
    assert shifted.summary["frames"]["rejected"] == 2
    dataset = json.loads((tmp_path / "same" / "dataset.json").read_text())
    assert dataset["checksums"]["manifest.jsonl"] and dataset["refine"]["summary"]["frames"]["accepted"] == 2


@pytest.mark.torch
@pytest.mark.slow  # pays the one-off torch/diffusers import (about 12 s here) when run first
def test_generate_then_refine_with_tiny_flux(generated, tmp_path):
    from simgen.testing.tiny_flux import build_tiny_flux_controlnet

    model = build_tiny_flux_controlnet(tmp_path / "tiny-flux")
    out = _copy(generated, tmp_path / "ds")
    args = ["refine", str(out), "--model", str(model), "--steps", "2", "--strength", "0.5",
            "--max-sequence-length", "32", "--control", "canny", "--on-mismatch", "flag"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    refined = json.loads((out / REFINED_COCO).read_text())
    assert [im["file_name"] for im in refined["images"]] == ["refined/000000.png", "refined/000001.png"]
    assert all(im["refine"]["status"] in ("accepted", "flagged") for im in refined["images"])
    original = json.loads((out / "annotations.coco.json").read_text())
    assert len(refined["annotations"]) == len(original["annotations"])
