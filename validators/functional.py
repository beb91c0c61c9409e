"""The maths of the validators as pure functions on feature matrices (numpy in, floats out).

Every function here works on features: rows are samples, columns are feature dimensions. Image
features (Inception pool3), encoded tabular rows and sentence embeddings all go through the same
functions. Nothing here draws from a global random state: whatever is random takes a
``numpy.random.Generator`` argument.

References:
    Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
    equilibrium" (FID). Binkowski et al. 2018, "Demystifying MMD GANs" (KID). Naeem et al. 2020,
    "Reliable fidelity and diversity metrics for generative models" (precision, recall, density,
    coverage). Gretton et al. 2012, "A kernel two-sample test" (MMD).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BootstrapResult",
    "bootstrap_ci",
    "fid",
    "frechet_distance",
    "gaussian_stats",
    "kid",
    "kid_bootstrap",
    "kid_from_kernel",
    "kid_subset_values",
    "median_bandwidth",
    "mmd2_indexed",
    "mmd2_unbiased",
    "mmd_rbf",
    "mmd_rbf_bootstrap",
    "mmd_rbf_from_distances",
    "pairwise_distances",
    "polynomial_kernel",
    "prdc",
    "prdc_bootstrap",
    "prdc_from_distances",
]


def _as_features(x: np.ndarray, name: str, *, min_rows: int = 2) -> np.ndarray:
    """Check that ``x`` is a finite 2-D matrix with at least ``min_rows`` rows; return it as float64."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (samples, features) array, got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _feature_pair(
    x: np.ndarray, y: np.ndarray, names: tuple[str, str] = ("x", "y"), *, min_rows: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Both sets as checked 2-D float arrays of the same width."""
    x, y = _as_features(x, names[0], min_rows=min_rows), _as_features(y, names[1], min_rows=min_rows)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"both feature sets need the same width, got {x.shape[1]} and {y.shape[1]}")
    return x, y


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of the rows of ``x``.

    Args:
        x: Features, shape (n, d), n >= 2.

    Returns:
        ``(mu, sigma)`` with shapes (d,) and (d, d).
    """
    x = _as_features(x, "x")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped)."""
    w, v = np.linalg.eigh((a + a.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


#: Relative tolerance of the covariance checks of :func:`frechet_distance`: asymmetry up to this fraction of
#: the largest entry, and eigenvalues down to minus this fraction of the largest variance, are round-off.
COVARIANCE_RTOL = 1e-6


def _check_mean(mu: np.ndarray, name: str, d: int | None = None) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(mu, np.float64))
    if arr.ndim != 1 or (d is not None and arr.shape != (d,)):
        like = f"({d},) like mu1" if d is not None else "(d,)"
        raise ValueError(f"{name} must have shape {like}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_covariance(sigma: np.ndarray, name: str, d: int) -> np.ndarray:
    """A finite, symmetric, positive semi-definite (d, d) matrix, each within :data:`COVARIANCE_RTOL`."""
    s = np.atleast_2d(np.asarray(sigma, np.float64))
    if s.shape != (d, d):
        raise ValueError(f"{name} must have shape ({d}, {d}), got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    scale = float(np.abs(s).max()) if s.size else 0.0
    asym = float(np.abs(s - s.T).max()) if s.size else 0.0
    if asym > COVARIANCE_RTOL * scale:
        raise ValueError(f"{name} must be a symmetric covariance matrix, got |{name} - {name}ᵀ| up to {asym:.3g}")
    # PSD within tolerance <=> s + tol*I has a Cholesky factor; an order of magnitude cheaper than eigenvalues.
    tol = COVARIANCE_RTOL * max(float(np.diag(s).max()), 0.0) + np.finfo(np.float64).tiny
    try:
        np.linalg.cholesky((s + s.T) / 2.0 + tol * np.eye(d))
    except np.linalg.LinAlgError:
        low = float(np.linalg.eigvalsh((s + s.T) / 2.0)[0])
        raise ValueError(
            f"{name} must be positive semi-definite (a covariance matrix), got an eigenvalue of {low:.3g}"
        ) from None
    return s


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein squared) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1^½ sigma2 sigma1^½)^½)``. The trace term
    is computed from the eigenvalues of the symmetric matrix ``sigma1^½ sigma2 sigma1^½``, which has
    the same spectrum as ``sigma1 sigma2`` but is symmetric PSD, so no complex parts appear (the
    ``scipy.linalg.sqrtm`` route needs an epsilon and discards imaginary residue). Singular
    covariances (fewer samples than dimensions) are handled exactly.

    Args:
        mu1: Mean of the first Gaussian, shape (d,).
        sigma1: Covariance of the first Gaussian, shape (d, d).
        mu2: Mean of the second Gaussian, shape (d,).
        sigma2: Covariance of the second Gaussian, shape (d, d).

    Returns:
        The distance, clipped at 0 against round-off.

    Raises:
        ValueError: Like :func:`fid`, naming the argument: a non-finite value, a wrong shape, or a covariance
            that is not symmetric positive semi-definite (beyond a relative tolerance of
            :data:`COVARIANCE_RTOL`, which covers the round-off of ``numpy.cov``).
    """
    mu1 = _check_mean(mu1, "mu1")
    d = mu1.shape[0]
    mu2 = _check_mean(mu2, "mu2", d)
    s1, s2 = _check_covariance(sigma1, "sigma1", d), _check_covariance(sigma2, "sigma2", d)
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(value, 0.0)


