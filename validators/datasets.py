"""Read the two sides of a validation: a simgen (or any COCO) dataset, or a plain folder of images.

Core dependencies only (numpy, OpenCV): the label validator and ``import simgen.validators`` work
without torch.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from simgen.errors import SimgenError
from simgen.io import sha256_file as file_sha256

__all__ = [
    "COCO_FILE",
    "IMAGE_EXTENSIONS",
    "ImageSet",
    "file_sha256",
    "load_image_set",
    "manifest_parameters",
    "read_rgb",
]

log = logging.getLogger(__name__)

COCO_FILE = "annotations.coco.json"
MANIFEST_FILE = "manifest.jsonl"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class ImageSet:
    """The images of one side of a comparison, with their COCO labels when there are any.

    Attributes:
        root: The dataset folder (a simgen output folder, the folder of a COCO file, or an image folder).
        kind: ``"coco"`` or ``"folder"``.
        paths: The selected images, in a fixed order.
        coco: The COCO document (images restricted to the selection), or None for a folder.
        image_ids: The COCO image id of each path (None for a folder).
        total_images: How many images the dataset has before ``max_images`` selection.
    """

    root: Path
    kind: str
    paths: list[Path]
    coco: dict[str, Any] | None = None
    image_ids: list[int] | None = None
    total_images: int = 0
    _hashes: list[str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def categories(self) -> dict[int, str]:
        """Category id -> name (empty for a folder)."""
        if self.coco is None:
            return {}
        return {int(c["id"]): str(c["name"]) for c in self.coco.get("categories", [])}

    def annotations_by_image(self) -> dict[int, list[dict[str, Any]]]:
        """The annotations of each selected image, by image id."""
        out: dict[int, list[dict[str, Any]]] = {i: [] for i in self.image_ids or []}
        for ann in (self.coco or {}).get("annotations", []):
            if ann.get("image_id") in out:
                out[ann["image_id"]].append(ann)
        return out

    def class_counts(self) -> dict[str, int]:
        """Objects per category name over the selected images (empty for a folder)."""
        if self.coco is None:
            return {}
        names = self.categories
        chosen = set(self.image_ids or [])
        counts = Counter(
            names.get(a.get("category_id"), str(a.get("category_id")))
            for a in self.coco.get("annotations", [])
            if a.get("image_id") in chosen
        )
        return {name: counts.get(name, 0) for name in sorted(set(names.values()) | set(counts))}

    def file_hashes(self) -> list[str]:
        """The SHA-256 of each selected image file (computed once)."""
        if self._hashes is None:
            self._hashes = [file_sha256(p) for p in self.paths]
        return self._hashes

    def describe(self) -> dict[str, Any]:
        """A JSON summary: path, kind and image counts."""
        return {"path": str(self.root), "kind": self.kind, "images": len(self.paths), "total_images": self.total_images}


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB of shape (H, W, 3); grey is repeated and alpha dropped.

    16-bit images are scaled to 8 bits.

    Raises:
        SimgenError: The file cannot be decoded as an image.
    """
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SimgenError(f"cannot read image {path}")
    if img.dtype == np.uint16:
        img = (img // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise SimgenError(f"{path}: unsupported image dtype {img.dtype}, expected 8 or 16 bits")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _select(n: int, max_images: int | None) -> list[int]:
    """Evenly spaced indices, so that a cap keeps the whole dataset's variety (deterministic)."""
    if max_images is None or max_images >= n:
        return list(range(n))
    if max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, max_images)})


def _resolve_image(file_name: str, bases: list[Path]) -> Path:
    for base in bases:
        p = base / file_name
        if p.is_file():
            return p
    return bases[0] / file_name


