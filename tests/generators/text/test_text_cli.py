"""``simgen text ...`` end to end, against the fake Messages API through the real SDK over HTTP.

The text CLI is registered here on a fresh typer app (``register(app)``), as ``simgen.cli`` does for its plugins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from simgen.engine.verify import verify_dataset
from simgen.generators.text.cli import register
from simgen.testing.fake_anthropic import FakeAnthropic, FakeReply, FakeRequest, hang, http_error, refusal, tool_use

pytestmark = pytest.mark.cli

NO_KEY = (
    "error: simgen text {command} needs an Anthropic API key: set ANTHROPIC_API_KEY "
    "(and ANTHROPIC_BASE_URL for another endpoint)"
)
FAST = ["--model", "claude-fake", "--backoff", "0.01", "--timeout", "5"]


def text_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """simgen (the test's root app)."""

    register(app)
    register(app)  # twice is harmless: the plugin tuple may list it too
    return app


def invoke(args: list[str], server: FakeAnthropic | None, key: str | None) -> Result:
    env: dict[str, str | None] = {"ANTHROPIC_API_KEY": key, "COLUMNS": None}
    env["ANTHROPIC_BASE_URL"] = server.base_url if server is not None else None
    return CliRunner().invoke(text_app(), ["text", *args], env=env)


class Faults:
    """The scripted model, with the k-th request of a tool answered by a planted fault (1-based)."""

    def __init__(self, model: Callable[[FakeRequest], FakeReply], faults: dict[tuple[str, int], FakeReply]) -> None:
        self.model, self.faults = model, faults
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, req: FakeRequest) -> FakeReply:
        tool = req.forced_tool or ""
        with self.lock:
            self.counts[tool] = self.counts.get(tool, 0) + 1
            k = self.counts[tool]
        return self.faults.get((tool, k)) or self.model(req)


