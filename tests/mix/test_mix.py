"""``simgen mix``: real and synthetic records mixed at a fraction, each keeping its provenance; verify works on it.

Every test goes through the real code path: a plain COCO folder of real photos and a PyBullet-rendered simgen
dataset, real wines and a table sampled by the copula, JSONL records; the mixed COCO is read back with
pycocotools and the mixed table with pandas; the CLI runs through typer's CliRunner.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from simgen.engine.verify import verify_dataset
from simgen.errors import OutputExistsError
from simgen.generators import DEFAULT_TABULAR
from simgen.mix import MixError, mix, plan_counts
from simgen.mix.tables import from_frame, mix_frames

pd = pytest.importorskip("pandas")


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def _app() -> typer.Typer:
    from simgen.cli import clean_errors
    from simgen.mix.cli import register

    app = typer.Typer()
    app.command(name="noop")(clean_errors(lambda: None))  # a second command keeps `mix` a named subcommand
    register(app)
    return app


# --- counts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("real", "syn", "fraction", "total", "want"),
    [
        (100, 90, 0.1, None, (10, 90)),  # every synthetic record, and the real ones the fraction needs
        (5, 90, 0.1, None, (5, 45)),  # too few real: all of them, and only as many synthetic as keep 10%
        (100, 90, 0.1, 30, (3, 27)),  # 0.1 * 30 is 3.0000000000000004: still 3
        (100, 90, 0.15, 10, (2, 8)),  # rounding favours real records: never below the fraction asked
        (100, 90, 1.0, None, (100, 0)),
        (100, 90, 0.0, None, (0, 90)),
    ],
)
def test_counts_never_fall_below_the_fraction(real, syn, fraction, total, want) -> None:
    counts = plan_counts(real, syn, fraction, total)
    assert (counts.n_real, counts.n_synthetic) == want
    assert counts.real_fraction >= fraction


def test_counts_refuse_what_the_inputs_cannot_give() -> None:
    with pytest.raises(MixError, match="needs 50 records of REAL, which has 20"):
        plan_counts(20, 1000, 0.5, 100)
    with pytest.raises(MixError, match="between 0 and 1"):
        plan_counts(20, 20, 1.5)


# --- tables ---------------------------------------------------------------------------------------------


def test_a_table_mix_keeps_provenance_per_row_and_verifies(wine_csv: Path, syn_table: Path, tmp_path: Path) -> None:
    result = mix(wine_csv, syn_table, tmp_path / "m", real_fraction=0.2, seed=3)
    table = pd.read_csv(tmp_path / "m" / "table.csv")
    real = pd.read_csv(wine_csv)
    assert list(table.columns) == [*real.columns, "_origin", "_generation", "_source"]
    assert (table._origin == "real").sum() == 60 and (table._origin == "synthetic").sum() == 240
    meta = result.dataset
    assert meta["modality"] == "tables" and meta["n_rows"] == 300
    assert meta["mix"]["real_fraction_achieved"] == 0.2 and meta["mix"]["generations"] == {"0": 300}
    ids = {s["role"]: s for s in meta["mix"]["sources"]}
    assert ids["real"]["sha256"] == hashlib.sha256(wine_csv.read_bytes()).hexdigest()
    assert ids["synthetic"]["simgen"]["generator"] == DEFAULT_TABULAR
    assert set(table._source) == {ids["real"]["id"], ids["synthetic"]["id"]}
    # Every real row is one of the real table's rows, unchanged.
    real_rows = {tuple(r) for r in real.itertuples(index=False)}
    mixed_real = table[table._origin == "real"][list(real.columns)]
    assert all(tuple(r) in real_rows for r in mixed_real.itertuples(index=False))
    manifest = [json.loads(line) for line in (tmp_path / "m" / "manifest.jsonl").read_text().splitlines()]
    assert [e["row"] for e in manifest] == list(range(300))
    assert [e["origin"] for e in manifest] == table._origin.tolist()
    report = verify_dataset(tmp_path / "m")
    assert report.ok, report


def test_a_table_mix_is_deterministic_by_seed(wine_csv: Path, syn_table: Path, tmp_path: Path) -> None:
    mix(wine_csv, syn_table, tmp_path / "a", real_fraction=0.25, seed=1, total=100)
    mix(wine_csv, syn_table, tmp_path / "b", real_fraction=0.25, seed=1, total=100)
    mix(wine_csv, syn_table, tmp_path / "c", real_fraction=0.25, seed=2, total=100)
    a, b, c = (_tree(tmp_path / n) for n in "abc")
    # dataset.json names the package versions and paths, which are the same here: the whole folder is identical.
    assert a == b
    assert a["table.csv"] != c["table.csv"]


def test_a_previous_mix_keeps_its_rows_provenance(wine_csv: Path, syn_table: Path, tmp_path: Path) -> None:
    # A simgen table records generation 0 in its manifest; a plain CSV records none and takes the flag's.
    plain = tmp_path / "syn.csv"
    plain.write_bytes((syn_table / "table.csv").read_bytes())
    mix(wine_csv, plain, tmp_path / "g1", real_fraction=0.5, seed=1, synthetic_generation=1)
    second = mix(wine_csv, tmp_path / "g1", tmp_path / "g2", real_fraction=0.5, seed=2, synthetic_generation=5)
    table = pd.read_csv(tmp_path / "g2" / "table.csv")
    # Rows that came through the first mix keep their generation (1) and real rows stay real, generation 0.
    assert set(table[table._origin == "synthetic"]._generation) == {1}
    assert set(table[table._origin == "real"]._generation) == {0}
    assert second.real_fraction > 0.5  # the real rows of the first mix count as real too


def test_mismatched_tables_are_refused_naming_the_column(wine_csv: Path, tmp_path: Path) -> None:
    other = pd.read_csv(wine_csv).rename(columns={"alcohol": "alcohool"})
    other.to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(MixError, match="column 'alcohol' is in REAL .* but not in SYN .*did you mean 'alcohool'"):
        mix(wine_csv, tmp_path / "other.csv", tmp_path / "m", real_fraction=0.5)
    assert not (tmp_path / "m").exists()


def test_a_real_input_holding_synthetic_rows_is_refused(wine_csv: Path, syn_table: Path, tmp_path: Path) -> None:
    mix(wine_csv, syn_table, tmp_path / "m", real_fraction=0.5, seed=1)
    with pytest.raises(MixError, match="row .* has origin 'synthetic'; REAL must hold real records only"):
        mix(tmp_path / "m", syn_table, tmp_path / "m2", real_fraction=0.5)


def test_mix_frames_in_memory_is_the_same_code_path(wine_csv: Path) -> None:
    real = pd.read_csv(wine_csv)
    syn = real.sample(frac=1.0, random_state=0).reset_index(drop=True)
    counts = plan_counts(len(real), len(syn), 0.1, 100)
    table, entries = mix_frames(from_frame(real, "real"), from_frame(syn, "synthetic", default_generation=3), counts, 0)
    assert len(table) == 100 and (table._origin == "real").sum() == 10
    assert set(table[table._origin == "synthetic"]._generation) == {3}
    assert [e["origin"] for e in entries] == table._origin.tolist()


# --- images (COCO) --------------------------------------------------------------------------------------


def test_a_coco_mix_reads_back_with_pycocotools_and_verifies(real_coco: Path, syn_images: Path, tmp_path: Path):
    from pycocotools.coco import COCO

    out = tmp_path / "m"
    result = mix(real_coco, syn_images, out, real_fraction=0.5, seed=4)
    assert result.modality == "images" and (result.counts.n_real, result.counts.n_synthetic) == (4, 4)
    coco = COCO(str(out / "annotations.coco.json"))
    images = coco.dataset["images"]
    assert sorted(coco.getImgIds()) == list(range(1, 9))
    assert sum(im["origin"] == "real" for im in images) == 4
    assert all(im["generation"] == 0 for im in images)
    real_src = json.loads((real_coco / "instances.json").read_text())
    real_names = {c["id"]: c["name"] for c in real_src["categories"]}
    syn_src = json.loads((syn_images / "annotations.coco.json").read_text())
    syn_names = {c["id"]: c["name"] for c in syn_src["categories"]}
    names = [c["name"] for c in coco.dataset["categories"]]
    assert len(names) == len(set(names)) == len(set(real_names.values()) | set(syn_names.values()))
    for im in images:
        src = im["source"]
        assert (out / im["file_name"]).is_file()
        # Every annotation kept its category (by name) and its box through the renumbering.
        mixed = sorted(
            (coco.cats[a["category_id"]]["name"], a["bbox"]) for a in coco.loadAnns(coco.getAnnIds(im["id"]))
        )
        side, names_of = (real_src, real_names) if src["role"] == "real" else (syn_src, syn_names)
        original = sorted((names_of[a["category_id"]], a["bbox"]) for a in side["annotations"]
                          if a["image_id"] == src["image_id"])  # fmt: skip
        assert mixed == original
        if src["role"] == "real":
            assert (out / im["file_name"]).read_bytes() == (real_coco / src["file_name"]).read_bytes()
        else:
            assert "depth_file" not in im and "frame_index" in im
    assert verify_dataset(out).ok


def test_a_coco_mix_is_deterministic_and_a_flipped_byte_is_caught(real_coco: Path, syn_images: Path, tmp_path: Path):
    mix(real_coco / "instances.json", syn_images, tmp_path / "a", real_fraction=0.5, seed=4)
    mix(real_coco / "instances.json", syn_images, tmp_path / "b", real_fraction=0.5, seed=4)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    image = next((tmp_path / "a" / "images").iterdir())
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0xFF
    image.unlink()  # a hard link to the source: write a new file, never into the source's bytes
    image.write_bytes(bytes(data))
    report = verify_dataset(tmp_path / "a")
    assert report.corrupt == [f"images/{image.name}"]


def test_a_mix_refuses_a_folder_that_holds_something(real_coco: Path, syn_images: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        mix(real_coco, syn_images, out, real_fraction=0.5)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_overwrite_replaces_a_previous_mix(real_coco: Path, syn_images: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    mix(real_coco, syn_images, out, real_fraction=0.5, seed=1)
    mix(real_coco, syn_images, out, real_fraction=0.2, seed=1, overwrite=True)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["mix"]["real_fraction_requested"] == 0.2 and verify_dataset(out).ok
    assert len(list((out / "images").iterdir())) == meta["n_images"]


def test_images_and_tables_do_not_mix(real_coco: Path, wine_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(MixError, match="holds images and SYN .* holds tables"):
        mix(real_coco, wine_csv, tmp_path / "m")


# --- text -----------------------------------------------------------------------------------------------


def test_a_text_mix_keeps_valid_records_with_their_provenance(tmp_path: Path) -> None:
    from simgen.generators.text.records import read_records

    real = [{"id": f"r{i}", "instruction": f"Name a colour {i}.", "operation": "seed", "origin": "real",
             "generation": 0} for i in range(20)]  # fmt: skip
    syn = [
        {"id": f"s{i}", "instruction": f"Name a shape {i}.", "operation": "self-instruct/propose"} for i in range(60)
    ]
    (tmp_path / "real.jsonl").write_text("".join(json.dumps(r) + "\n" for r in real))
    (tmp_path / "syn.jsonl").write_text("".join(json.dumps(r) + "\n" for r in syn))
    result = mix(tmp_path / "real.jsonl", tmp_path / "syn.jsonl", tmp_path / "m", real_fraction=0.25, seed=1,
                 synthetic_generation=2)  # fmt: skip
    records = read_records(tmp_path / "m" / "records.jsonl")
    assert len(records) == 80 and sum(r.origin == "real" for r in records) == 20
    assert {r.generation for r in records if r.origin == "synthetic"} == {2}
    assert all(r.meta["mix"]["source"] == ("real" if r.id.startswith("r") else "synthetic") for r in records)
    assert result.dataset["modality"] == "text" and result.dataset["n_records"] == 80
    assert verify_dataset(tmp_path / "m").ok


# --- the command line -----------------------------------------------------------------------------------


def test_the_cli_refuses_a_mix_below_the_minimum_on_one_line(wine_csv: Path, syn_table: Path, tmp_path: Path):
    runner = CliRunner()
    args = ["mix", str(wine_csv), str(syn_table), "-o", str(tmp_path / "m"), "--real-fraction", "0.05"]
    result = runner.invoke(_app(), args, env={"COLUMNS": "80"})
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "below the minimum 0.1" in lines[0] and "--allow-below-minimum" in lines[0]
    assert not (tmp_path / "m").exists()
    result = runner.invoke(_app(), [*args, "--allow-below-minimum", "--seed", "2"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "m" / "dataset.json").read_text())
    assert meta["mix"]["allowed_below_minimum"] is True and meta["mix"]["real_fraction_achieved"] >= 0.05
    # A stricter minimum is a flag away.
    strict = [*args[:-1], "0.2", "--min-real-fraction", "0.3", "-o", str(tmp_path / "s")]
    assert runner.invoke(_app(), strict).exit_code == 2
