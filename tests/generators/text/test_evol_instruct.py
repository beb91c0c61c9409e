"""text/evol-instruct-v1: WizardLM's four elimination rules on planted cases, rounds and lineage."""

from __future__ import annotations

import numpy as np
import pytest

from simgen.generators.text.evol_instruct import (
    COPY_MARKERS,
    OPERATIONS,
    EvolInstruct,
    copied_prompt_words,
    hard_to_respond,
    stopwords_only,
)
from simgen.generators.text.records import TextRecord, load_seeds
from simgen.llm import LLMError
from simgen.testing.fake_anthropic import FakeAnthropic, http_error, refusal, tool_use


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def seed(i: int = 0) -> TextRecord:
    return load_seeds()[i]


# -- the rules as pure functions


def test_rule_4_copied_prompt_words() -> None:
    assert copied_prompt_words("Explain PID control as in #The Given Prompt# but deeper.") == "#the given prompt#"
    assert copied_prompt_words("#Rewritten Prompt#: explain PID control.") == "#rewritten prompt#"
    assert copied_prompt_words("Rewrite the given prompt about grippers.") == "given prompt"
    assert copied_prompt_words("Here is the rewritten prompt: list sensors.") == "rewritten prompt"
    assert copied_prompt_words("Explain PID control to a new engineer, with an example.") is None
    assert all(m == m.lower() for m in COPY_MARKERS)


def test_rule_2_sorry_and_short() -> None:
    assert hard_to_respond("Sorry, I cannot answer that without more data.")
    assert hard_to_respond("I'm SORRY but " + "word " * 70)  # 73 words < 80
    assert not hard_to_respond("Sorry " + "word " * 79)  # 80 words: long enough
    assert not hard_to_respond("A short but helpful answer.")


def test_rule_3_stop_words_and_punctuation_only() -> None:
    assert stopwords_only("The, of and... to it!")
    assert stopwords_only("?!")
    assert stopwords_only("")
    assert not stopwords_only("The arm moves.")


# -- the generator against the fake server


def _population() -> list[TextRecord]:
    return load_seeds()[:4]


def test_records_over_rounds_carry_lineage_and_generation(model, client_of) -> None:
    gen = EvolInstruct(rounds=3)
    pop = _population()
    with FakeAnthropic(model) as server:
        out = gen.produce(pop, rng(0), client_of(server))
    assert out.counts == {"kept": 12}  # 4 lineages x 3 rounds, nothing eliminated
    by_id = {r.id: r for r in [*pop, *out.records]}
    for r in out.records:
        parent = by_id[r.parent_id]
        assert r.generation == parent.generation + 1 and r.origin == "synthetic"
        assert r.operation.removeprefix("evol-instruct/") in OPERATIONS
        assert r.output.startswith("A careful answer") and r.input == ""
        assert r.meta["equality"]["equal"] is False and len(r.request_keys) == 3
        assert r.template in ("evol-instruct/depth-v1", "evol-instruct/breadth-v1")
    assert sorted(r.generation for r in out.records) == [1] * 4 + [2] * 4 + [3] * 4
    assert out.stats["by_round"][2] == {"round": 3, "evolved": 4, "failed": 0}
    # Every depth prompt carried exactly one method text.
    depth = [
        q
        for q in server.requests
        if q.forced_tool == "submit_evolved_prompt" and "prompt rewriter" in q.body["messages"][0]["content"]
    ]
    assert depth and all("$method" not in q.body["messages"][0]["content"] for q in depth)


def _run(model, client_of, **kw):
    with FakeAnthropic(model) as server:
        out = EvolInstruct(rounds=1, **kw).produce([seed(0)], rng(0), client_of(server, concurrency=1))
    return out, server


def test_rule_1_no_information_gain_by_the_llm_judge(model, client_of) -> None:
    model.plant["submit_judgement"] = lambda req: tool_use({"equal": True, "reason": "Same requirements."})
    out, server = _run(model, client_of)
    assert out.records == [] and out.counts["no_information_gain"] == 1
    rejected = out.rejected[0]
    assert rejected.detail["judge_reason"] == "Same requirements." and rejected.parent_id == seed(0).id
    judge_prompt = next(q for q in server.requests if q.forced_tool == "submit_judgement").body["messages"][0][
        "content"
    ]
    assert seed(0).instruction in judge_prompt


def test_rule_1_identical_rewrite_needs_no_judge(model, client_of) -> None:
    model.plant["submit_evolved_prompt"] = lambda req: tool_use({"prompt": "  " + seed(0).prompt.upper() + "!"})
    out, server = _run(model, client_of)
    assert out.counts["no_information_gain"] == 1 and out.rejected[0].detail["why"] == "identical"
    assert [q.forced_tool for q in server.requests] == ["submit_evolved_prompt"]


