"""text/critic-filter-v1: rubric scores with reasons, threshold filtering, failures."""

from __future__ import annotations

import numpy as np
import pytest

from simgen.generators.text.critic import ASPECTS, CriticFilter
from simgen.generators.text.prompts import get_template
from simgen.generators.text.records import TextRecord, load_seeds
from simgen.testing.fake_anthropic import FakeAnthropic, refusal, tool_use


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def scores(h: int, o: int, i: int, t: int) -> dict:
    return {a: {"score": s, "reason": f"{a} is {s}."} for a, s in zip(ASPECTS, (h, o, i, t), strict=True)}


def by_output(table: dict[str, dict]):
    """Answer the rubric from the record's output text (so concurrent requests get their own answer)."""

    def reply(req):
        text = req.body["messages"][0]["content"]
        return next((tool_use(v) for k, v in table.items() if k in text), None)

    return reply


def records() -> list[TextRecord]:
    return load_seeds()[:3]


def test_threshold_keeps_reasons_and_rejects_with_verdicts(model, client_of) -> None:
    good, mid, bad = records()
    model.plant["submit_rubric"] = by_output(
        {good.output: scores(5, 5, 4, 5), mid.output: scores(4, 3, 4, 3), bad.output: scores(2, 1, 2, 1)}
    )
    with FakeAnthropic(model) as server:
        out = CriticFilter(threshold=3.5).produce([good, mid, bad], rng(), client_of(server))
    assert [r.id for r in out.records] == [good.id, mid.id]
    v = out.records[0].critic
    assert v.status == "ok" and v.passed and v.mean == pytest.approx(4.75)
    assert v.scores == {"helpfulness": 5, "honesty": 5, "instruction_following": 4, "truthfulness": 5}
    assert v.reasons["honesty"] == "honesty is 5." and v.model == "claude-fake"
    rubric = get_template("critic/ultrafeedback-v1")
    assert (v.template, v.template_sha256) == (rubric.name, rubric.sha256) and len(v.request_keys) == 1
    assert out.records[1].critic.mean == pytest.approx(3.5)  # at the threshold: passes
    assert out.counts == {"kept": 2, "below_threshold": 1}
    rejected = out.rejected[0]
    assert rejected.parent_id == bad.id and rejected.detail["record"]["critic"]["mean"] == pytest.approx(1.5)
    # The judge saw the instruction, the input and the answer.
    prompt = next(
        q.body["messages"][0]["content"] for q in server.requests if bad.output in q.body["messages"][0]["content"]
    )
    assert bad.instruction in prompt and bad.input in prompt


def test_min_score_and_aspect_subset(model, client_of) -> None:
    good, mid, _ = records()
    model.plant["submit_rubric"] = by_output({good.output: scores(5, 5, 5, 1), mid.output: scores(4, 4, 4, 4)})
    with FakeAnthropic(model) as server:
        strict = CriticFilter(threshold=3.0, min_score=2).produce([good, mid], rng(), client_of(server))
        helpful = CriticFilter(threshold=4.5, aspects=("helpfulness",)).produce([good, mid], rng(), client_of(server))
    assert [r.id for r in strict.records] == [mid.id]  # good fails truthfulness >= 2 despite a mean of 4
    assert [r.id for r in helpful.records] == [good.id]


def test_out_of_range_scores_are_repaired(model, client_of) -> None:
    first = {"seen": False}

    def once(req):
        if not first["seen"]:
            first["seen"] = True
            return tool_use(scores(6, 5, 0, 5))
        return tool_use(scores(4, 4, 4, 4))

    model.plant["submit_rubric"] = once
    with FakeAnthropic(model) as server:
        llm = client_of(server)
        out = CriticFilter().produce(records()[:1], rng(), llm)
    assert out.records[0].critic.scores["helpfulness"] == 4 and llm.summary()["structured"]["repairs"] == 1
    assert len(out.records[0].critic.request_keys) == 2


def test_refusal_and_no_output(model, client_of) -> None:
    model.plant["submit_rubric"] = lambda req: refusal("I can't judge this.")
    empty = records()[0].model_copy(update={"id": "no-output", "output": ""})
    with FakeAnthropic(model) as server:
        out = CriticFilter().produce([records()[1], empty], rng(), client_of(server))
    assert out.records == [] and out.counts == {"kept": 0, "critic_refused": 1, "no_output": 1}
    assert out.rejected[1].detail["record"]["critic"]["status"] == "refused"
    assert server.hits == 1  # the record without output was never sent


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="did you mean 'honesty'"):
        CriticFilter(aspects=("honsety",))
    with pytest.raises(ValueError, match=r"\[1, 5\]"):
        CriticFilter(threshold=7)
