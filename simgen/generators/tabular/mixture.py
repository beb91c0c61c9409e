"""``tabular/gaussian-copula-v2``: a mixture of Gaussian copulas, one per class of a categorical column.

A single Gaussian copula (``tabular/gaussian-copula-v1``) models monotone relations only. A table whose rows
fall into classes (cultivars, digits, diagnoses) is a mixture of clusters: each class has its own means, spreads
and correlations, which one copula blurs into one ellipse. This generator fits one copula per class of a
*conditioning column* and draws each row's class from the classes' frequencies, then the row from its class's
copula. Everything else (marginals, ties, categories, missing values, rounding, exact conditions) works as in
:mod:`.copula`, whose model each class reuses.

**Which column.** ``condition_on`` names it (a categorical or boolean column without missing values). By
default it is the metadata's ``target`` (``target: label`` in the override file) when that is such a column;
else the generator picks the categorical or boolean column with the fewest levels among those with 2 to
:data:`AUTO_MAX_LEVELS` levels and at least ``min_class_rows`` rows in every level (ties go to the later column,
since a label usually comes last). If no column qualifies, or ``condition_on=False``, the model is one copula:
then it samples exactly what ``tabular/gaussian-copula-v1`` samples with the same seeds.

**Small classes** are shrunk toward the whole table, so a 30-row class stays stable:

- a numeric marginal keeps the class's mean and standard deviation and takes the shape ``w S_k + (1 - w)
  S_table`` (``S``: a quantile function standardized to mean 0 and sd 1), so a small class borrows the table's
  shape, where its few values would otherwise be copied most closely, but its cluster stays where it is;
- category frequencies and missing-value rates are ``w p_k + (1 - w) p_table``, so every category the table
  has keeps some mass in every class;
- in both, ``w = e * n_k / (n_k + shrinkage)``, where ``e`` in [0, 1] is the evidence that the class differs
  from the rest of the table in that column beyond sampling noise (a positive-part James-Stein factor on the
  Kolmogorov-Smirnov distance, or on the chi-square statistic of the counts): a column where the classes do
  not differ is not made noisier by splitting the table;
- the latent correlation is ``w R_k + (1 - w) R_within`` with ``w = e * n_k / (n_k + shrinkage + 4 d)``, where
  ``d`` is the number of latents, ``e`` the same kind of evidence factor for the whole matrix, and ``R_within``
  the correlation of all classes' latents pooled (each class's latents are
  centred by its own marginals, so ``R_within`` holds the structure shared by the classes, not the differences
  between them, which the per-class marginals already carry).

**Conditional sampling.** A condition on the conditioning column picks that class's copula directly. Other
conditions draw each row's class from its posterior given them (the class frequency times the probability, or
density, each class's copula gives the fixed values), then the row from that class's conditional copula.

The model file holds per-class quantiles of the real columns and the class frequencies: treat it with the same
care as the real table.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import special, stats

from simgen.errors import did_you_mean
from simgen.generators.base import GeneratorError, ModelState, check_rng
from simgen.generators.tabular.copula import (
    _EPS_U,
    _POINT_MASS,
    GaussianCopula,
    GaussianCopulaModel,
    _conditional,
    _Discrete,
    _Empirical,
    _factor,
    _Layout,
    _Parametric,
    nearest_correlation,
    pairwise_correlation,
    scaled_order,
)
from simgen.generators.tabular.metadata import Column, TableMetadata, encode_table
from simgen.generators.tabular.model import (
    Condition,
    ConditionError,
    TabularModel,
    metadata_from_config,
    require,
)

__all__ = ["AUTO_MAX_LEVELS", "GaussianCopulaMixture", "GaussianCopulaMixtureModel", "choose_condition_column"]

#: The automatic choice only considers columns with at most this many levels.
AUTO_MAX_LEVELS = 20
#: Draws per class used to estimate the probability of several wide conditions at once.
_LIKELIHOOD_DRAWS = 4096
#: E[K^2] for the Kolmogorov distribution: the mean squared KS distance of two samples of one law, times n1n2/(n1+n2).
_KS_SQ_MEAN = math.pi**2 / 12.0
#: A numeric column with fewer distinct values is a lattice (counts, codes, scores): its standardized shape is not
#: comparable across classes, so its quantile functions are averaged instead.
_MIN_SHAPE_VALUES = 20


def choose_condition_column(
    x: np.ndarray, cols: list[Column], condition_on: str | bool, min_class_rows: int, target: str | None = None
) -> int | None:
    """The index (among ``cols``) of the column to condition on, or None for a single copula.

    Args:
        x: The encoded table (:func:`~.metadata.encode_table`).
        cols: Its modelled columns.
        condition_on: A column name, True to choose automatically, or False for none.
        min_class_rows: For the automatic choice, the fewest rows every level must have.
        target: The metadata's target: the automatic choice takes it when it is a categorical or boolean column
            without missing values.

    Raises:
        GeneratorError: A named column that does not exist, is not categorical or boolean, or has missing values.
    """
    if condition_on is False:
        return None
    if isinstance(condition_on, str):
        names = [c.name for c in cols]
        if condition_on not in names:
            raise GeneratorError(
                f"condition_on: no modelled column '{condition_on}'{did_you_mean(condition_on, names)}; "
                f"columns: {', '.join(names)}"
            )
        j = names.index(condition_on)
        if not cols[j].discrete:
            raise GeneratorError(
                f"condition_on: column '{condition_on}' is {cols[j].type}; expected a categorical or boolean column"
            )
        if np.isnan(x[:, j]).any():
            raise GeneratorError(
                f"condition_on: column '{condition_on}' has missing values; fill them in or choose another column"
            )
        return j
    names = [c.name for c in cols]
    if target in names:
        j = names.index(target)
        if cols[j].discrete and not np.isnan(x[:, j]).any():
            return j  # the user's label; a numeric target (regression) leaves the choice to the rule below
    best: tuple[int, int] | None = None
    for j, col in enumerate(cols):
        if not col.discrete or np.isnan(x[:, j]).any():
            continue
        counts = np.bincount(x[:, j].astype(np.int64), minlength=len(col.categories))
        counts = counts[counts > 0]
        if not 2 <= len(counts) <= AUTO_MAX_LEVELS or counts.min() < min_class_rows:
            continue
        if best is None or len(counts) <= best[0]:  # "<=": ties go to the later column
            best = (len(counts), j)
    return None if best is None else best[1]


def numeric_evidence(own: np.ndarray, rest: np.ndarray) -> float:
    """How much of a class's difference from the rest of the table, in one numeric column, is more than noise.

    A positive-part James-Stein factor ``1 - E0[D^2] / D^2`` on the two-sample Kolmogorov-Smirnov distance ``D``,
    where ``E0[D^2] = (pi^2 / 12) (n1 + n2) / (n1 n2)`` is its expectation when the class does not differ.
    0 means "no evidence of a difference" (use the table's marginal), 1 a clear difference.
    """
    if len(own) == 0 or len(rest) == 0:
        return 1.0
    d = float(stats.ks_2samp(own, rest).statistic)
    null = _KS_SQ_MEAN * (len(own) + len(rest)) / (len(own) * len(rest))
    return float(np.clip(1.0 - null / d**2, 0.0, 1.0)) if d > 0 else 0.0


def count_evidence(own: np.ndarray, rest: np.ndarray) -> float:
    """The James-Stein factor ``1 - df / X^2`` of a class's category counts against the rest's (chi-square)."""
    table = np.vstack([own, rest]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or min(table.sum(axis=1)) <= 0:
        return 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    x2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.clip(1.0 - (table.shape[1] - 1) / x2, 0.0, 1.0)) if x2 > 0 else 0.0


def correlation_evidence(own: np.ndarray, pooled: np.ndarray, n: int) -> float:
    """The James-Stein factor of a class's latent correlations against the pooled within-class ones.

    The squared distance between the two matrices, against the sampling variance ``(1 - r^2)^2 / n`` of each
    correlation estimated from ``n`` rows (Ledoit and Wolf's shrinkage toward a target, in its simplest form).
    """
    iu = np.triu_indices(len(own), 1)
    diff = float(((own - pooled)[iu] ** 2).sum())
    noise = float(((1.0 - pooled[iu] ** 2) ** 2).sum()) / max(n, 1)
    return float(np.clip(1.0 - noise / diff, 0.0, 1.0)) if diff > 0 else 0.0


def shrunk_quantiles(own: np.ndarray, pooled: np.ndarray, weight: float, n_knots: int) -> np.ndarray:
    """The class's quantile function with its *shape* moved toward the table's, keeping its mean and spread.

    Both quantile functions are standardized (mean 0, standard deviation 1), averaged with ``weight`` on the
    class's, and put back at the class's mean and standard deviation. A small class borrows the table's shape
    (where its few values would be copied most closely) but keeps its own place: its cluster is neither moved
    toward the others nor mixed with them. Where there is no comparable shape to borrow (a column constant in the
    class or the table, a lattice of few values, or a borrowed shape that would leave the column's range, as a
    skewed column's does), the quantile functions themselves are averaged.
    """
    m = min(n_knots, max(len(own), len(pooled)))
    levels = np.linspace(0.0, 1.0, m) if m > 1 else np.array([0.5])
    q_own = np.quantile(own, levels)
    if weight >= 1.0:
        return q_own
    q_pool = np.quantile(pooled, levels)
    mu, sd, mu_p, sd_p = float(own.mean()), float(own.std()), float(pooled.mean()), float(pooled.std())
    if sd == 0.0 or sd_p == 0.0 or len(np.unique(pooled)) < _MIN_SHAPE_VALUES:
        return weight * q_own + (1.0 - weight) * q_pool
    q = mu + sd * (weight * (q_own - mu) / sd + (1.0 - weight) * (q_pool - mu_p) / sd_p)
    if q[0] < pooled.min() or q[-1] > pooled.max():  # the borrowed shape does not fit the column's range here
        return weight * q_own + (1.0 - weight) * q_pool
    return q


class GaussianCopulaMixture:
    """``tabular/gaussian-copula-v2``: one Gaussian copula per class of a categorical column (see the module).

    Args:
        condition_on: The column whose classes get their own copula; True (default) chooses one (see the
            module docstring), False fits a single copula.
        min_class_rows: For the automatic choice, the fewest rows every level of the column must have.
        shrinkage: Pseudo-rows of the whole table added to every class (marginals, frequencies, correlations).
        marginals: ``"empirical"`` or ``"parametric"``, as in ``tabular/gaussian-copula-v1`` (parametric laws are
            fitted to each class's values, within the table's bounds).
        n_knots: Quantile levels kept per numeric column and class.
        category_order: ``"frequency"`` or ``"scaled"``, as in ``tabular/gaussian-copula-v1``, per class.
    """

    name: ClassVar[str] = "tabular/gaussian-copula-v2"
    model_class: ClassVar[type[GaussianCopulaMixtureModel]]

    def __init__(
        self,
        *,
        condition_on: str | bool = True,
        min_class_rows: int = 20,
        shrinkage: float = 50.0,
        marginals: Literal["empirical", "parametric"] = "empirical",
        n_knots: int = 1000,
        category_order: Literal["frequency", "scaled"] = "frequency",
    ) -> None:
        if not isinstance(condition_on, str | bool) or condition_on == "":
            raise GeneratorError(f"condition_on: expected a column name, True or False, got {condition_on!r}")
        if isinstance(min_class_rows, bool) or not isinstance(min_class_rows, int) or min_class_rows < 1:
            raise GeneratorError(f"min_class_rows: expected an integer >= 1, got {min_class_rows!r}")
        if isinstance(shrinkage, bool) or not isinstance(shrinkage, int | float) or not 0 < shrinkage < math.inf:
            raise GeneratorError(f"shrinkage: expected a positive number, got {shrinkage!r}")
        self.single = GaussianCopula(marginals=marginals, n_knots=n_knots, category_order=category_order)
        self.condition_on = condition_on
        self.min_class_rows = min_class_rows
        self.shrinkage = float(shrinkage)

    def fit(self, table: Any, metadata: TableMetadata, rng: np.random.Generator) -> GaussianCopulaMixtureModel:
        """Choose the conditioning column and fit one shrunk copula per class (or one copula if there is none).

        Args:
            table: The real table (a pandas DataFrame).
            metadata: Its metadata.
            rng: Draws the tie-breaks and the uniforms inside category intervals.

        Returns:
            The fitted model.
        """
        check_rng(rng)
        x = encode_table(table, metadata)
        cols = metadata.modelled
        jc = choose_condition_column(x, cols, self.condition_on, self.min_class_rows, metadata.target) if cols else None
        options = {"shrinkage": self.shrinkage, "min_class_rows": self.min_class_rows}
        if jc is None:
            single = self.single.fit(table, metadata, rng)  # the same draws as v1: the same model and samples
            return GaussianCopulaMixtureModel(metadata, options, None, np.zeros(0, np.int64), np.ones(1), [single])
        return self._fit_classes(x, metadata, jc, rng, options)

    def _fit_classes(
        self, x: np.ndarray, metadata: TableMetadata, jc: int, rng: np.random.Generator, options: dict[str, Any]
    ) -> GaussianCopulaMixtureModel:
        cols = metadata.modelled
        null_rates = np.isnan(x).mean(axis=0)
        for j, col in enumerate(cols):
            if null_rates[j] == 1.0:
                raise GeneratorError(f"column '{col.name}': every value is missing in the table being fitted")
        codes = x[:, jc].astype(np.int64)
        counts = np.bincount(codes, minlength=len(cols[jc].categories))
        classes = np.flatnonzero(counts > 0)
        layout = _Layout(cols, null_rates)
        fits = [self._fit_class(x, x[codes == k], cols, jc, int(k), layout, null_rates, rng) for k in classes]
        latents = [f.pop("z") for f in fits]
        within = pairwise_correlation(np.concatenate(latents))
        components = []
        for fit, z in zip(fits, latents, strict=True):
            own = pairwise_correlation(z)
            # d latents need several rows each before a class's own correlations are trusted (they are d^2 / 2
            # numbers): the prior counts 4 pseudo-rows per latent on top of ``shrinkage``.
            prior = self.shrinkage + 4 * layout.width
            w = correlation_evidence(own, within, len(z)) * len(z) / (len(z) + prior)
            corr = nearest_correlation(w * own + (1.0 - w) * within)
            components.append(
                GaussianCopulaModel(
                    metadata,
                    marginals=self.single.marginals,
                    n_knots=self.single.n_knots,
                    category_order=self.single.category_order,
                    corr=corr,
                    **fit,
                )
            )
        weights = counts[classes] / counts.sum()
        return GaussianCopulaMixtureModel(metadata, options, jc, classes.astype(np.int64), weights, components)

    def _fit_class(
        self,
        x_all: np.ndarray,
        x: np.ndarray,
        cols: list[Column],
        jc: int,
        k: int,
        layout: _Layout,
        pooled_nulls: np.ndarray,
        rng: np.random.Generator,
    ) -> dict[str, Any]:
        """One class's marginals (shrunk toward the whole table) and its latents (``"z"``, for the correlations)."""
        tau = self.shrinkage
        z = np.full((len(x), layout.width), np.nan)
        knots: list[np.ndarray] = []
        parametric: list[dict[str, Any] | None] = [None] * len(cols)
        for j, col in enumerate(cols):
            if col.discrete:
                continue
            present = ~np.isnan(x[:, j])
            v, pooled = x[present, j], x_all[~np.isnan(x_all[:, j]), j]
            if len(v) == 0:  # the class never has this value: the table's marginal, no latent to learn from
                knots.append(_Empirical.fit(pooled, self.single.n_knots).knots)
                continue
            if self.single.marginals == "parametric" and pooled.max() > pooled.min() and v.max() > v.min():
                law = _Parametric.fit(v, float(pooled.min()), float(pooled.max()), rng)
                parametric[j] = {"family": law.family, "params": law.params, "low": law.low, "high": law.high}
                knots.append(np.empty(0))
                u = law.to_uniform(v)
            else:
                rest = x_all[(x_all[:, jc] != k) & ~np.isnan(x_all[:, j]), j]
                w = numeric_evidence(v, rest) * len(v) / (len(v) + tau)
                q = shrunk_quantiles(v, pooled, w, self.single.n_knots)
                knots.append(q)
                u = _Empirical.ranks_to_uniform(v, rng)
            z[present, layout.value[j]] = special.ndtri(np.clip(u, _EPS_U, 1.0 - _EPS_U))
        numeric = z[:, [int(layout.value[j]) for j, c in enumerate(cols) if not c.discrete]]
        probs: list[np.ndarray] = []
        orders: list[np.ndarray] = []
        for j, col in enumerate(cols):
            if not col.discrete:
                continue
            if j == jc:  # the class itself: one category, no latent (it would be constant)
                p = np.zeros(len(col.categories))
                p[k] = 1.0
                probs.append(p)
                orders.append(np.argsort(-p, kind="stable"))
                continue
            present = ~np.isnan(x[:, j])
            v = x[present, j]
            all_v = x_all[~np.isnan(x_all[:, j]), j].astype(np.int64)
            p_pool = np.bincount(all_v, minlength=len(col.categories)) / len(all_v)
            own = np.bincount(v.astype(np.int64), minlength=len(col.categories))
            w = count_evidence(own, np.bincount(all_v, minlength=len(col.categories)) - own) * len(v) / (len(v) + tau)
            p = w * own / max(len(v), 1) + (1.0 - w) * p_pool  # w < 1: every category of the table keeps mass
            order = (
                scaled_order(v, p, numeric[present])
                if self.single.category_order == "scaled"
                else np.argsort(-p, kind="stable")
            )
            probs.append(p)
            orders.append(order)
            if len(v):
                u = _Discrete(p, order).to_uniform(v, rng)
                z[present, layout.value[j]] = special.ndtri(np.clip(u, _EPS_U, 1.0 - _EPS_U))
        nulls = np.zeros(len(cols))
        for j in range(len(cols)):
            if layout.null[j] >= 0:
                flag = np.isnan(x[:, j])
                own = np.array([len(x) - flag.sum(), flag.sum()])
                rest = np.round(np.array([1.0 - pooled_nulls[j], pooled_nulls[j]]) * len(x_all)) - own
                w = count_evidence(own, rest) * len(x) / (len(x) + tau)
                nulls[j] = w * flag.mean() + (1.0 - w) * pooled_nulls[j]  # in (0, 1): the layout is kept
                u_null = _Discrete(np.array([1.0 - nulls[j], nulls[j]])).to_uniform(flag.astype(np.float64), rng)
                z[:, layout.null[j]] = special.ndtri(np.clip(u_null, _EPS_U, 1.0 - _EPS_U))
        return {"null_rates": nulls, "knots": knots, "probs": probs, "orders": orders, "parametric": parametric, "z": z}


class GaussianCopulaMixtureModel(TabularModel):
    """A fitted mixture: class frequencies and one :class:`~.copula.GaussianCopulaModel` per class.

    Attributes:
        condition: The conditioning column's index among the modelled columns, or None (one copula).
        classes: The category codes of the classes, one per component.
        weights: The classes' frequencies in the fitted table.
        components: One copula per class (a single one when ``condition`` is None).
    """

    generator: ClassVar[str] = GaussianCopulaMixture.name

    def __init__(
        self,
        metadata: TableMetadata,
        options: dict[str, Any],
        condition: int | None,
        classes: np.ndarray,
        weights: np.ndarray,
        components: list[GaussianCopulaModel],
    ) -> None:
        self.metadata = metadata
        self.options = options
        self.condition = condition
        self.classes = classes
        self.weights = weights
        self.components = components

    @property
    def condition_column(self) -> str | None:
        """The name of the column whose classes have their own copula, or None."""
        return None if self.condition is None else self.metadata.modelled[self.condition].name

    # ---- saving

    def state(self) -> ModelState:
        """The options, the conditioning column and each class's copula (arrays prefixed ``c<i>.``)."""
        configs = []
        arrays: dict[str, np.ndarray] = {"class_codes": self.classes, "class_weights": self.weights}
        for i, comp in enumerate(self.components):
            st = comp.state()
            configs.append({k: v for k, v in st.config.items() if k != "metadata"})  # stored once, at the top
            arrays.update({f"c{i}.{k}": v for k, v in st.arrays.items()})
        config = {
            "metadata": self.metadata.to_dict(),
            "options": self.options,
            "condition_on": self.condition_column,
            "components": configs,
        }
        return ModelState(config, arrays)

    @classmethod
    def from_state(cls, state: ModelState) -> GaussianCopulaMixtureModel:
        """Rebuild the model, checking the classes against the metadata and every component."""
        cfg, arr = state.config, state.arrays
        metadata = metadata_from_config(cfg)
        cols = metadata.modelled
        comps = cfg.get("components")
        require(isinstance(comps, list) and len(comps) >= 1, "components must be a non-empty list")
        require(isinstance(cfg.get("options"), dict), "options must be a mapping")
        require({"class_codes", "class_weights"} <= set(arr), "class_codes and class_weights are missing")
        codes, weights = arr["class_codes"], arr["class_weights"].astype(np.float64)
        name = cfg.get("condition_on")
        if name is None:
            require(len(comps) == 1 and len(codes) == 0, "a model without a conditioning column has one component")
            condition = None
        else:
            names = [c.name for c in cols]
            require(isinstance(name, str) and name in names, f"condition_on '{name}' is not a modelled column")
            condition = names.index(name)
            n_cat = len(cols[condition].categories)
            require(cols[condition].discrete, f"condition_on '{name}' is not categorical")
            require(
                codes.dtype.kind in "iu"
                and len(codes) == len(comps)
                and bool(np.all(np.diff(codes) > 0))
                and bool(np.all((codes >= 0) & (codes < n_cat))),
                "class_codes: one increasing category code per component",
            )
        require(
            weights.shape == (len(comps),) and bool(np.all(weights > 0)) and abs(weights.sum() - 1) < 1e-9,
            "class_weights: one positive weight per component, summing to 1",
        )
        components = []
        for i, comp in enumerate(comps):
            require(isinstance(comp, dict), f"component {i} must be a mapping")
            prefix = f"c{i}."
            sub = {k[len(prefix) :]: v for k, v in arr.items() if k.startswith(prefix)}
            components.append(GaussianCopulaModel.from_state(ModelState({**comp, "metadata": cfg["metadata"]}, sub)))
        known = {"class_codes", "class_weights"} | {
            f"c{i}.{k}" for i, c in enumerate(components) for k in c.state().arrays
        }
        require(set(arr) == known, "unexpected arrays")
        return cls(metadata, cfg["options"], condition, codes.astype(np.int64), weights, components)

    # ---- sampling

    def _sample_encoded(
        self, n: int, rng: np.random.Generator, conditions: list[Condition], max_draws: int
    ) -> np.ndarray:
        if self.condition is None:
            return self.components[0]._sample_encoded(n, rng, conditions, max_draws)
        on_class = [c for c in conditions if c.index == self.condition]
        rest = [c for c in conditions if c.index != self.condition]
        if on_class:  # the class is given: its own copula, directly
            k = np.flatnonzero(self.classes == int(on_class[0].value))
            if len(k) == 0:
                raise ConditionError(
                    f"{on_class[0].given!r} never occurs in the fitted data",
                    path=f"conditions.{on_class[0].column.name}",
                )
            return self.components[int(k[0])]._sample_encoded(n, rng, rest, max_draws)
        weights = self.weights if not rest else self._posterior(rest, rng)
        cum = np.cumsum(weights)
        labels = np.minimum(np.searchsorted(cum / cum[-1], rng.random(n), side="right"), len(weights) - 1)
        out = np.empty((n, len(self.metadata.modelled)))
        for k, comp in enumerate(self.components):
            rows = np.flatnonzero(labels == k)
            if len(rows):
                out[rows] = comp._sample_encoded(len(rows), rng, rest, max_draws)
        return out

    def _posterior(self, conditions: list[Condition], rng: np.random.Generator) -> np.ndarray:
        """Each class's probability given the conditions (its frequency times the conditions' likelihood)."""
        logs = np.array([_log_likelihood(c, conditions, rng) for c in self.components]) + np.log(self.weights)
        if not np.isfinite(logs).any():
            what = ", ".join(f"{c.column.name}={c.given!r}" for c in conditions)
            raise ConditionError(f"{what}: no class of the fitted model can produce these values", path="conditions")
        p = np.exp(logs - logs.max())
        return p / p.sum()


def _log_density(marginal: _Discrete | _Empirical | _Parametric, value: float) -> float:
    """The log density of a continuous marginal at ``value`` (for an unrounded point condition)."""
    if isinstance(marginal, _Parametric):
        return float(marginal.law.logpdf(value))
    if not isinstance(marginal, _Empirical) or len(marginal.knots) == 1:
        return 0.0  # a constant column: the condition is its value, the same in every class
    k, g = marginal.knots, marginal.levels
    if not k[0] <= value <= k[-1]:
        return -math.inf
    # The slope of the CDF around the value, over the knots that bracket it (ties widen the bracket).
    left = max(int(np.searchsorted(k, value, side="left")) - 1, 0)
    right = min(int(np.searchsorted(k, value, side="right")), len(k) - 1)
    span = k[right] - k[left]
    return math.log((g[right] - g[left]) / span) if span > 0 else 0.0


def _log_likelihood(comp: GaussianCopulaModel, conditions: list[Condition], rng: np.random.Generator) -> float:
    """Log P(conditions) under one copula: interval masses, or densities for unrounded points, times the copula."""
    try:
        box = comp._constraints(conditions)
    except ConditionError:
        return -math.inf
    point_of = {int(comp._layout.value[c.index]): c for c in conditions if not c.missing}
    logp = 0.0
    points: dict[int, float] = {}
    for k, (lo, hi) in box.items():
        width = hi - lo
        if width >= _POINT_MASS:
            continue
        if width > 0:
            logp += math.log(width)
        else:  # an unrounded value of a continuous column: its density (the same units in every class)
            cond = point_of[k]
            logp += _log_density(comp._marginals[cond.index], cond.value)
        points[k] = float(special.ndtri(np.clip((lo + hi) / 2, _EPS_U, 1 - _EPS_U)))
    if not math.isfinite(logp):
        return -math.inf
    p_idx = np.array(sorted(points), dtype=np.int64)
    z_p = np.array([points[k] for k in p_idx])
    if len(p_idx):  # the copula density at the points: N(z; 0, R) over the product of standard normals
        r = comp.corr[np.ix_(p_idx, p_idx)]
        _, logdet = np.linalg.slogdet(r)
        logp += float(-0.5 * z_p @ (np.linalg.solve(r, z_p) - z_p) - 0.5 * logdet)
    wide = np.array(sorted(k for k in box if k not in points), dtype=np.int64)
    if len(wide):
        mean, cov = _conditional(comp.corr, wide, p_idx, z_p)
        lo = special.ndtri(np.array([box[k][0] for k in wide]))
        hi = special.ndtri(np.array([box[k][1] for k in wide]))
        if len(wide) == 1:
            sd = math.sqrt(max(float(cov[0, 0]), 0.0))
            if sd == 0.0:
                mass = float(lo[0] <= mean[0] <= hi[0])
            else:
                mass = float(stats.norm.cdf(hi[0], mean[0], sd) - stats.norm.cdf(lo[0], mean[0], sd))
        else:
            z = mean + rng.standard_normal((_LIKELIHOOD_DRAWS, len(wide))) @ _factor(cov).T
            mass = max(float(np.all((z >= lo) & (z <= hi), axis=1).mean()), 0.5 / _LIKELIHOOD_DRAWS)
        logp += math.log(mass) if mass > 0 else -math.inf
    return logp


GaussianCopulaMixture.model_class = GaussianCopulaMixtureModel
