"""Plain records of the PyBullet backend: one body of a build, and one instance of a frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from simgen.backends.pybullet_links import VisualShape
from simgen.frame import ObjectInfo

IDENTITY_QUAT = (0.0, 0.0, 0.0, 1.0)


@dataclass
class Body:
    """One PyBullet body of the built scene (or of one render) and what the backend needs to know about it."""

    body: int
    uid: str
    instance_id: int  # 0 unless the whole body is one instance (objects, labeled fixtures and occluders)
    links: tuple[int, ...]
    com_to_link: tuple[Sequence[float], Sequence[float]] | None  # None when the link frame is the inertial frame
    alpha_hideable: bool = False  # TinyRenderer: its colours can be set to alpha 0 and restored exactly
    link_colors: dict[int, tuple[float, ...]] = field(default_factory=dict)
    info: ObjectInfo | None = None
    box_exact: bool = True  # the 3D box bounds the rendered geometry (visual meshes/primitives, not getAABB)
    reach: float = 0.0  # distance from the centre of mass to the farthest corner of the 3D box, metres


@dataclass
class Instance:
    """One instance: a whole body, or one link of a fixture labeled per link."""

    info: ObjectInfo
    body: Body
    link: int | None = None  # None: the whole body; else the link drawn as this instance (-1: the base link)
    box_exact: bool = True
    shapes: tuple[VisualShape, ...] = ()  # a link instance's visual shapes (its proxy draws them)

    @property
    def instance_id(self) -> int:
        """Its value in the instance mask."""
        return self.info.instance_id
