"""Shared data of the scenario tests."""

from __future__ import annotations

import pytest

from simgen.scenarios.constraints import ConstraintResult, FrameLabels, ObjectLabel
from simgen.scenarios.coverage import FrameCoverage
from simgen.scenarios.design import Domain


def _object(visibility: float | None, truncation: float) -> ObjectLabel:
    return ObjectLabel("g/0", "mug", frozenset({"g"}), 10, visibility, truncation, 1.0, 1.0, 1.0, 1.0, 1.0)


@pytest.fixture
def coverage_domains() -> list[Domain]:
    """Three factors: 3 named levels, 2 named levels, and a range [30, 90] in 3 steps."""
    return [
        Domain("light", ("a", "b", "c")),
        Domain("clutter", ("x", "y")),
        Domain("fov", (30.0, 60.0, 90.0), 30.0, 90.0),
    ]


@pytest.fixture
def coverage_frames() -> list[FrameCoverage]:
    """Five kept frames in three cells, with hand-picked labels and one constraint's results."""
    cells = [
        {"light": "a", "clutter": "x", "fov": 30.0},
        {"light": "b", "clutter": "y", "fov": 60.0},
        {"light": "c", "clutter": "x", "fov": 90.0},
    ]
    labels = [
        (_object(0.05, 0.0), _object(0.95, 0.5)),
        (_object(0.15, 0.0),),
        (),
        (_object(None, 0.25), _object(0.55, 0.0), _object(0.55, 0.0)),
        (_object(1.0, 1.0),),
    ]
    which = [0, 0, 1, 2, 2]
    ok = [True, True, False, True, True]
    return [
        FrameCoverage(
            i,
            which[i],
            cells[which[i]],
            FrameLabels(8, 8, labels[i], brightness=0.1 * (i + 1)),
            (ConstraintResult("c1", ok[i], 1, enforced=i != 2),),
        )
        for i in range(5)
    ]
