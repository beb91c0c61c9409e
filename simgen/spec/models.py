"""Pydantic v2 models of a scene spec.

Every numeric field is a constant or a distribution (see :mod:`simgen.sampling`). Unknown keys are
rejected (``extra="forbid"``) so a typo is an error with a "did you mean", never silently ignored.
Models keep exactly what the user wrote: :func:`simgen.spec.dump_spec` writes back only the fields that
were set, so ``dump(load(x)) == x``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simgen.sampling import IntScalar, Scalar

Vec3 = list[Scalar]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=False)


class Primitive(_Model):
    """A primitive shape, sizes in metres (a box's ``size`` are full edge lengths)."""

    shape: Literal["box", "sphere", "cylinder", "capsule"]
    size: Vec3 | None = Field(default=None, description="box: edge lengths [x, y, z]")
    radius: Scalar | None = Field(default=None, description="sphere, cylinder, capsule")
    length: Scalar | None = Field(default=None, description="cylinder, capsule: length along z")

    @model_validator(mode="after")
    def _sizes(self) -> Primitive:
        if self.shape == "box":
            if self.size is None or len(self.size) != 3:
                raise ValueError("a box needs size: [x, y, z]")
        elif self.radius is None:
            raise ValueError(f"a {self.shape} needs a radius")
        if self.shape in ("cylinder", "capsule") and self.length is None:
            raise ValueError(f"a {self.shape} needs a length")
        return self


AssetRef = str | Primitive


class AssetEntry(_Model):
    """One entry of an asset pool, with its own category and selection weight."""

    asset: AssetRef = Field(description="'pybullet_data:<path>', a path relative to the spec, or a primitive")
    category: str | None = Field(default=None, description="defaults to the group's category, else the file stem")
    weight: float = Field(default=1.0, ge=0)


class Region(_Model):
    """An axis-aligned box in world coordinates where objects are placed before the drop."""

    center: Vec3 = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    size: Vec3 = Field(default_factory=lambda: [0.5, 0.5, 0.0])

    @field_validator("center", "size")
    @classmethod
    def _three(cls, v: list[Any]) -> list[Any]:
        if len(v) != 3:
            raise ValueError(f"expected 3 values [x, y, z], got {len(v)}")
        return v


class ObjectGroup(_Model):
    """A group of objects drawn from an asset pool, placed in a region and dropped."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    assets: list[AssetRef | AssetEntry] = Field(min_length=1, description="the pool objects are drawn from")
    category: str | None = Field(default=None, description="category of every object of the group")
    count: IntScalar = Field(default=1, description="how many objects per scene")
    tags: list[str] = Field(default_factory=list)
    labeled: bool = True
    region: Region = Field(default_factory=Region)
    drop_height: Scalar = Field(default=0.1, description="metres above the region before the physics drop")
    rotation: Literal["none", "yaw", "so3"] = "yaw"
    scale: Scalar = 1.0
    color: list[Scalar] | None = Field(default=None, description="fixed RGBA; the color randomizer overrides it")
    mass: Scalar | None = Field(default=None, description="kg; None keeps the asset's own")
    min_spacing: float = Field(default=0.0, ge=0, description="minimum xy distance between drop points, metres")


class Fixture(_Model):
    """A static body (a table, a tray, a shelf) or a fixed-base robot whose links can be labeled."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    asset: AssetRef
    position: Vec3 = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    rotation_deg: Vec3 = Field(default_factory=lambda: [0.0, 0.0, 0.0], description="roll, pitch, yaw in degrees")
    scale: Scalar = 1.0
    color: list[Scalar] | None = None
    tags: list[str] = Field(default_factory=list)
    labeled: bool = Field(default=False, description="annotate this fixture (an articulated robot, say)")
    category: str | None = Field(default=None, description="its category when labeled; defaults to its name")
    link_labels: bool = Field(default=False, description="one instance per link, category '<category>/<link>'")

    @model_validator(mode="after")
    def _links_need_labels(self) -> Fixture:
        if self.link_labels and not self.labeled:
            raise ValueError("link_labels needs labeled: true")
        return self


class Ground(_Model):
    """The ground under everything."""

    kind: Literal["plane", "none"] = "plane"
    color: list[Scalar] | None = None


class Intrinsics(_Model):
    """Pinhole intrinsics in pixels."""

    fx: Scalar
    fy: Scalar
    cx: Scalar
    cy: Scalar


class LookAt(_Model):
    """A camera on a shell around a target: spherical coordinates plus jitter and roll."""

    target: Vec3 = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    distance: Scalar = 1.0
    azimuth_deg: Scalar = 0.0
    elevation_deg: Scalar = 45.0
    target_jitter: Scalar = Field(default=0.0, description="std of a Gaussian offset of the target, metres")
    roll_deg: Scalar = 0.0


class Camera(_Model):
    """The camera: resolution, field of view or intrinsics, clip planes and look-at pose."""

    width: int = Field(default=640, gt=0, le=8192)
    height: int = Field(default=480, gt=0, le=8192)
    fov_deg: Scalar | None = Field(default=None, description="vertical field of view; exclusive with intrinsics")
    intrinsics: Intrinsics | None = None
    near: float = Field(default=0.05, gt=0)
    far: float = Field(default=10.0, gt=0)
    look_at: LookAt = Field(default_factory=LookAt)
    stereo_baseline: Scalar | None = Field(
        default=None,
        description="metres; frames come in left/right pairs (even frame left, odd frame right) sharing every draw",
    )

    @model_validator(mode="after")
    def _projection(self) -> Camera:
        if self.fov_deg is not None and self.intrinsics is not None:
            raise ValueError("give fov_deg or intrinsics, not both")
        if self.far <= self.near:
            raise ValueError(f"far must be > near, got near={self.near}, far={self.far}")
        return self


class Light(_Model):
    """A directional light (PyBullet renders one)."""

    azimuth_deg: Scalar = 45.0
    elevation_deg: Scalar = 60.0
    distance: float = Field(default=10.0, gt=0)
    color: Vec3 = Field(default_factory=lambda: [1.0, 1.0, 1.0])
    intensity: Scalar = 1.0
    ambient: Scalar = 0.6
    diffuse: Scalar = 0.35
    specular: Scalar = 0.05
    shadows: bool = True


class Physics(_Model):
    """Physics settling after the drop."""

    max_steps: int = Field(default=1000, ge=0)
    rest_velocity: float = Field(default=0.01, gt=0, description="m/s and rad/s under which an object is at rest")
    gravity: float = -9.81
    timestep: float = Field(default=1.0 / 240.0, gt=0)


class Labels(_Model):
    """Label filters and optional costly labels."""

    min_visible_px: int = Field(default=1, ge=0)
    min_visibility: float = Field(default=0.0, ge=0, le=1)
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

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="registry name, e.g. 'appearance/color-v1'")
    tags: list[str] = Field(default_factory=list, description="target objects carrying any of these tags; [] = all")

    @property
    def params(self) -> dict[str, Any]:
        """The randomizer's own parameters (every key but type and tags)."""
        return dict(self.model_extra or {})


