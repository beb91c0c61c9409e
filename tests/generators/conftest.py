"""Real tables bundled with scikit-learn (no download), and a small table with every column type."""

from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")


def _labelled(loader, label: str):
    data = loader(as_frame=True)
    frame = data.frame.drop(columns="target")
    # The class as its real name (a string category), as a user's CSV would hold it.
    frame[label] = np.asarray(data.target_names)[data.target.to_numpy()]
    return frame


@pytest.fixture(scope="session")
def breast_cancer():
    """569 tumours x 30 real measurements, and the diagnosis (malignant/benign) as a category."""
    from sklearn.datasets import load_breast_cancer

    return _labelled(load_breast_cancer, "diagnosis")


@pytest.fixture(scope="session")
def wine():
    """178 wines x 13 real measurements, and the cultivar (class_0/1/2) as a category."""
    from sklearn.datasets import load_wine

    return _labelled(load_wine, "cultivar")


@pytest.fixture(scope="session")
def diabetes():
    """442 patients, unscaled: age, sex (1/2: a category by SDV's rule), 8 measurements, disease progression."""
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True, scaled=False).frame


@pytest.fixture
def mixed_table():
    """200 rows with every column type: an id, integers, money, a boolean, a category, dates, missing values."""
    rng = np.random.default_rng(7)
    n = 200
    return pd.DataFrame(
        {
            "customer_id": [f"CUST-{i:05d}" for i in range(n)],
            "age": rng.integers(18, 90, n),
            "income": np.round(rng.lognormal(10, 0.5, n), 2),
            "member": rng.random(n) < 0.3,
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1]),
            "joined": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D"),
            "score": np.where(rng.random(n) < 0.1, np.nan, np.round(rng.normal(50, 10, n), 1)),
        }
    )
