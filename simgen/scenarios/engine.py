"""What the image engine needs of a scenario while it runs: its source for the workers, and its manifest records.

A scenario run keeps, in each frame's manifest line, its cell and (with ``require``) every attempt's results,
so the run's :class:`~simgen.scenarios.constraints.RejectionStats` are rebuilt from ``manifest.jsonl`` alone:
a resumed run, whose finished shards did not run again, reports the same acceptance rates as one run straight
through, whatever the workers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simgen.scenarios.constraints import ConstraintResult, ConstraintTally, RejectionStats
from simgen.scenarios.loader import LoadedScenario, load_scenario
from simgen.scenarios.models import SECTIONS

__all__ = [
    "ScenarioSource",
    "attempts_json",
    "is_scenario",
    "rejection_from_manifest",
    "results_from_json",
]


def is_scenario(data: Mapping[str, Any]) -> bool:
    """Whether a spec file's mapping has scenario sections (``factors``, ``design``, ``require``, ``timeline``)."""
    return any(key in data for key in SECTIONS)


@dataclass(frozen=True)
class ScenarioSource:
    """What a worker needs to reload a scenario: picklable, small.

    Attributes:
        data: The whole scenario mapping (spec fields and scenario sections).
        base_dir: Folder for relative asset paths.
        roots: Extra asset roots.
        source: The file it came from, for messages.
    """

    data: dict[str, Any]
    base_dir: str | None
    roots: tuple[str, ...]
    source: str | None = None

    def load(self, *, check_assets: bool = False) -> LoadedScenario:
        """Validate again in this process and return the loaded scenario (its ``source`` is the file)."""
        scenario = load_scenario(self.data, base_dir=self.base_dir, asset_roots=self.roots, check_assets=check_assets)
        if self.source is not None:
            scenario.source = Path(self.source)
            scenario.base.source = Path(self.source)
        return scenario


def _gap(value: float) -> float | None:
    return value if math.isfinite(value) else None


def attempts_json(log: Sequence[Sequence[ConstraintResult]]) -> list[list[list[Any]]]:
    """Every attempt's results, compactly: ``[[ok, value, enforced, gap], ...]`` per attempt, constraints in order."""
    return [[[r.ok, r.value, r.enforced, _gap(r.gap)] for r in results] for results in log]


def results_from_json(names: Sequence[str], attempt: Sequence[Sequence[Any]]) -> list[ConstraintResult]:
    """The inverse of one attempt of :func:`attempts_json`."""
    return [
        ConstraintResult(name, bool(ok), value, bool(enforced), math.inf if gap is None else float(gap))
        for name, (ok, value, enforced, gap) in zip(names, attempt, strict=True)
    ]


def rejection_from_manifest(manifest: Path, names: Sequence[str]) -> RejectionStats:
    """The run's rejection statistics, from the ``require.attempts`` of every line of ``manifest.jsonl``."""
    stats = RejectionStats({name: ConstraintTally() for name in names})
    with manifest.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            require = json.loads(line).get("require")
            if require:
                stats.add_log([results_from_json(names, a) for a in require["attempts"]])
    return stats
