"""torchmetrics ``Metric`` classes over feature sets; the maths is in :mod:`simgen.validators.functional`.

Each metric keeps two list states (real and synthetic features) through ``add_state``, so
``update``/``compute``/``reset`` and distributed ``cat`` reduction behave like torchmetrics' own
FID and KID. ``feature`` is any ``nn.Module`` mapping a batch to (N, D) features (for instance
``load_inception().as_module()``, or a tiny network in tests); with ``feature=None`` the inputs to
``update`` are features already, which is how tabular and text data plug in.

Importing this module needs torch and torchmetrics (the ``metrics`` extra).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simgen.errors import DependencyMissing

try:
    import torch
    from torch import Tensor, nn
    from torchmetrics import Metric
    from torchmetrics.utilities import dim_zero_cat
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise DependencyMissing(getattr(exc, "name", None) or "torch", "metrics", "simgen.validators.metrics") from exc

from simgen.validators import functional as Fn

__all__ = [
    "FeatureSetMetric",
    "FrechetDistance",
    "KernelDistance",
    "MaximumMeanDiscrepancy",
    "PrecisionRecallDensityCoverage",
]


class FeatureSetMetric(Metric):
    """Base class: collects real and synthetic features; subclasses define :meth:`statistic`.

    Args:
        feature: Module mapping inputs to (N, D) features, or None when inputs are features.
        **kwargs: Passed to ``torchmetrics.Metric``.
    """

    is_differentiable = False
    full_state_update = False
    real_features: list[Tensor]
    fake_features: list[Tensor]

    def __init__(self, feature: nn.Module | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if feature is not None and not isinstance(feature, nn.Module):
            raise TypeError(f"feature must be an nn.Module or None, got {type(feature).__name__}")
        self.feature = feature.eval() if feature is not None else None
        self.add_state("real_features", default=[], dist_reduce_fx="cat")
        self.add_state("fake_features", default=[], dist_reduce_fx="cat")

    def update(self, x: Tensor, real: bool) -> None:
        """Add a batch to the real (``real=True``) or synthetic set.

        Args:
            x: Images for ``feature``, or (N, D) features when ``feature`` is None.
            real: Which set the batch belongs to.
        """
        if self.feature is not None:
            with torch.inference_mode():
                x = self.feature(x)
            x = x[0] if isinstance(x, tuple | list) else x
        if x.ndim != 2:
            x = x.reshape(x.shape[0], -1)
        (self.real_features if real else self.fake_features).append(x.detach().to(torch.float64).clone())

    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """The collected ``(real, fake)`` features as float64 numpy arrays."""
        if not self.real_features or not self.fake_features:
            raise RuntimeError(f"{type(self).__name__}.compute() needs at least one real and one synthetic update")
        real = dim_zero_cat(self.real_features).cpu().numpy()
        fake = dim_zero_cat(self.fake_features).cpu().numpy()
        return real, fake

    def statistic(self, real: np.ndarray, fake: np.ndarray) -> Any:
        """The metric on two feature matrices (pure; overridden by subclasses)."""
        raise NotImplementedError

    def compute(self) -> Any:
        """The metric on everything collected since the last ``reset``."""
        return _to_tensor(self.statistic(*self.features()))

    def compute_with_ci(self, *, n_boot: int = 100, level: float = 0.95, seed: int = 0) -> Any:
        """The metric with a percentile bootstrap interval, resampling with ``default_rng(seed)``.

        Returns:
            A :class:`~simgen.validators.functional.BootstrapResult` (a dict of them for PRDC).
        """
        real, fake = self.features()
        return Fn.bootstrap_ci(self.statistic, real, fake, rng=np.random.default_rng(seed), n_boot=n_boot, level=level)


def _to_tensor(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_tensor(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_to_tensor(v) for v in value)
    return torch.tensor(float(value), dtype=torch.float64)


class FrechetDistance(FeatureSetMetric):
    """Fréchet distance between Gaussians fitted to the two feature sets (FID with Inception features)."""

    higher_is_better = False

    def statistic(self, real: np.ndarray, fake: np.ndarray) -> float:
        """See :func:`simgen.validators.functional.fid`."""
        return Fn.fid(real, fake)

    def compute_with_ci(self, *, n_boot: int = 100, level: float = 0.95, seed: int = 0) -> Fn.BootstrapResult:
        """FID with a recentred percentile interval (resamples with duplicates inflate FID; see ``bootstrap_ci``)."""
        real, fake = self.features()
        return Fn.bootstrap_ci(self.statistic, real, fake, rng=np.random.default_rng(seed), n_boot=n_boot,
                               level=level, recentre=True)  # fmt: skip


class KernelDistance(FeatureSetMetric):
    """Kernel (Inception) distance: unbiased polynomial MMD² over seeded random subsets.

    ``compute()`` returns ``(mean, std)`` like torchmetrics' KID. The subsets are drawn from
    ``numpy.random.default_rng(seed)`` afresh at every ``compute``, so the value is reproducible.

    Args:
        feature: See :class:`FeatureSetMetric`.
        subsets: Number of subsets.
        subset_size: Rows per subset (capped at the smaller set).
        degree: Polynomial degree.
        gamma: Kernel scale (``1/d`` when None).
        coef0: Kernel offset.
        seed: Seed of the subset draws.
        **kwargs: Passed to ``torchmetrics.Metric``.
    """

    higher_is_better = False

    def __init__(self, feature: nn.Module | None = None, *, subsets: int = 100, subset_size: int = 1000,
                 degree: int = 3, gamma: float | None = None, coef0: float = 1.0, seed: int = 0,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(feature, **kwargs)
        if subsets < 1:
            raise ValueError(f"subsets must be >= 1, got {subsets}")
        if subset_size < 2:
            raise ValueError(f"subset_size must be >= 2, got {subset_size}")
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed
        self.kernel = {"degree": degree, "gamma": gamma, "coef0": coef0}

    def statistic(self, real: np.ndarray, fake: np.ndarray, rng: np.random.Generator | None = None) -> float:
        """The mean subset MMD² (the bootstrap uses this; ``compute`` also reports the std)."""
        return self._kid(real, fake, rng)[0]

    def _kid(self, real: np.ndarray, fake: np.ndarray, rng: np.random.Generator | None) -> tuple[float, float]:
        rng = np.random.default_rng(self.seed) if rng is None else rng
        return Fn.kid(real, fake, rng=rng, subsets=self.subsets, subset_size=self.subset_size, **self.kernel)

    def compute(self) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` of the subset estimates."""
        return _to_tensor(self._kid(*self.features(), None))

    def compute_with_ci(self, *, n_boot: int = 100, level: float = 0.95, seed: int = 0) -> Fn.BootstrapResult:
        """KID with a bootstrap interval (duplicate-aware; see ``functional.kid_bootstrap``)."""
        if self.kernel != {"degree": 3, "gamma": None, "coef0": 1.0}:
            raise NotImplementedError("compute_with_ci supports KID's default kernel only")
        real, fake = self.features()
        return Fn.kid_bootstrap(real, fake, rng=np.random.default_rng(seed), n_boot=n_boot, level=level,
                                subsets=self.subsets, subset_size=self.subset_size)[0]  # fmt: skip


