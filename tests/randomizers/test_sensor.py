from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from simgen.engine.scene_state import RandomizerSet, apply_sensor
from simgen.errors import SpecError
from simgen.frame import FrameBuffers
from simgen.randomizers import REGISTRY
from simgen.randomizers import sensor_ops as ops
from simgen.randomizers.base import SensorRandomizer
from simgen.randomizers.bounds import Bounds
from simgen.sampling import parse_distribution, rng_for
from simgen.spec.loader import randomizer_params
from simgen.spec.models import RandomizerSpec
from simgen.testing import example_context

SENSOR = [n for n in REGISTRY.names() if n.startswith("sensor/")]
NOISY = {"sensor/gaussian-noise-v1", "sensor/shot-noise-v1", "sensor/dead-pixels-v1"}
# A clearly visible setting of every effect, for the tests that need the effect to show.
STRONG = {
    "sensor/gaussian-noise-v1": {"sigma": 10.0},
    "sensor/shot-noise-v1": {"photons": 200.0},
    "sensor/motion-blur-v1": {"length_px": 7.0, "angle_deg": 30.0},
    "sensor/defocus-blur-v1": {"radius_px": 2.5},
    "sensor/jpeg-v1": {"quality": 5},
    "sensor/exposure-v1": {"ev": 1.0},
    "sensor/gamma-v1": {"gamma": 1.8},
    "sensor/white-balance-v1": {"red": 1.4, "green": 1.0, "blue": 0.7},
    "sensor/contrast-v1": {"factor": 1.5},
    "sensor/vignette-v1": {"strength": 0.6, "falloff": 2.0},
    "sensor/chromatic-aberration-v1": {"shift_px": 3.0},
    "sensor/dead-pixels-v1": {"dead_fraction": 0.01, "hot_fraction": 0.01, "pattern_seed": None},
}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    datasets = pytest.importorskip("sklearn.datasets", reason="the sample photo ships with scikit-learn ([metrics])")
    image = datasets.load_sample_image("china.jpg")
    return cv2.resize(image, (128, 96), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def ctx():
    return example_context()


def effect(name: str) -> SensorRandomizer:
    return REGISTRY.get(name)()


def lap_var(rgb: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def flat(value: int, shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    return np.full((*shape, 3), value, dtype=np.uint8)


def test_every_effect_in_the_brief_is_registered() -> None:
    assert len(SENSOR) == 12
    assert set(STRONG) == set(SENSOR)
    assert all(REGISTRY.get(n).stage == "sensor" for n in SENSOR)


# --- the contract, for every effect ----------------------------------------------------------------


@pytest.mark.parametrize("name", SENSOR)
def test_apply_is_pure_and_deterministic(name: str, photo: np.ndarray, ctx) -> None:
    r = effect(name)
    patch = r.sample(rng_for(3, "s"), ctx)
    assert json.loads(json.dumps(patch)) == patch
    before = photo.copy()
    out = r.apply(photo, patch, rng_for(3, "a"))
    again = r.apply(photo, patch, rng_for(3, "a"))
    assert np.array_equal(photo, before), "apply mutated its input"
    assert out is not photo and not np.shares_memory(out, photo)
    assert out.dtype == np.uint8 and out.shape == photo.shape
    assert np.array_equal(out, again)


@pytest.mark.parametrize("name", SENSOR)
def test_strong_setting_changes_the_pixels(name: str, photo: np.ndarray) -> None:
    out = effect(name).apply(photo, STRONG[name], rng_for(0, "a"))
    assert np.abs(out.astype(int) - photo).mean() > 0.5


@pytest.mark.parametrize("name", SENSOR)
def test_different_seeds_give_different_images(name: str, photo: np.ndarray, ctx) -> None:
    r = effect(name)
    outs = set()
    for seed in range(5):
        patch = r.sample(rng_for(seed, "s"), ctx)
        outs.add(r.apply(photo, patch, rng_for(seed, "a")).tobytes())
    assert len(outs) > 1


@pytest.mark.parametrize("name", SENSOR)
def test_only_noise_effects_use_the_apply_rng(name: str, photo: np.ndarray) -> None:
    r = effect(name)
    a = r.apply(photo, STRONG[name], rng_for(0, "a"))
    b = r.apply(photo, STRONG[name], rng_for(1, "a"))
    assert np.array_equal(a, b) != (name in NOISY)


@pytest.mark.parametrize("name", SENSOR)
@pytest.mark.parametrize(
    "bad", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8)]
)
def test_apply_rejects_what_is_not_uint8_rgb(name: str, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"uint8 array of shape \(H, W, 3\)"):
        effect(name).apply(bad, STRONG[name], rng_for(0, "a"))


def test_the_engine_chain_replays_byte_identically(photo: np.ndarray, ctx) -> None:
    sensors = [effect(n) for n in SENSOR]
    rs = RandomizerSet(scene=[], view=[], sensor=sensors)
    patches = {f"{pos}:{r.name}": r.sample(rng_for(7, "sensor", 2, pos, r.name), ctx) for pos, r in enumerate(sensors)}
    before = photo.copy()
    h, w = photo.shape[:2]
    buffers = FrameBuffers(
        rgb=photo, depth_m=np.ones((h, w), np.float32), instance_ids=np.zeros((h, w), np.uint16),
        K=np.eye(3), T_world_cam=np.eye(4), objects=[], object_poses={},
    )  # fmt: skip
    first = apply_sensor(buffers, rs, patches, seed=7, frame_index=2)
    second = apply_sensor(buffers, rs, json.loads(json.dumps(patches)), seed=7, frame_index=2)
    assert np.array_equal(photo, before)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, photo)


