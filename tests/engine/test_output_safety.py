"""--overwrite removes only what simgen wrote; --resume writes only into simgen's own runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from simgen.cli import app
from simgen.engine import generate
from simgen.errors import OutputExistsError, SimgenError
from simgen.inspect_dataset import write_preview
from simgen.spec import read_spec_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenes" / "tabletop_clutter.yaml"
N_FRAMES = 4


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = 3
    raw["frames_per_scene"] = 2
    raw["physics"]["max_steps"] = 200
    path = tmp_path_factory.mktemp("spec") / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run(spec: Path, out: Path, **kwargs: object):
    options = {"n_frames": N_FRAMES, "seed": 1, "renderer": "tiny", "resolution": (64, 48), "shard_frames": 2}
    return generate(spec, out, **{**options, **kwargs})


@pytest.fixture(scope="module")
def finished(spec_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "ds"
    run(spec_file, out)
    write_preview(out)
    return out


def copy_of(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    shutil.copytree(finished, out, symlinks=True)
    return out


def tree(root: Path) -> dict[str, str]:
    """Every entry under root: files by checksum, links by target (never followed)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_the_dataset_records_its_spec_file_and_the_resolution_override(finished: Path, spec_file: Path) -> None:
    meta = json.loads((finished / "dataset.json").read_text())
    assert meta["spec_source"] == str(spec_file)
    assert meta["resolution_override"] == [64, 48]
    assert meta["spec"]["camera"]["width"] == 64


def test_overwrite_refuses_and_keeps_everything_when_user_files_are_there(
    spec_file: Path, finished: Path, tmp_path: Path
) -> None:
    out = copy_of(finished, tmp_path)
    (out / "notes.txt").write_text("my notes")
    (out / "assets").mkdir()
    (out / "assets" / "part.urdf").write_text("<robot name='p'/>")
    before = tree(out)
    with pytest.raises(OutputExistsError, match=r"'assets/part\.urdf', 'notes\.txt'") as err:
        run(spec_file, out, overwrite=True)
    assert "only removes simgen's own files" in str(err.value)
    assert tree(out) == before


def test_overwrite_never_deletes_the_spec_being_run(finished: Path, tmp_path: Path) -> None:
    out = copy_of(finished, tmp_path)
    spec = out / "my_scene.yaml"
    spec.write_text((Path(json.loads((finished / "dataset.json").read_text())["spec_source"])).read_text())
    before = tree(out)
    with pytest.raises(OutputExistsError, match=r"my_scene\.yaml"):
        run(spec, out, overwrite=True)
    assert tree(out) == before


@pytest.mark.parametrize("with_other_files", [False, True])
def test_overwrite_refuses_a_folder_whose_dataset_json_is_not_simgens(
    spec_file: Path, tmp_path: Path, with_other_files: bool
) -> None:
    out = tmp_path / "theirs"
    (out / ".simgen").mkdir(parents=True)  # an empty .simgen/ makes no folder simgen's either
    (out / "dataset.json").write_text(json.dumps({"name": "survey 2024", "rows": 120}))
    if with_other_files:
        (out / "rows.csv").write_text("a,b\n1,2\n")
    before = tree(out)
    with pytest.raises(OutputExistsError, match="not a simgen dataset"):
        run(spec_file, out, overwrite=True)
    assert tree(out) == before


def test_overwrite_removes_only_simgens_files_and_then_regenerates(
    spec_file: Path, finished: Path, tmp_path: Path
) -> None:
    out = copy_of(finished, tmp_path)
    # What a killed writer leaves: hidden temporary names of simgen's own files.
    (out / "images" / ".000001.png.tmp").write_bytes(b"partial")
    (out / ".annotations.coco.json.0a1b2c3d.tmp").write_text("{")
    result = run(spec_file, out, overwrite=True, seed=2)
    assert result.made == N_FRAMES and result.reused == 0
    fresh = tmp_path / "fresh"
    run(spec_file, fresh, seed=2)
    timed = {"dataset.json", "manifest.jsonl"}  # they hold timings
    got = {k: v for k, v in tree(out).items() if not k.startswith(".simgen")}
    want = {k: v for k, v in tree(fresh).items() if not k.startswith(".simgen")}
    assert got.keys() == want.keys()  # no stale file is left: not the preview, not the temporary names
    assert {k: v for k, v in got.items() if k not in timed} == {k: v for k, v in want.items() if k not in timed}