class MaximumMeanDiscrepancy(FeatureSetMetric):
    """Unbiased MMD² with an RBF kernel (median-heuristic bandwidth unless ``bandwidth`` is given)."""

    higher_is_better = False

    def __init__(self, feature: nn.Module | None = None, *, bandwidth: float | None = None, **kwargs: Any) -> None:
        super().__init__(feature, **kwargs)
        self.bandwidth = bandwidth

    def statistic(self, real: np.ndarray, fake: np.ndarray) -> float:
        """See :func:`simgen.validators.functional.mmd_rbf`."""
        return Fn.mmd_rbf(real, fake, bandwidth=self.bandwidth)

    def compute_with_ci(self, *, n_boot: int = 100, level: float = 0.95, seed: int = 0) -> Fn.BootstrapResult:
        """MMD² with a duplicate-aware bootstrap interval (see ``functional.mmd_rbf_bootstrap``)."""
        real, fake = self.features()
        return Fn.mmd_rbf_bootstrap(real, fake, rng=np.random.default_rng(seed), n_boot=n_boot, level=level,
                                    bandwidth=self.bandwidth)[0]  # fmt: skip


class PrecisionRecallDensityCoverage(FeatureSetMetric):
    """Precision, recall, density and coverage (Naeem et al. 2020); ``compute`` returns a dict."""

    higher_is_better = True

    def __init__(self, feature: nn.Module | None = None, *, k: int = 5, **kwargs: Any) -> None:
        super().__init__(feature, **kwargs)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k

    def statistic(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        """See :func:`simgen.validators.functional.prdc`."""
        return Fn.prdc(real, fake, k=self.k)

    def compute_with_ci(self, *, n_boot: int = 100, level: float = 0.95, seed: int = 0) -> Any:
        """PRDC with bootstrap intervals over the evaluated samples (balls fixed; see ``prdc_bootstrap``)."""
        real, fake = self.features()
        d = Fn.pairwise_distances
        return Fn.prdc_bootstrap(d(real, real), d(fake, fake), d(real, fake), k=self.k,
                                 rng=np.random.default_rng(seed), n_boot=n_boot, level=level)  # fmt: skip