# --- parameters -------------------------------------------------------------------------------------


def params(name: str, **values):
    return randomizer_params(RandomizerSpec(type=name, **values), REGISTRY.get(name), "randomizers[0]", None)


def test_spec_entry_with_a_distribution_draws_inside_it(ctx) -> None:
    r = REGISTRY.get("sensor/motion-blur-v1")(
        params("sensor/motion-blur-v1", length_px={"kind": "uniform", "low": 3, "high": 9})
    )
    lengths = [r.sample(rng_for(s, "s"), ctx)["length_px"] for s in range(50)]
    assert all(3 <= v < 9 for v in lengths) and len(set(lengths)) == 50


def test_integer_parameters_draw_integers(ctx) -> None:
    r = REGISTRY.get("sensor/jpeg-v1")(params("sensor/jpeg-v1", quality={"kind": "uniform", "low": 10, "high": 20}))
    q = r.sample(rng_for(0, "s"), ctx)["quality"]
    assert isinstance(q, int) and 10 <= q <= 20


@pytest.mark.parametrize(
    ("name", "values", "path", "match"),
    [
        ("sensor/jpeg-v1", {"quality": 150}, "randomizers[0].quality", r"must lie in \[1, 100\]"),
        (
            "sensor/gaussian-noise-v1",
            {"sigma": {"kind": "uniform", "low": -2, "high": 3}},
            "randomizers[0].sigma",
            "low",
        ),
        (
            "sensor/vignette-v1",
            {"strength": {"kind": "normal", "mean": 0.3, "std": 0.1}},
            "randomizers[0].strength",
            "truncnormal",
        ),
        ("sensor/exposure-v1", {"evs": 1.0}, "randomizers[0].evs", "did you mean 'ev'"),
    ],
)
def test_bad_parameters_fail_at_load_with_the_field_path(name, values, path, match) -> None:
    with pytest.raises(SpecError, match=match) as info:
        params(name, **values)
    assert info.value.path == path


def test_bounds_accept_every_bounded_distribution() -> None:
    b = Bounds(0, 10)
    for ok in (
        3,
        2.5,
        {"kind": "truncnormal", "mean": 5, "std": 9, "low": 0, "high": 10},
        {"kind": "loguniform", "low": 0.1, "high": 10},
        {"kind": "choice", "values": [0, 10]},
        {"kind": "sweep", "values": [1, 2]},
        {"kind": "normal", "mean": 4, "std": 0},
    ):
        assert b.check(parse_distribution(ok)) == parse_distribution(ok)
    with pytest.raises(ValueError, match="must be a number"):
        b.check(parse_distribution({"kind": "choice", "values": ["a"]}))


def test_dead_pixel_pattern_seed_fixes_the_positions(photo: np.ndarray) -> None:
    r = effect("sensor/dead-pixels-v1")
    patch = {**STRONG["sensor/dead-pixels-v1"], "pattern_seed": 11}
    a = r.apply(photo, patch, rng_for(0, "a"))
    b = r.apply(photo, patch, rng_for(1, "a"))
    assert np.array_equal(a, b)


# --- each effect does what it says ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sensor/motion-blur-v1", "sensor/defocus-blur-v1"])
def test_blur_lowers_laplacian_variance(name: str, photo: np.ndarray) -> None:
    out = effect(name).apply(photo, STRONG[name], rng_for(0, "a"))
    assert lap_var(out) < 0.5 * lap_var(photo)


