"""``simgen tune``: tune a spec's randomizers against a small labeled real set, and say which ones help.

The search (Optuna TPE, stored in ``study.db`` and resumable) switches each randomizer of the spec on or
off and moves the numbers of its ranges inside their declared bounds, scoring each candidate by the
TSTR of the validators' crop probe on the tuning part of the real set. A leave-one-out ablation then
attributes the best spec's score to its randomizers, and the original and tuned specs are compared on
a held-out part the search never read. See :mod:`simgen.tune.study`.

Nothing heavy is imported here; names resolve on first access. Needs the ``tune`` extra (optuna) and
the ``metrics`` extra (torch, scikit-learn).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "tune": "study",
    "Tuner": "study",
    "TuneConfig": "study",
    "TuneResult": "study",
    "Effect": "study",
    "SearchSpace": "space",
    "build_space": "space",
    "RealSplit": "split",
    "split_real": "split",
    "MIN_IMAGES": "split",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simgen.tune' has no attribute {name!r}")
    return getattr(importlib.import_module(f"simgen.tune.{module}"), name)
