"""Privacy: does synthetic data copy, or sit suspiciously close to, the real records it was made from?

Everything here works on feature matrices, one row per record, so tables (range-normalised, Gower-style
encodings from :func:`simgen.validators.tabular.gower_encode`) and images (Inception or EfficientNet features)
share one implementation. Three real-or-synthetic sets are needed:

- ``train``: the real records the generator learned from;
- ``holdout``: real records from the same source that the generator never saw;
- ``synthetic``: the generator's output.

Metrics (each compared with what a fresh real sample, the holdout, would give):

- **DCR**, distance to the closest record: each synthetic record's distance to its nearest training record, and
  the same for each holdout record (the baseline). Synthetic records much closer than holdout ones are copies.
- **DCR share**: the share of synthetic records closer to the training set than to an equally large holdout
  set (ties count half). A generator that learned the distribution and not the records scores about 50%;
  memorisation pushes it towards 100%. The larger real set is subsampled (seeded) to the smaller one's size,
  because the 50% ideal holds only for equal sizes.
- **NNDR**, nearest-neighbour distance ratio: distance to the nearest over the second-nearest training record.
  Near 0 means a synthetic record singles out one real record.
- **Exact-copy share**: synthetic records at distance 0 from a training record (the holdout's rate is the
  baseline: real data has duplicates of its own).
- **Membership-inference AUC**: an attacker who holds a record guesses "it was in the training set" when a
  synthetic record lies close to it. Members are training records, non-members holdout records (equal counts),
  the score is minus the distance to the nearest synthetic record, and the AUC is scikit-learn's
  ``roc_auc_score``: 0.5 is ideal (no information), 1.0 a full leak.

Nearest neighbours are exact. They come from a k-d tree for low-dimensional features (tables) and from
scikit-learn's ``pairwise_distances_chunked`` otherwise (image features), with queries in chunks, so memory stays
bounded for 100,000 x 100,000 records: a k-d tree holds O(n d) numbers, and a brute-force chunk at most
``working_memory`` MiB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from simgen.errors import DependencyMissing
from simgen.validators.functional import BootstrapResult, bootstrap_ci

__all__ = ["PrivacyResult", "feature_privacy", "mia_auc", "nearest_neighbours", "privacy_metrics"]

Metric = Literal["cityblock", "euclidean"]
#: Above this many feature dimensions a k-d tree is no faster than brute force.
TREE_MAX_DIMS = 64
_TREE_METRIC = {"cityblock": "manhattan", "euclidean": "euclidean"}


def _require_sklearn() -> Any:
    try:
        import sklearn
    except ImportError as exc:  # pragma: no cover - only without the extra
        raise DependencyMissing("scikit-learn", "tabular", "privacy metrics") from exc
    return sklearn


def _as_matrix(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"{name} must be a 2-D (records, features) array with rows, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values; encode missing values first")
    return arr


def nearest_neighbours(
    query: np.ndarray,
    reference: np.ndarray,
    *,
    k: int = 1,
    metric: Metric = "cityblock",
    method: Literal["auto", "tree", "brute"] = "auto",
    chunk_rows: int = 4096,
    working_memory: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances to, and indices of, the ``k`` nearest reference rows of every query row.

    Args:
        query: Shape (m, d).
        reference: Shape (n, d), n >= k.
        k: Neighbours per query row.
        metric: ``"cityblock"`` (L1; Gower distance on a :func:`~simgen.validators.tabular.gower_encode`
            encoding) or ``"euclidean"``.
        method: ``"tree"`` (a k-d tree), ``"brute"`` (chunked pairwise distances), or ``"auto"``: the tree up to
            :data:`TREE_MAX_DIMS` dimensions.
        chunk_rows: Query rows per k-d tree query.
        working_memory: MiB per brute-force distance chunk.

    Returns:
        ``(distances, indices)``, both shape (m, k), nearest first. Among equally distant neighbours the
        index chosen may differ between methods; the distances do not.
    """
    _require_sklearn()
    from sklearn.metrics import pairwise_distances_chunked
    from sklearn.neighbors import KDTree

    q, r = _as_matrix(query, "query"), _as_matrix(reference, "reference")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"query and reference need the same width, got {q.shape[1]} and {r.shape[1]}")
    if not 1 <= k <= len(r):
        raise ValueError(f"k must be in [1, {len(r)}] (the reference size), got {k}")
    if metric not in _TREE_METRIC:
        raise ValueError(f"metric: expected 'cityblock' or 'euclidean', got {metric!r}")
    if method == "auto":
        method = "tree" if q.shape[1] <= TREE_MAX_DIMS else "brute"
    dist = np.empty((len(q), k))
    idx = np.empty((len(q), k), dtype=np.int64)
    if method == "tree":
        tree = KDTree(r, metric=_TREE_METRIC[metric])
        for s in range(0, len(q), chunk_rows):
            d, i = tree.query(q[s : s + chunk_rows], k=k)
            dist[s : s + chunk_rows], idx[s : s + chunk_rows] = d, i
        return dist, idx
    if method != "brute":
        raise ValueError(f"method: expected 'auto', 'tree' or 'brute', got {method!r}")

    def top_k(block: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        if k < block.shape[1]:
            part = np.argpartition(block, k - 1, axis=1)[:, :k]
        else:
            part = np.tile(np.arange(k), (len(block), 1))
        # Recompute the chosen distances directly: the fast Euclidean formula (|a|^2 + |b|^2 - 2ab) leaves
        # ~1e-8 where the true distance is 0, which would hide exact copies.
        diff = q[start : start + len(block), None, :] - r[part]
        vals = np.abs(diff).sum(axis=2) if metric == "cityblock" else np.sqrt((diff * diff).sum(axis=2))
        order = np.argsort(vals, axis=1, kind="stable")
        return np.take_along_axis(vals, order, axis=1), np.take_along_axis(part, order, axis=1)

    s = 0
    for d, i in pairwise_distances_chunked(q, r, metric=metric, reduce_func=top_k, working_memory=working_memory):
        dist[s : s + len(d)], idx[s : s + len(d)] = d, i
        s += len(d)
    return dist, idx


def mia_auc(member_scores: np.ndarray, non_member_scores: np.ndarray) -> float:
    """ROC AUC of telling members from non-members by a score (higher: "member"); 0.5 is chance."""
    _require_sklearn()
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([np.ones(len(member_scores)), np.zeros(len(non_member_scores))])
    return float(roc_auc_score(y, np.concatenate([member_scores, non_member_scores])))


@dataclass
class PrivacyResult:
    """Privacy metrics of a synthetic set against its training set and a holdout (see the module docstring)."""

    dcr_share: BootstrapResult
    mia_auc: BootstrapResult
    exact_copy_share: BootstrapResult
    holdout_exact_copy_share: float
    dcr_synthetic: dict[str, float]
    dcr_holdout: dict[str, float]
    nndr_synthetic: dict[str, float]
    nndr_holdout: dict[str, float]
    sizes: dict[str, int]
    metric: str
    dcr_histogram: dict[str, list[float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form; ``ideal`` says what a generator that leaks nothing scores."""
        return {
            "dcr_share": {**self.dcr_share.as_dict(), "ideal": 0.5},
            "mia_auc": {**self.mia_auc.as_dict(), "ideal": 0.5},
            "exact_copy_share": {**self.exact_copy_share.as_dict(), "baseline": self.holdout_exact_copy_share},
            "dcr": {"synthetic_to_train": self.dcr_synthetic, "holdout_to_train": self.dcr_holdout},
            "nndr": {"synthetic_to_train": self.nndr_synthetic, "holdout_to_train": self.nndr_holdout},
            "dcr_histogram": self.dcr_histogram,
            "sizes": self.sizes,
            "metric": self.metric,
        }


def _summary(values: np.ndarray) -> dict[str, float]:
    q = np.quantile(values, [0.05, 0.5])
    return {"p05": float(q[0]), "median": float(q[1]), "mean": float(values.mean())}


def dcr_histogram(synthetic: np.ndarray, baseline: np.ndarray, bins: int = 30) -> dict[str, list[float]]:
    """Counts of two DCR samples on shared bins (for the report's plot): ``{"edges", "synthetic", "baseline"}``."""
    top = float(np.quantile(np.concatenate([synthetic, baseline]), 0.99))
    edges = np.linspace(0.0, top if top > 0 else 1.0, bins + 1)
    clip = edges[-1]
    return {
        "edges": [float(e) for e in edges],
        "synthetic": np.histogram(np.minimum(synthetic, clip), edges)[0].astype(float).tolist(),
        "baseline": np.histogram(np.minimum(baseline, clip), edges)[0].astype(float).tolist(),
    }


def _nndr(d: np.ndarray) -> np.ndarray:
    # 0/0 (a record with two exact matches) counts as 0: it is as identifying as a single exact match.
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = d[:, 0] / d[:, 1]
    return np.where(d[:, 1] > 0, ratio, 0.0)


def privacy_metrics(
    train: np.ndarray,
    holdout: np.ndarray,
    synthetic: np.ndarray,
    *,
    rng: np.random.Generator,
    metric: Metric = "cityblock",
    n_boot: int = 100,
    level: float = 0.95,
    exact_tol: float = 1e-12,
    method: Literal["auto", "tree", "brute"] = "auto",
    max_rows: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> PrivacyResult:
    """DCR, DCR share, NNDR, exact copies and the membership-inference AUC, with bootstrap intervals.

    Args:
        train: Real training records' features, shape (n_train, d).
        holdout: Real records the generator never saw, shape (n_holdout, d).
        synthetic: Synthetic records, shape (n_syn, d).
        rng: Draws the equal-size subsamples and the bootstrap resamples.
        metric: ``"cityblock"`` (Gower on a Gower encoding) or ``"euclidean"`` (embeddings).
        n_boot: Bootstrap resamples for the intervals.
        level: Confidence level.
        exact_tol: Distances at most this count as exact copies.
        method: Nearest-neighbour method (see :func:`nearest_neighbours`).
        max_rows: Subsample every set to at most this many rows first (seeded), for speed.
        progress: Called with a short label before each nearest-neighbour search.

    Returns:
        A :class:`PrivacyResult`.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    train, holdout, synthetic = (
        _as_matrix(a, n) for a, n in ((train, "train"), (holdout, "holdout"), (synthetic, "synthetic"))
    )
    if len(train) < 2 or len(holdout) < 2:
        raise ValueError("train and holdout need at least 2 records each")

    def pick(x: np.ndarray, m: int) -> np.ndarray:
        return x if len(x) <= m else x[np.sort(rng.choice(len(x), m, replace=False))]

    if max_rows is not None:
        train, holdout, synthetic = pick(train, max_rows), pick(holdout, max_rows), pick(synthetic, max_rows)
    n_eq = min(len(train), len(holdout))
    train_eq, holdout_eq = pick(train, n_eq), pick(holdout, n_eq)
    tell = progress or (lambda _label: None)

    def nn(q: np.ndarray, r: np.ndarray, k: int, label: str) -> np.ndarray:
        tell(label)
        return nearest_neighbours(q, r, k=k, metric=metric, method=method)[0]

    d_syn_train = nn(synthetic, train, 2, "synthetic -> train")
    d_hold_train = nn(holdout, train, 2, "holdout -> train")
    d_syn_train_eq = d_syn_train[:, :1] if len(train_eq) == len(train) else nn(synthetic, train_eq, 1, "share")
    d_syn_hold_eq = nn(synthetic, holdout_eq, 1, "synthetic -> holdout")
    closer = np.where(
        d_syn_train_eq[:, 0] < d_syn_hold_eq[:, 0], 1.0, np.where(d_syn_train_eq[:, 0] == d_syn_hold_eq[:, 0], 0.5, 0.0)
    )
    members = -nn(train_eq, synthetic, 1, "members -> synthetic")[:, 0]
    non_members = -nn(holdout_eq, synthetic, 1, "non-members -> synthetic")[:, 0]
    copies = (d_syn_train[:, 0] <= exact_tol).astype(np.float64)

    def mean_of_first(a: np.ndarray, _b: np.ndarray) -> float:
        return float(a.mean())

    return PrivacyResult(
        dcr_share=bootstrap_ci(mean_of_first, closer, closer[:1], rng=rng, n_boot=n_boot, level=level),
        mia_auc=bootstrap_ci(mia_auc, members, non_members, rng=rng, n_boot=n_boot, level=level),
        exact_copy_share=bootstrap_ci(mean_of_first, copies, copies[:1], rng=rng, n_boot=n_boot, level=level),
        holdout_exact_copy_share=float((d_hold_train[:, 0] <= exact_tol).mean()),
        dcr_synthetic=_summary(d_syn_train[:, 0]),
        dcr_holdout=_summary(d_hold_train[:, 0]),
        nndr_synthetic=_summary(_nndr(d_syn_train)),
        nndr_holdout=_summary(_nndr(d_hold_train)),
        sizes={"train": len(train), "holdout": len(holdout), "synthetic": len(synthetic), "equal_size": n_eq},
        metric=metric,
        dcr_histogram=dcr_histogram(d_syn_train[:, 0], d_hold_train[:, 0]),
    )


def _flag_copies(copies: float, baseline: float, n: int) -> list[str]:
    if copies > baseline:
        return [f"{round(copies * n)} of {n} synthetic records ({100 * copies:.1f}%) are exact copies of training "
                f"records (the real data's own rate: {100 * baseline:.1f}%)"]  # fmt: skip
    return []


def feature_privacy(
    train: np.ndarray,
    synthetic: np.ndarray,
    holdout: np.ndarray | None = None,
    *,
    rng: np.random.Generator,
    metric: Metric = "euclidean",
    n_boot: int = 50,
    level: float = 0.95,
    exact_rel_tol: float = 1e-4,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """The memorisation check on feature vectors (images, embeddings): copies of, and closeness to, training records.

    With a ``holdout`` (real records the generator never saw) this is :func:`privacy_metrics` in full. Without one,
    the baseline is the training set against itself, leave-one-out: each training record's distance to its
    nearest *other* training record. Then:

    - ``exact_copy_share``: synthetic records within ``exact_tol`` of a training record (``baseline``: the share
      of training records with such a twin in the training set);
    - ``close_share``: synthetic records closer to a training record than 95% of training records are to their
      nearest other one (about 0.05 for a generator that does not copy; memorisation pushes it up);
    - DCR and NNDR summaries and a DCR histogram, synthetic against the baseline.

    Features of one image computed in different batches differ by float noise, so "exact" means within
    ``exact_rel_tol`` times the median leave-one-out distance of the training set.

    Args:
        train: The real training records' features (n_train, d), n_train >= 3.
        synthetic: The synthetic (or refined) records' features (n_syn, d).
        holdout: Real records the generator never saw, or None.
        rng: Draws subsamples and bootstrap resamples.
        metric: ``"euclidean"`` (embeddings) or ``"cityblock"``.
        n_boot: Bootstrap resamples.
        level: Confidence level.
        exact_rel_tol: The exact-copy tolerance, relative to the training set's median leave-one-out distance.
        max_rows: Subsample every set to at most this many rows first (seeded).

    Returns:
        A JSON-ready dict with ``mode`` (``holdout`` or ``train-only``), the metrics, ``exact_tol``, and
        ``flagged``/``flags``: whether, and why, the synthetic set looks memorised.
    """
    train, synthetic = _as_matrix(train, "train"), _as_matrix(synthetic, "synthetic")
    if len(train) < 3:
        raise ValueError("train needs at least 3 records for a leave-one-out baseline")
    if max_rows is not None:
        train, synthetic = (x if len(x) <= max_rows else x[np.sort(rng.choice(len(x), max_rows, replace=False))]
                            for x in (train, synthetic))  # fmt: skip
    loo = nearest_neighbours(train, train, k=3, metric=metric)[0][:, 1:]  # column 0 is the record itself
    scale = float(np.median(loo[:, 0]))
    exact_tol = exact_rel_tol * scale if scale > 0 else 1e-12
    if holdout is not None:
        res = privacy_metrics(train, holdout, synthetic, rng=rng, metric=metric, n_boot=n_boot, level=level,
                              exact_tol=exact_tol, max_rows=max_rows)  # fmt: skip
        out = {"mode": "holdout", **res.as_dict(), "exact_tol": exact_tol}
        flags = _flag_copies(res.exact_copy_share.value, res.holdout_exact_copy_share, len(synthetic))
        if res.dcr_share.low > 0.55:
            flags.append(f"synthetic records sit closer to the training set than to the holdout "
                         f"(DCR share {res.dcr_share.value:.2f}, ideal 0.5)")  # fmt: skip
        if res.mia_auc.low > 0.6:
            flags.append(f"membership inference works (AUC {res.mia_auc.value:.2f}, ideal 0.5)")
        return {**out, "flagged": bool(flags), "flags": flags}
    d_syn = nearest_neighbours(synthetic, train, k=2, metric=metric)[0]
    # A training record's own position is excluded, so its nearest other record is its leave-one-out DCR.
    threshold = float(np.quantile(loo[:, 0], 0.05))
    copies = (d_syn[:, 0] <= exact_tol).astype(np.float64)
    close = (d_syn[:, 0] < threshold).astype(np.float64) if threshold > exact_tol else copies.copy()
    baseline = float((loo[:, 0] <= exact_tol).mean())

    def mean_of_first(a: np.ndarray, _b: np.ndarray) -> float:
        return float(a.mean())

    copy_ci = bootstrap_ci(mean_of_first, copies, copies[:1], rng=rng, n_boot=n_boot, level=level)
    close_ci = bootstrap_ci(mean_of_first, close, close[:1], rng=rng, n_boot=n_boot, level=level)
    flags = _flag_copies(copy_ci.value, baseline, len(synthetic))
    if close_ci.low > 0.1:
        flags.append(f"{100 * close_ci.value:.0f}% of synthetic records sit closer to a training record than 95% of "
                     "training records sit to their nearest other one (about 5% is expected)")  # fmt: skip
    return {
        "mode": "train-only",
        "exact_copy_share": {**copy_ci.as_dict(), "baseline": baseline},
        "close_share": {**close_ci.as_dict(), "ideal": 0.05, "threshold": threshold},
        "dcr": {"synthetic_to_train": _summary(d_syn[:, 0]), "train_to_train": _summary(loo[:, 0])},
        "nndr": {"synthetic_to_train": _summary(_nndr(d_syn)), "train_to_train": _summary(_nndr(loo))},
        "dcr_histogram": dcr_histogram(d_syn[:, 0], loo[:, 0]),
        "sizes": {"train": len(train), "synthetic": len(synthetic)},
        "metric": metric,
        "exact_tol": exact_tol,
        "flagged": bool(flags),
        "flags": flags,
    }
