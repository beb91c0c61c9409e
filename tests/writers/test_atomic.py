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

from simgen.io import (
    append_jsonl_line,
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    complete_jsonl_lines,
    decode_png,
    encode_png,
    link_or_copy,
    read_png,
    rewrite_jsonl,
    sha256_bytes,
    sha256_file,
    write_file,
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


def test_the_old_module_still_exports_the_io_functions() -> None:
    import simgen.io
    import simgen.writers.atomic as old

    assert old.atomic_open is simgen.io.atomic_open and old.sha256_file is simgen.io.sha256_file


def test_write_file_returns_the_digest_and_leaves_nothing_behind(tmp_path: Path) -> None:
    assert write_file(tmp_path, "a.bin", b"abc") == sha256_bytes(b"abc") == sha256_file(tmp_path / "a.bin")
    assert atomic_write_bytes(tmp_path / "b.bin", b"xyz") == sha256_bytes(b"xyz")
    with pytest.raises(FileNotFoundError):  # the folder is missing
        write_file(tmp_path, "missing/c.bin", b"abc")
    assert _files(tmp_path) == ["a.bin", "b.bin"]


@pytest.mark.parametrize("mode", ["write_file", "link_or_copy"])
def test_unfsynced_writes_on_a_full_disk_leave_no_temporary_file(full_disk: Path, mode: str) -> None:
    (full_disk / "filler").unlink()
    (full_disk / "src.bin").write_bytes(b"s" * 1024)
    with open(full_disk / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 512)
    with pytest.raises(OSError) as info:
        if mode == "write_file":
            write_file(full_disk, "frame.png", b"\0" * 4096)
        else:
            import shutil

            with pytest.MonkeyPatch.context() as mp:  # a file system without hard links: copy, which fails
                mp.setattr("os.link", lambda *a: (_ for _ in ()).throw(OSError(errno.EXDEV, "cross-device")))
                mp.setattr(shutil, "copyfile", lambda src, dst: Path(dst).write_bytes(b"\0" * 4096))
                link_or_copy(full_disk / "src.bin", full_disk / "linked.bin")
    assert info.value.errno == errno.ENOSPC
    if mode == "write_file":  # a failed write() carries no file name: the frame's own is given
        assert info.value.filename == str(full_disk / "frame.png")
    assert _files(full_disk) == ["filler", "src.bin"]


def test_link_or_copy_links_and_replaces(tmp_path: Path) -> None:
    (tmp_path / "src.png").write_bytes(b"png")
    (tmp_path / "dest.png").write_bytes(b"old")
    link_or_copy(tmp_path / "src.png", tmp_path / "dest.png")
    assert (tmp_path / "dest.png").read_bytes() == b"png"
    assert (tmp_path / "dest.png").stat().st_ino == (tmp_path / "src.png").stat().st_ino
    link_or_copy(tmp_path / "src.png", tmp_path / "dest.png")  # already the same file: still fine
    assert _files(tmp_path) == ["dest.png", "src.png"]


def test_jsonl_fragments_drop_a_torn_tail_and_reopen_for_appending(tmp_path: Path) -> None:
    path = tmp_path / "frag.jsonl"
    assert complete_jsonl_lines(path) == []
    path.write_bytes(b'{"frame":0}\n{"frame":1}\n{"fra')  # a kill while the third line was written
    assert complete_jsonl_lines(path) == ['{"frame":0}', '{"frame":1}']
    path.write_bytes(b'{"frame":0}\nnot json\n{"frame":2}\n')  # nothing after a damaged line is trusted
    assert complete_jsonl_lines(path) == ['{"frame":0}']
    with rewrite_jsonl(path, ['{"frame":0}']) as fh:
        append_jsonl_line(fh, {"frame": 3})
    assert path.read_text() == '{"frame":0}\n{"frame":3}\n'
    assert _files(tmp_path) == ["frag.jsonl"]


def test_png_decode_inverts_encode(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for image in (
        rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8),
        rng.integers(0, 256, size=(5, 6, 4), dtype=np.uint8),
        rng.integers(0, 65536, size=(5, 6), dtype=np.uint16),
        rng.integers(0, 256, size=(5, 6), dtype=np.uint8),
    ):
        back = decode_png(encode_png(image))
        assert back is not None and back.dtype == image.dtype and np.array_equal(back, image)
    assert decode_png(b"not a png") is None
    write_png(tmp_path / "x.png", np.full((2, 3), 7, np.uint16))
    assert np.array_equal(read_png(tmp_path / "x.png"), np.full((2, 3), 7, np.uint16))
    assert read_png(tmp_path / "missing.png") is None
