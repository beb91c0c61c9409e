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
