"""Split a small labeled real set once, by seed, into a tuning part and a held-out part.

The split is by image (crops of one image never land on both sides) and stratified by category: among
seeded candidate splits, the one whose held-out share of every category's images is closest to the
asked fraction is kept, provided every category has at least :data:`MIN_IMAGES_PER_PART` images on each
side. Each part is written as its own COCO folder (``real/tune`` and ``real/heldout``, images copied), so
the search is handed the tuning folder alone and has no path to the held-out images.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simgen.errors import OutputExistsError, SimgenError

__all__ = ["MIN_IMAGES", "MIN_IMAGES_PER_PART", "RealSplit", "split_real"]

#: A real set needs at least this many images to be split for tuning.
MIN_IMAGES = 20
#: Every category needs at least this many images holding it in each part.
MIN_IMAGES_PER_PART = 2
_CANDIDATES = 256
SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class RealSplit:
    """The two parts of a real set.

    Attributes:
        tune: The tuning part (a COCO folder); the only real data the search sees.
        heldout: The held-out part (a COCO folder); read only by the final report.
        classes: The categories tuned for (present in the real set and the spec).
        counts: ``part -> {category: images holding it}``.
        images: ``part -> number of images``.
        seed: The split's seed.
        holdout: The held-out fraction asked for.
    """

    tune: Path
    heldout: Path
    classes: list[str]
    counts: dict[str, dict[str, int]]
    images: dict[str, int]
    seed: int
    holdout: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "tune": str(self.tune),
            "heldout": str(self.heldout),
            "classes": self.classes,
            "counts": self.counts,
            "images": self.images,
            "seed": self.seed,
            "holdout": self.holdout,
        }


def _coco_file(real: Path) -> Path:
    if real.is_file() and real.suffix.lower() == ".json":
        return real
    if (real / "annotations.coco.json").is_file():
        return real / "annotations.coco.json"
    raise SimgenError(
        f"{real}: tuning needs a labeled real set in COCO (a folder with annotations.coco.json, or a COCO .json file)"
    )


def real_digest(real: str | Path) -> str:
    """SHA-256 of the real set's COCO file (what a resumed tune checks it was split from)."""
    return hashlib.sha256(_coco_file(Path(real)).read_bytes()).hexdigest()


def _minimum_text(holdout: float) -> str:
    return (
        f"at least {MIN_IMAGES} labeled images, with at least {MIN_IMAGES_PER_PART} images of each category in "
        f"each part ({holdout:.0%} held out), so at least "
        f"{max(MIN_IMAGES_PER_PART * 2, int(np.ceil(MIN_IMAGES_PER_PART / min(holdout, 1 - holdout))))} images "
        "holding each category"
    )


