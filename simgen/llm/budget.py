"""Token and cost accounting, and the request/token budget of one run.

Two views are kept apart:

- ``responses``: every response a caller used, fresh or cached, with its tokens and an estimated cost.
  A function of the cached responses, so it is the same on a rerun: it belongs in ``dataset.json``.
- ``this_run``: what this process paid for (HTTP requests, retries, cache hits, tokens). It differs between
  a first run and a resume, so it belongs in logs and summaries, not in byte-identical outputs.

The budget counts only paid requests of this process: cached responses are free.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simgen.llm.errors import BudgetExhausted

# USD per million tokens (input, output), list prices by model family, longest prefix wins. An estimate only:
# prompt-cache reads/writes, batch and priority tiers are not priced. An unknown model gets no cost.
PRICES_USD_PER_MTOK: dict[str, tuple[float, float]] = {
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4-0": (15.0, 75.0),
    "claude-opus-4-2025": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-3-5-sonnet": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "claude-3-haiku": (0.25, 1.25),
}
PRICE_NOTE = "estimate from simgen's list-price table (input/output tokens only)"


def price_of(model: str) -> tuple[float, float] | None:
    """``(input, output)`` USD per million tokens of ``model``'s family, or ``None`` if unknown."""
    matches = [prefix for prefix in PRICES_USD_PER_MTOK if model.startswith(prefix)]
    return PRICES_USD_PER_MTOK[max(matches, key=len)] if matches else None


def estimate_cost(model: str, input_tokens: int, output_tokens: int) -> float | None:
    """Estimated USD cost of a response, or ``None`` for a model missing from the price table."""
    price = price_of(model)
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1e6


@dataclass(frozen=True)
class Budget:
    """Limits on what one run may pay for; ``None`` means no limit.

    Args:
        max_requests: Successful (billed) API responses this run may fetch.
        max_tokens: Input plus output tokens this run may spend. Requests already in flight when it is
            reached still finish, so a run can overshoot it by at most ``concurrency`` responses.
    """

    max_requests: int | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_requests", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name}: expected a non-negative integer or None, got {value}")


@dataclass
class _Tally:
    count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, input_tokens: int, output_tokens: int) -> None:
        self.count += 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens


