from __future__ import annotations

import contextlib
import errno
import json
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from simgen.writers.atomic import (
    append_jsonl_line,
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    write_png,
)


class Boom(RuntimeError):
    pass


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_failure_mid_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(Boom), atomic_open(target, "w") as fh:
        fh.write('{"half": ')
        fh.flush()
        raise Boom
    assert _files(tmp_path) == []  # neither the final name nor the temporary file


def test_failure_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(Boom), atomic_open(target, "wb") as fh:
        fh.write(b"new and partial")
        raise Boom
    assert target.read_bytes() == b"old"
    assert _files(tmp_path) == ["out.bin"]


def test_unserializable_json_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"a": math.nan})
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "x.json", {"a": object()})
    assert _files(tmp_path) == []


def test_successful_writes(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.txt", "x\ny\n")
    assert (tmp_path / "a.txt").read_bytes() == b"x\ny\n"
    atomic_write_json(tmp_path / "b.json", {"z": 1, "a": [1.5]})
    assert (tmp_path / "b.json").read_text() == '{\n  "z": 1,\n  "a": [\n    1.5\n  ]\n}\n'
    with atomic_open(tmp_path / "c.txt") as fh:
        fh.write("c")
    assert _files(tmp_path) == ["a.txt", "b.json", "c.txt"]
    with pytest.raises(ValueError, match="mode"):
        atomic_open(tmp_path / "d.txt", "a").__enter__()


def test_append_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        append_jsonl_line(fh, {"b": 1, "a": [1, 2]})
        append_jsonl_line(fh, {"c": "é"})
    assert path.read_text(encoding="utf-8") == '{"b":1,"a":[1,2]}\n{"c":"é"}\n'
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()][1] == {"c": "é"}


def test_write_png_round_trips_rgb_and_uint16(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    digest = write_png(tmp_path / "rgb.png", rgb)
    assert len(digest) == 64
    back = cv2.cvtColor(cv2.imread(str(tmp_path / "rgb.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, rgb)  # stored as RGB, not OpenCV's BGR
    ids = rng.integers(0, 65536, size=(7, 9), dtype=np.uint16)
    write_png(tmp_path / "ids.png", ids)
    assert np.array_equal(cv2.imread(str(tmp_path / "ids.png"), cv2.IMREAD_UNCHANGED), ids)
    write_png(tmp_path / "ids1.png", ids[:, :, None])
    assert np.array_equal(cv2.imread(str(tmp_path / "ids1.png"), cv2.IMREAD_UNCHANGED), ids)
    with pytest.raises(ValueError, match="dtype"):
        write_png(tmp_path / "f.png", np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        write_png(tmp_path / "f.png", np.zeros((2, 2, 2), np.uint8))
    assert "f.png" not in _files(tmp_path)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 64 KiB tmpfs that a filler file has filled up (root only: skipped where mount fails)."""
    folder = tmp_path / "small"
    folder.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.decode().strip() or 'mount failed'}")
    try:
        with contextlib.suppress(OSError), open(folder / "filler", "wb", buffering=0) as fh:
            while True:
                fh.write(b"\0" * 512)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_full_disk_leaves_no_temporary_file(full_disk: Path, mode: str) -> None:
    # The buffered text fits the writer's buffer, so the failure comes at flush, and again when the handler
    # closes the file: that second failure must not skip removing the temporary file.
    with pytest.raises(OSError) as info, atomic_open(full_disk / "annotations.json", mode) as fh:
        fh.write("{}" * 100 if mode == "w" else b"\0" * 200)
    assert info.value.errno == errno.ENOSPC
    assert _files(full_disk) == ["filler"]
