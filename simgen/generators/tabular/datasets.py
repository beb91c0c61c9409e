"""Real tables bundled with scikit-learn and statsmodels (no download), for tests and benchmarks.

Each comes as a table the way a user's CSV would hold it (class labels as names, coded levels as categories)
and the name of its target column:

- scikit-learn: ``breast_cancer`` (diagnosis), ``wine`` (cultivar), ``diabetes`` (disease progression, a number),
  ``digits`` (8x8 pixel counts, the digit as a category);
- statsmodels, with categorical columns: ``fair`` (Fair's 1978 affairs survey: whether any affair, marriage rating,
  religiousness, occupations) and ``anes96`` (1996 US election survey: the vote, party identification, education,
  income, ideology scales).

>>> from simgen.generators.tabular.datasets import load_bundled
>>> table, target = load_bundled("wine")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from simgen.errors import DependencyMissing, SimgenError, did_you_mean

__all__ = ["BUNDLED", "available", "load_bundled"]

_PARTIES = ["strong dem", "weak dem", "indep dem", "indep", "indep rep", "weak rep", "strong rep"]


def _sklearn_labelled(loader: str, label: str) -> Callable[[], tuple[Any, str]]:
    def load() -> tuple[Any, str]:
        from sklearn import datasets

        data = getattr(datasets, loader)(as_frame=True)
        frame = data.frame.drop(columns="target")
        frame[label] = np.asarray(data.target_names)[data.target.to_numpy()]  # the class by name, as a CSV holds it
        return frame, label

    return load


def _diabetes() -> tuple[Any, str]:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True, scaled=False).frame, "target"


def _digits() -> tuple[Any, str]:
    from sklearn.datasets import load_digits

    digits = load_digits(as_frame=True)
    table = digits.frame.drop(columns="target")
    table["digit"] = digits.target.astype(str).to_numpy()
    return table, "digit"


def _fair() -> tuple[Any, str]:
    from statsmodels.datasets import fair

    table = fair.load_pandas().data
    table["affair"] = np.where(table.pop("affairs") > 0, "yes", "no")
    for col in ("rate_marriage", "religious", "occupation", "occupation_husb"):
        table[col] = table[col].astype(int).astype(str)  # coded levels: categories, not numbers
    return table, "affair"


def _anes96() -> tuple[Any, str]:
    from statsmodels.datasets import anes96

    table = anes96.load_pandas().data.drop(columns="logpopul")  # log(popul + 0.1): a copy of another column
    table["vote"] = np.where(table["vote"] > 0, "dole", "clinton")
    table["PID"] = np.asarray(_PARTIES)[table["PID"].astype(int).to_numpy()]
    return table, "vote"


#: name -> (the package that bundles it, a loader returning (table, target column)).
BUNDLED: dict[str, tuple[str, Callable[[], tuple[Any, str]]]] = {
    "breast_cancer": ("sklearn", _sklearn_labelled("load_breast_cancer", "diagnosis")),
    "wine": ("sklearn", _sklearn_labelled("load_wine", "cultivar")),
    "diabetes": ("sklearn", _diabetes),
    "digits": ("sklearn", _digits),
    "fair": ("statsmodels", _fair),
    "anes96": ("statsmodels", _anes96),
}

_EXTRA = {"sklearn": ("scikit-learn", "tabular"), "statsmodels": ("statsmodels", "dev")}


def available(name: str) -> bool:
    """Whether the package that bundles ``name`` is installed."""
    return name in BUNDLED and importlib.util.find_spec(BUNDLED[name][0]) is not None


def load_bundled(name: str) -> tuple[Any, str]:
    """A bundled real table (a pandas DataFrame) and the name of its target column.

    Raises:
        SimgenError: An unknown name, with a "did you mean".
        DependencyMissing: The package that bundles it is not installed.
    """
    if name not in BUNDLED:
        raise SimgenError(f"no bundled table '{name}'{did_you_mean(name, BUNDLED)}; tables: {', '.join(BUNDLED)}")
    module, loader = BUNDLED[name]
    if importlib.util.find_spec(module) is None:
        package, extra = _EXTRA[module]
        raise DependencyMissing(package, extra, f"the bundled table '{name}'")
    return loader()
