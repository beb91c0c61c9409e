"""The randomizer contract: ``sample(rng, ctx) -> patch``, plain data, never touching a simulator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from simgen.frame import FrameBuffers
    from simgen.spec.models import SceneSpec

Stage = Literal["scene", "view", "sensor"]


class RandomizerParams(BaseModel):
    """Base of every randomizer's parameters: no unknown keys, finite numbers only, no coercion.

    Unknown keys, NaN, infinities, and booleans or strings given for numbers are all refused when the
    spec loads, so a typo fails there with its field path and never mid-run.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class NoParams(RandomizerParams):
    """A randomizer without parameters of its own (it reads its spec section)."""


@dataclass(frozen=True)
class SampleContext:
    """What a randomizer may read while sampling. It is data only: no simulator handle.

    Attributes:
        spec: The validated scene spec.
        index: The scene index (scene stage) or the frame index (view and sensor stages).
        state: The scene state built so far (scene stage) or the settled scene (view stage).
        base_dir: The spec's folder, for assets given relative to it.
        roots: Extra allowed asset roots.
        stereo_side: With a stereo camera, 0 for the left and 1 for the right frame of a pair (both
            frames get the same ``index`` and the same rng, so they share every draw); else None.
        view: The view state built so far by earlier view randomizers (the camera, for occluders).
    """

    spec: SceneSpec
    index: int
    state: Mapping[str, Any] = field(default_factory=dict)
    base_dir: Path | None = None
    roots: tuple[Path, ...] = ()
    stereo_side: int | None = None
    view: Mapping[str, Any] = field(default_factory=dict)

    def target_fixtures(self, tags: list[str]) -> list[str]:
        """The uids of the scene's fixtures carrying any of ``tags`` (all fixtures when ``tags`` is empty)."""
        fixtures = self.state.get("fixtures", [])
        wanted = set(tags)
        return [f["uid"] for f in fixtures if not tags or wanted.intersection(f.get("tags", ()))]

    def target_uids(self, tags: list[str]) -> list[str]:
        """The uids of the scene's objects carrying any of ``tags`` (all objects when ``tags`` is empty)."""
        objects = self.state.get("objects", {})
        if not tags:
            return list(objects)
        wanted = set(tags)
        return [uid for uid, obj in objects.items() if wanted.intersection(obj.get("tags", ()))]


class Randomizer:
    """Base class: subclasses set ``name``, ``stage``, ``Params`` and implement :meth:`sample`.

    A randomizer samples and never applies: :meth:`sample` returns a JSON-serializable patch that
    the engine merges into the scene or view state and the backend applies. So every frame can be
    replayed from the manifest, and randomizers are testable without a simulator.

    Args:
        params: Validated parameters (an instance of ``Params``).
        tags: Target objects carrying any of these tags; empty means all objects.
    """

    name: ClassVar[str]
    stage: ClassVar[Stage]
    Params: ClassVar[type[BaseModel]] = NoParams
    #: The spec sections a core randomizer reads, for ``simgen list randomizers``.
    reads: ClassVar[tuple[str, ...]] = ()
    #: Parameters for docs and conformance checks, when the defaults alone are not valid.
    example_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: BaseModel | None = None, tags: list[str] | None = None) -> None:
        self.params = params if params is not None else self.Params()
        self.tags = list(tags or [])

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Draw this randomizer's values for one scene or frame and return them as a patch."""
        raise NotImplementedError

    def check(self, ctx: SampleContext) -> None:
        """Check this randomizer against the whole spec when it loads, before anything is written.

        ``Params`` checks each parameter alone; this checks what needs the spec or its assets (a joint
        name against the robot's URDF, say), so that it fails at load time rather than mid-run. The
        default checks nothing. ``ctx`` holds the spec, its folder and roots; ``state`` is empty.

        Raises:
            SpecError: With ``path`` relative to the randomizer's entry (``joints[1]``); the loader
                prefixes ``randomizers[i].``.
            AssetError: An asset it reads cannot be read.
        """


class SensorRandomizer(Randomizer):
    """A post-render effect on the RGB image only; labels are never touched.

    ``sample`` draws the effect's parameters (recorded in the manifest); ``apply`` is a pure
    function of the image and that patch, so replay gives the same bytes.
    """

    stage: ClassVar[Stage] = "sensor"
    #: True for effects that also read the frame's masks or depth (never write them): see ``apply_with``.
    needs_buffers: ClassVar[bool] = False

    def apply(self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        """Return a new uint8 RGB image with the effect applied."""
        raise NotImplementedError

    def apply_with(
        self, rgb: np.ndarray, patch: dict[str, Any], rng: np.random.Generator, buffers: FrameBuffers
    ) -> np.ndarray:
        """Like :meth:`apply`, for effects that read the frame's depth or instance mask (read only)."""
        return self.apply(rgb, patch, rng)