def every_file(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_self_instruct_end_to_end_through_every_kind_of_answer(model, api_key: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    faults = Faults(
        model,
        {
            # One proposal meets a 429, a 500 and a timeout before it is answered.
            ("submit_proposed_tasks", 1): http_error(429, "slow down", retry_after=0.01),
            ("submit_proposed_tasks", 2): http_error(500, "upstream hiccup"),
            ("submit_proposed_tasks", 3): hang(3.0),
            # A malformed tool input is repaired; a refusal is dropped and counted.
            ("submit_instances", 1): tool_use({"instances": "not a list"}),
            ("submit_instances", 3): refusal("I won't write that."),
            # The critic's first judgement stays malformed through both repairs: that record is skipped.
            ("submit_rubric", 1): tool_use({"helpfulness": 9}),
            ("submit_rubric", 2): tool_use({"helpfulness": "great"}),
            ("submit_rubric", 3): tool_use({}),
        },
    )
    with FakeAnthropic(faults, expected_key=api_key) as server:
        args = ["self-instruct", "-n", "6", "-o", str(out), "--per-unit", "3", "--critic-threshold", "2",
                "--concurrency", "1", *FAST, "--timeout", "0.5"]  # fmt: skip
        result = invoke(args, server, api_key)
        assert result.exit_code == 0, result.output
        hits = server.hits
        assert all(q.auth_scheme for q in server.requests)  # the key was really sent (and checked)
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["modality"] == "text" and ds["method"] == "self-instruct" and ds["n_units"] == 2
    assert ds["llm"]["model"] == "claude-fake" and ds["seed"] == 0 and ds["packages"]["anthropic"]
    assert set(ds["templates"]) == {"self-instruct/propose-v1", "self-instruct/instance-input-first-v1",
                                    "self-instruct/instance-output-first-v1", "critic/ultrafeedback-v1"}  # fmt: skip
    this_run = ds["llm"]["this_run"]
    assert this_run["retries"] == 3 and this_run["requests"] == hits - 3 and this_run["cache_hits"] == 0
    structured = ds["llm"]["usage"]["structured"]
    assert structured["repairs"] >= 3 and structured["refused"] == 1 and structured["invalid"] == 1
    assert ds["llm"]["usage"]["responses"]["responses"] == this_run["requests"]
    dropped = ds["dropped_by_reason"]
    assert dropped["instance_refused"] == 1 and dropped["critic_invalid"] == 1 and dropped["keyword"] >= 1
    rows = records(out)
    assert rows and len(rows) == ds["counts"]["records"] <= 6
    for r in rows:
        assert r["instruction"] and r["output"] and r["operation"] == "self-instruct/propose"
        assert r["model"] == "claude-fake" and r["template_sha256"] == ds["templates"][r["template"]]
        assert r["origin"] == "synthetic" and r["generation"] >= 1 and r["context_ids"]
        assert r["critic"]["passed"] and set(r["critic"]["reasons"]) == set(r["critic"]["scores"])
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert sum(ds["dropped_by_reason"].values()) == len(rejected)
    assert verify_dataset(out).ok
    # The one-screen summary, whole at 80 columns.
    err = result.stderr
    for label in ("records", "dropped", "requests", "tokens", "cost", "units"):
        assert f"\n{label} " in err
    assert f"{len(rows)} kept of 6 wanted" in err and "3 retries" in err
    assert max(len(line) for line in err.splitlines() if "━" not in line) <= 80
    # No output file holds the key (cache entries, units, records, run and dataset records).
    assert len(every_file(out)) > 10
    assert [p for p in every_file(out) if api_key.encode() in p.read_bytes()] == []
    assert api_key not in result.output


@pytest.mark.parametrize("columns", [None, "80"])
def test_no_key_is_one_red_line_and_exit_2(tmp_path: Path, columns: str | None) -> None:
    out = tmp_path / "a-rather-long-output-folder-name-so-that-the-line-is-longer-than-eighty-columns"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_") and k != "COLUMNS"}
    if columns:
        env["COLUMNS"] = columns
    code = "import simgen.cli as c; from simgen.generators.text.cli import register; register(c.app); c.main()"
    result = subprocess.run([sys.executable, "-c", code, "text", "self-instruct", "-n", "5", "-o", str(out)],
                            capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines() == [NO_KEY.format(command="self-instruct")]
    assert "Traceback" not in result.stdout + result.stderr and not out.exists()


def test_captions_are_offline_without_llm_and_say_so_with_it(tmp_path: Path, model, api_key: str) -> None:
    coco = {
        "images": [{"id": i, "file_name": f"images/{i:06d}.png", "width": 64, "height": 48} for i in range(5)],
        "categories": [{"id": 1, "name": "mug"}, {"id": 2, "name": "tennis_ball"}],
        "annotations": [
            {
                "id": k,
                "image_id": k % 5,
                "category_id": 1 + k % 2,
                "bbox": [1, 1, 5, 5],
                "area": 25,
                "visibility": 0.2 + 0.1 * (k % 7),
                "truncation": 0.0,
            }
            for k in range(12)
        ],
    }
    data = tmp_path / "images"
    data.mkdir()
    (data / "annotations.coco.json").write_text(json.dumps(coco))
    offline = invoke(["captions", str(data), "-o", str(tmp_path / "cap"), "--per-unit", "2"], None, None)
    assert offline.exit_code == 0, offline.output
    rows = records(tmp_path / "cap")
    assert [r["parent_id"] for r in rows] == [f"frame/{i}" for i in range(5)]
    assert all(r["kind"] == "caption" and r["operation"] == "caption/template" and r["model"] is None for r in rows)
    assert verify_dataset(tmp_path / "cap").ok
    no_key = invoke(["captions", str(data), "-o", str(tmp_path / "llm"), "--llm"], None, None)
    assert no_key.exit_code == 2
    assert no_key.stderr.strip() == NO_KEY.format(command="captions") + "; or drop --llm to write the template " \
        "captions offline"  # fmt: skip
    with FakeAnthropic(model) as server:
        llm = invoke(["captions", str(data), "-o", str(tmp_path / "llm"), "--llm", *FAST], server, api_key)
        assert llm.exit_code == 0, llm.output
        assert server.hits == 5
    rows = records(tmp_path / "llm")
    assert all(r["operation"] == "caption/paraphrase" and r["model"] == "claude-fake" for r in rows)
    assert all("tennis ball" in r["caption"] or "mug" in r["caption"] for r in rows)


def test_critic_filters_a_jsonl_and_a_simgen_text_folder(tmp_path: Path, model, api_key: str) -> None:
    alpaca = tmp_path / "alpaca.jsonl"
    lines = [{"instruction": f"Explain step {i} of calibrating a depth camera.", "input": "",
              "output": f"Step {i}: point the camera at the target and record {i} frames."} for i in range(10)]  # fmt: skip
    alpaca.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with FakeAnthropic(model) as server:
        first = invoke(["critic", str(alpaca), "-o", str(tmp_path / "j1"), "--threshold", "3.5", *FAST],
                       server, api_key)  # fmt: skip
        assert first.exit_code == 0, first.output
        assert server.hits == 10
        kept = records(tmp_path / "j1")
        ds = json.loads((tmp_path / "j1" / "dataset.json").read_text())
        assert len(kept) + ds["dropped_by_reason"].get("below_threshold", 0) == 10
        assert all(r["critic"]["mean"] >= 3.5 and r["origin"] == "real" for r in kept)
        # The folder of a simgen text run is an input too: judging it again at a stricter threshold.
        second = invoke(["critic", str(tmp_path / "j1"), "-o", str(tmp_path / "j2"), "--threshold", "4.5", *FAST],
                        server, api_key)  # fmt: skip
        assert second.exit_code == 0, second.output
        assert server.hits == 10 + len(kept)
    assert all(r["critic"]["mean"] >= 4.5 for r in records(tmp_path / "j2"))


def test_budget_stops_cleanly_and_a_larger_budget_continues(tmp_path: Path, model, api_key: str) -> None:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"instruction": f"Describe how a robot gripper handles item number {i}."})
                             + "\n" for i in range(6)))  # fmt: skip
    base = ["evol-instruct", "--seeds", str(seeds), "--rounds", "2", "--per-unit", "1", *FAST]
    with FakeAnthropic(model) as server:
        clean = invoke([*base, "-o", str(tmp_path / "clean")], server, api_key)
        assert clean.exit_code == 0, clean.output
        clean_hits = server.hits
    out = tmp_path / "out"
    with FakeAnthropic(model) as server:
        stopped = invoke([*base, "-o", str(out), "--max-requests", "7"], server, api_key)
        assert stopped.exit_code == 3, stopped.output
        first = server.hits
    assert first == 7 and not (out / "dataset.json").exists()
    err = stopped.stderr
    assert "stopped early" in err and "7 paid" in err
    assert err.splitlines()[-1].startswith("error: LLM budget exhausted: max_requests=7 reached")
    assert err.splitlines()[-1].endswith("rerun with --resume and a larger --max-requests")
    with FakeAnthropic(model) as server:
        resumed = invoke([*base, "-o", str(out), "--resume", "--max-requests", "1000"], server, api_key)
        assert resumed.exit_code == 0, resumed.output
        second = server.hits
    assert first + second == clean_hits  # not one answered request was paid for twice
    assert (out / "records.jsonl").read_bytes() == (tmp_path / "clean" / "records.jsonl").read_bytes()
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["llm"]["budget"] == {"max_requests": 1000, "max_tokens": None, "exhausted": None}
    # The resume kept the committed units and replayed the cached answers of the unit the budget interrupted.
    assert ds["llm"]["this_run"]["requests"] == second and ds["llm"]["this_run"]["cache_hits"] >= 1
    assert ds["llm"]["usage"]["responses"]["responses"] == clean_hits


