"""Pydantic v2 models of a scene spec.

Every numeric field is a constant or a distribution (see :mod:`simgen.sampling`). Unknown keys are
rejected (``extra="forbid"``) so a typo is an error with a "did you mean", never silently ignored.
Models keep exactly what the user wrote: :func:`simgen.spec.dump_spec` writes back only the fields that
were set, so ``dump(load(x)) == x``.

Everything a run could trip over later is refused here, at load time, with its field path:

- numbers are finite, never booleans or strings, and at most 1e12 in magnitude;
- every field and the whole *support* of every distribution lie in the field's range (a :class:`Bounds`:
  a count in ``[0, 65535]``, a field of view in ``[0.01, 179.99]``, a colour channel in ``[0, 1]``, ...), so a
  ``normal`` is refused where a range is finite (use ``truncnormal``);
- vectors have their length (positions 3, colours 3 or 4);
- what cannot be met: more objects, fixtures and occluders than the backend's uint16 instance ids hold
  (:data:`MAX_INSTANCES`), a ``min_spacing`` that no placement satisfies (Oler's packing bound), asset
  weights that are all zero, ``link_labels`` on anything but a URDF, a spec with nothing to render.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from simgen.backends.carla_spec import CarlaSection
from simgen.sampling import (
    Bounds,
    Integer,
    IntScalar,
    Number,
    Scalar,
    first_non_finite,
    integral,
    parse_distribution,
    support,
)
from simgen.spec.errors import FieldProblem

#: The most instances one scene may hold: PyBullet's instance masks are uint16 and 0 is the background.
MAX_INSTANCES = 65535

# The ranges of the spec's quantities. Upper ends are generous but finite: a scene is metres across,
# not light years, so an absurd value is a typo, and it fails here instead of inside the physics.
POSITION = Bounds(-1e4, 1e4)  # metres from the origin
LENGTH = Bounds(0, 1e3, low_open=True)  # an object's size, metres
SCALE = Bounds(0, 1e3, low_open=True)
EXTENT = Bounds(0, 2e4)  # a region's size, metres
UNIT = Bounds(0, 1)  # colour channels and fractions
ELEVATION = Bounds(-90, 90)  # degrees above the horizontal plane

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$", max_length=100)]
Tag = Annotated[str, Field(min_length=1, max_length=100)]
Label = Annotated[str, Field(min_length=1, max_length=200)]


def _length(n: int | tuple[int, ...], what: str) -> BeforeValidator:
    sizes = (n,) if isinstance(n, int) else n

    # Before the items are validated: a 100,000-item "vector" is one error, not 100,000.
    def check(v: Any) -> Any:
        if isinstance(v, list) and len(v) not in sizes:
            raise ValueError(f"expected {' or '.join(map(str, sizes))} values {what}, not {len(v)}")
        return v

    return BeforeValidator(check)


def _items(n: int | tuple[int, ...]) -> Any:
    sizes = (n,) if isinstance(n, int) else n
    return Field(json_schema_extra={"minItems": min(sizes), "maxItems": max(sizes)})


#: Three numbers (any finite values: angles).
Vec3 = Annotated[list[Scalar], _length(3, "[x, y, z]"), _items(3)]
#: A point in the world, metres.
Position = Annotated[list[Annotated[Scalar, POSITION]], _length(3, "[x, y, z]"), _items(3)]
#: An RGB or RGBA colour, each channel in [0, 1].
Color = Annotated[list[Annotated[Scalar, UNIT]], _length((3, 4), "[r, g, b] or [r, g, b, a]"), _items((3, 4))]
#: An RGB or RGBA colour of constants in [0, 1] (where the engine does not sample).
ConstColor = Annotated[
    list[Annotated[Number, Field(ge=0, le=1)]], _length((3, 4), "[r, g, b] or [r, g, b, a]"), _items((3, 4))
]
#: An RGB colour, each channel in [0, 1].
RGB = Annotated[list[Annotated[Scalar, UNIT]], _length(3, "[r, g, b]"), _items(3)]
#: A file asset: ``pybullet_data:<path>`` or a path relative to the spec.
AssetPath = Annotated[str, Field(min_length=1, max_length=4096)]


class _Model(BaseModel):
    # strict: a boolean is never a number and a string never a number or a boolean;
    # allow_inf_nan: NaN and infinities fail here, not when dataset.json is written after the run.
    model_config = ConfigDict(extra="forbid", validate_default=False, strict=True, allow_inf_nan=False)


class Primitive(_Model):
    """A primitive shape, sizes in metres (a box's ``size`` are full edge lengths)."""

    shape: Literal["box", "sphere", "cylinder", "capsule"]
    size: Annotated[list[Annotated[Scalar, LENGTH]], _length(3, "[x, y, z]"), _items(3)] | None = Field(
        default=None, description="box: edge lengths [x, y, z]"
    )
    radius: Annotated[Scalar, LENGTH] | None = Field(default=None, description="sphere, cylinder, capsule")
    length: Annotated[Scalar, LENGTH] | None = Field(default=None, description="cylinder, capsule: length along z")

    @model_validator(mode="after")
    def _sizes(self) -> Primitive:
        needs = {"box": ("size",), "sphere": ("radius",), "cylinder": ("radius", "length")}
        needs["capsule"] = needs["cylinder"]
        wanted = needs[self.shape]
        for name in wanted:
            if getattr(self, name) is None:
                what = "size: [x, y, z]" if name == "size" else f"a {name}"
                raise FieldProblem((name,), f"a {self.shape} needs {what}")
        for name in ("size", "radius", "length"):
            if name not in wanted and getattr(self, name) is not None:
                raise FieldProblem((name,), f"a {self.shape} has no {name}; it takes {' and '.join(wanted)}")
        return self


AssetRef = AssetPath | Primitive


class AssetEntry(_Model):
    """One entry of an asset pool, with its own category and selection weight."""

    asset: AssetRef = Field(description="'pybullet_data:<path>', a path relative to the spec, or a primitive")
    category: Label | None = Field(default=None, description="defaults to the group's category, else the file stem")
    weight: Annotated[Number, Field(ge=0)] = 1.0


class Region(_Model):
    """An axis-aligned box in world coordinates where objects are placed before the drop."""

    center: Position = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    size: Annotated[list[Annotated[Scalar, EXTENT]], _length(3, "[x, y, z]"), _items(3)] = Field(
        default_factory=lambda: [0.5, 0.5, 0.0]
    )


def oler_capacity(width: float, depth: float, spacing: float) -> int:
    """The most points a ``width`` x ``depth`` rectangle holds with every pair ``spacing`` apart or more.

    Oler's inequality (1961) bounds it for any convex region of area A and perimeter P, in units of the
    spacing: ``N <= 2/sqrt(3) * A + P / 2 + 1``. It is exact for a segment (``L/d + 1``) and a point (1),
    and within a few percent of the best packings of large rectangles. So a larger count can never be
    placed, whatever the sampler: refusing it is always right.
    """
    a = width * depth / spacing**2
    half_perimeter = (width + depth) / spacing
    return math.floor(2.0 / math.sqrt(3.0) * a + half_perimeter + 1.0 + 1e-9)


def max_count(value: Any) -> int | None:
    """The largest count a constant or distribution can draw (draws are rounded), or None if it is no count."""
    found = support(value)
    if found is None or not math.isfinite(found[1]):
        return None
    return max(0, math.floor(found[1] + 0.5))


class ObjectGroup(_Model):
    """A group of objects drawn from an asset pool, placed in a region and dropped."""

    name: Name
    assets: list[AssetRef | AssetEntry] = Field(
        min_length=1, max_length=10000, description="the pool objects are drawn from"
    )
    category: Label | None = Field(default=None, description="category of every object of the group")
    count: Annotated[IntScalar, Bounds(0, MAX_INSTANCES, integer=True)] = Field(
        default=1, description="how many objects per scene"
    )
    tags: list[Tag] = Field(default_factory=list, max_length=256)
    labeled: bool = True
    region: Region = Field(default_factory=Region)
    drop_height: Annotated[Scalar, Bounds(0, 100)] = Field(
        default=0.1, description="metres above the region before the physics drop"
    )
    rotation: Literal["none", "yaw", "so3"] = "yaw"
    scale: Annotated[Scalar, SCALE] = 1.0
    color: Color | None = Field(default=None, description="fixed RGBA; the color randomizer overrides it")
    mass: Annotated[Scalar, Bounds(0, 1e6, low_open=True)] | None = Field(
        default=None, description="kg; None keeps the asset's own"
    )
    min_spacing: Annotated[Number, Field(ge=0, le=1e4)] = Field(
        default=0.0,
        description="minimum xy distance between drop points, metres; a count that cannot fit the region "
        "at this spacing (Oler's packing bound) is refused",
    )

    @model_validator(mode="after")
    def _some_weight(self) -> ObjectGroup:
        weights = [a.weight if isinstance(a, AssetEntry) else 1.0 for a in self.assets]
        if sum(weights) <= 0:
            raise FieldProblem(("assets",), "every asset weight is 0: at least one must be > 0 to draw from the pool")
        return self

    @model_validator(mode="after")
    def _spacing_fits(self) -> ObjectGroup:
        if self.min_spacing <= 0:
            return self
        n = max_count(self.count) or 0  # a validated count always has a finite maximum
        extent = [support(v) for v in self.region.size[:2]]
        width, depth = (s[0] if s is not None else 0.0 for s in extent)  # the smallest region it can draw
        fits = oler_capacity(width, depth, self.min_spacing)
        if n > fits:
            raise FieldProblem(
                ("min_spacing",),
                f"{n} objects (the most count can draw) cannot all be {self.min_spacing:g} m apart in a "
                f"{width:g} x {depth:g} m region: at most {fits} fit; lower count or min_spacing, or "
                "enlarge region.size",
            )
        return self


class Fixture(_Model):
    """A static body (a table, a tray, a shelf) or a fixed-base robot whose links can be labeled."""

    name: Name
    asset: AssetRef
    position: Position = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    rotation_deg: Vec3 = Field(default_factory=lambda: [0.0, 0.0, 0.0], description="roll, pitch, yaw in degrees")
    scale: Annotated[Scalar, SCALE] = 1.0
    color: Color | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=256)
    labeled: bool = Field(default=False, description="annotate this fixture (an articulated robot, say)")
    category: Label | None = Field(default=None, description="its category when labeled; defaults to its name")
    link_labels: bool = Field(default=False, description="one instance per link, category '<category>/<link>'")

    @model_validator(mode="after")
    def _links_need_labels(self) -> Fixture:
        if self.link_labels and not self.labeled:
            raise FieldProblem(("link_labels",), "link_labels needs labeled: true")
        # Exactly ".urdf", as the categories and joints code test it (a ".URDF" would be labeled per link by
        # the backend but get one category).
        if self.link_labels and not (isinstance(self.asset, str) and self.asset.endswith(".urdf")):
            what = f"a {self.asset.shape} primitive" if isinstance(self.asset, Primitive) else "not a .urdf file"
            raise FieldProblem(
                ("link_labels",), f"link_labels needs a .urdf asset (its links are the instances); the asset is {what}"
            )
        return self


