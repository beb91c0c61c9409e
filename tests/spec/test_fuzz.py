"""Property-based fuzz of scene specs: every mutated library spec loads (and renders), or fails cleanly.

Each example takes a spec from scenes/ and applies one to three mutations: a key deleted, a value of the
wrong type (string, boolean, list, mapping, null), a huge, negative, NaN or infinite number, a vector of
the wrong length, an unknown key, an unknown or swapped distribution kind. Then:

- ``load_spec`` either succeeds or raises :class:`SpecError`/:class:`AssetError` naming a field path;
  anything else is a bug;
- after a refusal, ``generate`` refuses the same spec before the output folder exists;
- a few specs that load render one 64x48 frame through the real engine (only specs of ordinary cost:
  tens of thousands of objects or 1e5 physics steps are valid by design, and only loaded here);
- nothing runs past a time bound (a SIGALRM timer turns a hang into a failure).

``benchmarks/fuzz.py`` runs the same generator and :func:`attempt` on 1,000+ examples and counts outcomes.
"""

from __future__ import annotations

import contextlib
import copy
import math
import re
import shutil
import signal
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simgen.engine import generate
from simgen.errors import AssetError, SpecError
from simgen.sampling import KINDS
from simgen.spec import LoadedSpec, load_spec, read_spec_file
from simgen.spec.models import instance_budget

REPO = Path(__file__).resolve().parents[2]
BASES = {p.stem: read_spec_file(p) for p in sorted((REPO / "scenes").glob("*.yaml"))}

LOAD_LIMIT_S = 5.0  # loading a spec is milliseconds; seconds means something is quadratic or stuck
RENDER_LIMIT_S = 120.0  # one 64x48 frame of an ordinary scene takes one or two seconds

# --- the mutations -----------------------------------------------------------------------------------------