def test_motion_blur_smears_along_its_angle(photo: np.ndarray) -> None:
    gray = lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(float)  # noqa: E731
    horizontal = ops.motion_blur(photo, 9.0, 0.0)
    g0, g1 = gray(photo), gray(horizontal)
    dx = lambda g: np.abs(np.diff(g, axis=1)).mean()  # noqa: E731
    dy = lambda g: np.abs(np.diff(g, axis=0)).mean()  # noqa: E731
    assert dx(g1) / dx(g0) < 0.6 * (dy(g1) / dy(g0))


def test_kernels_are_normalised_and_shaped() -> None:
    k = ops.motion_kernel(5.0, 0.0)
    assert math.isclose(float(k.sum()), 1.0, rel_tol=1e-6)
    rows = np.nonzero(k.sum(axis=1) > 1e-6)[0]
    cols = np.nonzero(k.sum(axis=0) > 1e-6)[0]
    assert len(rows) == 1 and len(cols) == 5 and np.allclose(k[rows[0], cols], 0.2)
    assert np.allclose(ops.motion_kernel(5.0, 90.0), k.T, atol=1e-6)
    d = ops.disk_kernel(3.0)
    assert math.isclose(float(d.sum()), 1.0, rel_tol=1e-6)
    assert np.allclose(d, d.T) and np.allclose(d, d[::-1])
    assert np.array_equal(ops.motion_blur(flat(90), 0.0, 10.0), flat(90))


def test_blur_keeps_a_flat_image_flat() -> None:
    for out in (ops.motion_blur(flat(77), 6.3, 21.0), ops.defocus_blur(flat(77), 2.2)):
        assert np.abs(out.astype(int) - 77).max() <= 1


def test_gaussian_noise_residual_std_is_sigma() -> None:
    grey = flat(128, (256, 256))
    out = ops.gaussian_noise(grey, 10.0, rng_for(0, "n"))
    residual = out.astype(float) - 128
    assert abs(residual.std() - 10.0) < 0.3
    assert abs(residual.mean()) < 0.2


def test_gaussian_noise_on_the_photo(photo: np.ndarray) -> None:
    out = ops.gaussian_noise(photo, 6.0, rng_for(0, "n"))
    mid = (photo > 30) & (photo < 225)  # away from clipping
    assert abs((out.astype(float) - photo)[mid].std() - 6.0) < 0.4


def test_shot_noise_grows_with_fewer_photons_and_keeps_the_mean() -> None:
    grey = flat(128, (256, 256))
    few = ops.shot_noise(grey, 100.0, rng_for(0, "n")).astype(float)
    many = ops.shot_noise(grey, 10000.0, rng_for(0, "n")).astype(float)
    assert few.std() > 5 * many.std()
    lin = lambda im: ops.to_linear(im.astype(np.uint8)).mean()  # noqa: E731
    assert math.isclose(lin(few), lin(grey), rel_tol=0.03)


def test_shot_noise_is_larger_on_bright_pixels() -> None:
    dark = ops.shot_noise(flat(40, (128, 128)), 300.0, rng_for(0, "n"))
    bright = ops.shot_noise(flat(200, (128, 128)), 300.0, rng_for(0, "n"))
    dlin = lambda im: ops.to_linear(im).std()  # noqa: E731
    assert dlin(bright) > 2 * dlin(dark)


@pytest.mark.parametrize(("ev", "ratio"), [(1.0, 2.0), (-1.0, 0.5), (0.5, math.sqrt(2))])
def test_exposure_scales_linear_light(photo: np.ndarray, ev: float, ratio: float) -> None:
    out = ops.exposure(photo, ev)
    lin_in, lin_out = ops.to_linear(photo), ops.to_linear(out)
    unclipped = lin_in * ratio < 0.95
    assert math.isclose(lin_out[unclipped].mean() / lin_in[unclipped].mean(), ratio, rel_tol=0.03)


def test_exposure_zero_is_identity(photo: np.ndarray) -> None:
    assert np.array_equal(ops.exposure(photo, 0.0), photo)


