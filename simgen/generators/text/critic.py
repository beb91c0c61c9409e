"""``text/critic-filter-v1``: an LLM judge scores each record on a rubric, and a threshold filters (UltraFeedback).

The judge (``critic/ultrafeedback-v1``) rates an instruction's output on UltraFeedback's four aspects (Cui et al.,
2023), each from 1 to 5 with a one-sentence reason, through a tool whose schema bounds the scores and the
reasons (:class:`Rubric`):

- ``helpfulness``: correct, relevant, complete, not needlessly long;
- ``honesty``: calibrated confidence, uncertainty admitted, nothing invented to sound sure;
- ``instruction_following``: does what is asked, in the form asked, within its constraints;
- ``truthfulness``: no hallucination against the world, the instruction, its input or itself.

A record passes when the mean over the ``aspects`` reaches ``threshold`` and, if ``min_score`` is set, every one
of those aspects reaches it. Every judged record keeps its :class:`~simgen.generators.text.records.CriticVerdict`
(scores, reasons, mean, pass or fail, judge model, rubric hash): passing records are the output; the others are
rejections (``below_threshold``) with their verdict in the detail, so the score distributions cover both.
A record without an output is ``no_output``; a refused or still-invalid judgement is ``critic_refused`` or
``critic_invalid`` (kept out: unjudged is not passed).

A judgement is cached by the record's id and the rubric, so the same record gets the same verdict on a rerun and in
every shard; ``rng`` is not used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from simgen.generators.text.prompts import Template, answered_by, get_template, request, response_keys
from simgen.generators.text.records import CriticVerdict, Produced, Rejection, RngArg, TextRecord
from simgen.llm import LLMClient, StructuredResult

__all__ = ["ASPECTS", "AspectRating", "CriticFilter", "Rubric", "verdict_of"]

#: UltraFeedback's aspects, in the order the rubric lists them.
ASPECTS: tuple[str, ...] = ("helpfulness", "honesty", "instruction_following", "truthfulness")


class AspectRating(BaseModel):
    """A score and the reason for it."""

    score: int = Field(ge=1, le=5, description="1 (worst) to 5 (best).")
    reason: str = Field(min_length=1, max_length=600, description="One sentence.")


class Rubric(BaseModel):
    """Submit a score and a one-sentence reason for each aspect."""

    helpfulness: AspectRating
    honesty: AspectRating
    instruction_following: AspectRating
    truthfulness: AspectRating


def verdict_of(
    result: StructuredResult[Any],
    template: Template,
    *,
    aspects: Sequence[str],
    threshold: float,
    min_score: int | None,
    fallback_model: str,
) -> CriticVerdict:
    """The verdict of one judged exchange (a pure function of the result and the policy)."""
    common: dict[str, Any] = {
        "threshold": threshold,
        "min_score": min_score,
        "model": answered_by(result, fallback_model),
        "template": template.name,
        "template_sha256": template.sha256,
        "request_keys": response_keys(result),
    }
    if result.status != "ok" or result.value is None:
        return CriticVerdict(status=result.status, passed=False, **common)
    rubric: Rubric = result.value
    scores = {a: getattr(rubric, a).score for a in ASPECTS}
    reasons = {a: getattr(rubric, a).reason.strip() for a in ASPECTS}
    mean = sum(scores[a] for a in aspects) / len(aspects)
    passed = mean >= threshold and (min_score is None or all(scores[a] >= min_score for a in aspects))
    return CriticVerdict(status="ok", scores=scores, reasons=reasons, mean=round(mean, 6), passed=passed, **common)


@dataclass
class CriticFilter:
    """The ``text/critic-filter-v1`` generator (see the module docstring).

    Args:
        threshold: The mean score (over ``aspects``) a record needs, in [1, 5].
        min_score: The score each of ``aspects`` needs, or ``None``.
        aspects: The aspects that count (all four are always asked for and kept).
    """

    name: ClassVar[str] = "text/critic-filter-v1"
    uses_llm: ClassVar[bool] = True

    threshold: float = 3.5
    min_score: int | None = None
    aspects: tuple[str, ...] = ASPECTS
    _template: Template = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.aspects = tuple(self.aspects)
        unknown = [a for a in self.aspects if a not in ASPECTS]
        if unknown or not self.aspects:
            from simgen.errors import did_you_mean

            hint = did_you_mean(unknown[0], ASPECTS) if unknown else ""
            raise ValueError(f"CriticFilter.aspects: unknown {unknown}{hint}; choose from {', '.join(ASPECTS)}")
        if not 1.0 <= self.threshold <= 5.0:
            raise ValueError(f"CriticFilter.threshold: expected a mean score in [1, 5], got {self.threshold}")
        if self.min_score is not None and not 1 <= self.min_score <= 5:
            raise ValueError(f"CriticFilter.min_score: expected 1..5 or None, got {self.min_score}")
        self._template = get_template("critic/ultrafeedback-v1")

    def config(self) -> dict[str, Any]:
        """Settings and the rubric's hash, for ``dataset.json``."""
        return {
            "generator": self.name,
            "threshold": self.threshold,
            "min_score": self.min_score,
            "aspects": list(self.aspects),
            "templates": [self._template.ref()],
        }

    def judge(self, records: Sequence[TextRecord], client: LLMClient) -> list[TextRecord]:
        """Every record with an output, judged: a copy carrying its verdict (records without output are skipped)."""
        judged = [r for r in records if (r.output or "").strip()]
        requests = [
            request(
                self._template,
                Rubric,
                salt=f"{self.name}:{r.id}",
                instruction=r.instruction or "",
                input=(r.input or "").strip() or "(none)",
                output=r.output or "",
            )
            for r in judged
        ]
        results = client.structured_many(requests)
        return [
            r.model_copy(
                update={
                    "critic": verdict_of(
                        res,
                        self._template,
                        aspects=self.aspects,
                        threshold=self.threshold,
                        min_score=self.min_score,
                        fallback_model=client.settings.model,
                    )
                }
            )
            for r, res in zip(judged, results, strict=True)
        ]

    def produce(
        self, units: Sequence[TextRecord], rng: RngArg, client: LLMClient | None, *, n: int | None = None
    ) -> Produced:
        """Judge the instruction records of ``units`` and keep those that pass (``rng`` and ``n`` are not used).

        Raises:
            ValueError: No client.
            LLMError, BudgetExhausted: From the client; a rerun replays the cache.
        """
        if client is None:
            raise ValueError("the critic filter needs an LLM client")
        out = Produced()
        for r in units:
            if r.kind != "instruction" or not (r.output or "").strip():
                out.rejected.append(Rejection("no_output", r.prompt, r.id))
        for r in self.judge(units, client):
            verdict = r.critic
            assert verdict is not None  # judge() sets it
            if verdict.passed:
                out.records.append(r)
                continue
            reason = "below_threshold" if verdict.status == "ok" else f"critic_{verdict.status}"
            out.rejected.append(Rejection(reason, r.prompt, r.id, {"record": r.model_dump(mode="json")}))
        out.stats = {"judged": len(out.records) + sum(1 for x in out.rejected if x.reason != "no_output")}
        return out
