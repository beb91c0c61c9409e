"""Conformance checks every registered component must pass (in the spirit of gymnasium's check_env)."""

from __future__ import annotations

import builtins
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simgen.randomizers import REGISTRY, Randomizer, SampleContext
from simgen.sampling import rng_for
from simgen.spec.loader import LoadedSpec, load_spec

SIMULATOR_MODULES = ("pybullet", "carla")


class SimulatorTouched(AssertionError):
    """A randomizer imported or used a simulator while sampling."""


@contextmanager
def no_simulator() -> Iterator[None]:
    """Make any import or use of a simulator module fail inside the block."""
    saved = {name: sys.modules.get(name) for name in SIMULATOR_MODULES}
    real_import = builtins.__import__

    def guarded(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] in SIMULATOR_MODULES:
            raise SimulatorTouched(f"a randomizer imported '{name}' while sampling; randomizers must never apply")
        return real_import(name, *args, **kwargs)

    class _Poison:
        def __getattr__(self, attr: str) -> Any:
            raise SimulatorTouched(f"a randomizer used a simulator ({attr}) while sampling")

    for name in SIMULATOR_MODULES:
        sys.modules[name] = _Poison()  # type: ignore[assignment]
    builtins.__import__ = guarded
    try:
        yield
    finally:
        builtins.__import__ = real_import
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def example_context(spec: LoadedSpec | str | Path | None = None, index: int = 0) -> SampleContext:
    """A context with a sampled scene state (from the default scene unless ``spec`` is given)."""
    from simgen.engine.scene_state import RandomizerSet, sample_scene, sample_view

    if spec is None:
        spec = conformance_spec()
    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
    randomizers = RandomizerSet.from_spec(loaded)
    state, _ = sample_scene(loaded, randomizers, seed=0, scene_index=index)
    view, _ = sample_view(loaded, randomizers, seed=0, frame_index=index, scene_state=state)
    return SampleContext(loaded.spec, index, state, loaded.base_dir, loaded.roots, view=view)


def scene_library_path(name: str) -> Path:
    """Path of a scene of the library that ships with simgen (the repository's ``scenes/``), e.g. ``bin_picking.yaml``.

    Raises:
        SimgenError: No such scene, with the closest name.
    """
    from importlib.resources import files

    from simgen.errors import SimgenError, did_you_mean

    library = files("simgen.scenes")
    entry = library.joinpath(name)
    if not entry.is_file():
        names = [e.name for e in library.iterdir() if e.name.endswith(".yaml")]
        raise SimgenError(f"no scene '{name}' in simgen's scene library{did_you_mean(name, names)}")
    return Path(str(entry))


def conformance_spec() -> LoadedSpec:
    """The default scene with every section randomized, so every core randomizer has something to draw."""
    from simgen.spec import read_spec_file

    # From the installed package, not the source tree: plugin authors run this from a pip-installed simgen.
    path = scene_library_path("tabletop_clutter.yaml")
    raw = read_spec_file(path)
    raw["fixtures"][0]["position"] = [{"kind": "uniform", "low": -0.05, "high": 0.05}, 0.0, 0.0]
    raw["fixtures"].append(
        {"name": "arm", "asset": "pybullet_data:franka_panda/panda.urdf", "position": [0.0, -0.6, 0.63],
         "tags": ["robot"], "labeled": True, "link_labels": True}
    )  # fmt: skip
    return load_spec(raw, base_dir=path.parent)


def check_randomizer(
    randomizer: Randomizer, ctx: SampleContext | None = None, *, seeds: tuple[int, ...] = (0, 1, 2)
) -> None:
    """Assert a randomizer's contract.

    * the same seed gives the same patch, and different seeds give different patches;
    * the patch is plain JSON (it round-trips through ``json`` unchanged);
    * sampling never imports or uses a simulator.

    Without ``ctx``, or with one whose spec lacks a backend section the randomizer reads (``reads =
    ("carla",)``), it is checked against a library scene that has that section (``scenes/carla/night_rain.yaml``).

    Raises:
        AssertionError: With what was violated.
    """
    if ctx is None or _lacks_section(randomizer, ctx):
        ctx = example_context(_library_scene_for(randomizer))
    patches = []
    with no_simulator():
        for seed in seeds:
            first = randomizer.sample(rng_for(seed, "check", randomizer.name), ctx)
            again = randomizer.sample(rng_for(seed, "check", randomizer.name), ctx)
            if not isinstance(first, dict):
                raise AssertionError(f"{randomizer.name}: sample() must return a dict, got {type(first).__name__}")
            text = _plain_json(randomizer.name, first)
            if text != _plain_json(randomizer.name, again):
                raise AssertionError(f"{randomizer.name}: the same seed gave different patches")
            patches.append(text)
    if len(set(patches)) == 1 and patches[0] != "{}":
        raise AssertionError(f"{randomizer.name}: different seeds gave the same patch; is the rng used?")


#: Spec sections a backend's randomizers read, and the library scene that has one (to check them against).
SECTION_SCENES = {"carla": "carla/night_rain.yaml"}


def _lacks_section(randomizer: Randomizer, ctx: SampleContext) -> bool:
    """Whether the randomizer reads a backend's section (``reads``) that the context's spec does not have."""
    return any(
        getattr(ctx.spec, name, None) is None for name in getattr(randomizer, "reads", ()) if name in SECTION_SCENES
    )


def _library_scene_for(randomizer: Randomizer) -> Path | None:
    """The library scene with the backend section the randomizer reads (a CARLA scene for ``carla/*``), else None."""
    for name in getattr(randomizer, "reads", ()):
        if name in SECTION_SCENES:
            return scene_library_path(SECTION_SCENES[name])
    return None


def _plain_json(name: str, patch: dict[str, Any]) -> str:
    try:
        text = json.dumps(patch, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{name}: the patch is not plain JSON: {exc}") from None
    if json.loads(text) != patch:
        raise AssertionError(f"{name}: the patch changes through JSON (tuples or numpy values?)")
    return text


def registered_randomizers() -> list[str]:
    """Names of every registered randomizer (for parametrized conformance tests)."""
    return REGISTRY.names()
