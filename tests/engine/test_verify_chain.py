"""The manifest is hash-chained: ``simgen verify`` names the first record that was edited, moved or removed.

The datasets are made through the real run loop (the test-only counter modality of ``counter_modality.py``,
and one tiny PyBullet image dataset), then damaged the way a person or a script would damage them.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from simgen.engine.run import RunConfig, run_dataset
from simgen.engine.verify import verify_dataset
from simgen.provenance.chain import CHAIN_ALGORITHM, rechain


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The counter modality, importable by name in this process and in spawned workers."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    yield importlib.import_module("counter_modality")


def _make(counter: ModuleType, out: Path, workers: int = 1, n: int = 6) -> dict:
    return run_dataset(counter.CounterModality(), RunConfig(out=out, n_records=n, seed=5, workers=workers)).dataset


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _write(out: Path, entries: list[dict], *, keep_checksum: bool = False) -> None:
    """Write the manifest back; ``keep_checksum``: also fix dataset.json's checksum, as a careful forger would."""
    text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
    (out / "manifest.jsonl").write_text(text)
    if keep_checksum:
        import hashlib

        meta = json.loads((out / "dataset.json").read_text())
        meta["checksums"]["manifest.jsonl"] = hashlib.sha256(text.encode()).hexdigest()
        (out / "dataset.json").write_text(json.dumps(meta))


def test_every_line_is_linked_and_the_head_is_the_same_whatever_the_workers(counter: ModuleType, tmp_path: Path):
    one = _make(counter, tmp_path / "one", workers=1)
    two = _make(counter, tmp_path / "two", workers=2)
    chain = one["manifest_chain"]
    assert chain["algorithm"] == CHAIN_ALGORITHM and chain["records"] == 6
    # Timings differ between the runs; the chain leaves them out, so the links do not.
    assert chain == two["manifest_chain"]
    links = [e["chain"] for e in _lines(tmp_path / "one")]
    assert links == [e["chain"] for e in _lines(tmp_path / "two")]
    assert len(set(links)) == 6 and links[-1] == chain["head"]
    report = verify_dataset(tmp_path / "one")
    assert report.ok and report.chain_break is None


def test_an_edited_record_is_named_even_when_the_manifest_checksum_is_fixed_too(counter: ModuleType, tmp_path: Path):
    out = tmp_path / "ds"
    _make(counter, out)
    entries = _lines(out)
    entries[3]["origin"] = "real"  # a forged origin
    _write(out, entries, keep_checksum=True)
    report = verify_dataset(out)
    assert not report.ok and "manifest.jsonl" not in report.corrupt  # the checksum alone would pass it
    assert report.chain_break is not None and report.chain_break.line == 4 and report.chain_break.record == "row 3"
    assert any("chain broken at line 4 (row 3)" in p for p in report.invalid)


def test_moved_and_truncated_records_break_the_chain(counter: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    _make(counter, out)
    entries = _lines(out)
    _write(out, [entries[0], entries[2], entries[1], *entries[3:]], keep_checksum=True)
    assert verify_dataset(out).chain_break.line == 2
    _write(out, entries[:-1], keep_checksum=True)  # the last record dropped: every link left still holds
    brk = verify_dataset(out).chain_break
    assert brk is not None and "recorded 6 records, found 5" in brk.message


def test_a_relinked_manifest_still_fails_against_the_recorded_head(counter: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    _make(counter, out)
    entries = _lines(out)
    entries[1]["generation"] = 7
    _write(out, entries, keep_checksum=True)
    rechain(out)  # every link recomputed: only dataset.json's head still tells
    brk = verify_dataset(out).chain_break
    assert brk is not None and "chain head differs" in brk.message


def test_rechain_after_a_deliberate_rewrite_makes_verify_pass(counter: ModuleType, tmp_path: Path) -> None:
    """What ``simgen refine`` must do after it adds its record to every line."""
    out = tmp_path / "ds"
    _make(counter, out)
    entries = _lines(out)
    for e in entries:
        e["refine"] = {"status": "accepted"}
    _write(out, entries)
    assert not verify_dataset(out).ok
    meta = json.loads((out / "dataset.json").read_text())
    meta["manifest_chain"] = rechain(out)
    from simgen.io import sha256_file

    meta["checksums"]["manifest.jsonl"] = sha256_file(out / "manifest.jsonl")
    (out / "dataset.json").write_text(json.dumps(meta))
    assert verify_dataset(out).ok


def test_a_dataset_from_before_the_chain_is_checked_as_before(counter: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    _make(counter, out)
    entries = [{k: v for k, v in e.items() if k != "chain"} for e in _lines(out)]
    _write(out, entries, keep_checksum=True)
    meta = json.loads((out / "dataset.json").read_text())
    del meta["manifest_chain"]
    (out / "dataset.json").write_text(json.dumps(meta))
    assert verify_dataset(out).ok


def test_the_cli_prints_the_first_broken_record_on_one_line(counter: ModuleType, tmp_path: Path) -> None:
    from simgen.cli import app

    out = tmp_path / "ds"
    _make(counter, out)
    entries = _lines(out)
    entries[2]["files"] = {}
    _write(out, entries, keep_checksum=True)
    result = CliRunner().invoke(app, ["verify", str(out)], env={"COLUMNS": "80"})
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "chain broken" in line)
    assert "line 3 (row 2)" in line


@pytest.mark.slow
def test_an_image_dataset_is_chained_too(tmp_path: Path) -> None:
    from simgen.engine import generate
    from simgen.spec import load_spec, read_spec_file

    repo = Path(__file__).resolve().parents[2]
    spec = load_spec(read_spec_file(repo / "scenes" / "tabletop_clutter.yaml"), base_dir=repo / "scenes")
    out = tmp_path / "img"
    generate(spec, out, n_frames=3, seed=1, workers=1, renderer="tiny", resolution=(64, 48))
    assert verify_dataset(out).ok
    entries = _lines(out)
    assert [e["frame"] for e in entries] == [0, 1, 2] and all("chain" in e for e in entries)
    entries[1]["origin"] = "real"
    _write(out, entries, keep_checksum=True)
    assert verify_dataset(out).chain_break.record == "frame 1"