class Ground(_Model):
    """The ground under everything."""

    kind: Literal["plane", "none"] = "plane"
    # Constants only: the scene state takes this colour as it is (appearance/ground-texture-v1 draws colours).
    color: ConstColor | None = Field(
        default=None, description="constant RGB(A) in [0, 1]; for random colours use appearance/ground-texture-v1"
    )


_PIXELS = Bounds(0, 1e6, low_open=True)


class Intrinsics(_Model):
    """Pinhole intrinsics in pixels, OpenCV's convention: the centre of pixel (col, row) is (u, v) = (col, row).

    So a centred principal point is ``cx = (width - 1) / 2``.
    """

    fx: Annotated[Scalar, _PIXELS]
    fy: Annotated[Scalar, _PIXELS]
    cx: Annotated[Scalar, _PIXELS]
    cy: Annotated[Scalar, _PIXELS]


class LookAt(_Model):
    """A camera on a shell around a target: spherical coordinates plus jitter and roll."""

    target: Position = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    distance: Annotated[Scalar, Bounds(1e-3, 1e4)] = Field(
        default=1.0, description="metres from the target, [0.001, 10000] (the camera must not sit on its target)"
    )
    azimuth_deg: Scalar = 0.0
    elevation_deg: Annotated[Scalar, ELEVATION] = 45.0
    target_jitter: Annotated[Scalar, Bounds(0, 1e3)] = Field(
        default=0.0, description="std of a Gaussian offset of the target, metres"
    )
    roll_deg: Scalar = 0.0


