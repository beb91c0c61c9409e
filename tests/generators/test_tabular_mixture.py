"""``tabular/gaussian-copula-v2``: one copula per class, where a single copula cannot represent the classes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from simgen.generators import DEFAULT_TABULAR, REGISTRY, GeneratorError, load_model  # noqa: E402
from simgen.generators.tabular.copula import GaussianCopula  # noqa: E402
from simgen.generators.tabular.metadata import infer_metadata  # noqa: E402
from simgen.generators.tabular.mixture import (  # noqa: E402
    GaussianCopulaMixture,
    count_evidence,
    numeric_evidence,
    shrunk_quantiles,
)

MEANS = {"a": (0.0, 0.0), "b": (10.0, -6.0), "c": (5.0, 8.0)}  # "b", the rarest, is no straight line's middle


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def clusters(n: int, seed: int) -> pd.DataFrame:
    """Three planted clusters; the rarest class sits at an end of a single copula's category scale."""
    g = rng(seed)
    label = g.choice(list(MEANS), n, p=[0.5, 0.2, 0.3])
    centre = np.array([MEANS[k] for k in label])
    xy = centre + g.normal(size=(n, 2))
    return pd.DataFrame({"x": xy[:, 0].round(3), "y": xy[:, 1].round(3), "label": label})


def test_default_is_the_mixture_and_v1_stays_registered():
    assert DEFAULT_TABULAR == "tabular/gaussian-copula-v2"
    assert REGISTRY.get(DEFAULT_TABULAR) is GaussianCopulaMixture
    assert REGISTRY.get("tabular/gaussian-copula-v1") is GaussianCopula


def test_mixture_recovers_class_conditional_means_where_one_copula_cannot():
    real = clusters(6000, 0)  # big classes: little shrinkage toward the whole table
    meta = infer_metadata(real)
    v2 = GaussianCopulaMixture().fit(real, meta, rng(0))
    v1 = GaussianCopula().fit(real, meta, rng(0))
    assert v2.condition_column == "label"
    real_means = real.groupby("label")[["x", "y"]].mean()
    err = {}
    for name, model in (("v2", v2), ("v1", v1)):
        syn = model.sample(6000, rng(1))
        err[name] = float((syn.groupby("label")[["x", "y"]].mean() - real_means).abs().to_numpy().max())
        assert syn.label.value_counts(normalize=True)["b"] == pytest.approx(0.2, abs=0.03)
    assert err["v2"] < 0.3  # per-class means within 0.3 (the clusters' sd is 1)
    assert err["v1"] > 2.0  # a single copula puts the rare class's cluster in the wrong place


def test_a_classifier_trained_on_mixture_rows_works_on_real_rows_where_one_copula_fails():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import f1_score

    train, holdout = clusters(1000, 0), clusters(1000, 1)
    meta = infer_metadata(train)

    def macro_f1(rows: pd.DataFrame) -> float:
        clf = RandomForestClassifier(n_estimators=50, random_state=0).fit(rows[["x", "y"]], rows.label)
        return float(f1_score(holdout.label, clf.predict(holdout[["x", "y"]]), average="macro"))

    trtr = macro_f1(train)
    tstr = {
        name: macro_f1(REGISTRY.get(name)().fit(train, meta, rng(0)).sample(len(train), rng(1)))
        for name in ("tabular/gaussian-copula-v1", "tabular/gaussian-copula-v2")
    }
    assert tstr["tabular/gaussian-copula-v2"] >= 0.9 * trtr  # issue 14's utility target
    assert tstr["tabular/gaussian-copula-v1"] < 0.8 * trtr  # one copula misplaces the rare class


def test_conditioning_on_the_class_uses_its_copula_and_others_use_the_posterior():
    real = clusters(1500, 0)
    model = GaussianCopulaMixture().fit(real, infer_metadata(real), rng(0))
    b = model.sample(800, rng(2), conditions={"label": "b"})
    assert (b.label == "b").all()
    assert b.x.mean() == pytest.approx(MEANS["b"][0], abs=0.3) and b.y.mean() == pytest.approx(MEANS["b"][1], abs=0.3)
    # x = 5 is 5 sd from classes a and b: the posterior puts (almost) every row in class c, at c's y.
    near_c = model.sample(300, rng(3), conditions={"x": 5.0})
    assert (near_c.x == 5.0).all() and (near_c.label == "c").mean() > 0.95
    assert near_c.y.mean() == pytest.approx(MEANS["c"][1], abs=0.5)
    # Unrounded values are points: the posterior uses each class's density there.
    raw = clusters(1500, 0).assign(x=lambda t: t.x + rng(9).uniform(-1e-4, 1e-4, len(t)))
    raw_meta = infer_metadata(raw)
    assert raw_meta.column("x").decimals is None
    raw_model = GaussianCopulaMixture().fit(raw, raw_meta, rng(0))
    assert (raw_model.sample(300, rng(3), conditions={"x": 5.0}).label == "c").mean() > 0.95
    # Between two classes, both are drawn; conditional samples are seeded.
    between = model.sample(300, rng(4), conditions={"x": 7.5})
    assert set(between.label) <= {"b", "c"} and len(set(between.label)) == 2
    again = model.sample(300, rng(4), conditions={"x": 7.5})
    assert between.equals(again)


