"""Pydantic models of a scenario's own sections: ``factors``, ``design``, ``require`` and ``timeline``.

A scenario file is a scene spec (see :mod:`simgen.spec`) with these sections beside the spec's fields.
:func:`simgen.scenarios.load_scenario` splits them off, validates them here and validates the spec
through :func:`simgen.spec.load_spec`. Like the spec, every model refuses unknown keys (with a "did you
mean"), NaN and infinities, booleans given as numbers, and sizes beyond the bounds below, so a file from
anyone (a colleague, an LLM) is checked before anything runs. Nothing here is ever evaluated: the
vocabulary of constraints is closed, and a patch is plain data.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from simgen.sampling import Integer, Number, first_non_finite
from simgen.spec.errors import FieldProblem

#: The most factors a scenario may have.
MAX_FACTORS = 32
#: The most levels (or steps of a range) one factor may have.
MAX_LEVELS = 64
#: The most cells a design may have (and the most frames a ``random``, ``lhs`` or ``sobol`` design may draw).
MAX_CELLS = 100_000
#: The most constraints one scenario may require.
MAX_CONSTRAINTS = 64
#: The most values (leaves) one level's patch may set.
MAX_PATCH_LEAVES = 4096
#: The highest strength of a ``t-wise`` design.
MAX_STRENGTH = 6
#: The most rejection attempts per frame that a scenario may ask for.
MAX_ATTEMPTS = 10_000
#: The most events a timeline may hold, and the most points of one trajectory.
MAX_EVENTS = 256
MAX_TRAJECTORY_POINTS = 1000

#: Design kinds, as written in ``design.kind``.
DESIGN_KINDS = ("full", "pairwise", "t-wise", "random", "lhs", "sobol")
#: Designs that need discrete levels (a range factor must give ``steps``).
DISCRETE_DESIGNS = ("full", "pairwise", "t-wise")
#: Designs that draw ``n`` cells.
SAMPLED_DESIGNS = ("random", "lhs", "sobol")

#: Per-object attributes a constraint may filter on or aggregate (see :mod:`simgen.scenarios.constraints`).
OBJECT_ATTRIBUTES = (
    "visible_px",
    "visibility",
    "truncation",
    "box_w",
    "box_h",
    "box_area",
    "distance",
    "border_distance",
)
#: Statistics a constraint may compare: of the selected objects, or of the whole image.
OBJECT_STATS = ("count", "min", "max", "mean")
IMAGE_STATS = ("brightness", "contrast")
STATS = (*OBJECT_STATS, *IMAGE_STATS)
#: Comparison keys, in the order they are checked and reported.
COMPARISONS = ("ge", "gt", "le", "lt", "eq")

FactorName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$", min_length=1, max_length=64)]
LevelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_+\-]*$", min_length=1, max_length=64)]
ConstraintName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$", min_length=1, max_length=100)]
#: A patch key or a range factor's path: ``camera.fov_deg``, ``objects[name=clutter].count``, ``light.color[0]``.
PatchPath = Annotated[str, Field(min_length=1, max_length=500)]
Tag = Annotated[str, Field(min_length=1, max_length=200)]
Probability = Annotated[Number, Field(gt=0, le=1)]


def _count_leaves(value: Any, limit: int) -> int:
    """Leaves of nested lists and mappings, counted iteratively and stopping past ``limit``."""
    count, stack = 0, [value]
    while stack and count <= limit:
        v = stack.pop()
        if isinstance(v, dict) and v:
            stack.extend(v.values())
        elif isinstance(v, list) and v:
            stack.extend(v)
        else:
            count += 1
    return count


def _patch(value: Any) -> Any:
    """A level's patch: a mapping of plain data, finite and bounded (its keys are checked when it is applied)."""
    if value is None:
        return {}  # `baseline:` with nothing after it is the unpatched spec
    if not isinstance(value, dict):
        raise ValueError(f"a level is a patch: a mapping of spec fields to values, got {type(value).__name__}")
    found = first_non_finite(value)
    if found is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in found[0]).lstrip(".")
        raise FieldProblem(found[0], f"{where}: must be a finite number of magnitude at most 1e12", received=found[1])
    if _count_leaves(value, MAX_PATCH_LEAVES) > MAX_PATCH_LEAVES:
        raise ValueError(f"a patch may set at most {MAX_PATCH_LEAVES} values")
    return value