class Camera(_Model):
    """The camera: resolution, field of view or intrinsics, clip planes and look-at pose."""

    width: Annotated[Integer, Field(gt=0, le=8192)] = 640
    height: Annotated[Integer, Field(gt=0, le=8192)] = 480
    # Strictly inside (0, 180) degrees, and not so close to 0 that the focal length overflows to infinity.
    fov_deg: Annotated[Scalar, Bounds(0.01, 179.99)] | None = Field(
        default=None, description="vertical field of view in degrees, [0.01, 179.99]; exclusive with intrinsics"
    )
    intrinsics: Intrinsics | None = None
    near: Annotated[Number, Field(gt=0, le=1e4)] = 0.05
    far: Annotated[Number, Field(gt=0, le=1e5)] = 10.0
    look_at: LookAt = Field(default_factory=LookAt)
    stereo_baseline: Annotated[Scalar, Bounds(0, 100)] | None = Field(
        default=None,
        description="metres; frames come in left/right pairs (even frame left, odd frame right) sharing every draw",
    )

    @model_validator(mode="after")
    def _projection(self) -> Camera:
        if self.fov_deg is not None and self.intrinsics is not None:
            raise FieldProblem(("intrinsics",), "give fov_deg or intrinsics, not both")
        if self.far <= self.near:
            raise FieldProblem(("far",), f"far must be > near, got near={self.near:g}, far={self.far:g}")
        return self


