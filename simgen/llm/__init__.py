"""simgen's one LLM client layer, shared by scenario ideation and the text generators.

Importing this package does not import the ``anthropic`` SDK; building an :class:`LLMClient` does (extra ``[llm]``).
"""

from __future__ import annotations

from simgen.llm.budget import Budget, Ledger, SharedTally, estimate_cost, price_of
from simgen.llm.cache import ResponseCache, canonical_json, request_key
from simgen.llm.client import (
    DEFAULT_MODEL,
    LLMClient,
    LLMResponse,
    LLMSettings,
    StructuredRequest,
    StructuredResult,
    cache_dir_for,
    has_api_key,
    import_anthropic,
    require_api_key,
    scrub,
)
from simgen.llm.errors import APIKeyMissing, BudgetExhausted, LLMError
from simgen.llm.schema import input_schema, tool_spec, validate_tool_input

__all__ = [
    "DEFAULT_MODEL",
    "APIKeyMissing",
    "Budget",
    "BudgetExhausted",
    "LLMClient",
    "LLMError",
    "LLMResponse",
    "LLMSettings",
    "Ledger",
    "ResponseCache",
    "SharedTally",
    "StructuredRequest",
    "StructuredResult",
    "cache_dir_for",
    "canonical_json",
    "estimate_cost",
    "has_api_key",
    "import_anthropic",
    "input_schema",
    "price_of",
    "request_key",
    "require_api_key",
    "scrub",
    "tool_spec",
    "validate_tool_input",
]
