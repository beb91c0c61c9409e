"""Sequences (a scenario's ``timeline``): frames captured during the physics, events, track ids, motion blur.

Every end-to-end test generates through the real engine (PyBullet TinyRenderer, tiny images) and checks what
was written: ``annotations.coco.json`` (read back with pycocotools too), the PNGs and ``manifest.jsonl``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools.coco import COCO

from simgen.engine import generate
from simgen.errors import RequireUnmet, SpecError
from simgen.scenarios import load_scenario
from simgen.scenarios.models import Event, MotionBlur, Timeline
from simgen.scenarios.timeline import (
    blur_offsets,
    camera_pose,
    capture_sequence,
    schedule,
    trajectory_at,
)

DT = 1.0 / 240.0


def _drop_scenario(**timeline: Any) -> dict[str, Any]:
    """Four objects on a table; one is lifted and dropped, another thrown; the camera orbits; the light dims."""
    return {
        "version": 1,
        "name": "drop_sequence",
        "fixtures": [{"name": "table", "asset": "pybullet_data:table/table.urdf", "position": [0.0, 0.0, 0.0]}],
        "objects": [
            {
                "name": "clutter",
                "assets": [
                    {"asset": "pybullet_data:duck_vhacd.urdf", "category": "duck"},
                    {"asset": "pybullet_data:cube_small.urdf", "category": "cube"},
                ],
                "count": 4,
                "tags": ["clutter"],
                "region": {"center": [0.0, 0.0, 0.68], "size": [0.3, 0.2, 0.0]},
            }
        ],
        "camera": {
            "width": 64,
            "height": 48,
            "fov_deg": 55,
            "look_at": {"target": [0.0, 0.0, 0.7], "distance": 1.1, "azimuth_deg": 30, "elevation_deg": 30},
        },
        "physics": {"max_steps": 300},
        "labels": {"min_visible_px": 1, "on_filtered": "drop"},
        "timeline": {
            "capture": {"every_steps": 6, "frames": 6},
            "events": [
                {"at_s": 0.0, "target": "clutter/0", "drop": {"height_m": 0.3}},
                {"at_s": 0.05, "target": "clutter", "pick": "one", "throw": {"impulse": [0.0, 0.02, 0.02]}},
                {"at_s": 0.0, "camera": {"orbit_deg": 20, "duration_s": 0.1}},
                {"at_s": 0.06, "light": {"intensity": 0.2}},
            ],
            **timeline,
        },
    }


def _write(tmp_path: Path, data: dict[str, Any], name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _coco(out: Path) -> dict[str, Any]:
    return json.loads((out / "annotations.coco.json").read_text())


def _manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]


def _world_z(image: dict[str, Any], ann: dict[str, Any]) -> float:
    T = np.asarray(image["T_world_cam"]) @ np.asarray(ann["pose"]["T_cam_obj"])
    return float(T[2, 3])


def _tree_digest(root: Path) -> dict[str, str]:
    names = [
        "annotations.coco.json",
        *(f"{d}/{p.name}" for d in ("images", "depth", "instances") for p in sorted((root / d).glob("*"))),
    ]
    return {n: hashlib.sha256((root / n).read_bytes()).hexdigest() for n in names}


# --- pure parts ----------------------------------------------------------------------------------------------


def test_schedule_steps_and_blur_offsets():
    timeline = Timeline.model_validate(
        {"capture": {"every_steps": 8, "start_s": 0.05, "frames": 3}, "motion_blur": {"subframes": 5, "shutter": 0.5}}
    )
    sched = schedule(timeline, DT, 3)
    assert sched.centres == (12, 20, 28)  # 0.05 s is step 12 at 240 Hz
    assert sched.offsets == (-2, -1, 0, 1, 2)
    assert sched.subframe_steps(0) == (10, 11, 12, 13, 14)
    assert blur_offsets(8, MotionBlur(subframes=2, shutter=1.0)) == (-2, 2)
    assert blur_offsets(8, None) == ()
    start_at_zero = schedule(
        Timeline.model_validate({"capture": {"frames": 2}, "motion_blur": {"subframes": 3}}), DT, 2
    )
    assert start_at_zero.subframe_steps(0) == (0, 0, 1)  # before t = 0 is the t = 0 state


def test_colliding_subframes_are_refused_at_load_time(tmp_path):
    data = _drop_scenario(motion_blur={"subframes": 8, "shutter": 0.5})
    with pytest.raises(SpecError) as exc:
        load_scenario(_write(tmp_path, data))
    assert exc.value.path == "timeline.motion_blur.subframes" and "same steps" in str(exc.value)


def test_stereo_and_an_invalid_sum_of_light_patches_are_refused(tmp_path):
    data = _drop_scenario()
    data["camera"]["stereo_baseline"] = 0.1
    data["timeline"]["capture"]["frames"] = 6
    with pytest.raises(SpecError, match="stereo_baseline") as exc:
        load_scenario(_write(tmp_path, data))
    assert exc.value.path == "timeline"
    data = _drop_scenario()
    data["timeline"]["events"].append({"at_s": 0.1, "light": {"intensityy": 0.2}})
    with pytest.raises(SpecError, match="did you mean 'intensity'") as exc:
        load_scenario(_write(tmp_path, data))
    assert exc.value.path.startswith("timeline.events[4]")


def test_capture_frames_set_frames_per_scene(tmp_path):
    data = _drop_scenario()
    assert load_scenario(_write(tmp_path, data)).base.spec.frames_per_scene == 6
    data["timeline"]["capture"].pop("frames")
    data["frames_per_scene"] = 3
    assert load_scenario(_write(tmp_path, data)).base.spec.frames_per_scene == 3


def test_camera_orbit_keeps_aiming_at_the_pivot_and_dolly_backs_off():
    eye, target = np.array([1.0, 0.0, 0.5]), np.array([0.0, 0.0, 0.0])
    z = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    T[:3, 3] = eye
    orbit = Event.model_validate({"at_s": 1.0, "camera": {"orbit_deg": 90, "duration_s": 2.0}})
    half = camera_pose(T, target, [orbit], 2.0)  # halfway: 45 degrees
    assert np.allclose(half[:3, 3], [math.cos(math.pi / 4), math.sin(math.pi / 4), 0.5])
    assert np.allclose(half[:3, 2], (target - half[:3, 3]) / np.linalg.norm(target - half[:3, 3]))
    assert np.allclose(camera_pose(T, target, [orbit], 0.5), T)  # before the event
    dolly = Event.model_validate({"camera": {"dolly_m": 0.5, "duration_s": 1.0}})
    moved = camera_pose(T, target, [dolly], 5.0)
    assert np.linalg.norm(moved[:3, 3] - target) == pytest.approx(np.linalg.norm(eye - target) + 0.5)


def test_trajectory_is_linear_between_points_and_held_beyond():
    points = [(0.0, [0.0, 1.0]), (1.0, [1.0, 1.0]), (3.0, [1.0, -1.0])]
    assert trajectory_at(points, -1.0) == [0.0, 1.0]
    assert trajectory_at(points, 0.5) == [0.5, 1.0]
    assert trajectory_at(points, 2.0) == [1.0, 0.0]
    assert trajectory_at(points, 9.0) == [1.0, -1.0]


# --- sequences through the engine ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drop_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two sequences of six frames, seed 3, one worker: (scenario file, output folder)."""
    root = tmp_path_factory.mktemp("drop")
    path = _write(root, _drop_scenario())
    out = root / "w1"
    generate(path, out, n_frames=12, seed=3, renderer="tiny", shard_frames=6)
    return path, out