def test_rule_2_hard_to_respond(model, client_of) -> None:
    model.plant["submit_response"] = lambda req: tool_use({"response": "Sorry, I can't answer that."})
    out, _ = _run(model, client_of)
    assert out.counts["hard_to_respond"] == 1 and out.rejected[0].detail["response"].startswith("Sorry")


def test_rule_3_stopwords_only(model, client_of) -> None:
    model.plant["submit_response"] = lambda req: tool_use({"response": "The of and, to it..."})
    out, _ = _run(model, client_of)
    assert out.counts["stopwords_only"] == 1


def test_rule_4_copied_words_stop_before_any_further_request(model, client_of) -> None:
    model.plant["submit_evolved_prompt"] = lambda req: tool_use(
        {"prompt": "#Rewritten Prompt#: explain grippers in depth."}
    )
    out, server = _run(model, client_of)
    assert out.counts["copied_prompt_words"] == 1 and out.rejected[0].detail["marker"] == "#rewritten prompt#"
    assert server.hits == 1  # no response, no judge


def test_a_failed_evolution_keeps_the_parent_for_the_next_round(model, client_of) -> None:
    calls = {"n": 0}

    def first_fails(req):
        calls["n"] += 1
        return tool_use({"response": "Sorry, no."}) if calls["n"] == 1 else None

    model.plant["submit_response"] = first_fails
    with FakeAnthropic(model) as server:
        out = EvolInstruct(rounds=2).produce([seed(0)], rng(0), client_of(server, concurrency=1))
    assert out.counts == {"hard_to_respond": 1, "kept": 1}
    assert out.records[0].parent_id == seed(0).id and out.records[0].generation == 1
    assert out.records[0].meta["round"] == 2


def test_refusals_are_failures_not_errors(model, client_of) -> None:
    model.plant["submit_evolved_prompt"] = lambda req: refusal("No rewriting.")
    out, _ = _run(model, client_of)
    assert out.counts["evolve_refused"] == 1
    model2 = type(model)()
    model2.plant["submit_judgement"] = lambda req: refusal("No judging.")
    out2, _ = _run(model2, client_of)
    assert out2.counts["judge_refused"] == 1


def test_500_raises_and_the_rerun_repeats_no_finished_request(model, client_of, tmp_path) -> None:
    model.plant["submit_judgement"] = lambda req: http_error(500, "down")
    with FakeAnthropic(model) as server:
        with pytest.raises(LLMError, match="HTTP 500"):
            EvolInstruct(rounds=1).produce(_population(), rng(0), client_of(server, tmp_path, max_retries=0))
        paid = {q.body["messages"][0]["content"] for q in server.requests if q.forced_tool != "submit_judgement"}
    fresh = type(model)()
    with FakeAnthropic(fresh) as server:
        out = EvolInstruct(rounds=1).produce(_population(), rng(0), client_of(server, tmp_path))
        again = {q.body["messages"][0]["content"] for q in server.requests if q.forced_tool != "submit_judgement"}
    assert len(out.records) == 4
    assert not (paid & again)  # evolutions and responses already answered were served from the cache
    # The evolution batch had finished before the failure: none is asked again. (Responses that the failure
    # cancelled before they started are asked now, once.)
    assert "submit_evolved_prompt" not in {q.forced_tool for q in server.requests}


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="did you mean 'deepen'"):
        EvolInstruct(operations=("deepn",))
    with pytest.raises(ValueError, match="weights"):
        EvolInstruct(operations=("deepen", "breadth"), weights=(1.0,))


def test_per_unit_generators_make_the_output_independent_of_shard_boundaries(model, client_of) -> None:
    pop = _population()

    def per_unit(keys):  # what the run loop passes: one generator per record key
        return [np.random.default_rng([7, k]) for k in keys]

    with FakeAnthropic(model) as server:
        llm = client_of(server)
        whole = EvolInstruct(rounds=2).produce(pop, per_unit(range(4)), llm)
        parts = [EvolInstruct(rounds=2).produce(pop[a:b], per_unit(range(a, b)), llm) for a, b in ((0, 1), (1, 4))]
    assert [r.line() for r in whole.records] == [r.line() for p in parts for r in p.records]
    # Records come grouped by lineage, in unit order, then by round.
    assert [r.meta["lineage"] for r in whole.records] == [u.id for u in pop for _ in range(2)]
    with pytest.raises(ValueError, match="one numpy.random.Generator per unit"):
        EvolInstruct(rounds=1).produce(pop, per_unit(range(3)), llm)
