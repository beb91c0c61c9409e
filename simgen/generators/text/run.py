"""Text datasets (Self-Instruct, Evol-Instruct, the critic, captions, Magpie) through the one run loop.

The loop is :mod:`simgen.engine.run`; this module plugs text into it.

A text run is planned as *units* (record key ``"unit"``):

- **unit-wise** methods (``evol-instruct``, ``critic``, ``captions``) split their inputs into blocks of
  ``per_unit`` inputs; input ``j`` draws from ``SeedSequence([seed, "input", j])`` whatever block it falls in;
- **pool-wise** ``self-instruct`` makes ``per_unit`` records per unit from the seeds, with one generator per unit
  (``[seed, "unit", i]``), and ``magpie`` samples ``per_unit`` records per unit, one generator per sample.

A unit's output is a pure function of its inputs, its generators and the LLM's answers, which the response cache
in ``OUT/.simgen/llm-cache`` keeps: a rerun, a resume or another number of workers makes no paid request twice
and writes the same bytes. Each finished unit is one file, ``units/<i>.json`` (its records, the candidates it
dropped with their reasons, its counters and the tokens it used), committed by its manifest line; a killed run
keeps every committed unit and ``--resume`` redoes the rest from the cache. Inside a shard, several units run at
once on threads, so ``concurrency`` requests stay in flight; they commit in unit order.

Finalizing reads the units in order, removes exact duplicates (and, for Self-Instruct and Magpie, near
duplicates: ROUGE-L above 0.7 against every earlier record, MinHash-prefiltered) across units, and writes:

- ``records.jsonl``: one :class:`~simgen.generators.text.records.TextRecord` per line (text fields, parent id and
  operation, model and prompt-template hash, critic verdict, origin and generation);
- ``rejected.jsonl``: every dropped candidate with its reason;
- ``dataset.json``: the method and its settings with every prompt template's SHA-256, the model, the seed, the
  inputs' hash, the counts by reason, the tokens and estimated cost of every answer used (the same on every
  rerun), what this run paid for (``llm.this_run``, which differs between a first run and a resume) and the
  budget.

The request budget (``max_requests``, ``max_tokens``) is the whole run's, shared by its worker processes through
``OUT/.simgen/llm-run.json``. When it runs out, the run stops with :class:`BudgetExhausted`; committed units
stay, and a later ``resume`` with a larger budget continues, replaying the cached answers free.

>>> from simgen.generators.text.run import TextJob, run_text
>>> job = TextJob(method="self-instruct", target=50)                                  # doctest: +SKIP
>>> result = run_text(job, "out/", llm=LLMOptions(model="claude-sonnet-4-5"), seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from simgen.engine.files import WORK_DIR
from simgen.engine.plan import Plan
from simgen.engine.run import Finished, RunConfig, RunResult, run_dataset
from simgen.engine.sink import Record
from simgen.engine.worker import WorkerSetup
from simgen.errors import SimgenError, SpecError
from simgen.io import atomic_write_bytes, sha256_bytes, write_file
from simgen.llm.cache import canonical_json
from simgen.llm.client import DEFAULT_MODEL
from simgen.sampling import rng_for
from simgen.writers.base import FrameOutput

if TYPE_CHECKING:
    from simgen.engine.shard import ShardWork
    from simgen.generators.text.records import Produced, TextRecord
    from simgen.llm import LLMClient
    from simgen.writers.base import DatasetWriter

__all__ = [
    "DEFAULT_MODEL",
    "METHODS",
    "LLMOptions",
    "TextJob",
    "TextModality",
    "TextTask",
    "TextWriter",
    "partial_summary",
    "run_text",
]

#: Method -> (registered generator, pool-wise, needs the LLM).
METHODS: dict[str, tuple[str, bool, bool]] = {
    "self-instruct": ("text/self-instruct-v1", True, True),
    "evol-instruct": ("text/evol-instruct-v1", False, True),
    "critic": ("text/critic-filter-v1", False, True),
    "captions": ("text/scenario-captions-v1", False, False),
    "magpie": ("text/magpie-v1", True, False),
}
#: Default inputs (or records) per unit: small enough that a kill loses little, large enough to fill the pipe.
PER_UNIT = {"self-instruct": 10, "evol-instruct": 8, "critic": 8, "captions": 16, "magpie": 4}
UNITS_DIR = "units"
RECORDS_FILE = "records.jsonl"
REJECTED_FILE = "rejected.jsonl"
INPUTS_FILE = "text-inputs.jsonl"
TALLY_FILE = "llm-run.json"
#: Units of one shard that run at once (on threads); the client bounds the requests in flight.
MAX_UNITS_AT_ONCE = 16
#: The most units a shard holds by default.
MAX_SHARD_UNITS = 64
#: ROUGE-L above which a record is a near duplicate of an earlier one (Self-Instruct's bound).
NEAR_DUPLICATE = 0.7


@dataclass(frozen=True)
class LLMOptions:
    """How the run talks to the Messages API.

    Only ``model``, ``temperature`` and ``max_output_tokens`` shape the requests (and so the records); the others
    bound how the run goes and may change between a run and its resume.

    Attributes:
        model: The model id.
        concurrency: Requests in flight at once, over every worker.
        max_requests: Paid requests this run may make (cached answers are free); None: no limit.
        max_tokens: Input plus output tokens this run may pay for; None: no limit.
        timeout_s: Per-attempt HTTP timeout.
        max_retries: Retries after a 429, 5xx or timeout.
        temperature: Sampling temperature (None: the API's default).
        max_output_tokens: Output token limit per request.
        backoff_s: First retry delay; it doubles per retry (a server's ``retry-after`` wins when longer).
    """

    model: str = DEFAULT_MODEL
    concurrency: int = 4
    max_requests: int | None = None
    max_tokens: int | None = None
    timeout_s: float = 120.0
    max_retries: int = 4
    temperature: float | None = None
    max_output_tokens: int = 2048
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        checks = {
            "model": bool(self.model),
            "concurrency": self.concurrency >= 1,
            "max_requests": self.max_requests is None or self.max_requests >= 0,
            "max_tokens": self.max_tokens is None or self.max_tokens >= 0,
            "timeout_s": self.timeout_s > 0,
            "max_retries": self.max_retries >= 0,
            "max_output_tokens": self.max_output_tokens >= 1,
            "backoff_s": self.backoff_s >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise SimgenError(f"llm.{name}: invalid value {getattr(self, name)!r}")

    def request_identity(self) -> dict[str, Any]:
        """What shapes the requests, hence the records (part of the run's identity)."""
        return {"model": self.model, "temperature": self.temperature, "max_output_tokens": self.max_output_tokens}


@dataclass(frozen=True, kw_only=True)
class TextJob:
    """What a text run makes.

    Attributes:
        method: ``self-instruct``, ``evol-instruct``, ``critic``, ``captions`` or ``magpie``.
        inputs: The input file: seed tasks (JSONL; None: simgen's own seeds) for Self-Instruct and Evol-Instruct,
            records to judge (JSONL, or a simgen text folder) for the critic, an image dataset folder for captions.
        target: Records to make (Self-Instruct, Magpie).
        params: The generator's settings (``SelfInstruct(**params)``...), JSON-ready.
        critic: For Self-Instruct, Evol-Instruct and Magpie: ``CriticFilter(**critic)`` judges every record made,
            and only those that pass are kept. None: no critic.
        per_unit: Inputs (or records, for the pool-wise methods) per unit; default :data:`PER_UNIT`.
        llm_captions: Captions written by the LLM (default: from the template, offline).
        local_model: Magpie's local model folder (``transformers``).
    """

    method: str
    inputs: str | None = None
    target: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    critic: dict[str, Any] | None = None
    per_unit: int | None = None
    llm_captions: bool = False
    local_model: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            from simgen.errors import did_you_mean

            raise SimgenError(f"unknown text method '{self.method}'{did_you_mean(self.method, METHODS)}; "
                              f"choose from {', '.join(METHODS)}")  # fmt: skip
        if self.pool_wise and (self.target is None or self.target < 1):
            raise SimgenError(f"{self.method}: the number of records to make must be >= 1, got {self.target}")
        if self.per_unit is not None and self.per_unit < 1:
            raise SimgenError(f"per_unit must be >= 1, got {self.per_unit}")
        if self.method == "magpie" and not self.local_model:
            raise SimgenError("magpie runs a local model: give its folder (--model PATH with --backend transformers)")

    @property
    def generator(self) -> str:
        """The registered generator's name."""
        return METHODS[self.method][0]

    @property
    def pool_wise(self) -> bool:
        """Whether units are blocks of records to make (else blocks of inputs)."""
        return METHODS[self.method][1]

    @property
    def uses_llm(self) -> bool:
        """Whether the run sends requests to the Messages API."""
        return METHODS[self.method][2] or (self.method == "captions" and self.llm_captions) or bool(self.critic)

    @property
    def unit_size(self) -> int:
        """Inputs (or records) per unit."""
        return self.per_unit or PER_UNIT[self.method]


# -- inputs -----------------------------------------------------------------------------------------------


def read_inputs(job: TextJob) -> tuple[bytes, int, str]:
    """The job's inputs as canonical JSON lines, their count, and where they came from.

    Raises:
        SpecError: A missing or malformed input file (names the file, the line and the field).
        SimgenError: An image dataset that cannot be captioned.
    """
    from simgen.generators.text.records import load_seeds, read_records

    if job.method == "magpie":
        return b"", 0, "-"
    if job.method == "captions":
        from simgen.generators.text.captions import read_frame_facts

        if job.inputs is None:
            raise SimgenError("captions needs an image dataset folder (with annotations.coco.json)")
        facts = read_frame_facts(job.inputs)
        if not facts:
            raise SimgenError(f"{job.inputs}: the COCO file lists no images to caption")
        lines = [canonical_json(f.model_dump(mode="json")) for f in facts]
        return _lines(lines), len(lines), str(job.inputs)
    if job.method == "critic":
        if job.inputs is None:
            raise SimgenError("the critic needs records to judge: a JSONL file or a simgen text output folder")
        path = Path(job.inputs)
        if path.is_dir():
            path = path / RECORDS_FILE
        records = read_records(path) if _looks_like_records(path) else load_seeds(path)
        source = str(path)
    else:
        records = load_seeds(job.inputs)
        source = str(job.inputs) if job.inputs else "simgen seed tasks (package)"
    if not records:
        raise SpecError(f"{source}: no records")
    return _lines([r.line() for r in records]), len(records), source


def _lines(lines: Sequence[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _looks_like_records(path: Path) -> bool:
    """Whether a JSONL file holds simgen text records (else seed-task or Alpaca lines)."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = next((line for line in fh if line.strip()), "")
        obj = json.loads(first) if first else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # load_seeds reports the problem with the file and line
    return isinstance(obj, dict) and "operation" in obj and "origin" in obj


_INPUTS: dict[tuple[str, str], list[Any]] = {}
_INPUTS_LOCK = threading.Lock()


def load_inputs(path: str, digest: str, method: str) -> list[Any]:
    """The run's inputs, parsed once per process; refused if the file changed since the run started."""
    key = (path, digest)
    with _INPUTS_LOCK:
        if key not in _INPUTS:
            data = Path(path).read_bytes()
            if sha256_bytes(data) != digest:
                raise SimgenError(f"{path}: the run's inputs changed while it was going; rerun with --resume")
            lines = data.decode("utf-8").splitlines()
            if method == "captions":
                from simgen.generators.text.captions import FrameFacts

                _INPUTS[key] = [FrameFacts.model_validate_json(line) for line in lines]
            else:
                from simgen.generators.text.records import TextRecord

                _INPUTS[key] = [TextRecord.model_validate_json(line) for line in lines]
        return _INPUTS[key]


# -- the shard --------------------------------------------------------------------------------------------


def build_generator(method: str, params: dict[str, Any], local_model: str | None) -> Any:
    """The generator of a method, from its JSON-ready settings."""
    if method == "self-instruct":
        from simgen.generators.text.self_instruct import SelfInstruct

        return SelfInstruct(**params)
    if method == "evol-instruct":
        from simgen.generators.text.evol_instruct import EvolInstruct

        return EvolInstruct(**params)
    if method == "critic":
        from simgen.generators.text.critic import CriticFilter

        return CriticFilter(**params)
    if method == "captions":
        from simgen.generators.text.captions import ScenarioCaptions

        return ScenarioCaptions(**params)
    from simgen.generators.text.magpie import Magpie

    model, tokenizer = load_local_model(str(local_model))
    return Magpie(model, tokenizer, **params)


_LOCAL_MODELS: dict[str, tuple[Any, Any]] = {}


def load_local_model(path: str) -> tuple[Any, Any]:
    """A local causal LM and its tokenizer, loaded once per process (extra ``[refine]``).

    Raises:
        DependencyMissing: transformers or torch is not installed.
        SimgenError: The folder holds no model transformers can load.
    """
    if path not in _LOCAL_MODELS:
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            from simgen.errors import DependencyMissing

            raise DependencyMissing("transformers", "refine", "Magpie with a local model") from None
        if not Path(path).is_dir():
            raise SimgenError(f"{path}: no such model folder (Magpie loads a local model; nothing is downloaded)")
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
        except (OSError, ValueError) as exc:
            raise SimgenError(f"{path}: not a causal LM transformers can load ({type(exc).__name__})") from None
        _LOCAL_MODELS[path] = (model, tokenizer)
    return _LOCAL_MODELS[path]


@dataclass
class UnitOutput:
    """What one unit made: its records, what it dropped and why, its counters, and the answers it used."""

    records: list[TextRecord]
    rejected: list[dict[str, Any]]
    stats: dict[str, Any]
    usage: dict[str, Any]

    def to_bytes(self, unit: int) -> bytes:
        """The unit file: one canonical JSON object (equal units give equal bytes)."""
        obj = {
            "unit": unit,
            "records": [r.model_dump(mode="json") for r in self.records],
            "rejected": self.rejected,
            "stats": self.stats,
            "usage": self.usage,
        }
        return (canonical_json(obj) + "\n").encode("utf-8")


def make_unit(root: Path, unit: int, inputs: tuple[int, int], out: UnitOutput) -> Record:
    """Write one unit's file and describe it (runs on the sink's thread)."""
    rel = f"{UNITS_DIR}/{unit:06d}.json"
    digest = write_file(root, rel, out.to_bytes(unit))
    return Record(
        index=unit,
        context={"unit": unit, "path": rel},
        files={"unit": {"path": rel, "sha256": digest}},
        fields={"inputs": list(inputs), "kept": len(out.records), "dropped": len(out.rejected)},
    )


_CLIENT: list[tuple[tuple[Any, ...], LLMClient]] = []


def shared_client(
    llm: dict[str, Any], budget: tuple[int | None, int | None], cache_dir: str, tally_file: str
) -> LLMClient:
    """The process's client for a run, reused by its next shards (its connections stay open).

    The SDK reads the key and the endpoint from the environment when the client is made, so they are part of
    what makes a client reusable (the key only as a hash, in memory).
    """
    from simgen.llm import Budget, LLMClient, LLMSettings, SharedTally

    env = tuple(hashlib.sha256(os.environ.get(n, "").encode()).hexdigest() for n in ENV_NAMES)
    key = (canonical_json(llm), budget, cache_dir, tally_file, env)
    if _CLIENT and _CLIENT[0][0] == key:
        return _CLIENT[0][1]
    while _CLIENT:
        _CLIENT.pop()[1].close()
    client = LLMClient(LLMSettings(**llm), cache_dir=cache_dir, budget=Budget(*budget), shared=SharedTally(tally_file))
    _CLIENT.append((key, client))
    return client


#: What the SDK reads from the environment when a client is made.
ENV_NAMES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL")


@dataclass(frozen=True, kw_only=True)
class TextTask:
    """What a shard of a text run runs (picklable; the API key is never part of it: workers read the environment).

    Attributes:
        method: The method.
        params: The generator's settings.
        critic: The critic's settings, or None.
        local_model: Magpie's model folder.
        inputs_file: The run's inputs (``OUT/.simgen/text-inputs.jsonl``).
        inputs_sha256: Their hash when the run started.
        n_inputs: How many.
        per_unit: Inputs (or records) per unit.
        target: Records to make (pool-wise methods).
        llm: ``LLMSettings`` keyword arguments for each worker's client (None: no LLM).
        budget: ``(max_requests, max_tokens)`` of the whole run.
        cache_dir: The response cache.
        tally_file: The run-wide tally of paid requests.
        dedup: Near-duplicate threshold across units (None: exact duplicates only; False: none).
    """

    record_key: ClassVar[str] = "unit"
    method: str
    params: dict[str, Any]
    critic: dict[str, Any] | None
    local_model: str | None
    inputs_file: str
    inputs_sha256: str
    n_inputs: int
    per_unit: int
    target: int
    llm: dict[str, Any] | None
    budget: tuple[int | None, int | None]
    cache_dir: str
    tally_file: str
    dedup: float | bool | None

    def writers(self) -> list[DatasetWriter]:
        """The one writer: ``records.jsonl`` and ``rejected.jsonl``."""
        return [TextWriter(self.method, self.dedup)]

    def unit_inputs(self, unit: int) -> tuple[int, int]:
        """The ``[start, stop)`` range of inputs (or of records, pool-wise) that ``unit`` covers."""
        size = self.target if METHODS[self.method][1] else self.n_inputs
        start = unit * self.per_unit
        return start, min(size, start + self.per_unit)

    def _client(self) -> LLMClient | None:
        if self.llm is None:
            return None
        return shared_client(self.llm, self.budget, self.cache_dir, self.tally_file)

    def produce(self, work: ShardWork) -> None:
        """Run the shard's units a few at a time on threads; commit them in unit order.

        A unit that fails (the budget, an API error) stops the shard after the units before it are committed;
        units already running finish first, so their answers are cached for the resume.
        """
        (work.layout.root / UNITS_DIR).mkdir(exist_ok=True)
        inputs = load_inputs(self.inputs_file, self.inputs_sha256, self.method) if self.n_inputs else []
        generator = build_generator(self.method, self.params, self.local_model)
        critic = build_generator("critic", self.critic, None) if self.critic is not None else None
        client = self._client()
        todo = work.todo()
        window = 1 if client is None else max(1, min(MAX_UNITS_AT_ONCE, len(todo), client.settings.concurrency))
        pool = ThreadPoolExecutor(max_workers=window, thread_name_prefix="simgen-text-unit")
        futures: list[tuple[int, Future[UnitOutput]]] = []
        try:
            for unit in todo:
                futures.append((unit, pool.submit(self._unit, unit, generator, critic, inputs, client, work.seed)))
            for unit, fut in futures:
                out = fut.result()
                work.submit(functools.partial(make_unit, work.layout.root, unit, self.unit_inputs(unit), out))
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C: do not wait for answers still in flight
            raise
        finally:
            for _, fut in futures:
                fut.cancel()
            pool.shutdown(wait=True)  # running units finish: their answers are cached
            if client is not None:
                client.ledger.shared.flush()  # type: ignore[union-attr]

    def _unit(
        self, unit: int, generator: Any, critic: Any, inputs: list[Any], client: LLMClient | None, seed: int
    ) -> UnitOutput:
        """Make one unit's records (on a thread, with its own view of the client's accounting)."""
        from simgen.generators.text.records import Produced

        fork = client.fork() if client is not None else None
        start, stop = self.unit_inputs(unit)
        if self.method == "self-instruct":
            produced = generator.produce(inputs, rng_for(seed, "unit", unit), fork, n=stop - start)
        elif self.method == "magpie":
            produced = Produced(stats={"samples": 0})
            for j in range(start, stop):
                one = generator.produce([], rng_for(seed, "sample", j), None, n=1)
                produced.records += one.records
                produced.rejected += one.rejected
                produced.stats["samples"] += 1
        else:
            units = inputs[start:stop]
            rngs = [rng_for(seed, "input", j) for j in range(start, stop)]
            produced = generator.produce(units, rngs, fork)
        stats: dict[str, Any] = dict(produced.stats)
        if critic is not None and produced.records:
            judged: Produced = critic.produce(produced.records, [], fork)  # the critic draws nothing
            produced = Produced(records=judged.records, rejected=[*produced.rejected, *judged.rejected])
            stats["critic"] = judged.stats
        usage = fork.summary() if fork is not None else None
        return UnitOutput(
            records=list(produced.records),
            rejected=[x.as_dict() for x in produced.rejected],
            stats=_plain(stats),
            usage={"responses": usage["responses"], "structured": usage["structured"]} if usage else {},
        )


def _plain(obj: Any) -> Any:
    """Stats as plain JSON (tuples as lists, numpy scalars as numbers)."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


# -- finalizing -------------------------------------------------------------------------------------------


class TextWriter:
    """Reads every unit file in order and writes ``records.jsonl`` and ``rejected.jsonl``, deduplicated across units.

    Args:
        method: The method (names the text a duplicate is judged on).
        dedup: ROUGE-L threshold of near duplicates; None: exact duplicates only; False: keep everything.
    """

    name: ClassVar[str] = "text"

    def __init__(self, method: str, dedup: float | bool | None) -> None:
        self.method, self.dedup = method, dedup
        self.stats: dict[str, Any] | None = None

    def write_frame(self, root: Path, ctx: dict[str, Any]) -> FrameOutput:
        """The unit file is already written; its record says where it is."""
        return FrameOutput(files={}, record={"unit": ctx["unit"], "path": ctx["path"]})

    def finalize(self, root: Path, records: Iterable[dict[str, Any]], dataset: dict[str, Any]) -> dict[str, str]:
        """Write the dataset's files; add the counts, the summed counters and the tokens used to ``dataset``."""
        from simgen.generators.text.records import TextRecord

        root = Path(root)
        kept: list[TextRecord] = []
        rejected: list[dict[str, Any]] = []
        stats: dict[str, Any] = {}
        usage: dict[str, Any] = {}
        for rec in records:
            unit = json.loads((root / rec["path"]).read_text(encoding="utf-8"))
            kept += [TextRecord.model_validate(r) for r in unit["records"]]
            rejected += [{"unit": unit["unit"], **x} for x in unit["rejected"]]
            stats = _merge(stats, unit["stats"])
            usage = _merge(usage, unit["usage"])
        dedup_counts: dict[str, Any] = {}
        if self.dedup is not False and kept:
            from simgen.generators.text.dedup import dedup

            threshold = None if self.dedup is None or self.dedup is True else float(self.dedup)
            result = dedup(kept, lambda r: r.instruction or r.caption or "", threshold=threshold)
            for d in result.duplicates:
                r = kept[d.index]
                rejected.append({"reason": f"duplicate_{d.kind}", "text": r.prompt, "parent_id": r.parent_id,
                                 "detail": {"id": r.id, "of": kept[d.of].id, "score": d.score}})  # fmt: skip
            kept = result.kept
            dedup_counts = result.counts
        by_reason = dict(sorted(Counter(x["reason"] for x in rejected).items()))
        checksums = {
            RECORDS_FILE: atomic_write_bytes(root / RECORDS_FILE, _lines([r.line() for r in kept])),
            REJECTED_FILE: atomic_write_bytes(root / REJECTED_FILE, _lines([canonical_json(x) for x in rejected])),
        }
        self.stats = {"records": len(kept), "dropped": len(rejected)}
        # Known only now, from the units' files: the same on every rerun, whatever ran in this call.
        dataset["dropped_by_reason"] = by_reason
        dataset["dedup"] = dedup_counts
        dataset["stats"] = stats
        dataset.setdefault("llm", {})["usage"] = usage
        if usage:
            dataset["llm"]["usage"]["responses"]["cost_usd"] = _cost(usage["responses"])
        return checksums


#: Keys that name a row of a per-round list, not a count: kept, never summed.
_LABELS = frozenset({"round"})


def _merge(a: Any, b: Any) -> Any:
    """Sum two units' counters: numbers add up, dicts merge by key, lists by position, booleans must all hold."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: (a[k] if k in _LABELS else _merge(a[k], b[k])) if k in a and k in b else (a[k] if k in a else b[k])
                for k in sorted({*a, *b})}  # fmt: skip
    if isinstance(a, bool) and isinstance(b, bool):
        return a and b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return round(a + b, 6) if isinstance(a, float) or isinstance(b, float) else a + b
    if isinstance(a, list) and isinstance(b, list):
        longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
        return [_merge(x, shorter[i]) if i < len(shorter) else x for i, x in enumerate(longer)]
    return b


def _cost(responses: dict[str, Any]) -> float | None:
    """The estimated cost of the answers used, from the per-model token sums (None for an unpriced model)."""
    from simgen.llm import estimate_cost

    total = 0.0
    for model, t in (responses.get("by_model") or {}).items():
        cost = estimate_cost(model, int(t.get("input_tokens", 0)), int(t.get("output_tokens", 0)))
        if cost is None:
            return None
        total += cost
    return round(total, 6)


# -- the modality -----------------------------------------------------------------------------------------


class TextModality:
    """A text dataset made by one method (see the module docstring).

    Args:
        job: What to make.
        llm: The LLM options (ignored by methods that use none).
    """

    name: ClassVar[str] = "text"
    record_key: ClassVar[str] = "unit"

    def __init__(self, job: TextJob, llm: LLMOptions | None = None) -> None:
        self.job = job
        self.llm = llm or LLMOptions()
        self.inputs: bytes = b""
        self.n_inputs = 0
        self.source = ""
        self.params: dict[str, Any] = {}
        self.config_record: dict[str, Any] = {}
        self.critic_record: dict[str, Any] | None = None
        self.workers = 1
        self.out: Path | None = None

    @property
    def n_units(self) -> int:
        """Records of the run."""
        size = self.job.target if self.job.pool_wise else self.n_inputs
        return math.ceil((size or 0) / self.job.unit_size)

    def prepare(self) -> None:
        """Read the inputs and build the generator once, so that every mistake shows before anything is written.

        Raises:
            SpecError, SimgenError: Bad inputs or settings (with the file, line and field).
        """
        if self.config_record:
            return
        self.inputs, self.n_inputs, self.source = read_inputs(self.job)
        params = dict(self.job.params)
        if self.job.method == "captions":
            params.setdefault("mode", "llm" if self.job.llm_captions else "template")
            if self.job.llm_captions:  # every category of the dataset, whatever block a frame falls in
                from simgen.generators.text.captions import FrameFacts

                facts = [FrameFacts.model_validate_json(x) for x in self.inputs.decode().splitlines()]
                params.setdefault("categories", sorted({o.category for f in facts for o in f.objects}))
        try:
            if self.job.method == "magpie":
                from simgen.generators.text.magpie import Magpie

                model, tokenizer = load_local_model(str(self.job.local_model))
                generator = Magpie(model, tokenizer, **params)
            else:
                generator = build_generator(self.job.method, params, None)
            critic = build_generator("critic", self.job.critic, None) if self.job.critic is not None else None
        except (TypeError, ValueError) as exc:
            raise SimgenError(f"{self.job.method}: {exc}") from None
        self.params = _plain(params)
        self.config_record = _plain(generator.config())
        self.critic_record = _plain(critic.config()) if critic is not None else None

    def digest(self) -> str:
        """SHA-256 of what defines the records: method, settings (template hashes), model, inputs, unit size."""
        return hashlib.sha256(canonical_json(self._definition()).encode("utf-8")).hexdigest()

    def _definition(self) -> dict[str, Any]:
        return {
            "method": self.job.method,
            "generator": self.config_record,
            "critic": self.critic_record,
            "llm": self.llm.request_identity() if self.job.uses_llm else None,
            "inputs_sha256": sha256_bytes(self.inputs),
            "per_unit": self.job.unit_size,
            "target": self.job.target,
        }

    def identity(self) -> dict[str, Any]:
        """A resume must make the same records: the method, the model and the inputs are named for the message."""
        return {
            "method": self.job.method,
            "model": self.llm.model if self.job.uses_llm else None,
            "inputs_sha256": sha256_bytes(self.inputs),
            "per_unit": self.job.unit_size,
        }

    def check(self, config: RunConfig) -> None:
        """Read the inputs and check the settings before anything is written.

        Raises:
            SimgenError: Bad inputs or settings, or a record count that is not the number of units.
        """
        self.prepare()
        if config.n_records != self.n_units:
            raise SimgenError(f"n_records must be {self.n_units} units, got {config.n_records}")

    def plan(self, n_records: int, shard_records: int) -> Plan:
        """Groups of one unit."""
        return Plan.build(n_records, 1, shard_frames=shard_records)

    def worker_setup(self, workers: int) -> WorkerSetup:
        """Workers import the generator's modules while the run prepares."""
        imports = ["simgen.generators.text.records", "simgen.generators.text.dedup"]
        if self.job.method == "self-instruct":
            imports.append("rouge_score.rouge_scorer")  # its pool filter; nltk takes seconds to import
        if self.job.uses_llm:
            imports.append("anthropic")
        return WorkerSetup(imports=tuple(imports))

    def start(self, config: RunConfig) -> None:
        """Remember the folder and the number of workers (they share the concurrency)."""
        self.workers = max(1, config.workers)
        self.out = config.out

    def task(self) -> TextTask:
        """Write the inputs and start the run's tally in ``OUT/.simgen`` (the folder is prepared now), then the task."""
        assert self.out is not None
        work = self.out / WORK_DIR
        atomic_write_bytes(work / INPUTS_FILE, self.inputs)
        llm_kwargs = None
        if self.job.uses_llm:
            from simgen.llm import SharedTally

            SharedTally(work / TALLY_FILE).reset()
            llm_kwargs = {
                "model": self.llm.model,
                "max_tokens": self.llm.max_output_tokens,
                "temperature": self.llm.temperature,
                "concurrency": max(1, self.llm.concurrency // self.workers),
                "timeout_s": self.llm.timeout_s,
                "max_retries": self.llm.max_retries,
                "backoff_base_s": self.llm.backoff_s,
            }
        return TextTask(
            method=self.job.method,
            params=self.params,
            critic=self.job.critic,
            local_model=str(Path(self.job.local_model).resolve()) if self.job.local_model else None,
            inputs_file=str(work / INPUTS_FILE),
            inputs_sha256=sha256_bytes(self.inputs),
            n_inputs=self.n_inputs,
            per_unit=self.job.unit_size,
            target=self.job.target or 0,
            llm=llm_kwargs,
            budget=(self.llm.max_requests, self.llm.max_tokens),
            cache_dir=str(work / "llm-cache"),
            tally_file=str(work / TALLY_FILE),
            dedup=self.dedup,
        )

    @property
    def dedup(self) -> float | bool | None:
        """Near duplicates for Self-Instruct and Magpie, exact ones for Evol-Instruct, none for the critic/captions."""
        if self.job.method in ("self-instruct", "magpie"):
            return float(self.config_record.get("rouge_threshold", NEAR_DUPLICATE))
        return None if self.job.method == "evol-instruct" else False

    def dataset_fields(self, done: Finished) -> dict[str, Any]:
        """Provenance: method, generator settings and template hashes, model, seed, inputs, budget, this run's bill."""
        templates = {t["name"]: t["sha256"] for cfg in (self.config_record, self.critic_record or {})
                     for t in cfg.get("templates", [])}  # fmt: skip
        llm: dict[str, Any] = {}
        if self.job.uses_llm:
            from simgen.llm import SharedTally

            llm = {
                **self.llm.request_identity(),
                "budget": {"max_requests": self.llm.max_requests, "max_tokens": self.llm.max_tokens, "exhausted": None},
                # What this call paid for: it differs between a first run and a resume (like "run").
                "this_run": SharedTally(done.layout.work / TALLY_FILE).summary(),
            }
        return {
            "spec_sha256": self.digest(),
            "method": self.job.method,
            "generator": self.job.generator,
            "generator_config": self.config_record,
            "critic": self.critic_record,
            "templates": templates,
            "seed": done.config.seed,
            "n_units": done.plan.n_frames,
            "per_unit": self.job.unit_size,
            "target": self.job.target,
            "inputs": {"source": self.source, "n": self.n_inputs, "sha256": sha256_bytes(self.inputs)},
            "llm": llm,
            "counts": {},
            "files": {
                "records": RECORDS_FILE,
                "rejected": REJECTED_FILE,
                "units": f"{UNITS_DIR}/",
                "manifest": "manifest.jsonl",
            },
        }

    def packages(self) -> Sequence[str]:
        """What shapes the records."""
        names = ["numpy", "pydantic", "rouge-score", "datasketch", "scikit-learn"]
        if self.job.uses_llm:
            names.append("anthropic")
        if self.job.method == "magpie":
            names += ["torch", "transformers", "tokenizers"]
        return tuple(names)


def run_text(
    job: TextJob,
    out: str | os.PathLike[str],
    *,
    llm: LLMOptions | None = None,
    seed: int = 0,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    shard_units: int | None = None,
    modality: TextModality | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Make a text dataset into ``out`` through the run loop (see the module docstring).

    Args:
        job: What to make.
        out: The dataset folder (see :class:`~simgen.engine.run.RunConfig` for ``resume``/``overwrite``).
        llm: The LLM options.
        seed: Dataset seed.
        workers: Worker processes.
        resume: Continue, or repair, the run in ``out``.
        overwrite: Replace a previous simgen run in ``out`` (its response cache too).
        shard_units: About how many units per shard (does not change the records); default
            :func:`default_shard_units`, or what the run being resumed chose.
        modality: A modality already prepared for ``job`` (the CLI checks it first).
        progress: Called with the number of newly finished units.

    Returns:
        The run's summary (``n_records`` counts units; ``dataset`` is what ``dataset.json`` holds).

    Raises:
        BudgetExhausted: The budget ran out; committed units stay, resume with a larger one.
        APIKeyMissing: A request had to be sent and no key is set.
        LLMError: A request failed for good; committed units stay, resume to continue.
    """
    modality = modality or TextModality(job, llm)
    modality.prepare()
    if shard_units is None and not resume:  # a resume keeps the size its run chose (recorded in run.json)
        shard_units = default_shard_units(modality.n_units, workers)
    config = RunConfig(out=Path(out), n_records=modality.n_units, seed=seed, workers=workers, resume=resume,
                       overwrite=overwrite, shard_records=shard_units)  # fmt: skip
    return run_dataset(modality, config, progress=progress)


def default_shard_units(n_units: int, workers: int) -> int:
    """Units per shard: two shards per worker, at most :data:`MAX_SHARD_UNITS`.

    Text is bound by the API's latency, not the cores: a shard runs its units on threads, so the requests of many
    units stay in flight together, and each unit commits on its own (a kill loses no more with bigger shards).
    Fewer shards also pay the fixed cost of a shard (its client, its fragments, its done marker) less often.
    """
    return max(1, min(MAX_SHARD_UNITS, math.ceil(n_units / (2 * max(1, workers)))))


def partial_summary(out: str | os.PathLike[str]) -> dict[str, Any]:
    """What a run that stopped early left in ``out``: units committed, records kept, and what it paid for.

    Reads the shards' manifest fragments (each line commits a unit) and the run's tally.
    """
    root = Path(out) / WORK_DIR
    units = kept = dropped = 0
    for manifest in sorted((root / "shards").glob("*/manifest.jsonl")):
        for line in manifest.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line: not committed
            units += 1
            kept += int(entry.get("kept", 0))
            dropped += int(entry.get("dropped", 0))
    summary: dict[str, Any] = {"units": units, "kept": kept, "dropped": dropped}
    if (root / TALLY_FILE).is_file():
        from simgen.llm import SharedTally

        summary["this_run"] = SharedTally(root / TALLY_FILE).summary()
    return summary
