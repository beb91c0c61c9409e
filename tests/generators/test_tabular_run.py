"""Tables through the one run loop: blocks of rows sampled from a fitted model, on real data (breast_cancer).

Same seed gives byte-identical ``table.csv`` on 1 or 2 workers and any shard size; an interrupted run resumes to
the same bytes; ``verify`` finds a flipped byte; the CLI fits, samples and generates, and fails in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from typer.testing import CliRunner  # noqa: E402

from simgen.engine.run import Modality, RecordTask  # noqa: E402
from simgen.engine.verify import verify_dataset  # noqa: E402
from simgen.errors import OutputExistsError  # noqa: E402
from simgen.generators import model_digest  # noqa: E402
from simgen.generators.tabular import run as table_run  # noqa: E402
from simgen.generators.tabular.model import ConditionError  # noqa: E402
from simgen.generators.tabular.run import TableModality, fit_table, sample_table  # noqa: E402

N_ROWS, BLOCK = 2300, 500  # 5 blocks, the last one short


@pytest.fixture(scope="module")
def real_csv(tmp_path_factory: pytest.TempPathFactory, breast_cancer: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("real") / "breast_cancer.csv"
    breast_cancer.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, real_csv: Path) -> Path:
    folder = tmp_path_factory.mktemp("model")
    fit_table(real_csv, seed=0).save(folder)
    return folder


def tree(root: Path) -> dict[str, bytes]:
    """The dataset's files but the work folder, with what varies by run (timings, workers) taken out."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel.startswith(".simgen/"):
            continue
        data = path.read_bytes()
        if rel == "manifest.jsonl":
            lines = [json.loads(line) for line in data.splitlines()]
            data = json.dumps([{k: v for k, v in e.items() if k != "timings_ms"} for e in lines]).encode()
        elif rel == "dataset.json":
            meta = json.loads(data)
            meta.pop("run"), meta.pop("timings_ms_total")
            meta["checksums"].pop("manifest.jsonl")  # its lines hold timings
            data = json.dumps(meta, sort_keys=True).encode()
        out[rel] = data
    return out


def sample(model_dir: Path, out: Path, **kw: object):
    kw.setdefault("n_rows", N_ROWS)
    kw.setdefault("rows_per_block", BLOCK)
    kw.setdefault("seed", 1)
    return sample_table(model_dir, out, **kw)


def test_the_table_modality_follows_the_protocols(model_dir: Path) -> None:
    modality = TableModality(model_dir, 10)
    assert isinstance(modality, Modality)
    assert isinstance(table_run.TableTask(model_dir=str(model_dir), model_sha256="x", n_rows=10), RecordTask)


def test_same_seed_same_bytes_whatever_workers_and_shards(model_dir: Path, tmp_path: Path) -> None:
    one = sample(model_dir, tmp_path / "one", workers=1)
    two = sample(model_dir, tmp_path / "two", workers=2, shard_blocks=1)
    three = sample(model_dir, tmp_path / "three", workers=1, shard_blocks=3)
    assert one.made == two.made == three.made == 5
    assert tree(tmp_path / "one") == tree(tmp_path / "two") == tree(tmp_path / "three")

    table = pd.read_csv(tmp_path / "one" / "table.csv")
    real_columns = json.loads((model_dir / "model.json").read_text())["config"]["metadata"]["columns"]
    assert len(table) == N_ROWS and list(table.columns) == [c["name"] for c in real_columns]
    assert set(table["diagnosis"]) <= {"malignant", "benign"}
    blocks = sorted((tmp_path / "one" / "rows").iterdir())
    assert [p.name for p in blocks] == [f"{i:06d}.csv" for i in range(5)]
    assert len(pd.read_csv(blocks[-1])) == N_ROWS - 4 * BLOCK

    meta = json.loads((tmp_path / "one" / "dataset.json").read_text())
    assert meta["modality"] == "tables" and meta["record_key"] == "block"
    assert meta["spec_sha256"] == meta["model_sha256"] == model_digest(model_dir)
    assert meta["generator"] == "tabular/gaussian-copula-v2" and meta["seed"] == 1  # the default: per-class copulas
    assert (meta["n_rows"], meta["n_blocks"], meta["counts"]) == (N_ROWS, 5, {"rows": N_ROWS})
    assert [c["name"] for c in meta["metadata"]["columns"]] == list(table.columns)
    assert {"table.csv", "manifest.jsonl", "model/model.json", "model/arrays.npz"} <= set(meta["checksums"])
    assert (tmp_path / "one" / "model" / "model.json").read_bytes() == (model_dir / "model.json").read_bytes()
    lines = [json.loads(line) for line in (tmp_path / "one" / "manifest.jsonl").read_text().splitlines()]
    assert [e["block"] for e in lines] == list(range(5))
    assert all(e["origin"] == "synthetic" and e["generation"] == 0 for e in lines)
    assert [(e["first_row"], e["rows"]) for e in lines][-1] == (2000, 300)

    other = sample(model_dir, tmp_path / "other", seed=2)
    assert tree(tmp_path / "other")["table.csv"] != tree(tmp_path / "one")["table.csv"]
    assert other.dataset["seed"] == 2