class SceneSpec(_Model):
    """A whole scene spec."""

    version: Literal[1] = 1
    name: str = "scene"
    description: str = ""
    backend: Literal["pybullet", "carla"] = "pybullet"
    frames_per_scene: int = Field(default=4, ge=1, le=100000)
    ground: Ground = Field(default_factory=Ground)
    fixtures: list[Fixture] = Field(default_factory=list)
    objects: list[ObjectGroup] = Field(default_factory=list)
    camera: Camera = Field(default_factory=Camera)
    light: Light = Field(default_factory=Light)
    physics: Physics = Field(default_factory=Physics)
    labels: Labels = Field(default_factory=Labels)
    outputs: Outputs = Field(default_factory=Outputs)
    randomizers: list[RandomizerSpec] = Field(default_factory=list)
    asset_roots: list[str] = Field(default_factory=list, description="extra folders assets may come from")

    @model_validator(mode="after")
    def _stereo_pairs(self) -> SceneSpec:
        if self.camera.stereo_baseline is not None and self.frames_per_scene % 2:
            raise ValueError(
                "camera.stereo_baseline needs an even frames_per_scene (pairs share a scene), "
                f"got {self.frames_per_scene}"
            )
        return self

    @model_validator(mode="after")
    def _bop_needs_visibility(self) -> SceneSpec:
        if self.outputs.bop and not self.labels.visibility:
            raise ValueError(
                "outputs.bop needs labels.visibility: true (BOP's mask/ and visib_fract come from per-object renders)"
            )
        if self.outputs.bop and not (self.outputs.rgb and self.outputs.depth):
            raise ValueError("outputs.bop needs outputs.rgb and outputs.depth")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> SceneSpec:
        seen: set[str] = set()
        for i, g in enumerate([*self.fixtures, *self.objects]):
            if g.name in seen:
                raise ValueError(f"name '{g.name}' is used twice (entry {i}); fixture and group names must be unique")
            seen.add(g.name)
        return self