class Light(_Model):
    """A directional light (PyBullet renders one)."""

    azimuth_deg: Scalar = 45.0
    elevation_deg: Annotated[Scalar, ELEVATION] = 60.0
    distance: Annotated[Number, Field(gt=0, le=1e4)] = 10.0
    color: RGB = Field(default_factory=lambda: [1.0, 1.0, 1.0])
    intensity: Annotated[Scalar, Bounds(0, 10)] = 1.0
    ambient: Annotated[Scalar, UNIT] = 0.6
    diffuse: Annotated[Scalar, UNIT] = 0.35
    specular: Annotated[Scalar, UNIT] = 0.05
    shadows: bool = True


class Physics(_Model):
    """Physics settling after the drop."""

    max_steps: Annotated[Integer, Field(ge=0, le=100_000)] = Field(
        default=1000, description="at most 100000 steps (about 45 s of stepping with 30 objects)"
    )
    rest_velocity: Annotated[Number, Field(gt=0, le=100)] = Field(
        default=0.01, description="m/s and rad/s under which an object is at rest"
    )
    gravity: Annotated[Number, Field(ge=-100, le=100)] = -9.81
    timestep: Annotated[Number, Field(gt=0, le=0.1)] = Field(default=1.0 / 240.0, description="seconds, (0, 0.1]")


class Labels(_Model):
    """Label filters and optional costly labels."""

    min_visible_px: Annotated[Integer, Field(ge=0, le=8192 * 8192)] = 1
    min_visibility: Annotated[Number, Field(ge=0, le=1)] = 0.0
    on_filtered: Literal["drop", "flag"] = "drop"
    visibility: bool = Field(default=False, description="compute visibility fractions (one extra render per object)")


class Outputs(_Model):
    """Which files to write."""

    rgb: bool = True
    depth: bool = True
    instances: bool = True
    coco: bool = True
    yolo: bool = Field(default=False, description="labels/*.txt beside images/ and data.yaml")
    yolo_segments: bool = Field(default=False, description="YOLO segmentation polygons instead of boxes")
    bop: bool = Field(default=False, description="a BOP scene tree under bop/ (needs labels.visibility)")


class RandomizerSpec(BaseModel):
    """One randomizer: its registry name, the tags it targets, and its own parameters."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: str = Field(max_length=200, description="registry name, e.g. 'appearance/color-v1'")
    tags: list[Tag] = Field(
        default_factory=list, max_length=256, description="target objects carrying any of these tags; [] = all"
    )

    @property
    def params(self) -> dict[str, Any]:
        """The randomizer's own parameters (every key but type and tags)."""
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _finite_params(self) -> RandomizerSpec:
        # The randomizer's own Params model checks its fields when the loader resolves it; this catches a
        # NaN or infinity for any randomizer, a third party's too, whatever its Params declare.
        found = first_non_finite(self.params)
        if found is not None:
            raise FieldProblem(found[0], "must be a finite number of magnitude at most 1e12", received=found[1])
        return self


#: Randomizer parameters that add bodies to every view: ``{registry name: its count parameter}``.
BODY_PARAMS = {"occluders/flying-v1": "count"}


def instance_budget(spec: SceneSpec, links: Callable[[int, Fixture], int] | None = None) -> list[tuple[tuple, int]]:
    """What may take an instance id in one scene: ``(field location, at most how many)`` per contributor.

    Every object, fixture and flying occluder is a body with an id in the backend's uint16 mask. A fixture
    labeled per link takes one id per link; ``links(i, fixture)`` counts them when its URDF is at hand
    (else one per fixture is assumed).
    """
    found: list[tuple[tuple, int]] = [
        (("objects", i, "count"), max_count(g.count) or 0) for i, g in enumerate(spec.objects)
    ]
    for i, fx in enumerate(spec.fixtures):
        n = links(i, fx) if links is not None and fx.link_labels else 1
        found.append((("fixtures", i), max(n, 1)))
    for i, entry in enumerate(spec.randomizers):
        key = BODY_PARAMS.get(entry.type)
        if key is None:
            continue
        try:
            n = max_count(parse_distribution(entry.params.get(key, 1)))
        except ValueError:
            n = None
        if n is not None:  # else an invalid value: the randomizer's own Params refuse it, with its field path
            found.append((("randomizers", i, key), n))
    return found


