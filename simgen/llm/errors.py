"""Errors of the LLM client layer: defined in :mod:`simgen.errors`, re-exported here."""

from __future__ import annotations

from simgen.errors import APIKeyMissing, BudgetExhausted, LLMError

__all__ = ["APIKeyMissing", "BudgetExhausted", "LLMError"]
