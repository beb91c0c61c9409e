"""The randomizer contract: ``sample(rng, ctx) -> patch``, plain data, never touching a simulator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from simgen.frame import FrameBuffers
    from simgen.spec.models import SceneSpec

Stage = Literal["scene", "view", "sensor"]
#: What a randomizer's tags can select: object groups, fixtures, the ground plane.
TargetKind = Literal["objects", "fixtures", "ground"]
TARGET_KINDS: tuple[TargetKind, ...] = ("objects", "fixtures", "ground")

#: The reserved tag that selects the ground plane (when ``ground.kind`` is ``plane``). The ground carries it as a
#: fixture carries its name; a fixture or object group that also carries it is selected with the ground.
GROUND_TAG = "ground"


def spec_tags(spec: SceneSpec) -> dict[str, set[TargetKind]]:
    """Every tag a randomizer may name in ``spec``, with the kinds of things it selects.

    An object group carries its ``tags`` and its name, a fixture its ``tags`` and its name, and a ``plane``
    ground the tag :data:`GROUND_TAG`. These are the tags the scene state's entries carry (see
    :class:`simgen.randomizers.objects.Fixtures` and ``CountSelect``), so the load-time check and sampling agree.
    """
    found: dict[str, set[TargetKind]] = {}
    for group in spec.objects:
        for tag in (*group.tags, group.name):
            found.setdefault(tag, set()).add("objects")
    for fx in spec.fixtures:
        for tag in (*fx.tags, fx.name):
            found.setdefault(tag, set()).add("fixtures")
    if spec.ground.kind == "plane":
        found.setdefault(GROUND_TAG, set()).add("ground")
    return found


@dataclass(frozen=True)
class Targets:
    """What a randomizer's tags select in one scene state.

    Attributes:
        objects: Object uids, in the state's order.
        fixtures: Fixture uids, in the state's order.
        ground: Whether the ground plane is selected.
    """

    objects: list[str]
    fixtures: list[str]
    ground: bool

    def patch(self, draw: Callable[[], dict[str, Any]], *, objects_key: bool = True) -> dict[str, Any]:
        """One patch entry per target, from ``draw()`` called once per target: objects, then fixtures, then ground.

        The order is fixed so that a spec whose tags select only objects draws exactly what it drew before
        fixtures and the ground could be targeted. Fixture entries go under ``"fixtures"`` keyed by uid (the
        engine merges them into the state's fixture list by uid), the ground's under ``"ground"``.

        Args:
            draw: Draws one target's entry, e.g. ``{"color": [r, g, b, a]}``.
            objects_key: Keep an empty ``"objects"`` mapping (as the object randomizers always recorded it).

        Returns:
            ``{"objects": {uid: entry}, "fixtures": {uid: entry}, "ground": entry}``, without the keys of kinds
            not selected (except ``"objects"`` when ``objects_key``).
        """
        out: dict[str, Any] = {"objects": {uid: draw() for uid in self.objects}}
        if not out["objects"] and not objects_key:
            del out["objects"]
        if self.fixtures:
            out["fixtures"] = {uid: draw() for uid in self.fixtures}
        if self.ground:
            out["ground"] = draw()
        return out


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

    def targets(self, tags: list[str], *, default: TargetKind = "objects") -> Targets:
        """What ``tags`` select: objects, fixtures and the ground plane carrying any of them.

        With no tags a randomizer acts on its ``default`` kind alone: every object (``"objects"``), every
        fixture, or the ground. The ground is selected by :data:`GROUND_TAG` when the state has a ``plane``.
        """
        ground = (self.state.get("ground") or {}).get("kind") == "plane"
        if not tags:
            return Targets(
                self.target_uids([]) if default == "objects" else [],
                self.target_fixtures([]) if default == "fixtures" else [],
                ground and default == "ground",
            )
        return Targets(self.target_uids(tags), self.target_fixtures(tags), ground and GROUND_TAG in tags)


class Randomizer:
    """Base class: subclasses set ``name``, ``stage``, ``Params`` and implement :meth:`sample`.

    A randomizer samples and never applies: :meth:`sample` returns a JSON-serializable patch that
    the engine merges into the scene or view state and the backend applies. So every frame can be
    replayed from the manifest, and randomizers are testable without a simulator.

    Args:
        params: Validated parameters (an instance of ``Params``).
        tags: Target what carries any of these tags (objects, and the fixtures and ground where ``targets``
            allows); empty means every object, unless the randomizer documents another default.
    """

    name: ClassVar[str]
    stage: ClassVar[Stage]
    Params: ClassVar[type[BaseModel]] = NoParams
    #: The spec sections a core randomizer reads, for ``simgen list randomizers``.
    reads: ClassVar[tuple[str, ...]] = ()
    #: Parameters for docs and conformance checks, when the defaults alone are not valid.
    example_params: ClassVar[dict[str, Any]] = {}
    #: What its ``tags`` can select (see :class:`Targets`). The loader refuses a tag that selects none of these,
    #: and any tag when it is ``()`` (the randomizer ignores tags). ``None`` (plugins that do not say) only checks
    #: that each tag names something.
    targets: ClassVar[tuple[TargetKind, ...] | None] = None

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
