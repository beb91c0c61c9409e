"""The small protocol every simulator backend implements.

A backend applies plain-data patches and renders; it never samples. Labels are computed from the
returned :class:`~simgen.frame.FrameBuffers` by pure functions, so PyBullet and CARLA share them.

Scene state (the input of :meth:`Backend.build`), JSON-serializable::

    {
      "ground": {"kind": "plane" | "none", "color": [r, g, b, a] | None, "texture": None | {record},
                 "specular": None | [r, g, b]},
      "fixtures": [  # static bodies: table, tray, shelf (.sdf too), fixed-base robots
        {"uid": "table", "asset": "pybullet_data:table/table.urdf", "path": "/abs/table.urdf" | None,
         "shape": None | {"shape": "box", "size": [x, y, z]} ..., "position": [x, y, z],
         "orientation": [qx, qy, qz, qw], "scale": 1.0, "color": None | [r, g, b, a],
         "labeled": False, "category": "table", "link_labels": False,
         # optional, from randomizers: "texture": {record}, "specular": [r, g, b]
        }
      ],
      "objects": {  # dynamic bodies, dropped and settled; insertion order gives instance ids 1..N
        "clutter/0": {"uid": "clutter/0", "group": "clutter", "asset": "pybullet_data:duck_vhacd.urdf",
                      "path": "/abs/duck_vhacd.urdf" | None, "shape": None | {...primitive...},
                      "category": "duck", "labeled": True, "tags": ["clutter"],
                      "position": [x, y, z], "orientation": [qx, qy, qz, qw], "scale": 1.0,
                      "color": None | [r, g, b, a], "mass": None | float,
                      # optional, from randomizers:
                      "texture": {record}, "specular": [r, g, b],
                      "dynamics": {"lateral_friction", "spinning_friction", "rolling_friction", "restitution"}}
      },
      "joints": {"panda": {"panda_joint1": 0.3, ...}},  # optional: held during settling
      "physics": {"max_steps": 1000, "rest_velocity": 0.01, "gravity": -9.81, "timestep": 0.004166}
    }

Labeled fixtures become instances after the objects; with ``link_labels`` each link with visual
geometry is one (uid ``"<fixture>/<link>"``, category ``"<category>/<link>"``). A texture ``{record}``
is ``{"kind": "image", "path": ...}`` or a procedural record for
:func:`simgen.randomizers.textures.render_texture`.

Primitive shapes: ``{"shape": "box", "size": [x, y, z]}``, ``{"shape": "sphere", "radius": r}``,
``{"shape": "cylinder", "radius": r, "length": l}``, ``{"shape": "capsule", "radius": r, "length": l}``
(sizes in metres, full edge lengths for the box).

View state (the input of :meth:`Backend.render`)::

    {
      "camera": {"width": 640, "height": 480, "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
                 "near": 0.05, "far": 10.0, "T_world_cam": 4x4 nested list (OpenCV axes)},
      "light": {"direction": [x, y, z],  # unit vector from the scene towards the light
                "color": [r, g, b], "distance": 10.0,
                "ambient": 0.6, "diffuse": 0.35, "specular": 0.05, "shadows": True},
      "occluders": [  # optional: visual-only primitives for this view alone (physics untouched)
        {"shape": "box", "size": [...], "position": [...], "orientation": [...], "color": [...], "labeled": False}
      ]
    }

PyBullet's EGL renderer uses only the light's direction (colour and coefficients are ignored, and
shadows are always on); TinyRenderer uses them all.

Besides the four calls, the engine asks a backend a few things, each optional (a backend without it gets
the default), so that it never needs to know a simulator:

* ``capabilities`` (class attribute, a mapping): what the backend can compute. ``"visibility"``: per-object
  renders for visibility fractions and BOP's full masks (``render(visibility=True)``). A capability that is
  not listed is unavailable: a spec that asks for it is refused at load time, and labels carry ``None``.
  ``"timeline"``: sequences captured during the physics (a scenario's ``timeline``): the backend also offers
  ``step(n)`` (advance the physics), ``act(event)`` (apply a timeline event: drop, throw, push, robot, camera,
  light) and ``render_rgb(view)`` (an RGB-only render, for motion-blur sub-frames).
* ``resolve_renderer(requested) -> str`` (classmethod): what ``"auto"`` means on this machine, decided once
  in the main process before any worker starts; refuses an unknown renderer. Default: ``requested``.
* ``worker_env(workers) -> dict`` (classmethod): environment variables each worker process sets before its
  first simulator when ``workers`` processes share the cores (PyBullet: ``LP_NUM_THREADS``). Default: none.
* ``categories(loaded) -> list[str]`` (classmethod): the label categories of a spec, in id order, known
  before anything renders so every worker agrees on the ids. Default: :func:`spec_categories`.
* ``recycling`` (attribute of an instance, a :class:`Recycling` or None): a client that leaks with every
  scene it builds asks the engine to close it and start a fresh one now and then. Default: never.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from simgen.frame import FrameBuffers

if TYPE_CHECKING:
    from simgen.spec.loader import LoadedSpec
    from simgen.spec.models import Fixture

#: Capabilities a backend may have (see the module docstring).
CAPABILITIES = ("visibility", "timeline")


@dataclass(frozen=True)
class Recycling:
    """When the engine restarts a backend client that leaks a little with every scene it builds.

    A client is restarted after ``max_builds`` scenes; later clients as soon as they have grown as much as the
    first one did over that cycle, after at least ``min_builds`` (see :class:`simgen.engine.memory.RecyclePolicy`).
    A fresh client must render bit-identically: restarting never changes the output.
    """

    max_builds: int
    min_builds: int


@runtime_checkable
class Backend(Protocol):
    """A simulator that builds a scene from plain data, settles it and renders views of it."""

    #: Short name recorded in dataset.json, e.g. "pybullet".
    name: str
    #: The renderer that actually runs, e.g. "egl" or "tiny"; recorded in dataset.json.
    renderer: str
    #: What it can compute, e.g. ``{"visibility": True}`` (see the module docstring).
    capabilities: ClassVar[Mapping[str, bool]]

    def build(self, scene: dict[str, Any]) -> None:
        """Reset the world and create every body of ``scene`` (see the module docstring)."""
        ...

    def settle(self) -> dict[str, Any]:
        """Step physics until objects rest or ``max_steps``.

        Returns:
            ``{"steps": n, "poses": {uid: [x, y, z, qx, qy, qz, qw]}}``.
        """
        ...

    def render(self, view: dict[str, Any], *, visibility: bool = False) -> FrameBuffers:
        """Render one view; with ``visibility`` also fill ``FrameBuffers.unoccluded_px``."""
        ...

    def close(self) -> None:
        """Release the simulator. Safe to call twice."""
        ...


def spec_categories(
    loaded: LoadedSpec, *, fixture_categories: Callable[[Fixture, LoadedSpec], list[str]] | None = None
) -> list[str]:
    """Label category names of a spec, in order of first appearance (ids are position + 1).

    They come from the spec alone, so every worker and every shard agrees on the ids before anything renders:
    labeled object groups' assets, labeled fixtures, then what each randomizer of the spec declares through
    its class method ``categories(params) -> list[str]`` (a labeled flying occluder adds ``"occluder"``).

    Args:
        loaded: The spec.
        fixture_categories: The categories of one labeled fixture (a backend that labels each link of a
            robot gives ``<category>/<link>`` per link); default: its ``category`` or name.
    """
    from simgen.randomizers import REGISTRY
    from simgen.randomizers.objects import category_of
    from simgen.spec.loader import randomizer_params
    from simgen.spec.models import AssetEntry

    names: list[str] = []

    def add(name: str) -> None:
        if name not in names:
            names.append(name)

    for group in loaded.spec.objects:
        if group.labeled:
            for a in group.assets:
                add(category_of(a if isinstance(a, AssetEntry) else AssetEntry(asset=a), group.category))
    for fx in loaded.spec.fixtures:
        if fx.labeled:
            for name in fixture_categories(fx, loaded) if fixture_categories else [fx.category or fx.name]:
                add(name)
    source = str(loaded.source) if loaded.source else None
    for i, entry in enumerate(loaded.spec.randomizers):
        cls = REGISTRY.get(entry.type)
        declared = getattr(cls, "categories", None)
        if declared is not None:
            for name in declared(randomizer_params(entry, cls, f"randomizers[{i}]", source)):
                add(name)
    return names