def test_overwrite_refuses_a_symlinked_output_folder(spec_file: Path, finished: Path, tmp_path: Path) -> None:
    real = copy_of(finished, tmp_path)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    before = tree(real)
    with pytest.raises(OutputExistsError, match="symbolic link"):
        run(spec_file, link, overwrite=True)
    assert tree(real) == before


def test_overwrite_unlinks_links_and_never_deletes_through_them(
    spec_file: Path, finished: Path, tmp_path: Path
) -> None:
    out = copy_of(finished, tmp_path)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "photo.png").write_bytes(b"irreplaceable")
    # A recorded file replaced by a link to a user's file: the link goes, the file stays.
    (out / "images" / "000000.png").unlink()
    (out / "images" / "000000.png").symlink_to(precious / "photo.png")
    run(spec_file, out, overwrite=True)
    assert (precious / "photo.png").read_bytes() == b"irreplaceable"
    assert not (out / "images" / "000000.png").is_symlink()
    # A frame folder replaced by a link to a user's folder is not simgen's: refused, nothing touched.
    shutil.rmtree(out / "depth")
    (out / "depth").symlink_to(precious, target_is_directory=True)
    with pytest.raises(OutputExistsError, match="'depth'"):
        run(spec_file, out, overwrite=True)
    assert (precious / "photo.png").read_bytes() == b"irreplaceable"


def test_overwrite_clears_a_killed_run_with_frames_it_had_not_committed(
    spec_file: Path, finished: Path, tmp_path: Path
) -> None:
    out = copy_of(finished, tmp_path)
    for name in ("dataset.json", "annotations.coco.json", "manifest.jsonl", "preview.png"):
        (out / name).unlink()
    for marker in (out / ".simgen" / "shards").glob("*.done.json"):
        marker.unlink()
    # The last frame's files are on disk but none of its fragment lines were written.
    for fragment in (out / ".simgen" / "shards" / "shard_000001").glob("*.jsonl"):
        lines = fragment.read_text().splitlines(keepends=True)
        fragment.write_text("".join(lines[:-1]))
    result = run(spec_file, out, overwrite=True)
    assert result.made == N_FRAMES
    assert not [p for p in out.rglob("*.tmp")]


def test_resume_with_overwrite_is_refused_before_anything_is_touched(spec_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    with pytest.raises(SimgenError, match="resume and overwrite exclude each other"):
        run(spec_file, out, resume=True, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_resume_refuses_a_foreign_folder_that_holds_an_empty_simgen_dir(spec_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    (out / ".simgen" / "shards").mkdir(parents=True)
    (out / "notes.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="no simgen run to resume"):
        run(spec_file, out, resume=True)
    assert sorted(p.name for p in out.iterdir()) == [".simgen", "notes.txt"]
    assert not any((out / ".simgen").rglob("*.*"))


def test_resume_of_a_run_killed_before_run_json_starts_afresh(spec_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    (out / ".simgen" / "shards").mkdir(parents=True)
    result = run(spec_file, out, resume=True)
    assert result.made == N_FRAMES


def test_cli_overwrite_names_the_foreign_file_in_one_line(spec_file: Path, finished: Path, tmp_path: Path) -> None:
    out = copy_of(finished, tmp_path)
    (out / "notes.txt").write_text("my notes")
    args = ["generate", str(spec_file), "-n", str(N_FRAMES), "-o", str(out), "--seed", "1", "--resolution", "64x48",
            "--renderer", "tiny", "--overwrite", "--no-preview"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "'notes.txt'" in result.output and "Traceback" not in result.output
    assert (out / "notes.txt").read_text() == "my notes"
