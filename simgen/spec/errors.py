"""Turn pydantic's validation errors into one readable :class:`~simgen.errors.SpecError`."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pydantic import BaseModel, ValidationError

from simgen.errors import SpecError, did_you_mean
from simgen.sampling import KINDS

# Location parts pydantic adds for union branches and validators; they are not field names.
_BRANCH = re.compile(
    r"^(int|float|str|bool|none|constrained-\w+|list\[.*\]|dict\[.*\]|literal\[.*\]|tagged-union\[.*\]"
    r"|function-\w+\[.*\]|[A-Z]\w*)$"
)
#: The most characters of a received value, a key or a name an error message quotes.
MAX_QUOTED = 80
_UNSET: Any = object()


class FieldProblem(ValueError):
    """Raised by a model validator to report a problem at a field below the model it validates.

    pydantic reports a model validator's error at the model itself; :func:`spec_error_from_validation`
    appends ``loc``, so the message names the field at fault (``objects[0].min_spacing``), not its parent.

    Args:
        loc: The field's location relative to the validated model, e.g. ``("min_spacing",)``.
        message: What is wrong.
        received: The offending value, quoted (shortened) after the message when given.
    """

    def __init__(self, loc: tuple[Any, ...], message: str, *, received: Any = _UNSET) -> None:
        super().__init__(message)
        self.loc = tuple(loc)
        self.message = message
        self.received = received

    @property
    def text(self) -> str:
        """The message, with the received value (shortened) when there is one."""
        return self.message if self.received is _UNSET else f"{self.message}; got {_describe(self.received)}"

    def spec_error(self, source: str | None = None) -> SpecError:
        """The :class:`SpecError` for this problem, raised outside pydantic (``loc`` from the spec's root)."""
        return SpecError(self.text, path=format_path(self.loc), source=source)


def shorten(text: str, limit: int = MAX_QUOTED) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, so a huge input never floods a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_path(loc: tuple[Any, ...]) -> str:
    """Format a location tuple as ``objects[2].count.high`` (over-long keys and paths are shortened)."""
    if len(loc) > 24:  # a path into a deeply nested input: its start and end say where
        head, tail = format_path(loc[:16]), format_path(loc[-4:])
        return f"{head}...({len(loc) - 20} levels)...{tail if tail.startswith('[') else '.' + tail}"
    out: list[str] = []
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out.append(f"[{part}]")
        else:
            name = shorten(str(part), 40) or "''"  # an empty key still names a place
            out.append(f".{name}" if out else name)
    return "".join(out)


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
    # repr of a huge input is itself huge (and slow): a long string or container is cut before repr.
    if isinstance(value, str) and len(value) > MAX_QUOTED:
        value = value[:MAX_QUOTED]
    elif isinstance(value, list | tuple) and len(value) > 8:
        return shorten(f"[{', '.join(_repr(v) for v in value[:8])}, ... ({len(value)} items)]")
    elif isinstance(value, dict) and len(value) > 8:
        head = ", ".join(f"{_repr(k)}: {_repr(v)}" for k, v in list(value.items())[:8])
        return shorten(f"{{{head}, ... ({len(value)} keys)}}")
    return shorten(_repr(value))


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except ValueError:  # an int of more than 4300 digits cannot be printed (sys.int_info.str_digits_check_threshold)
        return "<a number too large to print>"
    except RecursionError:
        return f"<a {type(value).__name__} nested too deep to print>"


def _literal(expected: str, received: Any) -> str:
    """The message of a literal mismatch, saying "the number 1" when the string '1' was given."""
    options = [o.strip() for o in expected.replace(" or ", ",").split(",") if o.strip()]
    names = [o.strip("'") for o in options]
    if isinstance(received, str) and received in names and f"'{received}'" not in options:
        return f"expected the number {received}, got the string {_describe(received)} (drop the quotes)"
    hint = did_you_mean(received, names) if isinstance(received, str) else ""
    return f"expected {expected}, got {_describe(received)}{hint}"


def _message(err: dict[str, Any], model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    received = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else ""
        allowed = _allowed_fields(model, loc[:-1])
        hint = did_you_mean(name, allowed)
        listing = f"; expected one of: {', '.join(allowed)}" if allowed and not hint else ""
        return f"unknown field '{shorten(name)}'{hint}{listing}"
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag", ""))
        hint = did_you_mean(tag, KINDS)
        return f"unknown distribution kind '{shorten(tag)}'{hint}; expected one of: {', '.join(KINDS)}"
    if kind == "union_tag_not_found":
        return f"a distribution needs a 'kind' (one of: {', '.join(KINDS)}), got {_describe(received)}"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        return _literal(str(ctx.get("expected", "")), received)
    problem = ctx.get("error")
    if isinstance(problem, FieldProblem):
        return problem.text
    msg = err["msg"].removeprefix("Value error, ")
    return f"{msg}; got {_describe(received)}"


def _relevant(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop union-branch errors that cannot be what the user meant (in linear time: inputs can be huge)."""
    per_loc = Counter(_clean_loc(tuple(e["loc"])) for e in errors)
    kept = []
    for err in errors:
        received = err.get("input")
        scalar_branch = err["type"] in {"int_type", "float_type", "int_parsing", "float_parsing", "string_type"}
        if scalar_branch and isinstance(received, dict):
            continue  # the user wrote a mapping: the distribution branch's error is the one that matters
        model_branch = err["type"] in {"model_attributes_type", "model_type", "dict_type"}
        if model_branch and not isinstance(received, dict) and per_loc[_clean_loc(tuple(err["loc"]))] > 1:
            continue  # a scalar was given: keep the scalar branch's error
        kept.append(err)
    return kept or errors


#: The most problems one SpecError lists; the rest are counted.
MAX_PROBLEMS = 20


def spec_error_from_validation(exc: ValidationError, model: type[BaseModel], source: str | None) -> SpecError:
    """Build one SpecError listing every problem with its field path (the first :data:`MAX_PROBLEMS` of them)."""
    problems: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    errors = _relevant(exc.errors())
    for err in errors:
        loc = _clean_loc(tuple(err["loc"]))
        problem = (err.get("ctx") or {}).get("error")
        if isinstance(problem, FieldProblem):
            loc = (*loc, *problem.loc)
        item = (format_path(loc), _message(err, model, loc))
        if item not in seen:
            seen.add(item)
            problems.append(item)
            if len(problems) == MAX_PROBLEMS:
                break
    if len(problems) == MAX_PROBLEMS and len(errors) > MAX_PROBLEMS:
        problems.append(("...", f"and up to {len(errors) - MAX_PROBLEMS} more problems"))
    return SpecError(source=source, problems=problems)
