"""simgen's one I/O module: crash-safe writes, fsynced JSON lines, checksums and PNG coding.

Every file simgen writes goes through here, in one of two ways:

* **Atomic and durable** (:func:`atomic_open` and the ``atomic_write_*`` helpers): the bytes go to a hidden
  temporary file in the destination's folder (``.NAME.XXXXXXXX.tmp``), are flushed and fsynced, and the file
  is renamed over the final name with :func:`os.replace`; the folder is then fsynced so the rename survives
  a power cut. On an exception the temporary file is removed, also when a full disk makes closing it fail
  as well. A process killed outright (SIGKILL) can leave a ``.*.tmp`` file behind, never a partial file
  under the final name. For dataset-level files (COCO, manifest, dataset.json, run.json).
* **Atomic, not durable** (:func:`write_file`, :func:`link_or_copy`): temporary name and rename, no fsync.
  For a record's own files (frame PNGs, label files): a record only counts once its fragment line is
  fsynced (:func:`append_jsonl_line`), and a resumed run checks the checksum of every file it keeps, so a
  file lost in a crash is simply redone.

A shard's fragments are JSON-lines files appended one fsynced line per record: :func:`append_jsonl_line`
writes, :func:`complete_jsonl_lines` reads back every complete line (a torn last line is dropped), and
:func:`rewrite_jsonl` replaces a fragment with the lines a resumed run keeps and reopens it for appending.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "append_jsonl_line",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "complete_jsonl_lines",
    "decode_png",
    "dumps_line",
    "encode_png",
    "fsync_dir",
    "link_or_copy",
    "read_png",
    "rewrite_jsonl",
    "sha256_bytes",
    "sha256_file",
    "write_file",
    "write_png",
]

_MODES = ("w", "wt", "wb")


# --- checksums --------------------------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    """SHA-256 (hex) of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- atomic, durable writes -------------------------------------------------------------------------------


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Fsync a folder so that renames inside it are durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", *, encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Open a file for writing that appears under ``path`` only when the block ends without an exception.

    Args:
        path: Final file name; its folder must exist.
        mode: ``"w"``/``"wt"`` (text, ``encoding``, LF line endings) or ``"wb"`` (bytes).
        encoding: Text encoding.

    Yields:
        The open temporary file.

    Raises:
        ValueError: An unsupported ``mode``.
    """
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {list(_MODES)}, got {mode!r}")
    final = Path(path)
    tmp = _temp_path(final)
    binary = mode == "wb"
    fh: IO[Any] = open(tmp, "xb") if binary else open(tmp, "x", encoding=encoding, newline="\n")  # noqa: SIM115
    try:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(tmp, final)
    except BaseException:
        # Closing flushes what is still buffered: on a full disk that fails again, and the temporary file
        # must go all the same (a failed close still releases the descriptor).
        with contextlib.suppress(OSError):
            fh.close()
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> str:
    """Write ``data`` to ``path`` atomically (see the module docstring); return its SHA-256."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return sha256_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (LF line endings)."""
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)


def atomic_write_json(
    path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2, sort_keys: bool = False
) -> None:
    """Write ``obj`` as JSON to ``path`` atomically, with a trailing newline.

    Keys keep their insertion order unless ``sort_keys``; NaN and infinity are refused (they are not JSON).

    Args:
        path: Final file name.
        obj: A JSON-serializable object.
        indent: Indentation, or ``None`` for a single line.
        sort_keys: Sort object keys.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=False, ensure_ascii=False)
    atomic_write_text(path, text + "\n")


# --- atomic, not durable: a record's own files ------------------------------------------------------------


def write_file(root: Path, rel: str, data: bytes) -> str:
    """Write ``data`` to ``root/rel`` through a temporary name and a rename; return its SHA-256.

    No fsync here: a record is only counted once its fragment line is fsynced, and resume checks the
    checksum of every file it keeps, so a file lost in a crash is simply redone. On any failure (a full
    disk) the hidden temporary file is removed and the error names the record's file.
    """
    path = root / rel
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)
        raise
    return sha256_bytes(data)


def link_or_copy(src: Path, dest: Path) -> None:
    """Make ``dest`` a hard link to the file ``src`` (a copy where linking fails), replacing ``dest`` atomically."""
    tmp = _temp_path(dest)
    try:
        try:
            os.link(src, tmp)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        # rename() of two links to the same file does nothing and leaves the source name behind.
        if os.path.lexists(tmp):
            tmp.unlink()


# --- JSON lines: a shard's fragments ----------------------------------------------------------------------


def dumps_line(obj: Any) -> str:
    """One compact JSON line (no spaces, insertion-ordered keys, no NaN), without the newline."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def append_jsonl_line(fh: IO[str], obj: Any) -> None:
    """Append ``obj`` as one JSON line to an open text file, then flush and fsync it.

    Once this returns the line is on disk; a crash while it runs leaves at most one torn,
    unterminated last line, which :func:`complete_jsonl_lines` drops.
    """
    fh.write(dumps_line(obj) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def complete_jsonl_lines(path: Path) -> list[str]:
    """The complete JSON lines of a fragment, in file order (none for a missing file).

    Reading stops at the first line that is not terminated or not JSON: a kill can only tear the last
    line, so whatever follows a damaged line is not trusted either.
    """
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    out = []
    for raw in lines[:-1]:  # the last piece is either empty or a torn, unterminated line
        try:
            json.loads(raw)
        except (ValueError, RecursionError):
            break
        out.append(raw.decode())
    return out


def rewrite_jsonl(path: Path, lines: Iterable[str]) -> IO[str]:
    """Replace ``path`` with ``lines`` (fsynced, atomically), then return it opened for appending.

    A resumed shard keeps only its intact records' lines this way, so a torn tail never survives.
    """
    with atomic_open(path, "w") as fh:
        for line in lines:
            fh.write(line + "\n")
    return open(path, "a", encoding="utf-8")


# --- PNG --------------------------------------------------------------------------------------------------


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an image (OpenCV's default compression).

    Args:
        image: (H, W, 3) RGB or (H, W, 4) RGBA uint8, or a single-channel (H, W) / (H, W, 1) uint8 or
            uint16 image (depth in millimetres, instance ids).

    Returns:
        The encoded PNG.

    Raises:
        ValueError: An unsupported shape or dtype.
    """
    import cv2

    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image: expected dtype uint8 or uint16, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2BGR)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGBA2BGRA)
    elif a.ndim != 2:
        raise ValueError(f"image: expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {a.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a))
    if not ok:
        raise OSError("cv2.imencode failed to encode a PNG")
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray | None:
    """The pixels of PNG (or other image) bytes as stored, the inverse of :func:`encode_png`; None if undecodable.

    Colour comes back in RGB (RGBA) order, single-channel images as (H, W) with their own dtype (uint8 or
    uint16: depth in millimetres, instance ids).
    """
    import cv2

    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        return None
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)
    return pixels


def read_png(path: str | os.PathLike[str]) -> np.ndarray | None:
    """:func:`decode_png` of a file's bytes; None when it cannot be read or decoded."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return decode_png(data)


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> str:
    """Encode ``image`` as PNG (RGB is stored as such, whatever OpenCV's BGR order) and write it atomically.

    Args:
        path: Final file name.
        image: See :func:`encode_png`.

    Returns:
        The SHA-256 hex digest of the written bytes.
    """
    return atomic_write_bytes(path, encode_png(image))
