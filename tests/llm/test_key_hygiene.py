"""The API key appears in no file, log line or error, even when the endpoint echoes it back."""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from simgen.llm import LLMClient, LLMError, LLMSettings
from simgen.testing.fake_anthropic import FakeAnthropic, http_error, tool_use

LEAK = "sk-ant-api03-SIMGENLEAKCHECK-7f3a9c1e5b2d4068"
OTHER = "sk-ant-api03-SIMGENOTHERKEY-1a2b3c4d5e6f7081"


class Idea(BaseModel):
    """One scenario idea."""

    name: str = Field(min_length=1, max_length=40)
    tags: list[str] = Field(default_factory=list, max_length=3)


def _error_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


def test_key_never_reaches_files_logs_or_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # the SDK's and the HTTP library's debug logs included
    for name in ("anthropic", "httpx2", "httpx", "httpcore", "simgen"):
        caplog.set_level(logging.DEBUG, logger=name)
    settings = LLMSettings(model="claude-fake", backoff_base_s=0.01, backoff_max_s=0.02, max_retries=1)
    out = tmp_path / "out"
    texts: list[str] = []

    script = [
        tool_use({"name": ""}),  # invalid: a repair round
        tool_use({"name": "echo", "tags": [LEAK]}),  # an endpoint that echoes the key into its answer
        http_error(500, f"upstream rejected key {LEAK}"),
        http_error(503, f"Authorization: Bearer {LEAK}"),
    ]
    with FakeAnthropic(script, expected_key=LEAK) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", LEAK)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        llm = LLMClient(settings, cache_dir=out / ".simgen" / "llm-cache")
        result = llm.structured("Propose one.", Idea)
        assert result.status == "ok" and result.repairs == 1  # the key was really sent: expected_key checked it
        assert result.value is not None and result.value.tags == ["[redacted]"]
        with pytest.raises(LLMError) as info:
            llm.structured("Another.", Idea)
        texts += _error_texts(info.value)
        assert "HTTP 503" in str(info.value) and "[redacted]" in str(info.value)
        texts += [repr(llm), json.dumps(llm.summary()), json.dumps(result.record()), json.dumps(result.last_input)]
        (out / "result.json").write_text(json.dumps(result.record()))
    assert server.hits == 4

    # An explicit key, rejected by an endpoint that quotes it.
    with FakeAnthropic([http_error(401, f"invalid x-api-key {OTHER}")]) as server:
        explicit = LLMClient(settings, api_key=OTHER, base_url=server.base_url, cache_dir=out / ".simgen" / "llm-cache")
        with pytest.raises(LLMError, match="HTTP 401") as info:
            explicit.structured("Third.", Idea)
        texts += [*_error_texts(info.value), repr(explicit), repr(vars(explicit).get("settings"))]

    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 3  # two cache entries and result.json: the grep below is not vacuous
    captured = capfd.readouterr()
    texts += [p.read_bytes().decode("utf-8", "replace") for p in written]
    texts += [caplog.text, captured.out, captured.err]
    assert any("Retrying" in r.message or "retry" in r.message for r in caplog.records)  # logs were captured
    for secret in (LEAK, OTHER):
        leaks = [t for t in texts if secret in t]
        assert not leaks, f"key found in {len(leaks)} text(s): {[t[:200] for t in leaks]}"
