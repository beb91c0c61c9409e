"""Kill real runs with SIGKILL after a given number of committed frames, resume, and compare with an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from simgen.cli import app
from simgen.engine import generate
from simgen.engine.verify import verify_dataset
from simgen.spec import load_spec, read_spec_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenes" / "tabletop_clutter.yaml"
N_FRAMES = 12


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = 5
    raw["frames_per_scene"] = 2
    raw["physics"]["max_steps"] = 300
    raw["camera"]["width"], raw["camera"]["height"] = 96, 72
    path = tmp_path_factory.mktemp("spec") / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def reference(spec_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ds"
    generate(load_spec(spec_file), out, n_frames=N_FRAMES, seed=5, shard_frames=4)
    return out


def dataset_bytes(root: Path) -> dict[str, bytes]:
    files = {
        str(p.relative_to(root)): p.read_bytes() for d in ("images", "depth", "instances") for p in (root / d).glob("*")
    }
    files["annotations.coco.json"] = (root / "annotations.coco.json").read_bytes()
    return files


def _frames_committed(out: Path) -> int:
    return sum(
        len(p.read_bytes().split(b"\n")) - 1 for p in (out / ".simgen" / "shards").glob("shard_*/manifest.jsonl")
    )


def _cli(spec_file: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "simgen", "generate", str(spec_file), "-n", str(N_FRAMES), "-o", str(out),
            "--seed", "5", "--shard-frames", "4", "--no-preview", *extra]  # fmt: skip


#: Committed frames (over all shards) after which each successive run is killed: every kill is certain to land
#: mid-run, whatever the machine's speed, since each run is watched until it has committed that many.
KILL_AFTER = (2, 5, 9)


@pytest.mark.slow
def test_sigkill_after_the_nth_committed_frame_then_resume_is_byte_identical(
    spec_file: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    for attempt, target in enumerate(KILL_AFTER):
        extra = ["--resume"] if attempt else []
        workers = ["--workers", "2"] if attempt % 2 else []
        proc = subprocess.Popen(_cli(spec_file, out, *extra, *workers), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and (
            not out.exists() or _frames_committed(out) < target
        ):
            time.sleep(0.01)
        assert proc.poll() is None, f"run {attempt} ended (exit {proc.returncode}) before its frame {target}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        committed = _frames_committed(out)
        assert target <= committed < N_FRAMES, (attempt, committed)
        assert not (out / "dataset.json").exists()
    result = subprocess.run(_cli(spec_file, out, "--resume"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert dataset_bytes(out) == dataset_bytes(reference)
    report = verify_dataset(out)
    assert report.ok, report
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [m["frame"] for m in manifest] == list(range(N_FRAMES))


@pytest.mark.slow
def test_verify_catches_deleted_truncated_and_edited_files(reference: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", str(out)])
    assert ok.exit_code == 0, ok.output
    (out / "images" / "000003.png").unlink()
    data = (out / "depth" / "000001.png").read_bytes()
    (out / "depth" / "000001.png").write_bytes(data[: len(data) // 2])
    coco = json.loads((out / "annotations.coco.json").read_text())
    coco["annotations"][0]["bbox"][0] += 1.0
    (out / "annotations.coco.json").write_text(json.dumps(coco))
    (out / "images" / "stray.png").write_bytes(b"x")
    report = verify_dataset(out)
    assert report.missing == ["images/000003.png"]
    assert sorted(report.corrupt) == ["annotations.coco.json", "depth/000001.png"]
    assert report.extra == ["images/stray.png"]
    bad = runner.invoke(app, ["verify", str(out)])
    assert bad.exit_code == 1
    assert "missing" in bad.output and "corrupt" in bad.output


@pytest.mark.slow
def test_resume_refuses_a_different_run(spec_file: Path, reference: Path, tmp_path: Path) -> None:
    import shutil

    from simgen.errors import OutputExistsError

    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    with pytest.raises(OutputExistsError, match="seed"):
        generate(load_spec(spec_file), out, n_frames=N_FRAMES, seed=6, shard_frames=4, resume=True)


@pytest.mark.slow
def test_replay_reproduces_a_frame(reference: Path) -> None:
    from simgen.engine.replay import replay_frame

    replayed = replay_frame(reference, 5)
    assert replayed.settled_match
    assert replayed.identical == {"rgb": True, "depth": True, "instances": True}


# --- resume repairs what verify finds --------------------------------------------------------------

REPAIR_FRAMES = 8


@pytest.fixture(scope="module")
def repair_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every format on (YOLO, BOP with its hard-linked images), so each kind of file can be damaged."""
    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = 4
    raw["frames_per_scene"] = 2
    raw["physics"]["max_steps"] = 200
    raw["camera"]["width"], raw["camera"]["height"] = 64, 48
    raw["labels"] = {"min_visible_px": 4, "visibility": True}
    raw["outputs"] = {"yolo": True, "bop": True}
    path = tmp_path_factory.mktemp("repair_spec") / "all_formats.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _repair_run(spec: Path, out: Path, **kwargs: object):
    return generate(spec, out, n_frames=REPAIR_FRAMES, seed=3, renderer="tiny", shard_frames=4, **kwargs)


