"""Metadata: type inference, the override file, encoding round trips, and a clear error for each bad input."""

from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from simgen.errors import SpecError  # noqa: E402
from simgen.generators.tabular.metadata import (  # noqa: E402
    MetadataError,
    TableMetadata,
    decode_table,
    encode_table,
    infer_metadata,
    read_table,
)


def _types(meta: TableMetadata) -> dict[str, str]:
    return {c.name: c.type for c in meta.columns}


def test_infers_every_type_and_keeps_facts(mixed_table):
    meta = infer_metadata(mixed_table)
    assert _types(meta) == {"customer_id": "id", "age": "numerical", "income": "numerical", "member": "boolean",
                            "plan": "categorical", "joined": "datetime", "score": "numerical"}  # fmt: skip
    age, income, score = meta.column("age"), meta.column("income"), meta.column("score")
    assert (age.integer, age.decimals, age.min, age.max) == (True, 0, mixed_table.age.min(), mixed_table.age.max())
    assert (income.integer, income.decimals) == (False, 2)
    assert score.decimals == 1 and score.null_rate == pytest.approx(mixed_table.score.isna().mean())
    assert meta.column("plan").categories == ["basic", "plus", "pro"]
    assert meta.column("joined").datetime_unit == "D"
    assert meta.column("customer_id").id_prefix == "CUST-"
    # The JSON form round-trips.
    assert TableMetadata.from_dict(meta.to_dict()) == meta


def test_sdv_rule_small_whole_numbers_are_categories(diabetes, wine):
    meta = infer_metadata(diabetes)
    assert meta.column("sex").type == "categorical" and meta.column("sex").categories == [1, 2]
    assert meta.column("age").type == "numerical"  # 58 distinct ages: more than min(n/10, 10)
    assert _types(infer_metadata(wine))["cultivar"] == "categorical"


def test_encode_decode_round_trip_keeps_values_and_dtypes(mixed_table):
    meta = infer_metadata(mixed_table)
    back = decode_table(encode_table(mixed_table, meta), meta)
    assert list(back.columns) == list(mixed_table.columns)
    for name in ("age", "income", "member", "plan", "joined", "score"):
        pd.testing.assert_series_equal(back[name], mixed_table[name], check_names=False)
    # Fresh keys, never the real ones.
    assert back.customer_id.tolist()[:3] == ["CUST-0", "CUST-1", "CUST-2"]


def test_csv_and_parquet_read_back_the_same_types(mixed_table, tmp_path):
    mixed_table.to_csv(tmp_path / "t.csv", index=False)
    mixed_table.to_parquet(tmp_path / "t.parquet")
    from_csv = infer_metadata(read_table(tmp_path / "t.csv"))
    from_parquet = infer_metadata(read_table(tmp_path / "t.parquet"))
    assert _types(from_csv) == _types(from_parquet) == _types(infer_metadata(mixed_table))
    # Dates from a CSV are strings: they still parse, at day resolution.
    assert from_csv.column("joined").datetime_unit == "D"


def test_override_file_sets_types_bounds_and_datetime_format(tmp_path):
    table = pd.DataFrame({"label": [0, 1, 2, 3, 4, 5] * 20, "when": ["03/01/2021", "15/02/2021"] * 60,
                          "x": np.linspace(0.5, 9.5, 120)})  # fmt: skip
    path = tmp_path / "over.yaml"
    path.write_text("columns:\n  label: numerical\n  when: {type: datetime, format: '%d/%m/%Y'}\n"
                    "  x: {min: 0, max: 10, decimals: 1}\n")  # fmt: skip
    meta = infer_metadata(table, path)
    assert meta.column("label").type == "numerical"  # the SDV rule alone would say categorical
    when = meta.column("when")
    assert when.type == "datetime" and when.datetime_format == "%d/%m/%Y"
    x = meta.column("x")
    assert (x.min, x.max, x.decimals) == (0, 10, 1)
    back = decode_table(encode_table(table, meta), meta)
    assert back["when"].tolist() == table["when"].tolist()  # written back in the same format


@pytest.mark.parametrize(
    ("override", "path", "message"),
    [
        (
            {"columns": {"plan": "categorial"}},
            "columns.plan.type",
            "unknown type 'categorial' (did you mean 'categorical'?)",
        ),
        ({"columns": {"paln": "categorical"}}, "columns.paln", "did you mean 'plan'?"),
        ({"columns": {"plan": {"typ": "id"}}}, "columns.plan.typ", "unknown field 'typ' (did you mean 'type'?)"),
        ({"columns": {"plan": {"type": "numerical"}}}, "columns.plan", "values are not numbers (e.g. 'basic'"),
        ({"columns": {"age": {"min": 5, "max": 1}}}, "columns.age", "min 5.0 is above max 1.0"),
        ({"columns": {"plan": {"type": "boolean"}}}, "columns.plan", "type boolean, but it has 3 distinct values"),
    ],
)
def test_bad_overrides_name_the_column(mixed_table, override, path, message):
    with pytest.raises(MetadataError) as err:
        infer_metadata(mixed_table, override)
    assert isinstance(err.value, SpecError)
    assert err.value.path == path
    assert message in str(err.value)


