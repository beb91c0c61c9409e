"""The small protocol every simulator backend implements.

A backend applies plain-data patches and renders; it never samples. Labels are computed from the
returned :class:`~simgen.frame.FrameBuffers` by pure functions, so PyBullet and CARLA share them.

Scene state (the input of :meth:`Backend.build`), JSON-serializable::

    {
      "ground": {"kind": "plane" | "none", "color": [r, g, b, a] | None, "texture": None | {record}},
      "fixtures": [  # static bodies: table, tray, shelf (.sdf too), fixed-base robots
        {"uid": "table", "asset": "pybullet_data:table/table.urdf", "path": "/abs/table.urdf" | None,
         "shape": None | {"shape": "box", "size": [x, y, z]} ..., "position": [x, y, z],
         "orientation": [qx, qy, qz, qw], "scale": 1.0, "color": None | [r, g, b, a],
         "labeled": False, "category": "table", "link_labels": False}
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
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from simgen.frame import FrameBuffers


@runtime_checkable
class Backend(Protocol):
    """A simulator that builds a scene from plain data, settles it and renders views of it."""

    #: Short name recorded in dataset.json, e.g. "pybullet".
    name: str
    #: The renderer that actually runs, e.g. "egl" or "tiny"; recorded in dataset.json.
    renderer: str

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
