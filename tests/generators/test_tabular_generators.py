"""Every registered tabular generator: seeded determinism, save/load, conditions, bounds, and model-file safety."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from simgen.errors import OutputExistsError, RegistryError  # noqa: E402
from simgen.generators import REGISTRY, ModelFileError, load_model, model_digest  # noqa: E402
from simgen.generators.base import Generator, check_rng  # noqa: E402
from simgen.generators.tabular.cart import Cart, tree_apply  # noqa: E402
from simgen.generators.tabular.copula import GaussianCopula, pairwise_correlation  # noqa: E402
from simgen.generators.tabular.metadata import infer_metadata  # noqa: E402
from simgen.generators.tabular.model import ConditionError  # noqa: E402

TABULAR = [n for n in REGISTRY.names() if n.startswith("tabular/")]


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def csv_bytes(table) -> bytes:
    return table.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def fitted(request):
    """One fitted model per generator on the mixed table (module-scoped: fitting is the slow part)."""
    cache: dict[str, tuple] = {}

    def get(name: str, table):
        if name not in cache:
            meta = infer_metadata(table)
            cache[name] = (REGISTRY.get(name)().fit(table, meta, rng(0)), meta)
        return cache[name]

    return get


def test_registry_lists_versioned_tabular_generators():
    assert TABULAR == ["tabular/cart-v1", "tabular/gaussian-copula-v1", "tabular/gaussian-copula-v2"]
    for name in TABULAR:
        cls = REGISTRY.get(name)
        assert cls.name == name and isinstance(cls(), Generator)
    with pytest.raises(RegistryError, match="did you mean 'tabular/cart-v1'"):
        REGISTRY.get("tabular/cart-v2")


@pytest.mark.parametrize("name", TABULAR)
def test_same_seed_same_bytes_different_seed_differs(name, mixed_table, fitted):
    model, _ = fitted(name, mixed_table)
    a = csv_bytes(model.sample(300, rng(5)))
    assert a == csv_bytes(model.sample(300, rng(5)))
    assert a != csv_bytes(model.sample(300, rng(6)))
    # Fitting is seeded too: the same seed gives the same model bytes, on a refit from scratch.
    again = REGISTRY.get(name)().fit(mixed_table, infer_metadata(mixed_table), rng(0))
    assert csv_bytes(again.sample(300, rng(5))) == a


@pytest.mark.parametrize("name", TABULAR)
def test_save_load_round_trip_gives_identical_samples(name, mixed_table, fitted, tmp_path):
    model, _ = fitted(name, mixed_table)
    digest = model.save(tmp_path / "m")
    assert digest == model_digest(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model)
    assert csv_bytes(loaded.sample(200, rng(3), conditions={"plan": "pro"})) == csv_bytes(
        model.sample(200, rng(3), conditions={"plan": "pro"})
    )
    # Saving the loaded model gives the same bytes: nothing is lost or reordered.
    assert loaded.save(tmp_path / "again") == digest
    with pytest.raises(OutputExistsError):
        model.save(tmp_path / "m")
    assert model.save(tmp_path / "m", overwrite=True) == digest


@pytest.mark.parametrize("name", TABULAR)
def test_sample_keeps_types_bounds_rounding_and_missing_rate(name, mixed_table, fitted):
    model, _ = fitted(name, mixed_table)
    syn = model.sample(2000, rng(1), first_row=100)
    assert list(syn.columns) == list(mixed_table.columns)
    assert dict(syn.dtypes.astype(str)) == dict(mixed_table.dtypes.astype(str)) | {"customer_id": "object"}
    assert syn.customer_id.iloc[0] == "CUST-100" and syn.customer_id.is_unique
    assert syn.age.between(mixed_table.age.min(), mixed_table.age.max()).all()
    assert (syn.income == syn.income.round(2)).all() and (syn.income >= mixed_table.income.min()).all()
    assert set(syn.plan) <= {"basic", "plus", "pro"}
    assert syn.joined.between(mixed_table.joined.min(), mixed_table.joined.max()).all()
    assert (syn.joined == syn.joined.dt.normalize()).all()  # whole days, like the real column
    assert syn.score.isna().mean() == pytest.approx(mixed_table.score.isna().mean(), abs=0.04)
    assert syn.member.mean() == pytest.approx(mixed_table.member.mean(), abs=0.06)
    empty = model.sample(0, rng(1))
    assert list(empty.columns) == list(mixed_table.columns) and len(empty) == 0


@pytest.mark.parametrize("name", TABULAR)
def test_conditions_are_met_exactly(name, mixed_table, fitted):
    model, _ = fitted(name, mixed_table)
    rare = model.sample(300, rng(2), conditions={"plan": "pro"})
    assert (rare.plan == "pro").all()
    both = model.sample(200, rng(2), conditions={"plan": "plus", "member": True})
    assert (both.plan == "plus").all() and both.member.all()
    missing = model.sample(50, rng(2), conditions={"score": None})
    assert missing.score.isna().all()
    forty = model.sample(50, rng(2), conditions={"age": 40})
    assert (forty.age == 40).all()
    # Conditions are seeded like everything else.
    assert csv_bytes(model.sample(100, rng(9), conditions={"plan": "pro"})) == csv_bytes(
        model.sample(100, rng(9), conditions={"plan": "pro"})
    )


@pytest.mark.parametrize("name", TABULAR)
def test_conditions_shift_the_other_columns(name, breast_cancer):
    # Malignant tumours are larger: a conditional sample must show it, not just relabel rows.
    meta = infer_metadata(breast_cancer)
    model = REGISTRY.get(name)().fit(breast_cancer, meta, rng(0))
    malignant = model.sample(500, rng(1), conditions={"diagnosis": "malignant"})
    benign = model.sample(500, rng(1), conditions={"diagnosis": "benign"})
    real = breast_cancer.groupby("diagnosis")["mean radius"].mean()
    assert malignant["mean radius"].mean() == pytest.approx(real["malignant"], rel=0.1)
    assert benign["mean radius"].mean() == pytest.approx(real["benign"], rel=0.1)


@pytest.mark.parametrize("name", TABULAR)
def test_bad_conditions_are_clear_errors(name, mixed_table, fitted):
    model, _ = fitted(name, mixed_table)
    cases = [
        ({"paln": "pro"}, "conditions.paln: no such column (did you mean 'plan'?)"),
        ({"plan": "prp"}, "conditions.plan: 'prp' is not one of its categories (did you mean 'pro'?)"),
        ({"customer_id": "CUST-1"}, "conditions.customer_id: is an id column"),
        ({"age": 40.5}, "conditions.age: the column holds whole numbers, got 40.5"),
        ({"age": 200}, "conditions.age: 200 is outside the fitted range [18.0, 89.0]"),
        ({"income": "rich"}, "conditions.income: expected a number, got 'rich'"),
        ({"age": None}, "conditions.age: asks for a missing value, but the column has none"),
    ]
    for conditions, message in cases:
        with pytest.raises(ConditionError) as err:
            model.sample(10, rng(0), conditions=conditions)
        assert message in str(err.value), conditions
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        model.sample(10, 0)
    with pytest.raises(ValueError, match="non-negative integer"):
        model.sample(-1, rng(0))


def test_too_rare_conditions_stop_with_a_bounded_number_of_draws(mixed_table):
    # A plan/score combination that CART (score last in its visit order) meets only by rejection.
    meta = infer_metadata(mixed_table)
    model = Cart().fit(mixed_table, meta, rng(0))
    top = float(mixed_table.score.max())  # one real row has it
    with pytest.raises(ConditionError, match=r"too rare under the fitted model: \d+ of 2,000 draws matched"):
        model.sample(1000, rng(0), conditions={"plan": "pro", "score": top}, max_draws=2000)


def test_cart_visit_order_makes_conditions_exact_without_rejection(mixed_table):
    meta = infer_metadata(mixed_table)
    model = Cart(visit_order=["score", "plan"]).fit(mixed_table, meta, rng(0))
    # Exact: no candidates are drawn and thrown away, so even a tiny draw budget suffices.
    top = float(mixed_table.score.max())
    out = model.sample(100, rng(0), conditions={"plan": "pro", "score": top}, max_draws=1)
    assert (out.plan == "pro").all() and (out.score == top).all()
    with pytest.raises(Exception, match="visit_order: 'sore' is not a modelled column"):
        Cart(visit_order=["sore"]).fit(mixed_table, meta, rng(0))


def test_tree_apply_matches_sklearn_including_missing_values():
    from sklearn.tree import DecisionTreeRegressor

    g = rng(0)
    x = g.normal(size=(400, 4)) * [1, 10, 1e5, 1e-3]
    x[g.random(400) < 0.2, 0] = np.nan  # feature 0 has missing values in training, feature 1 never does
    y = np.nan_to_num(x[:, 0]) + x[:, 1] / 10 + g.normal(size=400) * 0.1
    tree = DecisionTreeRegressor(min_samples_leaf=5, random_state=0).fit(x, y)
    t = tree.tree_
    probe = g.normal(size=(2000, 4)) * [1, 10, 1e5, 1e-3]
    probe[g.random(2000) < 0.3, 0] = np.nan
    probe[g.random(2000) < 0.3, 1] = np.nan  # missing where training never had any
    ours = tree_apply(t.children_left, t.children_right, t.feature, t.threshold, t.missing_go_to_left, probe)
    np.testing.assert_array_equal(ours, tree.apply(probe.astype(np.float32)))


def test_pairwise_correlation_matches_pandas_pairwise_complete():
    g = rng(1)
    z = g.multivariate_normal([0, 0, 0], [[1, 0.6, -0.3], [0.6, 1, 0.1], [-0.3, 0.1, 1]], size=500)
    z[g.random(500) < 0.2, 1] = np.nan
    z[g.random(500) < 0.1, 2] = np.nan
    np.testing.assert_allclose(pairwise_correlation(z), pd.DataFrame(z).corr().to_numpy(), atol=1e-12)


def test_copula_conditional_sampling_follows_the_conditional_gaussian():
    # y = 0.8 x + noise on normal data: given x = 1.5, y has mean ~1.2 and sd ~0.6.
    g = rng(2)
    x = g.normal(size=4000)
    table = pd.DataFrame({"x": np.round(x, 4), "y": np.round(0.8 * x + 0.6 * g.normal(size=4000), 4)})
    model = GaussianCopula().fit(table, infer_metadata(table), rng(0))
    out = model.sample(4000, rng(1), conditions={"x": 1.5})
    assert (out.x == 1.5).all()
    assert out.y.mean() == pytest.approx(1.2, abs=0.06)
    assert out.y.std() == pytest.approx(0.6, abs=0.05)


def test_copula_options_are_checked_and_saved(mixed_table, tmp_path):
    with pytest.raises(Exception, match="marginals: expected 'empirical' or 'parametric'"):
        GaussianCopula(marginals="kde")
    meta = infer_metadata(mixed_table)
    model = GaussianCopula(marginals="parametric", category_order="scaled").fit(mixed_table, meta, rng(0))
    model.save(tmp_path / "p")
    config = json.loads((tmp_path / "p" / "model.json").read_text())["config"]
    assert config["marginals"] == "parametric" and config["category_order"] == "scaled"
    assert {law["family"] for law in config["parametric"] if law} <= {"norm", "uniform", "beta", "gamma"}
    loaded = load_model(tmp_path / "p")
    assert csv_bytes(loaded.sample(50, rng(4))) == csv_bytes(model.sample(50, rng(4)))


# ---- the model file: plain data, checked on load


@pytest.fixture
def saved(mixed_table, fitted, tmp_path):
    model, _ = fitted("tabular/cart-v1", mixed_table)
    model.save(tmp_path / "m")
    return tmp_path / "m"


def test_model_file_is_json_and_plain_arrays(saved):
    header = json.loads((saved / "model.json").read_text())
    assert header["format"] == "simgen-model" and header["format_version"] == 1
    assert header["generator"] == "tabular/cart-v1"
    with zipfile.ZipFile(saved / "arrays.npz") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}  # fixed: same model, same bytes
    with np.load(saved / "arrays.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype.kind in "biuf" for k in npz.files)


def test_tampered_arrays_are_refused(saved):
    blob = bytearray((saved / "arrays.npz").read_bytes())
    blob[-200] ^= 1
    (saved / "arrays.npz").write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="SHA-256 does not match"):
        load_model(saved)


def test_a_model_file_cannot_name_code_to_import(saved):
    header = json.loads((saved / "model.json").read_text())
    header["generator"] = "os:system"
    (saved / "model.json").write_text(json.dumps(header))
    with pytest.raises(ModelFileError, match="unknown generator 'os:system'"):
        load_model(saved)


def test_object_arrays_are_refused_on_load(saved):
    import io

    header = json.loads((saved / "model.json").read_text())
    buf = io.BytesIO()
    np.savez(buf, t0_left=np.array([{"a": 1}], dtype=object))  # a pickled object inside .npz
    (saved / "arrays.npz").write_bytes(buf.getvalue())
    import hashlib

    header["arrays"]["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (saved / "model.json").write_text(json.dumps(header))
    with pytest.raises(ModelFileError, match="not a readable array file: Object arrays cannot be loaded"):
        load_model(saved)


def test_inconsistent_and_newer_models_are_refused(saved, tmp_path):
    header = json.loads((saved / "model.json").read_text())
    newer = dict(header, format_version=2)
    (saved / "model.json").write_text(json.dumps(newer))
    with pytest.raises(ModelFileError, match="newer than this simgen reads"):
        load_model(saved)
    broken = dict(header, config=dict(header["config"], visit_order=["age"]))
    (saved / "model.json").write_text(json.dumps(broken))
    with pytest.raises(ModelFileError, match="visit_order must list every modelled column once"):
        load_model(saved)
    with pytest.raises(ModelFileError, match="not a model folder"):
        load_model(tmp_path / "nowhere")


def test_rng_must_be_passed_in():
    with pytest.raises(TypeError, match="expected a numpy.random.Generator"):
        check_rng(np.random.RandomState(0))


@pytest.mark.parametrize("name", TABULAR)
def test_datetime_conditions_use_the_column_zone_and_unit(name):
    stamps = pd.date_range("2024-01-01 08:00", periods=120, freq="37min", tz="Europe/Paris")
    table = pd.DataFrame({"ts": stamps, "v": np.arange(120) % 7})
    model = REGISTRY.get(name)().fit(table, infer_metadata(table), rng(0))
    out = model.sample(20, rng(1), conditions={"ts": "2024-01-01 09:14:00"})  # naive: Paris time
    assert (out.ts == pd.Timestamp("2024-01-01 09:14:00", tz="Europe/Paris")).all()
    with pytest.raises(ConditionError, match="whole units of s"):
        model.sample(5, rng(1), conditions={"ts": "2024-01-01 09:14:00.5"})


@pytest.mark.parametrize("name", TABULAR)
@pytest.mark.parametrize(
    "table",
    [
        {"a": [1.5] * 30, "b": np.arange(30.0)},  # a constant column
        {"a": list("xyz") * 10, "b": list("pq") * 15},  # categories only
        {"user_id": np.arange(30)},  # nothing to model: keys only
        {"a": [1.0], "c": ["x"]},  # one row
    ],
    ids=["constant", "categories-only", "ids-only", "one-row"],
)
def test_degenerate_tables_fit_sample_save_and_load(name, table, tmp_path):
    table = pd.DataFrame(table)
    model = REGISTRY.get(name)().fit(table, infer_metadata(table), rng(0))
    out = model.sample(7, rng(1))
    assert list(out.columns) == list(table.columns) and len(out) == 7
    model.save(tmp_path / "m")
    assert csv_bytes(load_model(tmp_path / "m").sample(7, rng(1))) == csv_bytes(out)