def test_coco_has_videos_frame_ids_and_stable_track_ids(drop_run):
    _, out = drop_run
    coco = COCO(str(out / "annotations.coco.json"))  # pycocotools reads it (extra keys are ignored)
    data = coco.dataset
    assert [v["id"] for v in data["videos"]] == [1, 2]
    assert all(v["n_frames"] == 6 and v["fps"] == 40.0 for v in data["videos"])
    for img in data["images"]:
        assert img["video_id"] == img["frame_index"] // 6 + 1 and img["frame_id"] == img["frame_index"] % 6
        assert img["timestamp_s"] == pytest.approx(img["frame_id"] * 6 / 240)
    by_track: dict[int, set[tuple[str, int, int]]] = {}
    for ann in data["annotations"]:
        img = coco.imgs[ann["image_id"]]
        assert ann["video_id"] == img["video_id"]
        by_track.setdefault(ann["track_id"], set()).add((ann["uid"], ann["instance_id"], ann["video_id"]))
    assert all(len(v) == 1 for v in by_track.values()), by_track  # one body per track id, over all its frames
    per_video_uid = {(uid, vid) for v in by_track.values() for uid, _, vid in v}
    assert len(per_video_uid) == len(by_track)  # one track id per body and video
    assert {t["id"] for t in data["tracks"]} == set(by_track)
    # A body seen in every frame of its video keeps its one track id over all six.
    counts: dict[int, int] = {}
    for ann in data["annotations"]:
        counts[ann["track_id"]] = counts.get(ann["track_id"], 0) + 1
    assert max(counts.values()) == 6


