"""Tabular generators: metadata inference, ``tabular/gaussian-copula-v1`` and ``tabular/cart-v1``.

Needs the ``tabular`` extra (pandas, pyarrow, scipy, scikit-learn). The names below resolve lazily.

>>> import numpy as np
>>> from simgen.generators.tabular import GaussianCopula, infer_metadata, read_table
>>> table = read_table("real.csv")                                       # doctest: +SKIP
>>> meta = infer_metadata(table, "overrides.yaml")                       # doctest: +SKIP
>>> model = GaussianCopula().fit(table, meta, np.random.default_rng(0))  # doctest: +SKIP
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
    "Cart": "cart",
    "CartModel": "cart",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simgen.generators.tabular' has no attribute {name!r}")
    return getattr(importlib.import_module(f"simgen.generators.tabular.{module}"), name)
