"""The run loop is modality-agnostic: a tiny "counter" modality, defined here only, gets everything images get.

Each record is a few integers drawn from the record's own rng, written as one small file per record plus a
``rows.jsonl`` at the end. Through :func:`simgen.engine.run.run_dataset` it gets byte-identical output on 1 or 2
workers, resume after an interrupted run, ``verify``, ``--overwrite`` safety and ``dataset.json`` provenance,
without any code of its own for them.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from simgen.engine.run import Modality, RecordTask, RunConfig, run_dataset
from simgen.engine.verify import verify_dataset
from simgen.errors import OutputExistsError


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The counter modality, importable by name in this process and in spawned workers."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    yield importlib.import_module("counter_modality")


def tree(root: Path) -> dict[str, bytes]:
    """Every file of the dataset but the work folder, with timings (which vary) taken out of the records."""
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
            meta.pop("run"), meta.pop("timings_ms_total"), meta.pop("checksums")  # run: workers, seconds
            data = json.dumps(meta, sort_keys=True).encode()
        out[rel] = data
    return out


def test_the_counter_modality_follows_the_protocols(counter: ModuleType) -> None:
    assert isinstance(counter.CounterModality(), Modality)
    assert isinstance(counter.CounterTask(), RecordTask)


def test_same_seed_same_bytes_on_one_or_two_workers(counter: ModuleType, tmp_path: Path) -> None:
    one = run_dataset(counter.CounterModality(), RunConfig(out=tmp_path / "one", n_records=12, seed=7, workers=1))
    two = run_dataset(
        counter.CounterModality(), RunConfig(out=tmp_path / "two", n_records=12, seed=7, workers=2, shard_records=2)
    )
    assert one.made == two.made == 12
    assert tree(tmp_path / "one") == tree(tmp_path / "two")
    run_dataset(counter.CounterModality(), RunConfig(out=tmp_path / "other", n_records=12, seed=8))
    assert tree(tmp_path / "other")["rows.jsonl"] != tree(tmp_path / "one")["rows.jsonl"]

    meta = json.loads((tmp_path / "one" / "dataset.json").read_text())
    assert meta["modality"] == "counter" and meta["record_key"] == "row" and meta["n_rows"] == 12
    assert meta["formats"] == ["rowsfile"] and meta["counts"] == {"rows": 12}
    assert set(meta["checksums"]) == {"rows.jsonl", "manifest.jsonl"}
    assert meta["packages"]["numpy"]
    lines = [json.loads(line) for line in (tmp_path / "one" / "manifest.jsonl").read_text().splitlines()]
    assert [e["row"] for e in lines] == list(range(12))
    assert all(e["origin"] == "synthetic" and e["generation"] == 0 for e in lines)
    assert lines[0]["files"]["values"]["path"] == "rows/000000.json" and "sum" in lines[0]
    assert verify_dataset(tmp_path / "two").ok


def test_an_interrupted_run_resumes_to_the_same_bytes(counter: ModuleType, tmp_path: Path) -> None:
    reference = tmp_path / "ref"
    run_dataset(counter.CounterModality(), RunConfig(out=reference, n_records=10, seed=3, shard_records=4))
    out = tmp_path / "ds"
    with pytest.raises(counter.Boom):
        run_dataset(counter.CounterModality(fail_at=6), RunConfig(out=out, n_records=10, seed=3, shard_records=4))
    assert not (out / "dataset.json").exists()
    committed = (out / ".simgen" / "shards" / "shard_000001" / "manifest.jsonl").read_text().splitlines()
    kept = [json.loads(line)["row"] for line in committed]
    # What was committed before the interruption is kept (rows still queued on the sink's thread are not).
    assert kept == [4, 5][: len(kept)]
    resumed = run_dataset(counter.CounterModality(), RunConfig(out=out, n_records=10, seed=3, resume=True))
    assert (resumed.reused, resumed.made) == (4 + len(kept), 6 - len(kept))
    assert tree(out) == tree(reference)

    # A damaged record file is found by checksum and exactly that record is redone.
    (out / "rows" / "000002.json").write_text("[0, 0, 0]")
    report = verify_dataset(out)
    assert report.corrupt == ["rows/000002.json"]
    repaired = run_dataset(counter.CounterModality(), RunConfig(out=out, n_records=10, seed=3, resume=True))
    assert (repaired.made, repaired.reused) == (1, 9)
    assert tree(out) == tree(reference) and verify_dataset(out).ok

    # Resuming with another identity is refused; the run's own records make --overwrite safe.
    with pytest.raises(OutputExistsError, match="different spec_sha256, width"):
        run_dataset(counter.CounterModality(width=4), RunConfig(out=out, n_records=10, seed=3, resume=True))
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="mine.txt"):
        run_dataset(counter.CounterModality(), RunConfig(out=out, n_records=10, seed=3, overwrite=True))
    (out / "mine.txt").unlink()
    again = run_dataset(counter.CounterModality(), RunConfig(out=out, n_records=10, seed=3, overwrite=True))
    assert again.made == 10 and tree(out) == tree(reference)


def test_verify_reports_a_lost_record_line(counter: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    run_dataset(counter.CounterModality(), RunConfig(out=out, n_records=5, seed=1))
    manifest = out / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:2] + lines[3:]))
    report = verify_dataset(out)
    assert any("no line for row 2 of 5" in p for p in report.invalid)
    assert "rows/000002.json" in report.extra