def test_a_persistent_500_is_one_line_and_resume_continues(tmp_path: Path, model, api_key: str) -> None:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"instruction": f"List the parts of conveyor belt model {i}."}) + "\n"
                             for i in range(4)))  # fmt: skip
    broken = type(model)()
    broken.plant["submit_judgement"] = lambda req: http_error(500, "judge down")
    out = tmp_path / "out"
    base = ["evol-instruct", "--seeds", str(seeds), "--rounds", "1", "--per-unit", "2", "-o", str(out), *FAST]
    with FakeAnthropic(broken) as server:
        failed = invoke([*base, "--max-retries", "1"], server, api_key)
        answered = [q.body for q in server.requests if q.forced_tool != "submit_judgement"]
    assert failed.exit_code == 2, failed.output
    last = failed.stderr.splitlines()[-1]
    assert last.startswith("error: Anthropic request to claude-fake failed after 2 attempts: HTTP 500: judge down")
    assert "Traceback" not in failed.output and not (out / "dataset.json").exists()
    with FakeAnthropic(model) as server:
        resumed = invoke([*base, "--resume"], server, api_key)
        assert resumed.exit_code == 0, resumed.output
        repeated = [q.body for q in server.requests if q.body in answered]
        judged = [q for q in server.requests if q.forced_tool == "submit_judgement"]
    assert answered and repeated == [] and judged  # the answered requests come from the cache
    assert verify_dataset(out).ok and records(out)
