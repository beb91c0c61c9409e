"""Text records, the seed tasks, and the ``produce`` contract every text generator follows.

A text record is one JSONL line. It carries its text, where it came from and how it was judged:

- text fields: ``instruction``, ``input``, ``output`` (instruction data) or ``caption`` (frame captions);
- lineage: ``parent_id`` (the record it was derived from), ``context_ids`` (the in-context examples it was
  derived from, for Self-Instruct), ``operation`` (``seed``, ``self-instruct/propose``, ``evol-instruct/deepen``,
  ``caption/template``...) and ``generation`` (0 for a real seed, parent's + 1 per derivation);
- provenance: the generator, the model that answered, the prompt template's name and SHA-256, and the cache keys
  of the LLM responses used (so every record can be traced to the exact cached exchange);
- ``critic``: scores per rubric aspect with the judge's reasons, once a critic has run;
- ``origin``: ``real`` (a seed someone wrote) or ``synthetic``.

Ids are content hashes of the text, the operation and the lineage, so the same derivation gives the same id on
every rerun and on every machine.

**The produce contract** (:class:`TextGenerator`). A generator turns one shard of input units (seed records,
records to judge, frame facts) into output records: ``produce(units, rng, client, n=...) -> Produced``. It is a
pure function of its arguments and of the LLM responses (which the client caches by request), so a shard that
is run again, after a crash or on another worker, gives the same records and makes no paid request twice.
Unit-wise generators (Evol-Instruct, the critic, captions) return their records grouped by unit, in unit order,
and take one generator per unit, so their output does not depend on how units are split into shards.
Self-Instruct grows one pool per call: its unit of planning is a group of ``n`` records with one generator. The
engine's generic run loop owns the rest: planning units into shards, seeding from a ``SeedSequence`` keyed by
the record, committing records atomically, resuming, verifying and writing ``dataset.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simgen.errors import SpecError
from simgen.llm.cache import canonical_json

if TYPE_CHECKING:
    from simgen.llm import LLMClient

__all__ = [
    "DEFAULT_SEEDS",
    "CriticVerdict",
    "Produced",
    "Rejection",
    "TextGenerator",
    "TextRecord",
    "load_seeds",
    "read_records",
    "record_id",
    "records_jsonl",
    "seed_records",
    "unit_rngs",
]

#: The seed tasks written for simgen, shipped in the package.
DEFAULT_SEEDS = "simgen_seed_tasks.jsonl"
#: The most bytes a seeds file or a records file may have (a guard against pointing at the wrong file).
MAX_FILE_BYTES = 256 << 20

Origin = Literal["real", "synthetic"]


class CriticVerdict(BaseModel):
    """What the critic said about a record.

    Attributes:
        status: ``ok``, or ``refused``/``invalid`` when the judge gave no usable answer (no scores then).
        scores: Aspect -> score from 1 to 5.
        reasons: Aspect -> the judge's one-line reason.
        mean: The mean score over the aspects (``None`` without scores).
        passed: Whether the record passed the threshold.
        threshold: The mean score a record needed.
        min_score: The score every aspect needed, if any.
        model: The judge's model.
        template: The rubric's template name.
        template_sha256: The rubric template's SHA-256.
        request_keys: Cache keys of the judge's responses.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["ok", "refused", "invalid"]
    scores: dict[str, int] = Field(default_factory=dict)
    reasons: dict[str, str] = Field(default_factory=dict)
    mean: float | None = None
    passed: bool
    threshold: float
    min_score: int | None = None
    model: str | None = None
    template: str
    template_sha256: str
    request_keys: list[str] = Field(default_factory=list)


class TextRecord(BaseModel):
    """One text record (see the module docstring); immutable: derive with ``model_copy(update=...)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=200)
    kind: Literal["instruction", "caption"] = "instruction"
    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    caption: str | None = None
    parent_id: str | None = None
    context_ids: list[str] = Field(default_factory=list)
    operation: str
    generator: str | None = None
    model: str | None = None
    template: str | None = None
    template_sha256: str | None = None
    request_keys: list[str] = Field(default_factory=list)
    critic: CriticVerdict | None = None
    origin: Origin
    generation: int = Field(ge=0)
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _text_for_kind(self) -> TextRecord:
        if self.kind == "instruction" and not (self.instruction or "").strip():
            raise ValueError("an instruction record needs a non-empty 'instruction'")
        if self.kind == "caption" and not (self.caption or "").strip():
            raise ValueError("a caption record needs a non-empty 'caption'")
        if self.origin == "real" and self.generation != 0:
            raise ValueError(f"a real record has generation 0, got {self.generation}")
        return self

    @property
    def prompt(self) -> str:
        """The text a model is asked: the instruction and its input (or the caption)."""
        if self.kind == "caption":
            return self.caption or ""
        inp = (self.input or "").strip()
        return f"{self.instruction}\n\n{inp}" if inp else str(self.instruction)

    def text(self, field: str = "prompt") -> str:
        """One text view of the record: ``prompt``, ``all`` (prompt and output), or a field name."""
        if field == "prompt":
            return self.prompt
        if field == "all":
            return "\n\n".join(t for t in (self.prompt, self.output or "") if t)
        if field not in ("instruction", "input", "output", "caption"):
            raise ValueError(f"text field: expected prompt, all, instruction, input, output or caption, got {field!r}")
        return getattr(self, field) or ""

    def line(self) -> str:
        """The record as one compact JSON line with sorted keys (no newline): equal records give equal bytes."""
        return canonical_json(self.model_dump(mode="json"))


def record_id(prefix: str, *parts: Any) -> str:
    """A content id: ``prefix-`` and 16 hex digits of the SHA-256 of the parts' canonical JSON."""
    digest = hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:16]}"


