"""Tables: fidelity (SDMetrics' quality score), utility (TSTR against TRTR) and the encoding for privacy.

**Fidelity** follows the published SDMetrics definitions (``sdmetrics.reports.single_table.QualityReport``), so
scores are comparable with SDV users' figures without depending on sdmetrics (which requires the
Business-Source-licensed ``copulas``):

- *Column shapes*: :func:`ks_complement` (1 - the two-sample Kolmogorov-Smirnov statistic, missing values
  dropped) for numerical and datetime columns; :func:`tv_complement` (1 - the total variation distance between
  category frequencies, missing values dropped) for categorical and boolean columns.
- *Column-pair trends*: :func:`correlation_similarity` (1 - |r_real - r_synthetic| / 2, Pearson, with SDMetrics'
  handling: missing values filled with 0, a constant column gives no score) for two numerical/datetime columns;
  :func:`contingency_similarity` (1 - the total variation distance between the two 2-D frequency tables, missing
  values a category of their own) for two categorical/boolean columns, and for a mixed pair after each numeric
  column is cut into 10 bins (``numpy.histogram_bin_edges`` of each table's own values, ``numpy.digitize``), as
  SDMetrics does.
- *Quality score*: the mean of the two properties, each the mean of its (defined) scores.

Id columns are skipped, as in SDMetrics.

**Utility** (:func:`tabular_utility`): a scikit-learn model (random forest, or logistic/ridge regression) is
trained on the synthetic table (TSTR) and on the real training table (TRTR), and both are scored on the same real
holdout: accuracy, macro F1 and ROC AUC for a category target, R^2 and MAE for a numeric one.

**Privacy** on tables goes through :func:`gower_encode`, which turns rows into vectors whose L1 distance is the
Gower distance (range-normalised numbers, 0/1 category mismatch, averaged over columns), and then through
:func:`simgen.validators.privacy.privacy_metrics`. :func:`table_privacy` does both.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from simgen.errors import DependencyMissing, did_you_mean
from simgen.generators.tabular.metadata import Column, MetadataError, TableMetadata, encode_column
from simgen.validators.functional import BootstrapResult, bootstrap_ci
from simgen.validators.privacy import PrivacyResult, privacy_metrics

try:
    import pandas as pd
except ImportError as exc:  # pragma: no cover - only without the extra
    raise DependencyMissing("pandas", "tabular", "table validation") from exc

__all__ = [
    "column_pair_trends",
    "column_shapes",
    "contingency_similarity",
    "correlation_similarity",
    "gower_encode",
    "ks_complement",
    "quality_report",
    "quality_score",
    "table_privacy",
    "tabular_utility",
    "tv_complement",
]

_CONTINUOUS = ("numerical", "datetime")
_DISCRETE = ("categorical", "boolean")
#: SDMetrics rounds values to this many decimals before the KS test, so float noise does not count as a difference.
_KS_DECIMALS = 14
_BINS = 10


# --------------------------------------------------------------------------------------------------
# Single metrics (pure functions)


def ks_complement(real: Any, synthetic: Any) -> float:
    """1 - the two-sample Kolmogorov-Smirnov statistic (sup |F_real - F_synthetic|); NaN values are dropped.

    Returns:
        A score in [0, 1] (1: identical empirical distributions), or NaN if a side has no values.
    """
    a = np.asarray(real, dtype=np.float64)
    b = np.asarray(synthetic, dtype=np.float64)
    a = np.sort(np.round(a[~np.isnan(a)], _KS_DECIMALS))
    b = np.sort(np.round(b[~np.isnan(b)], _KS_DECIMALS))
    if a.size == 0 or b.size == 0:
        return math.nan
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / a.size
    cdf_b = np.searchsorted(b, points, side="right") / b.size
    return float(1.0 - np.max(np.abs(cdf_a - cdf_b)))


def _frequencies(values: Any) -> pd.Series:
    return pd.Series(values).dropna().value_counts(normalize=True)


def tv_complement(real: Any, synthetic: Any) -> float:
    """1 - the total variation distance (half the L1 distance) between category frequencies; NaN values dropped.

    Returns:
        A score in [0, 1], or NaN if a side has no values.
    """
    fr, fs = _frequencies(real), _frequencies(synthetic)
    if fr.empty or fs.empty:
        return math.nan
    both = fr.index.union(fs.index, sort=False)
    return float(1.0 - 0.5 * np.abs(fr.reindex(both, fill_value=0) - fs.reindex(both, fill_value=0)).sum())


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else math.nan


def correlation_similarity(real_x: Any, real_y: Any, syn_x: Any, syn_y: Any) -> dict[str, float]:
    """SDMetrics' CorrelationSimilarity: ``1 - |r_real - r_synthetic| / 2`` with Pearson's r.

    As SDMetrics: a column that is constant (one distinct value, missing values aside) on either side gives a NaN
    score; missing values are then filled with 0; an undefined r counts as 0.

    Returns:
        ``{"score", "real", "synthetic"}``.
    """
    cols = [pd.Series(np.asarray(v, dtype=np.float64)) for v in (real_x, real_y, syn_x, syn_y)]
    if any(c.nunique() <= 1 for c in cols):
        return {"score": math.nan, "real": math.nan, "synthetic": math.nan}
    rx, ry, sx, sy = (c.fillna(0.0).to_numpy() for c in cols)
    r_real = _pearson(rx, ry)
    r_syn = _pearson(sx, sy)
    r_real = 0.0 if math.isnan(r_real) else r_real
    r_syn = 0.0 if math.isnan(r_syn) else r_syn
    return {"score": 1.0 - abs(r_real - r_syn) / 2.0, "real": r_real, "synthetic": r_syn}


def _codes(*columns: Any) -> list[np.ndarray]:
    """Shared integer codes for the values of several columns; a missing value is a value of its own."""
    lengths = [len(c) for c in columns]
    joined = pd.concat([pd.Series(np.asarray(c, dtype=object)) for c in columns], ignore_index=True)
    codes, _ = pd.factorize(joined, use_na_sentinel=False)
    return np.split(codes.astype(np.int64), np.cumsum(lengths)[:-1])


def contingency_similarity(real_a: Any, real_b: Any, syn_a: Any, syn_b: Any) -> float:
    """SDMetrics' ContingencySimilarity: 1 - the total variation distance between the 2-D frequency tables.

    Missing values are a category of their own (``groupby(dropna=False)`` in SDMetrics).
    """
    ra, sa = _codes(real_a, syn_a)
    rb, sb = _codes(real_b, syn_b)
    return _contingency_from_codes(ra, rb, sa, sb)


def _contingency_from_codes(ra: np.ndarray, rb: np.ndarray, sa: np.ndarray, sb: np.ndarray) -> float:
    width = int(max(rb.max(initial=0), sb.max(initial=0))) + 1
    size = (int(max(ra.max(initial=0), sa.max(initial=0))) + 1) * width
    real = np.bincount(ra * width + rb, minlength=size) / len(ra)
    syn = np.bincount(sa * width + sb, minlength=size) / len(sa)
    return float(1.0 - 0.5 * np.abs(real - syn).sum())


# --------------------------------------------------------------------------------------------------
# Whole-table properties


def _numeric(table: pd.DataFrame, col: Column) -> np.ndarray:
    return encode_column(table[col.name], col, unknown="error")


def _scored(metadata: TableMetadata, real: pd.DataFrame, synthetic: pd.DataFrame) -> list[Column]:
    for name, t in (("real", real), ("synthetic", synthetic)):
        missing = [c.name for c in metadata.columns if c.type != "id" and c.name not in t.columns]
        if missing:
            hint = did_you_mean(missing[0], [str(c) for c in t.columns])
            raise MetadataError(f"the {name} table has no column '{missing[0]}'{hint}")
    return [c for c in metadata.columns if c.type != "id"]


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: TableMetadata) -> dict[str, dict[str, Any]]:
    """KSComplement or TVComplement per column: ``{column: {"metric", "score"}}``."""
    out = {}
    for col in _scored(metadata, real, synthetic):
        if col.type in _CONTINUOUS:
            out[col.name] = {
                "metric": "KSComplement",
                "score": ks_complement(_numeric(real, col), _numeric(synthetic, col)),
            }
        else:
            out[col.name] = {"metric": "TVComplement", "score": tv_complement(real[col.name], synthetic[col.name])}
    return out


def _bins(values: np.ndarray) -> np.ndarray:
    present = values[~np.isnan(values)]
    if present.size == 0:
        return np.full(len(values), _BINS + 1)
    return np.digitize(values, np.histogram_bin_edges(present, bins=_BINS))


def column_pair_trends(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: TableMetadata) -> list[dict[str, Any]]:
    """CorrelationSimilarity or ContingencySimilarity for every pair of columns, in metadata order.

    Returns:
        ``[{"columns": [a, b], "metric", "score", "real_correlation", "synthetic_correlation"}]`` (correlations
        only for CorrelationSimilarity).
    """
    cols = _scored(metadata, real, synthetic)
    numbers = {c.name: (_numeric(real, c), _numeric(synthetic, c)) for c in cols if c.type in _CONTINUOUS}
    discrete: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for c in cols:
        if c.type in _DISCRETE:
            r, s = _codes(real[c.name], synthetic[c.name])
        else:  # binned for mixed pairs, each table with its own edges (as SDMetrics)
            r, s = _codes(_bins(numbers[c.name][0]), _bins(numbers[c.name][1]))
        discrete[c.name] = (r, s)
    corr = (
        _correlations({name: v[0] for name, v in numbers.items()}),
        _correlations({n: v[1] for n, v in numbers.items()}),
    )
    out = []
    for a, b in itertools.combinations(cols, 2):
        if a.type in _CONTINUOUS and b.type in _CONTINUOUS:
            res = _correlation_pair(corr, a.name, b.name)
            out.append(
                {
                    "columns": [a.name, b.name],
                    "metric": "CorrelationSimilarity",
                    "score": res["score"],
                    "real_correlation": res["real"],
                    "synthetic_correlation": res["synthetic"],
                }
            )
        else:
            (ra, sa), (rb, sb) = discrete[a.name], discrete[b.name]
            out.append(
                {
                    "columns": [a.name, b.name],
                    "metric": "ContingencySimilarity",
                    "score": _contingency_from_codes(ra, rb, sa, sb),
                }
            )
    return out


def _correlations(columns: dict[str, np.ndarray]) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """Every Pearson r between the columns at once, with :func:`correlation_similarity`'s handling.

    Returns:
        ``(index, r, constant)``: column -> position, the r matrix (missing values filled with 0, an undefined r
        as 0), and which columns have at most one distinct value (missing values aside).
    """
    names = list(columns)
    if not names:
        return {}, np.zeros((0, 0)), np.zeros(0, bool)
    x = np.column_stack([columns[n] for n in names])
    constant = np.array([np.unique(v[~np.isnan(v)]).size <= 1 for v in x.T])
    x = np.nan_to_num(x, nan=0.0)
    x = x - x.mean(axis=0)
    norm = np.sqrt((x * x).sum(axis=0))
    den = np.outer(norm, norm)
    r = np.divide(x.T @ x, den, out=np.zeros_like(den), where=den > 0)
    return {n: i for i, n in enumerate(names)}, r, constant


def _correlation_pair(corr: tuple[Any, Any], a: str, b: str) -> dict[str, float]:
    """:func:`correlation_similarity` of columns ``a`` and ``b`` from the precomputed :func:`_correlations`."""
    (index, r_real, c_real), (_, r_syn, c_syn) = corr
    i, j = index[a], index[b]
    if c_real[i] or c_real[j] or c_syn[i] or c_syn[j]:
        return {"score": math.nan, "real": math.nan, "synthetic": math.nan}
    rr, rs = float(r_real[i, j]), float(r_syn[i, j])
    return {"score": 1.0 - abs(rr - rs) / 2.0, "real": rr, "synthetic": rs}


def _mean(scores: Sequence[float]) -> float:
    finite = [s for s in scores if not math.isnan(s)]
    return float(np.mean(finite)) if finite else math.nan


def quality_score(real: pd.DataFrame, synthetic: pd.DataFrame, metadata: TableMetadata) -> dict[str, float]:
    """``{"score", "column_shapes", "column_pair_trends"}``: the overall score is the mean of the two properties."""
    shapes = _mean([v["score"] for v in column_shapes(real, synthetic, metadata).values()])
    trends = _mean([p["score"] for p in column_pair_trends(real, synthetic, metadata)])
    return {"score": _mean([shapes, trends]), "column_shapes": shapes, "column_pair_trends": trends}


def quality_report(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    metadata: TableMetadata,
    *,
    rng: np.random.Generator | None = None,
    n_boot: int = 100,
    level: float = 0.95,
) -> dict[str, Any]:
    """The quality score with its details and, given ``rng``, percentile bootstrap intervals.

    The intervals resample the rows of both tables independently (``n_boot`` times) and recompute the scores.
    Resamples hold duplicate rows, which move these two-sample scores by themselves (a resample of a table
    against the table itself scores below 1), so the interval is recentred on the full-data score: it gives the
    spread, not a bias correction.

    Returns:
        ``{"score", "column_shapes": {"score", "details"}, "column_pair_trends": {"score", "details"}, "ci"}``
        (``ci`` maps each of the three scores to its interval, or is absent without ``rng``).
    """
    shapes = column_shapes(real, synthetic, metadata)
    pairs = column_pair_trends(real, synthetic, metadata)
    s_shapes = _mean([v["score"] for v in shapes.values()])
    s_pairs = _mean([p["score"] for p in pairs])
    report: dict[str, Any] = {
        "score": _mean([s_shapes, s_pairs]),
        "column_shapes": {"score": s_shapes, "details": shapes},
        "column_pair_trends": {"score": s_pairs, "details": pairs},
    }
    if rng is not None:
        cis = bootstrap_ci(
            lambda i, j: quality_score(real.iloc[i], synthetic.iloc[j], metadata),
            np.arange(len(real)),
            np.arange(len(synthetic)),
            rng=rng,
            n_boot=n_boot,
            level=level,
            recentre=True,
        )
        report["ci"] = {k: v.as_dict() for k, v in cis.items()}
    return report


# --------------------------------------------------------------------------------------------------
# Utility: TSTR against TRTR


def _features(table: pd.DataFrame, metadata: TableMetadata, target: str) -> np.ndarray:
    """Numbers as they are (NaN kept for the imputer), categories one-hot over the metadata's categories."""
    parts = []
    for col in metadata.columns:
        if col.type == "id" or col.name == target:
            continue
        if col.discrete:
            codes = encode_column(table[col.name], col, unknown="nan")
            onehot = np.zeros((len(table), len(col.categories)))
            ok = ~np.isnan(codes)
            onehot[np.flatnonzero(ok), codes[ok].astype(np.int64)] = 1.0
            parts.append(onehot)
        else:
            parts.append(_numeric(table, col)[:, None])
    return np.hstack(parts) if parts else np.zeros((len(table), 0))


