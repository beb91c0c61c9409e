"""Tabular generators: metadata inference, the copulas (v2, the default, per class; v1), CART, bundled tables.

``tabular/gaussian-copula-v2`` fits one Gaussian copula per class of a categorical column,
``tabular/gaussian-copula-v1`` one copula for the whole table, ``tabular/cart-v1`` sequential CART; real tables
bundled with scikit-learn and statsmodels serve tests and benchmarks (:mod:`.datasets`).

Needs the ``tabular`` extra (pandas, pyarrow, scipy, scikit-learn). The names below resolve lazily.

>>> import numpy as np
>>> from simgen.generators.tabular import GaussianCopulaMixture, infer_metadata, read_table
>>> table = read_table("real.csv")                                       # doctest: +SKIP
>>> meta = infer_metadata(table, "overrides.yaml")                       # doctest: +SKIP
>>> model = GaussianCopulaMixture().fit(table, meta, np.random.default_rng(0))  # doctest: +SKIP
>>> rows = model.sample(1000, np.random.default_rng(1), conditions={"label": 1})  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Column": "metadata",
    "MetadataError": "metadata",
    "TableMetadata": "metadata",
    "decode_table": "metadata",
    "encode_table": "metadata",
    "infer_metadata": "metadata",
    "read_table": "metadata",
    "ConditionError": "model",
    "TabularModel": "model",
    "GaussianCopula": "copula",
    "GaussianCopulaModel": "copula",
    "GaussianCopulaMixture": "mixture",
    "GaussianCopulaMixtureModel": "mixture",
    "load_bundled": "datasets",
    "Cart": "cart",
    "CartModel": "cart",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simgen.generators.tabular' has no attribute {name!r}")
    return getattr(importlib.import_module(f"simgen.generators.tabular.{module}"), name)