Patch = Annotated[dict[str, Any], BeforeValidator(_patch)]


def _one_or_many(value: Any) -> Any:
    """``mug`` means ``[mug]``."""
    return [value] if isinstance(value, str) else value


class _Model(BaseModel):
    # The spec's own settings: strict types, no NaN or infinity, unknown keys refused.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


# --- factors --------------------------------------------------------------------------------------------


class Factor(_Model):
    """One factor: named levels (each a patch onto the spec), or a numeric range written at one path.

    A levels factor::

        lighting:
          levels:
            dark: {light: {intensity: 0.15, ambient: 0.05}}
            backlit: {light.azimuth_deg: 180, light.elevation_deg: 8}

    A range factor (``steps`` gives the discrete levels that ``full``, ``pairwise`` and ``t-wise`` use;
    ``random``, ``lhs`` and ``sobol`` draw from the whole range)::

        fov: {path: camera.fov_deg, range: [30, 90], steps: 3}
    """

    levels: Annotated[dict[LevelName, Patch], Field(min_length=1, max_length=MAX_LEVELS)] | None = Field(
        default=None, description="level name -> patch onto the spec"
    )
    path: PatchPath | None = Field(default=None, description="where a range factor's value is written")
    range: Annotated[list[Number], Field(min_length=2, max_length=2)] | None = Field(
        default=None, description="[low, high] of a numeric factor"
    )
    steps: Annotated[Integer, Field(ge=2, le=MAX_LEVELS)] | None = Field(
        default=None, description="evenly spaced levels of a range, for full, pairwise and t-wise designs"
    )
    integer: bool = Field(default=False, description="a range of integers (low and high included)")
    description: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _one_kind(self) -> Factor:
        if self.levels is not None:
            for name in ("path", "range", "steps"):
                if getattr(self, name) is not None:
                    raise FieldProblem((name,), f"a factor has either 'levels' or 'path' and 'range', not '{name}' too")
            if self.integer:
                raise FieldProblem(("integer",), "'integer' applies to a range factor ('path' and 'range')")
            return self
        if self.path is None and self.range is None:
            raise ValueError("a factor needs 'levels' (named patches) or 'path' and 'range' (a numeric range)")
        if self.path is None:
            raise FieldProblem(("path",), "a range factor needs 'path', the spec field its value is written to")
        if self.range is None:
            raise FieldProblem(("range",), "a range factor needs 'range: [low, high]'")
        low, high = self.range
        if not low < high:
            raise FieldProblem(("range",), f"expected low < high, got [{low}, {high}]")
        if self.integer and not (float(low).is_integer() and float(high).is_integer()):
            raise FieldProblem(("range",), f"an integer range needs integer ends, got [{low}, {high}]")
        if self.integer and self.steps is not None and self.steps > high - low + 1:
            raise FieldProblem(
                ("steps",), f"[{low:g}, {high:g}] holds {int(high - low) + 1} integers, fewer than {self.steps} steps"
            )
        return self

    @property
    def is_range(self) -> bool:
        """Whether this is a numeric range factor (else a factor of named levels)."""
        return self.levels is None


# --- design ---------------------------------------------------------------------------------------------


def _design_shorthand(value: Any) -> Any:
    """``design: pairwise`` means ``design: {kind: pairwise}``."""
    return {"kind": value} if isinstance(value, str) else value


