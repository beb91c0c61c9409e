"""The pure maths: closed forms, constructed cases with known answers, seeded randomness."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from simgen.validators import functional as F


def _reference_frechet(mu1, s1, mu2, s2) -> float:
    """The textbook formula through scipy.linalg.sqrtm (pytorch-fid's route)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_closed_form_1d_and_diagonal():
    # 1-D: W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2.
    assert F.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(
        (1 - 3) ** 2 + (2 - 3) ** 2
    )
    # Diagonal covariances: the same per dimension, summed.
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    sd1, sd2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 1.5])
    expected = ((mu1 - mu2) ** 2).sum() + ((sd1 - sd2) ** 2).sum()
    assert F.frechet_distance(mu1, np.diag(sd1**2), mu2, np.diag(sd2**2)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_matches_sqrtm_on_full_covariances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    assert F.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_reference_frechet(mu1, s1, mu2, s2), rel=1e-9)
    # Symmetric in its two Gaussians.
    assert F.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(F.frechet_distance(mu2, s2, mu1, s1), rel=1e-9)


@pytest.mark.parametrize(("n", "d"), [(50, 8), (20, 64)])  # more samples than dims, and fewer (singular covariance)
def test_fid_of_a_set_with_itself_is_zero(n, d):
    x = np.random.default_rng(1).normal(size=(n, d)) * 10
    assert F.fid(x, x) == pytest.approx(0.0, abs=1e-8 * d * 100)


def test_fid_sample_space_route_equals_covariance_route():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 100)), rng.normal(size=(40, 100)) * 1.5 + 0.3
    via_cov = F.frechet_distance(*F.gaussian_stats(x), *F.gaussian_stats(y))
    assert F.fid(x, y) == pytest.approx(via_cov, rel=1e-7)
    assert F.fid(x, y) > F.fid(x, rng.normal(size=(40, 100)))