def fid(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception's).

    When there are fewer samples than dimensions (the common case with 2048-d features), the trace
    term is computed in sample space: with centred data ``A`` (n1, d) and ``B`` (n2, d),
    ``tr((S1 S2)^½)`` is the nuclear norm of ``A Bᵀ / sqrt((n1-1)(n2-1))``. That is exact, cheap
    (an n1 x n2 SVD instead of two d x d eigendecompositions) and stable.

    Args:
        x: Features of the first set, shape (n1, d), n1 >= 2.
        y: Features of the second set, shape (n2, d), n2 >= 2.

    Returns:
        The Fréchet distance, >= 0.
    """
    x, y = _feature_pair(x, y)
    n1, n2, d = x.shape[0], y.shape[0], x.shape[1]
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    if min(n1, n2) >= d:
        return frechet_distance(mu1, np.cov(x, rowvar=False), mu2, np.cov(y, rowvar=False))
    a, b = x - mu1, y - mu2
    tr1 = float((a * a).sum()) / (n1 - 1)
    tr2 = float((b * b).sum()) / (n2 - 1)
    cross = (a @ b.T) / np.sqrt((n1 - 1) * (n2 - 1))
    tr_covmean = float(np.linalg.svd(cross, compute_uv=False).sum())
    diff = mu1 - mu2
    return max(float(diff @ diff + tr1 + tr2 - 2.0 * tr_covmean), 0.0)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, *, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:  # fmt: skip
    """``(gamma <x, y> + coef0) ** degree``, with ``gamma = 1 / d`` by default (KID's kernel).

    Computed in place in the one (n1, n2) result: no temporaries of that size.
    """
    g = 1.0 / x.shape[1] if gamma is None else gamma
    k = x @ y.T
    k *= g
    k += coef0
    return np.power(k, degree, out=k)


def _mmd2_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """Unbiased MMD² estimate from the three kernel matrices (diagonals of kxx and kyy excluded)."""
    m, n = kxx.shape[0], kyy.shape[0]
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def mmd2_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """Unbiased MMD² from the kernel matrices within and between two samples (diagonals excluded)."""
    m, n = kxx.shape[0], kyy.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    return _mmd2_unbiased(kxx, kyy, kxy)


def mmd2_indexed(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray, idx_x: np.ndarray, idx_y: np.ndarray) -> float:
    """Unbiased MMD² when rows may repeat, as in a bootstrap resample.

    ``idx_x`` and ``idx_y`` name the original sample behind each row. Pairs of copies of one sample
    are left out of the within-set means, exactly like the diagonal of the plain estimator, so
    duplicates do not inflate the within-set similarity (without this, a bootstrap of MMD or KID is
    biased upward). With distinct rows it equals :func:`mmd2_unbiased`.
    """
    idx_x, idx_y = np.asarray(idx_x), np.asarray(idx_y)
    within = []
    for k, idx in ((kxx, idx_x), (kyy, idx_y)):
        other = idx[:, None] != idx[None, :]
        n_pairs = int(other.sum())
        if n_pairs == 0:
            raise ValueError("the unbiased MMD needs at least 2 distinct samples per set")
        within.append(float(np.where(other, k, 0.0).sum()) / n_pairs)
    return within[0] + within[1] - 2.0 * float(kxy.mean())


def _check_rng(rng: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def kid_from_kernel(kernel: np.ndarray, idx_x: np.ndarray, idx_y: np.ndarray, *, rng: np.random.Generator,
                    subsets: int = 100, subset_size: int = 1000) -> tuple[float, float]:  # fmt: skip
    """KID from a precomputed kernel matrix over pooled samples.

    Repeated rows (a bootstrap resample) are handled as in :func:`mmd2_indexed`.

    Args:
        kernel: Kernel values between all pooled samples, shape (N, N).
        idx_x: Rows of ``kernel`` that form the first set (repeats allowed, as in a bootstrap).
        idx_y: Rows that form the second set.
        rng: Generator of the subset draws.
        subsets: Number of subsets.
        subset_size: Rows per subset (capped at the smaller set).

    Returns:
        ``(mean, std)`` of the subset estimates.
    """
    _check_rng(rng)
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}")
    idx_x, idx_y = np.asarray(idx_x), np.asarray(idx_y)
    m = min(subset_size, len(idx_x), len(idx_y))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(idx_x)} and {len(idx_y)}")
    values = np.empty(subsets)
    for s in range(subsets):
        xs = idx_x[rng.choice(len(idx_x), m, replace=False)]
        ys = idx_y[rng.choice(len(idx_y), m, replace=False)]
        try:
            values[s] = mmd2_indexed(kernel[np.ix_(xs, xs)], kernel[np.ix_(ys, ys)], kernel[np.ix_(xs, ys)], xs, ys)
        except ValueError:  # only copies of one sample on a side (possible in a tiny bootstrap resample)
            values[s] = np.nan
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("every KID subset held copies of a single sample on one side")
    return float(values.mean()), float(values.std())


#: Bytes of kernel values :func:`kid` holds at once (one block of rows of the pooled kernel).
KID_BLOCK_BYTES = 32 * 2**20


def kid_subset_values(x: np.ndarray, y: np.ndarray, idx_x: np.ndarray, idx_y: np.ndarray, *, degree: int = 3,
                      gamma: float | None = None, coef0: float = 1.0,
                      block_bytes: int = KID_BLOCK_BYTES) -> np.ndarray:  # fmt: skip
    """The unbiased polynomial MMD² of given subsets, without ever holding the pooled kernel.

    Subset ``s`` is rows ``idx_x[s]`` of ``x`` against rows ``idx_y[s]`` of ``y``, each drawn without
    replacement. Its three kernel sums are quadratic forms of the subsets' 0/1 membership vectors, so
    each block of kernel rows is computed once and serves every subset at once (``K_block @ M``): the
    memory is one block (``block_bytes``) plus the (n, subsets) memberships, whatever the sizes. When the
    subsets together cover fewer kernel entries than the pooled kernel (few, small subsets of large
    sets), each subset's three m x m kernels are computed instead, as torchmetrics does. Both give the
    same values up to round-off (tested against torchmetrics' ``poly_mmd``).

    Args:
        x: Features of the first set, shape (n1, d).
        y: Features of the second set, shape (n2, d).
        idx_x: (subsets, m) row indices into ``x``, distinct within a subset.
        idx_y: (subsets, m) row indices into ``y``, distinct within a subset.
        degree: Polynomial degree.
        gamma: Kernel scale, ``1 / d`` when None.
        coef0: Kernel offset.
        block_bytes: Bytes of kernel values held at once.

    Returns:
        (subsets,) MMD² estimates.

    Raises:
        ValueError: Index arrays of other shapes, indices out of range or repeated within a subset.
    """
    idx_x, idx_y = np.asarray(idx_x, dtype=np.intp), np.asarray(idx_y, dtype=np.intp)
    if idx_x.ndim != 2 or idx_x.shape != idx_y.shape or idx_x.shape[1] < 2:
        raise ValueError(f"idx_x and idx_y must both be (subsets, m >= 2), got {idx_x.shape} and {idx_y.shape}")
    n_sub, m = idx_x.shape
    kw = {"degree": degree, "gamma": 1.0 / x.shape[1] if gamma is None else gamma, "coef0": coef0}
    memberships = []
    for name, idx, n in (("idx_x", idx_x, len(x)), ("idx_y", idx_y, len(y))):
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"{name} must index rows 0..{n - 1}, got {idx.min()}..{idx.max()}")
        member = np.zeros((n, n_sub))
        member[idx, np.arange(n_sub)[:, None]] = 1.0
        if (member.sum(axis=0) != m).any():
            raise ValueError(f"{name}: the rows of a subset must be distinct (drawn without replacement)")
        memberships.append(member)
    mx, my = memberships
    n1, n2 = len(x), len(y)
    if 3 * n_sub * m * m < n1 * (n1 + n2) + n2 * n2:  # fewer kernel entries subset by subset
        values = np.empty(n_sub)
        for s in range(n_sub):
            xs, ys = x[idx_x[s]], y[idx_y[s]]
            kxx, kyy = polynomial_kernel(xs, xs, **kw), polynomial_kernel(ys, ys, **kw)
            values[s] = _mmd2_unbiased(kxx, kyy, polynomial_kernel(xs, ys, **kw))
        return values
    # Rows no subset uses have zero memberships: they cost work but no memory (x and y are never copied).
    sxx, tx = _quadratic_forms(x, x, mx, mx, kw, block_bytes, diagonal=True)
    syy, ty = _quadratic_forms(y, y, my, my, kw, block_bytes, diagonal=True)
    sxy, _ = _quadratic_forms(x, y, mx, my, kw, block_bytes, diagonal=False)
    return (sxx - tx + syy - ty) / (m * (m - 1)) - 2.0 * sxy / (m * m)


def _quadratic_forms(a: np.ndarray, b: np.ndarray, ma: np.ndarray, mb: np.ndarray, kw: dict[str, Any],
                     block_bytes: int, *, diagonal: bool) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``diag(ma.T K(a, b) mb)`` by blocks of rows of ``K``, and (``diagonal``: a is b) ``ma.T diag(K)``."""
    rows = max(1, int(block_bytes) // (8 * max(len(b), 1)))
    forms, trace = np.zeros(ma.shape[1]), np.zeros(ma.shape[1])
    for start in range(0, len(a), rows):
        stop = min(start + rows, len(a))
        block = polynomial_kernel(a[start:stop], b, **kw)
        forms += np.einsum("is,is->s", ma[start:stop], block @ mb)
        if diagonal:  # the diagonal entries of this very block, so that they cancel exactly
            trace += ma[start:stop].T @ block[np.arange(stop - start), np.arange(start, stop)]
        del block  # else the next block is computed while this one is still alive: twice the memory
    return forms, trace


def kid(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator, subsets: int = 100, subset_size: int = 1000,
        degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> tuple[float, float]:  # fmt: skip
    """Kernel Inception Distance: the unbiased polynomial-kernel MMD², averaged over random subsets.

    Each subset draws ``min(subset_size, n_x, n_y)`` rows of each set without replacement from
    ``rng``, so the same generator state gives the same value. The kernel is computed by blocks
    (see :func:`kid_subset_values`): memory stays at a few tens of MB whatever the set sizes.

    Args:
        x: Features of the first set, shape (n1, d).
        y: Features of the second set, shape (n2, d).
        rng: The generator the subsets are drawn from (required: there is no hidden seed).
        subsets: How many subsets to average.
        subset_size: Rows per subset (capped at the smaller set's size).
        degree: Polynomial degree.
        gamma: Kernel scale, ``1 / d`` when None.
        coef0: Kernel offset.

    Returns:
        ``(mean, std)`` of the subset estimates.
    """
    _check_rng(rng)
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}")
    x, y = _feature_pair(x, y)
    m = min(subset_size, len(x), len(y))
    draws = [(rng.choice(len(x), m, replace=False), rng.choice(len(y), m, replace=False)) for _ in range(subsets)]
    idx_x, idx_y = np.stack([a for a, _ in draws]), np.stack([b for _, b in draws])
    values = kid_subset_values(x, y, idx_x, idx_y, degree=degree, gamma=gamma, coef0=coef0)
    return float(values.mean()), float(values.std())


def pairwise_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distances between every row of ``x`` and every row of ``y``, shape (n1, n2)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.sqrt(np.clip(sq, 0.0, None))


def mmd_rbf(x: np.ndarray, y: np.ndarray, *, bandwidth: float | None = None) -> float:
    """Unbiased MMD² with a Gaussian (RBF) kernel ``exp(-||a - b||² / (2 h²))``.

    Args:
        x: Features of the first set, shape (n1, d), n1 >= 2.
        y: Features of the second set, shape (n2, d), n2 >= 2.
        bandwidth: The kernel width ``h``. None uses the median heuristic: the median of the
            pairwise distances of the pooled samples (off the diagonal).

    Returns:
        The MMD² estimate (it can be slightly negative when both sets come from one distribution).
    """
    x, y = _feature_pair(x, y)
    dxx, dyy, dxy = pairwise_distances(x, x), pairwise_distances(y, y), pairwise_distances(x, y)
    if bandwidth is None:
        bandwidth = median_bandwidth(dxx, dyy, dxy)
    return mmd_rbf_from_distances(dxx, dyy, dxy, bandwidth=bandwidth)


def median_bandwidth(dxx: np.ndarray, dyy: np.ndarray, dxy: np.ndarray) -> float:
    """The median heuristic: the median pairwise distance of the pooled samples (0s skipped if all are 0)."""
    pooled = np.concatenate([dxx[np.triu_indices_from(dxx, 1)], dyy[np.triu_indices_from(dyy, 1)], dxy.ravel()])
    bandwidth = float(np.median(pooled))
    if bandwidth <= 0.0:
        positive = pooled[pooled > 0]
        bandwidth = float(np.median(positive)) if positive.size else 1.0
    return bandwidth


def mmd_rbf_from_distances(dxx: np.ndarray, dyy: np.ndarray, dxy: np.ndarray, *, bandwidth: float) -> float:
    """:func:`mmd_rbf` from precomputed distance matrices and a bandwidth."""
    if not bandwidth > 0.0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    scale = 2.0 * bandwidth * bandwidth
    return mmd2_unbiased(np.exp(-(dxx**2) / scale), np.exp(-(dyy**2) / scale), np.exp(-(dxy**2) / scale))


def _kth_neighbour_distance(d: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row's k-th nearest neighbour in a square self-distance matrix (self excluded)."""
    # Column 0 of the sorted row is the point itself (distance 0), so the k-th neighbour is column k.
    return np.partition(d, k, axis=1)[:, k]


def prdc(real: np.ndarray, fake: np.ndarray, *, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (Naeem et al. 2020).

    Each sample gets a ball whose radius is the distance to its k-th nearest neighbour in its own set.

    - precision: the fraction of fake samples inside at least one real ball;
    - recall: the fraction of real samples inside at least one fake ball;
    - density: how many real balls contain each fake sample, averaged and divided by ``k``
      (1 on matched distributions; it can exceed 1);
    - coverage: the fraction of real balls that contain at least one fake sample.

    A sample is inside a ball when its distance is strictly smaller than the radius, as in the
    authors' reference code.

    Args:
        real: Real features, shape (n_real, d), n_real > k.
        fake: Synthetic features, shape (n_fake, d), n_fake > k.
        k: The neighbourhood size.

    Returns:
        ``{"precision", "recall", "density", "coverage"}``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    real, fake = _feature_pair(real, fake, ("real", "fake"), min_rows=k + 1)
    return prdc_from_distances(pairwise_distances(real, real), pairwise_distances(fake, fake),
                               pairwise_distances(real, fake), k=k)  # fmt: skip


def prdc_from_distances(d_rr: np.ndarray, d_ff: np.ndarray, d_rf: np.ndarray, *, k: int = 5) -> dict[str, float]:
    """:func:`prdc` from precomputed distance matrices (real-real, fake-fake, real-fake).

    The diagonal of ``d_rr`` and ``d_ff`` must be each sample's distance to itself (0).
    """
    _check_prdc_sizes(d_rr.shape[0], d_ff.shape[0], k)
    return {name: float(v.mean()) for name, v in _prdc_terms(d_rr, d_ff, d_rf, k).items()}


def _check_prdc_sizes(n_real: int, n_fake: int, k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n_real <= k or n_fake <= k:
        raise ValueError(f"PRDC with k={k} needs more than {k} samples per set, got {n_real} and {n_fake}")


def _prdc_terms(d_rr: np.ndarray, d_ff: np.ndarray, d_rf: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-sample terms whose means are the four PRDC values (fake-indexed: precision, density)."""
    real_radii = _kth_neighbour_distance(d_rr, k)
    fake_radii = _kth_neighbour_distance(d_ff, k)
    inside_real = d_rf < real_radii[:, None]  # (n_real, n_fake)
    return {
        "precision": inside_real.any(axis=0).astype(float),
        "recall": (d_rf < fake_radii[None, :]).any(axis=1).astype(float),
        "density": inside_real.sum(axis=0) / k,
        "coverage": (d_rf.min(axis=1) < real_radii).astype(float),
    }


def prdc_bootstrap(d_rr: np.ndarray, d_ff: np.ndarray, d_rf: np.ndarray, *, k: int = 5, rng: np.random.Generator,
                   n_boot: int = 100, level: float = 0.95) -> dict[str, BootstrapResult]:  # fmt: skip
    """PRDC with percentile bootstrap intervals, the k-NN balls held fixed.

    Resampling points with replacement and recomputing k-NN radii puts duplicates at distance 0,
    which shrinks the balls and biases every PRDC value down (coverage most). So the balls are
    estimated once from all samples, and the bootstrap resamples the samples the four averages
    run over (fake samples for precision and density, real ones for recall and coverage). The
    interval covers the evaluation-sample variability, not the variability of the balls.

    Args:
        d_rr: Real-real distances (n_real, n_real).
        d_ff: Fake-fake distances (n_fake, n_fake).
        d_rf: Real-fake distances (n_real, n_fake).
        k: Neighbourhood size.
        rng: Generator of the resamples.
        n_boot: Number of resamples.
        level: Confidence level in (0, 1).

    Returns:
        ``{"precision", "recall", "density", "coverage"}`` -> :class:`BootstrapResult`.
    """
    _check_rng(rng)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    _check_prdc_sizes(d_rr.shape[0], d_ff.shape[0], k)
    terms = _prdc_terms(d_rr, d_ff, d_rf, k)
    alpha = (1.0 - level) / 2.0
    out = {}
    for name, v in terms.items():
        boots = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
        low, high = np.quantile(boots, [alpha, 1.0 - alpha])
        out[name] = BootstrapResult(float(v.mean()), float(low), float(high), level, n_boot,
                                    "percentile, k-NN balls fixed")  # fmt: skip
    return out


@dataclass(frozen=True)
class BootstrapResult:
    """A statistic on the full sets and its percentile bootstrap confidence interval."""

    value: float
    low: float
    high: float
    level: float
    n_boot: int
    method: str = "percentile"

    def as_dict(self) -> dict[str, float | int | str | list[float]]:
        """The JSON form: ``{"value", "ci": [low, high], "level", "n_boot", "ci_method"}``."""
        return {"value": self.value, "ci": [self.low, self.high], "level": self.level, "n_boot": self.n_boot,
                "ci_method": self.method}  # fmt: skip


def bootstrap_ci(statistic: Callable[[np.ndarray, np.ndarray], Any], x: np.ndarray, y: np.ndarray, *,
                 rng: np.random.Generator, n_boot: int = 100, level: float = 0.95,
                 recentre: bool = False) -> Any:  # fmt: skip
    """Percentile bootstrap confidence interval of a two-sample statistic.

    Both sets are resampled with replacement, independently, ``n_boot`` times. The interval says
    how much the statistic would move with another draw of the same sizes from the same two
    distributions; it does not correct the statistic's own bias (FID's grows as n shrinks).

    Args:
        statistic: ``f(x, y)`` returning a float, or a ``{name: float}`` dict (e.g. :func:`prdc`),
            in which case every entry gets its interval from the same resamples.
        x: First set, shape (n1, ...).
        y: Second set, shape (n2, ...).
        rng: The generator the resamples are drawn from.
        n_boot: Number of resamples.
        level: Confidence level in (0, 1).
        recentre: Shift the bootstrap distribution so that its median is the full-set value (the
            spread is kept). For statistics that a resample with duplicates biases, like FID:
            duplicates act as a smaller sample, and FID grows as samples shrink, so the plain
            percentile interval can lie entirely above the estimate.

    Returns:
        A :class:`BootstrapResult`, or ``{name: BootstrapResult}`` for a dict statistic.
    """
    _check_rng(rng)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    x, y = np.asarray(x), np.asarray(y)
    full = statistic(x, y)
    single = not isinstance(full, dict)
    values: dict[str, float] = {"value": float(full)} if single else {k: float(v) for k, v in full.items()}
    stats = {k: np.empty(n_boot) for k in values}
    for b in range(n_boot):
        xb, yb = x[rng.integers(0, len(x), len(x))], y[rng.integers(0, len(y), len(y))]
        try:
            out = statistic(xb, yb)
        except ValueError:  # a degenerate resample (e.g. one distinct sample): it gets no vote
            out = np.nan if single else dict.fromkeys(values, np.nan)
        for k in values:
            stats[k][b] = float(out) if single else float(out[k])
    alpha = (1.0 - level) / 2.0
    results = {}
    for k, v in values.items():
        finite = stats[k][np.isfinite(stats[k])]
        if finite.size == 0:
            results[k] = BootstrapResult(v, math.nan, math.nan, level, n_boot, "none: every resample degenerate")
            continue
        boots = finite - (np.median(finite) - v) if recentre else finite
        low, high = np.quantile(boots, [alpha, 1.0 - alpha])
        results[k] = BootstrapResult(v, float(low), float(high), level, n_boot,
                                     "recentred percentile" if recentre else "percentile")  # fmt: skip
    return results["value"] if single else results


def kid_bootstrap(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator, n_boot: int = 100, level: float = 0.95,
                  subsets: int = 100, subset_size: int = 1000,
                  boot_subsets: int = 20) -> tuple[BootstrapResult, float]:  # fmt: skip
    """KID with a percentile bootstrap interval, from one pooled kernel matrix.

    The value is the mean over ``subsets`` subsets; each resample uses ``boot_subsets`` subsets
    (fewer, for speed) drawn with the same seed. Repeated rows are handled by :func:`mmd2_indexed`,
    so the interval is not biased upward by duplicates.

    Args:
        x: First set (n1, d).
        y: Second set (n2, d).
        rng: Generator of the subset seed and the resamples.
        n_boot: Number of resamples.
        level: Confidence level.
        subsets: Subsets for the reported value.
        subset_size: Rows per subset.
        boot_subsets: Subsets per resample.

    Returns:
        ``(result, std of the subset estimates)``.
    """
    _check_rng(rng)
    x, y = _feature_pair(x, y)
    n1 = len(x)
    z = np.concatenate([x, y])
    kernel = polynomial_kernel(z, z)
    idx_x, idx_y = np.arange(n1), np.arange(n1, len(z))
    kid_seed = int(rng.integers(2**63))
    mean, std = kid_from_kernel(kernel, idx_x, idx_y, rng=np.random.default_rng(kid_seed), subsets=subsets,
                                subset_size=subset_size)  # fmt: skip

    def stat(i: np.ndarray, j: np.ndarray) -> float:
        return kid_from_kernel(kernel, i, j, rng=np.random.default_rng(kid_seed), subsets=boot_subsets,
                               subset_size=subset_size)[0]  # fmt: skip

    boot = bootstrap_ci(stat, idx_x, idx_y, rng=rng, n_boot=n_boot, level=level)
    return BootstrapResult(mean, boot.low, boot.high, level, n_boot, boot.method), std


def mmd_rbf_bootstrap(x: np.ndarray, y: np.ndarray, *, rng: np.random.Generator, n_boot: int = 100,
                      level: float = 0.95,
                      bandwidth: float | None = None) -> tuple[BootstrapResult, float]:  # fmt: skip
    """RBF MMD² with a percentile bootstrap interval (the bandwidth fixed from the full sets).

    Returns:
        ``(result, bandwidth)``.
    """
    _check_rng(rng)
    x, y = _feature_pair(x, y)
    n1 = len(x)
    z = np.concatenate([x, y])
    dist = pairwise_distances(z, z)
    if bandwidth is None:
        bandwidth = median_bandwidth(dist[:n1, :n1], dist[n1:, n1:], dist[:n1, n1:])
    if not bandwidth > 0.0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    scale = 2.0 * bandwidth * bandwidth

    def stat(i: np.ndarray, j: np.ndarray) -> float:
        k = lambda a, b: np.exp(-(dist[np.ix_(a, b)] ** 2) / scale)  # noqa: E731
        return mmd2_indexed(k(i, i), k(j, j), k(i, j), i, j)

    return bootstrap_ci(stat, np.arange(n1), np.arange(n1, len(z)), rng=rng, n_boot=n_boot, level=level), bandwidth