class DesignSpec(_Model):
    """How cells are chosen from the factors' levels.

    - ``full``: every combination of levels (the factorial design);
    - ``pairwise`` / ``t-wise`` (with ``strength``): a covering array, in which every pair (t-tuple) of
      levels of any two (t) factors appears in at least one cell;
    - ``random``: ``n`` cells, each level drawn uniformly (a range uniformly over its range);
    - ``lhs`` / ``sobol``: ``n`` points of a Latin hypercube or a scrambled Sobol' sequence over all factors
      (a range maps the unit interval onto its range; a levels factor splits it into equal parts).
    """

    kind: Literal["full", "pairwise", "t-wise", "random", "lhs", "sobol"] = "full"
    strength: Annotated[Integer, Field(ge=2, le=MAX_STRENGTH)] | None = Field(
        default=None, description="t of a t-wise design"
    )
    n: Annotated[Integer, Field(ge=1, le=MAX_CELLS)] | None = Field(
        default=None, description="cells drawn by random, lhs and sobol"
    )

    @model_validator(mode="after")
    def _fields_of_kind(self) -> DesignSpec:
        if self.kind == "t-wise" and self.strength is None:
            raise FieldProblem(("strength",), "a t-wise design needs 'strength' (t, from 2 to 6)")
        if self.kind != "t-wise" and self.strength is not None:
            raise FieldProblem(("strength",), f"'strength' applies to t-wise designs, not '{self.kind}'")
        if self.kind in SAMPLED_DESIGNS and self.n is None:
            raise FieldProblem(("n",), f"a {self.kind} design needs 'n', the number of cells to draw")
        if self.kind not in SAMPLED_DESIGNS and self.n is not None:
            raise FieldProblem(("n",), f"'n' applies to random, lhs and sobol designs, not '{self.kind}'")
        if self.kind == "sobol" and self.n is not None and self.n & (self.n - 1):
            lower = 1 << (self.n.bit_length() - 1)
            raise FieldProblem(
                ("n",),
                f"a Sobol' sequence is balanced only for a power of 2 points; use {lower} or {lower * 2}, "
                f"or design 'lhs' for any n",
                received=self.n,
            )
        return self

    @property
    def t(self) -> int | None:
        """The strength of a covering array (2 for pairwise), or None for the other designs."""
        return 2 if self.kind == "pairwise" else self.strength


# --- constraints ----------------------------------------------------------------------------------------


class _Comparison(_Model):
    """Comparison keys shared by a filter and a constraint; every given one must hold."""

    ge: Number | None = None
    gt: Number | None = None
    le: Number | None = None
    lt: Number | None = None
    eq: Number | None = None

    @model_validator(mode="after")
    def _some_comparison(self) -> _Comparison:
        given = {k: getattr(self, k) for k in COMPARISONS if getattr(self, k) is not None}
        if not given:
            raise ValueError("needs a comparison: one or more of ge, gt, le, lt, eq")
        lows = [v for k, v in given.items() if k in ("ge", "gt", "eq")]
        highs = [v for k, v in given.items() if k in ("le", "lt", "eq")]
        if lows and highs and max(lows) > min(highs):
            raise ValueError(f"the comparisons {given} can never all hold")
        return self

    def comparisons(self) -> list[tuple[str, float]]:
        """The given ``(key, value)`` pairs, in :data:`COMPARISONS` order."""
        return [(k, getattr(self, k)) for k in COMPARISONS if getattr(self, k) is not None]


class Range(_Comparison):
    """A filter on one attribute: ``{ge: 0.1, le: 0.3}``."""


class Select(_Model):
    """Which objects a constraint looks at: all given filters must hold (an object lacking a value fails)."""

    category: Annotated[list[Tag], BeforeValidator(_one_or_many), Field(min_length=1, max_length=256)] | None = None
    tag: Annotated[list[Tag], BeforeValidator(_one_or_many), Field(min_length=1, max_length=256)] | None = Field(
        default=None, description="object group names or tags, as randomizers target them"
    )
    visible_px: Range | None = None
    visibility: Range | None = Field(default=None, description="visible fraction, needs labels.visibility")
    truncation: Range | None = None
    box_w: Range | None = Field(default=None, description="visible box width, px")
    box_h: Range | None = Field(default=None, description="visible box height, px")
    box_area: Range | None = Field(default=None, description="visible box area, px^2")
    distance: Range | None = Field(default=None, description="camera to 3D box centre, metres")
    border_distance: Range | None = Field(default=None, description="visible box to nearest image edge, px")

    def filters(self) -> list[tuple[str, Range]]:
        """The given attribute filters, in :data:`OBJECT_ATTRIBUTES` order."""
        return [(a, getattr(self, a)) for a in OBJECT_ATTRIBUTES if getattr(self, a) is not None]

    def is_empty(self) -> bool:
        """Whether this selects every object."""
        return self.category is None and self.tag is None and not self.filters()


