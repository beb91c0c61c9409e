"""Resolve asset references safely, and check what assets and photo folders hold before anything renders.

An asset is ``pybullet_data:<path>`` for PyBullet's bundled files, a path relative to the spec's
folder, or a path inside one of the allowed roots. Anything that resolves elsewhere (``../``
escapes, absolute paths, symlinks out of the roots) is refused with an :class:`AssetError`.

The sandbox covers what an asset references too. PyBullet opens the meshes and textures a URDF or
SDF names, the material libraries (``mtllib``) an OBJ names and the textures (``map_Kd``) those name.
:func:`resolve_asset` finds each of them the way PyBullet 3.2.7 does and refuses any that lies outside
the allowed roots (the spec's folder, the caller's roots and pybullet_data) or does not exist. PyBullet
looks for a file a URDF or SDF names (``package://`` and ``model://`` stripped) in the URDF's folder,
then in each folder above it, then in the working folder and up to five folders above that; for an
``mtllib`` in the OBJ's folder only; for a ``map_Kd`` in the OBJ's folder, then ``./``, ``./data/`` and
``../data/`` to ``../../../../data/`` of the working folder. The first file found is the one it opens,
so that is the one checked. Parsing is cached per file version (modification time, size and inode).

Photos (background and image-texture folders) are checked by header, which is cheap: every file with an
image suffix (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``; hidden files are skipped, other files ignored)
must be a PNG, JPEG or BMP of at most :data:`MAX_IMAGE_PIXELS` pixels and :data:`MAX_IMAGE_BYTES` bytes,
so a decompression bomb is refused before it is decoded. An image is fully decoded (and checked for
truncation) once per process when it is first used.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Annotated, Any, NamedTuple
from xml.etree import ElementTree

from simgen.errors import AssetError, did_you_mean

PYBULLET_PREFIX = "pybullet_data:"
MESH_SUFFIXES = (".urdf", ".obj", ".sdf")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: Photos above this many pixels are refused: decoded, one would take 3 bytes per pixel.
MAX_IMAGE_PIXELS = 50_000_000
#: Image files above this size are refused.
MAX_IMAGE_BYTES = 100 * 1024 * 1024


@functools.cache
def pybullet_data_dir() -> Path:
    """The folder of the ``pybullet_data`` package."""
    import pybullet_data

    return Path(pybullet_data.getDataPath()).resolve()


@functools.cache
def _bundled_names() -> tuple[str, ...]:
    root = pybullet_data_dir()
    return tuple(sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in MESH_SUFFIXES))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def inside_any(path: Path, roots: Sequence[Path]) -> bool:
    """Whether ``path`` (resolved) lies in one of ``roots`` (resolved)."""
    return any(_inside(path, r) for r in roots)


def _allowed(base_dir: Path | None, roots: Sequence[Path]) -> list[Path]:
    allowed = [r.resolve() for r in roots]
    if base_dir is not None:
        allowed.insert(0, base_dir.resolve())
    return allowed


def resolve_asset(ref: str, *, base_dir: Path | None, roots: Sequence[Path] = (), where: str = "") -> Path:
    """Resolve an asset reference to an absolute path inside an allowed root, and check what the file references.

    Args:
        ref: ``pybullet_data:<path>``, a relative path, or an absolute path inside ``roots``.
        base_dir: The spec's folder (relative paths resolve against it); None for specs given as data.
        roots: Further allowed folders.
        where: The spec field, for messages (``objects[0].assets[2]``).

    Returns:
        The resolved absolute path.

    Raises:
        AssetError: The file is missing, has an unsupported type, lies outside every allowed root, does not
            parse, or references a file that is missing or lies outside the allowed roots (see the module
            docstring).
    """
    prefix = f"{where}: " if where else ""
    with _os_errors(ref, prefix):
        return _resolve_asset(ref, base_dir, _allowed(base_dir, roots), prefix)


@contextlib.contextmanager
def _os_errors(ref: str, prefix: str) -> Iterator[None]:
    """Turn what the operating system says about a reference (a NUL byte, a name too long, ...) into AssetError."""
    if "\0" in ref:
        shown = _clip(ref).replace("\0", "\\x00")
        raise AssetError(f"{prefix}the path '{shown}' contains a NUL byte")
    try:
        yield
    except OSError as exc:
        raise AssetError(f"{prefix}cannot use the path '{_clip(ref)}': {exc.strerror or exc}") from None


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 :]}"


def _resolve_asset(ref: str, base_dir: Path | None, allowed: list[Path], prefix: str) -> Path:
    if ref.startswith(PYBULLET_PREFIX):
        rel = ref[len(PYBULLET_PREFIX) :]
        root = pybullet_data_dir()
        path = (root / rel).resolve()
        if not _inside(path, root):
            raise AssetError(f"{prefix}'{ref}' escapes the pybullet_data folder")
        if not path.is_file():
            hint = did_you_mean(rel, _bundled_names())
            raise AssetError(f"{prefix}no file '{rel}' in pybullet_data{hint}")
    else:
        raw = Path(ref).expanduser()
        if raw.is_absolute():
            path = raw.resolve()
        elif base_dir is not None:
            path = (base_dir / raw).resolve()
        else:
            raise AssetError(f"{prefix}relative asset path '{ref}' needs a spec file to resolve against")
        if not inside_any(path, allowed):
            shown = ", ".join(str(r) for r in allowed) or "(none)"
            raise AssetError(
                f"{prefix}'{ref}' resolves to {path}, outside the allowed asset roots ({shown}); "
                "pass its folder with --asset-root (or asset_roots= of load_spec) to allow it"
            )
        if not path.is_file():
            if path.exists():
                raise AssetError(f"{prefix}asset '{ref}' is not a regular file")
            siblings = [p.name for p in path.parent.glob("*")] if path.parent.is_dir() else []
            raise AssetError(f"{prefix}asset file '{ref}' does not exist{did_you_mean(path.name, siblings)}")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise AssetError(f"{prefix}'{ref}' is a {path.suffix or 'suffix-less'} file; expected one of {MESH_SUFFIXES}")
    problem = _reference_problem(path, (*allowed, pybullet_data_dir()))
    if problem:
        raise AssetError(f"{prefix}{problem}")
    return path


def asset_stem(ref: str) -> str:
    """A readable default category for an asset reference: its file stem without ``_vhacd``."""
    stem = Path(ref.removeprefix(PYBULLET_PREFIX)).stem
    return stem.removesuffix("_vhacd")


# --- what asset files reference --------------------------------------------------------------------------

#: MTL directives that name a texture file; PyBullet reads only ``map_Kd``, the others are checked for escapes.
_MTL_TEXTURES = frozenset(
    {"map_kd", "map_ka", "map_ks", "map_ns", "map_d", "map_bump", "bump", "disp", "decal", "refl", "norm"}
    | {"map_pr", "map_pm", "map_ps", "map_ke", "map_refl"}
)
_MAP_KD_DIRS = ("./", "./data/", "../data/", "../../data/", "../../../data/", "../../../../data/")


class _Ref(NamedTuple):
    name: str  # as written in the referencing file
    candidates: tuple[str, ...]  # where PyBullet looks for it, in order (relative ones from the working folder)
    required: bool  # PyBullet fails without it (a missing material library or texture only loses colour)


def _file_key(path: Path) -> tuple[str, int, int, int]:
    """What identifies a version of a file for the caches: its name, modification time, size and inode."""
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size, st.st_ino


def _first_existing(candidates: Sequence[str], cwd: str) -> Path | None:
    for cand in candidates:
        full = os.path.join(cwd, re.sub(r"^/+", "/", cand))
        if os.path.exists(full):
            return Path(os.path.realpath(full))
    return None


def _mesh_candidates(folder: str, name: str) -> tuple[str, ...]:
    """Where PyBullet's ``UrdfFindMeshFile`` looks for a file a URDF or SDF names, in its order."""
    for scheme in ("package://", "model://"):
        if name.startswith(scheme):
            name = name[len(scheme) :]
            break
    folder = folder.rstrip("/") + "/"
    prefixes = [folder] + [folder[: i + 1] for i in range(len(folder) - 2, -1, -1) if folder[i] == "/"]
    prefixes += ["", *("../" * k for k in range(1, 6))]
    return tuple(p + name for p in prefixes)