def records_jsonl(records: Iterable[TextRecord]) -> str:
    """Records as JSONL text (one :meth:`TextRecord.line` per record, each ending in a newline)."""
    return "".join(r.line() + "\n" for r in records)


def _read_lines(path: Path) -> list[tuple[int, str]]:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    if size > MAX_FILE_BYTES:
        raise SpecError(f"{path}: {size} bytes; a JSONL file of records may have at most {MAX_FILE_BYTES >> 20} MiB")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _parse_json(path: Path, lineno: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}:{lineno}: not valid JSON: {exc.msg} (column {exc.colno})") from None


def read_records(path: str | os.PathLike[str]) -> list[TextRecord]:
    """Read a JSONL file of :class:`TextRecord` lines (what the text generators write).

    Raises:
        SpecError: A missing or oversized file, a line that is not JSON, or a line that is not a record; the
            message names the file, the line and the field path.
    """
    p = Path(path)
    out = []
    for lineno, line in _read_lines(p):
        data = _parse_json(p, lineno, line)
        try:
            out.append(TextRecord.model_validate(data))
        except ValidationError as exc:
            from simgen.spec.errors import spec_error_from_validation

            raise spec_error_from_validation(exc, TextRecord, f"{p}:{lineno}") from None
    return out


# ----------------------------------------------------------------------------------------------------------
# Seed tasks


class SeedInstance(BaseModel):
    """One input/output example of a seed task."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(default="", max_length=20_000)
    output: str = Field(default="", max_length=20_000)


class SeedTask(BaseModel):
    """One seed line: Self-Instruct's format (``instruction`` and ``instances``) or Alpaca's (``input``/``output``).

    Unknown keys are refused, so a misspelt field is an error rather than a silently missing text.
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=200)
    name: str | None = None
    instruction: str = Field(min_length=1, max_length=20_000)
    input: str | None = Field(default=None, max_length=20_000)
    output: str | None = Field(default=None, max_length=20_000)
    instances: list[SeedInstance] = Field(default_factory=list, max_length=100)
    is_classification: bool = False

    @model_validator(mode="after")
    def _one_format(self) -> SeedTask:
        if self.instances and (self.input is not None or self.output is not None):
            raise ValueError("give either 'instances' (Self-Instruct format) or 'input'/'output' (Alpaca), not both")
        if not self.instruction.strip():
            raise ValueError("'instruction' is blank")
        return self


def load_seeds(path: str | os.PathLike[str] | None = None) -> list[TextRecord]:
    """Seed tasks as real, generation-0 records: simgen's own set by default, or a user's JSONL (``--seeds``).

    Each line is a Self-Instruct task (``instruction``, ``instances``: its first instance becomes the record's
    input and output) or an Alpaca line (``instruction``, ``input``, ``output``). A line without ``id`` gets a
    content id. Ids must be unique.

    Raises:
        SpecError: A missing file, bad JSON, an unknown field, or a duplicate id; names the file and line.
    """
    if path is None:
        ref = resources.files("simgen.generators.text").joinpath("seeds", DEFAULT_SEEDS)
        with resources.as_file(ref) as real_path:
            return load_seeds(real_path)
    p = Path(path)
    records: list[TextRecord] = []
    seen: dict[str, int] = {}
    for lineno, line in _read_lines(p):
        data = _parse_json(p, lineno, line)
        try:
            task = SeedTask.model_validate(data)
        except ValidationError as exc:
            from simgen.spec.errors import spec_error_from_validation

            raise spec_error_from_validation(exc, SeedTask, f"{p}:{lineno}") from None
        first = task.instances[0] if task.instances else SeedInstance(input=task.input or "", output=task.output or "")
        rid = task.id or record_id("seed", task.instruction, first.input, first.output)
        if rid in seen:
            raise SpecError(f"{p}:{lineno}: id '{rid}' is already used on line {seen[rid]}")
        seen[rid] = lineno
        meta: dict[str, Any] = {"is_classification": task.is_classification}
        if task.name:
            meta["name"] = task.name
        records.append(
            TextRecord(
                id=rid,
                instruction=task.instruction.strip(),
                input=first.input.strip(),
                output=first.output.strip(),
                operation="seed",
                origin="real",
                generation=0,
                meta=meta,
            )
        )
    if not records:
        raise SpecError(f"{p}: no seed tasks (the file is empty)")
    return records


