"""Constraints on labels: the closed vocabulary, soft constraints, rejection bookkeeping, and labels read
from the engine's annotations and from the COCO it writes (the same values both ways)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from simgen.errors import SpecError
from simgen.labels import annotate
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
    luma_stats,
    needs,
    run_attempts,
)
from simgen.scenarios.models import Constraint, Require
from simgen.testing.writers import example_buffers
from simgen.writers.coco import frame_record


def obj(uid="clutter/0", category="mug", **kw) -> ObjectLabel:
    values = dict(
        visible_px=100,
        visibility=0.5,
        truncation=0.0,
        box_w=10.0,
        box_h=10.0,
        box_area=100.0,
        distance=1.0,
        border_distance=20.0,
    )
    values.update(kw)
    tags = frozenset({uid.split("/")[0], *values.pop("tags", ())})
    return ObjectLabel(uid=uid, category=category, tags=tags, **values)


LABELS = FrameLabels(
    width=128,
    height=96,
    objects=(
        obj("clutter/0", "mug", visibility=0.2, visible_px=300, distance=0.8),
        obj("clutter/1", "mug", visibility=0.9, visible_px=50, truncation=0.4, border_distance=0.0),
        obj("clutter/2", "duck", visibility=0.6, visible_px=10, distance=2.5, tags=("toy",)),
        obj("hero/0", "mug", visibility=0.25, visible_px=0, box_w=0, box_h=0, box_area=0, border_distance=None),
    ),
    brightness=0.4,
    contrast=0.1,
)


def check(constraint: dict, labels: FrameLabels = LABELS) -> ConstraintResult:
    [result] = evaluate([Constraint(**constraint)], labels, np.random.default_rng(0))
    return result


@pytest.mark.parametrize(
    ("constraint", "value", "ok"),
    [
        ({"select": {"category": "mug"}, "ge": 3}, 3, True),
        ({"select": {"category": "mug", "visibility": {"le": 0.3}}, "ge": 1}, 2, True),
        ({"select": {"category": ["mug", "duck"], "visible_px": {"gt": 0}}, "eq": 3}, 3, True),
        ({"select": {"tag": "toy"}, "ge": 1}, 1, True),
        ({"select": {"tag": "hero"}, "ge": 2}, 1, False),
        ({"select": {"truncation": {"ge": 0.3}}, "ge": 1}, 1, True),
        ({"select": {"distance": {"ge": 2.0}}, "eq": 1}, 1, True),
        ({"select": {"border_distance": {"lt": 5}}, "ge": 1}, 1, True),  # the object without a box is left out
        ({"select": {"box_area": {"ge": 50}}, "ge": 4}, 3, False),
        ({"stat": "min", "of": "visibility", "select": {"category": "mug"}, "le": 0.3}, 0.2, True),
        ({"stat": "max", "of": "truncation", "lt": 0.4}, 0.4, False),
        ({"stat": "mean", "of": "visible_px", "ge": 90, "le": 90}, 90.0, True),
        ({"stat": "min", "of": "border_distance", "ge": 0}, 0.0, True),
        ({"stat": "min", "of": "visibility", "select": {"category": "cup"}, "ge": 0}, None, False),
        ({"stat": "brightness", "ge": 0.3, "le": 0.5}, 0.4, True),
        ({"stat": "contrast", "gt": 0.2}, 0.1, False),
    ],
)
def test_statistics_and_comparisons(constraint, value, ok):
    result = check({"name": "c", **constraint})
    assert result.value == pytest.approx(value) if value is not None else result.value is None
    assert result.ok is ok and result.enforced and result.passed is ok


def test_gap_measures_how_far_a_value_is():
    assert check({"name": "c", "select": {"category": "mug"}, "ge": 5}).gap == 2
    assert check({"name": "c", "stat": "brightness", "le": 0.25}).gap == pytest.approx(0.15)
    assert check({"name": "c", "stat": "min", "of": "distance", "select": {"category": "cup"}, "le": 1}).gap == math.inf


@pytest.mark.parametrize(
    ("constraint", "message"),
    [
        ({"name": "c"}, "needs a comparison"),
        ({"name": "c", "ge": 2, "le": 1}, "can never all hold"),
        ({"name": "c", "stat": "mean", "ge": 1}, "needs 'of'"),
        ({"name": "c", "of": "distance", "ge": 1}, "'of' applies to min, max and mean"),
        ({"name": "c", "stat": "brightness", "select": {"category": "mug"}, "ge": 0}, "takes no 'select'"),
        ({"name": "c", "stat": "median", "of": "distance", "ge": 1}, "stat"),
        ({"name": "c", "ge": "1"}, "ge"),
        ({"name": "c", "ge": True}, "ge"),
        ({"name": "c", "ge": 1, "probability": 0}, "probability"),
        ({"name": "c", "ge": 1, "expr": "__import__('os')"}, "expr"),
        ({"name": "c d", "ge": 1}, "name"),
    ],
)
def test_the_vocabulary_is_closed(constraint, message):
    with pytest.raises(ValidationError, match=message):
        Constraint(**constraint)


def test_missing_visibility_or_image_is_an_error_not_a_pass():
    labels = FrameLabels(10, 10, (obj(visibility=None),))
    with pytest.raises(SpecError, match="labels.visibility: true") as exc:
        check({"name": "c", "select": {"visibility": {"le": 0.5}}, "ge": 0}, labels)
    assert exc.value.path == "require[0].select.visibility"
    with pytest.raises(SpecError, match="needs the frame's image"):
        check({"name": "c", "stat": "contrast", "ge": 0}, labels)


def test_needs():
    cs = [Constraint(name="a", select={"visibility": {"le": 0.3}}, ge=1), Constraint(name="b", stat="brightness", ge=0)]
    assert needs(cs) == {"objects": True, "visibility": True, "rgb": True}
    assert needs(cs[1:]) == {"objects": False, "visibility": False, "rgb": True}


def test_soft_constraints_are_enforced_on_a_share_p_of_frames_decided_per_frame():
    cs = [
        Constraint(name="hard", ge=0),
        Constraint(name="soft", ge=1, probability=0.3),
        Constraint(name="softer", ge=1, probability=0.7),
    ]
    masks = [enforcement(cs, frame_require_rng(42, i)) for i in range(2000)]
    assert all(m[0] for m in masks)
    # seeded, so exact counts; each within 2 binomial standard deviations of p * n
    assert sum(m[1] for m in masks) == 600  # 0.3 * 2000 = 600 expected, sd 20.5
    assert sum(m[2] for m in masks) == 1422  # 0.7 * 2000 = 1400 expected, sd 20.5
    # every attempt at a frame enforces the same constraints
    assert all(enforcement(cs, frame_require_rng(42, i)) == masks[i] for i in range(50))
    # a soft constraint that fails lets a frame through exactly when it is not enforced
    empty = FrameLabels(10, 10, ())
    results = [evaluate(cs, empty, frame_require_rng(42, i)) for i in range(2000)]
    assert sum(accepted(r) for r in results) == sum(not m[1] and not m[2] for m in masks)


def test_changing_one_probability_keeps_the_others_draws():
    a = [Constraint(name="x", ge=0, probability=0.5), Constraint(name="y", ge=0, probability=0.5)]
    b = [Constraint(name="x", ge=0, probability=0.9), Constraint(name="y", ge=0, probability=0.5)]
    for i in range(100):
        assert enforcement(a, frame_require_rng(1, i))[1] == enforcement(b, frame_require_rng(1, i))[1]


def test_attempt_seeds():
    assert attempt_seed(7, 3, 0) == 7
    seeds = {attempt_seed(7, i, k) for i in range(20) for k in range(1, 20)}
    assert len(seeds) == 19 * 20 and all(0 <= s < 2**63 for s in seeds)
    expected = np.random.SeedSequence([7, 3, 2]).generate_state(2, np.uint32)
    assert attempt_seed(7, 3, 2) == (int(expected[0]) << 31) ^ int(expected[1])


def test_rejection_loop_and_the_error_with_the_closest_value():
    require = Require(constraints=[Constraint(name="three_mugs", select={"category": "mug"}, ge=3)], max_attempts=5)
    seen = []

    def render(seed, k):
        seen.append(seed)
        mugs = tuple(obj(f"clutter/{j}") for j in range(k))  # attempt k shows k mugs
        return f"frame{k}", FrameLabels(10, 10, mugs)

    frame, results, attempts, log = run_attempts(require, seed=9, frame_index=4, render=render)
    assert frame == "frame3" and attempts == 4 and results[0].value == 3 and len(log) == 4
    assert seen == [attempt_seed(9, 4, k) for k in range(4)]
    stats = RejectionStats.for_constraints(require.constraints)
    stats.add_log(log)
    assert stats.to_json()["attempts_per_frame"] == {"4": 1}
    assert stats.to_json()["constraints"]["three_mugs"] == {
        "attempts": 4,
        "held": 1,
        "rejected": 3,
        "not_enforced": 0,
        "acceptance_rate": 0.25,
        "closest_value": 3,
        "closest_gap": 0.0,
    }

    require = Require(constraints=[Constraint(name="five_mugs", select={"category": "mug"}, ge=5)], max_attempts=4)
    with pytest.raises(RequireUnmet) as exc:
        run_attempts(require, seed=9, frame_index=4, render=render)
    assert exc.value.frame_index == 4 and exc.value.attempts == 4
    assert exc.value.unmet == [("five_mugs", 4, 3, "count of objects with category mug >= 5")]
    assert "'five_mugs' failed 4 of 4 attempts, closest value 3" in str(exc.value)


def test_rejection_stats_count_merge_and_round_trip():
    cs = [Constraint(name="a", ge=2), Constraint(name="b", ge=0, probability=0.5)]
    shard1, shard2 = RejectionStats.for_constraints(cs), RejectionStats.for_constraints(cs)
    for n_objects, stats in [(0, shard1), (1, shard1), (3, shard1), (2, shard2)]:
        labels = FrameLabels(10, 10, tuple(obj(f"clutter/{j}") for j in range(n_objects)))
        results = evaluate(cs, labels, frame_require_rng(0, n_objects))
        if stats.add_attempt(results):
            stats.add_frame(2)
    total = RejectionStats.from_json(shard1.to_json())
    total.merge(shard2)
    data = total.to_json()
    assert data["attempts"] == 4 and data["frames"] == 2 and data["acceptance_rate"] == 0.5
    assert data["constraints"]["a"]["attempts"] == 4 and data["constraints"]["a"]["held"] == 2
    assert data["constraints"]["a"]["acceptance_rate"] == 0.5
    assert data["constraints"]["a"]["closest_value"] == 2
    b = data["constraints"]["b"]
    assert b["attempts"] + b["not_enforced"] == 4 and b["held"] == b["attempts"]
    json.dumps(data, allow_nan=False)
    # merging in the other order gives the same numbers
    other = RejectionStats.from_json(shard2.to_json())
    other.merge(shard1)
    assert other.to_json() == data


def test_luma_stats():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 255, 255)
    mean, std = luma_stats(rgb)
    assert mean == pytest.approx(0.25) and std == pytest.approx(math.sqrt(0.25 * 0.75))
    with pytest.raises(ValueError):
        luma_stats(np.zeros((2, 2), np.float32))


def test_labels_from_annotations_equal_labels_from_their_coco_record():
    """The engine checks constraints before writing; the edge-case tests check them from COCO: same values."""
    tags = {"clutter": ("clutter", "toy")}
    for frame in range(3):
        buffers = example_buffers(frame)
        anns = annotate(buffers, min_visible_px=0, on_filtered="flag")
        assert anns
        categories = {"box": 1, "can": 2}
        record = frame_record(
            frame,
            0,
            "images/x.png",
            anns,
            categories,
            depth_file=None,
            instance_file=None,
            K=buffers.K,
            T_world_cam=buffers.T_world_cam,
            width=buffers.width,
            height=buffers.height,
        )
        record = json.loads(json.dumps(record))  # as it is read back from disk
        live = frame_labels_from_annotations(
            anns, buffers.width, buffers.height, rgb=buffers.rgb, tags=tags, frame_index=frame
        )
        cats = [{"id": 1, "name": "box"}, {"id": 2, "name": "can"}]
        disk = frame_labels_from_coco(record["image"], record["annotations"], cats, rgb=buffers.rgb, tags=tags)
        assert live == disk
        by_uid = {o.uid: o for o in live.objects}
        assert by_uid["clutter/5"].border_distance == 0.0  # the box cut by the left border
        assert by_uid["clutter/2"].border_distance > 0
        assert all(o.tags == {"clutter", "toy"} for o in live.objects)
        assert all(o.visibility is not None for o in live.objects)


def test_group_tags():
    spec = {"fixtures": [{"name": "table"}], "objects": [{"name": "clutter", "tags": ["small", "toy"]}]}
    assert group_tags(spec) == {"table": ("table",), "clutter": ("clutter", "small", "toy")}


# --- on a real rendered dataset ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from simgen.engine import generate

    out = tmp_path_factory.mktemp("scenario_constraints") / "ds"
    generate("scenes/tabletop_clutter.yaml", out, n_frames=4, renderer="tiny", resolution=(128, 96), seed=1)
    return out


def test_constraints_on_a_real_datasets_coco(tiny_dataset):
    coco = json.loads((tiny_dataset / "annotations.coco.json").read_text())
    spec = json.loads((tiny_dataset / "dataset.json").read_text())["spec"]
    tags = group_tags(spec)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    constraints = [
        Constraint(name="some_visible", select={"visible_px": {"ge": 50}}, ge=1),
        Constraint(name="near", stat="min", of="distance", le=2.0),
        Constraint(name="clutter", select={"tag": "clutter"}, ge=1),
        Constraint(name="lit", stat="brightness", ge=0.05, le=0.95),
        Constraint(name="impossible", select={"category": "mug", "box_area": {"ge": 1e9}}, ge=1),
    ]
    assert len(coco["images"]) == 4
    for image in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        bgr = cv2.imread(str(tiny_dataset / image["file_name"]), cv2.IMREAD_COLOR)
        rgb = bgr[..., ::-1].copy()
        labels = frame_labels_from_coco(image, anns, coco["categories"], rgb=rgb, tags=tags)
        assert labels.frame_index == image["frame_index"] and len(labels.objects) == len(anns)
        results = {r.name: r for r in evaluate(constraints, labels, frame_require_rng(1, image["frame_index"]))}
        # independent computations from the raw COCO fields
        assert results["some_visible"].value == sum(a["px_count_visible"] >= 50 for a in anns)
        distances = []
        for a in anns:
            T = np.array(a["pose"]["T_cam_obj"])
            distances.append(np.linalg.norm(T[:3, :3] @ np.array(a["bbox3d_center_m"]) + T[:3, 3]))
        assert results["near"].value == pytest.approx(min(distances))
        assert 0.3 < results["near"].value < 2.0  # the camera is 0.8-1.3 m from the table's centre
        assert results["clutter"].value == sum(a["uid"].startswith("clutter/") for a in anns)
        luma = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255
        assert results["lit"].value == pytest.approx(luma.mean()) and results["lit"].ok
        assert results["impossible"].value == 0 and not results["impossible"].ok
        assert not accepted(results.values())
        for o in labels.objects:
            assert o.category in names.values()
            x, y, w, h = next(a["bbox"] for a in anns if a["uid"] == o.uid)
            if w > 0:
                assert o.border_distance == pytest.approx(min(x, y, 128 - x - w, 96 - y - h))


def test_a_constraint_never_met_on_real_frames_stops_with_the_closest_value(tiny_dataset):
    coco = json.loads((tiny_dataset / "annotations.coco.json").read_text())
    frames = []
    for image in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        frames.append(frame_labels_from_coco(image, anns, coco["categories"]))
    most = max(len(f.objects) for f in frames)
    require = Require(constraints=[Constraint(name="crowd", ge=most + 5)], max_attempts=4)
    with pytest.raises(RequireUnmet) as exc:
        run_attempts(require, 1, 0, lambda seed, k: (None, frames[k]))
    assert exc.value.unmet == [("crowd", 4, most, f"count >= {most + 5}")]
