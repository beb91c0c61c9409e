"""``text/evol-instruct-v1``: instructions evolved in depth and in breadth over rounds (Xu et al., 2023, WizardLM).

Each round, every instruction of the population is evolved by one operation drawn from ``rng``:

- **in depth** (``evol-instruct/depth-v1``): ``add_constraints``, ``deepen``, ``concretize``,
  ``increase_reasoning``, ``complicate_input``;
- **in breadth** (``evol-instruct/breadth-v1``): ``breadth``, a new, rarer prompt of the same domain.

The evolved instruction is answered (``respond-v1``), then **WizardLM's four elimination rules** decide whether
the evolution failed (the rules that distilabel's EvolInstruct leaves out):

1. ``no_information_gain``: the evolved instruction equals the original, judged by the LLM through a structured
   equality check (``evol-instruct/equality-v1``: same constraints and requirements, same depth and breadth). An
   instruction identical to its parent after normalisation fails without a call.
2. ``hard_to_respond``: the response contains "sorry" and is shorter than 80 words.
3. ``stopwords_only``: the response holds only punctuation and stop words (scikit-learn's English list).
4. ``copied_prompt_words``: the evolved instruction copies words of the evolving prompt ("#The Given Prompt#",
   "#Rewritten Prompt#", "given prompt", "rewritten prompt", "created prompt"...). Checked first: it costs
   nothing and saves the response and the judge.

As in WizardLM, a failed evolution leaves the instruction in the population, to be evolved again next round
(with a newly drawn operation); a successful one replaces it. Every successful evolution of every round is an
output record (``generation`` = parent's + 1, ``parent_id``, ``operation`` = ``evol-instruct/<op>``), with the
response as its output. Refused or invalid answers count as failures (``evolve_refused``, ``respond_invalid``,
``judge_refused``...).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from simgen.errors import DependencyMissing
from simgen.generators.text.dedup import normalise
from simgen.generators.text.prompts import (
    Template,
    answered_by,
    draw_salt,
    get_template,
    request,
    response_keys,
)
from simgen.generators.text.records import Produced, Rejection, RngArg, TextRecord, record_id, unit_rngs
from simgen.llm import LLMClient, StructuredRequest, StructuredResult

__all__ = [
    "BREADTH",
    "COPY_MARKERS",
    "DEPTH_OPERATIONS",
    "OPERATIONS",
    "EvolInstruct",
    "EvolvedPrompt",
    "Judgement",
    "Response",
    "copied_prompt_words",
    "hard_to_respond",
    "stopwords_only",
]

DEPTH_OPERATIONS: tuple[str, ...] = (
    "add_constraints",
    "deepen",
    "concretize",
    "increase_reasoning",
    "complicate_input",
)
BREADTH = "breadth"
OPERATIONS: tuple[str, ...] = (*DEPTH_OPERATIONS, BREADTH)
#: Words of the evolving prompt that must not leak into an evolved instruction (rule 4), matched case-insensitively.
COPY_MARKERS: tuple[str, ...] = (
    "#the given prompt#",
    "#rewritten prompt#",
    "#created prompt#",
    "given prompt",
    "rewritten prompt",
    "created prompt",
)
#: Rule 2: a response with "sorry" and fewer words than this is a sign the instruction is too hard to answer.
HARD_RESPONSE_WORDS = 80
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


class EvolvedPrompt(BaseModel):
    """Submit the new prompt, and nothing else."""

    prompt: str = Field(min_length=1, max_length=6000, description="The rewritten or created prompt.")


class Response(BaseModel):
    """Submit your complete answer."""

    response: str = Field(max_length=20000, description="The answer.")


class Judgement(BaseModel):
    """Submit whether the two instructions are equal."""

    equal: bool = Field(description="True when both have the same constraints, requirements, depth and breadth.")
    reason: str = Field(default="", max_length=500, description="One sentence.")


# -- the elimination rules (pure functions) ---------------------------------------------------------------


def copied_prompt_words(instruction: str, markers: Sequence[str] = COPY_MARKERS) -> str | None:
    """Rule 4: the first marker of the evolving prompt that the evolved instruction contains, or ``None``."""
    low = instruction.lower()
    return next((m for m in markers if m in low), None)


def hard_to_respond(response: str, max_words: int = HARD_RESPONSE_WORDS) -> bool:
    """Rule 2: the response contains "sorry" (any case) and has fewer than ``max_words`` words."""
    return "sorry" in response.lower() and len(response.split()) < max_words


def _stop_words() -> frozenset[str]:
    try:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    except ImportError as exc:
        raise DependencyMissing("scikit-learn", "text", "Evol-Instruct's stop-word rule") from exc
    return frozenset(ENGLISH_STOP_WORDS)


def stopwords_only(response: str, stop_words: frozenset[str] | None = None) -> bool:
    """Rule 3: the response holds only punctuation, whitespace and stop words (an empty response counts)."""
    words = stop_words if stop_words is not None else _stop_words()
    return all(w.lower() in words for w in _WORD.findall(response))


# -- the generator ----------------------------------------------------------------------------------------


@dataclass
class _Lineage:
    """One unit and what it has evolved into: its current instruction, its generator, its records and failures."""

    root: TextRecord
    current: TextRecord
    rng: np.random.Generator
    records: list[TextRecord] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class _Candidate:
    lineage: _Lineage
    parent: TextRecord
    operation: str
    instruction: str
    evolve: StructuredResult[Any]


@dataclass
class EvolInstruct:
    """The ``text/evol-instruct-v1`` generator (see the module docstring).

    Args:
        rounds: Evolution rounds (WizardLM used 4).
        operations: The operations drawn from (a subset of :data:`OPERATIONS`).
        weights: Their probabilities (default uniform), in the order of ``operations``.
        judge_equality: Apply rule 1 through the LLM judge (one more request per surviving candidate).
        hard_response_words: Rule 2's word count.
    """

    name: ClassVar[str] = "text/evol-instruct-v1"
    uses_llm: ClassVar[bool] = True

    rounds: int = 3
    operations: tuple[str, ...] = OPERATIONS
    weights: tuple[float, ...] | None = None
    judge_equality: bool = True
    hard_response_words: int = HARD_RESPONSE_WORDS
    _templates: dict[str, Template] = field(init=False, repr=False)
    _p: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.operations = tuple(self.operations)
        unknown = [op for op in self.operations if op not in OPERATIONS]
        if unknown or not self.operations:
            from simgen.errors import did_you_mean

            hint = did_you_mean(unknown[0], OPERATIONS) if unknown else ""
            raise ValueError(f"EvolInstruct.operations: unknown {unknown}{hint}; choose from {', '.join(OPERATIONS)}")
        if self.rounds < 1:
            raise ValueError(f"EvolInstruct.rounds: expected >= 1, got {self.rounds}")
        w = np.ones(len(self.operations)) if self.weights is None else np.asarray(self.weights, dtype=float)
        if w.shape != (len(self.operations),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"EvolInstruct.weights: expected {len(self.operations)} non-negative numbers, got {w}")
        self._p = w / w.sum()
        self._templates = {
            "depth": get_template("evol-instruct/depth-v1"),
            "breadth": get_template("evol-instruct/breadth-v1"),
            "equality": get_template("evol-instruct/equality-v1"),
            "respond": get_template("respond-v1"),
        }
        missing = [op for op in DEPTH_OPERATIONS if op not in self._templates["depth"].names("method")]
        if missing:
            raise ValueError(f"template evol-instruct/depth-v1 lacks methods {missing}")

    def config(self) -> dict[str, Any]:
        """Settings and template hashes, for ``dataset.json``."""
        return {
            "generator": self.name,
            "rounds": self.rounds,
            "operations": list(self.operations),
            "probabilities": [round(float(p), 6) for p in self._p],
            "judge_equality": self.judge_equality,
            "hard_response_words": self.hard_response_words,
            "templates": [t.ref() for t in self._templates.values()],
        }

    def produce(
        self, units: Sequence[TextRecord], rng: RngArg, client: LLMClient | None, *, n: int | None = None
    ) -> Produced:
        """Evolve every instruction record of ``units`` for ``rounds`` rounds (``n`` is not used).

        Each lineage (one unit and what it evolves into) draws its operations and salts from its own generator
        (:func:`~simgen.generators.text.records.unit_rngs`), and the records come out grouped by lineage in unit
        order, then by round: a unit's records do not depend on the other units of the call.

        Raises:
            ValueError: No client.
            LLMError, BudgetExhausted: From the client; a rerun replays the cache.
        """
        if client is None:
            raise ValueError("evol-instruct needs an LLM client")
        roots = [r for r in units if r.kind == "instruction"]
        rngs = unit_rngs(rng, len(roots))
        lineages = [_Lineage(root, root, g) for root, g in zip(roots, rngs, strict=True)]
        stop = _stop_words()
        by_round = []
        for round_no in range(1, self.rounds + 1):
            survivors = self._evolve(lineages, round_no, client)
            evolved = self._judge_and_respond(survivors, round_no, client, stop)
            by_round.append({"round": round_no, "evolved": evolved})
        out = Produced(stats={"rounds": self.rounds, "evolutions": self.rounds * len(lineages), "by_round": by_round})
        for lineage in lineages:
            out.records.extend(lineage.records)
            out.rejected.extend(lineage.rejected)
        for entry in by_round:
            entry["failed"] = sum(1 for x in out.rejected if x.detail.get("round") == entry["round"])
        return out

    def _evolve(self, lineages: list[_Lineage], round_no: int, client: LLMClient) -> list[_Candidate]:
        requests: list[StructuredRequest[Any]] = []
        ops = []
        for lineage in lineages:
            parent, g = lineage.current, lineage.rng
            op = self.operations[int(g.choice(len(self.operations), p=self._p))]
            ops.append(op)
            salt = draw_salt(g, f"{self.name}:r{round_no}:{parent.id}")
            if op == BREADTH:
                requests.append(request(self._templates["breadth"], EvolvedPrompt, salt=salt, prompt=parent.prompt))
            else:
                method = self._templates["depth"].section(f"method.{op}")
                requests.append(
                    request(self._templates["depth"], EvolvedPrompt, salt=salt, method=method, prompt=parent.prompt)
                )
        results = client.structured_many(requests)
        survivors = []
        for lineage, op, result in zip(lineages, ops, results, strict=True):
            parent = lineage.current
            detail: dict[str, Any] = {"op": op, "round": round_no}
            if result.status != "ok":
                lineage.rejected.append(Rejection(f"evolve_{result.status}", parent_id=parent.id, detail=detail))
                continue
            text = result.value.prompt.strip()
            marker = copied_prompt_words(text)
            if marker is not None:
                lineage.rejected.append(Rejection("copied_prompt_words", text, parent.id, {**detail, "marker": marker}))
                continue
            if normalise(text) == normalise(parent.prompt):
                lineage.rejected.append(
                    Rejection("no_information_gain", text, parent.id, {**detail, "why": "identical"})
                )
                continue
            survivors.append(_Candidate(lineage, parent, op, text, result))
        return survivors

    def _judge_and_respond(
        self, survivors: list[_Candidate], round_no: int, client: LLMClient, stop: frozenset[str]
    ) -> int:
        requests: list[StructuredRequest[Any]] = []
        for cand in survivors:
            salt = draw_salt(cand.lineage.rng, f"{self.name}:r{round_no}:{cand.parent.id}")
            requests.append(request(self._templates["respond"], Response, salt=salt, prompt=cand.instruction))
            if self.judge_equality:
                requests.append(
                    request(
                        self._templates["equality"],
                        Judgement,
                        salt=salt,
                        first=cand.parent.prompt,
                        second=cand.instruction,
                    )
                )
        results = client.structured_many(requests)
        step = 2 if self.judge_equality else 1
        evolved = 0
        for i, cand in enumerate(survivors):
            answer = results[i * step]
            judge = results[i * step + 1] if self.judge_equality else None
            detail: dict[str, Any] = {"op": cand.operation, "round": round_no}
            reason = self._elimination(answer, judge, detail, stop)
            if reason is not None:
                cand.lineage.rejected.append(Rejection(reason, cand.instruction, cand.parent.id, detail))
                continue
            record = self._record(cand, answer, judge, round_no, client)
            cand.lineage.current = record
            cand.lineage.records.append(record)
            evolved += 1
        return evolved

    def _elimination(
        self,
        answer: StructuredResult[Any],
        judge: StructuredResult[Any] | None,
        detail: dict[str, Any],
        stop: frozenset[str],
    ) -> str | None:
        if judge is not None:
            if judge.status != "ok":
                return f"judge_{judge.status}"
            detail["judge_reason"] = judge.value.reason
            if judge.value.equal:
                return "no_information_gain"
        if answer.status != "ok":
            return f"respond_{answer.status}"
        response = answer.value.response
        if hard_to_respond(response, self.hard_response_words):
            detail["response"] = response[:200]
            return "hard_to_respond"
        if stopwords_only(response, stop):
            detail["response"] = response[:200]
            return "stopwords_only"
        return None

    def _record(
        self,
        cand: _Candidate,
        answer: StructuredResult[Any],
        judge: StructuredResult[Any] | None,
        round_no: int,
        client: LLMClient,
    ) -> TextRecord:
        template = self._templates["breadth" if cand.operation == BREADTH else "depth"]
        response = answer.value.response.strip()
        keys = [*response_keys(cand.evolve), *response_keys(answer), *(response_keys(judge) if judge else [])]
        meta: dict[str, Any] = {
            "round": round_no,
            "lineage": cand.lineage.root.id,
            "response_template": self._templates["respond"].ref(),
            "response_model": answered_by(answer, client.settings.model),
        }
        if judge is not None:
            meta["equality"] = {"equal": False, "reason": judge.value.reason, **self._templates["equality"].ref()}
        return TextRecord(
            id=record_id("ev", self.name, cand.parent.id, cand.operation, cand.instruction, response),
            instruction=cand.instruction,
            input="",
            output=response,
            parent_id=cand.parent.id,
            operation=f"evol-instruct/{cand.operation}",
            generator=self.name,
            model=answered_by(cand.evolve, client.settings.model),
            template=template.name,
            template_sha256=template.sha256,
            request_keys=keys,
            origin="synthetic",
            generation=cand.parent.generation + 1,
            meta=meta,
        )
