"""``validate_datasets`` end to end, report.json + report.html (parsed, and screenshotted when Chromium is here), the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from simgen.testing.html import chromium_path, parse_page, screenshot

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from simgen.validators.pipeline import feature_metrics, validate_datasets  # noqa: E402
from simgen.validators.report import write_report  # noqa: E402


@pytest.fixture
def two_datasets(make_dataset, tiny_torchscript, tmp_path):
    real = make_dataset("real", photo=0, n_frames=10, seed=1)
    syn = make_dataset("syn", photo=1, n_frames=10, offset=200, seed=2)
    return syn, real, tiny_torchscript(tmp_path / "tiny.pt", 64)


def test_validate_writes_json_and_a_self_contained_html_that_renders(two_datasets, tmp_path):
    syn, real, tiny = two_datasets
    report = validate_datasets(syn, real, extractor=str(tiny), utility="none", n_boot=20, seed=3)
    json_path, html_path = write_report(report, tmp_path / "report")
    doc = json.loads(json_path.read_text())
    assert doc["extractor"].startswith("tiny:")
    assert set(doc["metrics"]) == {"fid", "kid", "mmd", "precision", "recall", "density", "coverage"}
    for m in doc["metrics"].values():
        assert m["ci"][0] <= m["ci"][1] and m["n_boot"] == 20
    assert doc["metrics"]["fid"]["ci"][0] <= doc["metrics"]["fid"]["value"] <= doc["metrics"]["fid"]["ci"][1]
    assert doc["labels"]["synthetic"] == {"checked": True, "n_problems": 0, "by_kind": {}, "problems": []}
    from collections import Counter

    coco = json.loads((syn / "annotations.coco.json").read_text())
    names = {1: "zero", 2: "one", 3: "two"}
    assert doc["class_counts"]["synthetic"] == dict(Counter(names[a["category_id"]] for a in coco["annotations"]))
    assert sum(doc["class_counts"]["synthetic"].values()) == 30
    assert "camera/look-at-shell-v1 camera.distance" in doc["parameters"]
    assert len(doc["parameters"]["camera/look-at-shell-v1 camera.distance"]["values"]) == 10
    assert len(doc["projection"]["real"]) == 10 and len(doc["projection"]["synthetic"]) == 10
    assert doc["utility"] == {"skipped": "utility disabled (--utility none)"}
    # The same seed gives the same numbers (features come from the cache the second time).
    again = validate_datasets(syn, real, extractor=str(tiny), utility="none", n_boot=20, seed=3)
    assert again.metrics == report.metrics
    assert list((syn / ".simgen" / "features").glob("tiny*.npz"))

    text = html_path.read_text()
    page = parse_page(text)
    assert page.headings[:3] == ["Distribution metrics", "Utility: train on synthetic, test on real", "Samples"]
    assert {"Objects per class", "Randomized parameters (synthetic manifest)", "Feature projection",
            "Label validator"} <= set(page.headings)  # fmt: skip
    assert len(page.images) >= 5 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.fetched == []  # self-contained: no scripts, stylesheets or links to fetch
    assert all(png is not None for png in page.decoded_images())
    assert "FID" in text and "[" in text


@pytest.mark.skipif(chromium_path() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_html_report_renders_in_headless_chromium(two_datasets, tmp_path):
    syn, real, tiny = two_datasets
    report = validate_datasets(syn, real, extractor=str(tiny), utility="crops", utility_options={"image_size": 64},
                               n_boot=10)  # fmt: skip
    assert "tstr" in report.utility, report.utility
    _, html_path = write_report(report, tmp_path / "report")
    img = screenshot(html_path, height=2000)
    assert img.shape[:2] == (2000, 1200)
    # The page drew something: many distinct colours, and the plots' blue and red bars are there.
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 500
    b, g, r = (img[..., i].astype(int) for i in range(3))
    assert ((b > 150) & (r < 80)).sum() > 500 and ((r > 170) & (b < 80) & (g < 80)).sum() > 100
    # The top of the page is the white page with the title, not an error page.
    assert (img[:40].reshape(-1, 3) > 240).all(axis=1).mean() > 0.8


def test_an_image_folder_as_real_skips_the_utility(make_dataset, tiny_torchscript, tmp_path):
    syn = make_dataset("syn", n_frames=6)
    folder = tmp_path / "real_images"
    (folder / "nested").mkdir(parents=True)
    for i, p in enumerate(sorted((make_dataset("real", n_frames=6, photo=1) / "images").glob("*.png"))):
        shutil.copy(p, folder / ("nested" if i % 2 else "") / f"r{i}.png")
    report = validate_datasets(syn, folder, extractor=str(tiny_torchscript(tmp_path / "t.pt", 32)), n_boot=5)
    assert report.real["kind"] == "folder" and report.real["images"] == 6
    assert report.labels["real"]["checked"] is False
    assert "skipped" in report.utility and any("utility" in w for w in report.warnings)
    html = write_report(report, tmp_path / "out")[1].read_text()
    assert "image folder" in html


def test_feature_metrics_separate_near_and_far_feature_sets():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(80, 16))
    near, far = rng.normal(size=(80, 16)), rng.normal(size=(80, 16)) + 2.0
    m_near, _ = feature_metrics(real, near, n_boot=10)
    m_far, _ = feature_metrics(real, far, n_boot=10)
    for name in ("fid", "kid", "mmd"):
        assert m_far[name]["value"] > m_near[name]["value"]
        assert m_far[name]["ci"][0] > m_near[name]["ci"][1]
    for name in ("precision", "recall", "coverage"):
        assert m_near[name]["value"] > m_far[name]["value"]
    capped, warnings = feature_metrics(real, far, n_boot=5, max_pairwise_per_side=30)
    assert any("subsample of 30" in w for w in warnings)
    assert capped["fid"] == feature_metrics(real, far, n_boot=5)[0]["fid"]  # FID always uses every sample
    assert capped == feature_metrics(real, far, n_boot=5, max_pairwise_per_side=30)[0]  # seeded


def test_cli_validate_and_strict_exit_codes(two_datasets, tmp_path):
    from typer.testing import CliRunner

    from simgen.cli import app

    syn, real, tiny = two_datasets
    runner = CliRunner()
    args = ["validate", str(syn), "--real", str(real), "-o", str(tmp_path / "r1"), "--extractor", str(tiny),
            "--utility", "none", "--n-boot", "5", "--max-images", "8"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "fid" in res.output and (tmp_path / "r1" / "report.html").is_file()
    assert json.loads((tmp_path / "r1" / "report.json").read_text())["synthetic"]["images"] == 8
    # Plant a label error: reported, exit 0 without --strict and 1 with it.
    coco_path = syn / "annotations.coco.json"
    coco = json.loads(coco_path.read_text())
    coco["annotations"][0]["visibility"] = 2.0
    coco_path.write_text(json.dumps(coco))
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "1 problems" in res.output
    res = runner.invoke(app, [*args, "--strict"])
    assert res.exit_code == 1
    # A clean error (exit 2) for a bad argument.
    res = runner.invoke(app, ["validate", str(syn), "--real", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(app, [*args[:-4], "--utility", "crop"])
    assert res.exit_code == 2 and "did you mean 'crops'" in res.output


def test_unknown_extractor_names_suggest(two_datasets):
    from simgen.errors import SimgenError

    syn, real, _ = two_datasets
    with pytest.raises(SimgenError, match="did you mean 'inception'"):
        validate_datasets(syn, real, extractor="inceptoin", utility="none")


def test_report_json_has_no_nan(tmp_path, two_datasets):
    syn, real, tiny = two_datasets
    report = validate_datasets(syn, real, extractor=str(tiny), utility="none", n_boot=3)
    report.metrics["fid"]["value"] = float("nan")
    json_path, _ = write_report(report, Path(tmp_path / "nan"))
    assert json.loads(json_path.read_text())["metrics"]["fid"]["value"] is None


def test_feature_metrics_on_tiny_sets_do_not_crash():
    rng = np.random.default_rng(1)
    metrics, warnings = feature_metrics(rng.normal(size=(2, 5)), rng.normal(size=(3, 5)), n_boot=20)
    assert set(metrics) == {"fid", "kid", "mmd"} and any("PRDC skipped" in w for w in warnings)
    assert all(np.isfinite(m["value"]) for m in metrics.values())


def test_too_few_images_is_an_error_that_names_the_minimum(make_dataset, tiny_torchscript, tmp_path):
    """One real image gave exit 0, an empty metrics table and a warning about FID's bias (FID was not computed)."""
    from typer.testing import CliRunner

    from simgen.cli import app
    from simgen.errors import SimgenError

    rng = np.random.default_rng(1)
    with pytest.raises(SimgenError, match="1 synthetic; every metric needs at least 2 images per side"):
        feature_metrics(rng.normal(size=(3, 5)), rng.normal(size=(1, 5)))
    syn = make_dataset("syn", photo=1, n_frames=4, seed=2)
    real = make_dataset("real", photo=0, n_frames=1, seed=1)
    tiny = tiny_torchscript(tmp_path / "tiny.pt", 16)
    with pytest.raises(SimgenError, match="1 real; every metric needs at least 2 images per side"):
        validate_datasets(syn, real, extractor=str(tiny), utility="none", n_boot=3)
    out = tmp_path / "report"
    res = CliRunner().invoke(app, ["validate", str(syn), "--real", str(real), "-o", str(out), "--extractor", str(tiny),
                                   "--utility", "none"])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "too few images to compare: 1 real" in " ".join(res.output.split())
    assert not out.exists()  # no report that could pass for a result