class SharedTally:
    """What one run paid for, shared by every process of the run through a locked JSON file.

    A run's worker processes each hold their own client; the request and token budget is the run's, so it is
    checked and counted here, under an exclusive ``flock`` (POSIX; elsewhere the file is only per-process safe).
    Cache hits are counted in memory and written with the next paid request or :meth:`flush`, so a fully
    cached rerun does not take a lock per answer.

    Args:
        path: The file, e.g. ``OUT/.simgen/llm-run.json``; :meth:`reset` starts it for a new run.
    """

    KEYS = ("requests", "reserved", "input_tokens", "output_tokens", "cache_hits", "attempts", "retries", "failed")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._hits = 0

    def __reduce__(self) -> Any:
        return (SharedTally, (str(self.path),))  # a worker gets its own in-memory hit count

    def reset(self) -> None:
        """Start the tally of a new run (every count 0)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked() as state:
            state.clear()
            state.update(self._empty())

    @classmethod
    def _empty(cls) -> dict[str, Any]:
        return {**dict.fromkeys(cls.KEYS, 0), "by_model": {}, "exhausted": None}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The state, read and written back under the file lock (and this process's thread lock)."""
        with self._lock, open(self.path, "a+", encoding="utf-8") as fh:
            try:
                import fcntl

                fcntl.flock(fh, fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - not POSIX
                pass
            fh.seek(0)
            text = fh.read()
            try:
                state = json.loads(text) if text.strip() else self._empty()
            except json.JSONDecodeError:
                state = self._empty()  # a torn file from a killed run: the counts restart
            state = {**self._empty(), **state} if isinstance(state, dict) else self._empty()
            state["cache_hits"] += self._hits
            self._hits = 0
            yield state
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(state, sort_keys=True))
            fh.flush()

    def read(self) -> dict[str, Any]:
        """The counts so far (cache hits of this process flushed first)."""
        with self._locked() as state:
            return json.loads(json.dumps(state))

    def flush(self) -> None:
        """Write this process's cache hits."""
        if self._hits:
            with self._locked():
                pass

    def hit(self) -> None:
        """Count one cached answer (in memory until the next write)."""
        with self._lock:
            self._hits += 1

    def reserve(self, budget: Budget) -> None:
        """Claim a request slot of the run; raise :class:`BudgetExhausted` when none is left."""
        with self._locked() as state:
            tokens = state["input_tokens"] + state["output_tokens"]
            if budget.max_requests is not None and state["requests"] + state["reserved"] >= budget.max_requests:
                state["exhausted"] = "max_requests"
                error = BudgetExhausted("max_requests", state["requests"], budget.max_requests)
            elif budget.max_tokens is not None and tokens >= budget.max_tokens:
                state["exhausted"] = "max_tokens"
                error = BudgetExhausted("max_tokens", tokens, budget.max_tokens)
            else:
                state["reserved"] += 1
                return
        raise error

    def release(self) -> None:
        """Give back a slot whose request failed."""
        with self._locked() as state:
            state["reserved"] = max(0, state["reserved"] - 1)
            state["failed"] += 1

    def attempt(self, retry: bool) -> None:
        """Count one HTTP attempt."""
        with self._locked() as state:
            state["attempts"] += 1
            state["retries"] += int(retry)

    def paid(self, model: str, input_tokens: int, output_tokens: int) -> None:
        """Count one fetched response in its reserved slot."""
        with self._locked() as state:
            state["reserved"] = max(0, state["reserved"] - 1)
            state["requests"] += 1
            state["input_tokens"] += input_tokens
            state["output_tokens"] += output_tokens
            tally = state["by_model"].setdefault(model, [0, 0, 0])
            tally[0] += 1
            tally[1] += input_tokens
            tally[2] += output_tokens

    def summary(self) -> dict[str, Any]:
        """The run's paid requests, cache hits, retries, tokens and estimated cost, JSON-ready."""
        state = self.read()
        costs = {m: estimate_cost(m, t[1], t[2]) for m, t in state["by_model"].items()}
        unknown = sorted(m for m, c in costs.items() if c is None)
        return {
            "requests": state["requests"],
            "cache_hits": state["cache_hits"],
            "attempts": state["attempts"],
            "retries": state["retries"],
            "failed": state["failed"],
            "input_tokens": state["input_tokens"],
            "output_tokens": state["output_tokens"],
            "cost_usd": round(sum(c for c in costs.values() if c is not None), 6) if not unknown else None,
            "cost_note": PRICE_NOTE if not unknown else f"no price known for model(s) {', '.join(unknown)}",
            "exhausted": state["exhausted"],
        }


