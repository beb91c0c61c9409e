"""The memorisation check on image features: planted copies of real images are flagged, independent sets are not."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from simgen.validators.privacy import feature_privacy


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_feature_privacy_flags_planted_copies_and_not_a_fresh_sample():
    g = rng(0)
    train, fresh = g.normal(size=(300, 32)), g.normal(size=(200, 32))
    clean = feature_privacy(train, fresh, rng=rng(1), n_boot=20)
    assert clean["mode"] == "train-only" and not clean["flagged"] and clean["flags"] == []
    assert clean["exact_copy_share"]["value"] == 0.0 and clean["close_share"]["value"] < 0.1
    planted = fresh.copy()
    planted[:40] = train[:40] + g.normal(scale=1e-9, size=(40, 32))  # copies, with float noise from batching
    leak = feature_privacy(train, planted, rng=rng(1), n_boot=20)
    assert leak["flagged"] and leak["exact_copy_share"]["value"] == pytest.approx(0.2)
    assert "40 of 200 synthetic records (20.0%) are exact copies" in leak["flags"][0]
    assert leak["dcr"]["synthetic_to_train"]["p05"] == pytest.approx(0.0, abs=1e-6)
    json.dumps(leak, allow_nan=False)


def test_feature_privacy_with_a_holdout_uses_the_full_privacy_metrics():
    g = rng(2)
    train, holdout, fresh = g.normal(size=(200, 16)), g.normal(size=(200, 16)), g.normal(size=(200, 16))
    clean = feature_privacy(train, fresh, holdout, rng=rng(3), n_boot=20)
    assert clean["mode"] == "holdout" and not clean["flagged"]
    assert clean["dcr_share"]["value"] == pytest.approx(0.5, abs=0.1) and clean["metric"] == "euclidean"
    leak = feature_privacy(train, train[::-1].copy(), holdout, rng=rng(3), n_boot=20)
    assert leak["flagged"] and leak["exact_copy_share"]["value"] == 1.0 and leak["mia_auc"]["value"] == 1.0
    assert len(leak["flags"]) == 3  # copies, DCR share, membership inference


@pytest.mark.torch
def test_validate_flags_a_synthetic_set_holding_real_images(make_dataset, tiny_torchscript, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from simgen.testing.html import parse_page
    from simgen.validators.pipeline import validate_datasets
    from simgen.validators.report import write_report

    tiny = str(tiny_torchscript(tmp_path / "tiny.pt", 64))
    real = make_dataset("real", photo=0, n_frames=10, seed=1)
    independent = make_dataset("syn", photo=1, n_frames=10, offset=200, seed=2)
    report = validate_datasets(independent, real, extractor=tiny, utility="none", n_boot=10, check_labels=False)
    assert report.privacy["mode"] == "train-only" and not report.privacy["flagged"]
    assert report.privacy["exact_copy_share"]["value"] == 0.0
    # Plant 4 real images among the synthetic ones (what a memorising diffusion model would produce).
    planted = make_dataset("planted", photo=1, n_frames=10, offset=200, seed=2)
    for i in range(4):
        shutil.copy(real / "images" / f"{i:06d}.png", planted / "images" / f"{i + 3:06d}.png")
    leak = validate_datasets(planted, real, extractor=tiny, utility="none", n_boot=10, check_labels=False)
    assert leak.privacy["flagged"] and leak.privacy["exact_copy_share"]["value"] == pytest.approx(0.4)
    assert any(w.startswith("privacy: 4 of 10 synthetic records") for w in leak.warnings)
    _, html_path = write_report(leak, tmp_path / "report")
    page = parse_page(html_path)
    assert "Privacy: memorisation check" in page.headings and "flagged" in page.visible_text
    # With a holdout of real images the generator never saw: DCR share and membership inference too.
    holdout = make_dataset("holdout", photo=0, n_frames=10, offset=400, seed=3)
    full = validate_datasets(planted, real, extractor=tiny, utility="none", n_boot=10, check_labels=False,
                             holdout=holdout)  # fmt: skip
    assert full.privacy["mode"] == "holdout" and full.privacy["exact_copy_share"]["value"] == pytest.approx(0.4)
    assert full.privacy["sizes"] == {"train": 10, "holdout": 10, "synthetic": 10, "equal_size": 10}
    assert json.loads(write_report(full, tmp_path / "r2")[0].read_text())["privacy"]["flagged"] is True


@pytest.mark.torch
def test_cli_passes_the_image_holdout_and_prints_the_flag(make_dataset, tiny_torchscript, tmp_path):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from simgen.cli import app

    tiny = str(tiny_torchscript(tmp_path / "tiny.pt", 32))
    real = make_dataset("real", photo=0, n_frames=6, seed=1)
    holdout = make_dataset("holdout", photo=0, n_frames=6, offset=400, seed=3)
    shutil.copytree(real, tmp_path / "copied")  # a "generator" that returns its training images
    res = CliRunner().invoke(app, ["validate", str(tmp_path / "copied"), "--real", str(real), "--holdout",
                                   str(holdout), "--extractor", tiny, "--utility", "none", "--n-boot", "5",
                                   "-o", str(tmp_path / "r")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "privacy: flagged" in res.output and "6 of 6 synthetic records" in " ".join(res.output.split())
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert doc["privacy"]["mode"] == "holdout" and doc["privacy"]["dcr_share"]["value"] == 1.0
