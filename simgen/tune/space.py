"""The search space of a tune: an on/off switch per randomizer in the spec, and the numbers of its ranges.

For each entry of the spec's ``randomizers`` list, the space holds a switch (``"<i>:<type>.enabled"``)
and, while it is on, every numeric parameter its own ``Params`` model declares with
:class:`~simgen.sampling.Bounds`, taken as the spec sets it (or, when the spec leaves it out, as the model's
default, if that default is a range: a default constant such as an opacity of 1 is a deliberate choice,
not a range to search):

- a range (``uniform``, ``loguniform``, ``intrange``): its ``low`` and ``high``, each searched over the
  same interval and sorted (a proposal with low > high is the same range);
- ``truncnormal``: its ``mean`` (inside its own ``[low, high]``) and ``std``; ``normal``: ``mean`` and ``std``;
- a constant: its value. ``choice`` and ``sweep`` are kept as written.

Where each number may go: inside the field's declared bounds, and inside a multiplicative window
around the spec's own value (``v / W`` to ``v * W``, ``W = 4`` by default; around 0, up to the range's
largest magnitude). Declared bounds are often far wider than any sensible value (a noise sigma may be
anything in [0, 255]), so the window keeps a 40-trial budget on plausible settings, while the bounds keep
every candidate a valid spec; a field without finite bounds gets the window alone. ``window=None``
searches the whole declared bounds where they are finite (the window of 4 where they are not). An interval
spanning more than a factor of 20 on the positive side is searched on a log scale.

Parameter names are stable strings (``"1:sensor/gaussian-noise-v1.sigma.high"``), so a study stored in
SQLite keeps its meaning when it is resumed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simgen.errors import SimgenError
from simgen.sampling import Bounds
from simgen.spec.loader import LoadedSpec, dump_spec, load_spec

__all__ = ["WINDOW", "Dim", "FieldSpace", "RandomizerSpace", "SearchSpace", "build_space"]

#: Default multiplicative window around a spec's value.
WINDOW = 4.0
#: An interval wider than this ratio (both ends positive) is searched on a log scale.
LOG_RATIO = 20.0
_RANGE_KINDS = ("uniform", "loguniform", "intrange")


@dataclass(frozen=True)
class Dim:
    """One searched number.

    Attributes:
        name: The Optuna parameter name.
        low: Lowest value searched.
        high: Highest value searched.
        integer: Searched as an integer.
        log: Searched on a log scale.
        initial: The spec's own value.
    """

    name: str
    low: float
    high: float
    integer: bool
    log: bool
    initial: float

    def suggest(self, trial: Any) -> float | int:
        """Ask an Optuna trial for this number."""
        if self.integer:
            return int(trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log))
        return float(trial.suggest_float(self.name, self.low, self.high, log=self.log))

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "name": self.name,
            "low": self.low,
            "high": self.high,
            "integer": self.integer,
            "log": self.log,
            "initial": self.initial,
        }


@dataclass(frozen=True)
class FieldSpace:
    """The searched numbers of one parameter field.

    Attributes:
        field: The parameter's name in the randomizer entry.
        kind: ``const``, ``uniform``, ``loguniform``, ``intrange``, ``truncnormal`` or ``normal``.
        dims: The numbers, by part (``value``, ``low``, ``high``, ``mean``, ``std``).
        template: The value as the spec has it (JSON), for the parts that are not searched.
        integer: Whether the field's draws are integers.
    """

    field: str
    kind: str
    dims: dict[str, Dim]
    template: Any
    integer: bool

    def value(self, params: Mapping[str, Any]) -> Any:
        """The field's JSON value for chosen ``params`` (a part missing from ``params`` keeps the spec's value)."""
        got = {part: params.get(d.name, d.initial) for part, d in self.dims.items()}
        if self.kind == "const":
            v = _number(got["value"], self.integer)
            return {**self.template, "value": v} if isinstance(self.template, dict) else v
        out = dict(self.template)
        if self.kind in _RANGE_KINDS:
            low, high = sorted((got["low"], got["high"]))
            integer = self.integer or self.kind == "intrange"
            out["low"], out["high"] = _number(low, integer), _number(high, integer)
        else:  # truncnormal, normal
            out["mean"], out["std"] = _number(got["mean"], False), _number(got["std"], False)
        return out


def _number(v: float, integer: bool) -> int | float:
    """A clean number for YAML: an int, or a float rounded to 6 significant digits."""
    if integer:
        return int(round(v))
    return float(f"{float(v):.6g}")


@dataclass(frozen=True)
class RandomizerSpace:
    """One randomizer entry of the spec: its switch and its searched fields.

    Attributes:
        index: Its position in the spec's ``randomizers`` list (candidates added by the tune come after them).
        type: Its registry name.
        fields: The searched parameter fields.
        added: A candidate the spec does not list: off in the spec as written.
    """

    index: int
    type: str
    fields: tuple[FieldSpace, ...]
    added: bool = False

    @property
    def key(self) -> str:
        """``"<index>:<type>"``: unique even when one type is listed twice."""
        return f"{self.index}:{self.type}"

    @property
    def enabled_name(self) -> str:
        """The Optuna name of its switch."""
        return f"{self.key}.enabled"

    def dims(self) -> list[Dim]:
        """Every searched number of this randomizer."""
        return [d for f in self.fields for d in f.dims.values()]


def _window(values: list[float], factor: float) -> tuple[float, float]:
    """The hull of ``[v / W, v * W]`` over ``values`` (0 reaches to the largest magnitude, or 1)."""
    scale = max((abs(v) for v in values), default=0.0) or 1.0
    lows, highs = [], []
    for v in values:
        if v > 0:
            lows.append(v / factor)
            highs.append(v * factor)
        elif v < 0:
            lows.append(v * factor)
            highs.append(v / factor)
        else:
            lows.append(-scale)
            highs.append(scale)
    return min(lows), max(highs)


def _interval(values: list[float], bounds: Bounds | None, factor: float | None) -> tuple[float, float]:
    """The searched interval: the window around ``values`` inside ``bounds`` (open ends nudged in).

    With ``factor`` None: the declared bounds where they are finite, the default window where they are not.
    """
    w_lo, w_hi = _window(values, factor or WINDOW)
    b_lo, b_hi = -math.inf, math.inf
    if bounds is not None:
        b_lo = bounds.low if not bounds.low_open else bounds.low + max(abs(bounds.low), 1.0) * 1e-6
        b_hi = bounds.high if not bounds.high_open else bounds.high - max(abs(bounds.high), 1.0) * 1e-6
    if factor is None:
        lo, hi = (b_lo if math.isfinite(b_lo) else w_lo), (b_hi if math.isfinite(b_hi) else w_hi)
    else:
        lo, hi = max(w_lo, b_lo), min(w_hi, b_hi)
    return min(lo, min(values)), max(hi, max(values))  # the spec's own value is always inside


def _dim(
    name: str,
    values: list[float],
    bounds: Bounds | None,
    factor: float | None,
    integer: bool,
    initial: float,
    *,
    positive: bool = False,
) -> Dim:
    lo, hi = _interval(values, bounds, factor)
    if positive:
        lo = max(lo, min(v for v in values if v > 0) / (factor or WINDOW), 1e-9)
    if integer:
        lo, hi = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
    log = lo > 0 and hi / lo >= LOG_RATIO
    return Dim(name, float(lo), float(hi), integer, log, float(initial))


def _field_space(prefix: str, field: str, value: Any, bounds: Bounds | None, factor: float | None) -> FieldSpace | None:
    """The searched parts of one field's value, or None when it is not a searchable number or range."""
    integer = bool(bounds is not None and bounds.integer)
    name = f"{prefix}.{field}"
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return FieldSpace(
            field,
            "const",
            {"value": _dim(f"{name}.value", [float(value)], bounds, factor, integer, float(value))},
            value,
            integer,
        )
    kind = getattr(value, "kind", None)
    template = value.model_dump(mode="json") if kind is not None else None
    if kind == "const":
        v = value.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None
        return FieldSpace(
            field,
            "const",
            {"value": _dim(f"{name}.value", [float(v)], bounds, factor, integer, float(v))},
            template,
            integer,
        )
    if kind in _RANGE_KINDS:
        ends = [float(value.low), float(value.high)]
        is_int = integer or kind == "intrange"
        positive = kind == "loguniform"
        dims = {
            part: _dim(f"{name}.{part}", ends, bounds, factor, is_int, end, positive=positive)
            for part, end in zip(("low", "high"), ends, strict=True)
        }
        return FieldSpace(field, kind, dims, template, is_int)
    if kind == "truncnormal":
        own = Bounds(float(value.low), float(value.high))
        mean = _dim(f"{name}.mean", [float(value.mean)], own, None, False, float(value.mean))
        std = _dim(f"{name}.std", [float(value.std)], None, factor or WINDOW, False, float(value.std), positive=True)
        return FieldSpace(field, kind, {"mean": mean, "std": std}, template, integer)
    if kind == "normal" and value.std > 0:
        mean = _dim(
            f"{name}.mean",
            [float(value.mean), float(value.std)],
            None,
            factor or WINDOW,
            False,
            float(value.mean),
        )
        std = _dim(f"{name}.std", [float(value.std)], None, factor or WINDOW, False, float(value.std), positive=True)
        return FieldSpace(field, kind, {"mean": mean, "std": std}, template, integer)
    return None  # choice, sweep, a zero-std normal: kept as written