def load_image_set(path: str | Path, *, max_images: int | None = None, image_root: str | Path | None = None,
                   require_files: bool = True) -> ImageSet:  # fmt: skip
    """Open a simgen dataset folder, a COCO JSON file or a folder of images.

    - a folder with ``annotations.coco.json`` (a simgen dataset): COCO, file names relative to it;
    - a ``.json`` COCO file: file names relative to ``image_root``, else the file's folder, else
      its ``images/`` subfolder;
    - any other folder: every image file below it (recursively, hidden folders skipped), sorted.

    Args:
        path: The dataset.
        max_images: Keep at most this many images, evenly spaced over the dataset.
        image_root: Where a COCO file's images live, when not beside it.
        require_files: Raise when a selected image file is missing.

    Returns:
        The image set.

    Raises:
        SimgenError: The path does not exist, holds no images, or a COCO file is malformed.
    """
    path = Path(path)
    if not path.exists():
        raise SimgenError(f"{path} does not exist")
    coco_file: Path | None = None
    if path.is_file() and path.suffix.lower() == ".json":
        coco_file = path
    elif path.is_dir() and (path / COCO_FILE).is_file():
        coco_file = path / COCO_FILE
    elif path.is_dir() and (path / "dataset.json").is_file():
        # A simgen dataset written without COCO: its folder also holds depth and instance PNGs, which
        # must never be mixed into the image features.
        raise SimgenError(
            f"{path} is a simgen dataset without {COCO_FILE} (outputs.coco: false); pass {path / 'images'} instead"
        )
    if coco_file is not None:
        try:
            coco = json.loads(coco_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SimgenError(f"cannot read COCO file {coco_file}: {exc}") from exc
        if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
            raise SimgenError(f"{coco_file} is not a COCO file: it has no 'images' list")
        root = coco_file.parent
        bases = [Path(image_root)] if image_root is not None else [root, root / "images"]
        images = sorted(coco["images"], key=lambda im: (im.get("frame_index", math.inf), im.get("id", 0)))
        if not images:
            raise SimgenError(f"{coco_file} lists no images")
        chosen = [images[i] for i in _select(len(images), max_images)]
        paths = [_resolve_image(str(im["file_name"]), bases) for im in chosen]
        if require_files:
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                raise SimgenError(f"{len(missing)} image files listed in {coco_file} are missing, e.g. {missing[0]}")
        view = dict(coco)
        view["images"] = chosen
        return ImageSet(root, "coco", paths, view, [int(im["id"]) for im in chosen], len(images))
    if not path.is_dir():
        raise SimgenError(f"{path} is neither a folder nor a COCO .json file")
    files = sorted(
        p for p in path.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )  # fmt: skip
    if not files:
        raise SimgenError(f"{path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    chosen_paths = [files[i] for i in _select(len(files), max_images)]
    return ImageSet(path, "folder", chosen_paths, None, None, len(files))


def _numbers(value: Any, prefix: str, out: dict[str, float], *, max_list: int = 4) -> None:
    """Collect numeric leaves below ``value`` as ``prefix.key`` (short lists as ``prefix[i]``)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        if math.isfinite(value):
            out[prefix] = float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _numbers(v, f"{prefix}.{k}" if prefix else str(k), out, max_list=max_list)
    elif isinstance(value, list) and 0 < len(value) <= max_list:
        for i, v in enumerate(value):
            if isinstance(v, int | float) and not isinstance(v, bool):
                _numbers(v, f"{prefix}[{i}]", out, max_list=max_list)


def _has_sampled(value: Any) -> bool:
    if isinstance(value, dict):
        return "sampled" in value or any(_has_sampled(v) for v in value.values())
    return False


def _sampled(value: Any, prefix: str, out: dict[str, float]) -> None:
    """Collect the numbers under every ``sampled`` key below ``value``."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "sampled":
                _numbers(v, prefix, out)
            else:
                _sampled(v, f"{prefix}.{k}" if prefix else str(k), out)


def _patch_values(patches: Any) -> dict[str, float]:
    """One frame's randomized numbers from a ``{"<pos>:<randomizer>": patch}`` mapping."""
    out: dict[str, float] = {}
    if not isinstance(patches, dict):
        return out
    for key, patch in patches.items():
        name = str(key).split(":", 1)[-1]
        found: dict[str, float] = {}
        if _has_sampled(patch):
            _sampled(patch, "", found)
        else:  # a sensor patch is all sampled values
            _numbers(patch, "", found)
        for leaf, v in found.items():
            out[f"{name} {leaf}"] = v
    return out


def manifest_parameters(root: str | Path, *, frames: set[int] | None = None) -> dict[str, list[float]]:
    """The randomized numbers of every frame, flattened, from a simgen ``manifest.jsonl``.

    The numbers under ``sampled`` in each ``view`` patch (camera distance, azimuth, ...), and the
    numeric values of each ``sensor`` patch, keyed ``"<randomizer> <field path>"``.

    Args:
        root: The dataset folder.
        frames: Only these frame indices (None: all).

    Returns:
        Parameter name -> one value per frame that has it. Empty when there is no manifest.
    """
    path = Path(root) / MANIFEST_FILE
    out: dict[str, list[float]] = {}
    if not path.is_file():
        return out
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s line %d is not JSON; skipped", path, n)
                continue
            if frames is not None and entry.get("frame") not in frames:
                continue
            for section in ("view", "sensor"):
                for name, v in _patch_values(entry.get(section)).items():
                    out.setdefault(name, []).append(v)
    return out