def test_frames_are_captured_during_the_physics(drop_run):
    _, out = drop_run
    coco = _coco(out)
    images = {i["id"]: i for i in coco["images"]}
    heights: dict[int, list[float]] = {}
    for ann in coco["annotations"]:
        if ann["uid"] == "clutter/0" and ann["video_id"] == 1:
            heights.setdefault(images[ann["image_id"]]["frame_id"], []).append(_world_z(images[ann["image_id"]], ann))
    z = [heights[j][0] for j in sorted(heights)]
    assert len(z) == 6
    assert z[0] > 0.9  # lifted 0.3 m above the table top at t = 0 ...
    assert all(b < a for a, b in itertools.pairwise(z))  # ... and falling, caught mid-air in every frame
    cams = [np.asarray(i["T_world_cam"]) for i in coco["images"] if i["video_id"] == 1]
    assert not np.allclose(cams[0], cams[-1])  # the camera orbits
    assert np.allclose(cams[4], cams[5])  # and stops after 0.1 s (frames at 0.1 and 0.125 s)
    manifest = _manifest(out)
    assert manifest[0]["timeline"]["targets"][0] == ["clutter/0"] and len(manifest[0]["timeline"]["targets"][1]) == 1
    # Frames at steps 0, 6, 12, ...; events at steps 0 (drop, camera), 12 (throw, 0.05 s) and 14 (light, 0.06 s).
    assert [m["sequence"]["events"] for m in manifest[:6]] == [[0, 2], [], [1], [3], [], []]
    assert manifest[0]["view"] == manifest[5]["view"]  # one view for the sequence


def test_light_event_changes_the_light_from_its_time(drop_run):
    _, out = drop_run
    lum = [np.asarray(Image.open(out / "images" / f"{j:06d}.png"), dtype=np.float64).mean() for j in range(6)]
    # Intensity 0.2 from 0.06 s: frame 2 (0.05 s) is lit as before, frame 3 (0.075 s) and later are darker.
    assert abs(lum[2] - lum[0]) < 0.05 * lum[0]
    assert all(v < 0.85 * lum[2] for v in lum[3:]), lum


def test_sequences_are_byte_identical_with_two_workers_and_after_a_resume(drop_run, tmp_path):
    path, out = drop_run
    want = _tree_digest(out)
    generate(path, tmp_path / "w2", n_frames=12, seed=3, renderer="tiny", shard_frames=6, workers=2)
    assert _tree_digest(tmp_path / "w2") == want
    # Damage two frames in the middle of a sequence: the resumed run redoes exactly them, identically.
    resumed = tmp_path / "resumed"
    generate(path, resumed, n_frames=12, seed=3, renderer="tiny", shard_frames=6)
    for j in (3, 4):
        (resumed / "images" / f"{j:06d}.png").write_bytes(b"damaged")
    result = generate(path, resumed, n_frames=12, seed=3, renderer="tiny", shard_frames=6, resume=True)
    assert result.made == 2 and result.reused == 10
    assert _tree_digest(resumed) == want


def test_a_plain_spec_has_no_video_fields(tmp_path):
    data = _drop_scenario()
    data.pop("timeline")
    out = tmp_path / "plain"
    generate(_write(tmp_path, data), out, n_frames=2, seed=0, renderer="tiny")
    text = (out / "annotations.coco.json").read_text()
    assert "video" not in text and "track_id" not in text


# --- require on sequences ----------------------------------------------------------------------------------------