class SearchSpace:
    """Switches and numbers of every randomizer listed in a spec, and how a choice of them becomes a spec.

    Args:
        loaded: The spec being tuned.
        randomizers: The per-entry spaces (see :func:`build_space`).
    """

    def __init__(self, loaded: LoadedSpec, randomizers: list[RandomizerSpace],
                 added: Sequence[Mapping[str, Any]] = ()) -> None:  # fmt: skip
        self.loaded = loaded
        self.randomizers = randomizers
        self._raw = dump_spec(loaded)
        self._entries = [*self._raw.get("randomizers", []), *(dict(e) for e in added)]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask an Optuna trial for a candidate (define-by-run: a switched-off randomizer's numbers are not asked)."""
        params: dict[str, Any] = {}
        for r in self.randomizers:
            on = bool(trial.suggest_categorical(r.enabled_name, [True, False]))
            params[r.enabled_name] = on
            if on:
                for d in r.dims():
                    params[d.name] = d.suggest(trial)
        return params

    def initial(self) -> dict[str, Any]:
        """The spec as written: every randomizer it lists on (added candidates off), every number at its value."""
        params: dict[str, Any] = {}
        for r in self.randomizers:
            params[r.enabled_name] = not r.added
            if r.added:
                continue
            for d in r.dims():
                params[d.name] = int(d.initial) if d.integer else d.initial
        return params

    def toggled(self, params: Mapping[str, Any], randomizer: RandomizerSpace, on: bool) -> dict[str, Any]:
        """``params`` with one randomizer switched on or off (switched on, it keeps chosen numbers or the spec's)."""
        out = dict(params)
        out[randomizer.enabled_name] = on
        for d in randomizer.dims():
            if on:
                out.setdefault(d.name, int(d.initial) if d.integer else d.initial)
            else:
                out.pop(d.name, None)
        return out

    def spec_dict(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The spec (as :func:`dump_spec` gives it) for chosen ``params``; a missing switch keeps the spec's choice."""
        raw = copy.deepcopy(self._raw)
        entries = copy.deepcopy(self._entries)
        kept = []
        for r in self.randomizers:
            if not params.get(r.enabled_name, not r.added):
                continue
            entry = entries[r.index]
            for f in r.fields:
                value = f.value(params)
                if f.field in entry or value != f.template:  # a default left alone stays unwritten
                    entry[f.field] = value
            kept.append(entry)
        raw["randomizers"] = kept
        return raw

    def load(self, params: Mapping[str, Any]) -> LoadedSpec:
        """The candidate as a validated spec, its assets resolved like the original's (files were checked then)."""
        return load_spec(
            self.spec_dict(params), base_dir=self.loaded.base_dir, asset_roots=self.loaded.roots, check_assets=False
        )

    def describe(self) -> list[dict[str, Any]]:
        """The space as JSON: per randomizer, its switch and searched numbers."""
        return [
            {
                "randomizer": r.key,
                "type": r.type,
                "switch": r.enabled_name,
                "added": r.added,
                "fields": [
                    {"field": f.field, "kind": f.kind, "dims": [d.as_dict() for d in f.dims.values()]} for f in r.fields
                ],
            }
            for r in self.randomizers
        ]


def _entry(item: str | Mapping[str, Any]) -> dict[str, Any]:
    """A candidate randomizer as a spec entry: a registry name, or a mapping like a spec's randomizer entry."""
    if isinstance(item, str):
        return {"type": item}
    if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
        raise SimgenError(f"a randomizer to add must be a registry name or a mapping with a 'type', got {item!r}")
    return dict(item)


def build_space(loaded: LoadedSpec, *, window: float | None = WINDOW,
                add: Sequence[str | Mapping[str, Any]] = ()) -> SearchSpace:  # fmt: skip
    """The search space of a spec's randomizers, and of candidates it does not list.

    Args:
        loaded: The spec.
        window: Multiplicative window around each value (see the module docstring); None searches the
            declared bounds wherever they are finite.
        add: Randomizers the spec does not list, to try: registry names (their default parameters) or
            entries as a spec writes them (``{"type": ..., "tags": [...], **params}``). Each is off in the
            spec as written and gets a switch and its searched numbers like the others.

    Raises:
        SimgenError: The spec lists no randomizer and none is added (there is nothing to tune), ``window``
            <= 1, or an added randomizer is unknown (with a suggestion) or its parameters are invalid.
    """
    from simgen.randomizers import REGISTRY
    from simgen.randomizers.bounds import field_bounds

    if window is not None and not window > 1.0:
        raise SimgenError(f"window must be > 1 (a factor around each value), got {window}")
    spec = loaded.spec
    added = [_entry(item) for item in add]
    if not spec.randomizers and not added:
        raise SimgenError(
            "the spec lists no randomizers: tuning switches and tunes the entries of its 'randomizers' list "
            "(and candidates given to add), so there is nothing to tune"
        )
    if added:  # validated as the spec would be with them: type, parameters, tags
        raw = dump_spec(loaded)
        raw["randomizers"] = [*raw.get("randomizers", []), *added]
        with_added = load_spec(raw, base_dir=loaded.base_dir, asset_roots=loaded.roots)
        entries = with_added.spec.randomizers
    else:
        entries = spec.randomizers
    out = []
    for i, entry in enumerate(entries):
        cls = REGISTRY.get(entry.type)
        params = cls.Params.model_validate(entry.params)
        written = set(entry.params)
        prefix = f"{i}:{entry.type}"
        fields = []
        for name in cls.Params.model_fields:
            bounds = field_bounds(cls.Params, name)
            if bounds is None:
                continue
            value = getattr(params, name)
            if name not in written and getattr(value, "kind", None) in (None, "const"):
                continue  # a default constant is a deliberate choice, not a range
            fs = _field_space(prefix, name, value, bounds, window)
            if fs is not None and fs.dims:
                fields.append(fs)
        out.append(RandomizerSpace(i, entry.type, tuple(fields), added=i >= len(spec.randomizers)))
    return SearchSpace(loaded, out, added)
