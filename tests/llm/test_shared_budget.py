"""A run-wide budget shared by several clients (processes), forks that count into their parent, one in-flight bound."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from simgen.llm import Budget, BudgetExhausted, LLMClient, LLMSettings, SharedTally, StructuredRequest
from simgen.testing.fake_anthropic import FakeAnthropic, FakeRequest, tool_use

KEY = "sk-ant-api03-SHAREDBUDGET-0123456789abcdef"


class Idea(BaseModel):
    """One idea."""

    name: str = Field(min_length=1, max_length=40)


def echo(req: FakeRequest) -> object:
    return tool_use({"name": req.last_user_text[:40] or "x"})


def client(server: FakeAnthropic, tally: SharedTally | None, budget: Budget | None = None, **kw: object) -> LLMClient:
    settings = LLMSettings(model="claude-fake", backoff_base_s=0.01, max_retries=0, **kw)  # type: ignore[arg-type]
    return LLMClient(settings, budget=budget, api_key=KEY, base_url=server.base_url, shared=tally)


def test_two_clients_share_one_request_budget(tmp_path: Path) -> None:
    tally = SharedTally(tmp_path / "run.json")
    tally.reset()
    with FakeAnthropic(echo) as server:
        a, b = client(server, tally, Budget(max_requests=3)), client(server, tally, Budget(max_requests=3))
        assert a.structured("one", Idea).status == "ok"
        assert b.structured("two", Idea).status == "ok"
        assert a.structured("three", Idea).status == "ok"
        with pytest.raises(BudgetExhausted, match="max_requests=3"):
            b.structured("four", Idea)  # b made one request, but the run made three
        assert server.hits == 3
    summary = tally.summary()
    assert summary["requests"] == 3 and summary["exhausted"] == "max_requests" and summary["attempts"] == 3
    assert summary["input_tokens"] > 0 and summary["cost_usd"] is None  # claude-fake has no price


#: One process of a run: spends from the shared budget until it runs out, prints how many requests it made.
SPEND = """
import sys
from pydantic import BaseModel
from simgen.llm import Budget, BudgetExhausted, LLMClient, LLMSettings, SharedTally
class Idea(BaseModel):
    name: str
path, url, tag = sys.argv[1:4]
llm = LLMClient(LLMSettings(model="claude-fake", max_retries=0), budget=Budget(max_requests=5), base_url=url,
                shared=SharedTally(path))
done = 0
for i in range(4):
    try:
        llm.structured(f"{tag}{i}", Idea)
    except BudgetExhausted:
        break
    done += 1
print(done)
"""


@pytest.mark.slow
def test_the_budget_holds_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "run.json")
    SharedTally(path).reset()
    with FakeAnthropic(echo) as server:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY}
        procs = [subprocess.Popen([sys.executable, "-c", SPEND, path, server.base_url, tag], env=env,
                                  stdout=subprocess.PIPE, text=True) for tag in "ab"]  # fmt: skip
        done = [int(p.communicate(timeout=120)[0]) for p in procs]
        assert sum(done) == 5 and server.hits == 5
    assert SharedTally(path).summary()["requests"] == 5


def test_cache_hits_are_counted_and_free(tmp_path: Path) -> None:
    tally = SharedTally(tmp_path / "run.json")
    tally.reset()
    with FakeAnthropic(echo) as server:
        llm = LLMClient(LLMSettings(model="claude-fake"), api_key=KEY, base_url=server.base_url,
                        cache_dir=tmp_path / "cache", shared=tally, budget=Budget(max_requests=1))  # fmt: skip
        llm.structured("same", Idea)
        llm.structured("same", Idea)  # cached: no request, no budget
        assert server.hits == 1
    assert tally.summary()["cache_hits"] == 1 and tally.summary()["requests"] == 1


def test_a_fork_counts_its_own_answers_into_its_parent(tmp_path: Path) -> None:
    with FakeAnthropic(echo) as server:
        parent = client(server, None, Budget(max_requests=4))
        one, two = parent.fork(), parent.fork()
        one.structured("a", Idea)
        two.structured_many([StructuredRequest("b", Idea)])
        one.structured("c", Idea)
        assert one.summary()["responses"]["responses"] == 2 and two.summary()["responses"]["responses"] == 1
        assert parent.summary()["responses"]["responses"] == 3 and parent.summary()["this_run"]["requests"] == 3
        two.close()  # a fork leaves the connections to its parent
        assert parent.structured("e", Idea).status == "ok"
        with pytest.raises(BudgetExhausted):
            two.structured("d", Idea)  # the parent's budget bounds every fork
        assert two.ledger.exhausted == "max_requests" and parent.ledger.exhausted == "max_requests"
    assert server.hits == 4


def test_concurrency_bounds_requests_in_flight_across_nested_maps() -> None:
    with FakeAnthropic(echo, latency_s=0.05) as server:
        llm = client(server, None, concurrency=2)
        forks = [llm.fork() for _ in range(4)]
        # Four forks, each mapping four requests on its own threads: never more than 2 in flight.
        llm.map(lambda f: f.structured_many([StructuredRequest(f"q{id(f)}-{i}", Idea) for i in range(4)]), forks)
        assert server.hits == 16 and server.max_in_flight == 2
