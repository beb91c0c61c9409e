"""``text/self-instruct-v1``: new instruction data bootstrapped from seed tasks (Wang et al., ACL 2023).

Each round:

1. **Propose.** ``requests_per_round`` prompts, each listing ``k`` example tasks drawn from ``rng``: up to
   ``k_machine`` of the tasks this shard already made and the rest from the seeds (the paper's 6 + 2). The model
   answers through a tool with a bounded list of new tasks (:class:`ProposedTasks`), each flagged as a
   classification task or not.
2. **Filter**, with the paper's rules, in this order (each drop is counted by reason):
   ``too_short`` (3 words or fewer), ``too_long`` (more than 150 words), ``keyword`` (image, graph, picture, file,
   map, draw, plot, go to: things a language model cannot do), ``write_a_program``, ``starts_with_punctuation``,
   ``non_english`` (first character not ASCII, or under 80% ASCII among the letters), then ``rouge_similar``:
   ROUGE-L above 0.7 against any instruction in the pool (the seeds and every instruction accepted so far, in
   this shard; :class:`~simgen.generators.text.dedup.RougeIndex`).
3. **Instances.** For each accepted instruction, an input and an output: input first, or output (the label) first
   for a classification task, as in the paper. Drops: ``empty_output``, ``same_input_output``, ``output_too_long``,
   ``duplicate_instance``, and ``no_valid_instance`` for the instruction when none is left.

Rounds repeat until ``n`` records exist or ``max_rounds`` is reached (then ``stats["target_reached"]`` is
false). Refused or still-invalid answers are counted (``propose_refused``, ``instance_invalid``...), not raised.

Across shards, each shard keeps its own pool (its records depend on its seed alone); the run loop's final
:func:`~simgen.generators.text.dedup.dedup` restores the ROUGE-L bound across shards.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from simgen.generators.text.dedup import DEFAULT_THRESHOLD, RougeIndex
from simgen.generators.text.prompts import (
    Template,
    answered_by,
    draw_salt,
    get_template,
    request,
    response_keys,
)
from simgen.generators.text.records import Produced, Rejection, TextRecord, record_id
from simgen.llm import LLMClient

__all__ = [
    "BLOCKED_KEYWORDS",
    "Instance",
    "Instances",
    "ProposedTask",
    "ProposedTasks",
    "SelfInstruct",
    "clean_instruction",
    "filter_instruction",
]

#: The paper's keyword filter: tasks a text-only model cannot do (Self-Instruct's generate_instructions.py).
BLOCKED_KEYWORDS: tuple[str, ...] = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
)
_MAX_INSTRUCTION_CHARS = 1500


class ProposedTask(BaseModel):
    """One new task."""

    instruction: str = Field(min_length=1, max_length=_MAX_INSTRUCTION_CHARS, description="The task instruction.")
    is_classification: bool = Field(
        default=False, description="True when the answer is one label from a small fixed set."
    )


class ProposedTasks(BaseModel):
    """Submit the new tasks, different from the examples and from each other."""

    tasks: list[ProposedTask] = Field(min_length=1, max_length=20)


class Instance(BaseModel):
    """One worked example of a task."""

    input: str = Field(default="", max_length=4000, description="The input; empty when the task needs none.")
    output: str = Field(default="", max_length=8000, description="The correct output for the input.")


class Instances(BaseModel):
    """Submit the worked examples of the task."""

    instances: list[Instance] = Field(min_length=1, max_length=5)


def clean_instruction(text: str) -> str:
    """Whitespace runs collapsed to one space and the ends stripped, as the paper's post-processing does."""
    return " ".join(text.split())


def _has_word(phrase: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(phrase)}\b", text, flags=re.IGNORECASE) is not None


def filter_instruction(
    text: str,
    *,
    min_words: int = 4,
    max_words: int = 150,
    keywords: Sequence[str] = BLOCKED_KEYWORDS,
) -> tuple[str, dict[str, Any]] | None:
    """The paper's heuristic filters on one (cleaned) instruction.

    Args:
        text: The instruction, after :func:`clean_instruction`.
        min_words: Fewer words is ``too_short`` (the paper drops 3 words or fewer).
        max_words: More words is ``too_long``.
        keywords: Whole words or phrases that make a task unsuitable for a text-only model.

    Returns:
        ``None`` when it passes, else ``(reason, detail)``.
    """
    if not text:
        return "empty", {}
    n_words = len(text.split())
    if n_words < min_words:
        return "too_short", {"words": n_words}
    if n_words > max_words:
        return "too_long", {"words": n_words}
    hit = next((k for k in keywords if _has_word(k, text)), None)
    if hit is not None:
        return "keyword", {"keyword": hit}
    if text.lower().startswith("write a program"):
        return "write_a_program", {}
    if text[0] in string.punctuation:
        return "starts_with_punctuation", {"first": text[0]}
    letters = [c for c in text if c.isalpha()]
    ascii_share = sum(c.isascii() for c in letters) / len(letters) if letters else 1.0
    if not text[0].isascii() or ascii_share < 0.8:
        return "non_english", {"ascii_letter_share": round(ascii_share, 3)}
    return None