def test_fid_input_checks_name_the_argument():
    with pytest.raises(ValueError, match="same width"):
        F.fid(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="x needs at least 2 rows"):
        F.fid(np.zeros((1, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        F.fid(np.full((3, 2), np.nan), np.zeros((3, 2)))


def test_kid_is_reproducible_with_a_seed_and_varies_without():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(80, 16)), rng.normal(size=(90, 16)) + 0.5
    a = F.kid(x, y, rng=np.random.default_rng(7), subsets=20, subset_size=30)
    b = F.kid(x, y, rng=np.random.default_rng(7), subsets=20, subset_size=30)
    c = F.kid(x, y, rng=np.random.default_rng(8), subsets=20, subset_size=30)
    assert a == b
    assert a != c
    assert a[0] > 0 and a[1] > 0
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        F.kid(x, y, rng=7, subsets=2, subset_size=10)  # type: ignore[arg-type]


def test_kid_is_near_zero_on_one_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    same = F.kid(x, y, rng=np.random.default_rng(0), subsets=50, subset_size=100)[0]
    far = F.kid(x, y + 1.0, rng=np.random.default_rng(0), subsets=50, subset_size=100)[0]
    assert abs(same) < 0.02
    assert far > 10 * abs(same)


def test_kid_subset_without_replacement_of_the_full_sets_equals_the_direct_mmd():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(20, 4)), rng.normal(size=(20, 4)) + 0.2
    k = lambda a, b: F.polynomial_kernel(a, b)  # noqa: E731
    direct = F.mmd2_unbiased(k(x, x), k(y, y), k(x, y))
    mean, std = F.kid(x, y, rng=np.random.default_rng(0), subsets=3, subset_size=20)
    assert mean == pytest.approx(direct)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_prdc_on_constructed_cases_with_known_answers():
    real = np.arange(10, dtype=float)[:, None]  # a 1-D grid, spacing 1: with k=1 every real ball has radius 1
    fake = np.array([[0.5], [100.0]])
    out = F.prdc(real, fake, k=1)
    assert out["precision"] == pytest.approx(0.5)  # 0.5 is inside the balls of 0 and 1; 100 is in none
    assert out["density"] == pytest.approx((2 + 0) / 2 / 1)  # two real balls hold 0.5, none holds 100
    assert out["coverage"] == pytest.approx(0.2)  # only real 0 and 1 have a fake sample inside their ball
    assert out["recall"] == pytest.approx(1.0)  # each fake ball has radius 99.5 and holds every real point
    # A fake point exactly on a ball's boundary is outside (strict <, as the reference code).
    assert F.prdc(real, np.array([[-1.0], [50.0]]), k=1)["precision"] == 0.0


def test_prdc_identical_sets_score_one_and_disjoint_sets_zero():
    x = np.random.default_rng(6).normal(size=(40, 3))
    assert F.prdc(x, x.copy(), k=3) == pytest.approx({"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0})
    assert F.prdc(x, x + 1000.0, k=3) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    with pytest.raises(ValueError, match="more than 5 samples"):
        F.prdc_from_distances(np.zeros((5, 5)), np.zeros((9, 9)), np.zeros((5, 9)), k=5)


def test_mmd_rbf_median_heuristic_and_shift():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(100, 5)), rng.normal(size=(100, 5))
    same, shifted = F.mmd_rbf(x, y), F.mmd_rbf(x, y + 1.0)
    assert abs(same) < 0.02 < shifted
    # The heuristic bandwidth is the median pooled distance: passing it explicitly gives the same value.
    d = F.pairwise_distances
    h = F.median_bandwidth(d(x, x), d(y, y), d(x, y))
    assert F.mmd_rbf(x, y, bandwidth=h) == pytest.approx(same)
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        F.mmd_rbf(x, y, bandwidth=-1.0)


def test_bootstrap_ci_is_seeded_and_brackets_the_value():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(60, 4)), rng.normal(size=(70, 4)) + 1.0
    a = F.bootstrap_ci(F.fid, x, y, rng=np.random.default_rng(0), n_boot=40)
    b = F.bootstrap_ci(F.fid, x, y, rng=np.random.default_rng(0), n_boot=40)
    assert a == b
    assert a.low < a.value < a.high
    assert a.as_dict()["ci"] == [a.low, a.high]
    mean_diff = lambda u, v: float(u.mean() - v.mean())  # noqa: E731
    m = F.bootstrap_ci(mean_diff, x, y, rng=np.random.default_rng(1), n_boot=200)
    assert m.low < -1.0 < m.high  # the true difference of the means
    assert m.high - m.low < 0.5
    many = F.bootstrap_ci(lambda u, v: {"a": mean_diff(u, v), "b": 2 * mean_diff(u, v)}, x, y,
                          rng=np.random.default_rng(2), n_boot=30)  # fmt: skip
    assert set(many) == {"a", "b"} and many["b"].value == pytest.approx(2 * many["a"].value)
    with pytest.raises(ValueError, match="level"):
        F.bootstrap_ci(F.fid, x, y, rng=np.random.default_rng(0), level=1.5)


def test_prdc_bootstrap_keeps_the_balls_fixed():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=(60, 3)) + 0.3
    d = F.pairwise_distances
    out = F.prdc_bootstrap(d(x, x), d(y, y), d(x, y), k=5, rng=np.random.default_rng(0), n_boot=200)
    point = F.prdc(x, y, k=5)
    for name, res in out.items():
        assert res.value == pytest.approx(point[name])
        assert res.low <= res.value <= res.high


def test_mmd2_indexed_leaves_out_copies_of_one_sample():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(15, 3))
    k = lambda a, b: F.polynomial_kernel(a, b)  # noqa: E731
    ix, iy = np.arange(12), np.arange(15)
    assert F.mmd2_indexed(k(x, x), k(y, y), k(x, y), ix, iy) == pytest.approx(
        F.mmd2_unbiased(k(x, x), k(y, y), k(x, y))
    )
    # Duplicating rows must not change the within-set means' support: copies count like the diagonal.
    dup = np.concatenate([ix, ix[:4]])
    xd = x[dup]
    plain = F.mmd2_unbiased(k(xd, xd), k(y, y), k(xd, y))
    aware = F.mmd2_indexed(k(xd, xd), k(y, y), k(xd, y), dup, iy)
    assert plain > aware  # the naive estimator counts k(x, x) of the copies


def test_bootstrap_intervals_of_biased_statistics_bracket_the_estimate():
    """Resampling with replacement duplicates rows; FID (recentred) and KID/MMD (duplicate-aware) must not drift up."""
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(40, 64)), rng.normal(size=(40, 64)) + 0.3
    fid = F.bootstrap_ci(F.fid, x, y, rng=np.random.default_rng(0), n_boot=60, recentre=True)
    naive = F.bootstrap_ci(F.fid, x, y, rng=np.random.default_rng(0), n_boot=60)
    assert fid.low < fid.value < fid.high and fid.method == "recentred percentile"
    assert naive.low > naive.value  # what recentring fixes: the plain interval lies above the estimate
    kid, _ = F.kid_bootstrap(x, y, rng=np.random.default_rng(0), n_boot=60, subsets=20, subset_size=30)
    mmd, h = F.mmd_rbf_bootstrap(x, y, rng=np.random.default_rng(0), n_boot=60)
    assert kid.low < kid.value < kid.high and mmd.low < mmd.value < mmd.high and h > 0
    assert mmd.value == pytest.approx(F.mmd_rbf(x, y))


