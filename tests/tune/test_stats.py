"""The bootstrap over generation seeds and real images, and KID from the validators' kernel."""

from __future__ import annotations

import numpy as np
import pytest

from simgen.tune.stats import cluster_mean_ci, kid_ci, kid_terms
from simgen.validators import functional as Fn


def test_cluster_mean_ci_covers_the_mean_and_widens_with_seed_disagreement():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(20), 3)
    agree = np.tile(rng.integers(0, 2, 60), (3, 1)).astype(float)
    r1 = cluster_mean_ci(agree, clusters, rng=np.random.default_rng(1), n_boot=400)
    assert r1.value == pytest.approx(agree.mean()) and r1.low <= r1.value <= r1.high
    disagree = agree.copy()
    disagree[0] = 1.0
    disagree[1] = 0.0
    r2 = cluster_mean_ci(disagree, clusters, rng=np.random.default_rng(1), n_boot=400)
    assert (r2.high - r2.low) > (r1.high - r1.low)
    # A paired difference of identical results is exactly zero, interval included.
    zero = cluster_mean_ci(agree - agree, clusters, rng=np.random.default_rng(2), n_boot=50)
    assert (zero.value, zero.low, zero.high) == (0.0, 0.0, 0.0)
    # A clear difference has an interval that excludes zero.
    better = cluster_mean_ci(np.ones((3, 60)) - agree * 0.5, clusters, rng=np.random.default_rng(3), n_boot=200)
    assert better.low > 0


def test_kid_terms_equal_the_validators_unbiased_mmd_and_its_duplicate_handling():
    rng = np.random.default_rng(0)
    syn, real = rng.normal(size=(30, 8)), rng.normal(size=(25, 8)) + 0.3
    (t,) = kid_terms([syn], real)
    w = np.ones(len(real))
    k = Fn.polynomial_kernel
    expected = Fn.mmd2_unbiased(k(syn, syn), k(real, real), k(syn, real))
    assert t.value(w, t.real_term(w)) == pytest.approx(expected, rel=1e-10)
    # A resample with repeats, as weights, equals mmd2_indexed on the repeated rows.
    idx = rng.integers(0, len(real), len(real))
    w = np.bincount(idx, minlength=len(real)).astype(float)
    sx = np.arange(len(syn))
    indexed = Fn.mmd2_indexed(k(syn, syn), k(real[idx], real[idx]), k(syn, real[idx]), sx, idx)
    assert t.value(w, t.real_term(w)) == pytest.approx(indexed, rel=1e-10)
    # KID with one subset holding every sample is the same estimator.
    kid, _ = Fn.kid(syn[:25], real, rng=np.random.default_rng(0), subsets=1, subset_size=25)
    (t25,) = kid_terms([syn[:25]], real)
    assert t25.value(np.ones(25), t25.real_term(np.ones(25))) == pytest.approx(kid, rel=1e-10)


def test_kid_ci_of_a_difference_is_paired():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(40, 6))
    clusters = np.repeat(np.arange(20), 2)
    near = kid_terms([rng.normal(size=(30, 6)) for _ in range(2)], real)
    far = kid_terms([rng.normal(size=(30, 6)) + 1.5 for _ in range(2)], real)
    same = kid_ci(near, clusters, baseline=near, rng=np.random.default_rng(1), n_boot=50)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    diff = kid_ci(far, clusters, baseline=near, rng=np.random.default_rng(1), n_boot=200)
    assert diff.low > 0  # far is clearly farther
    single = kid_ci(far, clusters, rng=np.random.default_rng(1), n_boot=100)
    assert single.low <= single.value <= single.high and single.value > 0