def test_require_keeps_whole_sequences_and_counts_every_checked_frame(tmp_path):
    data = _drop_scenario()
    data["camera"]["look_at"]["azimuth_deg"] = {"kind": "uniform", "low": -180, "high": 180}
    data["camera"]["look_at"]["distance"] = {"kind": "uniform", "low": 0.6, "high": 2.5}
    data["require"] = {
        "constraints": [{"name": "four_in_view", "select": {"visible_px": {"ge": 10}}, "ge": 4}],
        "max_attempts": 50,
    }
    out = tmp_path / "req"
    result = generate(_write(tmp_path, data), out, n_frames=12, seed=11, renderer="tiny")
    coco = _coco(out)
    counts = {i["id"]: 0 for i in coco["images"]}
    for ann in coco["annotations"]:
        counts[ann["image_id"]] += ann["px_count_visible"] >= 10
    assert all(c >= 4 for c in counts.values()), counts
    manifest = _manifest(out)
    assert any(m["require"]["attempt"] > 0 for m in manifest)  # some sequence was redrawn
    for video in (manifest[:6], manifest[6:]):
        attempt = {m["require"]["attempt"] for m in video}
        assert len(attempt) == 1  # a sequence is kept whole, from one attempt
        assert len({json.dumps(m["view"]) for m in video}) == 1
    rejection = result.dataset["scenario"]["rejection"]
    assert rejection["frames"] == 12 and rejection["attempts"] == sum(len(m["require"]["attempts"]) for m in manifest)


def test_an_impossible_require_on_a_sequence_stops_with_a_clean_error(tmp_path):
    data = _drop_scenario()
    data["require"] = {"constraints": [{"name": "too_many", "ge": 50}], "max_attempts": 3}
    with pytest.raises(RequireUnmet, match=r"'too_many' failed 3 of 3 attempts"):
        generate(_write(tmp_path, data), tmp_path / "out", n_frames=6, seed=0, renderer="tiny")
    assert not (tmp_path / "out" / "annotations.coco.json").exists()


# --- motion blur from real motion ------------------------------------------------------------------------------


def _throw_scenario(blur: bool) -> dict[str, Any]:
    """A red cube on the ground, thrown up and sideways, seen from the side."""
    data: dict[str, Any] = {
        "version": 1,
        "name": "throw",
        "objects": [
            {
                "name": "thrown",
                "assets": [{"asset": "pybullet_data:cube_small.urdf", "category": "cube"}],
                "count": 1,
                "tags": ["thrown"],
                "region": {"center": [0.0, 0.0, 0.05], "size": [0.0, 0.0, 0.0]},
                "scale": 2.5,
                "rotation": "none",
                "color": [0.9, 0.1, 0.1, 1.0],
            }
        ],
        "camera": {
            "width": 160,
            "height": 120,
            "fov_deg": 50,
            "look_at": {"target": [0.0, 0.35, 0.35], "distance": 1.6, "azimuth_deg": 0, "elevation_deg": 5},
        },
        "physics": {"max_steps": 200},
        "labels": {"min_visible_px": 1},
        "timeline": {
            "capture": {"every_steps": 8, "start_s": 0.05, "frames": 4},
            "events": [{"at_s": 0.0, "target": "thrown", "throw": {"impulse": [0.0, 0.4, 0.4]}}],
        },
    }
    if blur:
        data["timeline"]["motion_blur"] = {"subframes": 5, "shutter": 0.5}
    return data