def _choose(members: list[set[str]], classes: list[str], n_held: int, holdout: float, seed: int) -> np.ndarray | None:
    """The held-out mask of the best valid candidate split, or None when no candidate is valid."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5B117]))
    has = np.array([[c in m for c in classes] for m in members], dtype=bool)  # (images, classes)
    total = has.sum(axis=0)
    best, best_cost = None, np.inf
    for _ in range(_CANDIDATES):
        held = np.zeros(len(members), bool)
        held[rng.permutation(len(members))[:n_held]] = True
        in_held = has[held].sum(axis=0)
        if (in_held < MIN_IMAGES_PER_PART).any() or ((total - in_held) < MIN_IMAGES_PER_PART).any():
            continue
        cost = float((((in_held / total) - holdout) ** 2).sum())
        if cost < best_cost:
            best, best_cost = held, cost
    return best


def _write_part(dest: Path, coco: dict[str, Any], chosen: list[dict[str, Any]], paths: list[Path]) -> None:
    images_dir = dest / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for k, (entry, src) in enumerate(zip(chosen, paths, strict=True)):
        name = f"images/{k:06d}{src.suffix.lower()}"
        shutil.copyfile(src, dest / name)
        images.append({**entry, "file_name": name, "source_file_name": entry.get("file_name")})
    ids = {int(im["id"]) for im in chosen}
    part = {
        **{k: v for k, v in coco.items() if k not in ("images", "annotations")},
        "images": images,
        "annotations": [a for a in coco.get("annotations", []) if int(a.get("image_id", -1)) in ids],
    }
    (dest / "annotations.coco.json").write_text(json.dumps(part), encoding="utf-8")


def split_real(
    real: str | Path, out: str | Path, *, classes: list[str], seed: int = 0, holdout: float = 0.3
) -> RealSplit:
    """Split ``real`` into ``out/tune`` and ``out/heldout`` (or reuse the split already there).

    Args:
        real: A COCO folder or file.
        out: Where the two parts go (``<tune out>/real``).
        classes: The categories that count (those the spec can generate); images are stratified by them.
        seed: The split's seed.
        holdout: Fraction of the images held out, in (0, 1).

    Returns:
        The split.

    Raises:
        SimgenError: ``real`` is not COCO, shares fewer than 2 categories with ``classes``, or is too small
            for a split (the message states the minimum).
        OutputExistsError: ``out`` holds a split of another real set, seed or fraction.
    """
    from simgen.validators.datasets import load_image_set

    if not 0.0 < holdout < 1.0:
        raise SimgenError(f"holdout must be a fraction in (0, 1), got {holdout}")
    real, out = Path(real), Path(out)
    digest = real_digest(real)
    record = {
        "real": str(real.resolve()),
        "real_sha256": digest,
        "seed": seed,
        "holdout": holdout,
        "classes": sorted(classes),
    }
    stored = out / SPLIT_FILE
    if stored.is_file():
        previous = json.loads(stored.read_text(encoding="utf-8"))
        changed = [k for k in ("real_sha256", "seed", "holdout", "classes") if previous.get(k) != record[k]]
        if changed:
            raise OutputExistsError(
                f"{out} holds a split made with a different {', '.join(changed)}; use a new output folder"
            )
        return RealSplit(
            out / "tune", out / "heldout", previous["present"], previous["counts"], previous["images"], seed, holdout
        )
    image_set = load_image_set(real)
    coco = image_set.coco or {}
    names = image_set.categories
    present = sorted(set(names.values()) & set(classes))
    if len(present) < 2:
        raise SimgenError(
            f"{real}: the real set and the spec share {len(present)} category name(s) "
            f"({', '.join(present) or 'none'}); "
            f"tuning a classifier needs at least 2 (real: {', '.join(sorted(set(names.values())))}; "
            f"spec: {', '.join(sorted(classes))})"
        )
    by_image = image_set.annotations_by_image()
    members = [
        {names.get(a.get("category_id"), "") for a in by_image.get(iid, []) if not a.get("iscrowd", 0)} & set(present)
        for iid in image_set.image_ids or []
    ]
    n = len(members)
    n_held = int(round(holdout * n))
    need = _minimum_text(holdout)
    if n < MIN_IMAGES:
        raise SimgenError(f"{real}: {n} labeled images are too few to split for tuning: need {need}")
    held = _choose(members, present, n_held, holdout, seed)
    if held is None:
        holding = {c: sum(c in m for m in members) for c in present}
        rare = min(holding, key=lambda c: holding[c])
        raise SimgenError(
            f"{real}: cannot split {n} images for tuning: category '{rare}' is in only {holding[rare]} images; "
            f"need {need}"
        )
    parts = {"tune": ~held, "heldout": held}
    counts = {
        part: {c: int(sum(c in members[i] for i in np.flatnonzero(mask))) for c in present}
        for part, mask in parts.items()
    }
    for part, mask in parts.items():
        idx = np.flatnonzero(mask).tolist()
        dest = out / part
        if dest.exists():
            shutil.rmtree(dest)  # a split interrupted before split.json was written: ours, redone
        _write_part(
            dest,
            coco,
            [coco["images"][i] for i in _positions(coco, image_set.image_ids, idx)],
            [image_set.paths[i] for i in idx],
        )
    images = {part: int(mask.sum()) for part, mask in parts.items()}
    from simgen.writers.atomic import atomic_write_json

    # split.json last: a split interrupted before it is simply redone.
    atomic_write_json(
        stored,
        {
            **record,
            "present": present,
            "counts": counts,
            "images": images,
            "heldout_files": [str(image_set.paths[i]) for i in np.flatnonzero(held)],
        },
    )
    return RealSplit(out / "tune", out / "heldout", present, counts, images, seed, holdout)


def _positions(coco: dict[str, Any], image_ids: list[int] | None, idx: list[int]) -> list[int]:
    """Positions in ``coco["images"]`` of the selected images (the image set may order them differently)."""
    where = {int(im["id"]): k for k, im in enumerate(coco["images"])}
    return [where[int((image_ids or [])[i])] for i in idx]
