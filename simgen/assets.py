"""Resolve asset references safely.

An asset is ``pybullet_data:<path>`` for PyBullet's bundled files, a path relative to the spec's
folder, or a path inside one of the roots the user lists. Anything that resolves elsewhere (``../``
escapes, absolute paths, symlinks out of the roots) is refused with an :class:`AssetError`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from simgen.errors import AssetError, did_you_mean

PYBULLET_PREFIX = "pybullet_data:"
MESH_SUFFIXES = (".urdf", ".obj", ".sdf")


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


def resolve_asset(ref: str, *, base_dir: Path | None, roots: Sequence[Path] = (), where: str = "") -> Path:
    """Resolve an asset reference to an absolute path inside an allowed root.

    Args:
        ref: ``pybullet_data:<path>``, a relative path, or an absolute path inside ``roots``.
        base_dir: The spec's folder (relative paths resolve against it); None for specs given as data.
        roots: Further allowed folders.
        where: The spec field, for messages (``objects[0].assets[2]``).

    Returns:
        The resolved absolute path.

    Raises:
        AssetError: The file is missing, has an unsupported type, or lies outside every allowed root.
    """
    prefix = f"{where}: " if where else ""
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
        allowed = [r.resolve() for r in roots]
        if base_dir is not None:
            allowed.insert(0, base_dir.resolve())
        raw = Path(ref).expanduser()
        if raw.is_absolute():
            path = raw.resolve()
        elif base_dir is not None:
            path = (base_dir / raw).resolve()
        else:
            raise AssetError(f"{prefix}relative asset path '{ref}' needs a spec file to resolve against")
        if not any(_inside(path, r) for r in allowed):
            shown = ", ".join(str(r) for r in allowed) or "(none)"
            raise AssetError(
                f"{prefix}'{ref}' resolves to {path}, outside the allowed asset roots ({shown}); "
                "add its folder to asset_roots in the spec or --asset-root to allow it"
            )
        if not path.is_file():
            siblings = [p.name for p in path.parent.glob("*")] if path.parent.is_dir() else []
            raise AssetError(f"{prefix}asset file '{ref}' does not exist{did_you_mean(path.name, siblings)}")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise AssetError(f"{prefix}'{ref}' is a {path.suffix or 'suffix-less'} file; expected one of {MESH_SUFFIXES}")
    return path


def asset_stem(ref: str) -> str:
    """A readable default category for an asset reference: its file stem without ``_vhacd``."""
    stem = Path(ref.removeprefix(PYBULLET_PREFIX)).stem
    return stem.removesuffix("_vhacd")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def resolve_folder(ref: str, *, base_dir: Path | None, roots: Sequence[Path] = (), where: str = "") -> Path:
    """Resolve a folder reference with the same rules as :func:`resolve_asset` (no escapes)."""
    prefix = f"{where}: " if where else ""
    if ref.startswith(PYBULLET_PREFIX):
        root = pybullet_data_dir()
        path = (root / ref[len(PYBULLET_PREFIX) :]).resolve()
        allowed = [root]
    else:
        allowed = [r.resolve() for r in roots] + ([base_dir.resolve()] if base_dir is not None else [])
        raw = Path(ref).expanduser()
        if not raw.is_absolute() and base_dir is None:
            raise AssetError(f"{prefix}relative folder '{ref}' needs a spec file to resolve against")
        path = raw.resolve() if raw.is_absolute() else (base_dir / raw).resolve()  # type: ignore[operator]
    if not any(_inside(path, r) for r in allowed):
        raise AssetError(f"{prefix}'{ref}' resolves to {path}, outside the allowed asset roots")
    if not path.is_dir():
        raise AssetError(f"{prefix}no folder '{ref}'")
    return path


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name (so a draw by index is reproducible)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def image_pool(ref: str, *, base_dir: Path | None, roots: Sequence[Path] = (), where: str = "") -> list[Path]:
    """The photos of a folder reference (resolved safely), refusing an empty folder."""
    folder = resolve_folder(ref, base_dir=base_dir, roots=roots, where=where)
    images = list_images(folder)
    if not images:
        raise AssetError(f"{where}: no PNG/JPEG images in {folder}")
    return images
