"""Turn pydantic's validation errors into one readable :class:`~simgen.errors.SpecError`."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from simgen.errors import SpecError, did_you_mean
from simgen.sampling import KINDS

# Location parts pydantic adds for union branches and validators; they are not field names.
_BRANCH = re.compile(
    r"^(int|float|str|bool|none|list\[.*\]|dict\[.*\]|literal\[.*\]|tagged-union\[.*\]|function-\w+\[.*\]|[A-Z]\w*)$"
)


def format_path(loc: tuple[Any, ...]) -> str:
    """Format a location tuple as ``objects[2].count.high``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    cleaned: list[Any] = []
    skip_tag = False
    for part in loc:
        if skip_tag:
            skip_tag = False
            if isinstance(part, str) and part in KINDS:
                continue
        if isinstance(part, str) and _BRANCH.match(part):
            skip_tag = part.startswith("tagged-union")
            continue
        cleaned.append(part)
    return tuple(cleaned)


def _allowed_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that sits at ``loc`` (best effort, for did-you-mean)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = _model_of(fields[part].annotation)
        if current is None:
            return []
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _message(err: dict[str, Any], model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    received = err.get("input")
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else ""
        allowed = _allowed_fields(model, loc[:-1])
        hint = did_you_mean(name, allowed)
        listing = f"; expected one of: {', '.join(allowed)}" if allowed and not hint else ""
        return f"unknown field '{name}'{hint}{listing}"
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", "")
        return f"unknown distribution kind '{tag}'{did_you_mean(str(tag), KINDS)}; expected one of: {', '.join(KINDS)}"
    if kind == "union_tag_not_found":
        return f"a distribution needs a 'kind' (one of: {', '.join(KINDS)}), got {_describe(received)}"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        options = [o.strip().strip("'") for o in str(expected).replace(" or ", ",").split(",")]
        return f"expected {expected}, got {_describe(received)}{did_you_mean(str(received), options)}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{msg}; got {_describe(received)}"


def _relevant(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop union-branch errors that cannot be what the user meant."""
    kept = []
    for err in errors:
        received = err.get("input")
        scalar_branch = err["type"] in {"int_type", "float_type", "int_parsing", "float_parsing", "string_type"}
        if scalar_branch and isinstance(received, dict):
            continue  # the user wrote a mapping: the distribution branch's error is the one that matters
        if err["type"] in {"model_attributes_type", "model_type", "dict_type"} and not isinstance(received, dict):
            siblings = [e for e in errors if e is not err and _clean_loc(e["loc"]) == _clean_loc(err["loc"])]
            if siblings:
                continue  # a scalar was given: keep the scalar branch's error
        kept.append(err)
    return kept or errors


def spec_error_from_validation(exc: ValidationError, model: type[BaseModel], source: str | None) -> SpecError:
    """Build one SpecError listing every problem with its field path."""
    problems: list[tuple[str, str]] = []
    for err in _relevant(exc.errors()):
        loc = _clean_loc(tuple(err["loc"]))
        item = (format_path(loc), _message(err, model, loc))
        if item not in problems:
            problems.append(item)
    return SpecError(source=source, problems=problems)
