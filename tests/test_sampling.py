from __future__ import annotations

import math

import numpy as np
import pytest

from simgen.sampling import (
    Choice,
    Const,
    IntRange,
    LogUniform,
    Normal,
    Sweep,
    TruncNormal,
    Uniform,
    parse_distribution,
    rng_for,
    sample,
    sample_int,
)

N = 20000


def draws(dist, key: str = "t", n: int = N) -> np.ndarray:
    rng = rng_for(123, key)
    return np.array([sample(dist, rng) for _ in range(n)])


def test_const_and_plain_values() -> None:
    rng = rng_for(0)
    assert sample(3.5, rng) == 3.5
    assert sample(Const(value=[1, 2]), rng) == [1, 2]
    assert sample([1.0, Uniform(low=2, high=2)], rng) == [1.0, 2.0]


def test_uniform_moments() -> None:
    x = draws(Uniform(low=2, high=6))
    assert x.min() >= 2 and x.max() < 6
    assert abs(x.mean() - 4) < 0.05 and abs(x.var() - 16 / 12) < 0.05


def test_normal_moments() -> None:
    x = draws(Normal(mean=-1, std=2))
    assert abs(x.mean() + 1) < 0.05 and abs(x.std() - 2) < 0.05


def test_truncnormal_bounds_and_mean() -> None:
    x = draws(TruncNormal(mean=0, std=1, low=-1, high=2))
    assert x.min() >= -1 and x.max() <= 2
    # Closed-form mean of N(0,1) truncated to [-1, 2].
    phi = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2)))  # noqa: E731
    expected = (phi(-1) - phi(2)) / (cdf(2) - cdf(-1))
    assert abs(x.mean() - expected) < 0.02


def test_truncnormal_far_tail_stays_in_bounds() -> None:
    x = draws(TruncNormal(mean=0, std=1, low=6, high=7), n=2000)
    assert x.min() >= 6 and x.max() <= 7


def test_loguniform_is_uniform_in_log() -> None:
    x = draws(LogUniform(low=0.01, high=100))
    assert x.min() >= 0.01 and x.max() < 100
    assert abs(np.log10(x).mean()) < 0.05


def test_weighted_choice_frequencies() -> None:
    x = draws(Choice(values=["a", "b", "c"], weights=[1, 0, 3]))
    assert set(x) == {"a", "c"}
    assert abs((x == "c").mean() - 0.75) < 0.02


def test_intrange_inclusive() -> None:
    x = draws(IntRange(low=10, high=12), n=3000)
    assert set(x.tolist()) == {10, 11, 12}
    assert sample_int(Uniform(low=2.4, high=2.4), rng_for(0)) == 2


def test_sweep_follows_index() -> None:
    rng = rng_for(0)
    s = Sweep(values=[1, 2, 3])
    assert [sample(s, rng, index=i) for i in range(5)] == [1, 2, 3, 1, 2]


def test_rng_for_is_deterministic_and_independent() -> None:
    a = rng_for(7, "frame", 3).random(5)
    assert np.array_equal(a, rng_for(7, "frame", 3).random(5))
    assert not np.array_equal(a, rng_for(7, "frame", 4).random(5))
    assert not np.array_equal(a, rng_for(8, "frame", 3).random(5))
    assert not np.array_equal(a, rng_for(7, "scene", 3).random(5))


def test_rng_for_known_value() -> None:
    # Pinned: a change here would silently change every existing dataset.
    assert float(rng_for(7, "frame", 3).random()) == 0.23346899690106948
    assert int(rng_for(7, "frame", 3).integers(0, 2**31)) == 687235217