def find_referenced_file(referrer: str | Path, name: str) -> Path | None:
    """The file PyBullet opens for a mesh or texture that the URDF or SDF ``referrer`` names (resolved).

    Args:
        referrer: The URDF or SDF file.
        name: The name as written (``meshes/base.obj``, ``package://robot/meshes/base.obj``).

    Returns:
        The first existing file where PyBullet looks (see the module docstring), or None when none exists.
    """
    return _first_existing(_mesh_candidates(os.path.dirname(os.fspath(referrer)), name), os.getcwd())


def _xml_refs(path: str, kind: str) -> list[_Ref]:
    data = Path(path).read_bytes()
    if b"<!ENTITY" in data:
        raise AssetError(f"{kind} file {path} declares XML entities, which are not allowed")
    try:
        # PyBullet's TinyXML accepts blank lines before the XML declaration and NULs after the root (as some
        # pybullet_data URDFs have); expat does not.
        root = ElementTree.fromstring(data.lstrip().rstrip(b"\0 \t\r\n"))
    except ElementTree.ParseError as exc:
        raise AssetError(f"{kind} file {path} does not parse: {exc}") from None
    # Gazebo plugins name shared libraries that PyBullet never opens.
    ignored = {id(e) for tag in ("gazebo", "plugin") for top in root.iter(tag) for e in top.iter()}
    names = [e.get("filename", "") for e in root.iter() if e.get("filename") and id(e) not in ignored]
    names += [(e.text or "").strip() for m in root.iter("mesh") for e in m.iter("uri") if (e.text or "").strip()]
    folder = os.path.dirname(path)
    return [_Ref(n, _mesh_candidates(folder, n), True) for n in dict.fromkeys(names)]


