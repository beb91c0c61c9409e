"""``tabular/gaussian-copula-v1``: per-column marginals joined by a Gaussian copula (numpy and scipy only).

Each column is mapped to a standard normal *latent* variable, the latents' correlation matrix is estimated, and
sampling draws correlated normals and maps each back through its column's marginal. The design follows SDV's
``GaussianCopulaSynthesizer`` so that its users find what they expect:

- **Numbers and datetimes** (datetimes as seconds since the epoch): the default marginal is empirical, the
  interpolated quantile function of the real values at ``n_knots`` evenly spaced levels, so bounds hold by
  construction; ``marginals="parametric"`` fits normal, uniform, beta and gamma laws and keeps the one with the
  smallest Kolmogorov-Smirnov distance (then values are clipped to the bounds). Values are rounded to the
  column's decimals (whole numbers for integer columns) when the table is decoded.
- **Categories and booleans**: frequency-ordered intervals on the uniform scale (SDV's ``UniformEncoder``): the
  most frequent category owns ``[0, p1)``, the next ``[p1, p1 + p2)``, and so on. Fitting draws a uniform point
  inside each row's interval, so the latent is exactly normal.
- **Ties** in numeric columns are broken at random (a randomized probability integral transform), which keeps
  discrete numeric columns' latents normal too.
- **Missing values**: a column with missing values gets a second latent, a present/missing indicator encoded
  like a boolean, so the missing-value rate is kept and may correlate with the other columns.

The latents' correlations use pairwise-complete rows (a value latent is undefined where the value is missing),
and the matrix is projected to the nearest positive-definite correlation matrix.

**Conditional sampling** is exact: a fixed value pins its latent to the interval of latent values that decode to
it (a category's interval, or ``value ± half a rounding step`` for numbers). Narrow intervals act as points and
the other latents come from the conditional Gaussian given them; one wide interval is sampled exactly from its
truncated normal; several wide intervals (for example a category and "not missing") are drawn jointly by
rejection from their conditional Gaussian, with a bounded number of draws.

The model file holds quantiles of the real columns (up to ``n_knots`` per column) and category frequencies:
treat it with the same care as the real table.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import special, stats

from simgen.generators.base import FittedModel, GeneratorError, ModelState, check_rng
from simgen.generators.tabular.metadata import Column, TableMetadata, encode_table
from simgen.generators.tabular.model import (
    Condition,
    ConditionError,
    TabularModel,
    metadata_from_config,
    rejection_sample,
    require,
)

__all__ = ["GaussianCopula", "GaussianCopulaModel"]

FAMILIES = ("norm", "uniform", "beta", "gamma")
_EPS_U = 1e-12
#: A condition's latent interval narrower than this probability acts as a point.
_POINT_MASS = 1e-6
_PARAMETRIC_FIT_ROWS = 5000


# --------------------------------------------------------------------------------------------------
# Marginals: value <-> uniform


class _Discrete:
    """Categories as intervals on [0, 1], as wide as their frequencies: category codes <-> uniforms.

    The intervals are laid out in ``order`` (default: most frequent first, ties by code, as SDV); categories that
    never occur must come last.
    """

    def __init__(self, probs: np.ndarray, order: np.ndarray | None = None) -> None:
        self.probs = probs
        self.order = np.argsort(-probs, kind="stable") if order is None else order.astype(np.int64)
        self.upper = np.cumsum(probs[self.order])
        self.upper[-1] = 1.0
        self.lower = np.concatenate([[0.0], self.upper[:-1]])
        self.position = np.empty(len(probs), dtype=np.int64)
        self.position[self.order] = np.arange(len(probs))
        self.n_positive = int(np.count_nonzero(probs > 0))

    def to_uniform(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pos = self.position[codes.astype(np.int64)]
        lo, hi = self.lower[pos], self.upper[pos]
        return lo + (hi - lo) * rng.random(len(codes))

    def from_uniform(self, u: np.ndarray) -> np.ndarray:
        pos = np.minimum(np.searchsorted(self.upper, u, side="right"), self.n_positive - 1)
        return self.order[pos].astype(np.float64)

    def interval(self, code: int) -> tuple[float, float]:
        pos = self.position[code]
        return float(self.lower[pos]), float(self.upper[pos])


class _Empirical:
    """The interpolated quantile function of the real values at evenly spaced levels."""

    def __init__(self, knots: np.ndarray) -> None:
        self.knots = knots
        self.levels = np.linspace(0.0, 1.0, len(knots)) if len(knots) > 1 else np.array([0.5])

    @staticmethod
    def fit(values: np.ndarray, n_knots: int) -> _Empirical:
        m = min(n_knots, len(values))
        return _Empirical(np.quantile(values, np.linspace(0.0, 1.0, m)) if m > 1 else values[:1].copy())

    @staticmethod
    def ranks_to_uniform(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # Ties broken at random: a randomized probability integral transform, uniform even for discrete data.
        perm = rng.permutation(len(values))
        order = perm[np.argsort(values[perm], kind="stable")]  # ties keep the random order of perm
        ranks = np.empty(len(values))
        ranks[order] = np.arange(len(values))
        return (ranks + 0.5) / len(values)

    def from_uniform(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, self.levels, self.knots)

    def cdf_range(self, lo: float, hi: float) -> tuple[float, float]:
        """The levels u whose quantile lies in [lo, hi] (the quantile function is non-decreasing)."""
        if len(self.knots) == 1:
            return (0.0, 1.0) if lo <= self.knots[0] <= hi else (0.5, 0.5)
        return self._inverse(lo, "left"), self._inverse(hi, "right")

    def _inverse(self, y: float, side: Literal["left", "right"]) -> float:
        k, g = self.knots, self.levels
        i = int(np.searchsorted(k, y, side=side))
        if i == 0:
            return 0.0
        if i == len(k):
            return 1.0
        span = k[i] - k[i - 1]
        t = 0.0 if span == 0 else (y - k[i - 1]) / span
        return float(g[i - 1] + t * (g[i] - g[i - 1]))


class _Parametric:
    """A scipy.stats law with fixed parameters, clipped to the column's bounds."""

    def __init__(self, family: str, params: list[float], low: float, high: float) -> None:
        self.family, self.params, self.low, self.high = family, params, low, high
        self.law = getattr(stats, family)(*params)

    @staticmethod
    def fit(values: np.ndarray, low: float, high: float, rng: np.random.Generator) -> _Parametric:
        if len(values) > _PARAMETRIC_FIT_ROWS:
            values = values[rng.choice(len(values), _PARAMETRIC_FIT_ROWS, replace=False)]
        span = high - low
        pad = 1e-3 * span
        candidates: list[tuple[str, list[float]]] = [
            ("norm", [float(values.mean()), float(values.std()) or 1.0]),
            ("uniform", [low, span]),
        ]
        with np.errstate(all="ignore"):
            try:
                a, b, _, _ = stats.beta.fit(values, floc=low - pad, fscale=span + 2 * pad)
                candidates.append(("beta", [float(a), float(b), low - pad, span + 2 * pad]))
            except (ValueError, RuntimeError, stats.FitError):
                pass
            try:
                shape, _, scale = stats.gamma.fit(values, floc=low - pad)
                candidates.append(("gamma", [float(shape), low - pad, float(scale)]))
            except (ValueError, RuntimeError, stats.FitError):
                pass
        best = min(
            (c for c in candidates if all(math.isfinite(p) for p in c[1])),
            key=lambda c: stats.kstest(values, getattr(stats, c[0])(*c[1]).cdf).statistic,
        )
        return _Parametric(best[0], best[1], low, high)

    def to_uniform(self, values: np.ndarray) -> np.ndarray:
        return np.clip(self.law.cdf(values), _EPS_U, 1.0 - _EPS_U)

    def from_uniform(self, u: np.ndarray) -> np.ndarray:
        return np.clip(self.law.ppf(np.clip(u, _EPS_U, 1.0 - _EPS_U)), self.low, self.high)

    def cdf_range(self, lo: float, hi: float) -> tuple[float, float]:
        # Clipping puts the mass beyond the bounds on the bounds themselves.
        a = 0.0 if lo <= self.low else float(self.law.cdf(lo))
        b = 1.0 if hi >= self.high else float(self.law.cdf(hi))
        return a, b


