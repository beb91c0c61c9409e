"""Scenario ideation: LLM (or offline combinatorial) proposals, validated, repaired, rendered and criticised.

:func:`ideate` is the library entry point of ``simgen ideate`` (see :mod:`simgen.scenarios.ideation.run`).
Importing this package imports neither the ``anthropic`` SDK nor the engine.
"""

from __future__ import annotations

from simgen.scenarios.ideation.focus import Focus, WeakClass, read_focus
from simgen.scenarios.ideation.library import LIBRARY, OFFLINE_MODEL, offline_proposals
from simgen.scenarios.ideation.probes import ProbeResult, Verdict, VisionVerdict, auto_critic, ks_statistic
from simgen.scenarios.ideation.proposal import (
    ScenarioProposal,
    build_scenario,
    check_proposal,
    proposal_distance,
    proposal_features,
)
from simgen.scenarios.ideation.run import DEFAULT_MODEL, IdeateConfig, IdeationResult, ideate

__all__ = [
    "DEFAULT_MODEL",
    "LIBRARY",
    "OFFLINE_MODEL",
    "Focus",
    "IdeateConfig",
    "IdeationResult",
    "ProbeResult",
    "ScenarioProposal",
    "Verdict",
    "VisionVerdict",
    "WeakClass",
    "auto_critic",
    "build_scenario",
    "check_proposal",
    "ideate",
    "ks_statistic",
    "offline_proposals",
    "proposal_distance",
    "proposal_features",
    "read_focus",
]