def test_all_null_column_is_refused():
    table = pd.DataFrame({"a": [1.0, 2.0, 3.0], "empty": [None, None, None]})
    with pytest.raises(MetadataError, match=r"columns.empty: every value is missing"):
        infer_metadata(table)


def test_mixed_numbers_and_text_is_refused_with_examples(tmp_path):
    (tmp_path / "m.csv").write_text("age,city\n" + "".join(f"{20 + i},x{i % 3}\n" for i in range(30)) + "n/a?,x1\n")
    with pytest.raises(MetadataError) as err:
        infer_metadata(read_table(tmp_path / "m.csv"), source="m.csv")
    text = str(err.value)
    assert text.startswith("m.csv: columns.age: mixed types: 30 of 31 values are numbers but 1 are not (e.g. 'n/a?')")
    assert "type: categorical" in text
    # Python objects of different kinds in one column.
    with pytest.raises(MetadataError, match=r"columns.v: mixed types: values of type dict"):
        infer_metadata(pd.DataFrame({"v": [1, "a", {"k": 1}]}))


def test_non_utf8_csv_names_line_and_byte(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,x\nAnna,1\nRen\u00e9,2\n".encode("latin-1"))
    with pytest.raises(MetadataError) as err:
        read_table(path)
    assert "not UTF-8: byte 0xe9 at line 3 (offset 17)" in str(err.value)
    assert str(path) in str(err.value)
    # A BOM is fine.
    path.write_bytes("\ufeffname,x\nAnna,1\n".encode())
    assert list(read_table(path).columns) == ["name", "x"]


def test_empty_tables_are_refused(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(MetadataError, match="empty table: the file has no header and no rows"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(MetadataError, match="empty table: it has a header but no rows"):
        infer_metadata(read_table(tmp_path / "header.csv"))
    with pytest.raises(MetadataError, match="no columns"):
        infer_metadata(pd.DataFrame())


def test_unknown_file_type_and_bad_parquet(tmp_path):
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(MetadataError, match=r"unsupported file type '.xlsx'"):
        read_table(tmp_path / "t.xlsx")
    (tmp_path / "t.parquet").write_text("not parquet")
    with pytest.raises(MetadataError, match="not a readable Parquet file"):
        read_table(tmp_path / "t.parquet")


def test_encoding_an_unknown_category_names_column_and_value(mixed_table):
    meta = infer_metadata(mixed_table)
    bad = mixed_table.copy()
    bad.loc[3, "plan"] = "platinum"
    with pytest.raises(MetadataError, match=r"columns.plan: value 'platinum' is not one of its categories"):
        encode_table(bad, meta)


def test_round_trip_of_nullable_category_tz_and_sub_second_columns():
    g = np.random.default_rng(3)
    n = 300
    table = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01 08:00", periods=n, freq="37min", tz="Europe/Paris"),
            "cat": pd.Categorical(g.choice(["lo", "mid", "hi"], n), categories=["lo", "mid", "hi"]),
            "cnt": pd.array(np.where(g.random(n) < 0.2, None, g.integers(0, 100, n)), dtype="Int64"),
            "flag": pd.array(np.where(g.random(n) < 0.1, None, g.random(n) < 0.5), dtype="boolean"),
            "ms": pd.to_datetime("2024-01-01") + pd.to_timedelta(g.integers(0, 10**9, n), unit="ms"),
            "old_us": pd.to_datetime("1950-01-01") + pd.to_timedelta(g.integers(0, 10**15, n), unit="us"),
        }
    )
    meta = infer_metadata(table)
    assert [meta.column(c).datetime_unit for c in ("ts", "ms", "old_us")] == ["s", "ms", "us"]
    assert meta.column("ts").tz == "Europe/Paris"
    back = decode_table(encode_table(table, meta), meta)
    for name in table.columns:
        pd.testing.assert_series_equal(back[name], table[name], check_names=False)


def test_override_file_names_the_target_and_it_round_trips(mixed_table, tmp_path):
    path = tmp_path / "over.yaml"
    path.write_text("target: plan\ncolumns:\n  age: numerical\n")
    meta = infer_metadata(mixed_table, path)
    assert meta.target == "plan"
    assert TableMetadata.from_dict(meta.to_dict()) == meta
    # Unset, it is left out of the JSON form: models and datasets saved before keep their bytes and hashes.
    assert "target" not in infer_metadata(mixed_table).to_dict()
    with pytest.raises(MetadataError) as err:
        infer_metadata(mixed_table, {"target": "paln"})
    assert err.value.path == "target" and "did you mean 'plan'?" in str(err.value)
    with pytest.raises(MetadataError, match="unknown field 'targt' \\(did you mean 'target'\\?\\)"):
        infer_metadata(mixed_table, {"targt": "plan"})
    with pytest.raises(MetadataError, match="target 'nope' is not one of the columns"):
        TableMetadata.from_dict({**meta.to_dict(), "target": "nope"})