@pytest.fixture(scope="module")
def thrown(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same thrown cube, sharp and with motion blur: (sharp output, blurred output)."""
    root = tmp_path_factory.mktemp("throw")
    outs = []
    for blur in (False, True):
        out = root / ("blur" if blur else "sharp")
        generate(_write(root, _throw_scenario(blur), f"{out.name}.yaml"), out, n_frames=4, seed=0, renderer="tiny")
        outs.append(out)
    return outs[0], outs[1]


def _centre_px(image: dict[str, Any], ann: dict[str, Any]) -> np.ndarray:
    """The object's 3D box centre projected into the image (box pixel coordinates), from the COCO record alone."""
    T = np.asarray(ann["pose"]["T_cam_obj"])
    c = T[:3, :3] @ np.asarray(ann["bbox3d_center_m"]) + T[:3, 3]
    uv = np.asarray(image["K"]) @ c
    return uv[:2] / uv[2] + 0.5


def test_motion_blur_streaks_along_the_velocity_and_keeps_the_centre_labels(thrown):
    sharp, blurred = thrown
    cs, cb = _coco(sharp), _coco(blurred)
    assert cs["annotations"] == cb["annotations"]  # labels of the centre time, exactly
    for kind in ("depth", "instances"):
        for j in range(4):
            assert (sharp / kind / f"{j:06d}.png").read_bytes() == (blurred / kind / f"{j:06d}.png").read_bytes()
    images = cs["images"]
    anns = {a["image_id"]: a for a in cs["annotations"]}
    for j in (1, 2):
        # The image velocity of the cube, from its poses one frame before and after (the sharp COCO alone).
        velocity = _centre_px(images[j + 1], anns[j + 2]) - _centre_px(images[j - 1], anns[j])
        direction = velocity / np.linalg.norm(velocity)
        a = np.asarray(Image.open(sharp / images[j]["file_name"]), dtype=np.int64)
        b = np.asarray(Image.open(blurred / images[j]["file_name"]), dtype=np.int64)
        ys, xs = np.nonzero(np.abs(a - b).sum(axis=2) > 30)
        assert len(xs) > 20, j
        # Where the blurred frame differs lies in the sharp cube swept along its velocity: across the motion it
        # stays within the cube's own extent, along it it reaches beyond the cube, ahead and behind.
        mask = np.asarray(Image.open(sharp / images[j]["instance_file"])) == anns[j + 1]["instance_id"]
        my, mx = np.nonzero(mask)
        normal = np.array([-direction[1], direction[0]])
        changed, cube = np.stack([xs, ys], axis=1), np.stack([mx, my], axis=1)
        assert (changed @ normal).min() >= (cube @ normal).min() - 1.5, j
        assert (changed @ normal).max() <= (cube @ normal).max() + 1.5, j
        assert (changed @ direction).max() >= (cube @ direction).max() + 1.0, j
        assert (changed @ direction).min() <= (cube @ direction).min() - 1.0, j


def test_motion_blur_costs_one_centre_render_plus_rgb_subframes(thrown):
    _, blurred = thrown
    manifest = _manifest(blurred)
    assert [m["sequence"]["renders"] for m in manifest] == [5, 5, 5, 5]


def test_capture_sequence_is_a_plain_function_of_a_built_backend(tmp_path):
    """The function the benchmarks time: a built, settled backend and a plan in, frames out."""
    from simgen.backends.pybullet_backend import PyBulletBackend
    from simgen.engine.scene_state import RandomizerSet, backend_scene, sample_scene, sample_view
    from simgen.scenarios.timeline import sequence_plan, start_sequence

    scenario = load_scenario(_write(tmp_path, _throw_scenario(blur=False)))
    loaded = scenario.base
    randomizers = RandomizerSet.from_spec(loaded)
    state, _ = sample_scene(loaded, randomizers, 0, 0)
    view, _ = sample_view(loaded, randomizers, 0, 0, state)
    timeline = scenario.timeline
    with PyBulletBackend(renderer="tiny") as backend:
        backend.build(backend_scene(loaded, state))
        settled = start_sequence(backend, timeline)
        assert settled["at_rest"] and settled["asleep"] == 1  # the cube rests, asleep until the throw wakes it
        plan = sequence_plan(timeline, DT, 4, view, state["objects"], seed=0, key=0)
        assert plan.targets == [["thrown/0"]]
        frames = list(capture_sequence(backend, plan))
    assert [f.step for f in frames] == [12, 20, 28, 36]
    heights = [f.buffers.object_poses[1][2, 3] for f in frames]
    assert heights[0] > 0.15 and heights[1] > heights[0]  # thrown up at 4 m/s, still rising


def test_robot_follows_its_joint_trajectory_and_a_push_slides_a_cube(tmp_path):
    data = {
        "version": 1,
        "name": "robot_push",
        "fixtures": [
            {
                "name": "kuka",
                "asset": "pybullet_data:kuka_iiwa/model.urdf",
                "position": [0.0, -0.6, 0.0],
                "labeled": True,
                "category": "kuka",
                "link_labels": True,
            }
        ],
        "objects": [
            {
                "name": "box",
                "assets": [{"asset": "pybullet_data:cube_small.urdf", "category": "cube"}],
                "count": 1,
                "region": {"center": [0.0, 0.2, 0.05], "size": [0.0, 0.0, 0.0]},
                "scale": 2.0,
                "rotation": "none",
            }
        ],
        "camera": {
            "width": 64,
            "height": 48,
            "fov_deg": 70,
            "look_at": {"target": [0.0, -0.2, 0.5], "distance": 2.2, "azimuth_deg": 0, "elevation_deg": 25},
        },
        "physics": {"max_steps": 200},
        "labels": {"min_visible_px": 1},
        "timeline": {
            "capture": {"every_steps": 24, "frames": 4},
            "events": [
                {
                    "target": "kuka",
                    "robot": {"trajectory": [{"t_s": 0.0, "q": [0.0] * 7}, {"t_s": 0.3, "q": [1.2] + [0.0] * 6}]},
                },
                {"target": "box/0", "push": {"force": [3.0, 0.0, 0.0], "duration_s": 0.2}},
            ],
        },
    }
    out = tmp_path / "out"
    generate(_write(tmp_path, data), out, n_frames=4, seed=0, renderer="tiny")
    coco = _coco(out)
    images = {i["id"]: i for i in coco["images"]}
    link = {}
    box = {}
    for ann in coco["annotations"]:
        image = images[ann["image_id"]]
        T = np.asarray(image["T_world_cam"]) @ np.asarray(ann["pose"]["T_cam_obj"])
        if ann["uid"] == "kuka/lbr_iiwa_link_2":
            link[image["frame_id"]] = T
        if ann["uid"] == "box/0":
            box[image["frame_id"]] = T[:3, 3]
    # Joint 1 turns about the vertical: 1.2 rad over 0.3 s; frames at 0, 0.1, 0.2 and 0.3 s.
    yaw = [math.atan2(link[j][1, 0], link[j][0, 0]) for j in range(4)]
    turned = [(y - yaw[0] + math.pi) % (2 * math.pi) - math.pi for y in yaw]
    assert turned == pytest.approx([0.0, 0.4, 0.8, 1.2], abs=1e-3)
    # The box slides along +x, the force's direction, and not sideways.
    dx = [box[j][0] - box[0][0] for j in range(4)]
    assert all(b > a for a, b in itertools.pairwise(dx)) and dx[-1] > 0.01, dx
    assert abs(box[3][1] - box[0][1]) < 0.2 * dx[-1]


def test_a_backend_that_cannot_step_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import simgen.backends as backends
    from simgen.backends.pybullet_backend import PyBulletBackend
    from simgen.engine.run import RunConfig

    class NoTimeline:  # the protocol's four calls only, and no "timeline" capability
        build, settle, render, close = (PyBulletBackend.build, PyBulletBackend.settle, PyBulletBackend.render,
                                        PyBulletBackend.close)  # fmt: skip

    from simgen.engine.generation import ImageOptions, _scenario_modality

    modality = _scenario_modality(_write(tmp_path, _drop_scenario()), ImageOptions(renderer="tiny"))
    monkeypatch.setattr(backends, "backend_class", lambda name: NoTimeline)
    with pytest.raises(SpecError, match="cannot capture sequences") as exc:
        modality.check(RunConfig(out=tmp_path / "out", n_records=6))
    assert exc.value.path == "timeline"
    monkeypatch.undo()
    modality.check(RunConfig(out=tmp_path / "out", n_records=6))  # PyBullet can


def test_without_settling_the_frames_show_the_scene_s_own_fall(tmp_path):
    data = _drop_scenario()
    data["objects"][0]["drop_height"] = 0.3
    data["timeline"] = {"capture": {"every_steps": 6, "frames": 4, "settle": False}}
    out = tmp_path / "fall"
    generate(_write(tmp_path, data), out, n_frames=4, seed=0, renderer="tiny")
    coco = _coco(out)
    images = {i["id"]: i for i in coco["images"]}
    z: dict[str, list[float]] = {}
    for ann in coco["annotations"]:
        z.setdefault(ann["uid"], []).append(_world_z(images[ann["image_id"]], ann))
    falling = [v for v in z.values() if len(v) == 4]
    assert falling and all(all(b < a for a, b in itertools.pairwise(v)) for v in falling), z
    assert _manifest(out)[0]["settled"] is None


def test_replay_refuses_a_sequence_frame_in_one_clear_line(tmp_path):
    from simgen.engine.generation import generate
    from simgen.engine.replay import replay_frame
    from simgen.errors import SimgenError

    out = tmp_path / "seq"
    generate(_write(tmp_path, _drop_scenario()), out, n_frames=3, seed=0, renderer="tiny", resolution=(64, 48))
    with pytest.raises(SimgenError, match=r"frame 1 is frame 1 of timeline sequence 1; replay .* does not re-capture"):
        replay_frame(out, 1)
