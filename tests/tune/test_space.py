"""The search space: switches and numbers inside declared bounds, and every candidate a valid spec."""

from __future__ import annotations

import math

import pytest

from simgen.errors import SimgenError
from simgen.randomizers import REGISTRY
from simgen.randomizers.bounds import field_bounds
from simgen.spec import dump_spec, load_spec
from simgen.tune.space import build_space

optuna = pytest.importorskip("optuna")


def _spec(randomizers: list[dict]) -> dict:
    return {
        "version": 1,
        "objects": [{"name": "cubes", "assets": ["pybullet_data:cube_small.urdf"], "count": 2, "tags": ["c"]}],
        "randomizers": randomizers,
    }


RANDOMIZERS = [
    {"type": "appearance/color-v1", "tags": ["c"], "saturation": {"kind": "uniform", "low": 0.3, "high": 1.0}},
    {"type": "sensor/gaussian-noise-v1", "sigma": {"kind": "uniform", "low": 0.0, "high": 1.5}},
    {"type": "sensor/jpeg-v1", "quality": {"kind": "intrange", "low": 90, "high": 100}},
    {"type": "sensor/exposure-v1", "ev": {"kind": "truncnormal", "mean": 0.0, "std": 0.3, "low": -1.0, "high": 1.0}},
    {"type": "sensor/shot-noise-v1", "photons": {"kind": "loguniform", "low": 1000.0, "high": 20000.0}},
    {"type": "sensor/gamma-v1", "gamma": 1.1},
]


def _dims(space) -> dict:
    return {d.name: d for r in space.randomizers for d in r.dims()}


def test_the_space_has_a_switch_per_randomizer_and_the_numbers_of_its_ranges():
    space = build_space(load_spec(_spec(RANDOMIZERS)))
    assert [r.enabled_name for r in space.randomizers] == [
        f"{i}:{r['type']}.enabled" for i, r in enumerate(RANDOMIZERS)
    ]
    dims = _dims(space)
    # Written ranges: low and high; hue and value are default ranges of color-v1, alpha a default constant (not searched).
    assert {
        "0:appearance/color-v1.saturation.low",
        "0:appearance/color-v1.saturation.high",
        "0:appearance/color-v1.hue.low",
        "0:appearance/color-v1.value.high",
    } <= set(dims)
    assert not any(".alpha." in n for n in dims)
    # Inside the declared bounds, and the window around the spec's value: sigma in [0, 255] -> [0, 6].
    sigma = dims["1:sensor/gaussian-noise-v1.sigma.high"]
    assert (sigma.low, sigma.high, sigma.initial) == (0.0, 6.0, 1.5)
    sat = dims["0:appearance/color-v1.saturation.low"]
    assert sat.low == pytest.approx(0.075) and sat.high == 1.0  # bounded by [0, 1] above
    quality = dims["2:sensor/jpeg-v1.quality.low"]
    assert quality.integer and (quality.low, quality.high) == (23, 100)
    # A truncnormal: its mean inside its own [low, high], its spread on a log scale.
    assert (dims["3:sensor/exposure-v1.ev.mean"].low, dims["3:sensor/exposure-v1.ev.mean"].high) == (-1.0, 1.0)
    assert dims["3:sensor/exposure-v1.ev.std"].low > 0
    # A wide positive interval is searched on a log scale; a written constant is searched as a value.
    assert dims["4:sensor/shot-noise-v1.photons.low"].log
    assert dims["5:sensor/gamma-v1.gamma.value"].initial == 1.1
    # Hue has no finite bounds: a window around its range.
    hue = dims["0:appearance/color-v1.hue.high"]
    assert math.isfinite(hue.low) and math.isfinite(hue.high) and hue.low < 0.0 < 1.0 < hue.high


def test_the_spec_as_written_is_the_initial_candidate():
    loaded = load_spec(_spec(RANDOMIZERS))
    space = build_space(loaded)
    again = space.load(space.initial())
    assert again.resolved() == loaded.resolved()  # defaults written out explicitly, same spec
    off = space.toggled(space.initial(), space.randomizers[1], False)
    assert [r.type for r in space.load(off).spec.randomizers] == [
        r["type"] for i, r in enumerate(RANDOMIZERS) if i != 1
    ]
    back_on = space.toggled({k: v for k, v in off.items()}, space.randomizers[1], True)
    assert space.load(back_on).resolved() == loaded.resolved()