@pytest.fixture(scope="module")
def undamaged(repair_spec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("undamaged") / "ds"
    _repair_run(repair_spec, out)
    return out


def _truncate(path: Path) -> None:
    with open(path, "r+b") as fh:  # in place, as a crash or a full disk does: a hard link sees it too
        fh.truncate(path.stat().st_size // 2)


def _flip(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x40]))


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage\xff")


def _tear_last_line(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-7])


DAMAGE = {
    # name: (what to do, frames that must be rendered again)
    "nothing": ([], 0),
    "truncated_rgb": ([("images/000003.png", _truncate)], 1),
    "deleted_depth": ([("depth/000005.png", Path.unlink)], 1),
    "flipped_instances": ([("instances/000000.png", _flip)], 1),
    "frames_in_two_shards": ([("images/000001.png", _flip), ("labels/000006.txt", _garbage)], 2),
    "bop_files": (
        [
            ("bop/train_pbr/000000/rgb/000002.png", Path.unlink),
            ("bop/train_pbr/000000/mask/000002_000001.png", _garbage),
            ("bop/train_pbr/000000/depth/000007.png", _flip),
        ],
        2,
    ),
    "torn_fragment_line": ([(".simgen/shards/shard_000001/manifest.jsonl", _tear_last_line)], 1),
    "root_files": (
        [
            ("annotations.coco.json", _truncate),
            ("manifest.jsonl", Path.unlink),
            ("data.yaml", _garbage),
            ("bop/train_pbr/000000/scene_gt.json", Path.unlink),
            ("bop/models/models_info.json", _flip),
            ("dataset.json", _garbage),
        ],
        0,
    ),
}


def _without_timings(root: Path) -> dict[str, object]:
    """Every file's checksum; the manifest and dataset.json with their run timings left out."""
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if not path.is_file() or rel.startswith(".simgen"):
            continue
        if rel == "manifest.jsonl":
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            out[rel] = [{k: v for k, v in line.items() if k != "timings_ms"} for line in lines]
        elif rel == "dataset.json":
            meta = json.loads(path.read_text())
            meta["checksums"].pop("manifest.jsonl")  # the manifest's own checksum covers its timings
            out[rel] = {k: v for k, v in meta.items() if k not in ("run", "timings_ms_total")}
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_repairs_exactly_the_damaged_frames(
    repair_spec: Path, undamaged: Path, tmp_path: Path, damage: str
) -> None:
    out = tmp_path / "ds"
    shutil.copytree(undamaged, out)  # a copy breaks the BOP hard links: relink the RGBs as generate made them
    for rgb in (out / "bop" / "train_pbr" / "000000" / "rgb").glob("*.png"):
        rgb.unlink()
        os.link(out / "images" / rgb.name, rgb)
    steps, redone = DAMAGE[damage]
    for rel, hurt in steps:
        hurt(out / rel)
    if damage != "nothing":
        assert not verify_dataset(out).ok or damage == "torn_fragment_line"
    result = _repair_run(repair_spec, out, resume=True)
    assert (result.made, result.reused) == (redone, REPAIR_FRAMES - redone)
    report = verify_dataset(out)
    assert report.ok, report
    assert _without_timings(out) == _without_timings(undamaged)


def test_cli_resume_says_how_many_frames_it_redid(repair_spec: Path, undamaged: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    shutil.copytree(undamaged, out)
    (out / "images" / "000004.png").unlink()
    _flip(out / "depth" / "000001.png")
    args = ["generate", str(repair_spec), "-n", str(REPAIR_FRAMES), "-o", str(out), "--seed", "3", "--renderer", "tiny",
            "--shard-frames", "4", "--resume", "--no-preview"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "(2 rendered, 6 kept)" in result.output
    assert verify_dataset(out).ok
