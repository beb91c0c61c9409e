"""The issue-3 samplers that need no simulator: robots, occluders, stereo, photos, background compositing."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from simgen.assets import pybullet_data_dir
from simgen.engine.scene_state import RandomizerSet, sample_scene, sample_view
from simgen.errors import AssetError, SpecError
from simgen.frame import FrameBuffers
from simgen.randomizers.background import BackgroundParams, BackgroundPhoto
from simgen.randomizers.base import SampleContext
from simgen.randomizers.materials import ImageTexture, ImageTextureParams
from simgen.randomizers.occluders import FlyingOccluders, OccluderParams
from simgen.randomizers.robots import JointAngles, JointParams, urdf_joint_limits, urdf_links
from simgen.sampling import rng_for
from simgen.spec import load_spec, read_spec_file
from simgen.testing import example_context

REPO = Path(__file__).resolve().parents[2]
PANDA = str(pybullet_data_dir() / "franka_panda" / "panda.urdf")


def test_urdf_limits_are_read_from_the_file() -> None:
    limits = urdf_joint_limits(PANDA)
    assert limits["panda_joint1"] == pytest.approx((-2.9671, 2.9671))
    assert limits["panda_joint4"] == pytest.approx((-3.1416, 0.0))  # as pybullet_data's panda.urdf declares
    assert "panda_finger_joint1" in limits and "panda_hand_joint" not in limits  # fixed joints are not movable
    assert urdf_links(PANDA)[0] == "panda_link0"


def test_joint_angles_stay_inside_the_limits() -> None:
    ctx = example_context()
    limits = urdf_joint_limits(PANDA)
    r = JointAngles(JointParams(range_fraction=0.5), ["robot"])
    for seed in range(20):
        angles = r.sample(rng_for(seed, "j"), ctx)["joints"]["arm"]
        assert set(angles) == set(limits)
        for name, value in angles.items():
            lo, hi = limits[name]
            mid, quarter = (lo + hi) / 2, (hi - lo) / 4
            assert mid - quarter - 1e-12 <= value <= mid + quarter + 1e-12


def test_unknown_joint_is_a_clear_error() -> None:
    r = JointAngles(JointParams(joints=["panda_joint9"]), ["robot"])
    with pytest.raises(AssetError, match="panda_joint9"):
        r.sample(rng_for(0), example_context())


def test_occluders_lie_between_camera_and_target() -> None:
    ctx = example_context()
    cam = ctx.view["camera"]
    eye = np.asarray(cam["T_world_cam"])[:3, 3]
    target = np.asarray(cam["sampled"]["target"])
    r = FlyingOccluders(OccluderParams(count=5, lateral_m=0.0), [])
    occluders = r.sample(rng_for(3, "o"), ctx)["occluders"]
    assert len(occluders) == 5
    for occ in occluders:
        t = float(np.dot(np.asarray(occ["position"]) - eye, target - eye) / np.dot(target - eye, target - eye))
        assert 0.2 <= t <= 0.6
        offset = np.asarray(occ["position"]) - (eye + t * (target - eye))
        assert np.linalg.norm(offset) < 1e-9
        assert not occ["labeled"]


def test_stereo_pairs_share_draws_and_differ_by_the_baseline() -> None:
    raw = read_spec_file(REPO / "scenes" / "tabletop_clutter.yaml")
    raw["camera"]["stereo_baseline"] = 0.12
    loaded = load_spec(raw, base_dir=REPO / "scenes")
    rs = RandomizerSet.from_spec(loaded)
    state, _ = sample_scene(loaded, rs, 0, 0)
    left, _ = sample_view(loaded, rs, 0, 2, state)
    right, _ = sample_view(loaded, rs, 0, 3, state)
    other, _ = sample_view(loaded, rs, 0, 4, state)
    L, R = np.asarray(left["camera"]["T_world_cam"]), np.asarray(right["camera"]["T_world_cam"])
    assert np.allclose(L[:3, :3], R[:3, :3])
    assert np.allclose(R[:3, 3] - L[:3, 3], 0.12 * L[:3, 0])
    assert left["light"] == right["light"]
    assert left["camera"]["sampled"]["stereo_side"] == "left" and right["camera"]["sampled"]["stereo_side"] == "right"
    assert not np.allclose(np.asarray(other["camera"]["T_world_cam"]), L)
    raw["frames_per_scene"] = 3
    with pytest.raises(SpecError, match="even frames_per_scene"):
        load_spec(raw, base_dir=REPO / "scenes")


def test_image_textures_come_from_the_folder() -> None:
    ctx = example_context()
    r = ImageTexture(ImageTextureParams(folder="pybullet_data:", ground=True), ["clutter"])
    patch = r.sample(rng_for(1), ctx)
    paths = {o["texture"]["path"] for o in patch["objects"].values()} | {patch["ground"]["texture"]["path"]}
    assert all(Path(p).parent == pybullet_data_dir() and Path(p).suffix in (".png", ".jpg") for p in paths)
    escape = ImageTexture(ImageTextureParams(folder="../../.."), [])
    with pytest.raises(AssetError, match="outside the allowed asset roots"):
        escape.sample(rng_for(1), ctx)


def test_background_photo_replaces_only_empty_pixels() -> None:
    h, w = 48, 64
    rgb = np.full((h, w, 3), 7, np.uint8)
    depth = np.zeros((h, w), np.float32)
    depth[10:30, 20:40] = 1.0  # something was hit here
    ids = np.zeros((h, w), np.uint16)
    ids[12:20, 22:30] = 1
    buffers = FrameBuffers(rgb, depth, ids, np.eye(3), np.eye(4), [], {})
    ctx = example_context()
    r = BackgroundPhoto(BackgroundParams(folder="pybullet_data:"), [])
    patch = r.sample(rng_for(2), ctx)
    out = r.apply_with(rgb, patch, rng_for(0), buffers)
    assert np.array_equal(out[depth > 0], rgb[depth > 0])  # geometry untouched
    assert (out[depth == 0] != 7).any()  # the photo shows where nothing was hit
    assert np.array_equal(out, r.apply_with(rgb, patch, rng_for(0), buffers))
    cut = r.apply_with(rgb, {**patch, "replace": "non-objects"}, rng_for(0), buffers)
    assert np.array_equal(cut[ids > 0], rgb[ids > 0]) and (cut[(ids == 0) & (depth > 0)] != 7).any()
    assert cv2.imread(patch["path"]) is not None and math.isfinite(patch["crop"][0])


# --- placement with min_spacing (issue 10: min_spacing that cannot be met) ------------------------------------


def _placed(raw: dict, seed: int = 0) -> np.ndarray:
    loaded = load_spec(raw, base_dir=REPO / "scenes")
    rs = RandomizerSet.from_spec(loaded)
    state, _ = sample_scene(loaded, rs, seed, 0)
    return np.array([o["position"][:2] for o in state["objects"].values()])


def _spaced_spec(count: int, size: list[float], spacing: float) -> dict:
    return {
        "objects": [
            {
                "name": "g",
                "assets": [{"shape": "sphere", "radius": 0.01}],
                "count": count,
                "region": {"center": [0, 0, 0.1], "size": size},
                "min_spacing": spacing,
            }
        ]
    }


def test_min_spacing_is_met_when_the_region_has_room() -> None:
    xy = _placed(_spaced_spec(6, [2.0, 2.0, 0.0], 0.3))
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(xy) for b in xy[i + 1 :]]
    assert len(xy) == 6 and min(gaps) >= 0.3


def test_a_crowded_but_possible_region_warns_and_keeps_the_farthest_try(caplog: pytest.LogCaptureFixture) -> None:
    # Five points 0.25 apart on a 1 m segment fit only exactly (Oler's bound is 5): random tries all but never do.
    raw = _spaced_spec(5, [1.0, 0.0, 0.0], 0.25)
    with caplog.at_level("WARNING", logger="simgen.randomizers.objects"):
        xy = _placed(raw)
    assert "objects[0].min_spacing: scene 0: some objects are closer than 0.25 m" in caplog.text
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(xy) for b in xy[i + 1 :]]
    assert len(xy) == 5 and min(gaps) > 0.0
    raw["objects"][0]["count"] = 6  # one more can never fit: refused when the spec loads, not during the run
    with pytest.raises(SpecError, match=r"objects\[0\]\.min_spacing: 6 objects .* at most 5 fit"):
        load_spec(raw)


def test_the_drop_keeps_the_candidate_farthest_from_its_neighbours() -> None:
    from simgen.randomizers.objects import DropPlacement

    drop = DropPlacement()
    center, size = np.zeros(3), np.array([1.0, 1.0, 0.0])
    before = np.array([[0.0, 0.0], [0.4, 0.4], [-0.4, -0.4], [0.4, -0.4], [-0.4, 0.4]])
    pos, met = drop._drop_point(rng_for(5, "drop"), center, size, 10.0, before)  # 10 m apart: impossible
    replay = rng_for(5, "drop")
    tries = [center + replay.uniform(-0.5, 0.5, size=3) * size for _ in range(drop.max_tries)]
    gap = lambda p: np.min(np.linalg.norm(before - p[:2], axis=1))  # noqa: E731
    assert not met and np.array_equal(pos, max(tries, key=gap))
    pos, met = drop._drop_point(rng_for(5, "drop"), center, size, 0.01, before)
    assert met and np.array_equal(pos, tries[0])  # the first try far enough is taken, as before


def test_joint_names_are_checked_against_the_urdf_before_sampling() -> None:
    """The load-time hook: an unknown joint names its entry's field, with a suggestion, before anything runs."""
    raw = read_spec_file(REPO / "scenes" / "robot_workcell.yaml")
    loaded = load_spec(raw, base_dir=REPO / "scenes")
    ctx = SampleContext(spec=loaded.spec, index=0, base_dir=loaded.base_dir, roots=loaded.roots)
    JointAngles(JointParams(joints=["panda_joint1", "panda_joint7"]), ["robot"]).check(ctx)
    with pytest.raises(SpecError) as info:
        JointAngles(JointParams(joints=["panda_joint1", "panda_jiont3"]), ["robot"]).check(ctx)
    assert info.value.path == "joints[1]"
    assert "no movable joint 'panda_jiont3' (did you mean 'panda_joint3'?)" in str(info.value)
    with pytest.raises(SpecError, match="fixture 'table' .* has no movable joint 'panda_joint1'; it has none"):
        JointAngles(JointParams(joints=["panda_joint1"]), ["table"]).check(ctx)  # sample() would fail there too
    JointAngles(JointParams(), ["table"]).check(ctx)  # no joints named: every movable one (none) is fine
