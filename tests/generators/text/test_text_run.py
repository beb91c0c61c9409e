"""Text on the shared run loop: SIGKILL and resume, workers, verify and repair, all through the CLI and the fake API."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from simgen.engine.verify import verify_dataset
from simgen.errors import BudgetExhausted
from simgen.generators.text.cli import register
from simgen.generators.text.run import _merge
from simgen.testing.fake_anthropic import FakeAnthropic

FAST = ["--model", "claude-fake", "--backoff", "0.01", "--timeout", "5"]
#: dataset.json keys that say how a call went (time, workers, what it paid), not what the dataset is.
VOLATILE = ("run", "timings_ms_total")


def text_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """simgen (the test's root app)."""

    register(app)
    return app


def invoke(args: list[str], server: FakeAnthropic, key: str) -> Result:
    env: dict[str, str | None] = {"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": server.base_url, "COLUMNS": None}
    return CliRunner().invoke(text_app(), ["text", *args], env=env)


def seeds_file(path: Path, n: int) -> Path:
    topics = ["a depth camera", "a robot gripper", "a conveyor belt", "a lidar scan", "a safety zone"]
    lines = [{"instruction": f"Explain how to test {topics[i % 5]} before shift {i} starts."} for i in range(n)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def dataset_bytes(out: Path) -> dict[str, bytes]:
    """Every file that says what the dataset is: the records, the rejections, the units, and dataset.json's core."""
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "units").glob("*"))}
    for name in ("records.jsonl", "rejected.jsonl"):
        files[name] = (out / name).read_bytes()
    ds = json.loads((out / "dataset.json").read_text())
    for key in VOLATILE:
        ds.pop(key)
    ds["llm"].pop("this_run")
    ds["checksums"].pop("manifest.jsonl")  # the manifest holds each unit's timings
    ds.pop("manifest_chain", None)  # ... and so does its hash chain
    files["dataset.json (core)"] = json.dumps(ds, sort_keys=True).encode()
    return files


def committed(out: Path) -> int:
    return sum(len(p.read_bytes().split(b"\n")) - 1 for p in (out / ".simgen" / "shards").glob("*/manifest.jsonl"))


def cached_bodies(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text())["request"] for p in (out / ".simgen" / "llm-cache").rglob("*.json")]