def seed_records(records: Sequence[TextRecord]) -> list[TextRecord]:
    """The real (seed) records among ``records``."""
    return [r for r in records if r.origin == "real"]


# ----------------------------------------------------------------------------------------------------------
# The produce contract


@dataclass(frozen=True)
class Rejection:
    """A candidate a generator dropped, and why (kept for reports; never part of the dataset).

    Attributes:
        reason: A stable reason name (``rouge_similar``, ``keyword``, ``no_information_gain``...).
        text: The candidate's text (an instruction, a caption), if there was one.
        parent_id: The record it came from, if any.
        detail: More data (the score, the matched keyword, the record id it duplicates...).
    """

    reason: str
    text: str = ""
    parent_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"reason": self.reason, "text": self.text, "parent_id": self.parent_id, "detail": self.detail}


@dataclass
class Produced:
    """What one call of ``produce`` returns for its shard.

    Attributes:
        records: The output records, in a deterministic order (the shard's commit order).
        rejected: Every dropped candidate with its reason.
        stats: Counters beyond the drop reasons (requests, rounds...), JSON-ready.
    """

    records: list[TextRecord] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Drop counts by reason, plus ``kept``; sorted by reason for stable output."""
        c = Counter(r.reason for r in self.rejected)
        return {"kept": len(self.records), **dict(sorted(c.items()))}

    def summary(self) -> dict[str, Any]:
        """``{"counts", "stats"}``, JSON-ready (what a run loop puts in ``dataset.json``)."""
        return {"counts": self.counts, "stats": self.stats}


RngArg = np.random.Generator | Sequence[np.random.Generator]


def unit_rngs(rng: RngArg, n: int) -> list[np.random.Generator]:
    """One generator per unit: ``rng`` itself when it is a sequence of ``n``, else ``n`` children spawned from it.

    A unit-wise generator (Evol-Instruct) draws each unit's randomness from its own generator, so a unit's output
    does not depend on the other units of its shard. Given per-unit generators keyed by the record (the run loop's
    ``ShardWork.rng("unit", i)``), it does not depend on the shard boundaries either.

    Raises:
        TypeError: ``rng`` is neither a ``numpy.random.Generator`` nor a sequence of them.
        ValueError: A sequence of the wrong length.
    """
    if isinstance(rng, np.random.Generator):
        return list(rng.spawn(n))
    rngs = list(rng)
    if len(rngs) != n or not all(isinstance(g, np.random.Generator) for g in rngs):
        raise ValueError(f"rng: expected one numpy.random.Generator per unit ({n}), got {len(rngs)} items")
    return rngs


@runtime_checkable
class TextGenerator(Protocol):
    """The contract between a text generator and the engine's run loop (see the module docstring).

    Attributes:
        name: The registered, versioned name (``text/self-instruct-v1``).
        uses_llm: Whether ``produce`` needs a client (the captions' template mode does not).
    """

    name: ClassVar[str]
    uses_llm: ClassVar[bool]

    def config(self) -> dict[str, Any]:
        """The generator's settings and its prompt templates' names and SHA-256 (for ``dataset.json``)."""
        ...

    def produce(self, units: Sequence[Any], rng: RngArg, client: LLMClient | None, *, n: int | None = None) -> Produced:
        """Turn one shard's input units into records; all randomness from ``rng``, all model calls via ``client``.

        Args:
            units: The shard's inputs (seed records, records to evolve or judge, frame facts).
            rng: The randomness: one generator for a pool-wise generator (Self-Instruct draws a whole group of
                records from one pool), or one per unit for a unit-wise one (see :func:`unit_rngs`).
            client: The LLM client (``None`` only where ``uses_llm`` is false or a mode needs none).
            n: How many records to aim for, where the generator makes new ones from a pool (Self-Instruct).

        Raises:
            LLMError: A request failed for good (after retries): the shard is not committed; a rerun replays
                the cached responses and continues.
            BudgetExhausted: The request or token budget ran out: the same.
        """
        ...