class Constraint(_Comparison):
    """One requirement on a rendered frame's labels.

    ``stat`` is ``count`` (of the selected objects), ``min``/``max``/``mean`` of the attribute ``of`` over
    them, or an image statistic: ``brightness`` (mean luma in [0, 1]) or ``contrast`` (std of luma).
    ``probability`` below 1 makes it soft (Scenic's ``require[p]``): it is enforced on a frame with that
    probability, decided once per frame.
    """

    name: ConstraintName
    select: Select = Field(default_factory=Select)
    stat: Literal["count", "min", "max", "mean", "brightness", "contrast"] = "count"
    of: (
        Literal["visible_px", "visibility", "truncation", "box_w", "box_h", "box_area", "distance", "border_distance"]
        | None
    ) = Field(default=None, description="the attribute that min, max and mean aggregate")
    probability: Probability = 1.0
    description: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _stat_fields(self) -> Constraint:
        if self.stat in ("min", "max", "mean") and self.of is None:
            raise FieldProblem(("of",), f"stat '{self.stat}' needs 'of', one of: {', '.join(OBJECT_ATTRIBUTES)}")
        if self.stat not in ("min", "max", "mean") and self.of is not None:
            raise FieldProblem(("of",), f"'of' applies to min, max and mean, not to '{self.stat}'")
        if self.stat in IMAGE_STATS and not self.select.is_empty():
            raise FieldProblem(("select",), f"'{self.stat}' is a statistic of the whole image; it takes no 'select'")
        return self

    def attributes(self) -> set[str]:
        """Every object attribute this constraint reads (to know which labels it needs)."""
        used = {a for a, _ in self.select.filters()}
        return used | ({self.of} if self.of else set())


def _require_shorthand(value: Any) -> Any:
    """``require: [...]`` means ``require: {constraints: [...]}``."""
    return {"constraints": value} if isinstance(value, list) else value


