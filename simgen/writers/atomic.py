"""Crash-safe file writes: a reader sees the old file or the whole new one, never a part.

Every write goes to a hidden temporary file in the destination's folder (``.NAME.XXXXXXXX.tmp``),
is flushed and fsynced, and is renamed over the final name with :func:`os.replace`; the folder is
then fsynced so the rename itself survives a power cut. On an exception the temporary file is
removed, also when a full disk makes closing it fail as well. A process killed outright (SIGKILL)
can leave a ``.*.tmp`` file behind, never a partial file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

_MODES = ("w", "wt", "wb")


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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


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


def dumps_line(obj: Any) -> str:
    """One compact JSON line (no spaces, insertion-ordered keys, no NaN), without the newline."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def append_jsonl_line(fh: IO[str], obj: Any) -> None:
    """Append ``obj`` as one JSON line to an open text file, then flush and fsync it.

    Once this returns the line is on disk; a crash while it runs leaves at most one torn,
    unterminated last line, which readers of the fragment must drop.
    """
    fh.write(dumps_line(obj) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


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


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> str:
    """Encode ``image`` as PNG (RGB is stored as such, whatever OpenCV's BGR order) and write it atomically.

    Args:
        path: Final file name.
        image: See :func:`encode_png`.

    Returns:
        The SHA-256 hex digest of the written bytes.
    """
    import hashlib

    data = encode_png(image)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