def test_jpeg_low_quality_adds_8x8_block_edges(photo: np.ndarray) -> None:
    def blockiness(im: np.ndarray) -> float:
        d = np.abs(np.diff(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(float), axis=1))
        at_edges = d[:, 7::8].mean()
        inside = np.delete(d, np.s_[7::8], axis=1).mean()
        return at_edges / inside

    low = ops.jpeg(photo, 5)
    assert blockiness(low) > 1.5 * blockiness(photo)
    errors = [np.abs(ops.jpeg(photo, q).astype(int) - photo).mean() for q in (5, 30, 90, 100)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 3.5  # what is left at q=100 is mostly 4:2:0 chroma subsampling


def test_jpeg_keeps_colour_order() -> None:
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 220
    out = ops.jpeg(red, 90).astype(int)
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 20


def test_gamma_bends_midtones_and_keeps_black_and_white() -> None:
    ramp = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (4, 1, 3))
    dark, light = ops.gamma(ramp, 2.0), ops.gamma(ramp, 0.5)
    assert dark.mean() < ramp.mean() < light.mean()
    for out in (dark, light):
        assert out[0, 0, 0] == 0 and out[0, 255, 0] == 255


def test_white_balance_moves_each_channel_its_own_way(photo: np.ndarray) -> None:
    out = ops.white_balance(photo, 1.4, 1.0, 0.7).reshape(-1, 3).astype(float)
    before = photo.reshape(-1, 3).astype(float)
    assert out[:, 0].mean() > before[:, 0].mean() + 5
    assert np.array_equal(out[:, 1], before[:, 1])
    assert out[:, 2].mean() < before[:, 2].mean() - 5


def test_contrast_scales_spread_about_the_mean(photo: np.ndarray) -> None:
    gray = lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(float)  # noqa: E731
    assert gray(ops.contrast(photo, 0.5)).std() < 0.6 * gray(photo).std()
    assert gray(ops.contrast(photo, 1.5)).std() > 1.2 * gray(photo).std()
    assert np.array_equal(ops.contrast(photo, 1.0), photo)
    assert np.ptp(ops.contrast(photo, 0.0)) == 0


def test_vignette_darkens_corners_not_centre(photo: np.ndarray) -> None:
    out = ops.vignette(photo, 0.6, 2.0)
    lin_in, lin_out = ops.to_linear(photo), ops.to_linear(out)
    corner = (slice(0, 8), slice(0, 8))
    centre = (slice(44, 52), slice(60, 68))
    corner_ratio = lin_out[corner].mean() / lin_in[corner].mean()
    centre_ratio = lin_out[centre].mean() / lin_in[centre].mean()
    assert corner_ratio < 0.55 and centre_ratio > 0.97


def test_vignette_corner_keeps_one_minus_strength() -> None:
    out = ops.vignette(flat(200), 0.5, 2.0)
    ratio = ops.to_linear(out[0, 0]) / ops.to_linear(flat(200)[0, 0])
    assert np.allclose(ratio, 0.5, rtol=0.02)
    assert np.array_equal(ops.vignette(flat(200), 0.0, 2.0), flat(200))


def test_chromatic_aberration_moves_red_out_and_blue_in() -> None:
    img = np.zeros((97, 129, 3), np.uint8)
    img[10:13, 14:17] = 255  # a white dot near the top-left corner
    out = ops.chromatic_aberration(img, 4.0)
    assert np.array_equal(out[..., 1], img[..., 1]), "green must stay put"

    def centroid(ch: np.ndarray) -> np.ndarray:
        ys, xs = np.nonzero(ch)
        w = ch[ys, xs].astype(float)
        return np.array([(xs * w).sum(), (ys * w).sum()]) / w.sum()

    centre = np.array([64.0, 48.0])
    g, r, b = (np.linalg.norm(centroid(out[..., c]) - centre) for c in (1, 0, 2))
    assert r > g + 1.5 and b < g - 1.5


def test_chromatic_aberration_grows_towards_the_edges() -> None:
    yy, xx = np.mgrid[:96, :128]
    pattern = np.repeat((((xx // 3 + yy // 3) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)
    d = np.abs(ops.chromatic_aberration(pattern, 3.0).astype(int) - pattern)
    assert d[:16, :16, 0].mean() > 4 * d[40:56, 56:72, 0].mean()
    assert d[-16:, -16:, 2].mean() > 4 * d[40:56, 56:72, 2].mean()


def test_dead_pixels_match_the_fractions() -> None:
    grey = flat(100, (200, 200))
    out = ops.dead_pixels(grey, 0.02, 0.01, rng_for(0, "d"))
    n = 200 * 200
    dead = np.all(out == 0, axis=2).sum() / n
    hot = np.all(out == 255, axis=2).sum() / n
    assert abs(dead - 0.02) < 0.003 and abs(hot - 0.01) < 0.002
    assert np.all((out == 0) | (out == 255) | (out == 100))
    with pytest.raises(ValueError, match="sum <= 1"):
        ops.dead_pixels(grey, 0.7, 0.6, rng_for(0, "d"))
