"""``tune`` end to end on the real-like domain: resume after a kill, the held-out guard, the CLI and its outputs."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from simgen.errors import SimgenError
from simgen.spec import dump_spec, dump_spec_yaml, load_spec
from simgen.testing.html import chromium_path, parse_page, screenshot

pytestmark = pytest.mark.torch
pytest.importorskip("torch")
optuna = pytest.importorskip("optuna")

from simgen.tune.study import TuneConfig, Tuner  # noqa: E402

COLOR, BACKGROUND = "appearance/color-v1", "background/photo-v1"
SMALL = {
    "frames": 8,
    "resolution": (160, 120),
    "renderer": "tiny",
    "crop_size": 32,
    "attribution_seeds": 1,
    "eval_seeds": 1,
    "n_boot": 50,
}


def _config(tiny: Path, budget: int) -> TuneConfig:
    return TuneConfig(budget=budget, extractor=str(tiny), **SMALL)


def _trials(out: Path) -> list:
    storage = f"sqlite:///{out / 'study.db'}"
    return optuna.load_study(study_name="simgen-tune", storage=storage).get_trials(deepcopy=False)


_KILLED_RUN = """
import json, sys
from simgen.tune.study import TuneConfig, Tuner
spec, real, out, cfg = json.loads(sys.argv[1])
cfg["resolution"] = tuple(cfg["resolution"])
t = Tuner(spec, real, out, TuneConfig(**cfg))
t.prepare()
t.search()
"""


def test_a_killed_tune_resumes_where_it_stopped_and_the_search_never_reads_the_heldout_part(
    domain, make_spec, tiny_extractor, tmp_path
):
    spec = make_spec("two.yaml", [COLOR, BACKGROUND])
    out = tmp_path / "tuned"
    first = Tuner(spec, domain.real, out, _config(tiny_extractor, 3))
    first.prepare()
    # Poison the held-out images: any read of them (crops, features, previews) fails loudly from here on.
    held = sorted((out / "real" / "heldout" / "images").iterdir())
    saved = {p: p.read_bytes() for p in held}
    for p in held:
        p.write_bytes(b"poison")
    # Run the search in a process of its own and kill it in the middle of its third trial.
    cfg = {**SMALL, "budget": 3, "extractor": str(tiny_extractor), "resolution": list(SMALL["resolution"])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, json.dumps([str(spec), str(domain.real), str(out), cfg])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while not (out / "trials" / "002").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    before = [(t.number, t.state.name, t.params, t.value, t.datetime_complete) for t in _trials(out)]
    assert [b[1] for b in before] == ["COMPLETE", "COMPLETE", "RUNNING"]

    resumed = Tuner(spec, domain.real, out, _config(tiny_extractor, 4))
    resumed.prepare()
    resumed.search()
    after = _trials(out)
    assert [(t.number, t.state.name, t.params, t.value, t.datetime_complete) for t in after[:2]] == before[:2]
    assert after[2].state.name == "FAIL" and "error" not in after[2].user_attrs  # interrupted, not counted
    assert after[3].params == after[2].params  # the interrupted candidate, proposed again
    assert len(after) == 5 and len(resumed._counted()) == 4
    assert not (out / "trials" / "002").exists()

    # An uninterrupted study with the same seed proposes the same candidates and scores them the same.
    fresh = Tuner(spec, domain.real, tmp_path / "fresh", _config(tiny_extractor, 3))
    fresh.prepare()
    fresh.search()
    f = fresh.study.get_trials(deepcopy=False)
    assert [(t.params, t.value) for t in f] == [(t.params, t.value) for t in (after[0], after[1], after[3])]

    # The attribution, too, runs on the tuning part alone.
    resumed.attribute()
    assert resumed.effects and not (out / "real" / "heldout" / ".simgen").exists()
    # The poison is effective: the final report, the one reader of the held-out part, fails on it...
    with pytest.raises(SimgenError, match="cannot read image"):
        resumed.final()
    for p, data in saved.items():
        p.write_bytes(data)
    # ... and works once it is gone.
    heldout = resumed.final()
    assert heldout["images"] == 12 and (out / "real" / "heldout" / ".simgen" / "crops").is_dir()
    assert heldout["verdict"].startswith(("gain: ", "no significant gain: "))


# --- the command line ----------------------------------------------------------------------------------------


def _app() -> typer.Typer:
    """simgen's app when it lists the tune plugin; else a group holding tune alone (see test_simgen_lists_tune)."""
    from simgen.cli import app

    if any(c.name == "tune" for c in app.registered_commands):
        return app
    from simgen.tune.cli import register

    group = typer.Typer()

    @group.callback()
    def main() -> None:
        """simgen."""

    register(group)
    return group


