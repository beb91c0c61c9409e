"""Issue 14's targets for the default generator on real bundled tables, one fixed 50/50 split each.

Targets: quality score >= 0.85, TSTR >= 0.9 x TRTR (macro F1 or R^2), DCR share within 50 +- 5%, membership-
inference AUC <= 0.6. The synthetic table has as many rows as the training half. The default is
``tabular/gaussian-copula-v2`` (one copula per class); it meets all four on breast_cancer, digits, and, where
statsmodels is installed, fair and anes96. The misses are strict xfails with the measured values, not hidden by a
looser bound:

- wine (89 training rows, 3 cultivars of about 30): DCR share 0.562. The single copula (v1) measured 0.663 with
  TSTR/TRTR 0.64; over 5 splits v1's share ranged 0.47 to 0.66, independent marginals 0.43 to 0.60, and each
  split's 95% bootstrap interval is about +-0.09 wide, wider than the +-0.05 target.
- diabetes (221 rows; the classes are the sex column, the only categorical one): DCR share 0.552. Over 3 other
  splits the share of v2 ranged 0.51 to 0.58, and v1's 0.47 to 0.53 (v1 meets all four here, at 0.484).
"""

from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from simgen.generators import DEFAULT_TABULAR, REGISTRY  # noqa: E402
from simgen.generators.tabular.datasets import BUNDLED, load_bundled  # noqa: E402
from simgen.generators.tabular.metadata import infer_metadata  # noqa: E402
from simgen.validators.tabular import quality_report, table_privacy, tabular_utility  # noqa: E402

WINE_DCR = "wine has 89 training rows: DCR share 0.562 here; noise +-0.09 (see module docstring)"
DIABETES_DCR = "diabetes split by sex: DCR share 0.552 here; 0.51 to 0.58 over splits (see module docstring)"
MISSES = {("wine", "dcr_share"): WINE_DCR, ("diabetes", "dcr_share"): DIABETES_DCR}
TARGETS = {
    "quality": lambda v: v >= 0.85,
    "tstr_ratio": lambda v: v >= 0.9,
    "dcr_share": lambda v: abs(v - 0.5) <= 0.05,
    "mia_auc": lambda v: v <= 0.6,
}
_CACHE: dict[str, dict[str, float]] = {}


def scores(name: str) -> dict[str, float]:
    """Every score of the default generator on one bundled table (computed once per table)."""
    if name not in _CACHE:
        from sklearn.model_selection import train_test_split

        if BUNDLED[name][0] == "statsmodels":
            pytest.importorskip("statsmodels")
        table, target = load_bundled(name)
        meta = infer_metadata(table)
        strat = table[target] if meta.column(target).discrete else None
        train, holdout = train_test_split(table, test_size=0.5, random_state=0, stratify=strat)
        train, holdout = train.reset_index(drop=True), holdout.reset_index(drop=True)
        model = REGISTRY.get(DEFAULT_TABULAR)().fit(train, meta, np.random.default_rng(0))
        syn = model.sample(len(train), np.random.default_rng(1))
        utility = tabular_utility(train, holdout, syn, meta, target, rng=np.random.default_rng(2), n_boot=0)
        privacy = table_privacy(train, holdout, syn, meta, rng=np.random.default_rng(3), n_boot=10)
        _CACHE[name] = {
            "quality": quality_report(train, syn, meta)["score"],
            "tstr_ratio": utility["ratio"][utility["primary"]],
            "dcr_share": privacy.dcr_share.value,
            "mia_auc": privacy.mia_auc.value,
        }
    return _CACHE[name]


def _cases():
    for name in BUNDLED:
        for metric in TARGETS:
            reason = MISSES.get((name, metric))
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            yield pytest.param(name, metric, marks=marks, id=f"{name}-{metric}")


def test_the_default_is_the_per_class_copula():
    assert DEFAULT_TABULAR == "tabular/gaussian-copula-v2"


@pytest.mark.parametrize(("name", "metric"), list(_cases()))
def test_target(name, metric):
    value = scores(name)[metric]
    assert TARGETS[metric](value), f"{name} {metric} = {value:.3f}"


def test_at_least_three_tables_meet_all_four_targets():
    met = [
        n for n in ("breast_cancer", "digits", "wine", "diabetes") if all(t(scores(n)[m]) for m, t in TARGETS.items())
    ]
    assert len(met) >= 2  # breast_cancer and digits, with scikit-learn alone
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        pytest.skip("statsmodels is not installed: fair and anes96, the third and fourth, are not available")
    met += [n for n in ("fair", "anes96") if all(t(scores(n)[m]) for m, t in TARGETS.items())]
    assert len(met) >= 3, met
