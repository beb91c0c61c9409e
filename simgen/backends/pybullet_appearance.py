"""Appearance patches of PyBullet bodies: colours, textures (image files and procedural records), specular colours.

A texture in a scene state is plain data (see :mod:`simgen.randomizers.textures`): either
``{"kind": "image", "path": "/abs/photo.png"}`` or a procedural record such as
``{"kind": "checker", "seed": 7, "size": 128, "colors": [[1, 1, 1], [0, 0, 0]], "cells": 8}``. A procedural
record is rendered with :func:`simgen.randomizers.textures.render_texture` (pure and deterministic) and written
as a PNG under ``<tmp>/simgen-textures-<uid>/<simgen version>/<sha256 of the record's canonical JSON>.png``
(atomic write, so parallel workers may race for the same file safely), then loaded with ``p.loadTexture``.

The cache folder is trusted only when this user owns it and nobody else may write to it (it is created with
mode 0700); otherwise a private folder made for this process is used instead, with a warning. A cached PNG is
used only when its bytes hash to the digest of the PNG this process renders for the record (remembered per
process), so a stale, damaged or planted file is rewritten, never drawn. An image file is checked once per
process (per file version) to decode whole, so a corrupt image is an error naming it, never a grey surface.

This is how TinyRenderer draws textures. With EGL, ``changeVisualShape(textureUniqueId=...)`` is unreliable
(see :mod:`simgen.backends.pybullet_bake`), so the backend bakes the same PNG files into mesh materials instead.

Measured behaviour of PyBullet 3.2.7 (see ``tests/backends``):

* ``resetSimulation`` invalidates texture ids (a stale id is silently ignored by ``changeVisualShape``), so
  :class:`TextureCache` reuses ids within one build only; TinyRenderer frees the textures then.
* ``loadTexture`` accepts a file that is not an image (or a truncated one) and returns a valid id; the surface
  is then drawn grey. Hence the decode check above.
* ``specularColor`` is accepted but changes no pixel with either renderer in DIRECT mode: PyBullet forwards it
  to the OpenGL GUI only (measured: 0 pixels differ). It is applied anyway, for a GUI client and for the record.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import stat
import struct
import tempfile
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pybullet as p

from simgen.assets import verify_image
from simgen.errors import AssetError
from simgen.io import atomic_write_bytes, sha256_file

logger = logging.getLogger(__name__)

#: The texture record kind for a user's image file; every other kind is procedural.
IMAGE_KIND = "image"
_WHITE = (1.0, 1.0, 1.0, 1.0)


def texture_cache_dir() -> Path:
    """Where procedural textures are written as PNG files (per user and simgen version); see the module docstring."""
    import simgen

    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return _private_dir(Path(tempfile.gettempdir()) / f"simgen-textures-{uid}", str(simgen.__version__))


@functools.cache
def _private_dir(base: Path, version: str) -> Path:
    """``base/version``, each created with mode 0700 and checked; a fresh private folder if either is unsafe."""
    try:
        for folder in (base, base / version):
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
            problem = _unsafe(folder)
            if problem:
                break
        else:
            return base / version
    except OSError as exc:
        problem = f"cannot be created ({exc.strerror or exc})"
    private = Path(tempfile.mkdtemp(prefix="simgen-textures-"))
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    logger.warning("the texture cache folder %s %s; using %s for this process", folder, problem, private)
    return private


def _unsafe(folder: Path) -> str | None:
    """Why ``folder`` cannot be trusted with cached files, or None (POSIX: ours, a real folder, not shared)."""
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder (a symlink or a file)"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"is owned by another user (uid {st.st_uid})"
    if hasattr(os, "getuid") and st.st_mode & 0o022:
        return f"is writable by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def record_digest(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a texture record's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode a (H, W, 3) uint8 RGB image as PNG bytes (no third-party encoder, so bytes depend on zlib only)."""
    img = np.ascontiguousarray(rgb, dtype=np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    height, width = img.shape[:2]
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), img.reshape(height, width * 3)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)),
            chunk(b"IEND", b""),
        )
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Write a cache file atomically (simgen.io), its folder private to this user."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def texture_file(record: Any, where: str) -> str:
    """The image file a texture record stands for; procedural records are rendered and cached as PNG first.

    Args:
        record: ``{"kind": "image", "path": ...}`` or a procedural texture record.
        where: The scene-state path of the record, for error messages (e.g. ``objects['duck/0'].texture``).

    Returns:
        An absolute file name PyBullet can load.

    Raises:
        AssetError: A malformed record, a missing, oversized or undecodable image file (named), or an invalid
            procedural record.
    """
    if not isinstance(record, Mapping):
        raise AssetError(f"{where}: expected a texture record (a mapping with 'kind'), got {record!r}")
    if record.get("kind") == IMAGE_KIND:
        path = record.get("path")
        if not path or "\0" in str(path) or not Path(str(path)).is_file():
            raise AssetError(f"{where}.path: image texture file not found: {path!r}")
        verify_image(str(path), f"{where}.path")
        return str(Path(str(path)).resolve())
    try:
        digest = record_digest(record)
    except (TypeError, ValueError) as exc:
        raise AssetError(f"{where}: a texture record must be plain JSON: {exc}") from exc
    target = texture_cache_dir() / f"{digest}.png"
    expected = _png_digests.get(digest)
    if expected is not None and _holds(target, expected):
        _png_digests.move_to_end(digest)
        return str(target)
    from simgen.randomizers.textures import render_texture

    try:
        data = encode_png(render_texture(record))
    except ValueError as exc:
        raise AssetError(f"{where}: {exc}") from exc
    expected = hashlib.sha256(data).hexdigest()
    _png_digests[digest] = expected
    while len(_png_digests) > _MAX_DIGESTS:
        _png_digests.popitem(last=False)
    if not _holds(target, expected):
        write_atomic(target, data)
    return str(target)