def test_rng_for_rejects_bad_keys() -> None:
    with pytest.raises(TypeError):
        rng_for(1, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        rng_for(1, -3)


def test_parse_distribution() -> None:
    assert parse_distribution({"kind": "uniform", "low": 0, "high": 1}) == Uniform(low=0, high=1)
    assert parse_distribution(4) == 4


# --- strict, finite numbers and the Bounds of a field (issue 10, item 5) ---------------------------------

from pydantic import TypeAdapter, ValidationError  # noqa: E402

from simgen.sampling import (  # noqa: E402
    MAX_MAGNITUDE,
    Bounds,
    IntScalar,
    Scalar,
    first_non_finite,
    merged_bounds,
    support,
)

SCALAR = TypeAdapter(Scalar)
INT_SCALAR = TypeAdapter(IntScalar)


@pytest.mark.parametrize(
    "bad",
    [
        math.nan,
        math.inf,
        -math.inf,
        True,
        "3",
        "big",
        2 * MAX_MAGNITUDE,
        10**400,
        {"kind": "const", "value": "big"},
        {"kind": "const", "value": math.nan},
        {"kind": "uniform", "low": 0, "high": math.inf},
        {"kind": "uniform", "low": -1e308, "high": 1e308},  # high - low overflows to inf
        {"kind": "normal", "mean": math.nan, "std": 1},
        {"kind": "choice", "values": [1, "x"]},
        {"kind": "choice", "values": [1, True]},
        {"kind": "choice", "values": [1, 2], "weights": [1, math.inf]},
        {"kind": "sweep", "values": [1, math.nan]},
        {"kind": "intrange", "low": 0, "high": True},
        {"kind": "intrange", "low": 0, "high": 2**63},
    ],
    ids=repr,
)
def test_a_scalar_is_a_finite_number_never_a_bool_or_a_string(bad) -> None:
    with pytest.raises(ValidationError):
        SCALAR.validate_python(bad)


def test_booleans_are_not_counts_but_integral_floats_are() -> None:
    with pytest.raises(ValidationError):
        INT_SCALAR.validate_python(True)
    with pytest.raises(ValidationError):
        INT_SCALAR.validate_python(2.5)
    assert INT_SCALAR.validate_python(3.0) == 3
    assert parse_distribution({"kind": "intrange", "low": 1.0, "high": 3}) == IntRange(low=1, high=3)


def test_support_covers_every_distribution() -> None:
    assert support(2) == (2.0, 2.0)
    assert support(Uniform(low=1, high=3)) == (1.0, 3.0)
    assert support(Normal(mean=1, std=0)) == (1.0, 1.0)
    assert support(Normal(mean=1, std=2)) == (-math.inf, math.inf)
    assert support(Choice(values=[3, -1, 2])) == (-1.0, 3.0)
    assert support(Sweep(values=[5])) == (5.0, 5.0)
    assert support(IntRange(low=0, high=9)) == (0.0, 9.0)
    assert support(Choice(values=["a"])) is None
    assert support(True) is None


def test_bounds_open_ends_and_merging() -> None:
    fov = Bounds(0, 180, low_open=True, high_open=True)
    assert fov.text == "(0, 180)"
    for bad in (0, 180, Uniform(low=0, high=90), Choice(values=[90, 180])):
        with pytest.raises(ValueError, match=r"\(0, 180\)"):
            fov.check(bad)
    assert fov.check(Uniform(low=1e-3, high=179.9)).high == 179.9
    merged = merged_bounds([Bounds(), Bounds(0, 10, integer=True), Bounds(-5, 5, low_open=False, high_open=True)])
    assert merged == Bounds(0, 5, integer=True, low_open=False, high_open=True)
    assert merged_bounds(["not a bound"]) is None
    with pytest.raises(ValueError, match="must be a number, not str"):
        Bounds().check(Const(value="big"))  # unbounded fields still need numbers


def test_first_non_finite_finds_the_path_without_recursing() -> None:
    assert first_non_finite({"a": [1, {"b": 2.5}], "c": "x", "d": True}) is None
    assert first_non_finite({"a": [1, {"b": math.inf}]}) == (("a", 1, "b"), math.inf)
    deep: object = math.nan
    for _ in range(50_000):  # far deeper than Python's recursion limit
        deep = [deep]
    loc, value = first_non_finite({"x": deep})
    assert len(loc) == 50_001 and math.isnan(value)
    assert first_non_finite([10**400]) == ((0,), 10**400)