def _obj_refs(path: str) -> list[_Ref]:
    folder = os.path.dirname(path) + "/"
    found: list[_Ref] = []
    with open(path, "rb") as fh:
        for line in fh:
            words = line.split()
            if len(words) > 1 and words[0] == b"mtllib":
                for word in words[1:]:  # PyBullet reads the first; any other is checked too
                    name = word.decode("utf-8", "replace")
                    found.append(_Ref(name, (folder + name,), False))
    return found


def _mtl_refs(path: str) -> list[_Ref]:
    folder = os.path.dirname(path) + "/"
    found: list[_Ref] = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        words = line.split()
        if len(words) < 2 or words[0].lower() not in _MTL_TEXTURES:
            continue
        kd = words[0] == "map_Kd"
        rest = line.strip()[len(words[0]) :].strip()
        for name in dict.fromkeys((rest, words[-1])):  # the whole rest (as PyBullet), or the last word after options
            where = (folder + name, *(d + name for d in _MAP_KD_DIRS)) if kd else (folder + name,)
            found.append(_Ref(name, where, False))
    return found


@functools.lru_cache(maxsize=4096)
def _direct_refs(path: str, mtime_ns: int, size: int, inode: int) -> tuple[_Ref, ...]:
    """The files one asset file names and where PyBullet looks for each (parsed once per file version)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".urdf", ".sdf"):
        return tuple(_xml_refs(path, suffix[1:].upper()))
    if suffix == ".obj":
        return tuple(_obj_refs(path))
    if suffix == ".mtl":
        return tuple(_mtl_refs(path))
    return ()


def _reference_problem(path: Path, allowed: Sequence[Path]) -> str | None:
    """What is wrong with the files ``path`` references (recursively), or None.

    Parsing is cached per file version; where each reference lands is looked up every time (a few ``stat``
    calls), since it depends on which files exist now. Files outside the allowed roots are never read.
    """
    cwd = os.getcwd()
    todo, seen = [path], {path}
    while todo:
        source = todo.pop()
        try:
            refs = _direct_refs(*_file_key(source))
        except OSError as exc:
            return f"cannot read {source}: {exc.strerror or exc}"
        except AssetError as exc:
            return str(exc)
        for ref in refs:
            target = _first_existing(ref.candidates, cwd)
            if target is None:
                if ref.required:
                    return f"{source} references '{ref.name}', which does not exist where PyBullet looks for it"
                continue
            if not inside_any(target, allowed):
                shown = ", ".join(str(r) for r in allowed)
                return (
                    f"{source} references '{ref.name}', which resolves to {target}, "
                    f"outside the allowed asset roots ({shown})"
                )
            if not target.is_file():
                return f"{source} references '{ref.name}', which is not a regular file ({target})"
            if target not in seen and target.suffix.lower() in (".obj", ".mtl"):
                seen.add(target)
                todo.append(target)
    return None


# --- photos ----------------------------------------------------------------------------------------------


class PhotoFolderParam:
    """Pydantic metadata marking a randomizer parameter as a folder of photos.

    :func:`simgen.spec.load_spec` checks every parameter so marked with :func:`image_pool`, so a missing,
    empty or broken folder fails before anything is written. Use :data:`PhotoFolder` as the annotation.
    """

    def __repr__(self) -> str:
        return "PhotoFolderParam()"


PHOTO_FOLDER = PhotoFolderParam()
#: The annotation of a photo-folder parameter (a string checked at load time).
PhotoFolder = Annotated[str, PHOTO_FOLDER]


class ImageInfo(NamedTuple):
    """What an image file's header says."""

    format: str  # "png", "jpeg" or "bmp"
    width: int
    height: int
    scan_offset: int  # JPEG: where the first scan starts (its compressed data follows); else 0


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _read(fh: IO[bytes], n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise ValueError("the file ends inside its header")
    return data


def _jpeg_header(fh: IO[bytes]) -> ImageInfo:
    size: tuple[int, int] | None = None
    for _ in range(10_000):  # segments before the first scan; a real file has a few dozen
        byte = _read(fh, 1)
        if byte != b"\xff":
            raise ValueError("a JPEG marker was expected")
        marker = _read(fh, 1)[0]
        while marker == 0xFF:  # fill bytes
            marker = _read(fh, 1)[0]
        if marker == 0xD8 or marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue
        (length,) = struct.unpack(">H", _read(fh, 2))
        if length < 2:
            raise ValueError("a JPEG segment has an invalid length")
        if marker in _JPEG_SOF:
            _, height, width = struct.unpack(">BHH", _read(fh, 5))
            size = (width, height)
            fh.seek(length - 7, os.SEEK_CUR)
        elif marker == 0xDA:
            if size is None:
                raise ValueError("the JPEG has no frame header before its first scan")
            return ImageInfo("jpeg", size[0], size[1], fh.tell() + length - 2)
        elif marker == 0xD9:
            break
        else:
            fh.seek(length - 2, os.SEEK_CUR)
    raise ValueError("the JPEG has no image data")


def _image_header(fh: IO[bytes]) -> ImageInfo:
    head = fh.read(26)
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise ValueError("the PNG has no IHDR header")
        width, height = struct.unpack(">II", head[16:24])
        return ImageInfo("png", width, height, 0)
    if head[:2] == b"\xff\xd8":
        fh.seek(2)
        return _jpeg_header(fh)
    if head[:2] == b"BM" and len(head) >= 26:
        (dib,) = struct.unpack("<I", head[14:18])
        if dib == 12:
            width, height = struct.unpack("<HH", head[18:22])
        else:
            width, height = struct.unpack("<ii", head[18:26])
        return ImageInfo("bmp", abs(width), abs(height), 0)
    raise ValueError("not a PNG, JPEG or BMP image")


def image_info(path: str | Path, where: str = "") -> ImageInfo:
    """Read an image's header and check its size cheaply, without decoding it.

    Args:
        path: The image file.
        where: The spec field or randomizer, for messages.

    Returns:
        Its format and size.

    Raises:
        AssetError: The file cannot be read, is not a PNG/JPEG/BMP image, is empty, or is larger than
            :data:`MAX_IMAGE_BYTES` bytes or :data:`MAX_IMAGE_PIXELS` pixels. The message names the file.
    """
    prefix = f"{where}: " if where else ""
    try:
        # Opened without blocking: a FIFO named like a photo is refused below instead of waited on.
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise AssetError(f"{prefix}image {path} is not a regular file")
            if st.st_size > MAX_IMAGE_BYTES:
                raise AssetError(
                    f"{prefix}image {path} is {st.st_size / 2**20:.0f} MB; images over "
                    f"{MAX_IMAGE_BYTES // 2**20} MB are refused"
                )
            info = _image_header(fh)
    except OSError as exc:
        raise AssetError(f"{prefix}cannot read image {path}: {exc.strerror or exc}") from None
    except (ValueError, struct.error) as exc:
        raise AssetError(f"{prefix}{path} is not a readable image: {exc}") from None
    if info.width < 1 or info.height < 1:
        raise AssetError(f"{prefix}image {path} is empty ({info.width}x{info.height})")
    if info.width * info.height > MAX_IMAGE_PIXELS:
        raise AssetError(
            f"{prefix}image {path} is {info.width}x{info.height} ({info.width * info.height / 1e6:.0f} megapixels); "
            f"images over {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels are refused: scale it down"
        )
    return info


def _complete(data: bytes, info: ImageInfo) -> bool:
    """Whether the file holds its whole image: a PNG's chunks run to IEND, a JPEG's scan data ends with EOI."""
    if info.format == "png":
        pos = 8
        while pos + 8 <= len(data):
            (length,) = struct.unpack_from(">I", data, pos)
            if data[pos + 4 : pos + 8] == b"IEND":
                return True
            pos += 12 + length
        return False
    if info.format == "jpeg":
        # An 0xFF byte in entropy-coded data is always followed by 0x00 or a restart marker, so an EOI
        # after the first scan marks the end of the image (a JPEG may carry more data after it).
        return data.find(b"\xff\xd9", info.scan_offset) >= 0
    return True


def read_image(path: str | Path, where: str = "") -> Any:
    """Decode an image file as an RGB ``uint8`` array after checking its header (see :func:`image_info`).

    Raises:
        AssetError: Naming the file: it is not a bounded PNG/JPEG/BMP image, is truncated, or does not decode.
    """
    import cv2
    import numpy as np

    prefix = f"{where}: " if where else ""
    info = image_info(path, where)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AssetError(f"{prefix}cannot read image {path}: {exc.strerror or exc}") from None
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if _complete(data, info) else None
    if image is None:
        raise AssetError(f"{prefix}image {path} is truncated or corrupt: it cannot be decoded")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@functools.lru_cache(maxsize=4096)
def _verified(path: str, mtime_ns: int, size: int, inode: int) -> str | None:
    try:
        read_image(path)
    except AssetError as exc:
        return str(exc)
    return None


def verify_image(path: str | Path, where: str = "") -> None:
    """Check once per process (per file version) that an image decodes whole; see :func:`read_image`.

    Raises:
        AssetError: Naming the file and the problem.
    """
    prefix = f"{where}: " if where else ""
    try:
        key = _file_key(Path(path))
    except OSError as exc:
        raise AssetError(f"{prefix}cannot read image {path}: {exc.strerror or exc}") from None
    problem = _verified(*key)
    if problem:
        raise AssetError(f"{prefix}{problem}")


def resolve_folder(ref: str, *, base_dir: Path | None, roots: Sequence[Path] = (), where: str = "") -> Path:
    """Resolve a folder reference with the same rules as :func:`resolve_asset` (no escapes)."""
    prefix = f"{where}: " if where else ""
    with _os_errors(ref, prefix):
        return _resolve_folder(ref, base_dir, roots, prefix)


def _resolve_folder(ref: str, base_dir: Path | None, roots: Sequence[Path], prefix: str) -> Path:
    if ref.startswith(PYBULLET_PREFIX):
        root = pybullet_data_dir()
        path = (root / ref[len(PYBULLET_PREFIX) :]).resolve()
        allowed = [root]
    else:
        allowed = _allowed(base_dir, roots)
        raw = Path(ref).expanduser()
        if not raw.is_absolute() and base_dir is None:
            raise AssetError(f"{prefix}relative folder '{ref}' needs a spec file to resolve against")
        path = raw.resolve() if raw.is_absolute() else (base_dir / raw).resolve()  # type: ignore[operator]
    if not inside_any(path, allowed):
        raise AssetError(f"{prefix}'{ref}' resolves to {path}, outside the allowed asset roots")
    if not path.is_dir():
        raise AssetError(f"{prefix}no folder '{ref}'")
    return path


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``: by suffix, hidden files skipped, sorted (so draws are reproducible)."""
    with os.scandir(folder) as entries:
        return sorted(
            Path(e.path)
            for e in entries
            if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and e.is_file()
        )


@functools.lru_cache(maxsize=65536)
def _image_problem(path: str, mtime_ns: int, size: int, inode: int) -> str | None:
    try:
        image_info(path)
    except AssetError as exc:
        return str(exc)
    return None


def image_pool(ref: str, *, base_dir: Path | None, roots: Sequence[Path] = (), where: str = "") -> list[Path]:
    """The photos of a folder reference (resolved safely), each checked by header (see the module docstring).

    The folder is listed on every call (a ``stat`` per file); each file's header check is cached per file
    version, so calling this for every sample stays cheap.

    Raises:
        AssetError: The folder is missing, outside the allowed roots or unreadable, holds no image, or holds
            an image file that is not a PNG/JPEG/BMP of bounded size, or that links out of the allowed roots
            (the message names the file).
    """
    prefix = f"{where}: " if where else ""
    folder = resolve_folder(ref, base_dir=base_dir, roots=roots, where=where)
    allowed = (pybullet_data_dir(),) if ref.startswith(PYBULLET_PREFIX) else tuple(_allowed(base_dir, roots))
    try:
        images = list_images(folder)
        for image in images:
            if image.is_symlink() and not inside_any(image.resolve(), allowed):
                raise AssetError(f"{prefix}{image} resolves to {image.resolve()}, outside the allowed asset roots")
            problem = _image_problem(*_file_key(image))
            if problem:
                raise AssetError(f"{prefix}{problem}")
    except OSError as exc:
        raise AssetError(f"{prefix}cannot read folder {folder}: {exc.strerror or exc}") from None
    if not images:
        raise AssetError(f"{prefix}no PNG/JPEG/BMP images in {folder}")
    return images