def _model(task: str, kind: str, seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "random_forest":
        est = (RandomForestClassifier if task == "classification" else RandomForestRegressor)(
            n_estimators=100, random_state=seed, n_jobs=1
        )
        return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), est)
    est = LogisticRegression(max_iter=2000, random_state=seed) if task == "classification" else Ridge()
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(), est)


def _classification_scores(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    scores = {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=classes, average="macro", zero_division=0)),
    }
    present = sorted(set(y.tolist()))
    if len(present) < 2:
        scores["roc_auc"] = math.nan
    elif len(present) == 2:
        scores["roc_auc"] = float(roc_auc_score(y == present[1], proba[:, classes.index(present[1])]))
    else:
        # One-vs-rest over the classes the test rows hold (an absent class has no ROC curve), in sorted order
        # as scikit-learn needs; each row's probabilities renormalised over them (uniform where they had none).
        p = proba[:, [classes.index(c) for c in present]]
        total = p.sum(axis=1, keepdims=True)
        p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / len(present))
        scores["roc_auc"] = float(roc_auc_score(y, p, labels=present, multi_class="ovr", average="macro"))
    return scores


def _regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, r2_score

    return {"r2": float(r2_score(y, pred)), "mae": float(mean_absolute_error(y, pred))}


def tabular_utility(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    metadata: TableMetadata,
    target: str,
    *,
    rng: np.random.Generator,
    model: Literal["random_forest", "linear"] = "random_forest",
    n_boot: int = 100,
    level: float = 0.95,
) -> dict[str, Any]:
    """Train on synthetic, test on real (TSTR) against train on real, test on real (TRTR).

    Args:
        train: The real table the generator learned from.
        holdout: Real rows neither the generator nor either model saw: both are tested on it.
        synthetic: The synthetic table.
        metadata: The tables' metadata.
        target: The column to predict: categorical/boolean (classification) or numerical/datetime (regression).
        rng: Seeds the models (both get the same seed) and draws the bootstrap resamples of the holdout.
        model: ``"random_forest"`` (100 trees) or ``"linear"`` (logistic or ridge regression, standardised).
        n_boot: Bootstrap resamples of the holdout for the intervals (no refitting).
        level: Confidence level.

    Returns:
        ``{"task", "target", "model", "primary", "tstr", "trtr", "gap", "ratio", "ci", "sizes"}``; ``primary``
        names the headline metric (macro F1 or R^2) and ``ratio`` is TSTR / TRTR per metric (higher is better
        for all but MAE).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    col = metadata.column(target)
    if col.type == "id":
        raise MetadataError(f"target '{target}' is an id column; pick a column to predict")
    task = "classification" if col.discrete else "regression"
    seed = int(rng.integers(0, 2**31 - 1))

    def labelled(t: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        y = _numeric(t, col)
        keep = ~np.isnan(y)
        x = _features(t, metadata, target)[keep]
        if task == "classification":
            return x, np.array([str(col.categories[int(v)]) for v in y[keep]], dtype=object)
        return x, y[keep]

    x_tr, y_tr = labelled(train)
    x_ho, y_ho = labelled(holdout)
    x_syn, y_syn = labelled(synthetic)
    classes = [str(c) for c in col.categories]
    preds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (x, y) in {"trtr": (x_tr, y_tr), "tstr": (x_syn, y_syn)}.items():
        if task == "classification" and len(set(y.tolist())) < 2:
            # One class only: a model cannot be trained; it predicts that class.
            only = y[0] if len(y) else classes[0]
            proba = np.zeros((len(x_ho), len(classes)))
            proba[:, classes.index(only)] = 1.0
            preds[name] = (np.full(len(x_ho), only, dtype=object), proba)
            continue
        est = _model(task, model, seed).fit(x, y)
        pred = est.predict(x_ho)
        proba = np.zeros((len(x_ho), len(classes)))
        if task == "classification":
            p = est.predict_proba(x_ho)
            for k, c in enumerate(est.classes_):
                proba[:, classes.index(str(c))] = p[:, k]
        preds[name] = (pred, proba)

    def scores(idx: np.ndarray, which: str) -> dict[str, float]:
        pred, proba = preds[which]
        if task == "classification":
            return _classification_scores(y_ho[idx], pred[idx], proba[idx], classes)
        return _regression_scores(y_ho[idx], pred[idx])

    def stat(i: np.ndarray, _j: np.ndarray) -> dict[str, float]:
        t, r = scores(i, "tstr"), scores(i, "trtr")
        out = {f"tstr_{k}": v for k, v in t.items()} | {f"trtr_{k}": v for k, v in r.items()}
        out |= {f"ratio_{k}": t[k] / r[k] if r[k] else math.nan for k in t}
        return out

    all_rows = np.arange(len(y_ho))
    full = stat(all_rows, all_rows)
    metrics = list(scores(all_rows, "trtr"))
    ci = bootstrap_ci(stat, all_rows, all_rows[:1], rng=rng, n_boot=n_boot, level=level) if n_boot else {}
    return {
        "task": task,
        "target": target,
        "model": model,
        "primary": "macro_f1" if task == "classification" else "r2",
        "tstr": {k: full[f"tstr_{k}"] for k in metrics},
        "trtr": {k: full[f"trtr_{k}"] for k in metrics},
        "gap": {k: full[f"trtr_{k}"] - full[f"tstr_{k}"] for k in metrics},
        "ratio": {k: full[f"ratio_{k}"] for k in metrics},
        "ci": {k: v.as_dict() for k, v in ci.items()},
        "sizes": {"train": len(y_tr), "holdout": len(y_ho), "synthetic": len(y_syn)},
    }


# --------------------------------------------------------------------------------------------------
# Privacy on tables


def gower_encode(
    tables: Sequence[pd.DataFrame], metadata: TableMetadata, *, reference: Sequence[int] | None = None
) -> list[np.ndarray]:
    """Encode tables so that the L1 (cityblock) distance between two rows is their Gower distance.

    Per column (id columns skipped), averaged over the columns:

    - numbers and datetimes: ``|a - b| / range``, the range taken over the ``reference`` tables and values
      clipped to it (so each column contributes at most 1);
    - categories and booleans: 0 if equal, 1 if not;
    - missing values: 0 between two missing values, 1 between a missing and a present one.

    A numeric column with missing values needs two coordinates: a present value ``x`` (normalised) becomes
    ``(x / 2, (1 - x) / 2)`` and a missing one ``(-1/4, -1/4)``, which gives exactly the distances above.

    Args:
        tables: The tables to encode (e.g. train, holdout, synthetic).
        metadata: Their metadata.
        reference: Indices into ``tables`` whose values set the ranges (default: all).

    Returns:
        One float matrix per table, with the same columns.
    """
    cols = [c for c in metadata.columns if c.type != "id"]
    if not cols:
        raise MetadataError("no columns to compare: every column is an id")
    ref = list(range(len(tables))) if reference is None else list(reference)
    parts: list[list[np.ndarray]] = [[] for _ in tables]
    for col in cols:
        if col.discrete:
            codes = _codes(*(t[col.name] for t in tables))
            width = int(max(c.max(initial=0) for c in codes)) + 1
            for k, c in enumerate(codes):
                onehot = np.zeros((len(c), width))
                onehot[np.arange(len(c)), c] = 0.5  # two different one-hot rows are L1 distance 1 apart
                parts[k].append(onehot)
            continue
        values = [_numeric(t, col) for t in tables]
        pooled = np.concatenate([values[k] for k in ref])
        pooled = pooled[~np.isnan(pooled)]
        lo, hi = (float(pooled.min()), float(pooled.max())) if pooled.size else (0.0, 1.0)
        span = hi - lo if hi > lo else 1.0
        has_missing = any(np.isnan(v).any() for v in values)
        for k, v in enumerate(values):
            x = np.clip((v - lo) / span, 0.0, 1.0)
            if has_missing:
                missing = np.isnan(x)
                pair = np.column_stack([x / 2.0, (1.0 - x) / 2.0])
                pair[missing] = -0.25
                parts[k].append(pair)
            else:
                parts[k].append(x[:, None])
    return [np.hstack(p) / len(cols) for p in parts]


def table_privacy(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    metadata: TableMetadata,
    *,
    rng: np.random.Generator,
    n_boot: int = 100,
    level: float = 0.95,
    max_rows: int | None = None,
) -> PrivacyResult:
    """DCR, DCR share, NNDR, exact copies and membership-inference AUC on Gower distances.

    Ranges come from the real tables (train and holdout). See :func:`simgen.validators.privacy.privacy_metrics`.
    """
    tr, ho, syn = gower_encode([train, holdout, synthetic], metadata, reference=[0, 1])
    return privacy_metrics(tr, ho, syn, rng=rng, metric="cityblock", n_boot=n_boot, level=level, max_rows=max_rows)


def bootstrap_summary(result: BootstrapResult) -> str:
    """``0.912 [0.894, 0.927]``: a value and its interval, for logs and summaries."""
    return f"{result.value:.3f} [{result.low:.3f}, {result.high:.3f}]"
