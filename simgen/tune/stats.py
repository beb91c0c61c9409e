"""Confidence intervals for tuning results: a bootstrap over generation seeds and real images at once.

A score such as TSTR varies with the synthetic dataset (its generation seed) and with the real images it
is tested on. Both are resampled: each bootstrap draw takes seeds with replacement and real images with
replacement (crops of an image stay together, since they are not independent), and recomputes the score.
A difference between two specs (an ablation, tuned vs original) is *paired*: both sides use the same
seeds and the same real images in every draw, so what they share cancels.

KID comes from :mod:`simgen.validators.functional`'s kernel and unbiased MMD² on the full sets (KID
with one subset holding every sample); resampled real images are weighted by their count, and pairs of
copies of one crop are left out as :func:`~simgen.validators.functional.mmd2_indexed` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simgen.validators.functional import BootstrapResult, polynomial_kernel

__all__ = ["KidTerms", "cluster_mean_ci", "kid_ci", "kid_terms"]

METHOD = "percentile; generation seeds and real images resampled"


def _draws(
    rng: np.random.Generator, n_seeds: int, clusters: np.ndarray, n_boot: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_boot`` pairs of (seed weights, per-crop weights) from resampling seeds and images."""
    uniq, inverse = np.unique(clusters, return_inverse=True)
    out = []
    for _ in range(n_boot):
        ws = np.bincount(rng.integers(0, n_seeds, n_seeds), minlength=n_seeds).astype(float)
        wg = np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq)).astype(float)
        out.append((ws, wg[inverse]))
    return out


def _interval(full: float, boots: np.ndarray, level: float, n_boot: int) -> BootstrapResult:
    finite = boots[np.isfinite(boots)]
    if finite.size == 0:
        return BootstrapResult(full, float("nan"), float("nan"), level, n_boot, "none: every resample degenerate")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return BootstrapResult(float(full), float(low), float(high), level, n_boot, METHOD)


def cluster_mean_ci(
    values: np.ndarray, clusters: np.ndarray, *, rng: np.random.Generator, n_boot: int = 1000, level: float = 0.95
) -> BootstrapResult:
    """Mean of ``values`` (seeds x crops) with a bootstrap interval over seeds and image clusters.

    Args:
        values: Per seed (rows) and real crop (columns), e.g. 1 for a right classification; or a paired
            difference of two such matrices.
        clusters: The image of each crop.
        rng: Generator of the resamples.
        n_boot: Resamples.
        level: Confidence level.
    """
    values = np.atleast_2d(np.asarray(values, float))
    full = float(values.mean())
    boots = np.empty(n_boot)
    for b, (ws, wc) in enumerate(_draws(rng, values.shape[0], np.asarray(clusters), n_boot)):
        denom = ws.sum() * wc.sum()
        boots[b] = float(ws @ values @ wc) / denom if denom > 0 else np.nan
    return _interval(full, boots, level, n_boot)


class KidTerms:
    """The pieces of the unbiased polynomial MMD² between one synthetic set and a reweighted real set.

    Args:
        syn: Synthetic features (n, d).
        real_kernel: The real-real kernel (m, m), shared by every synthetic set.
        real: Real features (m, d).
    """

    def __init__(self, syn: np.ndarray, real_kernel: np.ndarray, real: np.ndarray) -> None:
        syn = np.asarray(syn, np.float64)
        kxx = polynomial_kernel(syn, syn)
        n = len(syn)
        self.syn_term = float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)))
        self.cross_means = polynomial_kernel(syn, np.asarray(real, np.float64)).mean(axis=0)  # (m,)
        self.real_kernel = real_kernel

    def real_term(self, w: np.ndarray) -> float:
        """Mean kernel over ordered pairs of distinct real crops, each crop counted ``w`` times."""
        k = self.real_kernel
        pairs = w.sum() ** 2 - (w**2).sum()
        return float((w @ k @ w - (w**2) @ np.diag(k)) / pairs) if pairs > 0 else float("nan")

    def value(self, w: np.ndarray, real_term: float) -> float:
        """The MMD² for real-crop weights ``w`` (``real_term`` = :meth:`real_term` of ``w``)."""
        return self.syn_term + real_term - 2.0 * float(self.cross_means @ w) / float(w.sum())


def kid_terms(syn_sets: Sequence[np.ndarray], real: np.ndarray) -> list[KidTerms]:
    """One :class:`KidTerms` per synthetic set (a seed) against the same real features."""
    real = np.asarray(real, np.float64)
    kernel = polynomial_kernel(real, real)
    return [KidTerms(s, kernel, real) for s in syn_sets]


def kid_ci(
    terms: Sequence[KidTerms],
    clusters: np.ndarray,
    *,
    baseline: Sequence[KidTerms] | None = None,
    rng: np.random.Generator,
    n_boot: int = 1000,
    level: float = 0.95,
) -> BootstrapResult:
    """KID averaged over seeds (or its paired difference from ``baseline``), with a bootstrap interval.

    Args:
        terms: Per seed, the synthetic set's :class:`KidTerms`.
        clusters: The image of each real crop.
        baseline: Per seed (the same seeds), the other spec's terms: the result is ``KID - KID(baseline)``.
        rng: Generator of the resamples.
        n_boot: Resamples.
        level: Confidence level.
    """
    if baseline is not None and len(baseline) != len(terms):
        raise ValueError(f"baseline needs one set per seed: {len(terms)} vs {len(baseline)}")
    m = len(np.asarray(clusters))

    def stat(ws: np.ndarray, w: np.ndarray) -> float:
        real_term = terms[0].real_term(w) if baseline is None else 0.0  # the real term cancels in a difference
        per_seed = np.array(
            [
                t.value(w, real_term) - (baseline[s].value(w, real_term) if baseline is not None else 0.0)
                for s, t in enumerate(terms)
            ]
        )
        return float(ws @ per_seed / ws.sum())

    full = stat(np.ones(len(terms)), np.ones(m))
    boots = np.array([stat(ws, w) for ws, w in _draws(rng, len(terms), np.asarray(clusters), n_boot)])
    return _interval(full, boots, level, n_boot)
