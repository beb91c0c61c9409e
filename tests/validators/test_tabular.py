"""Table metrics on hand-computed cases, cross-checked against independent code (scipy, pandas, scikit-learn)."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from scipy.stats import ks_2samp  # noqa: E402
from sklearn.metrics import pairwise_distances  # noqa: E402

from simgen.generators.tabular.metadata import infer_metadata  # noqa: E402
from simgen.validators import tabular as T  # noqa: E402
from simgen.validators.privacy import mia_auc, nearest_neighbours, privacy_metrics  # noqa: E402


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---- column shapes


def test_ks_complement_hand_cases_and_scipy():
    assert T.ks_complement([1, 2, 3], [1, 2, 3]) == 1.0
    assert T.ks_complement([1, 2, 3], [4, 5, 6]) == 0.0
    assert T.ks_complement([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    assert T.ks_complement([1.0, np.nan, 2.0], [1.0, 2.0]) == 1.0  # missing values are dropped
    assert math.isnan(T.ks_complement([np.nan], [1.0]))
    g = rng(0)
    for _ in range(5):
        a = np.round(g.normal(size=g.integers(5, 300)), 2)  # ties included
        b = np.round(g.normal(0.3, 1.2, size=g.integers(5, 300)), 2)
        assert T.ks_complement(a, b) == pytest.approx(1 - ks_2samp(a, b).statistic, abs=1e-12)


def test_tv_complement_hand_cases():
    assert T.tv_complement(list("aabb"), list("abbb")) == pytest.approx(0.75)  # 1 - (0.25 + 0.25) / 2
    assert T.tv_complement(["a", "a"], ["a", "c"]) == pytest.approx(0.5)  # an unseen category counts
    assert T.tv_complement(["a", None, "b"], ["b", "a"]) == 1.0  # missing values are dropped
    g = rng(1)
    a, b = g.choice(list("xyz"), 500, p=[0.5, 0.3, 0.2]), g.choice(list("xyzw"), 400)
    direct = 1 - 0.5 * sum(abs((a == c).mean() - (b == c).mean()) for c in "xyzw")
    assert T.tv_complement(a, b) == pytest.approx(direct, abs=1e-12)


# ---- column-pair trends


def test_correlation_similarity_hand_cases_and_pandas():
    x = np.arange(10.0)
    assert T.correlation_similarity(x, x, x, -x)["score"] == pytest.approx(0.0)
    assert T.correlation_similarity(x, 2 * x, x, 3 * x + 1)["score"] == pytest.approx(1.0)
    assert math.isnan(T.correlation_similarity(x, np.ones(10), x, x)["score"])  # a constant column: no score
    g = rng(2)
    r = pd.DataFrame(g.multivariate_normal([0, 0], [[1, 0.7], [0.7, 1]], 300), columns=["a", "b"])
    s = pd.DataFrame(g.multivariate_normal([0, 0], [[1, -0.2], [-0.2, 1]], 200), columns=["a", "b"])
    res = T.correlation_similarity(r.a, r.b, s.a, s.b)
    assert res["real"] == pytest.approx(r.corr().loc["a", "b"], abs=1e-12)
    assert res["synthetic"] == pytest.approx(s.corr().loc["a", "b"], abs=1e-12)
    assert res["score"] == pytest.approx(1 - abs(res["real"] - res["synthetic"]) / 2)


def test_contingency_similarity_hand_case_and_groupby():
    real_a, real_b = ["a", "a", "b", "b"], ["x", "y", "x", "y"]
    assert T.contingency_similarity(real_a, real_b, ["a"] * 4, ["x"] * 4) == pytest.approx(0.25)
    g = rng(3)
    r = pd.DataFrame({"p": g.choice(["u", "v", None], 300), "q": g.choice([1, 2, 3], 300)})
    s = pd.DataFrame({"p": g.choice(["u", "v", "w"], 250), "q": g.choice([1, 2], 250)})
    # SDMetrics' way: 2-D frequencies through groupby (missing values kept), TV over the union of cells.
    fr = r.groupby(["p", "q"], dropna=False).size() / len(r)
    fs = s.groupby(["p", "q"], dropna=False).size() / len(s)
    idx = fr.index.union(fs.index)
    direct = 1 - (fr.reindex(idx, fill_value=0) - fs.reindex(idx, fill_value=0)).abs().sum() / 2
    assert T.contingency_similarity(r.p, r.q, s.p, s.q) == pytest.approx(direct, abs=1e-12)


def test_quality_report_is_one_on_identical_tables_and_drops_with_noise(wine_like):
    table, meta = wine_like
    report = T.quality_report(table, table, meta)
    assert report["score"] == pytest.approx(1.0)
    metrics = {p["metric"] for p in report["column_pair_trends"]["details"]}
    assert metrics == {"CorrelationSimilarity", "ContingencySimilarity"}
    assert set(report["column_shapes"]["details"]) == {"a", "b", "c", "label"}  # the id column is skipped
    g = rng(1)
    shuffled = table.apply(lambda col: g.permutation(col.to_numpy()))  # each column its own order
    worse = T.quality_report(table, shuffled, meta, rng=rng(0), n_boot=20)
    assert worse["column_shapes"]["score"] == pytest.approx(1.0)  # same marginals
    assert worse["column_pair_trends"]["score"] < 0.95  # broken dependence
    ci = worse["ci"]["score"]
    assert ci["ci"][0] <= worse["score"] <= ci["ci"][1] and ci["n_boot"] == 20
    again = T.quality_report(table, shuffled, meta, rng=rng(0), n_boot=20)
    assert again["ci"] == worse["ci"]  # seeded


def test_mixed_pairs_bin_each_table_as_sdmetrics(wine_like):
    table, meta = wine_like
    other = table.copy()
    other["a"] = other["a"] * 2 + 5  # a monotone change: each table's own 10 bins see the same pattern
    pair = next(p for p in T.column_pair_trends(table, other, meta) if p["columns"] == ["a", "label"])
    assert pair["metric"] == "ContingencySimilarity" and pair["score"] == pytest.approx(1.0)


@pytest.fixture
def wine_like():
    g = rng(4)
    n = 300
    label = g.choice(["p", "q", "r"], n)
    a = g.normal(size=n) + (label == "q") * 2
    table = pd.DataFrame({"key_id": np.arange(n), "a": np.round(a, 3), "b": np.round(a * 0.5 + g.normal(size=n), 3),
                          "c": np.round(g.normal(size=n), 3), "label": label})  # fmt: skip
    return table, infer_metadata(table)


# ---- utility


def test_utility_on_a_copy_of_train_equals_trtr_and_noise_does_not(breast_cancer_split):
    train, holdout, meta = breast_cancer_split
    same = T.tabular_utility(train, holdout, train, meta, "diagnosis", rng=rng(0), n_boot=10)
    assert same["task"] == "classification" and same["primary"] == "macro_f1"
    assert same["tstr"] == same["trtr"] and same["ratio"]["macro_f1"] == 1.0
    assert same["trtr"]["accuracy"] > 0.9 and same["trtr"]["roc_auc"] > 0.95
    noise = train.copy()
    noise["diagnosis"] = noise["diagnosis"].sample(frac=1, random_state=0).to_numpy()  # labels unrelated to rows
    bad = T.tabular_utility(train, holdout, noise, meta, "diagnosis", rng=rng(0), n_boot=10)
    assert bad["tstr"]["roc_auc"] < 0.7 and bad["ratio"]["macro_f1"] < 0.8
    lo, hi = bad["ci"]["tstr_accuracy"]["ci"]
    assert lo <= bad["tstr"]["accuracy"] <= hi


def test_utility_regression_and_bad_target(breast_cancer_split):
    train, holdout, meta = breast_cancer_split
    res = T.tabular_utility(train, holdout, train, meta, "mean area", rng=rng(0), model="linear", n_boot=0)
    assert res["task"] == "regression" and res["primary"] == "r2"
    assert res["trtr"]["r2"] > 0.9 and res["ratio"]["r2"] == 1.0
    with pytest.raises(Exception, match="did you mean 'mean area'"):
        T.tabular_utility(train, holdout, train, meta, "mean aera", rng=rng(0))


@pytest.fixture
def breast_cancer_split():
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame["diagnosis"] = np.asarray(data.target_names)[data.target.to_numpy()]
    train, holdout = train_test_split(frame, test_size=0.5, random_state=0, stratify=frame["diagnosis"])
    return train.reset_index(drop=True), holdout.reset_index(drop=True), infer_metadata(frame)


# ---- distances and privacy


def _gower_direct(r1: dict, r2: dict, spans: dict, kinds: dict) -> float:
    """Gower distance by the textbook formula, one pair of rows at a time."""
    total = 0.0
    for col, kind in kinds.items():
        a, b = r1[col], r2[col]
        a_missing, b_missing = pd.isna(a), pd.isna(b)
        if a_missing or b_missing:
            total += 0.0 if a_missing and b_missing else 1.0
        elif kind == "numerical":
            total += abs(a - b) / spans[col]
        else:
            total += float(a != b)
    return total / len(kinds)


def test_gower_encoding_gives_gower_distances():
    t = pd.DataFrame({"x": [0.0, 5.0, 10.0, np.nan, 2.5], "c": ["a", "b", "a", None, "b"], "y": [1, 2, 3, 4, 5]})
    meta = infer_metadata(t, {"columns": {"y": "numerical"}})
    (enc,) = T.gower_encode([t], meta)
    d = pairwise_distances(enc, metric="cityblock")
    rows = t.to_dict("records")
    kinds = {"x": "numerical", "c": "categorical", "y": "numerical"}
    spans = {"x": 10.0, "y": 4.0}
    for i in range(5):
        for j in range(5):
            assert d[i, j] == pytest.approx(_gower_direct(rows[i], rows[j], spans, kinds), abs=1e-12), (i, j)


@pytest.mark.parametrize("metric", ["cityblock", "euclidean"])
def test_nearest_neighbours_tree_and_chunked_brute_match_sklearn(metric):
    g = rng(5)
    q, r = g.normal(size=(300, 6)), g.normal(size=(500, 6))
    q[:10] = r[:10]  # exact copies
    full = pairwise_distances(q, r, metric=metric)  # sklearn's Euclidean formula is good to ~1e-8
    expected = np.sort(full, axis=1)[:, :2]
    for method in ("tree", "brute"):
        d, i = nearest_neighbours(q, r, k=2, metric=metric, method=method, chunk_rows=7, working_memory=1)
        np.testing.assert_allclose(d, expected, atol=1e-6)
        np.testing.assert_allclose(full[np.arange(300), i[:, 0]], d[:, 0], atol=1e-6)
        assert (d[:10, 0] == 0.0).all() and (d[10:, 0] > 0).all()  # exact copies are exactly 0, for every method


def test_nearest_neighbours_memory_stays_bounded():
    # 10,000 x 10,000 distances would take 800 MB at once; chunked, the peak is a few MB.
    g = rng(6)
    q, r = g.random((10_000, 8)), g.random((10_000, 8))
    for method, limit in (("tree", 24), ("brute", 24)):
        tracemalloc.start()
        nearest_neighbours(q[: 2000 if method == "brute" else None], r, k=2, method=method, working_memory=8)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        assert peak < limit, (method, peak)


def test_privacy_extremes_copying_train_or_holdout():
    g = rng(7)
    train, holdout = g.normal(size=(400, 5)), g.normal(size=(400, 5))
    leak = privacy_metrics(train, holdout, train.copy(), rng=rng(0), n_boot=20)
    assert leak.dcr_share.value == 1.0 and leak.exact_copy_share.value == 1.0 and leak.mia_auc.value == 1.0
    assert leak.dcr_synthetic["median"] == 0.0 and leak.dcr_holdout["median"] > 0
    assert leak.holdout_exact_copy_share == 0.0
    mirror = privacy_metrics(train, holdout, holdout.copy(), rng=rng(0), n_boot=20)
    assert mirror.dcr_share.value == 0.0 and mirror.mia_auc.value == 0.0 and mirror.exact_copy_share.value == 0.0


def test_privacy_of_a_fresh_sample_is_ideal_within_noise():
    g = rng(8)
    train, holdout, fresh = (g.normal(size=(3000, 4)) for _ in range(3))
    res = privacy_metrics(train, holdout, fresh, rng=rng(0), n_boot=50)
    assert res.dcr_share.value == pytest.approx(0.5, abs=0.03)
    assert res.mia_auc.value == pytest.approx(0.5, abs=0.03)
    assert res.dcr_share.low < 0.5 < res.dcr_share.high or abs(res.dcr_share.value - 0.5) < 0.02
    assert res.nndr_synthetic["median"] == pytest.approx(res.nndr_holdout["median"], abs=0.05)
    d = res.as_dict()
    assert d["dcr_share"]["ideal"] == 0.5 and d["sizes"]["equal_size"] == 3000


def test_dcr_share_subsamples_the_larger_real_set():
    # With a training set 4x the holdout, a fresh sample would sit closer to train 80% of the time; the
    # equal-size subsample brings the ideal back to 50%.
    g = rng(9)
    train, holdout, fresh = g.normal(size=(4000, 3)), g.normal(size=(1000, 3)), g.normal(size=(2000, 3))
    res = privacy_metrics(train, holdout, fresh, rng=rng(0), n_boot=10)
    assert res.sizes["equal_size"] == 1000
    assert res.dcr_share.value == pytest.approx(0.5, abs=0.04)


def test_mia_auc_matches_direct_rank_formula():
    g = rng(10)
    m, n = g.normal(0.3, 1, 200), g.normal(0, 1, 150)
    direct = np.mean([(a > b) + 0.5 * (a == b) for a in m for b in n])
    assert mia_auc(m, n) == pytest.approx(direct, abs=1e-12)


def test_table_privacy_on_a_real_table(breast_cancer_split):
    train, holdout, meta = breast_cancer_split
    copied = T.table_privacy(train, holdout, train, meta, rng=rng(0), n_boot=10)
    assert copied.exact_copy_share.value == 1.0 and copied.mia_auc.value == 1.0
    real = T.table_privacy(train, holdout, holdout, meta, rng=rng(0), n_boot=10)
    assert real.dcr_share.value == 0.0


def test_pair_trends_match_the_pairwise_definition_with_constants_and_missing_values():
    # column_pair_trends computes every Pearson r at once; each pair must equal correlation_similarity's.
    g = rng(11)
    n = 150
    base = g.normal(size=n)
    real = pd.DataFrame({"a": base, "b": base * 0.6 + g.normal(size=n), "c": np.where(g.random(n) < 0.2, np.nan, base),
                         "k": np.ones(n), "lab": g.choice(["x", "y"], n)})  # fmt: skip
    syn = real.apply(lambda col: g.permutation(col.to_numpy()))
    syn["k"] = g.normal(size=n)  # constant on the real side only: still no score
    meta = infer_metadata(pd.concat([real, syn]), {"columns": {"k": "numerical"}})
    pairs = {tuple(p["columns"]): p for p in T.column_pair_trends(real, syn, meta)}
    for a, b in [("a", "b"), ("a", "c"), ("b", "c"), ("a", "k")]:
        ref = T.correlation_similarity(real[a], real[b], syn[a], syn[b])
        got = pairs[(a, b)]
        if math.isnan(ref["score"]):
            assert math.isnan(got["score"]), (a, b)
            continue
        assert got["score"] == pytest.approx(ref["score"], abs=1e-12)
        assert got["real_correlation"] == pytest.approx(ref["real"], abs=1e-12)
        assert got["synthetic_correlation"] == pytest.approx(ref["synthetic"], abs=1e-12)
    assert math.isnan(pairs[("a", "k")]["score"]) and pairs[("a", "lab")]["metric"] == "ContingencySimilarity"
