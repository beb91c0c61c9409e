"""Coverage numbers on a hand-made run, and read back from a COCO file."""

from __future__ import annotations

import json

import pytest

from simgen.labels import annotate
from simgen.scenarios.constraints import ConstraintTally, RejectionStats
from simgen.scenarios.coverage import FrameCoverage, coverage_report, frames_from_coco, level_index, level_names
from simgen.scenarios.design import Design, Domain, cell_record
from simgen.testing.writers import example_buffers
from simgen.writers.coco import frame_record


def test_hand_made_coverage(coverage_domains, coverage_frames):
    stats = RejectionStats(
        {"c1": ConstraintTally(attempts=8, held=4, skipped=1, closest=0, closest_gap=0.0)},
        frames=5,
        attempts=9,
        attempts_hist={1: 3, 2: 1, 3: 1},
    )
    design = Design(
        "full",
        ("light", "clutter", "fov"),
        (
            {"light": "a", "clutter": "x", "fov": 30.0},
            {"light": "b", "clutter": "y", "fov": 60.0},
            {"light": "c", "clutter": "x", "fov": 90.0},
            {"light": "a", "clutter": "y", "fov": 60.0},
        ),
        frames_per_scene=2,
    )
    report = coverage_report(coverage_domains, reversed(coverage_frames), design=design, stats=stats)
    json.dumps(report, allow_nan=False)
    assert report["frames"] == 5
    assert report["cells"]["planned"] == 4 and report["cells"]["covered"] == 3
    assert [(c["index"], c["frames"]) for c in report["cells"]["frames_per_cell"]] == [(0, 2), (1, 1), (2, 2)]
    assert report["levels"] == {
        "light": {"a": 2, "b": 1, "c": 2},
        "clutter": {"x": 4, "y": 1},
        "fov": {"30": 2, "60": 1, "90": 2},
    }
    # pairs: light x clutter 6, light x fov 9, clutter x fov 6 = 21; three cells cover 3 pairs each
    tw = report["t_wise"]
    assert (tw["strength"], tw["covered"], tw["total"]) == (2, 9, 21)
    assert tw["percent"] == pytest.approx(100 * 9 / 21)
    assert tw["design_percent"] == pytest.approx(100 * 11 / 21)  # the 4th cell adds (a,y) and (a,60)
    c1 = report["constraints"]["c1"]
    assert c1["acceptance_rate"] == 0.5 and c1["not_enforced"] == 1 and c1["rejected"] == 4
    assert c1["held_on_frames"] == 4 and c1["enforced_on_frames"] == 4
    assert report["acceptance"] == {
        "frames": 5,
        "attempts": 9,
        "acceptance_rate": 5 / 9,
        "attempts_per_frame": {"1": 3, "2": 1, "3": 1},
    }
    cell0, cell1, cell2 = report["per_cell"]
    assert cell0["objects_per_frame"] == {"n": 2, "mean": 1.5, "min": 1.0, "max": 2.0, "histogram": {"1": 1, "2": 1}}
    assert cell0["visibility"]["counts"] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 1] and cell0["visibility"]["missing"] == 0
    assert cell0["truncation"]["counts"] == [2, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert cell0["brightness"]["mean"] == pytest.approx(0.15)
    assert cell1["objects_per_frame"]["histogram"] == {"0": 1} and sum(cell1["visibility"]["counts"]) == 0
    assert cell2["visibility"]["counts"] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 1] and cell2["visibility"]["missing"] == 1
    assert cell2["truncation"]["counts"] == [2, 0, 1, 0, 0, 0, 0, 0, 0, 1]


def test_ranges_without_steps_are_binned():
    d = Domain("r", (), 0.0, 10.0)
    assert level_names(d, 4) == ["[0, 2.5)", "[2.5, 5)", "[5, 7.5)", "[7.5, 10]"]
    assert [level_index(d, v, 4) for v in (0.0, 2.49, 2.5, 9.99, 10.0)] == [0, 0, 1, 3, 3]
    stepped = Domain("s", (30.0, 60.0, 90.0), 30.0, 90.0)
    assert [level_index(stepped, v) for v in (30.0, 44.0, 46.0, 90.0)] == [0, 0, 1, 2]
    report = coverage_report(
        [d, Domain("k", ("p", "q"))],
        [
            FrameCoverage(0, 0, {"r": 1.0, "k": "p"}),
            FrameCoverage(1, 1, {"r": 9.0, "k": "q"}),
        ],
    )
    assert report["t_wise"]["total"] == 8 and report["t_wise"]["covered"] == 2
    assert report["constraints"] == {} and report["acceptance"] is None
    assert report["per_cell"][0]["objects_per_frame"]["n"] == 0


def test_frames_from_coco(coverage_domains):
    design = Design(
        "full",
        ("light", "clutter", "fov"),
        ({"light": "a", "clutter": "x", "fov": 30.0}, {"light": "b", "clutter": "y", "fov": 60.0}),
        frames_per_scene=1,
    )
    coco = {"categories": [{"id": 1, "name": "box"}, {"id": 2, "name": "can"}], "images": [], "annotations": []}
    for i in range(3):
        buffers = example_buffers(i)
        anns = annotate(buffers)
        rec = frame_record(
            i,
            i,
            f"images/{i}.png",
            anns,
            {"box": 1, "can": 2},
            depth_file=None,
            instance_file=None,
            K=buffers.K,
            T_world_cam=buffers.T_world_cam,
            width=buffers.width,
            height=buffers.height,
        )
        rec["image"]["scenario_cell"] = design.record(i)
        coco["images"].append(rec["image"])
        coco["annotations"] += rec["annotations"]
    coco = json.loads(json.dumps(coco))
    got = frames_from_coco(coco)
    assert [(f.frame_index, f.cell_index) for f in got] == [(0, 0), (1, 1), (2, 0)]
    assert got[1].cell == {"light": "b", "clutter": "y", "fov": 60.0}
    assert [len(f.labels.objects) for f in got] == [5, 5, 5]
    report = coverage_report(coverage_domains, got, design=design)
    assert [c["frames"] for c in report["cells"]["frames_per_cell"]] == [2, 1]
    assert report["per_cell"][0]["objects_per_frame"]["mean"] == 5.0
    del coco["images"][0]["scenario_cell"]
    with pytest.raises(ValueError, match="no scenario_cell"):
        frames_from_coco(coco)
    assert cell_record(3, {"a": 1}) == {"index": 3, "levels": {"a": 1}}
