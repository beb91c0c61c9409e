"""Designs: determinism, the covering property (checked by brute force), quasi-random stratification."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simgen.errors import SpecError
from simgen.scenarios.design import (
    Design,
    Domain,
    build_design,
    check_design,
    covering_array,
    drop_redundant_rows,
    range_steps,
    tuples_covered,
)
from simgen.scenarios.models import DesignSpec


def brute_force_covers(rows: np.ndarray, sizes: list[int], t: int) -> bool:
    """Every t-tuple of levels of every t columns appears in some row (plain Python, no shared code)."""
    for cols in itertools.combinations(range(len(sizes)), t):
        seen = {tuple(int(row[c]) for c in cols) for row in rows}
        for levels in itertools.product(*(range(sizes[c]) for c in cols)):
            if levels not in seen:
                return False
    return True


def levels(name: str, n: int) -> Domain:
    return Domain(name, tuple(f"{name}{j}" for j in range(n)))


SHAPES = [
    ([3, 3, 3, 3], 2),
    ([2] * 10, 2),
    ([4] * 5 + [3] * 3, 2),
    ([2] * 6, 3),
    ([3, 2, 4, 2, 3], 3),
    ([5, 1, 3, 2], 2),
    ([6, 6, 2], 2),
    ([2, 3], 3),  # t larger than the factors: the full product
]


@pytest.mark.parametrize(("sizes", "t"), SHAPES)
def test_covering_array_covers_every_tuple(sizes, t):
    rows = covering_array(sizes, t, np.random.default_rng(7))
    assert rows.shape[1] == len(sizes)
    assert ((rows >= 0) & (rows < np.array(sizes))).all()
    assert brute_force_covers(rows, sizes, min(t, len(sizes)))
    # the vectorized count used by coverage agrees with the brute force
    covered, total = tuples_covered(rows, sizes, min(t, len(sizes)))
    assert covered == total


def test_brute_force_check_can_fail():
    rows = covering_array([3, 3, 3, 3], 2, np.random.default_rng(7))
    assert not brute_force_covers(rows[:-1], [3, 3, 3, 3], 2)  # any row of an optimal array is needed
    assert tuples_covered(rows[:-1], [3, 3, 3, 3], 2)[0] < 54


def test_covering_array_sizes_against_the_bounds():
    # lower bound: the product of the t largest level counts; known optima where there are some
    assert len(covering_array([3] * 4, 2, np.random.default_rng(0))) == 9  # an orthogonal array, optimal
    assert len(covering_array([2] * 6, 3, np.random.default_rng(0))) == 12  # CAN(3, 6, 2) = 12
    assert len(covering_array([2] * 10, 2, np.random.default_rng(0))) <= 8  # CAN(2, 10, 2) = 6
    assert len(covering_array([4] * 5 + [3] * 3, 2, np.random.default_rng(0))) <= 24  # lower bound 16


def test_covering_array_is_deterministic():
    a = covering_array([4, 3, 3, 2, 2], 2, np.random.default_rng(3))
    b = covering_array([4, 3, 3, 2, 2], 2, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


def test_drop_redundant_rows():
    rows = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [0, 0], [1, 1]])
    kept = drop_redundant_rows(rows, [2, 2], 2)
    assert len(kept) == 4 and brute_force_covers(kept, [2, 2], 2)


DOMAINS = [levels("light", 3), levels("clutter", 2), Domain("fov", (30.0, 60.0, 90.0), 30.0, 90.0)]


@pytest.mark.parametrize(
    "spec",
    [
        DesignSpec(kind="full"),
        DesignSpec(kind="pairwise"),
        DesignSpec(kind="t-wise", strength=3),
        DesignSpec(kind="random", n=20),
        DesignSpec(kind="lhs", n=12),
        DesignSpec(kind="sobol", n=16),
    ],
    ids=lambda s: s.kind,
)
def test_same_seed_same_design_other_seed_other_design(spec):
    a = build_design(DOMAINS, spec, seed=5, frames_per_scene=4)
    b = build_design(DOMAINS, spec, seed=5, frames_per_scene=4)
    assert a.cells == b.cells
    if spec.kind in ("random", "lhs", "sobol"):
        assert a.cells != build_design(DOMAINS, spec, seed=6, frames_per_scene=4).cells
    for cell in a.cells:
        assert set(cell) == {"light", "clutter", "fov"}
        assert cell["light"] in DOMAINS[0].levels and cell["clutter"] in DOMAINS[1].levels
        assert 30.0 <= cell["fov"] <= 90.0


def test_full_design_is_the_product_in_order():
    d = build_design(DOMAINS, DesignSpec(kind="full"), seed=0, frames_per_scene=1)
    assert len(d) == 18
    assert d.cells[0] == {"light": "light0", "clutter": "clutter0", "fov": 30.0}
    assert d.cells[1] == {"light": "light0", "clutter": "clutter0", "fov": 60.0}
    assert len({tuple(c.values()) for c in d.cells}) == 18


def test_lhs_is_stratified_in_every_dimension():
    n = 24
    doms = [Domain("a", (), 0.0, 1.0), Domain("b", (), -5.0, 5.0), levels("c", 4), Domain("k", (), 1.0, 6.0, True)]
    d = build_design(doms, DesignSpec(kind="lhs", n=n), seed=11, frames_per_scene=2)
    a = np.array([c["a"] for c in d.cells])
    b = np.array([c["b"] for c in d.cells])
    assert ((a >= 0) & (a <= 1)).all() and ((b >= -5) & (b <= 5)).all()
    # one point in each of the n strata of each range
    assert sorted(np.floor(a * n).astype(int).tolist()) == list(range(n))
    assert sorted(np.floor((b + 5) / 10 * n).astype(int).tolist()) == list(range(n))
    # a levels factor gets each level n / L times; an integer range each integer n / 6 times
    assert sorted(np.unique([c["c"] for c in d.cells], return_counts=True)[1].tolist()) == [6, 6, 6, 6]
    assert {c["k"] for c in d.cells} == {1, 2, 3, 4, 5, 6}
    assert all(isinstance(c["k"], int) for c in d.cells)
    assert np.unique([c["k"] for c in d.cells], return_counts=True)[1].tolist() == [4] * 6


def test_sobol_is_balanced():
    doms = [Domain("a", (), 10.0, 20.0), Domain("b", (), 0.0, 1.0)]
    d = build_design(doms, DesignSpec(kind="sobol", n=32), seed=3, frames_per_scene=1)
    a = np.array([c["a"] for c in d.cells])
    assert ((a >= 10) & (a <= 20)).all()
    # a scrambled Sobol' net: each of 8 equal slices of each dimension holds 32 / 8 points
    assert np.bincount(np.floor((a - 10) / 10 * 8).astype(int), minlength=8).tolist() == [4] * 8
    b = np.array([c["b"] for c in d.cells])
    assert np.bincount(np.floor(b * 8).astype(int), minlength=8).tolist() == [4] * 8


def test_random_design_draws_within_ranges():
    doms = [levels("x", 3), Domain("r", (), 2.0, 3.0)]
    d = build_design(doms, DesignSpec(kind="random", n=300), seed=1, frames_per_scene=1)
    counts = np.unique([c["x"] for c in d.cells], return_counts=True)[1]
    assert counts.sum() == 300 and counts.min() > 70  # each level about 100 times
    r = np.array([c["r"] for c in d.cells])
    assert r.min() >= 2.0 and r.max() <= 3.0 and r.std() > 0.2


def test_cells_are_assigned_per_scene_round_robin():
    d = Design("full", ("a",), ({"a": "x"}, {"a": "y"}, {"a": "z"}), frames_per_scene=4)
    assert [d.cell_index(i) for i in range(14)] == [0] * 4 + [1] * 4 + [2] * 4 + [0] * 2
    assert d.assign(5) == {"a": "y"}
    d.assign(5)["a"] = "mutated"
    assert d.assign(5) == {"a": "y"}  # a copy each time
    assert d.record(9) == {"index": 2, "levels": {"a": "z"}}
    assert d.to_json()["cells"] == [{"a": "x"}, {"a": "y"}, {"a": "z"}]
    with pytest.raises(ValueError):
        d.assign(-1)


def test_range_steps():
    assert range_steps(30, 90, 3, False) == (30.0, 60.0, 90.0)
    assert range_steps(1, 5, 3, True) == (1, 3, 5)
    assert range_steps(0, 1, 4, False) == (0.0, 0.333333, 0.666667, 1.0)


def test_check_design_refusals():
    cont = [Domain("r", (), 0.0, 1.0), levels("x", 2)]
    with pytest.raises(SpecError, match="give this range 'steps'") as exc:
        check_design(cont, DesignSpec(kind="full"))
    assert exc.value.path == "factors.r.steps"
    check_design(cont, DesignSpec(kind="lhs", n=4))  # continuous designs take ranges
    many = [levels(f"f{j}", 64) for j in range(4)]
    with pytest.raises(SpecError, match="16777216 cells") as exc:
        check_design(many, DesignSpec(kind="full"))
    assert exc.value.path == "design.kind"
    with pytest.raises(SpecError, match="needs at least 3 factors"):
        check_design([levels("a", 2), levels("b", 2)], DesignSpec(kind="t-wise", strength=3))
    big = [levels(f"f{j}", 64) for j in range(32)]
    with pytest.raises(SpecError, match="lower the strength") as exc:
        check_design(big, DesignSpec(kind="t-wise", strength=3))
    assert exc.value.path == "design.strength"
