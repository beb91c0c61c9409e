"""Generators for non-image data: learn from real records, sample new ones, save and load the fitted model.

Every generator is registered under a versioned name and resolved lazily, so ``import simgen.generators`` needs
neither pandas nor scikit-learn. Third parties add their own through the entry-point group ``simgen.generators``
(``name = "pkg.module:Class"``).

>>> from simgen.generators import REGISTRY
>>> [n for n in REGISTRY.names() if n.startswith("tabular/")]
['tabular/cart-v1', 'tabular/gaussian-copula-v1', 'tabular/gaussian-copula-v2']
"""

from __future__ import annotations

from simgen.generators.base import FittedModel, Generator, GeneratorError, ModelFileError, load_model, model_digest
from simgen.generators.text import TEXT_GENERATORS
from simgen.registry import Registry

REGISTRY: Registry[Generator] = Registry("generator", group="simgen.generators")

#: The generator ``simgen tabular fit`` uses unless told otherwise: per-class copulas (v1 stays registered, so v1
#: models and outputs stay reproducible).
DEFAULT_TABULAR = "tabular/gaussian-copula-v2"

for _name, _target in {
    "tabular/gaussian-copula-v1": "simgen.generators.tabular.copula:GaussianCopula",
    "tabular/gaussian-copula-v2": "simgen.generators.tabular.mixture:GaussianCopulaMixture",
    "tabular/cart-v1": "simgen.generators.tabular.cart:Cart",
    **TEXT_GENERATORS,
}.items():
    REGISTRY.register(_name, _target)

__all__ = [
    "DEFAULT_TABULAR",
    "REGISTRY",
    "FittedModel",
    "Generator",
    "GeneratorError",
    "ModelFileError",
    "load_model",
    "model_digest",
]
