"""torchmetrics Metric classes: state through add_state, update/compute/reset, injected feature modules."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
pytest.importorskip("torchmetrics")

from torchmetrics import Metric  # noqa: E402

from simgen.validators import functional as F  # noqa: E402
from simgen.validators.metrics import (  # noqa: E402
    FrechetDistance,
    KernelDistance,
    MaximumMeanDiscrepancy,
    PrecisionRecallDensityCoverage,
)


@pytest.fixture
def sets() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(60, 6)), rng.normal(size=(50, 6)) + 0.4


def _feed(metric: Metric, real: np.ndarray, fake: np.ndarray, batch: int = 16) -> Metric:
    for i in range(0, len(real), batch):
        metric.update(torch.from_numpy(real[i : i + batch]), real=True)
    for i in range(0, len(fake), batch):
        metric.update(torch.from_numpy(fake[i : i + batch]), real=False)
    return metric


def test_metrics_follow_the_torchmetrics_contract_and_match_the_functions(sets):
    real, fake = sets
    fid = _feed(FrechetDistance(), real, fake)
    assert isinstance(fid, Metric) and fid.higher_is_better is False
    assert "real_features" in fid._defaults and "fake_features" in fid._defaults
    assert float(fid.compute()) == pytest.approx(F.fid(real, fake))
    mmd = _feed(MaximumMeanDiscrepancy(), real, fake)
    assert float(mmd.compute()) == pytest.approx(F.mmd_rbf(real, fake))
    prdc = _feed(PrecisionRecallDensityCoverage(k=3), real, fake)
    assert prdc.higher_is_better is True
    assert {k: float(v) for k, v in prdc.compute().items()} == pytest.approx(F.prdc(real, fake, k=3))
    fid.reset()
    with pytest.warns(UserWarning, match="before the ``update``"), pytest.raises(RuntimeError, match="at least one"):
        fid.compute()


def test_kid_metric_is_seeded(sets):
    real, fake = sets
    a = _feed(KernelDistance(subsets=10, subset_size=20, seed=3), real, fake).compute()
    b = _feed(KernelDistance(subsets=10, subset_size=20, seed=3), real, fake).compute()
    c = _feed(KernelDistance(subsets=10, subset_size=20, seed=4), real, fake).compute()
    assert float(a[0]) == float(b[0]) and float(a[1]) == float(b[1])
    assert float(a[0]) != float(c[0])
    expected = F.kid(real, fake, rng=np.random.default_rng(3), subsets=10, subset_size=20)
    assert (float(a[0]), float(a[1])) == pytest.approx(expected)
    with pytest.raises(ValueError, match="subset_size must be >= 2"):
        KernelDistance(subset_size=1)


def test_an_injected_feature_module_and_bootstrap_intervals(sets):
    real, fake = sets
    proj = torch.nn.Linear(6, 3).double()
    metric = _feed(FrechetDistance(feature=proj), real, fake)
    with torch.no_grad():
        rf, ff = proj(torch.from_numpy(real)).numpy(), proj(torch.from_numpy(fake)).numpy()
    assert float(metric.compute()) == pytest.approx(F.fid(rf, ff))
    ci = metric.compute_with_ci(n_boot=20, seed=1)
    assert ci.low <= ci.value <= ci.high and ci == metric.compute_with_ci(n_boot=20, seed=1)
    prdc = _feed(PrecisionRecallDensityCoverage(k=3), real, fake).compute_with_ci(n_boot=30)
    assert set(prdc) == {"precision", "recall", "density", "coverage"}
    with pytest.raises(TypeError, match="nn.Module or None"):
        FrechetDistance(feature="inception")  # type: ignore[arg-type]


@pytest.mark.parametrize(("n", "subsets", "size"), [(300, 4, 20), (120, 30, 100)], ids=["per-subset", "blocked"])
def test_kid_agrees_with_torchmetrics_on_the_same_subsets(n, subsets, size):
    """torchmetrics' own KernelInceptionDistance, its subsets replayed from the torch seed, to 1e-7."""
    from torchmetrics.image.kid import KernelInceptionDistance

    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(n, 24)), rng.normal(size=(n + 7, 24)) * 1.1 + 0.2
    reference = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=subsets, subset_size=size)
    reference.update(torch.from_numpy(real), real=True)
    reference.update(torch.from_numpy(fake), real=False)
    torch.manual_seed(11)
    ref_mean, ref_std = (float(v) for v in reference.compute())
    torch.manual_seed(11)  # the same randperm calls as its compute(): real, then fake, per subset
    perms = [
        (torch.randperm(len(real))[:size].numpy(), torch.randperm(len(fake))[:size].numpy()) for _ in range(subsets)
    ]
    values = F.kid_subset_values(real, fake, np.stack([a for a, _ in perms]), np.stack([b for _, b in perms]))
    assert float(values.mean()) == pytest.approx(ref_mean, abs=1e-7, rel=0)
    assert float(values.std()) == pytest.approx(ref_std, abs=1e-7, rel=0)
    # The full sets as one subset: no randomness left, so KernelDistance itself must give torchmetrics' value.
    whole = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=1, subset_size=n)
    whole.update(torch.from_numpy(real), real=True)
    whole.update(torch.from_numpy(fake[:n]), real=False)
    ours = _feed(KernelDistance(subsets=1, subset_size=n), real, fake[:n]).compute()
    assert float(ours[0]) == pytest.approx(float(whole.compute()[0]), abs=1e-7, rel=0)
