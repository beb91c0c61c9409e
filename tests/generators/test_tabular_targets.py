"""Issue 14's targets for the default generator on three real bundled tables, one fixed 50/50 split each.

Targets: quality score >= 0.85, TSTR >= 0.9 x TRTR (macro F1 or R^2), DCR share within 50 +- 5%, membership-
inference AUC <= 0.6. The synthetic table has as many rows as the training half.

Wine misses three of them, and the misses are recorded below as strict xfails with the measured values, not
hidden by a looser bound:

- TSTR: a Gaussian copula models monotone relations only; wine's three cultivars are three clusters, and with
  SDV's frequency-ordered category intervals the middle cultivar sits at an end of the latent scale. Macro-F1
  ratio 0.64 on this split (0.57 to 0.73 over 5 splits); ``category_order="scaled"`` lifts it to 0.62 to 0.83,
  CART reaches 0.89 to 1.0.
- DCR share and MIA AUC: 89 training rows. Over 5 splits the copula's share ranges 0.47 to 0.66 and its AUC 0.52
  to 0.66; even independent marginals (no copula) range 0.43 to 0.60, and each split's 95% bootstrap interval
  is about +-0.09 wide, wider than the +-0.05 target.
"""

from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from simgen.generators import DEFAULT_TABULAR, REGISTRY  # noqa: E402
from simgen.generators.tabular.metadata import infer_metadata  # noqa: E402
from simgen.validators.tabular import quality_report, table_privacy, tabular_utility  # noqa: E402

TARGETS = {"breast_cancer": "diagnosis", "wine": "cultivar", "diabetes": "target"}
WINE_TSTR = "Gaussian copula on wine's 3 clustered cultivars: macro-F1 TSTR/TRTR 0.64 (see module docstring)"
WINE_SMALL = "wine has 89 training rows: DCR share 0.66, MIA AUC 0.62 here; noise +-0.09 (see module docstring)"


@pytest.fixture(scope="module")
def scores(request):
    """Every score of the default generator on one dataset, computed once per dataset."""
    cache: dict[str, dict[str, float]] = {}

    def get(name: str) -> dict[str, float]:
        if name not in cache:
            from sklearn.model_selection import train_test_split

            table = request.getfixturevalue(name)
            target = TARGETS[name]
            meta = infer_metadata(table)
            strat = table[target] if meta.column(target).discrete else None
            train, holdout = train_test_split(table, test_size=0.5, random_state=0, stratify=strat)
            train, holdout = train.reset_index(drop=True), holdout.reset_index(drop=True)
            model = REGISTRY.get(DEFAULT_TABULAR)().fit(train, meta, np.random.default_rng(0))
            syn = model.sample(len(train), np.random.default_rng(1))
            utility = tabular_utility(train, holdout, syn, meta, target, rng=np.random.default_rng(2), n_boot=0)
            privacy = table_privacy(train, holdout, syn, meta, rng=np.random.default_rng(3), n_boot=10)
            cache[name] = {
                "quality": quality_report(train, syn, meta)["score"],
                "tstr_ratio": utility["ratio"][utility["primary"]],
                "dcr_share": privacy.dcr_share.value,
                "mia_auc": privacy.mia_auc.value,
            }
        return cache[name]

    return get


def _case(name: str, reason: str | None = None):
    return pytest.param(name, marks=pytest.mark.xfail(reason=reason, strict=True)) if reason else name


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "diabetes"])
def test_quality_score_at_least_085(name, scores):
    assert scores(name)["quality"] >= 0.85


@pytest.mark.parametrize("name", ["breast_cancer", _case("wine", WINE_TSTR), "diabetes"])
def test_tstr_at_least_09_of_trtr(name, scores):
    assert scores(name)["tstr_ratio"] >= 0.9


@pytest.mark.parametrize("name", ["breast_cancer", _case("wine", WINE_SMALL), "diabetes"])
def test_dcr_share_near_half(name, scores):
    assert abs(scores(name)["dcr_share"] - 0.5) <= 0.05


@pytest.mark.parametrize("name", ["breast_cancer", _case("wine", WINE_SMALL), "diabetes"])
def test_membership_inference_auc_at_most_06(name, scores):
    assert scores(name)["mia_auc"] <= 0.6