class Ledger:
    """Thread-safe accounting of responses, requests and structured outcomes, enforcing a :class:`Budget`.

    Args:
        budget: The limits (ignored with ``parent``: the parent's apply).
        shared: A run-wide tally that every process of the run checks the budget against and counts into.
        parent: A ledger that every count is also added to, and that enforces the budget (see
            :meth:`simgen.llm.LLMClient.fork`): a child counts what one part of the work used.
    """

    def __init__(
        self, budget: Budget | None = None, *, shared: SharedTally | None = None, parent: Ledger | None = None
    ) -> None:
        self.budget = parent.budget if parent is not None else (budget or Budget())
        self.shared = shared
        self.parent = parent
        self._lock = threading.Lock()
        self._used: dict[str, _Tally] = {}  # model -> every response used (fresh or cached)
        self._paid: dict[str, _Tally] = {}  # model -> responses fetched by this process
        self._reserved = 0
        self.cache_hits = 0
        self.attempts = 0
        self.retries = 0
        self.failed = 0
        self.exhausted: str | None = None
        self.outcomes = {"ok": 0, "invalid": 0, "refused": 0}
        self.repairs = 0

    def _paid_counts(self) -> tuple[int, int]:
        return (
            sum(t.count for t in self._paid.values()),
            sum(t.input_tokens + t.output_tokens for t in self._paid.values()),
        )

    def reserve(self) -> None:
        """Claim one request slot before sending; raise :class:`BudgetExhausted` when none is left."""
        if self.parent is not None or self.shared is not None:
            try:
                if self.parent is not None:
                    self.parent.reserve()
                else:
                    self.shared.reserve(self.budget)  # type: ignore[union-attr]
            except BudgetExhausted as exc:
                self.exhausted = exc.limit
                raise
            with self._lock:
                self._reserved += 1
            return
        with self._lock:
            requests, tokens = self._paid_counts()
            limit = self.budget
            if limit.max_requests is not None and requests + self._reserved >= limit.max_requests:
                self.exhausted = "max_requests"
                raise BudgetExhausted("max_requests", requests, limit.max_requests)
            if limit.max_tokens is not None and tokens >= limit.max_tokens:
                self.exhausted = "max_tokens"
                raise BudgetExhausted("max_tokens", tokens, limit.max_tokens)
            self._reserved += 1

    def release(self) -> None:
        """Give back a slot whose request failed (nothing was billed)."""
        with self._lock:
            self._reserved -= 1
            self.failed += 1
        if self.parent is not None:
            self.parent.release()
        elif self.shared is not None:
            self.shared.release()

    def attempt(self, retry: bool) -> None:
        """Count one HTTP attempt (``retry`` when it repeats an earlier one)."""
        with self._lock:
            self.attempts += 1
            self.retries += int(retry)
        if self.parent is not None:
            self.parent.attempt(retry)
        elif self.shared is not None:
            self.shared.attempt(retry)

    def record(self, model: str, input_tokens: int, output_tokens: int, *, cached: bool) -> None:
        """Count one response used; a fresh one also fills its reserved slot."""
        with self._lock:
            self._used.setdefault(model, _Tally()).add(input_tokens, output_tokens)
            if cached:
                self.cache_hits += 1
            else:
                self._reserved -= 1
                self._paid.setdefault(model, _Tally()).add(input_tokens, output_tokens)
        if self.parent is not None:
            self.parent.record(model, input_tokens, output_tokens, cached=cached)
        elif self.shared is not None:
            if cached:
                self.shared.hit()
            else:
                self.shared.paid(model, input_tokens, output_tokens)

    def outcome(self, status: str, repairs: int) -> None:
        """Count the outcome of one structured call and its repair rounds."""
        with self._lock:
            self.outcomes[status] += 1
            self.repairs += repairs
        if self.parent is not None:
            self.parent.outcome(status, repairs)

    @staticmethod
    def _totals(tallies: dict[str, _Tally]) -> dict[str, Any]:
        costs = {m: estimate_cost(m, t.input_tokens, t.output_tokens) for m, t in tallies.items()}
        unknown = sorted(m for m, c in costs.items() if c is None)
        known = [c for c in costs.values() if c is not None]
        out: dict[str, Any] = {
            "responses": sum(t.count for t in tallies.values()),
            "input_tokens": sum(t.input_tokens for t in tallies.values()),
            "output_tokens": sum(t.output_tokens for t in tallies.values()),
            "cost_usd": round(sum(known), 6) if not unknown else None,
            "cost_note": PRICE_NOTE if not unknown else f"no price known for model(s) {', '.join(unknown)}",
            "by_model": {
                m: {
                    "responses": t.count,
                    "input_tokens": t.input_tokens,
                    "output_tokens": t.output_tokens,
                    "cost_usd": None if costs[m] is None else round(costs[m], 6),
                }
                for m, t in sorted(tallies.items())
            },
        }
        return out

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary; see the module docstring for which part is reproducible."""
        with self._lock:
            paid = self._totals(self._paid)
            return {
                "responses": self._totals(self._used),
                "structured": {**self.outcomes, "repairs": self.repairs},
                "this_run": {
                    "requests": paid.pop("responses"),
                    "cache_hits": self.cache_hits,
                    "attempts": self.attempts,
                    "retries": self.retries,
                    "failed": self.failed,
                    **paid,
                },
                "budget": {
                    "max_requests": self.budget.max_requests,
                    "max_tokens": self.budget.max_tokens,
                    "exhausted": self.exhausted,
                },
            }