def _instance_problem(inst: Instance, seen: set[tuple[str, str]], max_output_words: int) -> str | None:
    inp, out = inst.input.strip(), inst.output.strip()
    if not out:
        return "empty_output"
    if inp and inp == out:
        return "same_input_output"
    if len(out.split()) > max_output_words:
        return "output_too_long"
    if (inp, out) in seen:
        return "duplicate_instance"
    return None


@dataclass(frozen=True)
class _Task:
    instruction: str
    is_classification: bool
    context: tuple[TextRecord, ...]
    propose_keys: tuple[str, ...]
    model: str


@dataclass
class SelfInstruct:
    """The ``text/self-instruct-v1`` generator (see the module docstring).

    Args:
        k: In-context example tasks per proposal prompt (the paper uses 8).
        k_machine: How many of them come from this shard's own tasks, once it has some (the paper uses 2).
        tasks_per_request: New tasks asked for per proposal.
        requests_per_round: Proposal requests sent together each round (bounded by the client's concurrency).
        max_rounds: The most rounds before giving up on reaching ``n``.
        rouge_threshold: Drop an instruction with ROUGE-L above this against the pool.
        min_words: Instruction length floor in words.
        max_words: Instruction length ceiling in words.
        keywords: The keyword filter.
        instances_per_task: Worked examples asked for per task; the first valid one becomes the record.
        max_output_words: Longest accepted output.
    """

    name: ClassVar[str] = "text/self-instruct-v1"
    uses_llm: ClassVar[bool] = True

    k: int = 8
    k_machine: int = 2
    tasks_per_request: int = 8
    requests_per_round: int = 4
    max_rounds: int = 50
    rouge_threshold: float = DEFAULT_THRESHOLD
    min_words: int = 4
    max_words: int = 150
    keywords: tuple[str, ...] = BLOCKED_KEYWORDS
    instances_per_task: int = 1
    max_output_words: int = 1000
    _templates: dict[str, Template] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        checks = {
            "k": self.k >= 1,
            "k_machine": 0 <= self.k_machine <= self.k,
            "tasks_per_request": 1 <= self.tasks_per_request <= 20,
            "requests_per_round": self.requests_per_round >= 1,
            "max_rounds": self.max_rounds >= 1,
            "rouge_threshold": 0.0 < self.rouge_threshold <= 1.0,
            "min_words": self.min_words >= 1,
            "max_words": self.max_words >= self.min_words,
            "instances_per_task": 1 <= self.instances_per_task <= 5,
            "max_output_words": self.max_output_words >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SelfInstruct.{name}: invalid value {getattr(self, name)!r}")
        self.keywords = tuple(self.keywords)
        self._templates = {
            "propose": get_template("self-instruct/propose-v1"),
            "input_first": get_template("self-instruct/instance-input-first-v1"),
            "output_first": get_template("self-instruct/instance-output-first-v1"),
        }

    def config(self) -> dict[str, Any]:
        """Settings and template hashes, for ``dataset.json``."""
        return {
            "generator": self.name,
            "k": self.k,
            "k_machine": self.k_machine,
            "tasks_per_request": self.tasks_per_request,
            "requests_per_round": self.requests_per_round,
            "max_rounds": self.max_rounds,
            "rouge_threshold": self.rouge_threshold,
            "min_words": self.min_words,
            "max_words": self.max_words,
            "keywords": list(self.keywords),
            "instances_per_task": self.instances_per_task,
            "max_output_words": self.max_output_words,
            "templates": [t.ref() for t in self._templates.values()],
        }

    # -- the shard --------------------------------------------------------------------------------------

    def produce(
        self, units: Sequence[TextRecord], rng: np.random.Generator, client: LLMClient | None, *, n: int | None = None
    ) -> Produced:
        """About ``n`` new instruction records from the seed records ``units`` (see the module docstring).

        Raises:
            ValueError: No seeds, no ``n``, or no client.
            LLMError, BudgetExhausted: From the client; nothing is returned, a rerun replays the cache.
        """
        seeds = [r for r in units if r.kind == "instruction"]
        if not seeds:
            raise ValueError("self-instruct needs at least one seed instruction record")
        if n is None or n < 1:
            raise ValueError(f"self-instruct: n must be a positive number of records, got {n!r}")
        if client is None:
            raise ValueError("self-instruct needs an LLM client")
        pool: RougeIndex[str] = RougeIndex(self.rouge_threshold)
        for seed in seeds:
            text = clean_instruction(seed.instruction or "")
            pool.add(text, text)
        out = Produced(stats={"rounds": 0, "proposals": 0, "proposed_tasks": 0, "accepted_instructions": 0})
        made: list[TextRecord] = []
        while len(made) < n and out.stats["rounds"] < self.max_rounds:
            out.stats["rounds"] += 1
            tasks = self._propose(seeds, made, pool, rng, client, out)
            made.extend(self._instances(tasks, rng, client, out, limit=n - len(made)))
        out.records = made
        out.stats["target"] = n
        out.stats["target_reached"] = len(made) >= n
        out.stats["pool_size"] = len(pool)
        return out

    def _context(self, seeds: list[TextRecord], made: list[TextRecord], rng: np.random.Generator) -> list[TextRecord]:
        n_machine = min(self.k_machine, len(made))
        n_human = min(self.k - n_machine, len(seeds))
        human = [seeds[i] for i in rng.choice(len(seeds), size=n_human, replace=False)]
        machine = [made[i] for i in rng.choice(len(made), size=n_machine, replace=False)] if n_machine else []
        context = human + machine
        order = rng.permutation(len(context))
        return [context[i] for i in order]

    def _propose(
        self,
        seeds: list[TextRecord],
        made: list[TextRecord],
        pool: RougeIndex[str],
        rng: np.random.Generator,
        client: LLMClient,
        out: Produced,
    ) -> list[_Task]:
        template = self._templates["propose"]
        contexts, requests = [], []
        for _ in range(self.requests_per_round):
            context = self._context(seeds, made, rng)
            examples = "\n".join(f"{i}. {clean_instruction(r.instruction or '')}" for i, r in enumerate(context, 1))
            contexts.append(context)
            requests.append(
                request(
                    template, ProposedTasks, salt=draw_salt(rng, self.name), examples=examples, n=self.tasks_per_request
                )
            )
        results = client.structured_many(requests)
        out.stats["proposals"] += len(results)
        accepted: list[_Task] = []
        for context, result in zip(contexts, results, strict=True):
            if result.status != "ok":
                out.rejected.append(Rejection(f"propose_{result.status}", detail={"why": result.refusal or ""}))
                continue
            model = answered_by(result, client.settings.model)
            for proposed in result.value.tasks:
                out.stats["proposed_tasks"] += 1
                text = clean_instruction(proposed.instruction)
                problem = filter_instruction(
                    text, min_words=self.min_words, max_words=self.max_words, keywords=self.keywords
                )
                if problem is None:
                    score, similar = pool.add_if_new(text, text)
                    if similar is not None:
                        problem = ("rouge_similar", {"rouge_l": round(score, 4), "similar_to": similar})
                if problem is not None:
                    out.rejected.append(Rejection(problem[0], text, detail=problem[1]))
                    continue
                out.stats["accepted_instructions"] += 1
                accepted.append(
                    _Task(text, proposed.is_classification, tuple(context), tuple(response_keys(result)), model)
                )
        return accepted

    def _instances(
        self, tasks: list[_Task], rng: np.random.Generator, client: LLMClient, out: Produced, *, limit: int
    ) -> list[TextRecord]:
        # Ask for instances of no more tasks than the records still wanted: the rest would be paid for and unused.
        for task in tasks[limit:]:
            out.rejected.append(Rejection("over_target", task.instruction))
        tasks = tasks[:limit]
        requests = []
        for task in tasks:
            template = self._templates["output_first" if task.is_classification else "input_first"]
            requests.append(
                request(
                    template,
                    Instances,
                    salt=draw_salt(rng, self.name),
                    instruction=task.instruction,
                    n=self.instances_per_task,
                )
            )
        results = client.structured_many(requests)
        records: list[TextRecord] = []
        for task, result in zip(tasks, results, strict=True):
            if result.status != "ok":
                out.rejected.append(Rejection(f"instance_{result.status}", task.instruction))
                continue
            seen: set[tuple[str, str]] = set()
            for inst in result.value.instances:
                if len(seen) >= self.instances_per_task:
                    break
                problem = _instance_problem(inst, seen, self.max_output_words)
                if problem is not None:
                    out.rejected.append(Rejection(problem, task.instruction, detail={"input": inst.input[:200]}))
                    continue
                seen.add((inst.input.strip(), inst.output.strip()))
                records.append(self._record(task, inst, result, client))
            if not seen:
                out.rejected.append(Rejection("no_valid_instance", task.instruction))
        return records

    def _record(self, task: _Task, inst: Instance, result: Any, client: LLMClient) -> TextRecord:
        propose = self._templates["propose"]
        instance_t = self._templates["output_first" if task.is_classification else "input_first"]
        context_ids = [r.id for r in task.context]
        inp, outp = inst.input.strip(), inst.output.strip()
        return TextRecord(
            id=record_id("si", self.name, task.instruction, inp, outp, context_ids),
            instruction=task.instruction,
            input=inp,
            output=outp,
            parent_id=None,
            context_ids=context_ids,
            operation="self-instruct/propose",
            generator=self.name,
            model=task.model,
            template=propose.name,
            template_sha256=propose.sha256,
            request_keys=[*task.propose_keys, *response_keys(result)],
            origin="synthetic",
            generation=1 + max(r.generation for r in task.context),
            meta={
                "is_classification": task.is_classification,
                "instance_template": instance_t.ref(),
                "instance_model": answered_by(result, client.settings.model),
            },
        )