def test_simgen_lists_the_tune_command():
    from simgen.cli import app

    assert "tune" in [c.name for c in app.registered_commands], "add 'simgen.tune.cli' to simgen.cli._PLUGINS"


@pytest.fixture(scope="module")
def tuned(domain, make_spec, tiny_extractor, tmp_path_factory):
    """One small tune through the command line: (result, out folder, spec)."""
    spec = make_spec("two_cli.yaml", [COLOR, BACKGROUND])
    out = tmp_path_factory.mktemp("cli") / "tuned"
    args = [
        "tune",
        str(spec),
        "--real",
        str(domain.real),
        "-o",
        str(out),
        "--budget",
        "2",
        "--frames",
        "8",
        "--resolution",
        "160x120",
        "--renderer",
        "tiny",
        "--extractor",
        str(tiny_extractor),
        "--crop-size",
        "32",
        "--attribution-seeds",
        "1",
        "--eval-seeds",
        "1",
        "--n-boot",
        "50",
    ]
    result = CliRunner().invoke(_app(), args)
    return result, out, spec, args


def test_cli_tune_writes_a_round_tripping_best_spec_and_reports(tuned, domain):
    result, out, _, _ = tuned
    assert result.exit_code == 0, result.output
    assert "held-out TSTR" in result.output and "attribution" in result.output
    verdict = [line for line in result.output.splitlines() if "held-out TSTR" in line and "->" in line][-1]
    assert verdict.startswith(("gain: ", "no significant gain: "))
    for name in ("study.db", "tune.json", "best.yaml", "report.json", "report.html", "real/split.json"):
        assert (out / name).is_file(), name
    # best.yaml: a header comment, then a valid spec that round-trips; its photo folder resolves from out/.
    text = (out / "best.yaml").read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("Study:" in h for h in header) and any("Objective:" in h for h in header)
    assert any("Held-out" in h for h in header) and any(f"--asset-root {domain.spec.parent}" in h for h in header)
    loaded = load_spec(out / "best.yaml", asset_roots=[domain.spec.parent])
    assert dump_spec_yaml(loaded) == "".join(line + "\n" for line in text.splitlines() if not line.startswith("#"))
    assert dump_spec(load_spec(dump_spec(loaded), base_dir=out, asset_roots=[domain.spec.parent])) == dump_spec(loaded)
    with pytest.raises(SimgenError):  # without the root, the sandbox refuses the photo folder outside out/
        load_spec(out / "best.yaml")
    doc = json.loads((out / "report.json").read_text())
    assert doc["study"]["n_complete"] == 2 and len(doc["trials"]) == 2
    assert doc["trials"][0]["params"] == {
        f"0:{COLOR}.enabled": True,
        f"0:{COLOR}.hue.low": 0.0,
        f"0:{COLOR}.hue.high": 1.0,
        f"0:{COLOR}.saturation.low": 0.3,
        f"0:{COLOR}.saturation.high": 1.0,
        f"0:{COLOR}.value.low": 0.3,
        f"0:{COLOR}.value.high": 1.0,
        f"1:{BACKGROUND}.enabled": True,
    }
    effects = doc["attribution"]["effects"]
    assert {e["type"] for e in effects} == {COLOR, BACKGROUND}
    for e in effects:
        assert e["tstr"]["ci"][0] <= e["tstr"]["value"] <= e["tstr"]["ci"][1]
        assert e["line"].startswith(f"{e['type']}: ") and " TSTR [" in e["line"]
    h = doc["heldout"]
    assert h["images"] == 12 and h["verdict"] == doc["verdict"] == verdict
    assert h["significant"] == (h["gain"]["ci"][0] > 0)
    assert doc["split"]["images"] == {"tune": 28, "heldout": 12}


