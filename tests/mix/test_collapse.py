"""The known result of model collapse, small and fast: refitting on its own samples drifts; real data anchors it.

Scikit-learn's 178 real wines, the Gaussian copula, one seed. ``benchmarks/collapse.py`` runs the same loop
(:func:`simgen.mix.collapse.collapse_scores`) with both generators, several seeds and a plot. The margins are
several times the spread measured over seeds (about 0.005 on the score): with 3 seeds, replace lost 0.058 in 5
generations and 0.115 in 15, accumulate 0.007 and 0.013, and a 10% anchor settled near 0.87.
"""

from __future__ import annotations

import pytest

from simgen.mix.collapse import collapse_scores, next_training_set

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def wine():
    from sklearn.datasets import load_wine

    from simgen.generators.tabular.metadata import infer_metadata

    data = load_wine(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame["cultivar"] = [str(data.target_names[t]) for t in data.target]
    return frame, infer_metadata(frame)


def test_replacing_drifts_and_accumulating_does_not(wine) -> None:
    real, meta = wine
    replace = collapse_scores("tabular/gaussian-copula-v1", "replace", real, meta, generations=5, seed=0)
    accumulate = collapse_scores("tabular/gaussian-copula-v1", "accumulate", real, meta, generations=5, seed=0)
    assert replace[0] - replace[-1] > 0.03  # each refit on the last sample loses a little more
    assert accumulate[0] - accumulate[-1] < 0.02
    assert accumulate[-1] > replace[-1] + 0.03


@pytest.mark.slow
def test_a_ten_percent_real_anchor_bounds_the_drift(wine) -> None:
    real, meta = wine
    replace = collapse_scores("tabular/gaussian-copula-v1", "replace", real, meta, generations=12, seed=0)
    anchor = collapse_scores("tabular/gaussian-copula-v1", "anchor", real, meta, generations=12, seed=0)
    assert anchor[-1] > replace[-1] + 0.03


def test_the_anchor_training_set_is_ten_percent_real_rows(wine) -> None:
    real, _ = wine
    fake = real.sample(frac=1.0, random_state=1).reset_index(drop=True)
    fake["alcohol"] = 99.0  # no real row has it: the real rows are told apart
    train = next_training_set("anchor", real, [fake], seed=0, generation=1)
    assert list(train.columns) == list(real.columns) and len(train) == len(real)
    assert (train["alcohol"] != 99.0).sum() == 18  # ceil(0.1 * 178)
    with pytest.raises(ValueError, match="regime"):
        next_training_set("keep", real, [fake], seed=0, generation=1)