#: sha256 of the PNG bytes rendered in this process, by record digest (the few thousand used last).
_png_digests: OrderedDict[str, str] = OrderedDict()
_MAX_DIGESTS = 4096


def _holds(path: Path, digest: str) -> bool:
    """Whether ``path`` is a regular file (not a symlink) whose bytes hash to ``digest``."""
    try:
        return stat.S_ISREG(path.lstat().st_mode) and sha256_file(path) == digest
    except OSError:
        return False


class TextureCache:
    """PyBullet texture ids loaded during one build, by file name (``resetSimulation`` invalidates them).

    Args:
        cid: The physics client.
    """

    def __init__(self, cid: int) -> None:
        self._cid = cid
        self._ids: dict[str, int] = {}

    def clear(self, cid: int | None = None) -> None:
        """Forget every id (call after ``resetSimulation``)."""
        if cid is not None:
            self._cid = cid
        self._ids.clear()

    def __len__(self) -> int:
        return len(self._ids)

    def texture_id(self, record: Any, where: str) -> int:
        """Load (once per build) the texture a record stands for and return its PyBullet id.

        Raises:
            AssetError: See :func:`texture_file`, or PyBullet cannot load the image.
        """
        path = texture_file(record, where)
        tid = self._ids.get(path)
        if tid is None:
            try:
                tid = p.loadTexture(path, physicsClientId=self._cid)
            except p.error as exc:
                raise AssetError(f"{where}: PyBullet cannot load the texture image '{path}': {exc}") from exc
            if tid < 0:
                raise AssetError(f"{where}: PyBullet cannot load the texture image '{path}'")
            self._ids[path] = tid
        return tid


def check_rgba(value: Any, where: str, n: int = 4) -> list[float]:
    """A colour as ``n`` floats (RGB gets alpha 1 when ``n == 4``); AssetError for anything else."""
    try:
        rgba = [float(c) for c in value]
    except (TypeError, ValueError):
        raise AssetError(f"{where}: expected {n} numbers, got {value!r}") from None
    if n == 4 and len(rgba) == 3:
        rgba.append(1.0)
    if len(rgba) != n:
        raise AssetError(f"{where}: expected {n} numbers, got {value!r}")
    return rgba


def apply_appearance(
    cid: int,
    body: int,
    links: Sequence[int],
    *,
    color: Sequence[float] | None = None,
    texture_id: int | None = None,
    textured: bool = False,
    specular: Sequence[float] | None = None,
) -> None:
    """Recolour, texture and set the specular colour of every link of a body.

    With a texture (``texture_id``, or ``textured`` for a texture baked into the body's files) and no colour
    the shapes turn white, so the texture shows its own colours (a colour with a texture tints it). Nothing is
    called when there is nothing to change.
    """
    kwargs: dict[str, Any] = {}
    if color is not None:
        kwargs["rgbaColor"] = [float(c) for c in color]
    elif texture_id is not None or textured:
        kwargs["rgbaColor"] = list(_WHITE)
    if texture_id is not None:
        kwargs["textureUniqueId"] = int(texture_id)
    if specular is not None:
        kwargs["specularColor"] = [float(c) for c in specular]
    if not kwargs:
        return
    for link in links:
        p.changeVisualShape(body, link, physicsClientId=cid, **kwargs)
