"""text/self-instruct-v1 through the real SDK against the fake Messages API: records, filters, failures."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from simgen.generators.text.prompts import get_template
from simgen.generators.text.records import load_seeds
from simgen.generators.text.self_instruct import SelfInstruct, clean_instruction, filter_instruction
from simgen.llm import LLMError
from simgen.testing.fake_anthropic import FakeAnthropic, hang, http_error, refusal, tool_use


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("Sort these numbers.", "too_short"),  # 3 words: the paper drops <= 3
        ("word " * 151, "too_long"),
        ("Describe the image of the robot cell.", "keyword"),
        ("Plot the joint torques over time for the run.", "keyword"),
        ("Explain how to go to the charging dock safely.", "keyword"),
        ("Write a program that sorts pallets by weight.", "write_a_program"),
        ("- List three sensors for a robot arm.", "starts_with_punctuation"),
        ("Écrivez une phrase sur les robots.", "non_english"),
        ("Напишите короткое описание робота-манипулятора.", "non_english"),
    ],
)
def test_each_paper_filter_on_a_planted_instruction(text: str, reason: str) -> None:
    got = filter_instruction(clean_instruction(text))
    assert got is not None and got[0] == reason


def test_filters_pass_ordinary_instructions_and_match_whole_words_only() -> None:
    for ok in (
        "Sort these four numbers.",
        "Explain the mapping from joint space to task space.",
        "Describe a profile of imagery analysts.",
        "Compare two grasp planners for a café kitchen robot.",
    ):
        assert filter_instruction(ok) is None, ok
    assert clean_instruction("  Explain\n\tthe   idea. ") == "Explain the idea."


def test_good_records_with_lineage_provenance_and_drop_counts(model, client_of, tmp_path) -> None:
    seeds = load_seeds()
    gen = SelfInstruct(requests_per_round=3, tasks_per_request=8)
    with FakeAnthropic(model) as server:
        out = gen.produce(seeds, rng(1), client_of(server, tmp_path / "cache"), n=20)
    assert len(out.records) == 20 and out.stats["target_reached"]
    seed_ids = {s.id for s in seeds}
    propose = get_template("self-instruct/propose-v1")
    for r in out.records:
        assert r.origin == "synthetic" and r.generator == "text/self-instruct-v1" and r.model == "claude-fake"
        assert r.operation == "self-instruct/propose" and r.parent_id is None
        assert len(r.context_ids) == gen.k and r.output
        assert r.template == propose.name and r.template_sha256 == propose.sha256
        assert r.meta["instance_template"]["name"].startswith("self-instruct/instance-")
        # generation: 1 + the highest generation of its in-context examples (seeds are 0, own tasks 1+).
        context_gen = [
            0 if c in seed_ids else next(x.generation for x in out.records if x.id == c) for c in r.context_ids
        ]
        assert r.generation == 1 + max(context_gen)
        for key in r.request_keys:  # every response used is in the cache
            assert (tmp_path / "cache" / key[:2] / f"{key}.json").is_file()
    assert any(r.generation >= 2 for r in out.records)  # own tasks joined the context in later rounds
    assert len({r.id for r in out.records}) == 20
    counts = out.counts
    for reason in ("keyword", "too_short", "rouge_similar", "starts_with_punctuation", "non_english"):
        assert counts[reason] >= 1, (reason, counts)
    similar = next(x for x in out.rejected if x.reason == "rouge_similar")
    assert similar.detail["rouge_l"] > 0.7 and similar.detail["similar_to"]
    # No two kept instructions, nor one and a seed, are near-duplicates.
    from simgen.generators.text.dedup import brute_force_pairs

    texts = [s.instruction for s in seeds] + [r.instruction for r in out.records]
    assert brute_force_pairs(texts, 0.7) == []
    # Classification tasks get the output-first template (label first).
    kinds = Counter(r.meta["instance_template"]["name"] for r in out.records)
    assert set(kinds) <= {"self-instruct/instance-input-first-v1", "self-instruct/instance-output-first-v1"}
    bodies = [q.body for q in server.requests if q.forced_tool == "submit_instances"]
    assert any("classification task" in b["messages"][0]["content"] for b in bodies)


def test_same_seed_same_records_other_seed_other_records(model, client_of) -> None:
    seeds = load_seeds()
    gen = SelfInstruct(requests_per_round=2)
    with FakeAnthropic(model) as server:
        a = gen.produce(seeds, rng(3), client_of(server), n=6)
        b = gen.produce(seeds, rng(3), client_of(server), n=6)
        c = gen.produce(seeds, rng(4), client_of(server), n=6)
    assert [r.line() for r in a.records] == [r.line() for r in b.records]
    assert {r.instruction for r in a.records} != {r.instruction for r in c.records}


def test_malformed_proposal_is_repaired(model, client_of) -> None:
    first = {"done": set()}

    def malformed_once(req):
        if len(req.body["messages"]) == 1 and "x" not in first["done"]:
            first["done"].add("x")
            return tool_use({"tasks": [{"instruction": ""}], "extra": 1})  # empty instruction + unknown key
        return None

    model.plant["submit_proposed_tasks"] = malformed_once
    with FakeAnthropic(model) as server:
        llm = client_of(server, concurrency=1)
        out = SelfInstruct(requests_per_round=1).produce(load_seeds(), rng(0), llm, n=3)
    assert len(out.records) == 3
    assert llm.summary()["structured"]["repairs"] == 1
    repair = next(q for q in server.requests if len(q.body["messages"]) == 3)
    assert repair.body["messages"][2]["content"][0]["is_error"] is True


def test_refused_proposal_is_counted_not_raised(model, client_of) -> None:
    model.plant["submit_proposed_tasks"] = lambda req: refusal("I won't write these tasks.")
    with FakeAnthropic(model) as server:
        out = SelfInstruct(requests_per_round=2, max_rounds=3).produce(load_seeds(), rng(0), client_of(server), n=5)
    assert out.records == [] and out.counts["propose_refused"] == 6
    assert out.stats["target_reached"] is False and out.stats["rounds"] == 3


def test_refused_instance_is_counted(model, client_of) -> None:
    model.plant["submit_instances"] = lambda req: refusal("No.")
    with FakeAnthropic(model) as server:
        out = SelfInstruct(requests_per_round=1, max_rounds=1).produce(load_seeds(), rng(0), client_of(server), n=3)
    assert out.records == [] and out.counts["instance_refused"] == 3


def test_429_then_success_and_timeout_then_success(model, client_of) -> None:
    seen = {"n": 0}

    def flaky(req):
        seen["n"] += 1
        if seen["n"] == 1:
            return http_error(429, "slow down", retry_after=0.05)
        if seen["n"] == 2:
            return hang(5)
        return None

    model.plant["submit_proposed_tasks"] = flaky
    with FakeAnthropic(model) as server:
        llm = client_of(server, concurrency=1, timeout_s=0.3)
        out = SelfInstruct(requests_per_round=1).produce(load_seeds(), rng(0), llm, n=2)
    assert len(out.records) == 2
    run = llm.summary()["this_run"]
    assert run["retries"] == 2 and run["attempts"] == run["requests"] + 2


def test_500_every_time_raises_one_clear_line(model, client_of) -> None:
    model.plant["submit_proposed_tasks"] = lambda req: http_error(500, "internal")
    with FakeAnthropic(model) as server:
        with pytest.raises(LLMError, match=r"failed after 3 attempts: HTTP 500: internal$"):
            SelfInstruct(requests_per_round=1).produce(load_seeds(), rng(0), client_of(server, max_retries=2), n=2)
        assert server.hits == 3


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="k_machine"):
        SelfInstruct(k=2, k_machine=3)
    with pytest.raises(ValueError, match="n must be a positive"):
        SelfInstruct().produce(load_seeds(), rng(0), None, n=0)
    with pytest.raises(ValueError, match="at least one seed"):
        SelfInstruct().produce([], rng(0), None, n=3)
