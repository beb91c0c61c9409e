"""``validate_datasets``: how far is a synthetic dataset from a real one, and does it train models that work?

One call reads both datasets, checks the labels, extracts (cached) features, computes FID, KID,
MMD, precision/recall/density/coverage with bootstrap intervals, runs the TSTR/TRTR utility test,
and gathers what the report shows (class counts, randomized parameters, a 2-D projection). The
``simgen validate`` command is a thin layer over it.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simgen.errors import SimgenError, did_you_mean
from simgen.validators import functional as Fn
from simgen.validators.datasets import ImageSet, load_image_set, manifest_parameters
from simgen.validators.labels import Problem, summarize_problems, validate_labels

__all__ = [
    "EXTRACTORS",
    "MIN_IMAGES",
    "UTILITIES",
    "ValidationReport",
    "feature_metrics",
    "resolve_extractor",
    "validate_datasets",
]

log = logging.getLogger(__name__)

EXTRACTORS = ("inception", "efficientnet-lite0")
UTILITIES = ("crops", "detection", "none")
METRIC_INFO = {
    "fid": ("Fréchet distance between Gaussians fitted to the features (FID)", False),
    "kid": ("kernel distance: unbiased polynomial MMD² over seeded subsets (KID)", False),
    "mmd": ("unbiased MMD² with an RBF kernel, median-heuristic bandwidth", False),
    "precision": ("share of synthetic samples inside the real manifold (fidelity)", True),
    "recall": ("share of real samples inside the synthetic manifold (diversity)", True),
    "density": ("real neighbourhoods per synthetic sample, / k (fidelity; 1 when matched)", True),
    "coverage": ("share of real neighbourhoods holding a synthetic sample (diversity)", True),
}


@dataclass
class ValidationReport:
    """Everything ``simgen validate`` measured; :meth:`as_dict` is ``report.json``.

    Attributes:
        synthetic: Summary of the synthetic side (path, kind, image counts).
        real: Summary of the real side.
        extractor: The feature extractor id.
        metrics: ``name -> {"value", "ci", "level", "n_boot", "higher_is_better", "description"}``.
        labels: ``side -> {"checked", "n_problems", "by_kind", "problems"}``.
        utility: The TSTR/TRTR result (``UtilityResult.as_dict()``), or ``{"skipped": reason}``.
        class_counts: ``side -> {class name: objects}`` over the selected images.
        parameters: Randomized parameter values from the synthetic manifest (name -> values).
        projection: 2-D PCA coordinates of both feature sets and the explained variance.
        settings: How the run was configured.
        privacy: The memorisation check on the features (:func:`~simgen.validators.privacy.feature_privacy`:
            exact copies of, and closeness to, the real images), or ``{"skipped": reason}``.
        timings_s: Seconds per step.
        warnings: Things that were skipped or that limit the results.
        image_sets: The image sets compared (for the report's sample grids; not in the JSON).
    """

    synthetic: dict[str, Any]
    real: dict[str, Any]
    extractor: str
    metrics: dict[str, dict[str, Any]]
    labels: dict[str, dict[str, Any]]
    utility: dict[str, Any]
    class_counts: dict[str, dict[str, int]]
    parameters: dict[str, list[float]]
    projection: dict[str, Any]
    settings: dict[str, Any]
    privacy: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    image_sets: dict[str, ImageSet] = field(default_factory=dict, repr=False)

    @property
    def n_label_problems(self) -> int:
        """Label problems found on both sides."""
        return sum(int(v.get("n_problems", 0)) for v in self.labels.values())

    def as_dict(self) -> dict[str, Any]:
        """The JSON document written as ``report.json``."""
        from simgen import __version__

        return {
            "simgen_version": __version__,
            "synthetic": self.synthetic,
            "real": self.real,
            "extractor": self.extractor,
            "metrics": self.metrics,
            "labels": self.labels,
            "utility": self.utility,
            "privacy": self.privacy,
            "class_counts": self.class_counts,
            "parameters": _parameter_summary(self.parameters),
            "projection": self.projection,
            "settings": self.settings,
            "timings_s": self.timings_s,
            "warnings": self.warnings,
        }


def _parameter_summary(parameters: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, values in parameters.items():
        v = np.asarray(values, dtype=float)
        out[name] = {"n": int(v.size), "min": float(v.min()), "max": float(v.max()), "mean": float(v.mean()),
                     "std": float(v.std()), "values": [round(float(x), 6) for x in v]}  # fmt: skip
    return out


def resolve_extractor(spec: Any = None, *, inception_weights: str | Path | None = None, batch_size: int = 16,
                      device: str = "cpu") -> Any:  # fmt: skip
    """Turn what a user names into a :class:`~simgen.validators.features.FeatureExtractor`.

    Args:
        spec: None or ``"inception"`` (the offline Inception-v3), ``"efficientnet-lite0"``, a
            TorchScript file path, ``"package.module:factory"`` (a callable returning an ``nn.Module``
            or a ``FeatureExtractor``), an ``nn.Module``, or a ``FeatureExtractor``.
        inception_weights: Weights file for ``"inception"`` (TorchScript or torch-fidelity).
        batch_size: Images per forward pass.
        device: Torch device string.

    Raises:
        SimgenError: The name is not recognised (with a suggestion).
    """
    from simgen.validators import features as feat

    if isinstance(spec, feat.FeatureExtractor):
        return spec
    if spec is None or spec == "inception":
        return feat.load_inception(inception_weights, batch_size=batch_size, device=device)
    torch = feat.require_torch()
    if isinstance(spec, torch.nn.Module):
        return feat.extractor_from_module(spec, batch_size=batch_size, device=device)
    if not isinstance(spec, str):
        got = type(spec).__name__
        raise TypeError(f"extractor must be a name, a path, an nn.Module or a FeatureExtractor, got {got}")
    if spec == "efficientnet-lite0":
        from simgen.validators.utility import efficientnet_lite0_extractor

        return efficientnet_lite0_extractor(batch_size=batch_size, device=device)
    path = Path(spec)
    if path.suffix in (".pt", ".pth", ".ts", ".jit") or path.is_file():
        return feat.load_torchscript(path, name=path.stem, batch_size=batch_size, device=device)
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise SimgenError(f"cannot load extractor factory {spec!r}: {exc}") from exc
        made = factory()
        if isinstance(made, feat.FeatureExtractor):
            return made
        if isinstance(made, torch.nn.Module):
            return feat.extractor_from_module(made, extractor_id=spec, batch_size=batch_size, device=device)
        raise SimgenError(f"{spec} returned a {type(made).__name__}, expected an nn.Module or a FeatureExtractor")
    raise SimgenError(
        f"unknown extractor {spec!r}{did_you_mean(spec, EXTRACTORS)}: use one of {', '.join(EXTRACTORS)}, "
        "a TorchScript file, or 'package.module:factory'"
    )


#: Images per side below which no metric exists: FID's covariance and the unbiased MMD² (KID, MMD) need 2.
MIN_IMAGES = 2


def _check_sizes(n_syn: int, n_real: int, prdc_k: int, where: str = "") -> None:
    """Raise when a side has fewer than :data:`MIN_IMAGES` samples (then no metric could be computed)."""
    short = [f"{n} {side}" for side, n in (("synthetic", n_syn), ("real", n_real)) if n < MIN_IMAGES]
    if short:
        raise SimgenError(
            f"{where}too few images to compare: {' and '.join(short)}; every metric needs at least {MIN_IMAGES} "
            f"images per side (FID, KID and MMD need {MIN_IMAGES}; PRDC needs more than k={prdc_k})"
        )


def _entry(result: Fn.BootstrapResult, name: str) -> dict[str, Any]:
    description, higher = METRIC_INFO[name]
    return {**result.as_dict(), "higher_is_better": higher, "description": description}


def feature_metrics(real: np.ndarray, fake: np.ndarray, *, seed: int = 0, n_boot: int = 50, level: float = 0.95,
                    kid_subsets: int = 100, kid_subset_size: int = 1000, kid_boot_subsets: int = 20,
                    prdc_k: int = 5, max_pairwise_per_side: int = 5000,
                    ) -> tuple[dict[str, dict[str, Any]], list[str]]:  # fmt: skip
    """Every distribution metric with a bootstrap interval, on two feature matrices of any modality.

    The pooled kernel and distance matrices are computed once; the bootstrap indexes into them.
    FID's interval costs one n x n SVD per resample (about 1 s at 1000 images per side on 2 cores):
    lower ``n_boot`` for large sets.
    Each metric draws from its own generator derived from ``seed``, so adding a metric never shifts
    another's numbers.

    Args:
        real: Real features (n_real, d).
        fake: Synthetic features (n_fake, d).
        seed: Seed of every random draw (KID subsets, bootstrap resamples).
        n_boot: Bootstrap resamples per metric.
        level: Confidence level.
        kid_subsets: KID subsets for the reported value.
        kid_subset_size: Rows per KID subset.
        kid_boot_subsets: KID subsets per bootstrap resample (fewer, for speed).
        prdc_k: Neighbourhood size of PRDC.
        max_pairwise_per_side: KID, MMD and PRDC keep pooled (n_real + n_fake)² matrices in memory;
            above this many samples per side they run on a seeded subsample (FID always uses all).

    Returns:
        ``(metrics, warnings)``: name -> entry, and the metrics skipped with the reason.

    Raises:
        SimgenError: Fewer than :data:`MIN_IMAGES` samples on a side (no metric can be computed).
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    n_r, n_f = len(real), len(fake)
    seeds = np.random.SeedSequence(seed).spawn(4)
    rngs = {name: np.random.default_rng(s) for name, s in zip(("fid", "kid", "mmd", "prdc"), seeds, strict=True)}
    out: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    _check_sizes(n_f, n_r, prdc_k, "feature_metrics: ")
    fid = Fn.bootstrap_ci(Fn.fid, real, fake, rng=rngs["fid"], n_boot=n_boot, level=level, recentre=True)
    out["fid"] = _entry(fid, "fid")
    # The kernel metrics hold (n_real + n_fake)² matrices: above the cap they run on a seeded subsample.
    if n_r > max_pairwise_per_side or n_f > max_pairwise_per_side:
        sub = np.random.default_rng(seeds[0].spawn(1)[0])
        if n_r > max_pairwise_per_side:
            real = real[np.sort(sub.choice(n_r, max_pairwise_per_side, replace=False))]
        if n_f > max_pairwise_per_side:
            fake = fake[np.sort(sub.choice(n_f, max_pairwise_per_side, replace=False))]
        warnings.append(f"KID, MMD and PRDC use a seeded subsample of {max_pairwise_per_side} images per side "
                        f"({n_f} synthetic, {n_r} real); FID uses all")  # fmt: skip
    kid, kid_std = Fn.kid_bootstrap(real, fake, rng=rngs["kid"], n_boot=n_boot, level=level, subsets=kid_subsets,
                                    subset_size=kid_subset_size, boot_subsets=kid_boot_subsets)  # fmt: skip
    size = min(kid_subset_size, len(real), len(fake))
    out["kid"] = {**_entry(kid, "kid"), "subset_std": kid_std, "subsets": kid_subsets, "subset_size": size,
                  "bootstrap_subsets": kid_boot_subsets}  # fmt: skip
    mmd, bandwidth = Fn.mmd_rbf_bootstrap(real, fake, rng=rngs["mmd"], n_boot=n_boot, level=level)
    out["mmd"] = {**_entry(mmd, "mmd"), "bandwidth": bandwidth}
    if min(len(real), len(fake)) > prdc_k:
        d = Fn.pairwise_distances
        prdc = Fn.prdc_bootstrap(d(real, real), d(fake, fake), d(real, fake), k=prdc_k, rng=rngs["prdc"],
                                 n_boot=n_boot, level=level)  # fmt: skip
        for name, res in prdc.items():
            out[name] = {**_entry(res, name), "k": prdc_k}
    else:
        warnings.append(f"PRDC skipped: it needs more than k={prdc_k} images per side")
    return out, warnings


def _projection(real: np.ndarray, fake: np.ndarray, seed: int, max_points: int = 2000) -> dict[str, Any]:
    """2-D PCA of the pooled features (fitted on both sets), at most ``max_points`` points per side."""
    pooled = np.concatenate([real, fake]).astype(np.float64)
    mean = pooled.mean(axis=0)
    _, s, vt = np.linalg.svd(pooled - mean, full_matrices=False)
    var = s**2
    ratio = (var[:2] / var.sum()).tolist() if var.sum() > 0 else [0.0, 0.0]
    rng = np.random.default_rng(seed)

    def project(x: np.ndarray) -> list[list[float]]:
        if len(x) > max_points:
            x = x[np.sort(rng.choice(len(x), max_points, replace=False))]
        xy = (x - mean) @ vt[:2].T
        if xy.shape[1] < 2:
            xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
        return [[round(float(a), 5), round(float(b), 5)] for a, b in xy]

    return {"method": "pca", "explained_variance_ratio": ratio, "real": project(real), "synthetic": project(fake)}


def _check_labels(image_set: ImageSet, path: Path) -> dict[str, Any]:
    if image_set.kind != "coco":
        return {"checked": False, "n_problems": 0, "by_kind": {}, "problems": [], "reason": "no labels (image folder)"}
    problems: list[Problem] = validate_labels(path)
    return {"checked": True, "n_problems": len(problems), "by_kind": summarize_problems(problems),
            "problems": [p.as_dict() for p in problems]}  # fmt: skip


def _privacy(feats: dict[str, np.ndarray], holdout: np.ndarray | None, *, seed: int, n_boot: int, level: float,
             enabled: bool) -> dict[str, Any]:  # fmt: skip
    """The memorisation check of the synthetic features against the real (training) ones."""
    from simgen.validators.privacy import feature_privacy

    if not enabled:
        return {"skipped": "privacy check disabled"}
    if len(feats["real"]) < 3:
        return {"skipped": f"the privacy check needs at least 3 real images, got {len(feats['real'])}"}
    # Its own child of the seed, so the metrics' numbers do not move when privacy is switched on or off.
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(6)[5])
    return feature_privacy(feats["real"], feats["synthetic"], holdout, rng=rng, n_boot=n_boot, level=level)