@pytest.mark.parametrize("window", [4.0, None])
def test_every_proposed_candidate_is_a_valid_spec_inside_the_declared_bounds(window):
    space = build_space(load_spec(_spec(RANDOMIZERS)), window=window)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen_off = set()
    for _ in range(60):
        trial = study.ask()
        params = space.suggest(trial)
        loaded = space.load(params)  # validates every field against its Params model and Bounds
        for entry in loaded.spec.randomizers:
            cls = REGISTRY.get(entry.type)
            model = cls.Params.model_validate(entry.params)
            for name in cls.Params.model_fields:
                b = field_bounds(cls.Params, name)
                v = getattr(model, name)
                if b is not None and getattr(v, "kind", None) in ("uniform", "intrange", "loguniform"):
                    assert b.contains(v.low) and b.contains(v.high) and v.low <= v.high
        seen_off |= {r.type for r in space.randomizers if not params[r.enabled_name]}
        study.tell(trial, 0.0)
    assert seen_off == {r["type"] for r in RANDOMIZERS}  # every switch was tried off
    if window is None:  # the whole declared bounds: sigma up to 255
        assert _dims(space)["1:sensor/gaussian-noise-v1.sigma.high"].high == 255.0


def test_a_spec_without_randomizers_has_nothing_to_tune():
    with pytest.raises(SimgenError, match="lists no randomizers"):
        build_space(load_spec(_spec([])))
    with pytest.raises(SimgenError, match="window must be > 1"):
        build_space(load_spec(_spec(RANDOMIZERS)), window=1.0)


def test_a_candidate_dump_loads_back_identically():
    space = build_space(load_spec(_spec(RANDOMIZERS)))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    params = space.suggest(study.ask())
    loaded = space.load(params)
    assert dump_spec(load_spec(dump_spec(loaded))) == dump_spec(loaded)


def test_without_optuna_the_error_names_the_extra(monkeypatch):
    import sys

    from simgen.errors import DependencyMissing
    from simgen.tune.study import _require_optuna

    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(DependencyMissing, match=r"pip install 'simgen\[tune\]'"):
        _require_optuna()


def test_randomizers_the_spec_does_not_list_can_be_added_as_candidates_off_by_default():
    loaded = load_spec(_spec(RANDOMIZERS[:1]))
    space = build_space(loaded, add=["sensor/white-balance-v1", {"type": "sensor/gaussian-noise-v1", "sigma": 4.0}])
    added = [r for r in space.randomizers if r.added]
    assert [(r.key, r.added) for r in space.randomizers][1:] == [
        ("1:sensor/white-balance-v1", True),
        ("2:sensor/gaussian-noise-v1", True),
    ]
    # Its default ranges (red, blue) are searched, its default constant (green) is not; a written value is.
    assert {d.name for d in added[0].dims()} == {f"1:sensor/white-balance-v1.{c}.{p}" for c in ("red", "blue")
                                                 for p in ("low", "high")}  # fmt: skip
    assert [d.name for d in added[1].dims()] == ["2:sensor/gaussian-noise-v1.sigma.value"]
    initial = space.initial()
    assert initial["1:sensor/white-balance-v1.enabled"] is False
    assert space.load(initial).resolved() == loaded.resolved()  # the spec as written: candidates off
    on = space.toggled(initial, added[1], True)
    assert [r.type for r in space.load(on).spec.randomizers] == ["appearance/color-v1", "sensor/gaussian-noise-v1"]
    assert space.load(on).spec.randomizers[1].params == {"sigma": 4.0}
    with pytest.raises(SimgenError, match="did you mean 'sensor/white-balance-v1'"):
        build_space(loaded, add=["sensor/white-balanse-v1"])
    with pytest.raises(SimgenError, match="must lie in"):
        build_space(loaded, add=[{"type": "sensor/gaussian-noise-v1", "sigma": 300.0}])
    assert len(build_space(load_spec(_spec([])), add=["sensor/jpeg-v1"]).randomizers) == 1