# --------------------------------------------------------------------------------------------------
# Correlation


def pairwise_correlation(z: np.ndarray) -> np.ndarray:
    """Pearson correlations of the columns of ``z`` over the rows where both are present (NaN = missing).

    Pairs with fewer than 3 common rows, or no variance, get 0.
    """
    m = ~np.isnan(z)
    z0 = np.where(m, z, 0.0)
    mf = m.astype(np.float64)
    n = mf.T @ mf
    with np.errstate(invalid="ignore", divide="ignore"):
        sx = (z0.T @ mf) / n  # sx[i, j]: mean of column i over rows where i and j are present
        sxx = ((z0**2).T @ mf) / n
        sxy = (z0.T @ z0) / n
        cov = sxy - sx * sx.T
        var = sxx - sx**2
        r = cov / np.sqrt(var * var.T)
    r[~np.isfinite(r) | (n < 3)] = 0.0
    np.fill_diagonal(r, 1.0)
    return np.clip((r + r.T) / 2.0, -1.0, 1.0)


def nearest_correlation(r: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """The correlation matrix closest to ``r`` with eigenvalues at least ``floor`` (clip, then rescale)."""
    w, v = np.linalg.eigh((r + r.T) / 2.0)
    fixed = (v * np.maximum(w, floor)) @ v.T
    d = np.sqrt(np.diag(fixed))
    fixed = fixed / np.outer(d, d)
    np.fill_diagonal(fixed, 1.0)
    return (fixed + fixed.T) / 2.0


def _factor(cov: np.ndarray) -> np.ndarray:
    """A matrix ``L`` with ``L @ L.T == cov`` for a positive semi-definite ``cov``."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh((cov + cov.T) / 2.0)
        return v * np.sqrt(np.maximum(w, 0.0))


# --------------------------------------------------------------------------------------------------
# The generator and its model


def scaled_order(codes: np.ndarray, probs: np.ndarray, latents: np.ndarray) -> np.ndarray:
    """An order of categories along which the other columns change most steadily (optimal scaling).

    Each category's centroid of the numeric columns' latents is projected on the first principal axis of the
    frequency-weighted centroids, and categories are laid out by that score. A Gaussian copula models monotone
    relations only; with this order a category column's relations to the numbers are as monotone as one order can
    make them (with the frequency order, a middle category may sit at an end of the latent scale).

    Args:
        codes: Category codes of the rows where the column is present.
        probs: Category frequencies.
        latents: The numeric columns' latents for the same rows (NaN where missing), shape (rows, q).

    Returns:
        Category codes in layout order; categories that never occur come last.
    """
    k = len(probs)
    default = np.argsort(-probs, kind="stable")
    if k < 3 or latents.shape[1] == 0:
        return default  # two categories: either order is the same model, mirrored
    centroids = np.zeros((k, latents.shape[1]))
    for c in np.flatnonzero(probs > 0):
        rows = latents[codes == c]
        with np.errstate(invalid="ignore"):
            centroids[c] = np.nan_to_num(np.nanmean(rows, axis=0)) if len(rows) else 0.0
    centred = centroids - probs @ centroids
    _, _, vt = np.linalg.svd(centred * np.sqrt(probs)[:, None], full_matrices=False)
    axis = vt[0] * np.sign(vt[0][np.argmax(np.abs(vt[0]))])  # a fixed sign, whatever the LAPACK build
    score = np.round(centred @ axis, 12)
    seen = np.flatnonzero(probs > 0)
    return np.concatenate([seen[np.argsort(score[seen], kind="stable")], np.flatnonzero(probs == 0)])


class GaussianCopula:
    """``tabular/gaussian-copula-v1``: fit marginals and a Gaussian copula (see the module docstring).

    Args:
        marginals: ``"empirical"`` (interpolated quantiles, the default) or ``"parametric"``.
        n_knots: Quantile levels kept per numeric column (empirical marginals).
        category_order: How category intervals are laid out: ``"frequency"`` (most frequent first, as SDV) or
            ``"scaled"`` (by :func:`scaled_order`, which keeps more of the relation between a category column with
            3+ categories and the numbers).
    """

    name: ClassVar[str] = "tabular/gaussian-copula-v1"
    model_class: ClassVar[type[FittedModel]]

    def __init__(
        self,
        *,
        marginals: Literal["empirical", "parametric"] = "empirical",
        n_knots: int = 1000,
        category_order: Literal["frequency", "scaled"] = "frequency",
    ) -> None:
        if marginals not in ("empirical", "parametric"):
            raise GeneratorError(f"marginals: expected 'empirical' or 'parametric', got {marginals!r}")
        if isinstance(n_knots, bool) or not isinstance(n_knots, int) or n_knots < 2:
            raise GeneratorError(f"n_knots: expected an integer >= 2, got {n_knots!r}")
        if category_order not in ("frequency", "scaled"):
            raise GeneratorError(f"category_order: expected 'frequency' or 'scaled', got {category_order!r}")
        self.marginals = marginals
        self.n_knots = n_knots
        self.category_order = category_order

    def fit(self, table: Any, metadata: TableMetadata, rng: np.random.Generator) -> GaussianCopulaModel:
        """Learn the marginals and the latent correlations of ``table``.

        Args:
            table: The real table (a pandas DataFrame).
            metadata: Its metadata (:func:`~.metadata.infer_metadata`).
            rng: Draws the tie-breaks and the uniforms inside category intervals.

        Returns:
            The fitted model.
        """
        check_rng(rng)
        x = encode_table(table, metadata)
        cols = metadata.modelled
        null_rates = np.array([float(np.isnan(x[:, j]).mean()) for j in range(len(cols))])
        for j, col in enumerate(cols):
            if null_rates[j] == 1.0:
                raise GeneratorError(f"column '{col.name}': every value is missing in the table being fitted")
        layout = _Layout(cols, null_rates)
        z = np.full((len(x), layout.width), np.nan)
        knots: list[np.ndarray] = []
        parametric: list[dict[str, Any] | None] = [None] * len(cols)
        # Numbers first: the scaled category order needs their latents.
        for j, col in enumerate(cols):
            if col.discrete:
                continue
            present = ~np.isnan(x[:, j])
            v = x[present, j]
            if self.marginals == "parametric" and v.max() > v.min():
                law = _Parametric.fit(v, float(v.min()), float(v.max()), rng)
                parametric[j] = {"family": law.family, "params": law.params, "low": law.low, "high": law.high}
                knots.append(np.empty(0))
                u = law.to_uniform(v)
            else:
                knots.append(_Empirical.fit(v, self.n_knots).knots)
                u = _Empirical.ranks_to_uniform(v, rng)
            z[present, layout.value[j]] = special.ndtri(np.clip(u, _EPS_U, 1.0 - _EPS_U))
        numeric_latents = z[:, [int(layout.value[j]) for j, c in enumerate(cols) if not c.discrete]]
        probs: list[np.ndarray] = []
        orders: list[np.ndarray] = []
        for j, col in enumerate(cols):
            if not col.discrete:
                continue
            present = ~np.isnan(x[:, j])
            v = x[present, j]
            p = np.bincount(v.astype(np.int64), minlength=len(col.categories)) / len(v)
            order = (
                scaled_order(v, p, numeric_latents[present])
                if self.category_order == "scaled"
                else np.argsort(-p, kind="stable")
            )
            probs.append(p)
            orders.append(order)
            u = _Discrete(p, order).to_uniform(v, rng)
            z[present, layout.value[j]] = special.ndtri(np.clip(u, _EPS_U, 1.0 - _EPS_U))
        for j in range(len(cols)):
            if layout.null[j] >= 0:
                flag = np.isnan(x[:, j]).astype(np.float64)
                u_null = _Discrete(np.array([1.0 - null_rates[j], null_rates[j]])).to_uniform(flag, rng)
                z[:, layout.null[j]] = special.ndtri(np.clip(u_null, _EPS_U, 1.0 - _EPS_U))
        corr = nearest_correlation(pairwise_correlation(z))
        return GaussianCopulaModel(
            metadata,
            marginals=self.marginals,
            n_knots=self.n_knots,
            category_order=self.category_order,
            null_rates=null_rates,
            knots=knots,
            probs=probs,
            orders=orders,
            parametric=parametric,
            corr=corr,
        )


class _Layout:
    """Which latent belongs to which column: one value latent each, plus a missing-value latent if needed."""

    def __init__(self, cols: list[Column], null_rates: np.ndarray) -> None:
        self.value = np.empty(len(cols), dtype=np.int64)
        self.null = np.full(len(cols), -1, dtype=np.int64)
        k = 0
        for j in range(len(cols)):
            self.value[j] = k
            k += 1
            if null_rates[j] > 0:
                self.null[j] = k
                k += 1
        self.width = k


class GaussianCopulaModel(TabularModel):
    """A fitted Gaussian copula (see the module docstring)."""

    generator: ClassVar[str] = GaussianCopula.name

    def __init__(
        self,
        metadata: TableMetadata,
        *,
        marginals: str,
        n_knots: int,
        category_order: str,
        null_rates: np.ndarray,
        knots: list[np.ndarray],
        probs: list[np.ndarray],
        orders: list[np.ndarray],
        parametric: list[dict[str, Any] | None],
        corr: np.ndarray,
    ) -> None:
        self.metadata = metadata
        self.marginals_kind = marginals
        self.n_knots = n_knots
        self.category_order = category_order
        self.null_rates = null_rates
        self.knots = knots
        self.probs = probs
        self.orders = orders
        self.parametric = parametric
        self.corr = corr
        self._cols = metadata.modelled
        self._layout = _Layout(self._cols, null_rates)
        self._factor = _factor(corr)
        self._marginals: list[_Discrete | _Empirical | _Parametric] = []
        ki = pi = 0
        for col, law in zip(self._cols, parametric, strict=True):
            if col.discrete:
                self._marginals.append(_Discrete(probs[pi], orders[pi]))
                pi += 1
            elif law is not None:
                self._marginals.append(_Parametric(law["family"], law["params"], float(law["low"]), float(law["high"])))
                ki += 1
            else:
                self._marginals.append(_Empirical(knots[ki]))
                ki += 1
        self._nulls = {j: _Discrete(np.array([1.0 - r, r])) for j, r in enumerate(null_rates) if r > 0}

    # ---- saving

    def state(self) -> ModelState:
        """Configuration (metadata, options, parametric laws) and arrays (quantiles, frequencies, correlations)."""
        config = {
            "metadata": self.metadata.to_dict(),
            "marginals": self.marginals_kind,
            "n_knots": self.n_knots,
            "category_order": self.category_order,
            "parametric": self.parametric,
        }
        lengths = [len(k) for k in self.knots]
        plen = [len(p) for p in self.probs]
        arrays = {
            "null_rates": self.null_rates,
            "knots": np.concatenate(self.knots) if self.knots else np.empty(0),
            "knot_ptr": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "probs": np.concatenate(self.probs) if self.probs else np.empty(0),
            "prob_ptr": np.concatenate([[0], np.cumsum(plen)]).astype(np.int64),
            "category_orders": np.concatenate(self.orders).astype(np.int64) if self.orders else np.empty(0, np.int64),
            "corr": self.corr,
        }
        return ModelState(config, arrays)

    @classmethod
    def from_state(cls, state: ModelState) -> GaussianCopulaModel:
        """Rebuild the model, checking that the arrays fit the metadata."""
        cfg, arr = state.config, state.arrays
        metadata = metadata_from_config(cfg)
        cols = metadata.modelled
        names = {"null_rates", "knots", "knot_ptr", "probs", "prob_ptr", "category_orders", "corr"}
        require(set(arr) == names, f"expected arrays {sorted(names)}")
        require(cfg.get("marginals") in ("empirical", "parametric"), "marginals must be empirical or parametric")
        require(cfg.get("category_order") in ("frequency", "scaled"), "category_order must be frequency or scaled")
        parametric = cfg.get("parametric")
        require(isinstance(parametric, list) and len(parametric) == len(cols), "one parametric entry per column")
        null_rates = arr["null_rates"].astype(np.float64)
        require(
            null_rates.shape == (len(cols),) and bool(np.all((null_rates >= 0) & (null_rates <= 1))),
            "null_rates: one rate in [0, 1] per column",
        )
        numeric = [c for c in cols if not c.discrete]
        discrete = [c for c in cols if c.discrete]
        knots = _split(arr["knots"], arr["knot_ptr"], len(numeric), "knots")
        probs = _split(arr["probs"], arr["prob_ptr"], len(discrete), "probs")
        flat_orders = arr["category_orders"]
        require(
            flat_orders.dtype.kind in "iu" and len(flat_orders) == len(arr["probs"]), "one order entry per category"
        )
        orders = [flat_orders[arr["prob_ptr"][i] : arr["prob_ptr"][i + 1]].astype(np.int64) for i in range(len(probs))]
        for c, p, o in zip(discrete, probs, orders, strict=True):
            require(
                len(p) == len(c.categories) and bool(np.all(p >= 0)) and abs(p.sum() - 1) < 1e-6,
                f"probs of '{c.name}' do not match its categories",
            )
            require(
                np.array_equal(np.sort(o), np.arange(len(p))) and bool(np.all(np.diff((p[o] > 0).astype(int)) <= 0)),
                f"category order of '{c.name}' must be a permutation with unseen categories last",
            )
        for c, k, law in zip(
            numeric, knots, [p for c, p in zip(cols, parametric, strict=True) if not c.discrete], strict=True
        ):
            if law is None:
                require(len(k) >= 1 and bool(np.all(np.diff(k) >= 0)), f"knots of '{c.name}' must be sorted")
            else:
                require(
                    isinstance(law, dict)
                    and law.get("family") in FAMILIES
                    and isinstance(law.get("params"), list)
                    and all(isinstance(v, int | float) for v in law["params"])
                    and isinstance(law.get("low"), int | float)
                    and isinstance(law.get("high"), int | float),
                    f"parametric law of '{c.name}' must name one of {FAMILIES} with numeric params",
                )
        width = _Layout(cols, null_rates).width
        corr = arr["corr"].astype(np.float64)
        require(
            corr.shape == (width, width) and bool(np.allclose(corr, corr.T)) and bool(np.all(np.isfinite(corr))),
            f"corr must be a symmetric {width}x{width} matrix",
        )
        return cls(
            metadata,
            marginals=cfg["marginals"],
            n_knots=int(cfg.get("n_knots", 1000)),
            category_order=cfg["category_order"],
            null_rates=null_rates,
            knots=knots,
            probs=probs,
            orders=orders,
            parametric=parametric,
            corr=corr,
        )

    # ---- sampling

    def _decode(self, z: np.ndarray) -> np.ndarray:
        out = np.empty((len(z), len(self._cols)))
        for j, marginal in enumerate(self._marginals):
            out[:, j] = marginal.from_uniform(special.ndtr(z[:, self._layout.value[j]]))
            if j in self._nulls:
                missing = self._nulls[j].from_uniform(special.ndtr(z[:, self._layout.null[j]])) == 1.0
                out[missing, j] = np.nan
        return out

    def _constraints(self, conditions: list[Condition]) -> dict[int, tuple[float, float]]:
        """Each fixed latent and its interval on the uniform scale."""
        out: dict[int, tuple[float, float]] = {}
        for c in conditions:
            j = c.index
            if j in self._nulls:
                out[int(self._layout.null[j])] = self._nulls[j].interval(1 if c.missing else 0)
            if c.missing:
                continue
            marginal = self._marginals[j]
            if isinstance(marginal, _Discrete):
                lo, hi = marginal.interval(int(c.value))
                if hi <= lo:
                    raise ConditionError(
                        f"{c.given!r} never occurs in the fitted data", path=f"conditions.{c.column.name}"
                    )
            else:
                lo, hi = marginal.cdf_range(*c.bounds())  # a single value of a continuous column: a point
            out[int(self._layout.value[j])] = (lo, hi)
        return out

    def _sample_encoded(
        self, n: int, rng: np.random.Generator, conditions: list[Condition], max_draws: int
    ) -> np.ndarray:
        width = self._layout.width
        if not conditions:
            return self._decode(rng.standard_normal((n, width)) @ self._factor.T)
        box = self._constraints(conditions)
        points = {
            k: special.ndtri(np.clip((lo + hi) / 2, _EPS_U, 1 - _EPS_U))
            for k, (lo, hi) in box.items()
            if hi - lo < _POINT_MASS
        }
        wide = sorted(k for k in box if k not in points)
        p_idx = np.array(sorted(points), dtype=np.int64)
        w_idx = np.array(wide, dtype=np.int64)
        z_p = np.array([points[k] for k in p_idx])
        mean_w, cov_w = _conditional(self.corr, w_idx, p_idx, z_p)
        z_w = self._draw_box(n, rng, w_idx, mean_w, cov_w, box, conditions, max_draws)
        fixed = np.concatenate([p_idx, w_idx])
        z = np.empty((n, width))
        z[:, p_idx] = z_p
        z[:, w_idx] = z_w
        rest = np.array([k for k in range(width) if k not in set(fixed.tolist())], dtype=np.int64)
        if len(rest):
            s_rf = self.corr[np.ix_(rest, fixed)]
            s_ff = self.corr[np.ix_(fixed, fixed)]
            gain = np.linalg.solve(s_ff, s_rf.T).T  # S_rf S_ff^-1
            cov = self.corr[np.ix_(rest, rest)] - gain @ s_rf.T
            z[:, rest] = z[:, fixed] @ gain.T + rng.standard_normal((n, len(rest))) @ _factor(cov).T
        return self._decode(z)

    def _draw_box(
        self,
        n: int,
        rng: np.random.Generator,
        idx: np.ndarray,
        mean: np.ndarray,
        cov: np.ndarray,
        box: dict[int, tuple[float, float]],
        conditions: list[Condition],
        max_draws: int,
    ) -> np.ndarray:
        """Latents ``idx`` from N(mean, cov) restricted to their intervals."""
        if len(idx) == 0:
            return np.empty((n, 0))
        lo = special.ndtri(np.array([box[k][0] for k in idx]))
        hi = special.ndtri(np.array([box[k][1] for k in idx]))
        if len(idx) == 1:
            # One interval: exact, by the inverse CDF of the truncated normal.
            sd = math.sqrt(max(float(cov[0, 0]), 0.0))
            if sd == 0.0:
                return np.full((n, 1), float(np.clip(mean[0], lo[0], hi[0])))
            a, b = (lo[0] - mean[0]) / sd, (hi[0] - mean[0]) / sd
            return (mean[0] + sd * stats.truncnorm.ppf(rng.random(n), a, b)).reshape(n, 1)
        factor = _factor(cov)
        what = "conditions " + ", ".join(f"{c.column.name}={c.given!r}" for c in conditions)
        return rejection_sample(
            lambda m: mean + rng.standard_normal((m, len(idx))) @ factor.T,
            lambda z: np.all((z >= lo) & (z <= hi), axis=1),
            n,
            max_draws=max_draws,
            what=what,
        )


def _conditional(corr: np.ndarray, w: np.ndarray, p: np.ndarray, z_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of latents ``w`` given latents ``p`` equal ``z_p``."""
    s_ww = corr[np.ix_(w, w)]
    if len(p) == 0:
        return np.zeros(len(w)), s_ww
    s_wp = corr[np.ix_(w, p)]
    gain = np.linalg.solve(corr[np.ix_(p, p)], s_wp.T).T
    return gain @ z_p, s_ww - gain @ s_wp.T


def _split(flat: np.ndarray, ptr: np.ndarray, count: int, name: str) -> list[np.ndarray]:
    require(
        ptr.ndim == 1
        and len(ptr) == count + 1
        and ptr[0] == 0
        and ptr[-1] == len(flat)
        and bool(np.all(np.diff(ptr) >= 0)),
        f"{name}_ptr does not index {name}",
    )
    values = flat.astype(np.float64)
    require(bool(np.all(np.isfinite(values))), f"{name} must be finite")
    return [values[ptr[i] : ptr[i + 1]] for i in range(count)]


GaussianCopula.model_class = GaussianCopulaModel