def test_the_column_is_chosen_or_named_and_checked():
    real = clusters(600, 0)
    real["flag"] = np.where(np.arange(600) < 5, "rare", "common")  # 2 levels, but one has 5 rows: not chosen
    real["size"] = np.where(np.arange(600) % 2 == 0, "s", "m")  # 2 levels, enough rows: chosen (fewest levels)
    meta = infer_metadata(real)
    assert GaussianCopulaMixture().fit(real, meta, rng(0)).condition_column == "size"
    assert GaussianCopulaMixture(condition_on="label").fit(real, meta, rng(0)).condition_column == "label"
    # The metadata's target (``target: label`` in the override file) comes before the fewest-levels rule...
    named = infer_metadata(real, {"target": "label"})
    assert GaussianCopulaMixture().fit(real, named, rng(0)).condition_column == "label"
    # ... unless it cannot be a class column (a numeric target: regression).
    assert GaussianCopulaMixture().fit(real, infer_metadata(real, {"target": "x"}), rng(0)).condition_column == "size"
    assert GaussianCopulaMixture(min_class_rows=600).fit(real, meta, rng(0)).condition_column is None
    with pytest.raises(GeneratorError, match="condition_on: no modelled column 'lable' \\(did you mean 'label'\\?\\)"):
        GaussianCopulaMixture(condition_on="lable").fit(real, meta, rng(0))
    with pytest.raises(GeneratorError, match="column 'x' is numerical; expected a categorical or boolean column"):
        GaussianCopulaMixture(condition_on="x").fit(real, meta, rng(0))
    holes = real.assign(label=real.label.where(np.arange(600) % 7 != 0))
    with pytest.raises(GeneratorError, match="column 'label' has missing values"):
        GaussianCopulaMixture(condition_on="label").fit(holes, infer_metadata(holes), rng(0))
    for bad in ({"shrinkage": 0}, {"min_class_rows": 0}, {"condition_on": ""}, {"n_knots": 1}):
        with pytest.raises(GeneratorError):
            GaussianCopulaMixture(**bad)


def test_without_a_class_column_it_samples_exactly_what_v1_samples():
    g = rng(0)
    real = pd.DataFrame({"a": g.normal(size=300).round(3), "b": g.gamma(2.0, size=300).round(2)})
    meta = infer_metadata(real)
    v1 = GaussianCopula().fit(real, meta, rng(0))
    for v2 in (GaussianCopulaMixture().fit(real, meta, rng(0)), GaussianCopulaMixture(condition_on=False)):
        if isinstance(v2, GaussianCopulaMixture):
            v2 = v2.fit(real, meta, rng(0))
        assert v2.condition_column is None
        assert v2.sample(500, rng(1)).equals(v1.sample(500, rng(1)))
        assert v2.sample(50, rng(1), conditions={"a": 0.5}).equals(v1.sample(50, rng(1), conditions={"a": 0.5}))


def test_model_file_round_trips_with_its_classes(tmp_path):
    real = clusters(900, 0)
    model = GaussianCopulaMixture().fit(real, infer_metadata(real), rng(0))
    digest = model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.condition_column == "label" and np.array_equal(loaded.classes, model.classes)
    assert loaded.sample(200, rng(5), conditions={"label": "c"}).equals(
        model.sample(200, rng(5), conditions={"label": "c"})
    )
    assert loaded.save(tmp_path / "again") == digest


def test_shrinkage_helpers():
    g = rng(0)
    same = numeric_evidence(g.normal(size=200), g.normal(size=2000))
    shifted = numeric_evidence(g.normal(3.0, size=200), g.normal(size=2000))
    assert same < 0.5 and shifted > 0.95
    assert count_evidence(np.array([50, 50]), np.array([500, 500])) == 0.0
    assert count_evidence(np.array([90, 10]), np.array([100, 900])) > 0.95
    own, pooled = np.array([10.0, 11.0, 12.0]), np.array([0.0, 1.0, 2.0, 10.0, 11.0, 12.0])
    assert np.allclose(shrunk_quantiles(own, pooled, 1.0, 3), [10.0, 11.0, 12.0])
    # A lattice of few values: the quantile functions are averaged.
    q = shrunk_quantiles(own, pooled, 0.5, 6)
    levels = np.linspace(0, 1, 6)
    assert np.allclose(q, 0.5 * np.quantile(own, levels) + 0.5 * np.quantile(pooled, levels))
    # Continuous values: the class keeps its mean and spread and borrows the table's shape.
    cls, table = g.normal(20.0, 1.0, 40), np.concatenate([g.normal(20.0, 1.0, 40), g.exponential(5.0, 400)])
    q = shrunk_quantiles(cls, table, 0.3, 1000)
    assert np.mean(q) == pytest.approx(cls.mean(), abs=0.05) and np.std(q) == pytest.approx(cls.std(), rel=0.05)
    assert stats.skew(q) > stats.skew(np.quantile(cls, np.linspace(0, 1, 1000))) + 0.3
    assert table.min() <= q[0] and q[-1] <= table.max() and np.all(np.diff(q) >= 0)