class Require(_Model):
    """The constraints every kept frame meets, and how many attempts a frame may take to meet them."""

    constraints: Annotated[list[Constraint], Field(min_length=1, max_length=MAX_CONSTRAINTS)]
    max_attempts: Annotated[Integer, Field(ge=1, le=MAX_ATTEMPTS)] = Field(
        default=100, description="renders of one frame before the run stops with the closest value seen"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Require:
        seen: set[str] = set()
        for i, c in enumerate(self.constraints):
            if c.name in seen:
                raise FieldProblem(("constraints", i, "name"), f"constraint name '{c.name}' is used twice")
            seen.add(c.name)
        return self


# --- timeline (run by simgen.scenarios.timeline) ----------------------------------------------------------

Vector3 = Annotated[list[Number], Field(min_length=3, max_length=3)]
Seconds = Annotated[Number, Field(ge=0, le=3600)]


class Capture(_Model):
    """When frames are taken during the physics: every ``every_steps`` steps from ``start_s``.

    ``t = 0`` is the built scene, once settled (``settle: true``, the default: the scene at rest, then the
    events) or as dropped (``settle: false``: the frames show the scene's own fall). A sequence is one scene's
    frames: ``frames`` sets the spec's ``frames_per_scene`` (which it defaults to).
    """

    every_steps: Annotated[Integer, Field(ge=1, le=100_000)] = Field(default=8, description="physics steps per frame")
    start_s: Seconds = Field(default=0.0, description="time of the first frame, seconds after t = 0")
    frames: Annotated[Integer, Field(ge=1, le=10_000)] | None = Field(
        default=None, description="frames per sequence (default: the spec's frames_per_scene)"
    )
    settle: bool = Field(default=True, description="settle the scene before t = 0")


class MotionBlur(_Model):
    """Blur from real motion: the average of ``subframes`` renders over ``shutter`` of a capture interval.

    The sub-frames sit at the midpoints of equal parts of the open shutter, centred on the frame's time, where
    its labels are taken; they must fall on distinct physics steps (``shutter * every_steps`` wide enough).
    """

    subframes: Annotated[Integer, Field(ge=2, le=64)] = 4
    shutter: Annotated[Number, Field(gt=0, le=1)] = Field(default=0.5, description="fraction of the interval")


class Drop(_Model):
    """Release the target from ``height_m`` above where it is."""

    height_m: Annotated[Number, Field(ge=0, le=100)] = 0.3


class Throw(_Model):
    """Give the target an impulse (N·s, world axes) at once."""

    impulse: Vector3


class Push(_Model):
    """Apply a force (N, world axes) to the target for ``duration_s``."""

    force: Vector3
    duration_s: Annotated[Number, Field(gt=0, le=3600)] = 0.1


class TrajectoryPoint(_Model):
    """A robot's joint positions (radians or metres, in joint order) at time ``t_s`` after the event."""

    t_s: Seconds
    q: Annotated[list[Number], Field(min_length=1, max_length=64)]


class RobotMotion(_Model):
    """Move a fixture robot along a joint trajectory, interpolated linearly between points."""

    trajectory: Annotated[list[TrajectoryPoint], Field(min_length=1, max_length=MAX_TRAJECTORY_POINTS)]

    @model_validator(mode="after")
    def _increasing(self) -> RobotMotion:
        times = [p.t_s for p in self.trajectory]
        for i in range(1, len(times)):
            if times[i] <= times[i - 1]:
                raise FieldProblem(("trajectory", i, "t_s"), f"times must increase, got {times[i - 1]} then {times[i]}")
        widths = {len(p.q) for p in self.trajectory}
        if len(widths) > 1:
            raise FieldProblem(("trajectory",), f"every point needs the same number of joints, got {sorted(widths)}")
        return self


class CameraMotion(_Model):
    """Move the camera over ``duration_s``: orbit the look-at target by ``orbit_deg``, dolly by ``dolly_m``."""

    orbit_deg: Annotated[Number, Field(ge=-3600, le=3600)] = 0.0
    dolly_m: Annotated[Number, Field(ge=-100, le=100)] = Field(default=0.0, description="change of distance")
    duration_s: Annotated[Number, Field(gt=0, le=3600)] = 1.0

    @model_validator(mode="after")
    def _moves(self) -> CameraMotion:
        if self.orbit_deg == 0 and self.dolly_m == 0:
            raise ValueError("a camera motion needs orbit_deg or dolly_m")
        return self


class Event(_Model):
    """One timeline event: at ``at_s`` seconds, exactly one action.

    ``drop``, ``throw`` and ``push`` act on ``target``: an object uid (``clutter/0``), or a group name or
    tag (``pick`` chooses ``one`` of its objects with the sequence's rng, or ``all`` of them). ``robot`` names
    the fixture in ``target``. ``light`` is a patch of the spec's ``light`` section.
    """

    at_s: Seconds = 0.0
    target: Tag | None = None
    pick: Literal["one", "all"] = "one"
    drop: Drop | None = None
    throw: Throw | None = None
    push: Push | None = None
    robot: RobotMotion | None = None
    camera: CameraMotion | None = None
    light: Patch | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Event:
        actions = [a for a in ("drop", "throw", "push", "robot", "camera", "light") if getattr(self, a) is not None]
        if len(actions) != 1:
            got = ", ".join(actions) if actions else "none"
            raise ValueError(f"an event has exactly one action of drop, throw, push, robot, camera, light; got {got}")
        needs_target = actions[0] in ("drop", "throw", "push", "robot")
        if needs_target and self.target is None:
            raise FieldProblem(("target",), f"a {actions[0]} event needs a 'target'")
        if not needs_target and self.target is not None:
            raise FieldProblem(("target",), f"a {actions[0]} event takes no 'target'")
        return self

    @property
    def action(self) -> str:
        """The name of the event's action."""
        return next(a for a in ("drop", "throw", "push", "robot", "camera", "light") if getattr(self, a) is not None)


class Timeline(_Model):
    """Frames captured during the physics, with events firing at given times (see :mod:`simgen.scenarios.timeline`)."""

    capture: Capture
    motion_blur: MotionBlur | None = None
    events: Annotated[list[Event], Field(max_length=MAX_EVENTS)] = Field(default_factory=list)


# --- the scenario sections together -----------------------------------------------------------------------


class ScenarioSections(_Model):
    """The sections a scenario adds to a scene spec."""

    factors: Annotated[dict[FactorName, Factor], Field(min_length=1, max_length=MAX_FACTORS)] | None = None
    design: Annotated[DesignSpec, BeforeValidator(_design_shorthand)] | None = None
    require: Annotated[Require, BeforeValidator(_require_shorthand)] | None = None
    timeline: Timeline | None = None

    @model_validator(mode="after")
    def _design_needs_factors(self) -> ScenarioSections:
        if self.design is not None and self.factors is None:
            raise FieldProblem(("design",), "a design needs 'factors' to choose cells from")
        return self


#: Top-level keys that belong to the scenario, not to the spec.
SECTIONS = tuple(ScenarioSections.model_fields)