def test_an_interrupted_run_resumes_to_the_same_bytes(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "ref"
    sample(model_dir, reference)
    out = tmp_path / "ds"
    real_block_rows = table_run.block_rows

    def interrupted(block: int, n_rows: int, rows_per_block: int) -> int:
        if block == 3:
            raise KeyboardInterrupt  # a kill, as far as the shard's files are concerned
        return real_block_rows(block, n_rows, rows_per_block)

    monkeypatch.setattr(table_run, "block_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sample(model_dir, out, shard_blocks=2)  # in process (one worker): the patch applies
    monkeypatch.undo()
    assert not (out / "dataset.json").exists() and not (out / "table.csv").exists()
    resumed = sample(model_dir, out, resume=True)
    assert resumed.reused >= 2 and resumed.made + resumed.reused == 5
    assert tree(out) == tree(reference)

    # Another block size samples other rows: a resume with it is refused, never mixed in.
    with pytest.raises(OutputExistsError, match="rows_per_block"):
        sample(model_dir, out, rows_per_block=400, resume=True)


def test_verify_passes_and_finds_a_flipped_byte_which_resume_repairs(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    sample(model_dir, out)
    reference = tree(out)
    assert verify_dataset(out).ok
    block = out / "rows" / "000002.csv"
    data = bytearray(block.read_bytes())
    data[-5] ^= 0x01
    block.write_bytes(bytes(data))
    report = verify_dataset(out)
    assert report.corrupt == ["rows/000002.csv"] and not report.ok
    repaired = sample(model_dir, out, resume=True)
    assert (repaired.made, repaired.reused) == (1, 4)
    assert tree(out) == reference and verify_dataset(out).ok


def test_conditions_and_parquet(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    sample(model_dir, out, n_rows=600, conditions={"diagnosis": "malignant"}, parquet=True)
    table = pd.read_csv(out / "table.csv")
    assert set(table["diagnosis"]) == {"malignant"} and len(table) == 600
    parquet = pd.read_parquet(out / "table.parquet")
    pd.testing.assert_frame_equal(parquet, table)
    assert verify_dataset(out).ok
    with pytest.raises(ConditionError, match="diagnosis"):
        sample(model_dir, tmp_path / "bad", conditions={"diagnosis": "malignnt"})
    assert not (tmp_path / "bad").exists()  # refused before anything is written


# --- the command line ------------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("COLUMNS", raising=False)
    return CliRunner()


def _run(cli: CliRunner, *args: str):
    from simgen.cli import app

    return cli.invoke(app, ["tabular", *map(str, args)])


def test_cli_fit_sample_generate(cli: CliRunner, real_csv: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    result = _run(cli, "fit", real_csv, "-o", model, "--generator", "tabular/cart-v1", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert json.loads((model / "model.json").read_text())["generator"] == "tabular/cart-v1"

    result = _run(cli, "sample", model, "-n", "1500", "-o", tmp_path / "a", "--seed", "1", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "wrote 1500 rows" in result.output
    result = _run(cli, "sample", model, "-n", "1500", "-o", tmp_path / "b", "--seed", "1", "-c", "diagnosis=benign")
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(tmp_path / "b" / "table.csv")["diagnosis"]) == {"benign"}
    assert verify_dataset(tmp_path / "a").ok

    gen = tmp_path / "gen"
    args = ("generate", real_csv, "-n", "1500", "-o", gen, "--generator", "tabular/cart-v1", "--seed", "3")
    result = _run(cli, *args)
    assert result.exit_code == 0, result.output
    # generate = fit with the same seed + sample: the same model, hence the same rows as fit then sample.
    result = _run(cli, "sample", model, "-n", "1500", "-o", tmp_path / "c", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert (gen / "table.csv").read_bytes() == (tmp_path / "c" / "table.csv").read_bytes()
    assert (gen / "model" / "model.json").read_bytes() == (model / "model.json").read_bytes()
    # A rerun of generate with --overwrite refits and replaces the dataset; with --resume it keeps every block.
    assert _run(cli, *args, "--overwrite").exit_code == 0
    result = _run(cli, *args, "--resume")
    assert result.exit_code == 0 and "0 blocks sampled, 2 kept" in result.output, result.output
    assert verify_dataset(gen).ok


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fit", "missing.csv", "-o", "m"), "no such file: missing.csv"),
        (("fit", "{real}", "-o", "m", "--generator", "tabular/cart-v2"), "did you mean 'tabular/cart-v1'"),
        (("sample", "nomodel", "-n", "10", "-o", "o"), "not a model folder"),
        (("sample", "{model}", "-n", "10", "-o", "o", "-c", "diagnosis=maybe"), "diagnosis"),
    ],
)
def test_cli_errors_are_one_line(
    cli: CliRunner, real_csv: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...], message: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    result = _run(cli, *(a.format(real=real_csv, model=model_dir) for a in args))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_cli_fit_uses_the_target_named_in_the_metadata_file(cli: CliRunner, tmp_path: Path) -> None:
    # Two category columns: the fewest-levels rule would take "size"; the metadata file names "label".
    g = np.random.default_rng(0)
    label = g.choice(["a", "b", "c"], 300)
    table = pd.DataFrame({"x": (g.normal(size=300) + (label == "b") * 5).round(3), "size": g.choice(["s", "m"], 300),
                          "label": label})  # fmt: skip
    table.to_csv(tmp_path / "real.csv", index=False)
    (tmp_path / "over.yaml").write_text("target: label\n")
    result = _run(cli, "fit", tmp_path / "real.csv", "-o", tmp_path / "m", "--metadata", tmp_path / "over.yaml")
    assert result.exit_code == 0, result.output
    header = json.loads((tmp_path / "m" / "model.json").read_text())
    assert header["generator"] == "tabular/gaussian-copula-v2" and header["config"]["condition_on"] == "label"
    assert header["config"]["metadata"]["target"] == "label"
    result = _run(cli, "fit", tmp_path / "real.csv", "-o", tmp_path / "auto")
    assert json.loads((tmp_path / "auto" / "model.json").read_text())["config"]["condition_on"] == "size"
