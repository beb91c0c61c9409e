"""``simgen ideate`` with a model: the fake Messages API on 127.0.0.1, through the real SDK over HTTP and the real CLI.

Each scripted case asserts its outcome: kept and rejected proposals with their reasons, repair rounds, refusals,
retries, errors, the cache (a rerun makes no request and writes the same bytes), the SDK's own environment
variables, and that the API key is in no output file and no console line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("anthropic", reason="the [llm] extra is not installed")

from typer.testing import CliRunner

from simgen.cli import app
from simgen.testing.fake_anthropic import (
    FakeAnthropic,
    FakeReply,
    FakeRequest,
    hang,
    http_error,
    refusal,
    tool_use,
)

KEY = "sk-ant-api03-IDEATE-TESTKEY-0123456789abcdef"

TINY = (Path(__file__).parent / "data" / "tiny_table.yaml").read_text()

BORDER = {
    "name": "cut-by-border",
    "rationale": "A close camera cuts objects at the image border; detectors miss partial objects.",
    "patch": {"camera.look_at.distance": 0.45, "camera.look_at.target_jitter": 0.1},
    "require": [{"name": "cut", "select": {"truncation": {"ge": 0.3}}, "ge": 1}],
}
# The same edge case under other names: a near-duplicate.
BORDER_AGAIN = {
    **BORDER,
    "name": "edge-cut",
    "require": [{"name": "cut2", "select": {"truncation": {"ge": 0.3}}, "ge": 1}],
}
# The base spec itself: renders fine, but is no edge case.
COPY = {"name": "plain", "rationale": "The base scene.", "patch": {}, "require": [{"name": "any", "ge": 1}]}
ESCAPE = {
    "name": "escape",
    "rationale": "Load an object from elsewhere.",
    "patch": {"objects[0].assets": ["../../../../../../etc/passwd.urdf"]},
    "require": [{"name": "any", "ge": 1}],
}
# A misspelt spec field: the loader's SpecError (with a "did you mean") goes back for repair.
TYPO = {**BORDER, "patch": {"camera.look_at.distanse": 0.45}}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No ambient credential or endpoint; an empty home for the SDK's profiles."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_PROFILE",
                 "ANTHROPIC_CONFIG_DIR", "ANTHROPIC_LOG", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "http_proxy", "https_proxy", "all_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "specs" / "tiny.yaml"
    path.parent.mkdir()
    path.write_text(TINY)
    return path


def _env(monkeypatch: pytest.MonkeyPatch, server: FakeAnthropic) -> None:
    # Only the SDK's own variables: nothing is passed to simgen explicitly.
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)


def _ideate(base: Path, out: Path, *args: str) -> Any:
    argv = ["ideate", str(base), "-o", str(out), "--model", "claude-fake", "--probe-width", "48",
            "--probe-frames", "3", *args]  # fmt: skip
    return CliRunner().invoke(app, argv)


def _lines(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "ideation.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "request"], rows[-1]


def _by_prompt(replies: dict[int, dict[str, Any]]) -> Any:
    """A script choosing the reply by the proposal number in the prompt (requests run concurrently)."""

    def reply(req: FakeRequest) -> FakeReply:
        first = req.body["messages"][0]["content"]
        i = next(k for k in replies if f"proposal {k} of" in first)
        return tool_use(replies[i])

    return reply


def _assert_no_key(out: Path, *texts: str) -> None:
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files
    for p in files:
        assert KEY.encode() not in p.read_bytes(), p
    for text in texts:
        assert KEY not in text


@pytest.mark.slow
@pytest.mark.cli
def test_valid_proposals_are_probed_criticised_deduplicated_and_cached(base, tmp_path, monkeypatch):
    out = tmp_path / "scenarios"
    with FakeAnthropic(_by_prompt({1: BORDER, 2: BORDER_AGAIN, 3: COPY}), expected_key=KEY) as server:
        _env(monkeypatch, server)
        goal = f"failure cases of a mug detector (my key is {KEY})"
        result = _ideate(base, out, "-n", "3", "--goal", goal)
        assert result.exit_code == 0, result.output
        hits = server.hits
        assert hits == 3 and all(r.auth_scheme is not None for r in server.requests)
        # The tool's input_schema is the proposal model's JSON Schema, forced by tool_choice.
        tool = server.requests[0].body["tools"][0]
        assert tool["name"] == "propose_scenario" and "require" in tool["input_schema"]["properties"]
        assert server.requests[0].forced_tool == "propose_scenario"
        records, summary = _lines(out)
        assert [r["name"] for r in records] == ["cut-by-border", "edge-cut", "plain"]
        assert records[0]["file"] == "cut-by-border.yaml" and records[0]["critic"][0]["ok"]
        assert records[1]["rejection"]["stage"] == "duplicate" and "cut-by-border" in records[1]["rejection"]["reason"]
        assert records[2]["rejection"]["stage"] == "critic:auto"
        assert "not an edge case" in records[2]["rejection"]["reason"]
        assert summary["proposed"] == 3 and summary["valid"] == 3 and summary["accepted"] == 1
        assert summary["duplicates"] == 1 and summary["rejected_by_critic"] == 1
        assert all(r["input_tokens"] > 0 and r["model"] == "claude-fake" for r in records)
        kept = out / "cut-by-border.yaml"
        header = kept.read_text().splitlines()[:3]
        assert header[0].startswith("# simgen ideate:")
        assert f"model=claude-fake prompt_hash={records[0]['prompt_hash']}" in header[1] and "round=0" in header[1]
        assert "failure cases of a mug detector" in header[2] and "[redacted]" in header[2]
        assert "| proposed" not in result.output and "accepted" in result.output
        assert max(len(line) for line in result.output.splitlines() if "summary" in line or line.startswith("  ")) <= 80
        # The kept file is a scenario like any other: it loads and its constraint is the proposal's.
        from simgen.scenarios import load_scenario

        loaded = load_scenario(kept)
        assert [c.name for c in loaded.require.constraints] == ["cut"]
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        _assert_no_key(out, result.output)
        # A rerun is free (every answer cached) and writes the same bytes.
        again = _ideate(base, out, "-n", "3", "--goal", goal)
        assert again.exit_code == 0, again.output
        assert server.hits == hits
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.cli
def test_malformed_tool_input_is_repaired(base, tmp_path, monkeypatch):
    out = tmp_path / "scenarios"

    def script(req: FakeRequest) -> FakeReply:
        repair = len(req.body["messages"]) > 1
        return tool_use(BORDER if repair else TYPO)

    with FakeAnthropic(script) as server:
        _env(monkeypatch, server)
        result = _ideate(base, out, "-n", "1", "--repairs", "2")
        assert result.exit_code == 0, result.output
        assert server.hits == 2
        # The repair round carries the loader's error, with its field path and a did-you-mean, as a tool error.
        repair = server.requests[1].body["messages"][-1]["content"]
        problem = next(b for b in repair if b.get("type") == "tool_result")
        assert problem["is_error"] and "distanse" in problem["content"] and "distance" in problem["content"]
        records, summary = _lines(out)
        assert records[0]["repair_rounds"] == 1 and records[0]["status"] == "ok"
        assert "distanse" in records[0]["validation_errors"][0]
        assert summary["valid"] == 1 and summary["valid_after_repair"] == 1
        assert "round=1" in (out / "cut-by-border.yaml").read_text().splitlines()[1]


@pytest.mark.cli
def test_a_proposal_escaping_the_asset_roots_is_rejected_with_its_reason(base, tmp_path, monkeypatch):
    out = tmp_path / "scenarios"
    with FakeAnthropic([tool_use(ESCAPE)]) as server:
        _env(monkeypatch, server)
        result = _ideate(base, out, "-n", "1", "--repairs", "0")
        assert result.exit_code == 0, result.output
        records, summary = _lines(out)
        assert records[0]["status"] == "invalid" and records[0]["rejection"]["stage"] == "validation"
        assert "outside the allowed asset roots" in records[0]["rejection"]["reason"]
        assert summary["invalid"] == 1 and summary["accepted"] == 0
        assert not list(out.glob("*.yaml")) and not (tmp_path / "etc").exists()


@pytest.mark.cli
def test_a_refusal_is_recorded_not_raised(base, tmp_path, monkeypatch):
    out = tmp_path / "scenarios"
    with FakeAnthropic([refusal("I won't design that.")]) as server:
        _env(monkeypatch, server)
        result = _ideate(base, out, "-n", "1")
        assert result.exit_code == 0, result.output
        assert server.hits == 1
        records, summary = _lines(out)
        assert records[0]["status"] == "refused" and "I won't design that." in records[0]["rejection"]["reason"]
        assert summary["refused"] == 1 and summary["accepted"] == 0


@pytest.mark.cli
def test_429_then_success(base, tmp_path, monkeypatch):
    out = tmp_path / "scenarios"
    with FakeAnthropic([http_error(429, retry_after=0.05), tool_use(BORDER)]) as server:
        _env(monkeypatch, server)
        result = _ideate(base, out, "-n", "1", "--max-retries", "2")
        assert result.exit_code == 0, result.output
        assert server.hits == 2
        assert (out / "cut-by-border.yaml").is_file()


@pytest.mark.cli
def test_500_fails_with_one_clear_line_after_the_retries(base, tmp_path, monkeypatch):
    out = tmp_path / "scenarios"
    with FakeAnthropic([http_error(500, "boom"), http_error(500, "boom")]) as server:
        _env(monkeypatch, server)
        result = _ideate(base, out, "-n", "1", "--max-retries", "1")
        assert result.exit_code == 2
        assert server.hits == 2
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "HTTP 500" in errors[0] and "2 attempts" in errors[0], result.output
        assert "Traceback" not in result.output and KEY not in result.output
        assert not list(out.glob("*.yaml"))


@pytest.mark.cli
def test_a_timeout_fails_clearly(base, tmp_path, monkeypatch):
    out = tmp_path / "scenarios"
    with FakeAnthropic([hang(3.0)]) as server:
        _env(monkeypatch, server)
        result = _ideate(base, out, "-n", "1", "--max-retries", "0", "--timeout", "0.3")
        assert result.exit_code == 2
        assert server.hits == 1
        assert "timed out after 0.3 s" in result.output and KEY not in result.output


@pytest.mark.cli
def test_the_vision_critic_scores_the_preview(base, tmp_path, monkeypatch):
    out = tmp_path / "scenarios"

    def script(req: FakeRequest) -> FakeReply:
        if req.forced_tool == "submit_vision_verdict":
            content = req.body["messages"][0]["content"]
            assert content[0]["type"] == "image" and content[0]["source"]["media_type"] == "image/png"
            return tool_use({"score": 2, "reason": "objects are whole, nothing is cut"})
        return tool_use(BORDER)

    with FakeAnthropic(script) as server:
        _env(monkeypatch, server)
        result = _ideate(base, out, "-n", "1", "--vision-critic", "--min-score", "5")
        assert result.exit_code == 0, result.output
        assert server.hits == 2
        records, summary = _lines(out)
        assert records[0]["rejection"]["stage"] == "critic:vision"
        assert "score 2/10" in records[0]["rejection"]["reason"]
        assert summary["rejected_by_critic"] == 1 and not list(out.glob("*.yaml"))


@pytest.mark.cli
def test_the_key_comes_from_the_environment_and_a_wrong_one_is_refused(base, tmp_path, monkeypatch):
    out = tmp_path / "scenarios"
    with FakeAnthropic([tool_use(BORDER)], expected_key="sk-ant-api03-SOMEONE-ELSES-KEY-000") as server:
        _env(monkeypatch, server)
        result = _ideate(base, out, "-n", "1", "--max-retries", "0")
        assert result.exit_code == 2
        assert server.hits == 1 and server.requests[0].auth_scheme is not None
        assert "HTTP 401" in result.output and "check ANTHROPIC_API_KEY" in result.output
        assert KEY not in result.output
