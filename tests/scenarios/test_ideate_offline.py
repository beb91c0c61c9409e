"""``simgen ideate`` without a model: the offline ideator, ``--from-report`` on a real ``simgen validate`` report,
and the parts (proposal validation and bounds, the distance between proposals, probe scaling, the KS critic)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simgen.errors import SpecError
from simgen.scenarios.ideation import (
    ScenarioProposal,
    check_proposal,
    ks_statistic,
    proposal_distance,
    proposal_features,
    read_focus,
)
from simgen.scenarios.ideation.probes import ProbeResult, auto_critic, probe_data
from simgen.spec import read_spec_file

ROOT = Path(__file__).resolve().parents[2]
SIMGEN = Path(sys.executable).parent / "simgen"
TINY = (Path(__file__).parent / "data" / "tiny_table.yaml").read_text()


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "specs" / "tiny.yaml"
    path.parent.mkdir()
    path.write_text(TINY)
    return path


def _fresh_env(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(HOME=str(home), HF_HUB_OFFLINE="1")
    return env


def _proposal(**kw: Any) -> ScenarioProposal:
    data = {"name": "p", "rationale": "r", "patch": {}, "require": [{"name": "any", "ge": 1}], **kw}
    return ScenarioProposal.model_validate(data)


# --- the offline ideator, through the CLI on a fresh environment ---------------------------------------------


@pytest.mark.slow
@pytest.mark.cli
def test_offline_ideator_runs_on_a_fresh_env_and_says_so_in_one_line(base, tmp_path):
    out = tmp_path / "scenarios"
    cmd = [str(SIMGEN), "ideate", str(base), "-n", "2", "-o", str(out), "--probe-width", "48", "--probe-frames", "3"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=_fresh_env(tmp_path), cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "ANTHROPIC_API_KEY" in line]
    assert notes == ["note: no ANTHROPIC_API_KEY: using the offline combinatorial ideator (factor library)"]
    rows = [json.loads(line) for line in (out / "ideation.jsonl").read_text().splitlines()]
    summary = rows[-1]
    assert summary["mode"] == "offline" and summary["proposed"] == 2
    assert summary["accepted"] + summary["rejected_by_critic"] + summary["duplicates"] + summary["invalid"] == 2
    # The library proposes the hardest levels one at a time first: heavy occlusion, then truncation at the border.
    assert [r["name"] for r in rows[:-1]] == ["heavy-occlusion", "border"]
    assert summary["files"] == ["border.yaml"]
    text = (out / "border.yaml").read_text()
    assert "model=offline/combinatorial-v1" in text.splitlines()[1]
    assert all(len(line) <= 80 for line in result.stdout.splitlines() if not line.startswith(("wrote", "pybullet")))
    # Nothing outside OUT: the probes' temporary folders are gone, the working folder is untouched.
    assert not list((out / ".simgen").glob("probes-*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenarios", "specs"]


# --- --from-report, from a real report.json of validate_datasets -------------------------------------------


def _validators_conftest() -> Any:
    spec = importlib.util.spec_from_file_location("_validators_conftest", ROOT / "tests" / "validators" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real report.json: validate_datasets on tiny digit datasets (classes zero, one, two), written by write_report."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import numpy as np
    from sklearn.datasets import load_digits, load_sample_images

    from simgen.validators.pipeline import validate_datasets
    from simgen.validators.report import write_report

    helpers = _validators_conftest()
    root = tmp_path_factory.mktemp("validation")
    photos = [np.array(im, copy=True) for im in load_sample_images().images]
    d = load_digits(n_class=3)
    syn = helpers.write_dataset(root / "syn", helpers.digit_scenes(photos[0], d.images, d.target, n_frames=8))
    real = helpers.write_dataset(
        root / "real", helpers.digit_scenes(photos[1], d.images[40:], d.target[40:], n_frames=8, seed=1)
    )
    pytest.importorskip("torch")
    from simgen.testing.tiny_extractor import write_tiny_extractor

    extractor = write_tiny_extractor(root / "tiny.pt", 32)
    report = validate_datasets(syn, real, extractor=str(extractor), utility="crops",
                               utility_options={"image_size": 64}, n_boot=5, seed=0)  # fmt: skip
    json_path, _ = write_report(report, root / "validation")
    return json_path


@pytest.mark.slow
@pytest.mark.torch
def test_read_focus_picks_the_weakest_class_of_a_real_report(report_json):
    data = json.loads(report_json.read_text())
    per_class = data["utility"]["tstr"]["per_class"]
    expected = min(per_class, key=lambda c: (per_class[c]["f1"], -data["utility"]["gap"]["per_class"][c]["f1"], c))
    focus = read_focus(report_json, ["zero", "one", "two"], max_classes=1)
    assert focus.categories == (expected,)
    assert focus.classes[0].metric == "f1" and focus.classes[0].tstr == pytest.approx(per_class[expected]["f1"])
    assert focus.conditions[:3] == ("occlusion", "truncation", "lighting")
    assert f"'{expected}' (TSTR f1" in focus.goal_text()
    # A weak class the base spec cannot render is named, with a did-you-mean, and skipped.
    other = read_focus(report_json, ["zer0"], max_classes=1)
    assert other.classes == () and any("did you mean 'zer0'" in n for n in other.notes)


@pytest.mark.slow
@pytest.mark.torch
def test_from_report_aims_the_offline_proposals_at_the_weakest_class(base, tmp_path, report_json, monkeypatch):
    from simgen.scenarios.ideation import IdeateConfig, ideate

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    weak = read_focus(report_json, ["zero", "one", "two"]).categories
    assert len(weak) == 2
    out = tmp_path / "scenarios"
    config = IdeateConfig(n=2, probe_width=48, probe_frames=3, from_report=report_json)
    result = ideate(base, out, config)
    assert result.mode == "offline"
    # The proposals take turns aiming at the two weakest classes, the weakest first.
    for record, aimed in zip(result.records, weak, strict=True):
        assert record["name"].startswith(f"{aimed}-") and f"Aimed at '{aimed}'" in record["rationale"]
    for path in result.accepted:
        aimed = path.stem.split("-")[0]
        doc = read_spec_file(path)
        selected = [c["select"].get("category") for c in doc["require"]["constraints"] if "select" in c]
        assert aimed in weak and selected and all(s == [aimed] or s == aimed for s in selected)
        assert f"# from_report: {report_json.as_posix()}" in path.read_text()
    summary = json.loads((out / "ideation.jsonl").read_text().splitlines()[-1])
    assert summary["from_report"] == report_json.as_posix()
    assert [c["name"] for c in summary["focus"]["classes"]] == list(weak)


@pytest.mark.torch
def test_from_report_goes_into_the_model_prompt(base, tmp_path, report_json, monkeypatch):
    pytest.importorskip("anthropic")
    from simgen.scenarios.ideation import IdeateConfig, ideate
    from simgen.testing.fake_anthropic import FakeAnthropic, refusal

    weakest = read_focus(report_json, ["zero", "one", "two"]).categories[0]
    monkeypatch.setenv("HOME", str(tmp_path))
    with FakeAnthropic([refusal()]) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        result = ideate(base, tmp_path / "o", IdeateConfig(n=1, model="claude-fake", from_report=report_json))
    prompt = server.requests[0].body["messages"][0]["content"]
    assert f"'{weakest}' (TSTR f1" in prompt and "select them by category" in prompt
    assert result.summary["refused"] == 1


# --- the parts -------------------------------------------------------------------------------------------------


def test_a_proposal_may_not_change_the_run(base):
    raw = read_spec_file(base)
    with pytest.raises(SpecError, match=r"patch\.camera\.width.*may not change"):
        check_proposal(raw, _proposal(patch={"camera.width": 4096}), base_dir=base.parent)
    with pytest.raises(SpecError, match="at most 64 objects"):
        check_proposal(raw, _proposal(patch={"objects[0].count": 500}), base_dir=base.parent)
    with pytest.raises(SpecError, match="did you mean 'light'"):
        check_proposal(raw, _proposal(patch={"lihgt": {"intensity": 0.2}}), base_dir=base.parent)
    with pytest.raises(SpecError, match="category 'dog'"):
        check_proposal(raw, _proposal(require=[{"name": "d", "select": {"category": "dog"}, "ge": 1}]),
                       base_dir=base.parent)  # fmt: skip
    data, loaded = check_proposal(raw, _proposal(patch={"light.intensity": 0.2}), base_dir=base.parent)
    assert data["light"]["intensity"] == 0.2 and loaded.require.max_attempts == 30


def test_the_schema_bounds_what_a_model_may_send():
    with pytest.raises(ValueError):
        _proposal(name="../../etc")
    with pytest.raises(ValueError):
        _proposal(require=[{"name": f"c{i}", "ge": 1} for i in range(9)])
    with pytest.raises(ValueError):
        _proposal(max_attempts=10_000)
    with pytest.raises(ValueError):
        _proposal(patch={"light.intensity": float("nan")})


def test_proposal_distance(base):
    raw = read_spec_file(base)
    a = proposal_features(check_proposal(raw, _proposal(patch={"light.intensity": 0.2}), base_dir=base.parent)[0], raw)
    same = _proposal(name="q", patch={"light.intensity": 0.2}, require=[{"name": "other", "ge": 1}])
    b = proposal_features(check_proposal(raw, same, base_dir=base.parent)[0], raw)
    close = _proposal(patch={"light.intensity": 0.22})
    c = proposal_features(check_proposal(raw, close, base_dir=base.parent)[0], raw)
    far = _proposal(patch={"camera.fov_deg": 30}, require=[{"name": "b", "stat": "brightness", "le": 0.2}])
    d = proposal_features(check_proposal(raw, far, base_dir=base.parent)[0], raw)
    assert proposal_distance(a, b) == 0.0  # names do not matter
    assert 0.0 < proposal_distance(a, c) < 0.1 and proposal_distance(a, c) == proposal_distance(c, a)
    assert proposal_distance(a, d) == 1.0


def test_probe_scales_pixel_thresholds_to_its_resolution():
    scenario = {
        "camera": {"width": 640, "height": 480},
        "labels": {"min_visible_px": 20},
        "require": [
            {
                "name": "a",
                "select": {"visible_px": {"ge": 100}, "box_w": {"ge": 40}, "truncation": {"ge": 0.3}},
                "ge": 1,
            },
            {"name": "b", "stat": "max", "of": "box_area", "le": 6400},
            {"name": "c", "stat": "brightness", "le": 0.1},
        ],
    }
    data = probe_data(scenario, (64, 48), max_attempts=5)
    a, b, c = data["require"]["constraints"]
    assert a["select"] == {"visible_px": {"ge": 1.0}, "box_w": {"ge": 4.0}, "truncation": {"ge": 0.3}}
    assert b["le"] == 64.0 and c["le"] == 0.1
    assert data["labels"]["min_visible_px"] == 1 and data["frames_per_scene"] == 1
    assert data["require"]["max_attempts"] == 5


def test_the_automatic_critic():
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0 and ks_statistic([0, 0], [1, 1]) == 1.0
    base = ProbeResult(True, stats={"brightness": [0.5, 0.52, 0.55, 0.6], "truncation": [0.0] * 20})
    dark = ProbeResult(True, acceptance=0.5, stats={"brightness": [0.05, 0.06, 0.07, 0.08], "truncation": [0.0] * 20})
    verdict = auto_critic(dark, base, min_acceptance=0.1)
    assert verdict.ok and "brightness" in verdict.reason
    same = ProbeResult(True, acceptance=1.0, stats=base.stats)
    assert not auto_critic(same, base, min_acceptance=0.1).ok
    assert (
        "below the usable"
        in auto_critic(ProbeResult(True, acceptance=0.05, stats=dark.stats), base, min_acceptance=0.1).reason
    )
    assert not auto_critic(ProbeResult(False, "frame 0: no attempt met"), base, min_acceptance=0.1).ok
