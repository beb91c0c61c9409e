"""The LLM client layer against the fake Messages API, through the real anthropic SDK over HTTP."""

from __future__ import annotations

import json
import pickle
import sys
import time
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from simgen.errors import DependencyMissing, SpecError
from simgen.llm import (
    APIKeyMissing,
    Budget,
    BudgetExhausted,
    LLMClient,
    LLMError,
    LLMSettings,
    StructuredRequest,
    require_api_key,
)
from simgen.testing.fake_anthropic import FakeAnthropic, FakeRequest, hang, http_error, refusal, text, tool_use

KEY = "sk-ant-test-0123456789"
GOOD = {"name": "backlit mug", "tags": ["lighting"], "difficulty": 3}


class Idea(BaseModel):
    """One scenario idea."""

    name: str = Field(min_length=1, max_length=40)
    tags: list[str] = Field(default_factory=list, max_length=3)
    difficulty: int = Field(ge=1, le=5)


def settings(**kw: object) -> LLMSettings:
    base = {"model": "claude-fake", "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5.0, "max_retries": 2}
    base.update(kw)
    return LLMSettings(**base)  # type: ignore[arg-type]


def client(server: FakeAnthropic, tmp_path: Path | None = None, **kw: object) -> LLMClient:
    budget = kw.pop("budget", None)
    cache = tmp_path / "llm-cache" if tmp_path is not None else None
    return LLMClient(settings(**kw), cache_dir=cache, budget=budget, api_key=KEY, base_url=server.base_url)  # type: ignore[arg-type]


# -- structured output ----------------------------------------------------------------------------------


def test_valid_structured_reply_through_tool_use() -> None:
    with FakeAnthropic([tool_use(GOOD)], expected_key=KEY) as server:
        result = client(server).structured("Propose one edge case.", Idea, system="You design tests.")
    assert result.status == "ok"
    assert result.value == Idea(**GOOD)
    assert result.repairs == 0 and result.errors == ()
    body = server.requests[0].body
    assert server.requests[0].auth_scheme == "bearer"  # SDK 2.x sends the key as a Bearer token
    assert body["tool_choice"] == {"type": "tool", "name": "submit_idea"}
    schema = body["tools"][0]["input_schema"]
    assert schema["type"] == "object" and schema["properties"]["tags"]["maxItems"] == 3
    assert body["system"] == "You design tests." and body["model"] == "claude-fake"


def test_malformed_tool_input_is_repaired_on_round_two() -> None:
    bad = {"name": "", "tags": ["a"], "difficulty": 9, "colour": "red"}
    with FakeAnthropic([tool_use(bad), tool_use(GOOD)]) as server:
        llm = client(server)
        result = llm.structured("Propose one.", Idea)
    assert result.status == "ok" and result.value == Idea(**GOOD)
    assert result.repairs == 1 and server.hits == 2
    assert "difficulty" in result.errors[0] and "name" in result.errors[0]
    # The repair round sends the invalid call back with an is_error tool_result carrying the problem text.
    repair_msgs = server.requests[1].body["messages"]
    assert [m["role"] for m in repair_msgs] == ["user", "assistant", "user"]
    call = repair_msgs[1]["content"][-1]
    assert call["type"] == "tool_use" and call["input"] == bad
    tool_result = repair_msgs[2]["content"][0]
    assert tool_result["tool_use_id"] == call["id"] and tool_result["is_error"] is True
    assert "difficulty" in tool_result["content"]
    assert llm.summary()["structured"] == {"ok": 1, "invalid": 0, "refused": 0, "repairs": 1}


def test_still_invalid_after_the_repair_rounds_is_an_outcome() -> None:
    with FakeAnthropic([tool_use({"name": "x"})] * 3) as server:
        result = client(server, max_repairs=2).structured("Propose one.", Idea)
    assert result.status == "invalid" and result.value is None
    assert result.repairs == 2 and len(result.errors) == 3 and server.hits == 3
    assert result.last_input == {"name": "x"}


def test_oversized_tool_input_is_rejected_before_validation() -> None:
    huge = {**GOOD, "name": "x" * 30, "tags": ["y" * 5000]}
    with FakeAnthropic([tool_use(huge)]) as server:
        result = client(server, max_repairs=0, max_input_bytes=1000).structured("Propose one.", Idea)
    assert result.status == "invalid"
    assert "limit is 1000 bytes" in result.errors[0]


def test_semantic_check_errors_are_sent_back_for_repair() -> None:
    def check(idea: Idea) -> None:
        if "lighting" in idea.tags:
            raise SpecError("unknown tag 'lighting' (did you mean 'light'?)", path="tags[0]")

    fixed = {**GOOD, "tags": ["light"]}
    with FakeAnthropic([tool_use(GOOD), tool_use(fixed)]) as server:
        result = client(server).structured("Propose one.", Idea, check=check)
    assert result.status == "ok" and result.value is not None and result.value.tags == ["light"]
    assert result.repairs == 1
    assert "did you mean 'light'" in server.requests[1].body["messages"][2]["content"][0]["content"]


def test_refusal_is_a_typed_outcome() -> None:
    with FakeAnthropic([refusal("Not something I can help with.", category="general_harms")]) as server:
        llm = client(server)
        result = llm.structured("Propose one.", Idea)
    assert result.status == "refused" and result.value is None
    assert "Not something I can help with." in str(result.refusal)
    assert llm.summary()["structured"]["refused"] == 1


def test_a_reply_without_the_tool_call_counts_as_refused() -> None:
    with FakeAnthropic([text("Here is an idea in prose.")]) as server:
        result = client(server).structured("Propose one.", Idea)
    assert result.status == "refused"
    assert "no tool call" in str(result.refusal) and "stop_reason=end_turn" in str(result.refusal)


# -- retries --------------------------------------------------------------------------------------------


def test_429_then_success_honours_retry_after() -> None:
    with FakeAnthropic([http_error(429, "slow down", retry_after=0.3), tool_use(GOOD)]) as server:
        llm = client(server)
        result = llm.structured("Propose one.", Idea)
    assert result.status == "ok"
    assert result.responses[0].attempts == 2
    run = llm.summary()["this_run"]
    assert (run["requests"], run["attempts"], run["retries"]) == (1, 2, 1)
    gap = server.requests[1].received_at - server.requests[0].received_at
    assert gap >= 0.3  # the backoff alone is <= 0.05 s: the wait came from retry-after


def test_retry_after_is_capped() -> None:
    with FakeAnthropic([http_error(429, retry_after=30), tool_use(GOOD)]) as server:
        start = time.monotonic()
        result = client(server, retry_after_cap_s=0.1).structured("Propose one.", Idea)
    assert result.status == "ok" and time.monotonic() - start < 3


def test_529_overloaded_is_retried() -> None:
    with FakeAnthropic([http_error(529), http_error(500), tool_use(GOOD)]) as server:
        result = client(server).structured("Propose one.", Idea)
    assert result.status == "ok" and result.responses[0].attempts == 3 and server.hits == 3


def test_500_every_time_gives_up_with_one_clear_line() -> None:
    with FakeAnthropic([http_error(500, "internal\nboom")] * 5) as server:
        llm = client(server, max_retries=2)
        with pytest.raises(LLMError) as info:
            llm.structured("Propose one.", Idea)
    message = str(info.value)
    assert server.hits == 3 and info.value.attempts == 3 and info.value.status_code == 500
    assert "\n" not in message
    assert message == "Anthropic request to claude-fake failed after 3 attempts: HTTP 500: internal boom"
    assert (
        info.value.__cause__ is None and info.value.__context__ is None
    )  # the SDK error (with its request) is dropped
    assert llm.summary()["this_run"]["failed"] == 1


def test_400_is_not_retried() -> None:
    with (
        FakeAnthropic([http_error(400, "max_tokens: too large"), tool_use(GOOD)]) as server,
        pytest.raises(LLMError, match=r"failed: HTTP 400: max_tokens: too large$"),
    ):
        client(server).structured("Propose one.", Idea)
    assert server.hits == 1


def test_timeout_is_retried_then_succeeds() -> None:
    with FakeAnthropic([hang(5), tool_use(GOOD)]) as server:
        start = time.monotonic()
        result = client(server, timeout_s=0.3).structured("Propose one.", Idea)
        elapsed = time.monotonic() - start
    assert result.status == "ok" and result.responses[0].attempts == 2
    assert elapsed < 3


def test_timeout_every_time_gives_up() -> None:
    with (
        FakeAnthropic([hang(5)] * 3) as server,
        pytest.raises(LLMError, match=r"after 2 attempts: timed out after 0.3 s$") as info,
    ):
        client(server, timeout_s=0.3, max_retries=1).structured("Propose one.", Idea)
    assert server.hits == 2 and info.value.status_code is None


# -- cache ----------------------------------------------------------------------------------------------


def test_cached_rerun_makes_no_request(tmp_path: Path) -> None:
    with FakeAnthropic([tool_use({"name": "x"}), tool_use(GOOD)]) as server:
        first = client(server, tmp_path).structured("Propose one.", Idea, salt="record-7")
    assert server.hits == 2 and first.repairs == 1
    with FakeAnthropic([]) as server:  # any request would get a 400 "script exhausted"
        llm = client(server, tmp_path)
        again = llm.structured("Propose one.", Idea, salt="record-7")
    assert server.hits == 0
    assert again.value == first.value and again.record() == first.record()
    assert all(r.cached for r in again.responses)
    run = llm.summary()["this_run"]
    assert (run["requests"], run["cache_hits"]) == (0, 2)
    assert llm.summary()["responses"]["responses"] == 2  # tokens of the cached answers still counted


def test_salt_and_parameters_are_part_of_the_key(tmp_path: Path) -> None:
    with FakeAnthropic([tool_use(GOOD)] * 3) as server:
        client(server, tmp_path).structured("Propose one.", Idea, salt="a")
        client(server, tmp_path).structured("Propose one.", Idea, salt="b")
        client(server, tmp_path, temperature=0.5).structured("Propose one.", Idea, salt="a")
        client(server, tmp_path).structured("Propose one.", Idea, salt="a")
    assert server.hits == 3


def test_corrupt_cache_entries_are_refetched(tmp_path: Path) -> None:
    with FakeAnthropic([tool_use(GOOD)] * 3) as server:
        first = client(server, tmp_path).structured("Propose one.", Idea)
        entry = next((tmp_path / "llm-cache").rglob("*.json"))
        entry.write_text('{"format": "simgen-llm-cache/1", "key": "trunc')
        second = client(server, tmp_path).structured("Propose one.", Idea)
        assert server.hits == 2 and second.value == first.value
        # A well-formed entry under the wrong name (or with a tampered request) is not trusted either.
        data = json.loads(entry.read_text())
        data["request"]["max_tokens"] = 1
        entry.write_text(json.dumps(data))
        client(server, tmp_path).structured("Propose one.", Idea)
        assert server.hits == 3
        client(server, tmp_path).structured("Propose one.", Idea)
        assert server.hits == 3  # the refetched entry was rewritten whole
    assert not list((tmp_path / "llm-cache").rglob("*.tmp"))


# -- concurrency ----------------------------------------------------------------------------------------


def echo(req: FakeRequest) -> object:
    return tool_use({"name": req.last_user_text, "difficulty": 1})


def test_bounded_concurrency_keeps_request_order() -> None:
    prompts = [f"idea-{i}" for i in range(8)]
    with FakeAnthropic(echo, latency_s=0.2) as server:
        llm = client(server, concurrency=4)
        start = time.monotonic()
        results = llm.structured_many([StructuredRequest(p, Idea) for p in prompts])
        elapsed = time.monotonic() - start
    assert [r.value.name for r in results if r.value] == prompts
    assert 3 <= server.max_in_flight <= 4
    assert elapsed < 1.2  # serial would take 1.6 s


# -- budget ---------------------------------------------------------------------------------------------


def test_request_budget_stops_cleanly_and_cached_answers_stay_free(tmp_path: Path) -> None:
    with FakeAnthropic(echo) as server:
        llm = client(server, tmp_path, budget=Budget(max_requests=2), concurrency=1)
        with pytest.raises(BudgetExhausted) as info:
            llm.structured_many([StructuredRequest(f"p{i}", Idea) for i in range(5)])
        assert server.hits == 2
        assert info.value.limit == "max_requests" and "resume" in str(info.value)
        partial = info.value.results  # type: ignore[attr-defined]
        assert [r.value.name if r else None for r in partial][:2] == ["p0", "p1"]
        assert llm.summary()["budget"]["exhausted"] == "max_requests"
        # A resume with a fresh budget replays the two finished answers for free.
        resumed = client(server, tmp_path, budget=Budget(max_requests=3))
        out = resumed.structured_many([StructuredRequest(f"p{i}", Idea) for i in range(5)])
        assert [r.value.name for r in out if r.value] == ["p0", "p1", "p2", "p3", "p4"]
        assert server.hits == 5 and resumed.summary()["this_run"]["cache_hits"] == 2


def test_token_budget() -> None:
    with FakeAnthropic([tool_use(GOOD, usage=(100, 50))] * 3) as server:
        llm = client(server, budget=Budget(max_tokens=120))
        llm.structured("one", Idea)
        with pytest.raises(BudgetExhausted, match="max_tokens=120 reached"):
            llm.structured("two", Idea)
    assert server.hits == 1


def test_cost_accounting_by_model_family() -> None:
    with FakeAnthropic([tool_use(GOOD, usage=(1_000_000, 100_000))]) as server:
        llm = client(server, model="claude-sonnet-4-5")
        llm.structured("one", Idea)
    total = llm.summary()["responses"]
    assert (total["input_tokens"], total["output_tokens"]) == (1_000_000, 100_000)
    assert total["cost_usd"] == pytest.approx(3.0 + 1.5)


# -- endpoint and credentials ---------------------------------------------------------------------------


def test_anthropic_base_url_and_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeAnthropic([tool_use(GOOD)], expected_key=KEY) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        llm = LLMClient(settings())
        assert llm.base_url.rstrip("/") == server.base_url
        assert llm.structured("one", Idea).status == "ok"
    assert server.hits == 1


def test_no_key_is_one_clear_line_and_no_request(tmp_path: Path) -> None:
    with pytest.raises(APIKeyMissing) as info:
        require_api_key(fallback="or run without --llm for the offline ideator")
    assert str(info.value).startswith("ANTHROPIC_API_KEY is not set;") and "\n" not in str(info.value)
    with FakeAnthropic([tool_use(GOOD)] * 2) as server:
        keyless = LLMClient(settings(), cache_dir=tmp_path, base_url=server.base_url)
        with pytest.raises(APIKeyMissing):
            keyless.structured("one", Idea)
        assert server.hits == 0
        # Cached answers need no key.
        LLMClient(settings(), cache_dir=tmp_path, api_key=KEY, base_url=server.base_url).structured("one", Idea)
        assert keyless.structured("one", Idea).status == "ok" and server.hits == 1


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(DependencyMissing, match=r"pip install 'simgen\[llm\]'"):
        LLMClient(settings())


def test_client_refuses_pickling() -> None:
    with FakeAnthropic([]) as server, pytest.raises(TypeError, match="credential"):
        pickle.dumps(client(server))


def test_identical_concurrent_requests_are_fetched_once(tmp_path: Path) -> None:
    with FakeAnthropic(echo, latency_s=0.1) as server:
        llm = client(server, tmp_path, concurrency=4)
        results = llm.structured_many([StructuredRequest("same", Idea, salt="s")] * 4)
    assert server.hits == 1  # the other three waited for the first answer and read it from the cache
    assert [r.responses[0].cached for r in results].count(False) == 1
    assert len({json.dumps(r.record()) for r in results}) == 1


def test_plain_create_for_free_text() -> None:
    with FakeAnthropic([text("A mug behind a kettle.")]) as server:
        llm = client(server, temperature=0.7, params={"top_k": 5})
        resp = llm.create(llm.request_body([{"role": "user", "content": "Caption this."}], system="Be brief."))
    assert resp.text() == "A mug behind a kettle." and resp.stop_reason == "end_turn" and not resp.cached
    assert resp.output_tokens > 0 and resp.attempts == 1
    sent = server.requests[0].body
    assert (sent["temperature"], sent["top_k"], sent["system"]) == (0.7, 5, "Be brief.")
