"""Scenarios: a scene spec plus factors and a design, constraints on the rendered labels, and a timeline.

The pure core, which the engine calls:

- :func:`load_scenario` -> :class:`LoadedScenario` (validated sections, every level's spec validated);
- :meth:`LoadedScenario.design` -> :class:`Design` (cells, and ``assign(frame_index)``, per scene);
- :meth:`LoadedScenario.cell_spec` -> the spec a cell's scenes are built from;
- :func:`evaluate` of the ``require`` constraints on :class:`FrameLabels`, built by
  :func:`frame_labels_from_annotations` (while rendering) or :func:`frame_labels_from_coco` (from disk);
- :class:`RejectionStats` and :func:`coverage_report` for the manifest, ``dataset.json`` and ``coverage.json``.
"""

from __future__ import annotations

from simgen.scenarios.constraints import (
    ConstraintResult,
    FrameLabels,
    ObjectLabel,
    RejectionStats,
    RequireUnmet,
    accepted,
    attempt_seed,
    enforcement,
    evaluate,
    frame_labels_from_annotations,
    frame_labels_from_coco,
    frame_require_rng,
    group_tags,
    needs,
    run_attempts,
    unmet_error,
)
from simgen.scenarios.coverage import FrameCoverage, coverage_report, frames_from_coco
from simgen.scenarios.design import Design, Domain, build_design, cell_record, covering_array, tuples_covered
from simgen.scenarios.loader import FactorDef, LoadedScenario, load_scenario, split_scenario
from simgen.scenarios.models import Constraint, DesignSpec, Factor, Require, ScenarioSections, Timeline
from simgen.scenarios.patches import apply_patch, parse_key, resolve_patch

__all__ = [
    "Constraint",
    "ConstraintResult",
    "Design",
    "DesignSpec",
    "Domain",
    "Factor",
    "FactorDef",
    "FrameCoverage",
    "FrameLabels",
    "LoadedScenario",
    "ObjectLabel",
    "RejectionStats",
    "Require",
    "RequireUnmet",
    "ScenarioSections",
    "Timeline",
    "accepted",
    "apply_patch",
    "attempt_seed",
    "build_design",
    "cell_record",
    "coverage_report",
    "covering_array",
    "enforcement",
    "evaluate",
    "frame_labels_from_annotations",
    "frame_labels_from_coco",
    "frame_require_rng",
    "frames_from_coco",
    "group_tags",
    "load_scenario",
    "needs",
    "parse_key",
    "resolve_patch",
    "run_attempts",
    "split_scenario",
    "tuples_covered",
    "unmet_error",
]
