"""Structured output through tool use: a pydantic model becomes a tool, its input is validated as data.

The model's reply is never trusted: its tool input is size-checked, then validated by the same pydantic
model, and any problem comes back as text (field paths, did-you-mean) that a repair round can send to the
model. Nothing in it is ever executed.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DEF_PREFIX = "#/$defs/"


class _Recursive(Exception):
    """A model refers to itself: its ``$defs`` must stay (the API accepts ``$ref`` into ``$defs``)."""


def default_tool_name(model: type[BaseModel]) -> str:
    """``ScenarioProposal`` -> ``submit_scenario_proposal`` (the API's tool-name alphabet)."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", model.__name__).lower()
    return re.sub(r"[^a-z0-9_]", "_", f"submit_{snake}")[:64]


def _inline(node: Any, defs: dict[str, Any], stack: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEF_PREFIX):
        name = ref[len(_DEF_PREFIX) :]
        if name in stack:
            raise _Recursive(name)
        target = _inline(defs[name], defs, (*stack, name))
        siblings = {k: _inline(v, defs, stack) for k, v in node.items() if k != "$ref"}
        return {**target, **siblings}
    return {k: _inline(v, defs, stack) for k, v in node.items() if k != "$defs"}


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of ``model`` as a tool ``input_schema``, with ``$defs`` inlined where possible.

    Args:
        model: A pydantic model whose JSON Schema is an object (the API requires ``"type": "object"``).

    Returns:
        The schema; a self-referencing model keeps its ``$defs`` and ``$ref`` s, which the API accepts.

    Raises:
        ValueError: ``model`` is not an object model (a ``RootModel`` of a list, for example).
    """
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    root = schema.get("$ref")
    if isinstance(root, str) and root.startswith(_DEF_PREFIX):
        # A self-referencing model is a bare $ref at the root; the API wants "type": "object" there.
        schema = {**defs[root[len(_DEF_PREFIX) :]], "$defs": defs}
    if schema.get("type") != "object":
        raise ValueError(f"output model {model.__name__}: expected an object schema, got type {schema.get('type')!r}")
    try:
        return _inline(schema, defs, ())
    except _Recursive:
        return copy.deepcopy(schema)


def tool_spec(model: type[BaseModel], name: str | None = None, description: str | None = None) -> dict[str, Any]:
    """The ``tools`` entry that makes the model answer with an instance of ``model`` (a fresh copy).

    Args:
        model: The pydantic model of the answer.
        name: The tool name (default :func:`default_tool_name`).
        description: What the tool is for (default: the model's docstring, else a generic line).

    Returns:
        ``{"name", "description", "input_schema"}``.

    Raises:
        ValueError: A name outside the API's alphabet ``[a-zA-Z0-9_-]{1,64}``.
    """
    return copy.deepcopy(shared_tool_spec(model, name, description))


@functools.lru_cache(maxsize=256)
def shared_tool_spec(model: type[BaseModel], name: str | None = None, description: str | None = None) -> dict[str, Any]:
    """:func:`tool_spec`, memoized (schema generation costs about 1 ms): the result is shared, never mutate it."""
    name = name or default_tool_name(model)
    if not _TOOL_NAME.match(name):
        raise ValueError(f"tool_name: expected 1-64 characters of [a-zA-Z0-9_-], got {name!r}")
    doc = (model.__doc__ or "").strip()
    desc = description or (doc.split("\n\n")[0] if doc else f"Submit one {model.__name__}.")
    return {"name": name, "description": desc, "input_schema": input_schema(model)}


def validation_text(exc: ValidationError, model: type[BaseModel]) -> str:
    """Every problem of a pydantic error, one per line, with field paths and did-you-mean."""
    from simgen.spec.errors import spec_error_from_validation

    return str(spec_error_from_validation(exc, model, None))


def validate_tool_input(model: type[T], data: Any, *, max_bytes: int) -> tuple[T | None, str | None]:
    """Validate a tool input as data: size first, then the pydantic model.

    Args:
        model: The expected model.
        data: The ``input`` of a ``tool_use`` block (any JSON value).
        max_bytes: The largest accepted size of ``data`` as compact UTF-8 JSON.

    Returns:
        ``(instance, None)`` when valid, else ``(None, problem text)``.
    """
    size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > max_bytes:
        return None, f"tool input is {size} bytes; the limit is {max_bytes} bytes: make the answer shorter"
    if not isinstance(data, dict):
        return None, f"tool input: expected a JSON object, got {type(data).__name__}"
    try:
        return model.model_validate(data), None
    except ValidationError as exc:
        return None, validation_text(exc, model)