def test_frechet_distance_checks_its_inputs_like_fid():
    """It returned NaN for a NaN mean and 0.0 for a covariance that is no covariance at all."""
    mu, s = np.zeros(2), np.eye(2)
    with pytest.raises(ValueError, match="mu1 contains NaN"):
        F.frechet_distance(np.array([np.nan, 0.0]), s, mu, s)
    with pytest.raises(ValueError, match="mu2 contains NaN"):
        F.frechet_distance(mu, s, np.array([0.0, np.inf]), s)
    with pytest.raises(ValueError, match=r"mu2 must have shape \(2,\)"):
        F.frechet_distance(mu, s, np.zeros(3), s)
    with pytest.raises(ValueError, match=r"sigma2 must have shape \(2, 2\)"):
        F.frechet_distance(mu, s, mu, np.eye(3))
    with pytest.raises(ValueError, match="sigma1 contains NaN"):
        F.frechet_distance(mu, np.array([[1.0, np.nan], [np.nan, 1.0]]), mu, s)
    with pytest.raises(ValueError, match="sigma1 must be positive semi-definite.*-1"):
        F.frechet_distance(mu, np.diag([-1.0, 1.0]), mu, s)
    with pytest.raises(ValueError, match="sigma2 must be positive semi-definite"):
        F.frechet_distance(mu, s, mu, np.array([[1.0, 2.0], [2.0, 1.0]]))  # eigenvalues 3 and -1
    with pytest.raises(ValueError, match="sigma2 must be a symmetric"):
        F.frechet_distance(mu, s, mu, np.array([[1.0, 0.5], [0.0, 1.0]]))
    # Real covariances pass, singular ones (fewer samples than dimensions) and their round-off included.
    x = np.random.default_rng(3).normal(size=(10, 40)) * 1e3
    mu_x, s_x = F.gaussian_stats(x)
    assert np.linalg.eigvalsh(s_x)[0] < 0  # round-off makes the singular covariance slightly indefinite
    assert F.frechet_distance(mu_x, s_x, mu_x, s_x) == pytest.approx(0.0, abs=1e-6 * np.trace(s_x))


def _kid_by_subset(x, y, idx_x, idx_y):
    """The textbook estimate, one subset at a time, with full kernels."""
    k = F.polynomial_kernel
    pairs = zip(idx_x, idx_y, strict=True)
    return np.array([F.mmd2_unbiased(k(x[a], x[a]), k(y[b], y[b]), k(x[a], y[b])) for a, b in pairs])


@pytest.mark.parametrize(("subsets", "m"), [(3, 10), (40, 60)], ids=["per-subset", "blocked"])
def test_kid_subset_values_by_blocks_equal_the_full_kernels(subsets, m):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(80, 7)), rng.normal(size=(70, 7)) + 0.3
    idx_x = np.stack([rng.choice(80, m, replace=False) for _ in range(subsets)])
    idx_y = np.stack([rng.choice(70, m, replace=False) for _ in range(subsets)])
    expected = _kid_by_subset(x, y, idx_x, idx_y)
    for block_bytes in (8 * 70, 8 * 70 * 13, F.KID_BLOCK_BYTES):  # one row per block, uneven blocks, one block
        got = F.kid_subset_values(x, y, idx_x, idx_y, block_bytes=block_bytes)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="distinct"):
        F.kid_subset_values(x, y, np.zeros((1, 3), int), idx_y[:1, :3])
    with pytest.raises(ValueError, match="idx_y must index rows 0..69"):
        F.kid_subset_values(x, y, idx_x[:1, :3], np.array([[0, 1, 70]]))


def test_kid_memory_stays_flat_while_the_pooled_kernel_would_not():
    """The pooled kernel of 3000 + 3000 samples is 288 MB (and was ~3x that with its temporaries)."""
    import tracemalloc

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(3000, 32)), rng.normal(size=(3000, 32)) + 0.1
    pooled = (len(x) + len(y)) ** 2 * 8
    tracemalloc.start()
    try:
        mean, _ = F.kid(x, y, rng=np.random.default_rng(0), subsets=20, subset_size=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < F.KID_BLOCK_BYTES + 8 * 2**20 < pooled / 5, f"peak {peak / 2**20:.1f} MB"
    again = F.kid(x, y, rng=np.random.default_rng(0), subsets=20, subset_size=1000)[0]
    assert mean == again and mean > 0