@dataclass(frozen=True, kw_only=True)
class ValidateConfig:
    """How :func:`validate_datasets` compares two datasets (its keyword arguments, as one object).

    The attributes are :func:`validate_datasets`'s keyword arguments of the same names, with the same defaults.
    """

    extractor: Any = None
    inception_weights: str | Path | None = None
    utility: str = "crops"
    utility_options: dict[str, Any] | None = None
    max_images: int | None = None
    seed: int = 0
    n_boot: int = 50
    level: float = 0.95
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    prdc_k: int = 5
    cache: bool = True
    batch_size: int = 16
    device: str = "cpu"
    check_labels: bool = True
    holdout: str | Path | None = None
    privacy: bool = True


def validate(
    synthetic: str | Path,
    real: str | Path,
    config: ValidateConfig | None = None,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> ValidationReport:
    """:func:`validate_datasets` with its options as one :class:`ValidateConfig`."""
    options = {f: getattr(config, f) for f in ValidateConfig.__dataclass_fields__} if config is not None else {}
    return validate_datasets(synthetic, real, **options, progress=progress)


def validate_datasets(synthetic: str | Path, real: str | Path, *, extractor: Any = None,
                      inception_weights: str | Path | None = None, utility: str = "crops",
                      utility_options: dict[str, Any] | None = None, max_images: int | None = None, seed: int = 0,
                      n_boot: int = 50, level: float = 0.95, kid_subsets: int = 100, kid_subset_size: int = 1000,
                      prdc_k: int = 5, cache: bool = True, batch_size: int = 16, device: str = "cpu",
                      check_labels: bool = True, holdout: str | Path | None = None, privacy: bool = True,
                      progress: Callable[[str, int, int], None] | None = None) -> ValidationReport:  # fmt: skip
    """Compare a synthetic dataset with a real one (:func:`validate` takes the options as a :class:`ValidateConfig`).

    Args:
        synthetic: A simgen dataset folder (or any COCO dataset, or an image folder).
        real: A COCO dataset (folder with ``annotations.coco.json`` or a ``.json`` file) or an image folder.
        extractor: See :func:`resolve_extractor` (default: the offline Inception-v3).
        inception_weights: A weights file for the Inception extractor.
        utility: ``"crops"`` (object-crop classification), ``"detection"`` or ``"none"``.
        utility_options: Keyword arguments for :func:`~simgen.validators.utility.crops_utility` or
            :func:`~simgen.validators.utility.detection_utility`.
        max_images: At most this many images per side (evenly spaced).
        seed: Seed of every random draw.
        n_boot: Bootstrap resamples per metric.
        level: Confidence level of the intervals.
        kid_subsets: KID subsets.
        kid_subset_size: Rows per KID subset.
        prdc_k: PRDC neighbourhood size.
        cache: Use the per-dataset feature cache.
        batch_size: Images per forward pass.
        device: Torch device string.
        check_labels: Run the label validator on each COCO side.
        holdout: Real images the generator never saw (COCO or a folder): the privacy check then compares
            synthetic->real distances with holdout->real ones (DCR share, membership inference) too.
        privacy: Run the memorisation check (exact copies of, and closeness to, the real images' features).
        progress: Called as ``progress(side, done, total)`` while features are extracted.

    Returns:
        The report (write it with :func:`simgen.validators.report.write_report`).

    Raises:
        SimgenError: An unknown utility or extractor, an unreadable dataset, or fewer than :data:`MIN_IMAGES`
            images on a side (after ``max_images``).
    """
    if utility not in UTILITIES:
        raise SimgenError(f"unknown utility {utility!r}{did_you_mean(utility, UTILITIES)}; use {', '.join(UTILITIES)}")
    from simgen.validators.features import compute_features

    timings: dict[str, float] = {}
    warnings: list[str] = []
    t0 = time.perf_counter()
    syn_path, real_path = Path(synthetic), Path(real)
    syn_set = load_image_set(syn_path, max_images=max_images)
    real_set = load_image_set(real_path, max_images=max_images)
    timings["load"] = time.perf_counter() - t0
    # Before any feature is extracted: with fewer images no metric exists, and an empty table would look like a pass.
    _check_sizes(len(syn_set), len(real_set), prdc_k, f"{syn_path} vs {real_path}: ")

    t0 = time.perf_counter()
    if check_labels:
        labels = {"synthetic": _check_labels(syn_set, syn_path), "real": _check_labels(real_set, real_path)}
    else:
        labels = {side: {"checked": False, "n_problems": 0, "by_kind": {}, "problems": [], "reason": "disabled"}
                  for side in ("synthetic", "real")}  # fmt: skip
    timings["labels"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ext = resolve_extractor(extractor, inception_weights=inception_weights, batch_size=batch_size, device=device)
    feats = {}
    for side, image_set in (("synthetic", syn_set), ("real", real_set)):
        done = [0]

        def tick(n: int, side: str = side, total: int = len(image_set), done: list[int] = done) -> None:
            done[0] += n
            if progress is not None:
                progress(side, done[0], total)

        feats[side] = compute_features(image_set, ext, cache=cache, progress=tick)
    holdout_feats = None
    if holdout is not None and privacy:
        holdout_set = load_image_set(Path(holdout), max_images=max_images)
        holdout_feats = compute_features(holdout_set, ext, cache=cache)
    timings["features"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    privacy_result = _privacy(feats, holdout_feats, seed=seed, n_boot=n_boot, level=level, enabled=privacy)
    if privacy_result.get("flagged"):
        warnings += [f"privacy: {f}" for f in privacy_result["flags"]]
    elif "skipped" in privacy_result:
        warnings.append(f"privacy: {privacy_result['skipped']}")
    timings["privacy"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    metrics, more = feature_metrics(
        feats["real"], feats["synthetic"], seed=seed, n_boot=n_boot, level=level, kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size, prdc_k=prdc_k,
    )  # fmt: skip
    warnings += more
    if min(len(syn_set), len(real_set)) < 50:
        warnings.append(f"only {len(syn_set)} synthetic and {len(real_set)} real images: FID is strongly biased "
                        "upward at this size; compare runs of equal size only")  # fmt: skip
    timings["metrics"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    utility_result: dict[str, Any]
    if utility == "none":
        utility_result = {"skipped": "utility disabled (--utility none)"}
    elif syn_set.kind != "coco" or real_set.kind != "coco":
        utility_result = {"skipped": "utility needs COCO labels on both sides (an image folder has none)"}
    else:
        from simgen.validators import utility as util

        opts = {"seed": seed, "device": device, **(utility_options or {})}
        try:
            if utility == "crops":
                utility_result = util.crops_utility(syn_set, real_set, **opts).as_dict()
            else:
                utility_result = util.detection_utility(syn_set, real_set, **opts).as_dict()
        except SimgenError as exc:
            utility_result = {"skipped": str(exc)}
    if "skipped" in utility_result:
        warnings.append(f"utility: {utility_result['skipped']}")
    timings["utility"] = time.perf_counter() - t0

    frames = None
    if syn_set.coco is not None:
        frames = {im.get("frame_index") for im in syn_set.coco["images"] if im.get("frame_index") is not None} or None
    parameters = manifest_parameters(syn_set.root, frames=frames)
    settings = {
        "seed": seed, "n_boot": n_boot, "level": level, "kid_subsets": kid_subsets,
        "kid_subset_size": kid_subset_size, "prdc_k": prdc_k, "max_images": max_images, "utility": utility,
        "resize_policy": "per image, float RGB, antialiased bilinear straight to the extractor's square input",
        "extractor_cache_id": ext.cache_id, "feature_dim": int(feats["real"].shape[1]), "cache": cache,
    }  # fmt: skip
    return ValidationReport(
        synthetic=syn_set.describe(),
        real=real_set.describe(),
        extractor=ext.extractor_id,
        metrics=metrics,
        labels=labels,
        utility=utility_result,
        class_counts={"synthetic": syn_set.class_counts(), "real": real_set.class_counts()},
        parameters=parameters,
        projection=_projection(feats["real"], feats["synthetic"], seed),
        settings=settings,
        privacy=privacy_result,
        timings_s={k: round(v, 3) for k, v in timings.items()},
        warnings=warnings,
        image_sets={"synthetic": syn_set, "real": real_set},
    )
