"""``simgen validate`` on tables: report.json/html (parsed, and screenshotted in headless Chromium), errors, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from typer.testing import CliRunner  # noqa: E402

from simgen.cli import app  # noqa: E402
from simgen.errors import SimgenError  # noqa: E402
from simgen.testing.html import chromium_path, parse_page, screenshot  # noqa: E402
from simgen.validators.detect import detect_modality  # noqa: E402
from simgen.validators.report import write_report  # noqa: E402
from simgen.validators.tables import validate_tables  # noqa: E402

TABLE_HEADINGS = [
    "Scores",
    "Fidelity: column shapes",
    "Marginals: real vs synthetic",
    "Fidelity: column-pair trends",
    "Utility: train on synthetic, test on real",
    "Privacy",
]


def _one_line(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture(scope="module")
def wine_files(tmp_path_factory):
    """Real wine rows split 50/50 into train.csv and holdout.csv, and a Gaussian-copula synthetic table."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    from simgen.generators import DEFAULT_TABULAR, REGISTRY
    from simgen.generators.tabular.metadata import infer_metadata

    data = load_wine(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame["cultivar"] = np.asarray(data.target_names)[data.target.to_numpy()]
    train, holdout = train_test_split(frame, test_size=0.5, random_state=0, stratify=frame["cultivar"])
    train, holdout = train.reset_index(drop=True), holdout.reset_index(drop=True)
    model = REGISTRY.get(DEFAULT_TABULAR)().fit(train, infer_metadata(train), np.random.default_rng(0))
    root = tmp_path_factory.mktemp("wine")
    paths = {name: root / f"{name}.csv" for name in ("train", "holdout", "syn")}
    train.to_csv(paths["train"], index=False)
    holdout.to_csv(paths["holdout"], index=False)
    model.sample(len(train), np.random.default_rng(1)).to_csv(paths["syn"], index=False)
    return paths


def test_table_report_has_fidelity_utility_privacy_with_intervals(wine_files, tmp_path):
    f = wine_files
    report = validate_tables(f["syn"], f["train"], f["holdout"], target="cultivar", n_boot=10, seed=3)
    json_path, html_path = write_report(report, tmp_path / "report")
    doc = json.loads(json_path.read_text())
    assert doc["modality"] == "tables" and doc["columns"]["cultivar"] == "categorical"
    want = {"quality_score", "column_shapes", "column_pair_trends", "tstr_trtr_ratio", "dcr_share", "mia_auc",
            "exact_copy_share"}  # fmt: skip
    assert set(doc["metrics"]) == want
    for name, m in doc["metrics"].items():
        assert m["n_boot"] == 10 and m["ci"][0] <= m["value"] <= m["ci"][1], name
    assert 0.8 < doc["metrics"]["quality_score"]["value"] < 1.0
    assert set(doc["fidelity"]["column_shapes"]["details"]) == set(doc["columns"])
    assert len(doc["fidelity"]["correlations"]["real"]) == 13  # the 13 measurements
    assert doc["utility"]["task"] == "classification" and doc["utility"]["target"] == "cultivar"
    assert doc["privacy"]["sizes"]["train"] == 89 and doc["privacy"]["exact_copy_share"]["value"] == 0.0
    hist = doc["privacy"]["dcr_histogram"]
    assert sum(hist["synthetic"]) == 89 and sum(hist["baseline"]) == 89
    # Seeded: the same call gives the same numbers.
    again = validate_tables(f["syn"], f["train"], f["holdout"], target="cultivar", n_boot=10, seed=3)
    assert again.metrics == report.metrics

    page = parse_page(html_path)
    assert page.headings == TABLE_HEADINGS
    assert page.fetched == [] and len(page.images) == 4  # shapes, marginals, heatmaps, DCR histograms
    assert all(png is not None and png.shape[0] > 100 for png in page.decoded_images())
    assert "KSComplement" in page.visible_text and "TVComplement" in page.visible_text


def test_a_copy_of_the_training_rows_is_caught(wine_files, tmp_path):
    f = wine_files
    report = validate_tables(f["train"], f["train"], f["holdout"], n_boot=5)
    assert report.metrics["exact_copy_share"]["value"] == 1.0 and report.metrics["dcr_share"]["value"] == 1.0
    assert report.metrics["mia_auc"]["value"] == 1.0
    assert any("copy a training row exactly" in w for w in report.warnings)


def test_without_holdout_privacy_and_utility_are_skipped_with_the_reason(wine_files, tmp_path):
    f = wine_files
    report = validate_tables(f["syn"], f["train"], target="cultivar", n_boot=5)
    doc = report.as_dict()
    assert "no --holdout" in doc["privacy"]["skipped"] and "no --holdout" in doc["utility"]["skipped"]
    assert set(doc["metrics"]) == {"quality_score", "column_shapes", "column_pair_trends"}
    _, html_path = write_report(report, tmp_path / "r")
    text = parse_page(html_path).visible_text
    assert "Skipped: no --holdout" in text


def test_target_task_and_column_errors_name_the_column(wine_files, tmp_path):
    f = wine_files
    with pytest.raises(
        SimgenError, match=r"--target: no column 'cultivr' in the real table \(did you mean 'cultivar'\?\)"
    ):
        validate_tables(f["syn"], f["train"], f["holdout"], target="cultivr")
    with pytest.raises(SimgenError, match=r"unknown task 'regresion' \(did you mean 'regression'\?\)"):
        validate_tables(f["syn"], f["train"], f["holdout"], target="alcohol", task="regresion")  # type: ignore[arg-type]
    with pytest.raises(SimgenError, match="cultivar"):  # names are not numbers
        validate_tables(f["syn"], f["train"], f["holdout"], target="cultivar", task="regression")
    # A numeric column as a class label when asked.
    forced = validate_tables(f["syn"], f["train"], f["holdout"], target="magnesium", task="classification", n_boot=2)
    assert forced.utility["task"] == "classification" and forced.columns["magnesium"] == "categorical"
    regression = validate_tables(f["syn"], f["train"], f["holdout"], target="alcohol", n_boot=2)
    assert regression.utility["task"] == "regression" and "tstr_trtr_ratio" in regression.metrics
    renamed = pd.read_csv(f["syn"]).rename(columns={"alcohol": "alcohl"}).drop(columns="hue")
    renamed.to_csv(tmp_path / "renamed.csv", index=False)
    with pytest.raises(SimgenError, match=r"missing 'alcohol', 'hue' \(did you mean 'alcohl'\?\); extra 'alcohl'"):
        validate_tables(tmp_path / "renamed.csv", f["train"], f["holdout"])


def test_cli_validates_a_simgen_table_dataset_and_errors_are_one_line(wine_files, tmp_path):
    f = wine_files
    runner = CliRunner()
    out = tmp_path / "generated"
    res = runner.invoke(app, ["tabular", "generate", str(f["train"]), "-n", "150", "-o", str(out), "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert detect_modality(out) == "tables"
    args = ["validate", str(out), "--real", str(f["train"]), "--holdout", str(f["holdout"]), "--target", "cultivar",
            "--n-boot", "5", "-o", str(tmp_path / "report")]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    assert doc["settings"]["metadata"] == "dataset.json of the synthetic dataset"
    assert doc["synthetic"]["rows"] == 150 and doc["privacy"]["sizes"]["synthetic"] == 150
    assert "quality_score" in res.output and "utility (classification of cultivar)" in res.output
    res = runner.invoke(app, [*args[:-2], "--target", "cultivr"])
    assert res.exit_code == 2 and "did you mean 'cultivar'" in _one_line(res.output)
    assert len(res.output.strip().splitlines()) == 1, res.output
    res = runner.invoke(app, ["validate", str(out), "--real", str(f["train"]), "--extractor", "inception",
                              "--holdout", str(tmp_path / "nowhere.csv")])  # fmt: skip
    assert res.exit_code == 2 and "does not exist" in res.output


def test_modalities_are_detected_and_must_match(wine_files, tmp_path):
    f = wine_files
    (tmp_path / "texts.jsonl").write_text("")
    folder = tmp_path / "imgs"
    folder.mkdir()
    assert detect_modality(f["syn"]) == "tables" and detect_modality(tmp_path / "texts.jsonl") == "text"
    assert detect_modality(folder) == "images"
    res = CliRunner().invoke(app, ["validate", str(f["syn"]), "--real", str(tmp_path / "texts.jsonl")])
    assert res.exit_code == 2 and "holds tables but --real" in _one_line(res.output)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SimgenError, match="cannot tell what it holds"):
        detect_modality(tmp_path / "notes.txt")
    (folder / "dataset.json").write_text(json.dumps({"modality": "tabels"}))
    with pytest.raises(SimgenError, match="did you mean 'tables'"):
        detect_modality(folder)


@pytest.mark.skipif(chromium_path() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_table_report_renders_in_headless_chromium(wine_files, tmp_path):
    f = wine_files
    report = validate_tables(f["syn"], f["train"], f["holdout"], target="cultivar", n_boot=5)
    _, html_path = write_report(report, tmp_path / "report")
    img = screenshot(html_path, height=3000)
    assert img.shape[:2] == (3000, 1200)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 500  # plots, not a blank or error page
    b, g, r = (img[..., i].astype(int) for i in range(3))
    assert ((b > 150) & (r < 80)).sum() > 2000  # the synthetic (blue) bars and histograms
    assert ((r > 170) & (b < 80) & (g < 80)).sum() > 100  # real (red)
    assert (img[:40].reshape(-1, 3) > 240).all(axis=1).mean() > 0.8  # the white page with the title on top
    shutil.rmtree(tmp_path / "report")


def test_every_column_type_goes_through_the_report(tmp_path):
    """Ids, booleans, dates and missing values, from CSV files as a user has them, with the CART generator."""
    from simgen.generators import REGISTRY
    from simgen.generators.tabular.metadata import infer_metadata

    g = np.random.default_rng(7)
    n = 240
    table = pd.DataFrame(
        {
            "customer_id": [f"CUST-{i:05d}" for i in range(n)],
            "age": g.integers(18, 90, n),
            "member": g.random(n) < 0.3,
            "plan": g.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1]),
            "joined": pd.to_datetime("2020-01-01") + pd.to_timedelta(g.integers(0, 1000, n), unit="D"),
            "score": np.where(g.random(n) < 0.1, np.nan, np.round(g.normal(50, 10, n), 1)),
        }
    )
    train, holdout = table.iloc[:120].reset_index(drop=True), table.iloc[120:].reset_index(drop=True)
    model = REGISTRY.get("tabular/cart-v1")().fit(train, infer_metadata(train), np.random.default_rng(0))
    for name, t in (("train", train), ("holdout", holdout), ("syn", model.sample(120, np.random.default_rng(1)))):
        t.to_csv(tmp_path / f"{name}.csv", index=False)
    report = validate_tables(tmp_path / "syn.csv", tmp_path / "train.csv", tmp_path / "holdout.csv", target="plan",
                             n_boot=5)  # fmt: skip
    assert report.columns == {"customer_id": "id", "age": "numerical", "member": "boolean", "plan": "categorical",
                              "joined": "datetime", "score": "numerical"}  # fmt: skip
    shapes = report.fidelity["column_shapes"]["details"]
    assert set(shapes) == {"age", "member", "plan", "joined", "score"}  # the id column is not scored
    assert shapes["joined"]["metric"] == "KSComplement" and shapes["member"]["metric"] == "TVComplement"
    assert report.fidelity["correlations"]["columns"] == ["age", "joined", "score"]
    assert report.privacy["sizes"]["train"] == 120 and 0.0 <= report.metrics["dcr_share"]["value"] <= 1.0
    json_path, html_path = write_report(report, tmp_path / "report")
    json.loads(json_path.read_text())
    assert len(parse_page(html_path).images) == 4
