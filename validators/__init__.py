"""Validators: how far a synthetic dataset is from a real one, and whether it trains models that work on real data.

One core serves every modality: metrics work on feature matrices (:mod:`.functional`, wrapped as
torchmetrics classes in :mod:`.metrics`). Images get their features from :mod:`.features`
(Inception-v3, offline, cached per dataset); TSTR/TRTR utility is in :mod:`.utility`; the label
validator (:mod:`.labels`) and the dataset readers (:mod:`.datasets`) need no torch. Tables
(:mod:`.tables` over :mod:`.tabular`'s metrics) and text (:mod:`.text_report` over :mod:`.text`) get
their own reports; :mod:`.detect` tells which modality a dataset holds, and :mod:`.privacy` serves all
three (Gower distances for rows, feature vectors for images).

Nothing heavy is imported here: ``import simgen.validators`` works without the ``metrics`` extra.
The names below resolve lazily on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "validate_labels": "labels",
    "Problem": "labels",
    "LabelCheckOptions": "labels",
    "load_image_set": "datasets",
    "ImageSet": "datasets",
    "validate_datasets": "pipeline",
    "ValidationReport": "pipeline",
    "feature_metrics": "pipeline",
    "write_report": "report",
    "load_inception": "features",
    "compute_features": "features",
    "FeatureExtractor": "features",
    "quality_report": "tabular",
    "tabular_utility": "tabular",
    "table_privacy": "tabular",
    "gower_encode": "tabular",
    "privacy_metrics": "privacy",
    "nearest_neighbours": "privacy",
    "validate_text": "text",
    "feature_privacy": "privacy",
    "detect_modality": "detect",
    "validate_tables": "tables",
    "TableValidationReport": "tables",
    "validate_text_dataset": "text_report",
    "TextValidationReport": "text_report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simgen.validators' has no attribute {name!r}")
    return getattr(importlib.import_module(f"simgen.validators.{module}"), name)
