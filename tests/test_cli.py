"""The command line prints whole lines at any terminal width, and ordinary I/O failures as one clean line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simgen.cli import FrameRate, app, describe_os_error
from simgen.randomizers import REGISTRY

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "scenes" / "tabletop_clutter.yaml"

# None: COLUMNS unset, as in CI and a plain shell, where rich assumes 80 columns.
WIDTHS = [None, "80", "40"]


def _env(columns: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    return env


def _simgen(*args: str, columns: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed CLI in a fresh process, so rich measures the width as a user's terminal would."""
    cmd = [sys.executable, "-m", "simgen", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(columns), cwd=cwd, timeout=120)


@pytest.mark.parametrize("columns", WIDTHS)
def test_list_randomizers_names_are_whole_at_any_width(columns: str | None) -> None:
    result = _simgen("list", "randomizers", columns=columns)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name in REGISTRY.names():
        assert any(name in line for line in lines), f"{name} is cut or wrapped at COLUMNS={columns}"
    assert "length_px" not in result.stdout  # parameters only with --verbose


@pytest.mark.parametrize("columns", WIDTHS)
def test_an_error_naming_a_long_path_is_one_line(tmp_path: Path, columns: str | None) -> None:
    long = tmp_path / "a_long_folder_name_to_test_line_wrapping_in_errors" / "another_long_folder" / "missing.yaml"
    result = _simgen("generate", str(long), "-n", "1", "-o", str(tmp_path / "out"), columns=columns)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and str(long) in error_lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_resume_and_overwrite_together_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["generate", str(SPEC), "-n", "1", "-o", str(out), "--resume", "--overwrite"])
    assert result.exit_code == 2
    assert "--resume" in result.output and "--overwrite" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_output_that_is_a_file_is_one_clean_line(tmp_path: Path) -> None:
    target = tmp_path / "a_file"
    target.write_text("not a folder")
    for out in (target, target / "below"):
        result = _simgen("generate", str(SPEC), "-n", "1", "-o", str(out), "--renderer", "tiny")
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and str(target) in result.stderr
        assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1
    assert target.read_text() == "not a folder"


def test_schema_to_a_folder_is_refused_and_to_a_file_is_written(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder" in result.output
    result = CliRunner().invoke(app, ["schema", "-o", str(tmp_path / "spec.schema.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "spec.schema.json").read_text())["title"] == "simgen scene spec"


def test_read_only_output_is_one_clean_line(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        result = _simgen("generate", str(SPEC), "-n", "1", "-o", str(ro / "out"), "--renderer", "tiny")
    finally:
        subprocess.run(["umount", str(ro)], check=True)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "read-only file system" in result.stderr.lower()


def test_describe_os_error_names_the_paths() -> None:
    assert describe_os_error(FileNotFoundError(2, "No such file or directory", "/x/y")) == (
        "/x/y: No such file or directory"
    )
    assert describe_os_error(OSError(18, "Invalid cross-device link", "/a", None, "/b")) == (
        "/a -> /b: Invalid cross-device link"
    )


def test_frame_rate_ignores_kept_bursts_and_the_first_second() -> None:
    now = [0.0]
    rate = FrameRate(clock=lambda: now[0])
    now[0] = 0.001
    assert rate.advance(1) == "-"  # two frames a millisecond apart are not 2,000 frames/s
    assert rate.advance(40) == "-"  # a resumed shard's kept frames are not rendered
    now[0] = 2.0
    assert rate.advance(1) == "1.0"  # two rendered frames in two seconds
    now[0] = 4.0
    assert rate.advance(500) == "0.5"