def test_the_report_page_is_self_contained_with_every_plot(tuned):
    _, out, _, _ = tuned
    page = parse_page(out / "report.html")
    assert page.fetched == []
    assert page.headings[:3] == [
        "Held-out: the original spec vs the tuned one",
        "Attribution: each randomizer, with and without (leave-one-out on the best spec)",
        "Objective per trial",
    ]
    assert "Best spec next to the real images" in page.headings and "Search space" in page.headings
    assert len(page.images) >= 6 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert all(png is not None for png in page.decoded_images())


@pytest.mark.skipif(chromium_path() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_report_renders_in_headless_chromium(tuned, tmp_path):
    _, out, _, _ = tuned
    img = screenshot(out / "report.html", height=2400)
    assert img.shape[:2] == (2400, 1200)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 500  # plots and photo grids, not a blank or error page
    b, g, r = (img[..., i].astype(int) for i in range(3))
    assert ((g > 120) & (r < 90) & (b < 110)).sum() > 300  # the green bars (helpful, tuned)
    assert (img[:40].reshape(-1, 3) > 240).all(axis=1).mean() > 0.8  # white page top with the title


def test_cli_attribute_adds_no_trial_and_recomputes_no_feature(tuned, monkeypatch):
    from simgen.validators.features import FeatureExtractor

    result, out, _, args = tuned
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    # A rerun finds every feature it needs cached: the real parts' through the validators' feature cache, the
    # generated datasets' in runs/. Count every forward pass of the extractor.
    calls = []
    real_call, real_paths = FeatureExtractor.__call__, FeatureExtractor.extract_paths
    monkeypatch.setattr(FeatureExtractor, "__call__", lambda self, x: calls.append(len(x)) or real_call(self, x))
    monkeypatch.setattr(
        FeatureExtractor,
        "extract_paths",
        lambda self, p, progress=None: calls.append(len(p)) or real_paths(self, p, progress),
    )
    again = CliRunner().invoke(_app(), [*args, "--attribute"])
    assert again.exit_code == 0, again.output
    assert len(_trials(out)) == 2 and "trial " not in again.output.split("attribution")[0]
    assert calls == []
    assert json.loads((out / "report.json").read_text())["heldout"] == report["heldout"]


def test_cli_too_few_real_images_fails_with_the_minimum(domain, make_spec, tiny_extractor, tmp_path):
    small = tmp_path / "small"
    shutil.copytree(domain.real, small)
    coco = json.loads((small / "annotations.coco.json").read_text())
    coco["images"] = coco["images"][:12]
    keep = {im["id"] for im in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    (small / "annotations.coco.json").write_text(json.dumps(coco))
    spec = make_spec("two_small.yaml", [COLOR, BACKGROUND])
    result = CliRunner().invoke(
        _app(), ["tune", str(spec), "--real", str(small), "-o", str(tmp_path / "t"), "--extractor", str(tiny_extractor)]
    )
    assert result.exit_code == 2, result.output
    line = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "12 labeled images are too few to split for tuning: need at least 20" in line[0]
    assert not (tmp_path / "t" / "tune.json").exists()


def test_a_tune_that_finds_nothing_better_says_so_plainly(domain, make_spec, tiny_extractor, tmp_path):
    from simgen.tune import tune

    # One trial: the best spec is the original, so no gain can be claimed whatever the noise.
    spec = make_spec("nothing_better.yaml", [BACKGROUND])
    settings = {**SMALL, "attribution_seeds": 0}
    result = tune(spec, domain.real, tmp_path / "tuned", budget=1, extractor=str(tiny_extractor), **settings)
    assert result.verdict.startswith("no significant gain: the tuned spec is not better than the original")
    assert result.report["heldout"]["significant"] is False
    assert result.report["heldout"]["gain"]["value"] == 0.0
