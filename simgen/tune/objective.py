"""The tuning objective: the crop probe's TSTR, with KID beside it, on object crops, all from ``simgen.validators``.

A dataset's object crops are cut by :func:`simgen.validators.utility.extract_crops` (the crops ``simgen
validate`` uses), one image at a time so that each crop remembers its image: the bootstrap resamples
images, not crops, since crops of one image are not independent. Features come from a frozen
:class:`~simgen.validators.features.FeatureExtractor`; the probe is validate's own linear probe
(standardisation + logistic regression), trained on synthetic crops and scored on real ones; KID is
:func:`simgen.validators.functional.kid` on the same features.

Real crops go through the validators' feature cache: they are written once as PNG files (lossless, so a
crop's features are the same as from memory) into ``<part>/.simgen/crops/`` and read with
:func:`~simgen.validators.features.compute_features`, which caches them per file hash. A resumed tune,
the attribution and the final report never recompute them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from simgen.errors import SimgenError

__all__ = ["Crops", "ProbeScore", "dataset_crops", "kid_score", "probe_score", "real_crops", "synthetic_crops"]

log = logging.getLogger(__name__)

CROPS_SUBDIR = Path(".simgen") / "crops"


@dataclass
class Crops:
    """Object crops of one dataset, as features.

    Attributes:
        features: (n, d) float32 features.
        labels: The class name of each crop.
        images: The index of the image each crop came from (the bootstrap's unit).
        n_images: Images in the dataset (some may have no crop).
    """

    features: np.ndarray
    labels: list[str]
    images: np.ndarray
    n_images: int

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> dict[str, int]:
        """Crops per class."""
        out: dict[str, int] = {}
        for name in self.labels:
            out[name] = out.get(name, 0) + 1
        return dict(sorted(out.items()))

    def save(self, path: Path, **meta: str) -> None:
        """Write as ``.npz`` (atomically), with string ``meta`` entries for a later :meth:`load` to check."""
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        extra = {f"meta_{k}": np.array(v) for k, v in meta.items()}
        np.savez(
            tmp,
            features=self.features,
            labels=np.array(self.labels, dtype=str),
            images=self.images,
            n_images=np.array(self.n_images),
            **extra,
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, **meta: str) -> Crops | None:
        """Read a :meth:`save` file; None when it is missing, unreadable, or its ``meta`` differs."""
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if any(f"meta_{k}" not in data or str(data[f"meta_{k}"]) != v for k, v in meta.items()):
                    return None
                return cls(
                    data["features"].astype(np.float32),
                    [str(s) for s in data["labels"]],
                    data["images"].astype(np.int64),
                    int(data["n_images"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            log.warning("ignoring unreadable crop features %s: %s", path, exc)
            return None


def dataset_crops(dataset: str | Path, classes: Sequence[str]) -> tuple[list[np.ndarray], list[str], np.ndarray, int]:
    """The object crops of a COCO dataset, cut by the validators' :func:`extract_crops`, with their image index.

    Args:
        dataset: A simgen dataset or COCO folder (or COCO ``.json`` file).
        classes: Keep only these class names.

    Returns:
        ``(crops, labels, image index per crop, number of images)``.
    """
    from simgen.validators.datasets import ImageSet, load_image_set
    from simgen.validators.utility import extract_crops

    image_set = load_image_set(dataset)
    if image_set.coco is None:
        raise SimgenError(f"{dataset} has no COCO labels: tuning needs labeled images")
    crops: list[np.ndarray] = []
    labels: list[str] = []
    images: list[int] = []
    for k, (path, iid) in enumerate(zip(image_set.paths, image_set.image_ids or [], strict=True)):
        one = ImageSet(image_set.root, "coco", [path], image_set.coco, [iid], 1)
        c, names = extract_crops(one, classes=classes)
        crops += c
        labels += names
        images += [k] * len(c)
    return crops, labels, np.asarray(images, np.int64), len(image_set)


def real_crops(dataset: Path, extractor: Any, classes: Sequence[str]) -> Crops:
    """A real dataset's crops and their features, through the validators' feature cache.

    The crops are written as PNG files into ``dataset/.simgen/crops/`` (rewritten each time: the same
    bytes, so the same cache keys) and their features come from :func:`compute_features`, which computes
    only what its cache (``crops/.simgen/features/``, kept across runs) lacks.
    """
    from simgen.validators.datasets import load_image_set
    from simgen.validators.features import compute_features

    crops, labels, images, n_images = dataset_crops(dataset, classes)
    if not crops:
        raise SimgenError(f"{dataset}: no object crops of the classes {', '.join(classes)}")
    folder = Path(dataset) / CROPS_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    written = set()
    for i, crop in enumerate(crops):
        name = folder / f"{i:06d}.png"
        if not cv2.imwrite(str(name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)):
            raise SimgenError(f"cannot write crop {name}")
        written.add(name.name)
    for stale in folder.glob("*.png"):  # crops of an earlier, different labelling; the cache (.simgen/) stays
        if stale.name not in written:
            stale.unlink()
    features = compute_features(load_image_set(folder), extractor)
    return Crops(features, labels, images, n_images)


def synthetic_crops(dataset: Path, extractor: Any, classes: Sequence[str]) -> Crops:
    """A generated dataset's crops and their features (not cached: each trial's dataset is new)."""
    crops, labels, images, n_images = dataset_crops(dataset, classes)
    features = extractor(crops) if crops else np.zeros((0, 0), np.float32)  # no crop: the probe refuses it
    return Crops(np.asarray(features, np.float32), labels, images, n_images)


@dataclass
class ProbeScore:
    """A probe trained on one set of crops and scored on another.

    Attributes:
        accuracy: Share of test crops classified right.
        macro_f1: Macro-averaged F1 over the classes present in the test crops.
        per_class: ``class -> {"accuracy", "precision", "f1", "support"}``.
        correct: Whether each test crop was classified right (for bootstraps).
    """

    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    correct: np.ndarray

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (without the per-crop vector)."""
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "per_class": self.per_class}


def probe_score(train: Crops, test: Crops, classes: Sequence[str], *, seed: int) -> ProbeScore:
    """Train validate's linear probe on ``train`` crops and score it on ``test`` crops.

    Raises:
        SimgenError: ``train`` holds crops of fewer than two classes (no classifier can be trained).
    """
    from simgen.validators.utility import classification_scores, default_probe

    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    y_train = np.array([index[c] for c in train.labels], dtype=int)
    y_test = np.array([index[c] for c in test.labels], dtype=int)
    present = sorted(set(train.labels))
    if len(present) < 2:
        raise SimgenError(
            f"the training crops hold {len(train)} crops of {len(present)} class(es) ({', '.join(present) or 'none'}); "
            "the probe needs at least 2 classes"
        )
    model = default_probe(seed).fit(np.asarray(train.features, np.float64), y_train)
    pred = np.asarray(model.predict(np.asarray(test.features, np.float64)))
    scores = classification_scores(y_test, pred, classes)
    return ProbeScore(scores["overall"]["accuracy"], scores["overall"]["macro_f1"], scores["per_class"], pred == y_test)


def kid_score(syn: Crops, real: Crops, *, seed: int, subsets: int = 20, subset_size: int = 1000) -> float:
    """KID between the synthetic and real crop features (validators' :func:`~simgen.validators.functional.kid`).

    Returns NaN when a side has fewer than 2 crops.
    """
    from simgen.validators import functional as Fn

    if len(syn) < 2 or len(real) < 2:
        return float("nan")
    return Fn.kid(
        real.features, syn.features, rng=np.random.default_rng(seed), subsets=subsets, subset_size=subset_size
    )[0]
