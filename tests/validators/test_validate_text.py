"""``simgen validate`` on text: records.jsonl against the seeds, report.json/html, Chromium, the CLI and its errors."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

pytest.importorskip("rouge_score", reason="the [text] extra is not installed")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from typer.testing import CliRunner

from simgen.cli import app
from simgen.generators.text.records import CriticVerdict, TextRecord, load_seeds, records_jsonl
from simgen.testing.html import chromium_path, parse_page, screenshot
from simgen.validators.report import write_report
from simgen.validators.text_report import read_seed_file, validate_text_dataset

TEXT_HEADINGS = [
    "Diversity",
    "Novelty against the seeds",
    "Privacy: copies of the seeds",
    "Lengths and types",
    "Real/synthetic mix",
    "Critic scores",
]
TOPICS = ["a forklift", "a drone battery", "lidar glare", "a warehouse robot", "a label typo", "conveyor jams"]


def _seeds_path():
    return resources.files("simgen.generators.text").joinpath("seeds", "simgen_seed_tasks.jsonl")


@pytest.fixture
def text_dataset(tmp_path):
    """A text dataset folder: 3 real seeds carried along, 2 planted copies of seeds, 6 new instructions."""
    seeds = load_seeds()
    verdict = {"status": "ok", "passed": True, "threshold": 3.0, "template": "critic/rubric-v1",
               "template_sha256": "0" * 64}  # fmt: skip
    synthetic = [
        TextRecord(id="copy-0", instruction=seeds[0].instruction, input=seeds[0].input, operation="self-instruct/propose",
                   origin="synthetic", generation=1),
        TextRecord(id="copy-1", instruction=seeds[1].instruction.upper(), input=seeds[1].input,
                   operation="self-instruct/propose", origin="synthetic", generation=1),
    ]  # fmt: skip
    for i, topic in enumerate(TOPICS):
        synthetic.append(
            TextRecord(
                id=f"new-{i}",
                instruction=f"Write a short safety note about {topic} for night-shift operators.",
                output="Check it twice. " * (i + 1),
                operation="evol-instruct/deepen",
                origin="synthetic",
                generation=1 + i % 2,
                critic=CriticVerdict(scores={"helpfulness": 1 + i % 5, "accuracy": 4}, mean=3.0, **verdict),
            )
        )
    folder = tmp_path / "textset"
    folder.mkdir()
    (folder / "records.jsonl").write_text(records_jsonl([*seeds[:3], *synthetic]))
    (folder / "dataset.json").write_text(json.dumps({"modality": "text", "seed": 0}))
    return folder


def test_text_report_measures_diversity_novelty_copies_mix_and_critic(text_dataset, tmp_path):
    with resources.as_file(_seeds_path()) as seeds_file:
        report = validate_text_dataset(text_dataset, seeds_file)
    json_path, html_path = write_report(report, tmp_path / "report")
    doc = json.loads(json_path.read_text())
    assert doc["modality"] == "text" and doc["synthetic"]["synthetic_records"] == 8 and doc["real"]["records"] == 40
    for name in ("distinct_1", "distinct_2", "self_bleu", "compression_ratio", "tfidf_spread", "novelty_rouge_l"):
        assert doc["metrics"][name]["value"] is not None, name
    assert doc["metrics"]["distinct_2"]["real"] is not None  # the seeds measured the same way, as the baseline
    privacy = doc["privacy"]
    assert privacy["exact"] == 2 and privacy["near"] == 0 and privacy["share"] == pytest.approx(2 / 8)
    assert {c["id"] for c in privacy["examples"]} == {"copy-0", "copy-1"}
    assert doc["novelty"]["share_above_0.7"] == pytest.approx(2 / 8)
    assert doc["dataset_mix"]["origin"] == {"real": 3, "synthetic": 8} and doc["dataset_mix"]["generation"] == {
        "0": 3,
        "1": 5,
        "2": 3,
    }
    assert doc["critic"]["n"] == 6 and doc["critic"]["aspects"]["accuracy"]["counts"]["4"] == 6
    page = parse_page(html_path)
    assert page.headings == TEXT_HEADINGS
    assert page.fetched == [] and len(page.images) == 3  # novelty, lengths, critic
    assert all(png is not None for png in page.decoded_images())
    assert "2 exact and 0 near-verbatim copies" in page.visible_text


def test_seeds_read_as_records_or_as_seed_tasks(text_dataset):
    records = read_seed_file(text_dataset / "records.jsonl")
    assert len(records) == 11 and records[0].origin == "real"
    with resources.as_file(_seeds_path()) as seeds_file:
        assert [r.id for r in read_seed_file(seeds_file)] == [r.id for r in load_seeds()]
    # Without --real the real records carried in the file are the seeds.
    report = validate_text_dataset(text_dataset / "records.jsonl")
    assert report.section["real"]["records"] == 3 and report.section["privacy"]["exact"] == 2


def test_cli_validates_text_and_refuses_table_options(text_dataset, tmp_path):
    runner = CliRunner()
    with resources.as_file(_seeds_path()) as seeds_file:
        args = ["validate", str(text_dataset), "--real", str(seeds_file), "-o", str(tmp_path / "r")]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "distinct_2" in res.output and "2 exact and 0 near-verbatim copies" in res.output
        assert json.loads((tmp_path / "r" / "report.json").read_text())["modality"] == "text"
        res = runner.invoke(app, [*args, "--target", "output"])
        assert res.exit_code == 2 and "--target: for tables only" in " ".join(res.output.split())
        res = runner.invoke(app, [*args, "--field", "title"])
        assert res.exit_code == 2 and "unknown text field 'title'" in " ".join(res.output.split())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "instruction": "hi", "operation": "seed", "origin": "synthetic"}\n')
    res = runner.invoke(app, ["validate", str(bad), "--real", str(text_dataset / "records.jsonl")])
    assert res.exit_code == 2 and "bad.jsonl:1" in " ".join(res.output.split()) and "generation" in res.output


@pytest.mark.skipif(chromium_path() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_text_report_renders_in_headless_chromium(text_dataset, tmp_path):
    with resources.as_file(_seeds_path()) as seeds_file:
        report = validate_text_dataset(text_dataset, seeds_file)
    _, html_path = write_report(report, tmp_path / "report")
    img = screenshot(html_path, height=2400)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 300
    b, r = img[..., 0].astype(int), img[..., 2].astype(int)
    assert ((b > 150) & (r < 80)).sum() > 1000  # the synthetic (blue) bars
    assert (img[:40].reshape(-1, 3) > 240).all(axis=1).mean() > 0.8