def check_instance_budget(spec: SceneSpec, links: Callable[[int, Fixture], int] | None = None) -> None:
    """Raise :class:`FieldProblem` at the largest contributor when one scene may exceed :data:`MAX_INSTANCES`."""
    budget = instance_budget(spec, links)
    total = sum(n for _, n in budget)
    if total > MAX_INSTANCES:
        loc, n = max(budget, key=lambda item: item[1])
        raise FieldProblem(
            loc,
            f"a scene may hold up to {total} objects, fixtures and occluders ({n} from here), more than the "
            f"{MAX_INSTANCES} instance ids the backend's uint16 masks hold",
        )


class SceneSpec(_Model):
    """A whole scene spec."""

    version: Annotated[Literal[1], BeforeValidator(integral)] = 1
    name: str = Field(default="scene", max_length=200)
    description: str = Field(default="", max_length=10000)
    backend: Literal["pybullet", "carla"] = "pybullet"
    frames_per_scene: Annotated[Integer, Field(ge=1, le=100000)] = 4
    ground: Ground = Field(default_factory=Ground)
    fixtures: list[Fixture] = Field(default_factory=list, max_length=1024)
    objects: list[ObjectGroup] = Field(default_factory=list, max_length=1024)
    camera: Camera = Field(default_factory=Camera)
    light: Light = Field(default_factory=Light)
    physics: Physics = Field(default_factory=Physics)
    labels: Labels = Field(default_factory=Labels)
    outputs: Outputs = Field(default_factory=Outputs)
    randomizers: list[RandomizerSpec] = Field(default_factory=list, max_length=256)
    asset_roots: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        default_factory=list, max_length=64, description="extra folders assets may come from"
    )
    carla: CarlaSection | None = Field(
        default=None, description="backend: carla only: the server, ego vehicle and camera, actor groups, labels"
    )

    @model_validator(mode="after")
    def _backend_section(self) -> SceneSpec:
        # Each backend reads its own section; a section the backend ignores would be silently dropped.
        if self.backend == "carla" and self.carla is None:
            raise FieldProblem(
                ("carla",),
                "backend: carla needs a 'carla:' section (server, ego vehicle and camera, actor groups); "
                "see scenes/carla/urban_sweep.yaml and docs/carla.md",
            )
        if self.backend != "carla" and self.carla is not None:
            raise FieldProblem(
                ("carla",),
                f"the 'carla:' section applies to backend: carla only, but backend is '{self.backend}'; "
                "set backend: carla or remove the section",
            )
        if self.backend == "carla":
            for section in ("objects", "fixtures"):
                if getattr(self, section):
                    raise FieldProblem(
                        (section,),
                        f"backend: carla spawns actors from carla.actors; '{section}' is a PyBullet section, remove it",
                    )
        return self

    @model_validator(mode="after")
    def _something_to_render(self) -> SceneSpec:
        if self.backend != "carla" and not self.objects and not self.fixtures:
            raise FieldProblem(
                ("objects",),
                "nothing to render: a spec needs at least one object group under 'objects' "
                "(or a fixture under 'fixtures'); see scenes/tabletop_clutter.yaml",
            )
        return self

    @model_validator(mode="after")
    def _stereo_pairs(self) -> SceneSpec:
        if self.camera.stereo_baseline is not None and self.frames_per_scene % 2:
            raise FieldProblem(
                ("frames_per_scene",),
                "camera.stereo_baseline needs an even frames_per_scene (pairs share a scene), "
                f"got {self.frames_per_scene}",
            )
        return self

    @model_validator(mode="after")
    def _bop_needs_visibility(self) -> SceneSpec:
        if self.outputs.bop and not self.labels.visibility:
            raise FieldProblem(
                ("outputs", "bop"),
                "outputs.bop needs labels.visibility: true (BOP's mask/ and visib_fract come from per-object renders)",
            )
        if self.outputs.bop and not (self.outputs.rgb and self.outputs.depth):
            raise FieldProblem(("outputs", "bop"), "outputs.bop needs outputs.rgb and outputs.depth")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> SceneSpec:
        seen: set[str] = set()
        for section in ("fixtures", "objects"):
            for i, g in enumerate(getattr(self, section)):
                if g.name in seen:
                    raise FieldProblem(
                        (section, i, "name"),
                        f"name '{g.name}' is used twice; fixture and group names must be unique",
                    )
                seen.add(g.name)
        return self

    @model_validator(mode="after")
    def _fits_instance_ids(self) -> SceneSpec:
        check_instance_budget(self)
        return self
