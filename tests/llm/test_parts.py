"""The LLM layer's pure parts: tool schemas, validation as data, cache keys and entries, prices, settings."""

from __future__ import annotations

import json
from email.utils import formatdate
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field, RootModel

from simgen.llm import (
    Budget,
    Ledger,
    LLMSettings,
    ResponseCache,
    estimate_cost,
    input_schema,
    price_of,
    request_key,
    tool_spec,
    validate_tool_input,
)
from simgen.llm.client import parse_retry_after


class Level(BaseModel):
    name: str
    patch: dict[str, float] = Field(default_factory=dict)


class Factor(BaseModel):
    """A factor with levels."""

    name: str
    kind: Literal["lighting", "clutter"]
    levels: list[Level] = Field(max_length=4)


class Node(BaseModel):
    value: int
    children: list[Node] = Field(default_factory=list)


def test_nested_defs_are_inlined() -> None:
    schema = input_schema(Factor)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    level = schema["properties"]["levels"]
    assert level["maxItems"] == 4 and level["items"]["properties"]["name"]["type"] == "string"
    assert schema["properties"]["kind"]["enum"] == ["lighting", "clutter"]


def test_recursive_models_keep_their_defs() -> None:
    schema = input_schema(Node)
    assert schema["type"] == "object" and schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert "Node" in schema["$defs"]


def test_tool_spec_names_and_refuses_non_object_models() -> None:
    spec = tool_spec(Factor)
    assert spec["name"] == "submit_factor" and spec["description"] == "A factor with levels."
    with pytest.raises(ValueError, match="tool_name"):
        tool_spec(Factor, name="has space")
    with pytest.raises(ValueError, match="expected an object schema"):
        input_schema(RootModel[list[int]])


def test_validation_problems_are_data_with_field_paths() -> None:
    value, problem = validate_tool_input(Factor, {"name": "l", "kind": "lightning", "levels": []}, max_bytes=10_000)
    assert value is None and problem is not None
    assert "kind" in problem and "did you mean 'lighting'" in problem
    value, problem = validate_tool_input(
        Factor, {"name": "l", "kind": "clutter", "levels": [{"name": "x"}] * 5}, max_bytes=10_000
    )
    assert value is None and "levels" in str(problem)
    assert (
        validate_tool_input(Factor, ["not", "an", "object"], max_bytes=100)[1]
        == "tool input: expected a JSON object, got list"
    )
    ok, none = validate_tool_input(Factor, {"name": "l", "kind": "clutter", "levels": []}, max_bytes=100)
    assert ok is not None and none is None


def test_request_key_is_canonical_and_salted() -> None:
    a = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    b = {"messages": [{"content": "x", "role": "user"}], "max_tokens": 5, "model": "m"}
    assert request_key(a) == request_key(b)
    assert request_key(a, "1") != request_key(a, "2") != request_key(a)
    assert request_key({**a, "temperature": 0.5}) != request_key(a)


def test_cache_round_trip_and_validation(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    body = {"model": "m", "max_tokens": 5, "messages": []}
    key = request_key(body, "s")
    raw = {"type": "message", "content": [], "usage": {"input_tokens": 1, "output_tokens": 1}}
    assert cache.get(key) is None
    cache.put(key, body, "s", raw)
    assert cache.get(key) == raw and cache.path(key).parent.name == key[:2]
    cache.path(key).write_text(
        json.dumps(
            {"format": "simgen-llm-cache/1", "key": key, "salt": "s", "request": body, "response": {"type": "error"}}
        )
    )
    assert cache.get(key) is None  # not a Message
    cache.path(key).write_bytes(b"\xff\xfe")
    assert cache.get(key) is None


def test_prices_by_family_and_unknown_models() -> None:
    assert price_of("claude-opus-4-5-20251101") == (5.0, 25.0)
    assert price_of("claude-opus-4-1-20250805") == (15.0, 75.0)
    assert price_of("claude-haiku-4-5") == (1.0, 5.0)
    assert price_of("gpt-x") is None and estimate_cost("gpt-x", 10, 10) is None
    assert estimate_cost("claude-3-haiku-20240307", 1_000_000, 1_000_000) == pytest.approx(1.5)
    ledger = Ledger()
    ledger.reserve()
    ledger.record("claude-fake", 10, 5, cached=False)
    ledger.record("claude-sonnet-4-5", 10, 5, cached=True)
    summary = ledger.summary()
    assert summary["responses"]["cost_usd"] is None and "claude-fake" in summary["responses"]["cost_note"]
    assert summary["responses"]["by_model"]["claude-sonnet-4-5"]["cost_usd"] == pytest.approx(10 * 3e-6 + 5 * 15e-6)
    assert summary["this_run"]["requests"] == 1 and summary["this_run"]["cache_hits"] == 1
    json.dumps(summary)


def test_settings_and_budget_are_checked() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        LLMSettings(model="m", concurrency=0)
    with pytest.raises(ValueError, match="stream"):
        LLMSettings(model="m", params={"stream": True})
    with pytest.raises(ValueError, match="max_requests"):
        Budget(max_requests=-1)


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": formatdate(0, usegmt=True)}) == 0.0
    assert parse_retry_after({}) is None and parse_retry_after({"retry-after": "soon"}) is None
