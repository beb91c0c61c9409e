"""Creating the bodies of a scene state: the PyBullet backend's build half, as a mixin.

:class:`SceneBuilderMixin` holds every step of :meth:`PyBulletBackend.build <simgen.backends.pybullet_backend.
PyBulletBackend.build>` that creates or measures one body: file spellings for EGL, URDF/OBJ/SDF/primitive
creation, textures baked for EGL, appearance and dynamics patches, held joints, labeled fixtures' instances and
3D boxes. It reads and writes the backend's state (see the attributes below); the measured PyBullet behaviour
behind each step is documented in :mod:`simgen.backends.pybullet_backend`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pybullet as p

from simgen.backends.pybullet_appearance import TextureCache, apply_appearance, check_rgba, texture_file
from simgen.backends.pybullet_bake import baked_obj, baked_primitive, baked_urdf
from simgen.backends.pybullet_bodies import (
    apply_dynamics,
    load_sdf,
    primitive_collision,
    primitive_half,
    primitive_visual,
)
from simgen.backends.pybullet_camera import (
    box_corners,
    compose_poses,
    invert_pose,
    invert_pose_quat,
    pose_matrix,
)
from simgen.backends.pybullet_geometry import (
    GEOM_PLANE,
    mesh_vertices,
    model_part,
    primitive_half_extents,
    visual_points,
)
from simgen.backends.pybullet_links import (
    link_box,
    link_names,
    link_world_pose,
    movable_joints,
    set_joints,
    visual_shapes,
)
from simgen.backends.pybullet_records import IDENTITY_QUAT as _IDENTITY_QUAT
from simgen.backends.pybullet_records import Body as _Body
from simgen.backends.pybullet_records import Instance as _Instance
from simgen.errors import AssetError, did_you_mean
from simgen.frame import ModelPart, ObjectInfo

logger = logging.getLogger(__name__)

DEFAULT_OBJ_MASS = 0.1
_MAX_PATH_SPELLING = 900  # PyBullet copies file names into 1024-byte buffers


class SceneBuilderMixin:
    """Body creation for :class:`~simgen.backends.pybullet_backend.PyBulletBackend` (see the module docstring)."""

    renderer: str
    _cid: int
    _bake: bool
    _bodies: list[_Body]
    _instances: list[_Instance]
    _holds: list[tuple[int, list[tuple[int, float]]]]
    _link_instances: dict[tuple[int, int], int]
    _spellings: dict[tuple[str, float, int], int]
    _box_cache: dict[tuple[str, float], tuple[tuple[float, float, float], tuple[float, float, float]]]
    _model_cache: dict[tuple[str, float], tuple[ModelPart, ...]]
    _textures: TextureCache

    def _spelling(self, path: str, scale: float, *, shared: bool = True) -> str:
        """The file name to load ``path`` at ``scale`` through.

        With EGL, each ``(path, scale)`` pair gets one spelling, or each call its own when ``shared`` is False
        (so PyBullet reports the body's visual data). Other renderers load ``path`` as is.
        """
        if self.renderer != "egl":
            return path
        key = (path, float(scale), 0 if shared else len(self._spellings) + 1)
        k = self._spellings.setdefault(key, len(self._spellings))
        head, tail = os.path.split(path)
        spelled = os.path.join(head, "./" * k + tail)
        if len(spelled) > _MAX_PATH_SPELLING:
            logger.warning("too many distinct (asset, scale) pairs for EGL's mesh cache; %s may render wrongly", path)
            return path
        return spelled

    def _load_urdf(
        self,
        path: str,
        position: Sequence[float],
        orientation: Sequence[float],
        scale: float,
        *,
        fixed: bool,
        where: str,
        shared: bool = True,
    ) -> int:
        try:
            return p.loadURDF(
                self._spelling(path, scale, shared=shared),
                basePosition=[float(v) for v in position],
                baseOrientation=[float(v) for v in orientation],
                useFixedBase=fixed,
                globalScaling=float(scale),
                physicsClientId=self._cid,
            )
        except p.error as exc:
            raise AssetError(f"{where}: PyBullet cannot load '{path}': {exc}") from exc

    def _create_fixture(self, entry: dict[str, Any], where: str) -> list[int]:
        """Create one fixture's bodies: one, or every model of an SDF file."""
        path = entry.get("path")
        if path and Path(path).suffix.lower() == ".sdf":
            scale = _scale(entry, where)
            return load_sdf(
                self._cid,
                self._spelling(path, scale, shared=False),
                entry.get("position", (0.0, 0.0, 0.0)),
                entry.get("orientation", _IDENTITY_QUAT),
                scale,
                where,
            )
        # Links labeled one by one need each link's visual data, which EGL reports only for a body with its own
        # spelling (see _create).
        own = bool(entry.get("labeled") and entry.get("link_labels"))
        return [self._create(entry, fixed=True, where=where, own_spelling=own)[0]]

    def _create(
        self, entry: dict[str, Any], *, fixed: bool, where: str, own_spelling: bool = False
    ) -> tuple[int, tuple[str, float] | None]:
        """Create one fixture or object; return its body id and the key of its 3D box in the cache (None: no cache).

        Only single-link assets share a cached box (and, with EGL, cached geometry): their box is computed from
        the visual frames alone, so it is the same bits for every instance. A multi-link box goes through the
        links' world poses, whose rounding depends on the instance's pose, so each instance computes its own
        and (with EGL) gets its own file spelling, without which PyBullet reports no visual data for it.
        With EGL, a textured body loads baked files (see :meth:`_textured_file`).
        """
        position = entry.get("position", (0.0, 0.0, 0.0))
        orientation = entry.get("orientation", _IDENTITY_QUAT)
        scale = _scale(entry, where)
        path, shape = entry.get("path"), entry.get("shape")
        if path:
            suffix = Path(path).suffix.lower()
            if suffix == ".urdf":
                single = _urdf_link_count(path) == 1
                load = self._textured_file(path, entry, where)
                body = self._load_urdf(
                    load, position, orientation, scale, fixed=fixed, where=where, shared=single and not own_spelling
                )
                return body, (path, scale) if single else None
            if suffix == ".obj":
                body = self._create_mesh(entry, path, scale, fixed=fixed, where=where)
                return body, ("obj:" + path, scale)
            if suffix == ".sdf":
                raise AssetError(
                    f"{where}.path: SDF files load as static fixtures only ('{path}'); "
                    "use a .urdf or .obj file for a dynamic object"
                )
            raise AssetError(f"{where}.path: expected a .urdf or .obj file (or .sdf for a fixture), got '{path}'")
        if shape:
            return self._create_primitive(entry, shape, scale, fixed=fixed, where=where), None
        raise AssetError(f"{where}: needs a resolved 'path' (.urdf or .obj) or a primitive 'shape'; got neither")

    def _textured_file(self, path: str, entry: Mapping[str, Any], where: str) -> str:
        """The URDF or OBJ file to load for an entry: with EGL and a texture, a copy with the texture baked in."""
        texture = entry.get("texture")
        if not self._bake or texture is None:
            return path
        png = texture_file(texture, f"{where}.texture")
        return baked_urdf(path, png) if path.lower().endswith(".urdf") else baked_obj(path, png)

    def _mass(self, entry: dict[str, Any], fixed: bool) -> float:
        if fixed:
            return 0.0
        mass = entry.get("mass")
        return DEFAULT_OBJ_MASS if mass is None else float(mass)

    def _create_mesh(self, entry: dict[str, Any], path: str, scale: float, *, fixed: bool, where: str) -> int:
        cid = self._cid
        verts = mesh_vertices(path)
        if verts is None:
            raise AssetError(f"{where}.path: cannot read vertices from '{path}'")
        center = (verts.min(axis=0) + verts.max(axis=0)) / 2.0 * scale
        mesh_scale = [scale] * 3
        color = entry.get("color")
        visual_kwargs = {"rgbaColor": [float(c) for c in color]} if color is not None else {}
        try:
            vis = p.createVisualShape(
                p.GEOM_MESH,
                fileName=self._spelling(self._textured_file(path, entry, where), scale),
                meshScale=mesh_scale,
                physicsClientId=cid,
                **visual_kwargs,
            )
            col = p.createCollisionShape(
                p.GEOM_MESH,
                fileName=path,
                meshScale=mesh_scale,
                physicsClientId=cid,
                flags=p.GEOM_FORCE_CONCAVE_TRIMESH if fixed else 0,
            )
        except p.error as exc:
            raise AssetError(f"{where}: PyBullet cannot load mesh '{path}': {exc}") from exc
        # The inertial frame sits at the mesh's box centre; the link frame (the mesh's own frame) is the pose.
        return p.createMultiBody(
            baseMass=self._mass(entry, fixed),
            baseCollisionShapeIndex=col,
            baseVisualShapeIndex=vis,
            basePosition=[float(v) for v in entry.get("position", (0.0, 0.0, 0.0))],
            baseOrientation=[float(v) for v in entry.get("orientation", _IDENTITY_QUAT)],
            baseInertialFramePosition=[float(v) for v in center],
            physicsClientId=cid,
        )

    def _create_primitive(
        self, entry: dict[str, Any], shape: dict[str, Any], scale: float, *, fixed: bool, where: str
    ) -> int:
        cid = self._cid
        half = primitive_half(shape, scale, f"{where}.shape")
        color = entry.get("color")
        rgba = [float(c) for c in color] if color is not None else [1.0, 1.0, 1.0, 1.0]
        if self._bake and entry.get("texture") is not None:
            mesh = baked_primitive(shape, half, texture_file(entry["texture"], f"{where}.texture"))
            visual = p.createVisualShape(
                p.GEOM_MESH, fileName=mesh, meshScale=[1.0] * 3, rgbaColor=rgba, physicsClientId=cid
            )
        else:
            visual = primitive_visual(cid, shape, half, scale, rgba)
        return p.createMultiBody(
            baseMass=self._mass(entry, fixed),
            baseCollisionShapeIndex=primitive_collision(cid, shape, half, scale),
            baseVisualShapeIndex=visual,
            basePosition=[float(v) for v in entry.get("position", (0.0, 0.0, 0.0))],
            baseOrientation=[float(v) for v in entry.get("orientation", _IDENTITY_QUAT)],
            physicsClientId=cid,
        )

    def _finish_body(self, body: int, uid: str, instance_id: int, entry: Mapping[str, Any] | None, where: str) -> _Body:
        """Apply an entry's appearance and dynamics patches, and record the frames and colours of a new body."""
        cid = self._cid
        links = (-1, *range(p.getNumJoints(body, physicsClientId=cid)))
        entry = entry or {}
        color = entry.get("color")
        texture = entry.get("texture")
        specular = entry.get("specular")
        texture_id = None
        if texture is not None and not self._bake:  # with EGL the texture was baked into the files (see _create)
            texture_id = self._textures.texture_id(texture, f"{where}.texture")
        elif texture is not None and str(entry.get("path") or "").lower().endswith(".sdf"):
            logger.warning("%s: EGL cannot texture an SDF fixture (only URDF, OBJ and primitives); untextured", where)
        apply_appearance(
            cid,
            body,
            links,
            color=None if color is None else check_rgba(color, f"{where}.color"),
            texture_id=texture_id,
            textured=texture is not None,
            specular=None if specular is None else check_rgba(specular, f"{where}.specular", n=3),
        )
        apply_dynamics(cid, body, links, entry.get("dynamics"), f"{where}.dynamics")
        info = p.getDynamicsInfo(body, -1, physicsClientId=cid)
        local_pos, local_orn = info[3], info[4]
        com_to_link = None
        if any(v != 0.0 for v in local_pos) or tuple(local_orn) != _IDENTITY_QUAT:
            com_to_link = invert_pose_quat(local_pos, local_orn)
        record = _Body(body=body, uid=uid, instance_id=instance_id, links=links, com_to_link=com_to_link)
        if self.renderer == "tiny":
            # TinyRenderer's changeVisualShape recolours every shape of a link at once, so hiding a link by
            # alpha 0 is only reversible when all its shapes share one colour.
            per_link: dict[int, set[tuple[float, ...]]] = {}
            for shape in p.getVisualShapeData(body, physicsClientId=cid):
                per_link.setdefault(shape[1], set()).add(tuple(shape[7]))
            record.alpha_hideable = all(len(c) == 1 for c in per_link.values())
            record.link_colors = {link: next(iter(c)) for link, c in per_link.items() if len(c) == 1}
        return record

    def _set_joints(self, joints: Any, fixtures: list[tuple[dict[str, Any], str, list[_Body]]]) -> None:
        """Set ``scene["joints"]`` on the fixtures and hold every movable fixture joint where it ends up."""
        joints = joints or {}
        if not isinstance(joints, Mapping):
            raise AssetError(f"joints: expected {{fixture_uid: {{joint_name: position}}}}, got {joints!r}")
        by_uid = {str(entry.get("uid", where)): records for entry, where, records in fixtures}
        for uid in joints:
            if uid not in by_uid:
                raise AssetError(
                    f"joints: no fixture '{uid}'{did_you_mean(str(uid), by_uid)}; fixtures: {list(by_uid)}"
                )
        for uid, records in by_uid.items():
            wanted = joints.get(uid) or {}
            if not isinstance(wanted, Mapping):
                raise AssetError(f"joints['{uid}']: expected {{joint_name: position}}, got {wanted!r}")
            owner = {name: b for b in records for name in movable_joints(self._cid, b.body)}
            unknown = [name for name in wanted if name not in owner]
            if unknown:
                hint = did_you_mean(str(unknown[0]), owner)
                raise AssetError(
                    f"joints['{uid}']: fixture '{uid}' has no movable joint '{unknown[0]}'{hint}; "
                    f"its movable joints are {list(owner)}"
                )
            for b in records:
                mine = {name: value for name, value in wanted.items() if owner[name] is b}
                held = set_joints(self._cid, b.body, mine, f"joints['{uid}']")
                if held:
                    self._holds.append((b.body, held))

    def _fixture_instances(self, entry: dict[str, Any], where: str, records: list[_Body]) -> None:
        """Make a labeled fixture's instances: one per body, or one per link with visual geometry."""
        cid = self._cid
        uid = str(entry.get("uid", where))
        category = str(entry.get("category") or uid)
        asset = str(entry.get("asset") or "")
        path = str(entry.get("path") or "")
        if entry.get("link_labels") and path.lower().endswith(".urdf"):
            b = records[0]
            names = link_names(cid, b.body)
            for link, shapes in sorted(visual_shapes(cid, b.body).items()):
                box = link_box(shapes)
                exact = box is not None
                if box is None:
                    logger.info("%s: cannot read the visual of link %s; using its collision AABB", uid, names[link])
                    box = self._link_aabb(b, link)
                lo, hi = box
                if not np.all(np.isfinite(lo)):
                    continue  # the link draws nothing (planes only)
                instance_id = len(self._instances) + 1
                parts = [model_part(s[1], s[2], s[3], pose_matrix(s[4], s[5])) for s in shapes]
                info = ObjectInfo(
                    instance_id=instance_id,
                    uid=f"{uid}/{names[link]}",
                    category=f"{category}/{names[link]}",
                    labeled=True,
                    bbox3d_center=tuple(float(v) for v in (lo + hi) / 2.0),  # type: ignore[arg-type]
                    bbox3d_size=tuple(float(v) for v in hi - lo),  # type: ignore[arg-type]
                    asset=asset,
                    model=tuple(q for q in parts if q is not None) if exact else (),
                )
                self._link_instances[(b.body, link)] = instance_id
                self._instances.append(_Instance(info, b, link, exact, tuple(shapes)))
            return
        for b in records:
            instance_id = len(self._instances) + 1
            center, size, exact = self._object_box(b, None, entry)
            b.instance_id, b.box_exact = instance_id, exact
            b.info = ObjectInfo(
                instance_id=instance_id,
                uid=b.uid,
                category=category,
                labeled=True,
                bbox3d_center=center,
                bbox3d_size=size,
                asset=asset,
                model=self._object_model(b) if exact else (),
            )
            self._instances.append(_Instance(b.info, b, None, exact))

    def _link_aabb(self, b: _Body, link: int) -> tuple[np.ndarray, np.ndarray]:
        """A link's collision AABB, as a box in its link frame (not exact: a fallback for unreadable visuals)."""
        lo, hi = (np.asarray(v, dtype=np.float64) for v in p.getAABB(b.body, link, physicsClientId=self._cid))
        T_link_world = invert_pose(self._link_matrix(b, link))
        corners = box_corners((lo + hi) / 2.0, hi - lo) @ T_link_world[:3, :3].T + T_link_world[:3, 3]
        return corners.min(axis=0), corners.max(axis=0)

    def _link_pose(self, b: _Body) -> tuple[Sequence[float], Sequence[float]]:
        """World pose (position, quaternion xyzw) of a body's base link frame."""
        pos, orn = p.getBasePositionAndOrientation(b.body, physicsClientId=self._cid)
        if b.com_to_link is None:
            return pos, orn
        return compose_poses(pos, orn, b.com_to_link[0], b.com_to_link[1])

    def _link_matrix(self, b: _Body, link: int | None) -> np.ndarray:
        """World pose (4, 4) of a body's base link frame (``link`` None or -1) or of one of its child links."""
        if link is None or link < 0:
            return pose_matrix(*self._link_pose(b))
        return pose_matrix(*link_world_pose(self._cid, b.body, link))

    def _object_box(
        self, b: _Body, cache_key: tuple[str, float] | None, entry: dict[str, Any]
    ) -> tuple[tuple[float, float, float], tuple[float, float, float], bool]:
        """The 3D box (centre, size, exact) of an object in its link frame, from its visual geometry.

        Visual meshes (OBJ/STL vertices) and primitives give the exact box of what is rendered. Only when
        a visual cannot be read (e.g. a Collada mesh) does it fall back to the collision AABB with the
        body at identity, which may differ from the rendered shape (``exact=False``).
        """
        if not entry.get("path"):
            half = primitive_half_extents(entry["shape"], float(entry.get("scale", 1.0)))
            return (0.0, 0.0, 0.0), tuple(float(v) for v in 2 * half), True  # type: ignore[return-value]
        if cache_key is not None and cache_key in self._box_cache:
            center, size = self._box_cache[cache_key]
            return center, size, True
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for gtype, dims, mesh_file, T in self._shape_frames(b):
            pts = visual_points(gtype, dims, mesh_file)
            if pts is None:
                logger.info("%s: cannot read visual %s; using the collision AABB as its 3D box", b.uid, mesh_file)
                return (*self._aabb_box(b), False)  # type: ignore[return-value]
            if len(pts) == 0:
                continue
            local = pts @ T[:3, :3].T + T[:3, 3]
            lo, hi = np.minimum(lo, local.min(axis=0)), np.maximum(hi, local.max(axis=0))
        if not np.all(np.isfinite(lo)):
            return (*self._aabb_box(b), False)  # type: ignore[return-value]
        center = tuple(float(v) for v in (lo + hi) / 2.0)
        size = tuple(float(v) for v in hi - lo)
        if cache_key is not None:
            self._box_cache[cache_key] = (center, size)  # type: ignore[assignment]
        return center, size, True  # type: ignore[return-value]

    def _shape_frames(self, b: _Body) -> list[tuple[int, tuple[float, ...], str, np.ndarray]]:
        """(geometry type, dimensions, mesh file, (4, 4) frame in the base link frame) of each visual of a body."""
        cid = self._cid
        T_base_world: np.ndarray | None = None
        out = []
        for shape in p.getVisualShapeData(b.body, physicsClientId=cid):
            link, gtype, dims, mesh_file, vpos, vorn = shape[1], shape[2], shape[3], shape[4], shape[5], shape[6]
            T = pose_matrix(vpos, vorn)  # visual frame in its link's frame
            if link >= 0:  # a child link: through world poses (PyBullet reports them in float32 precision)
                if T_base_world is None:
                    T_base_world = invert_pose(pose_matrix(*self._link_pose(b)))
                state = p.getLinkState(b.body, link, computeForwardKinematics=True, physicsClientId=cid)
                T = T_base_world @ pose_matrix(state[4], state[5]) @ T
            out.append((gtype, tuple(dims), mesh_file.decode("utf-8", "replace"), T))
        return out

    def _object_model(self, b: _Body, cache_key: tuple[str, float] | None = None) -> tuple[ModelPart, ...]:
        """An object's 3D model: its visual shapes in its base link frame (empty if one cannot be described).

        Cached like the 3D box, per single-link ``(asset, scale)``: with EGL, a body that shares another's cached
        geometry is reported with an empty mesh file name.
        """
        if cache_key is not None and cache_key in self._model_cache:
            return self._model_cache[cache_key]
        parts = []
        for gtype, dims, mesh_file, T in self._shape_frames(b):
            part = model_part(gtype, dims, mesh_file, T)
            if part is None and gtype != GEOM_PLANE:
                logger.info("%s: visual shape of type %s has no model; the object gets none", b.uid, gtype)
                return ()
            if part is not None:
                parts.append(part)
        if cache_key is not None and parts:
            self._model_cache[cache_key] = tuple(parts)
        return tuple(parts)

    def _aabb_box(self, b: _Body) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Collision AABB over all links with the link frame at the world origin (then the pose is restored)."""
        cid = self._cid
        saved = p.saveState(physicsClientId=cid)  # restores the pose bit-exactly, unlike a reset with read values
        com_pos, com_orn = (0.0, 0.0, 0.0), _IDENTITY_QUAT
        if b.com_to_link is not None:
            com_pos, com_orn = (list(v) for v in invert_pose_quat(*b.com_to_link))
        p.resetBasePositionAndOrientation(b.body, com_pos, com_orn, physicsClientId=cid)
        boxes = [p.getAABB(b.body, link, physicsClientId=cid) for link in b.links]
        p.restoreState(stateId=saved, physicsClientId=cid)
        p.removeState(saved, physicsClientId=cid)
        lo = np.min([bx[0] for bx in boxes], axis=0)
        hi = np.max([bx[1] for bx in boxes], axis=0)
        return tuple(float(v) for v in (lo + hi) / 2.0), tuple(float(v) for v in hi - lo)  # type: ignore[return-value]


def _scale(entry: Mapping[str, Any], where: str) -> float:
    scale = float(entry.get("scale", 1.0))
    if not scale > 0:
        raise AssetError(f"{where}.scale: expected a positive number, got {scale}")
    return scale


@functools.lru_cache(maxsize=256)
def _urdf_link_count(path: str) -> int:
    """Number of links a URDF file declares (0 when it cannot be parsed, which disables sharing)."""
    try:
        return len(ElementTree.parse(path).getroot().findall("link"))
    except (OSError, ElementTree.ParseError):
        return 0


def _reach(center: Sequence[float], size: Sequence[float], com: Sequence[float]) -> float:
    """Distance from the centre of mass ``com`` (link frame) to the farthest corner of a box."""
    corners = box_corners(center, size) - np.asarray(com, dtype=np.float64)
    return float(np.sqrt((corners**2).sum(axis=1)).max())