@pytest.mark.cli
@pytest.mark.slow
def test_sigkill_mid_run_then_resume_on_two_workers_repeats_no_answered_request_and_is_byte_identical(
    model, api_key: str, tmp_path: Path
) -> None:
    args = ["self-instruct", "-n", "8", "--per-unit", "1", "--concurrency", "2", *FAST]
    with FakeAnthropic(model) as server:
        clean = invoke([*args, "-o", str(tmp_path / "clean")], server, api_key)
        assert clean.exit_code == 0, clean.output
        clean_hits = server.hits
    out = tmp_path / "killed"
    code = "import simgen.cli as c; from simgen.generators.text.cli import register; register(c.app); c.main()"
    with FakeAnthropic(model, latency_s=0.03) as server:
        env = {**os.environ, "ANTHROPIC_API_KEY": api_key, "ANTHROPIC_BASE_URL": server.base_url}
        proc = subprocess.Popen([sys.executable, "-c", code, "text", *args, "-o", str(out)], env=env,
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and (not out.exists() or committed(out) < 3):
            time.sleep(0.005)
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before its third unit"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_hits = server.hits
    assert 3 <= committed(out) < 8 and not (out / "dataset.json").exists()
    answered = cached_bodies(out)
    with FakeAnthropic(model) as server:
        resumed = invoke([*args, "-o", str(out), "--resume", "--workers", "2"], server, api_key)
        assert resumed.exit_code == 0, resumed.output
        again = [q.body for q in server.requests if q.body in answered]
        resumed_hits = server.hits
    # No answered (cached) request is sent again; only those in flight at the kill (at most --concurrency) are.
    assert answered and again == []
    assert 0 <= killed_hits + resumed_hits - clean_hits <= 2
    # Byte-identical to the uninterrupted run on one worker: records, rejections, units, provenance.
    assert dataset_bytes(out) == dataset_bytes(tmp_path / "clean")
    assert verify_dataset(out).ok
    assert [p for p in out.rglob("*") if p.is_file() and api_key.encode() in p.read_bytes()] == []
    with FakeAnthropic(model) as server:  # and another seed makes other records
        other = invoke([*args, "-o", str(tmp_path / "seed1"), "--seed", "1"], server, api_key)
        assert other.exit_code == 0, other.output
    assert (tmp_path / "seed1" / "records.jsonl").read_bytes() != (out / "records.jsonl").read_bytes()


@pytest.mark.cli
def test_verify_finds_damage_and_resume_repairs_it_from_the_cache(model, api_key: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["self-instruct", "-n", "6", "--per-unit", "2", "-o", str(out), *FAST]
    with FakeAnthropic(model) as server:
        first = invoke(args, server, api_key)
        assert first.exit_code == 0, first.output
    before = dataset_bytes(out)
    records = (out / "records.jsonl").read_bytes()
    (out / "records.jsonl").write_bytes(records[: len(records) // 2])
    unit = out / "units" / "000001.json"
    unit.write_bytes(unit.read_bytes().replace(b'"instruction":"', b'"instruction":"Edited: ', 1))
    (out / "units" / "000009.json").write_text("{}")
    report = verify_dataset(out)
    assert report.corrupt == ["records.jsonl", "units/000001.json"] and report.extra == ["units/000009.json"]
    from simgen.cli import app

    shown = CliRunner().invoke(app, ["verify", str(out)], env={"COLUMNS": None})
    assert (
        shown.exit_code == 1 and "corrupt records.jsonl" in shown.output and "corrupt units/000001.json" in shown.output
    )
    (out / "units" / "000009.json").unlink()
    with FakeAnthropic([]) as server:  # any request would get a 400 and fail the run: the cache must answer
        repaired = invoke([*args, "--resume"], server, api_key)
        assert repaired.exit_code == 0, repaired.output
        assert server.hits == 0
    assert "1 made, 2 kept from before" in repaired.stderr
    assert dataset_bytes(out) == before and verify_dataset(out).ok


@pytest.mark.cli
def test_resume_refuses_another_model_or_other_inputs(model, api_key: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    seeds = seeds_file(tmp_path / "seeds.jsonl", 2)
    args = ["evol-instruct", "--seeds", str(seeds), "--rounds", "1", "-o", str(out), *FAST]
    with FakeAnthropic(model) as server:
        assert invoke(args, server, api_key).exit_code == 0
        other = invoke([*args, "--resume", "--model", "claude-other"], server, api_key)
        assert other.exit_code == 2
        assert "holds a run with different spec_sha256, model" in other.stderr
        seeds_file(seeds, 3)
        changed = invoke([*args, "--resume"], server, api_key)
        assert changed.exit_code == 2 and "inputs_sha256" in changed.stderr


def test_the_budget_error_crosses_process_boundaries() -> None:
    exc = pickle.loads(pickle.dumps(BudgetExhausted("max_tokens", 120, 100)))
    assert isinstance(exc, BudgetExhausted) and (exc.limit, exc.used, exc.allowed) == ("max_tokens", 120, 100)
    assert "max_tokens=100 reached (120 used)" in str(exc)


def test_unit_counters_add_up_by_key_and_by_round() -> None:
    a = {"rounds": 2, "by_round": [{"round": 1, "evolved": 2}, {"round": 2, "evolved": 1}], "target_reached": True}
    b = {"rounds": 2, "by_round": [{"round": 1, "evolved": 1}, {"round": 2, "evolved": 0}], "target_reached": False}
    assert _merge(a, b) == {
        "by_round": [{"evolved": 3, "round": 1}, {"evolved": 1, "round": 2}],
        "rounds": 4,
        "target_reached": False,
    }


def test_overwrite_removes_the_run_and_its_cache(model, api_key: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["self-instruct", "-n", "2", "--per-unit", "2", "-o", str(out), *FAST]
    with FakeAnthropic(model) as server:
        assert invoke(args, server, api_key).exit_code == 0
        first = server.hits
        (out / "notes.txt").write_text("mine")
        refused = invoke([*args, "--overwrite"], server, api_key)
        assert refused.exit_code == 2 and "notes.txt" in refused.stderr
        (out / "notes.txt").unlink()
        assert invoke([*args, "--overwrite"], server, api_key).exit_code == 0
        assert server.hits == 2 * first  # the cache went with the run
    shutil.rmtree(out)