SPECIAL_VALUES: list[Any] = [
    None, True, False, "", "big", "1", "yes", "x" * 5000,
    [], {}, [1, 2], [1, 2, 3, 4], [[1]], {"a": 1}, [0.0] * 20_000,
    0, 1, -1, 2, 0.5, -0.5, 1e-300, 10**9, -(10**9), 2**31, 2**63, 10**30, 10**400, 1e300, -1e300,
    math.nan, math.inf, -math.inf,
]  # fmt: skip
NUMBERS = st.one_of(
    st.sampled_from([0, 1, -1, 0.5, 10**9, 2**63, 1e300, math.nan, math.inf, -math.inf, True, "3"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
)
TEXT = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")), max_size=12)
DISTRIBUTIONS = st.fixed_dictionaries(
    {"kind": st.sampled_from([*KINDS, "bogus", "Uniform", ""])},
    optional={
        "low": NUMBERS,
        "high": NUMBERS,
        "mean": NUMBERS,
        "std": NUMBERS,
        "value": st.one_of(NUMBERS, TEXT),
        "values": st.lists(st.one_of(NUMBERS, TEXT), max_size=4),
        "weights": st.lists(NUMBERS, max_size=4),
    },
)
VALUES = st.one_of(st.sampled_from(SPECIAL_VALUES), NUMBERS, TEXT, DISTRIBUTIONS)


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


FIELD_NAMES = sorted({k for base in BASES.values() for k in _keys(base)})


def _locations(node: Any, loc: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    yield loc, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _locations(v, (*loc, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _locations(v, (*loc, i))


def _parent(raw: dict[str, Any], loc: tuple) -> Any:
    cur: Any = raw
    for part in loc[:-1]:
        cur = cur[part]
    return cur


def _typo(name: str) -> str:
    return name[:-1] if len(name) > 3 else name + "s"


@dataclass
class Case:
    """A mutated spec: the library scene it came from, the mapping, and the mutations applied."""

    scene: str
    raw: dict[str, Any]
    steps: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # what hypothesis prints for a failing example: the recipe, not the whole spec
        return f"Case({self.scene!r}, steps={self.steps!r})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@st.composite
def mutated_specs(draw: st.DrawFn) -> Case:
    """A library spec with one to three mutations (see the module docstring)."""
    scene = draw(st.sampled_from(sorted(BASES)))
    case = Case(scene, copy.deepcopy(BASES[scene]))
    for _ in range(draw(st.integers(1, 3))):
        loc, node = draw(st.sampled_from(list(_locations(case.raw))))
        ops = ["set", "retype"] if loc else []
        if loc:
            ops.append("delete")
        if isinstance(node, dict):
            ops += ["add_key", "add_key"]
            if "kind" in node:
                ops.append("kind")
        if isinstance(node, list):
            ops.append("resize")
        if isinstance(node, int | float) and not isinstance(node, bool):
            ops += ["number", "number"]
        op = draw(st.sampled_from(ops))
        where = ".".join(map(str, loc)) or "<root>"
        if op == "delete":
            parent = _parent(case.raw, loc)
            del parent[loc[-1]]
            case.steps.append(f"delete {where}")
        elif op == "set":
            value = copy.deepcopy(draw(VALUES))  # the pools' lists and dicts must never be mutated later
            _parent(case.raw, loc)[loc[-1]] = value
            case.steps.append(f"set {where} = {_short(value)}")
        elif op == "retype":
            value = draw(st.sampled_from([str(node), [node], {"value": node}, bool(node) if node else None]))
            _parent(case.raw, loc)[loc[-1]] = value
            case.steps.append(f"retype {where} = {_short(value)}")
        elif op == "add_key":
            siblings = [str(k) for k in node] or ["x"]
            key = draw(st.one_of(st.sampled_from(FIELD_NAMES), st.sampled_from(siblings).map(_typo), TEXT))
            value = copy.deepcopy(draw(VALUES))
            node[key] = value
            case.steps.append(f"add {where}.{key} = {_short(value)}")
        elif op == "kind":
            kind = draw(st.sampled_from([*KINDS, "bogus", "Normal", ""]))
            node["kind"] = kind
            case.steps.append(f"kind {where} = {kind!r}")
        elif op == "resize":
            n = draw(st.integers(0, 6))
            filler = node[-1] if node else 0.0
            node[:] = (node + [copy.deepcopy(filler)] * n)[:n]
            case.steps.append(f"resize {where} to {n}")
        else:  # number
            factor = draw(st.sampled_from([-1, 0, 1e6, 1e-9, 0.5, math.nan, math.inf, 1e12, 10**13]))
            value = node * factor if isinstance(factor, int) else float(node) * factor
            _parent(case.raw, loc)[loc[-1]] = value
            case.steps.append(f"number {where} = {_short(value)}")
    return case


# --- running one example ------------------------------------------------------------------------------------


class Hang(BaseException):
    """A time bound was exceeded (a BaseException, so no ``except Exception`` in simgen can swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread when the block runs longer than ``seconds``."""

    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Outcome:
    """How one example went: ``loaded``, ``rendered`` or ``error`` are clean; anything else is a bug."""

    kind: str
    detail: str = ""

    @property
    def clean(self) -> bool:
        """Whether the spec loaded (and rendered), or was refused with a field path before any write."""
        return self.kind in ("loaded", "rendered", "error")


FIELD_IN_MESSAGE = re.compile(r"\b(objects|fixtures|randomizers|ground|camera|light|asset_roots)(\[\d+\]|\.)")


def names_a_field(exc: SpecError | AssetError) -> bool:
    """Whether the error names the field at fault (a SpecError's ``path``; an AssetError's message)."""
    if isinstance(exc, SpecError):
        return bool(exc.path)
    return bool(FIELD_IN_MESSAGE.search(str(exc)))


def cheap_to_render(loaded: LoadedSpec) -> bool:
    """Whether one frame of this spec costs seconds: few bodies, ordinary physics, the camera rescalable."""
    spec = loaded.spec
    bodies = sum(n for _, n in instance_budget(spec))
    texture_sizes = [r.params.get("size", 0) for r in spec.randomizers]
    return (
        bodies <= 200
        and spec.physics.max_steps <= 5000
        and spec.camera.intrinsics is None
        and all(isinstance(s, int) and s <= 512 for s in texture_sizes)
    )


def _generate(spec_path: Path, out: Path) -> None:
    generate(spec_path, out, n_frames=1, seed=0, renderer="tiny", resolution=(64, 48))


def attempt(case: Case, *, render: bool) -> Outcome:
    """Load one mutated spec (from a YAML file, as a user would), then render it or check its refusal."""
    work = Path(tempfile.mkdtemp(prefix="simgen-fuzz-"))
    try:
        spec_path, out = work / "spec.yaml", work / "out"
        spec_path.write_text(yaml.safe_dump(case.raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
        try:
            with time_limit(LOAD_LIMIT_S):
                loaded = load_spec(spec_path)
        except Hang:
            return Outcome("hang", "load_spec")
        except (SpecError, AssetError) as exc:
            return _refused(exc, spec_path, out)
        except Exception:
            return Outcome("traceback", traceback.format_exc(limit=-4))
        if not (render and cheap_to_render(loaded)):
            return Outcome("loaded")
        try:
            with time_limit(RENDER_LIMIT_S):
                _generate(spec_path, out)
        except Hang:
            return Outcome("hang", "generate")
        except Exception:  # a spec that loads must render: a SpecError now came too late
            return Outcome("traceback", traceback.format_exc(limit=-4))
        if not (out / "dataset.json").is_file():
            return Outcome("traceback", "generate returned without writing dataset.json")
        return Outcome("rendered")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _refused(exc: SpecError | AssetError, spec_path: Path, out: Path) -> Outcome:
    first = str(exc).splitlines()[0]
    if not names_a_field(exc):
        return Outcome("no-field-path", first)
    try:
        with time_limit(LOAD_LIMIT_S):
            _generate(spec_path, out)
    except Hang:
        return Outcome("hang", "generate of a refused spec")
    except (SpecError, AssetError):
        pass
    except Exception:
        return Outcome("traceback", traceback.format_exc(limit=-4))
    else:
        return Outcome("traceback", f"generate accepted a spec load_spec refused: {first}")
    if out.exists():
        return Outcome("wrote-before-failing", f"{out} exists after: {first}")
    return Outcome("error", first)


# --- the property ------------------------------------------------------------------------------------------

RENDERS = 4  # rendered examples per run (about 1-2 s each); the rest are loaded only
_rendered: list[Case] = []


@settings(
    max_examples=60,
    derandomize=True,  # a fixed sequence of examples: the same in CI and on every machine
    database=None,
    deadline=None,  # bounded by time_limit instead, which also stops a real hang
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=mutated_specs())
def test_every_mutated_spec_loads_or_fails_cleanly(case: Case) -> None:
    render = len(_rendered) < RENDERS
    outcome = attempt(case, render=render)
    if outcome.kind == "rendered":
        _rendered.append(case)
    assert outcome.clean, f"{outcome.kind}: {outcome.detail}"


def test_attempt_renders_what_loads_and_refuses_before_writing() -> None:
    """Both branches of :func:`attempt` work on their own: a valid spec renders, an invalid one leaves no folder."""
    good = Case("tabletop_clutter", copy.deepcopy(BASES["tabletop_clutter"]), ["set objects.0.count = 3"])
    good.raw["objects"][0]["count"] = 3
    assert attempt(good, render=True).kind == "rendered"
    bad = Case("tabletop_clutter", copy.deepcopy(BASES["tabletop_clutter"]), ["set camera.far = inf"])
    bad.raw["camera"]["far"] = math.inf
    outcome = attempt(bad, render=True)
    assert outcome.kind == "error" and "camera.far" in outcome.detail, outcome


@pytest.mark.parametrize("mutation", ["resize light.color to 2", "set objects.0.count = True"])
def test_attempt_reports_what_the_fuzz_targets(mutation: str) -> None:
    raw = copy.deepcopy(BASES["tabletop_clutter"])
    if mutation.startswith("resize"):
        raw["light"]["color"] = [1, 1]
    else:
        raw["objects"][0]["count"] = True
    outcome = attempt(Case("tabletop_clutter", raw, [mutation]), render=False)
    assert outcome.kind == "error", outcome
