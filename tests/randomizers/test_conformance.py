from __future__ import annotations

import pytest

from simgen.randomizers import REGISTRY
from simgen.spec.loader import randomizer_params
from simgen.spec.models import RandomizerSpec
from simgen.testing import check_randomizer, example_context
from simgen.testing.conformance import SimulatorTouched, no_simulator


@pytest.fixture(scope="module")
def ctx():
    return example_context()


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_registered_randomizer_conforms(name: str, ctx) -> None:
    cls = REGISTRY.get(name)
    params = randomizer_params(RandomizerSpec(type=name, **cls.example_params), cls, name, None)
    check_randomizer(cls(params, []), ctx)


def test_checker_catches_a_randomizer_that_touches_the_simulator(ctx) -> None:
    from simgen.randomizers.base import Randomizer

    class Applies(Randomizer):
        name = "bad/applies-v1"
        stage = "scene"

        def sample(self, rng, ctx):
            import pybullet  # noqa: F401  # a randomizer must never do this

            return {"x": float(rng.random())}

    with pytest.raises(SimulatorTouched):
        check_randomizer(Applies(), ctx)


def test_checker_catches_ignored_seed_and_numpy_values(ctx) -> None:
    from simgen.randomizers.base import Randomizer

    class Constant(Randomizer):
        name = "bad/constant-v1"
        stage = "scene"

        def sample(self, rng, ctx):
            return {"x": 1.0}

    class Numpy(Randomizer):
        name = "bad/numpy-v1"
        stage = "scene"

        def sample(self, rng, ctx):
            return {"x": rng.random(2)}

    with pytest.raises(AssertionError, match="same patch"):
        check_randomizer(Constant(), ctx)
    with pytest.raises(AssertionError, match="not plain JSON"):
        check_randomizer(Numpy(), ctx)


def test_guard_restores_modules() -> None:
    import pybullet

    with no_simulator():
        pass
    import pybullet as again

    assert again is pybullet


# --- every parameter of every registered randomizer is validated at load time (issue 10) -------------------

import copy  # noqa: E402
import math  # noqa: E402
from pathlib import Path  # noqa: E402

from simgen.errors import SpecError  # noqa: E402
from simgen.spec import load_spec, read_spec_file  # noqa: E402

SCENES = Path(__file__).resolve().parents[2] / "scenes"
BASE = read_spec_file(SCENES / "tabletop_clutter.yaml")


def _param_cases() -> list[tuple[str, str]]:
    return [(name, field) for name in REGISTRY.names() for field in REGISTRY.get(name).Params.model_fields]


def _load_with(name: str, field: str, value: object) -> None:
    raw = copy.deepcopy(BASE)
    entry = {"type": name, **REGISTRY.get(name).example_params, field: value}
    raw["randomizers"] = [entry]
    load_spec(raw, base_dir=SCENES, check_assets=False)


@pytest.mark.parametrize(("name", "field"), _param_cases(), ids=[f"{n}.{f}" for n, f in _param_cases()])
def test_every_parameter_refuses_nan_infinity_and_wrong_types(name: str, field: str) -> None:
    cls = REGISTRY.get(name)
    annotation = cls.Params.model_fields[field].annotation
    bad: list[object] = [math.nan, math.inf, -math.inf, {"kind": "const", "value": math.nan}, 10**400]
    if annotation is not bool:
        bad.append(True)  # a boolean is never a number, a name or a list
    for value in bad:
        with pytest.raises(SpecError) as info:
            _load_with(name, field, value)
        assert info.value.path.startswith(f"randomizers[0].{field}"), (value, str(info.value))


def test_the_issue_colour_parameters_are_bounded(tmp_path) -> None:
    """`saturation: 5`, `alpha: -1` and `value: .nan` were accepted; each now fails at load time, from YAML."""
    for field, text in [("saturation", "5"), ("alpha", "-1"), ("value", ".nan")]:
        spec = tmp_path / f"{field}.yaml"
        raw = {k: v for k, v in BASE.items() if k != "randomizers"}
        section = f"randomizers:\n  - type: appearance/color-v1\n    tags: [clutter]\n    {field}: {text}\n"
        spec.write_text(yaml_dump(raw) + section)
        with pytest.raises(SpecError) as info:
            load_spec(spec, base_dir=SCENES, check_assets=False)
        assert info.value.path == f"randomizers[0].{field}", str(info.value)


def yaml_dump(raw: dict) -> str:
    import yaml

    return yaml.safe_dump(raw, sort_keys=False)
