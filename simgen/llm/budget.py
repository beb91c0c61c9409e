"""Token and cost accounting, and the request/token budget of one run.

Two views are kept apart:

- ``responses``: every response a caller used, fresh or cached, with its tokens and an estimated cost.
  A function of the cached responses, so it is the same on a rerun: it belongs in ``dataset.json``.
- ``this_run``: what this process paid for (HTTP requests, retries, cache hits, tokens). It differs between
  a first run and a resume, so it belongs in logs and summaries, not in byte-identical outputs.

The budget counts only paid requests of this process: cached responses are free.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
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


class Ledger:
    """Thread-safe accounting of responses, requests and structured outcomes, enforcing a :class:`Budget`."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()
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

    def attempt(self, retry: bool) -> None:
        """Count one HTTP attempt (``retry`` when it repeats an earlier one)."""
        with self._lock:
            self.attempts += 1
            self.retries += int(retry)

    def record(self, model: str, input_tokens: int, output_tokens: int, *, cached: bool) -> None:
        """Count one response used; a fresh one also fills its reserved slot."""
        with self._lock:
            self._used.setdefault(model, _Tally()).add(input_tokens, output_tokens)
            if cached:
                self.cache_hits += 1
            else:
                self._reserved -= 1
                self._paid.setdefault(model, _Tally()).add(input_tokens, output_tokens)

    def outcome(self, status: str, repairs: int) -> None:
        """Count the outcome of one structured call and its repair rounds."""
        with self._lock:
            self.outcomes[status] += 1
            self.repairs += repairs

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
