"""The PyBullet backend: builds a scene state, settles it, and renders views with TinyRenderer or EGL.

One backend owns one PyBullet physics client in DIRECT mode (one per worker process); every call passes
``physicsClientId``. Measured behaviour of PyBullet 3.2.7 that this module works around (see
``/work/shared/PLATFORM.md`` and the tests):

* **EGL plugin.** Loaded before any body, then two warm-up frames are rendered right away: the first two
  frames of a fresh plugin have no shadows. After that, ``resetSimulation``, new bodies, a new light or a
  new resolution need no further warm-up (measured: the first frame after each is bit-identical to later
  ones). The plugin prints GL information to C-level stdout on load, on its first frames and on
  disconnect; those calls run with fd 1 pointed at ``/dev/null``.
* **EGL reuses mesh geometry across scales.** The plugin caches a mesh's triangles by file name and local
  transform only, not by scale: a second body with the same mesh at another scale is drawn at the first
  body's scale, and ``getVisualShapeData`` then reports an empty file name. Each distinct
  ``(asset, scale)`` of a build therefore loads its files through a distinct spelling of the same path
  (``dir/./././file``), which defeats the cache without copying anything.
* **EGL textures belong to the shared geometry.** A texture set on one body shows on every body that shares
  its cached mesh, so a textured body always loads through a spelling of its own (see
  :mod:`simgen.backends.pybullet_appearance` for textures, and for EGL's texture memory that
  ``resetSimulation`` never frees).
* **One EGL backend per process.** The plugin keeps process-wide GL state: after a second EGL client in the
  process is closed, the first one renders stale body transforms (and, after its next build, nothing for
  mesh bodies). A second EGL backend is therefore refused while one is alive (``"auto"`` falls back to
  TinyRenderer with a warning); closing one and then starting another is fine.
* **EGL resolution.** The plugin draws into a 1024x768 window and upsamples larger requests by pixel
  repetition, so EGL renders at most 1024x768 (:attr:`PyBulletBackend.max_resolution`).
* **EGL lighting.** Only the light direction is used; colour, ambient, diffuse and specular coefficients are
  ignored and shadows are always on. Per-shape ``specularColor`` changes nothing with either renderer.
* **TinyRenderer samples pixel corners**, not centres: its images are shifted by half a pixel (+x, -y)
  relative to the pinhole model. The projection matrix compensates, so both renderers agree with ``K``
  within 0.1 px.
* **Frames.** For a URDF, ``getBasePositionAndOrientation`` reports the *inertial* frame of the base link,
  while ``loadURDF``'s ``basePosition`` and the visual origins refer to the URDF link frame. Every pose
  simgen sees (``settle`` poses, ``object_poses``) is the URDF link frame (the asset's own frame, as BOP
  models expect), and 3D boxes are expressed in that frame. The conversion runs in float64: PyBullet's
  ``multiplyTransforms``/``invertTransform`` and ``getLinkState`` work in float32 (errors ~1e-8 m).
* **Hiding bodies for visibility.** TinyRenderer drops alpha-0 shapes from its segmentation mask, and
  ``changeVisualShape`` touches no physics state; but it recolours *every* shape of a link at once, so a
  link with differently coloured shapes cannot be restored that way. EGL ignores alpha in its segmentation
  pass. Bodies that cannot be hidden by colour are moved behind the camera inside ``saveState`` /
  ``restoreState``, which restores poses and velocities bit-exactly (a plain reset with the read pose does
  not: quaternions come back 1e-17 off). Caveat, measured: any ``restoreState`` (even right after
  ``saveState``) changes how a *further* ``stepSimulation`` continues in the last bits, because contact
  caches are rebuilt; simgen never steps after rendering, and TinyRenderer scenes of single-colour links
  never take this path.

Instances. Objects get instance ids 1..N in insertion order. Labeled fixtures follow, in fixture order: one
instance per fixture body, or, with ``link_labels`` on a URDF, one per link that has visual geometry
(``uid = "<fixture>/<link>"``, ``category = "<category>/<link>"``, pose = the link's URDF frame). Labeled flying
occluders of a view come last (``uid = "occluder/<k>"``, category ``"occluder"``). A link is rendered alone for
visibility through a proxy body (see :mod:`simgen.backends.pybullet_links`), so self-occlusion between the
links of one robot counts as occlusion, as it should.

Flying occluders (``view["occluders"]``) are visual-only bodies created for one render and removed after it:
the physics state is untouched.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import logging
import math
import os
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pybullet as p
import pybullet_data

from simgen.backends.pybullet_appearance import TextureCache, apply_appearance, check_rgba
from simgen.backends.pybullet_bodies import (
    PRIMITIVES,
    apply_dynamics,
    create_visual_body,
    load_sdf,
    occluder_shape,
    primitive_collision,
    primitive_half,
    primitive_visual,
)
from simgen.backends.pybullet_camera import (
    box_corners,
    compose_poses,
    depth_to_metres,
    gl_list,
    invert_pose,
    invert_pose_quat,
    opengl_projection,
    opengl_view,
    pose_matrix,
)
from simgen.backends.pybullet_geometry import mesh_vertices, primitive_half_extents, visual_points
from simgen.backends.pybullet_links import (
    VisualShape,
    link_box,
    link_names,
    link_world_pose,
    movable_joints,
    proxy_visual,
    set_joints,
    snap_joints,
    visual_shapes,
)
from simgen.backends.pybullet_visibility import group_disjoint, screen_rect
from simgen.errors import AssetError, BackendUnavailable, did_you_mean
from simgen.frame import FrameBuffers, ObjectInfo

logger = logging.getLogger(__name__)

RENDERERS = ("auto", "egl", "tiny")
__all__ = ["PRIMITIVES", "RENDERERS", "PyBulletBackend"]
#: The EGL plugin's fixed window size; larger images are upsampled by pixel repetition.
EGL_MAX_RESOLUTION = (1024, 768)
#: Where TinyRenderer samples a pixel relative to its centre, in pixels (x right, y down).
TINY_SAMPLE_OFFSET = (-0.5, 0.5)
DEFAULT_PHYSICS = {"max_steps": 1000, "rest_velocity": 0.01, "gravity": -9.81, "timestep": 1.0 / 240.0}
DEFAULT_OBJ_MASS = 0.1
#: Colour of a flying occluder whose entry has none.
DEFAULT_OCCLUDER_COLOR = (0.5, 0.5, 0.5, 1.0)
#: Steps between two rest checks in :meth:`PyBulletBackend.settle`.
SETTLE_CHECK_EVERY = 10
_BODY_MASK = (1 << 24) - 1  # ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX: value = body + ((link + 1) << 24)
_MAX_INSTANCES = int(np.iinfo(np.uint16).max)
_EGL_WARMUP_FRAMES = 2
_MAX_PATH_SPELLING = 900  # PyBullet copies file names into 1024-byte buffers
_IDENTITY_QUAT = (0.0, 0.0, 0.0, 1.0)
# Physics clients of this process that run the EGL plugin (see "one EGL backend per process" above).
_EGL_CLIENTS: set[int] = set()
_EGL_LOCK = threading.Lock()
_EGL_BUSY = "another EGL backend is alive in this process (the plugin supports one at a time)"


@dataclass
class _Body:
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
class _Instance:
    """One instance: a whole body, or one link of a fixture labeled per link."""

    info: ObjectInfo
    body: _Body
    link: int | None = None  # None: the whole body; else the link drawn as this instance (-1: the base link)
    box_exact: bool = True
    shapes: tuple[VisualShape, ...] = ()  # a link instance's visual shapes (its proxy draws them)

    @property
    def instance_id(self) -> int:
        """Its value in the instance mask."""
        return self.info.instance_id


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Point file descriptor 1 at /dev/null inside the block (C-level prints included)."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 at all: nothing to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # flush C stdio buffers into /dev/null before restoring fd 1
            ctypes.CDLL(None).fflush(None)
        os.dup2(saved, 1)
        os.close(saved)


def _disconnect(cid: int, quiet: bool) -> None:
    """Disconnect a physics client; the EGL plugin prints on the way out, so silence fd 1 for it."""
    with _quiet_stdout() if quiet else contextlib.nullcontext(), contextlib.suppress(p.error):
        p.disconnect(physicsClientId=cid)
    if quiet:
        with _EGL_LOCK:
            _EGL_CLIENTS.discard(cid)


def _mesa_cache_dir() -> str:
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return str(Path(tempfile.gettempdir()) / f"simgen-mesa-shader-cache-{uid}")


class PyBulletBackend:
    """A PyBullet simulator that builds scene states, settles them and renders views (see the module docstring).

    Args:
        renderer: ``"auto"`` (EGL when its plugin loads, else TinyRenderer), ``"egl"`` (raise if the plugin
            cannot load) or ``"tiny"``.

    Attributes:
        name: ``"pybullet"``.
        renderer: The renderer that actually runs: ``"egl"`` or ``"tiny"``.

    Raises:
        ValueError: For an unknown renderer name.
        BackendUnavailable: When PyBullet cannot start, or ``renderer="egl"`` and the plugin does not load.

    Example:
        >>> with PyBulletBackend(renderer="tiny") as backend:  # doctest: +SKIP
        ...     backend.build(scene_state)
        ...     settled = backend.settle()
        ...     frame = backend.render(view_state, visibility=True)
    """

    name = "pybullet"

    def __init__(self, renderer: str = "auto") -> None:
        if renderer not in RENDERERS:
            raise ValueError(
                f"renderer: expected one of {RENDERERS}, got '{renderer}'{did_you_mean(renderer, RENDERERS)}"
            )
        self._cid = -1
        self.renderer = "tiny"
        self._bodies: list[_Body] = []  # every body of the build: ground, fixtures, objects
        self._objects: list[_Body] = []  # the dynamic bodies that settle
        self._instances: list[_Instance] = []  # objects, then labeled fixtures (bodies or links), by instance id
        self._holds: list[tuple[int, list[tuple[int, float]]]] = []  # (body, [(joint, position)]) held in settle
        self._proxy_visuals: dict[tuple[int, int], int] = {}  # (body, link) -> visual shape of its proxy
        self._physics: dict[str, Any] = dict(DEFAULT_PHYSICS)
        self._lut = np.zeros(1, dtype=np.uint16)
        #: (body, link) -> instance id of the links of fixtures labeled per link.
        self._link_instances: dict[tuple[int, int], int] = {}
        self._spellings: dict[tuple[str, float, int], int] = {}
        self._box_cache: dict[tuple[str, float], tuple[tuple[float, float, float], tuple[float, float, float]]] = {}
        self._cid = p.connect(p.DIRECT)
        if self._cid < 0:
            raise BackendUnavailable("PyBullet could not start a DIRECT physics client")
        self._textures = TextureCache(self._cid)
        self._finalizer: weakref.finalize | None = None
        if renderer in ("auto", "egl"):
            error = self._load_egl()
            if error is None:
                self.renderer = "egl"
            elif renderer == "egl":
                self.close()
                raise BackendUnavailable(f"the PyBullet EGL renderer is unavailable: {error}; use renderer='tiny'")
            else:
                level = logging.WARNING if error is _EGL_BUSY else logging.INFO
                logger.log(level, "PyBullet EGL renderer unavailable (%s); using TinyRenderer", error)
        self._textures.clear(self._cid)  # a failed EGL load starts a new client
        self._pb_renderer = p.ER_BULLET_HARDWARE_OPENGL if self.renderer == "egl" else p.ER_TINY_RENDERER
        # Disconnect (quietly) when garbage-collected or at interpreter exit, if close() was never called.
        self._finalizer = weakref.finalize(self, _disconnect, self._cid, self.renderer == "egl")
        logger.debug("PyBullet client %d started with the %s renderer", self._cid, self.renderer)

    # ------------------------------------------------------------------ lifecycle

    @property
    def client_id(self) -> int:
        """The PyBullet physics client id (for debugging and tests; -1 once closed)."""
        return self._cid

    @property
    def max_resolution(self) -> tuple[int, int] | None:
        """The largest ``(width, height)`` this renderer draws exactly, or None for no limit."""
        return EGL_MAX_RESOLUTION if self.renderer == "egl" else None

    def _load_egl(self) -> str | None:
        """Load the EGL plugin into this (still empty) client; return why it failed, or None on success."""
        with _EGL_LOCK:
            if _EGL_CLIENTS:
                return _EGL_BUSY
            error = self._load_egl_plugin()
            if error is None:
                _EGL_CLIENTS.add(self._cid)
            return error

    def _load_egl_plugin(self) -> str | None:
        spec = importlib.util.find_spec("eglRenderer")
        if spec is None or not spec.origin:
            return "pybullet's eglRenderer module is missing"
        os.environ.setdefault("MESA_SHADER_CACHE_DIR", _mesa_cache_dir())
        try:
            with _quiet_stdout():
                plugin = p.loadPlugin(spec.origin, "_eglRendererPlugin", physicsClientId=self._cid)
                if plugin >= 0:
                    for _ in range(_EGL_WARMUP_FRAMES):  # the first frames of a fresh plugin have no shadows
                        p.getCameraImage(8, 8, renderer=p.ER_BULLET_HARDWARE_OPENGL, physicsClientId=self._cid)
        except p.error as exc:
            plugin, reason = -1, str(exc)
        else:
            reason = "loadPlugin returned -1 (no EGL device?)"
        if plugin >= 0:
            return None
        # A failed load may leave the client half-configured: start over with a clean one.
        with contextlib.suppress(p.error):
            p.disconnect(physicsClientId=self._cid)
        self._cid = p.connect(p.DIRECT)
        if self._cid < 0:
            raise BackendUnavailable("PyBullet could not start a DIRECT physics client")
        return reason

    def _check_open(self) -> int:
        if self._cid < 0:
            raise BackendUnavailable("this PyBullet backend is closed")
        return self._cid

    def close(self) -> None:
        """Disconnect the physics client. Safe to call twice."""
        cid, self._cid = self._cid, -1
        self._reset_records()
        if self._finalizer is not None:
            self._finalizer()  # runs _disconnect once; later calls do nothing
        elif cid >= 0:
            _disconnect(cid, self.renderer == "egl")

    def __enter__(self) -> PyBulletBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ build

    def build(self, scene: dict[str, Any]) -> None:
        """Reset the world and create the ground, the fixtures and the objects of ``scene``.

        Objects get instance ids 1..N in insertion order, then labeled fixtures follow (see the module
        docstring). Every instance's 3D box is computed here, once, from its visual geometry. Joint positions
        (``scene["joints"]``) are set here and held while physics settles.

        Args:
            scene: A scene state (see :mod:`simgen.backends.base`), with ``path`` resolved to absolute files.

        Raises:
            AssetError: An entry has neither a usable ``path`` nor a known ``shape``, PyBullet cannot load it,
                or a patch (texture, dynamics, joints) is malformed or names something that does not exist.
        """
        cid = self._check_open()
        try:
            self._build(cid, scene)
        except BaseException:
            # Never leave a half-built world behind: it would render with the previous scene's instance map.
            self._reset_records()
            p.resetSimulation(physicsClientId=cid)
            raise

    def _reset_records(self) -> None:
        self._bodies, self._objects, self._instances, self._holds = [], [], [], []
        self._spellings, self._link_instances, self._proxy_visuals = {}, {}, {}
        self._lut = np.zeros(1, dtype=np.uint16)
        self._textures.clear()

    def _build(self, cid: int, scene: dict[str, Any]) -> None:
        p.resetSimulation(physicsClientId=cid)
        self._reset_records()  # resetSimulation invalidates texture ids too
        self._physics = {**DEFAULT_PHYSICS, **{k: v for k, v in (scene.get("physics") or {}).items() if v is not None}}
        # Sorted contact pairs make the contact order a function of body ids alone, never of the broadphase's
        # history (measured: builds were bit-reproducible without it too; it costs no measurable time).
        p.setPhysicsEngineParameter(
            fixedTimeStep=float(self._physics["timestep"]), deterministicOverlappingPairs=1, physicsClientId=cid
        )
        p.setGravity(0.0, 0.0, float(self._physics["gravity"]), physicsClientId=cid)

        ground = scene.get("ground") or {"kind": "plane"}
        kind = ground.get("kind", "plane")
        if kind == "plane":
            path = str(Path(pybullet_data.getDataPath()) / "plane.urdf")
            body = self._load_urdf(path, (0.0, 0.0, 0.0), _IDENTITY_QUAT, 1.0, fixed=True, where="ground")
            self._bodies.append(self._finish_body(body, "ground", 0, ground, "ground"))
        elif kind != "none":
            hint = did_you_mean(kind, ["plane", "none"])
            raise AssetError(f"ground.kind: expected 'plane' or 'none', got '{kind}'{hint}")

        fixtures: list[tuple[dict[str, Any], str, list[_Body]]] = []
        for i, entry in enumerate(scene.get("fixtures") or []):
            where = f"fixtures[{i}]"
            uid = str(entry.get("uid", where))
            created = self._create_fixture(entry, where)
            records = [
                self._finish_body(body, uid if len(created) == 1 else f"{uid}/{k}", 0, entry, where)
                for k, body in enumerate(created)
            ]
            self._bodies.extend(records)
            fixtures.append((entry, where, records))
        self._set_joints(scene.get("joints"), fixtures)

        objects = list((scene.get("objects") or {}).items())
        if len(objects) > _MAX_INSTANCES:
            raise AssetError(
                f"objects: at most {_MAX_INSTANCES} objects fit a uint16 instance mask, got {len(objects)}"
            )
        for instance_id, (uid, entry) in enumerate(objects, start=1):
            where = f"objects['{uid}']"
            body, cache_key = self._create(entry, fixed=False, where=where)
            record = self._finish_body(body, str(uid), instance_id, entry, where)
            if entry.get("mass") is not None and entry.get("path"):  # primitives and meshes got it at creation
                p.changeDynamics(body, -1, mass=float(entry["mass"]), physicsClientId=cid)
            center, size, exact = self._object_box(record, cache_key, entry)
            record.box_exact = exact
            record.reach = _reach(center, size, p.getDynamicsInfo(body, -1, physicsClientId=cid)[3])
            record.info = ObjectInfo(
                instance_id=instance_id,
                uid=str(uid),
                category=str(entry.get("category", "")),
                labeled=bool(entry.get("labeled", True)),
                bbox3d_center=center,
                bbox3d_size=size,
                asset=str(entry.get("asset") or ""),
            )
            self._bodies.append(record)
            self._objects.append(record)
            self._instances.append(_Instance(record.info, record, None, exact))

        for entry, where, records in fixtures:  # after the joints are set: a whole robot's box depends on them
            if entry.get("labeled"):
                self._fixture_instances(entry, where, records)
        if len(self._instances) > _MAX_INSTANCES:
            raise AssetError(
                f"at most {_MAX_INSTANCES} instances fit a uint16 instance mask, got {len(self._instances)}"
            )

        lut = np.zeros(max((b.body for b in self._bodies), default=-1) + 2, dtype=np.uint16)
        for b in self._bodies:
            lut[b.body] = b.instance_id
        self._lut = lut  # the last entry stays 0: every out-of-range value (background) maps there
        logger.debug(
            "built %d bodies (%d objects, %d instances)", len(self._bodies), len(self._objects), len(self._instances)
        )

    def _spelling(self, path: str, scale: float, *, shared: bool = True) -> str:
        """The file name to load ``path`` at ``scale`` through.

        With EGL, each ``(path, scale)`` pair gets one spelling, or each call its own when ``shared`` is False
        (so PyBullet reports the body's visual data, and a texture set on it stays its own). Other renderers
        load ``path`` as is.
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
        A textured body also gets its own spelling: EGL textures the shared geometry, not the body.
        """
        position = entry.get("position", (0.0, 0.0, 0.0))
        orientation = entry.get("orientation", _IDENTITY_QUAT)
        scale = _scale(entry, where)
        own_spelling = own_spelling or entry.get("texture") is not None
        path, shape = entry.get("path"), entry.get("shape")
        if path:
            suffix = Path(path).suffix.lower()
            if suffix == ".urdf":
                single = _urdf_link_count(path) == 1
                body = self._load_urdf(
                    path, position, orientation, scale, fixed=fixed, where=where, shared=single and not own_spelling
                )
                return body, (path, scale) if single else None
            if suffix == ".obj":
                body = self._create_mesh(entry, path, scale, fixed=fixed, where=where, shared=not own_spelling)
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

    def _mass(self, entry: dict[str, Any], fixed: bool) -> float:
        if fixed:
            return 0.0
        mass = entry.get("mass")
        return DEFAULT_OBJ_MASS if mass is None else float(mass)

    def _create_mesh(
        self, entry: dict[str, Any], path: str, scale: float, *, fixed: bool, where: str, shared: bool = True
    ) -> int:
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
                fileName=self._spelling(path, scale, shared=shared),
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
        return p.createMultiBody(
            baseMass=self._mass(entry, fixed),
            baseCollisionShapeIndex=primitive_collision(cid, shape, half, scale),
            baseVisualShapeIndex=primitive_visual(cid, shape, half, scale, rgba),
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
        apply_appearance(
            cid,
            body,
            links,
            color=None if color is None else check_rgba(color, f"{where}.color"),
            texture_id=None if texture is None else self._textures.texture_id(texture, f"{where}.texture"),
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
                info = ObjectInfo(
                    instance_id=instance_id,
                    uid=f"{uid}/{names[link]}",
                    category=f"{category}/{names[link]}",
                    labeled=True,
                    bbox3d_center=tuple(float(v) for v in (lo + hi) / 2.0),  # type: ignore[arg-type]
                    bbox3d_size=tuple(float(v) for v in hi - lo),  # type: ignore[arg-type]
                    asset=asset,
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
        cid = self._cid
        T_base_world: np.ndarray | None = None
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for shape in p.getVisualShapeData(b.body, physicsClientId=cid):
            link, gtype, dims, mesh_file, vpos, vorn = shape[1], shape[2], shape[3], shape[4], shape[5], shape[6]
            pts = visual_points(gtype, dims, mesh_file.decode("utf-8", "replace"))
            if pts is None:
                logger.info("%s: cannot read visual %s; using the collision AABB as its 3D box", b.uid, mesh_file)
                return (*self._aabb_box(b), False)  # type: ignore[return-value]
            if len(pts) == 0:
                continue
            T = pose_matrix(vpos, vorn)  # visual frame in its link's frame
            if link >= 0:  # a child link: through world poses (PyBullet reports them in float32 precision)
                if T_base_world is None:
                    T_base_world = invert_pose(pose_matrix(*self._link_pose(b)))
                state = p.getLinkState(b.body, link, computeForwardKinematics=True, physicsClientId=cid)
                T = T_base_world @ pose_matrix(state[4], state[5]) @ T
            local = pts @ T[:3, :3].T + T[:3, 3]
            lo, hi = np.minimum(lo, local.min(axis=0)), np.maximum(hi, local.max(axis=0))
        if not np.all(np.isfinite(lo)):
            return (*self._aabb_box(b), False)  # type: ignore[return-value]
        center = tuple(float(v) for v in (lo + hi) / 2.0)
        size = tuple(float(v) for v in hi - lo)
        if cache_key is not None:
            self._box_cache[cache_key] = (center, size)  # type: ignore[assignment]
        return center, size, True  # type: ignore[return-value]

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

    # ------------------------------------------------------------------ settle

    def settle(self) -> dict[str, Any]:
        """Step physics until every object rests, or ``physics.max_steps``.

        Rest means that no point of any object moves faster than ``physics.rest_velocity`` (m/s), bounded
        by ``|v| + |w| * reach`` with ``reach`` the distance from the centre of mass to the farthest corner
        of the object's 3D box: an angular speed in rad/s is not comparable to a threshold in m/s, and slow
        creep of piles at ~0.02 rad/s (1 mm/s at the surface) otherwise never "rests". It must hold on two
        checks in a row (checks run every :data:`SETTLE_CHECK_EVERY` steps; one check alone can catch a
        bouncing object at the top of its arc). Fixture joints are reset to their set positions after every
        step (see :mod:`simgen.backends.pybullet_links`), so they end exactly where the scene state put them.

        Returns:
            ``{"steps": n, "poses": {uid: [x, y, z, qx, qy, qz, qw]}, "at_rest": bool}``, poses of each
            object's link frame in the world.
        """
        cid = self._check_open()
        max_steps = int(self._physics["max_steps"])
        rest = float(self._physics["rest_velocity"])
        steps, calm_checks = 0, 0
        at_rest = not self._objects
        while self._objects and steps < max_steps:
            n = min(SETTLE_CHECK_EVERY, max_steps - steps)
            for _ in range(n):
                p.stepSimulation(physicsClientId=cid)
                if self._holds:
                    snap_joints(cid, self._holds)
            steps += n
            calm_checks = calm_checks + 1 if self._all_slow(rest) else 0
            if calm_checks >= 2:
                at_rest = True
                break
        if not at_rest:
            logger.info("objects still moving after max_steps=%d", max_steps)
        poses = {}
        for b in self._objects:
            pos, orn = self._link_pose(b)
            poses[b.uid] = [float(v) for v in (*pos, *orn)]
        return {"steps": steps, "poses": poses, "at_rest": at_rest}

    def _all_slow(self, rest: float) -> bool:
        for b in self._objects:
            lin, ang = p.getBaseVelocity(b.body, physicsClientId=self._cid)
            if math.hypot(*lin) + math.hypot(*ang) * b.reach >= rest:
                return False
        return True

    # ------------------------------------------------------------------ render

    def render(self, view: dict[str, Any], *, visibility: bool = False) -> FrameBuffers:
        """Render one view of the built scene.

        Args:
            view: A view state (see :mod:`simgen.backends.base`): ``camera``, optionally ``light`` and
                ``occluders`` (flying occluders, created for this render only).
            visibility: Also render each instance with every other body hidden, and return its pixel count
                (``FrameBuffers.unoccluded_px``) and full silhouette (``FrameBuffers.unoccluded_masks``).
                Physics poses and velocities are unchanged afterwards.

        Returns:
            The frame's buffers, instance list and poses.

        Raises:
            ValueError: For a malformed camera.
            AssetError: For a malformed occluder.
            BackendUnavailable: With EGL, for images larger than :attr:`max_resolution`.
        """
        cid = self._check_open()
        cam = view["camera"]
        width, height = int(cam["width"]), int(cam["height"])
        if width <= 0 or height <= 0:
            raise ValueError(f"camera: width and height must be positive, got {width}x{height}")
        limit = self.max_resolution
        if limit is not None and (width > limit[0] or height > limit[1]):
            raise BackendUnavailable(
                f"camera: the PyBullet EGL renderer draws at most {limit[0]}x{limit[1]} (larger images are "
                f"upsampled by pixel repetition), got {width}x{height}; use renderer='tiny' or a smaller image"
            )
        K = np.asarray(cam["K"], dtype=np.float64)
        T_world_cam = np.asarray(cam["T_world_cam"], dtype=np.float64)
        near, far = float(cam["near"]), float(cam["far"])
        view_gl = gl_list(opengl_view(T_world_cam))
        proj_gl = gl_list(self._projection(K, width, height, near, far))
        kwargs = _light_kwargs(view.get("light"))

        occluders: list[_Body] = []
        try:
            instances = self._add_occluders(view.get("occluders"), occluders)
            lut = self._lut
            if occluders:
                lut = np.zeros(max(len(lut), max(b.body for b in occluders) + 2), dtype=np.uint16)
                lut[: len(self._lut) - 1] = self._lut[:-1]
                for b in occluders:
                    lut[b.body] = b.instance_id
            _, _, rgba, depth_buffer, seg = p.getCameraImage(
                width,
                height,
                viewMatrix=view_gl,
                projectionMatrix=proj_gl,
                renderer=self._pb_renderer,
                flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX,
                physicsClientId=cid,
                **kwargs,
            )
            rgba = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)
            seg = np.asarray(seg, dtype=np.int32).reshape(height, width)
            depth = depth_to_metres(np.asarray(depth_buffer).reshape(height, width), near, far, hit=seg >= 0)
            ids = self._instance_ids(seg, lut)
            poses = {inst.instance_id: self._link_matrix(inst.body, inst.link) for inst in instances}
            unoccluded, masks = None, None
            meta: dict[str, object] = {"backend": self.name, "renderer": self.renderer}
            if occluders:
                meta["occluders"] = len(occluders)
            if visibility:
                camera = (width, height, K, T_world_cam, near, far, view_gl, proj_gl)
                unoccluded, masks, renders, added = self._visibility(camera, instances, occluders, poses, ids)
                meta["visibility_renders"] = renders
                meta["visibility_union_px"] = added  # visible pixels the alone-renders missed (see _visibility)
        finally:
            for b in occluders:
                p.removeBody(b.body, physicsClientId=cid)
        return FrameBuffers(
            rgb=np.ascontiguousarray(rgba[..., :3]),
            depth_m=depth,
            instance_ids=ids,
            K=K.copy(),
            T_world_cam=T_world_cam.copy(),
            objects=[inst.info for inst in instances],
            object_poses=poses,
            unoccluded_px=unoccluded,
            unoccluded_masks=masks,
            meta=meta,
        )

    def _projection(self, K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
        if self.renderer == "tiny":  # move the principal point so TinyRenderer's corner samples hit pixel centres
            K = K.copy()
            K[0, 2] += TINY_SAMPLE_OFFSET[0]
            K[1, 2] += TINY_SAMPLE_OFFSET[1]
        return opengl_projection(K, width, height, near, far)

    def _instance_ids(self, seg: np.ndarray, lut: np.ndarray | None = None) -> np.ndarray:
        """Map a PyBullet segmentation mask (body + ((link + 1) << 24), -1 for nothing) to uint16 instance ids."""
        lut = self._lut if lut is None else lut
        ids = lut[np.minimum(seg & _BODY_MASK, len(lut) - 1)]
        for (body, link), instance_id in self._link_instances.items():
            ids[seg == body + ((link + 1) << 24)] = instance_id
        return ids

    def _add_occluders(self, entries: Any, created: list[_Body]) -> list[_Instance]:
        """Create the view's flying occluders (appended to ``created`` one by one, so a failure can clean up).

        Returns:
            Every instance of this render: the build's, then the labeled occluders'.
        """
        if not entries:
            return list(self._instances)
        if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
            raise AssetError(f"occluders: expected a list of occluder entries, got {entries!r}")
        cid = self._cid
        instances = list(self._instances)
        for k, entry in enumerate(entries):
            where = f"occluders[{k}]"
            shape, half = occluder_shape(entry, where)
            rgba = check_rgba(entry.get("color") or DEFAULT_OCCLUDER_COLOR, f"{where}.color")
            position = [float(v) for v in entry.get("position", (0.0, 0.0, 0.0))]
            orientation = [float(v) for v in entry.get("orientation", _IDENTITY_QUAT)]
            body = create_visual_body(cid, primitive_visual(cid, shape, half, 1.0, rgba), position, orientation)
            record = _Body(body=body, uid=f"occluder/{k}", instance_id=0, links=(-1,), com_to_link=None)
            record.alpha_hideable, record.link_colors = True, {-1: tuple(rgba)}
            created.append(record)
            if entry.get("labeled"):
                if len(instances) >= _MAX_INSTANCES:
                    raise AssetError(f"{where}: more than {_MAX_INSTANCES} instances do not fit a uint16 mask")
                record.instance_id = len(instances) + 1
                record.info = ObjectInfo(
                    instance_id=record.instance_id,
                    uid=record.uid,
                    category="occluder",
                    labeled=True,
                    bbox3d_center=(0.0, 0.0, 0.0),
                    bbox3d_size=tuple(float(v) for v in 2.0 * half),  # type: ignore[arg-type]
                )
                instances.append(_Instance(record.info, record, None, True))
        return instances

    # ------------------------------------------------------------------ visibility

    def _visibility(
        self,
        camera: tuple[Any, ...],
        instances: list[_Instance],
        occluders: list[_Body],
        poses: dict[int, np.ndarray],
        ids: np.ndarray,
    ) -> tuple[dict[int, int], dict[int, np.ndarray], int, int]:
        """Each instance rendered with every other body hidden.

        Instances whose projected 3D boxes are disjoint cannot occlude each other, so they share one render.
        A link instance is drawn by a proxy body (see :mod:`simgen.backends.pybullet_links`). TinyRenderer
        hides bodies with alpha 0 (a purely visual change). EGL ignores alpha in its segmentation pass, so
        there bodies are moved behind the camera inside ``saveState``/``restoreState``, which restores every
        pose and velocity bit-exactly. Each silhouette also holds the instance's pixels of the frame itself
        (by definition it does; the union only matters for a proxy, whose pose PyBullet reports in float32),
        and its count is the count of that mask, so masks and counts always agree.

        Returns:
            ``(pixel counts, silhouettes, renders, union pixels)``: the last counts visible pixels the renders
            alone missed (0 but for rounding of proxy poses).
        """
        width, height, K, T_world_cam, near, far, _, _ = camera
        cid = self._cid
        masks = {inst.instance_id: np.zeros((height, width), dtype=bool) for inst in instances}
        rects: dict[int, tuple[int, int, int, int] | None] = {}
        for inst in instances:
            info = inst.info
            if not inst.box_exact:
                rects[info.instance_id] = None
                continue
            rect = screen_rect(
                info.bbox3d_center, info.bbox3d_size, poses[info.instance_id], K, T_world_cam, near, far, width, height
            )
            if rect != ():
                rects[info.instance_id] = rect  # type: ignore[assignment]
        groups = group_disjoint(rects)
        by_id = {inst.instance_id: inst for inst in instances}
        proxies: dict[int, _Body] = {}
        try:
            for instance_id in rects:
                inst = by_id[instance_id]
                if inst.link is not None:
                    proxy = self._make_proxy(inst, poses[instance_id])
                    if proxy is not None:
                        proxies[instance_id] = proxy
            if groups:
                self._render_alone(camera, groups, by_id, [*self._bodies, *occluders], proxies, masks)
        finally:
            for proxy in proxies.values():
                p.removeBody(proxy.body, physicsClientId=cid)
        added = 0
        for instance_id, mask in masks.items():
            visible = ids == instance_id
            added += int(np.count_nonzero(visible & ~mask))
            mask |= visible
        counts = {instance_id: int(mask.sum()) for instance_id, mask in masks.items()}
        return counts, masks, len(groups), added

    def _make_proxy(self, inst: _Instance, T_world_link: np.ndarray) -> _Body | None:
        """A body drawing one link instance's visual shapes at the link's pose (None if none can be drawn)."""
        cid = self._cid
        key = (inst.body.body, -2 if inst.link is None else inst.link)
        visual = self._proxy_visuals.get(key)
        if visual is None:
            visual = self._proxy_visuals[key] = proxy_visual(cid, inst.shapes)
        if visual < 0:
            return None
        from simgen.backends.pybullet_camera import matrix_quaternion

        body = create_visual_body(cid, visual, T_world_link[:3, 3], matrix_quaternion(T_world_link[:3, :3]))
        return _Body(
            body=body,
            uid=f"{inst.info.uid}#proxy",
            instance_id=0,
            links=(-1,),
            com_to_link=None,
            alpha_hideable=True,
            link_colors={-1: (1.0, 1.0, 1.0, 1.0)},
        )

    def _render_alone(
        self,
        camera: tuple[Any, ...],
        groups: list[list[int]],
        by_id: dict[int, _Instance],
        bodies: list[_Body],
        proxies: dict[int, _Body],
        masks: dict[int, np.ndarray],
    ) -> None:
        """Render each group of instances with everything else hidden; fill their masks."""
        width, height, _, T_world_cam, _, _, view_gl, proj_gl = camera
        cid = self._cid
        everything = [*bodies, *proxies.values()]
        movers = [b for b in everything if self.renderer == "egl" or not b.alpha_hideable]
        saved_state = p.saveState(physicsClientId=cid) if movers else None
        home = {b.body: p.getBasePositionAndOrientation(b.body, physicsClientId=cid) for b in movers}
        eye, forward = T_world_cam[:3, 3], T_world_cam[:3, 2]
        away = {
            b.body: ([float(v) for v in eye - forward * (1.0e4 + 100.0 * k)], _IDENTITY_QUAT)
            for k, b in enumerate(movers)
        }
        try:
            for b in everything:
                self._set_visible(b, False, home, away)
            for group in groups:
                shown = []
                for instance_id in group:
                    inst = by_id[instance_id]
                    target = inst.body if inst.link is None else proxies.get(instance_id)
                    if target is not None:
                        shown.append((instance_id, target))
                        self._set_visible(target, True, home, away)
                if not shown:
                    continue
                _, _, _, _, seg = p.getCameraImage(
                    width,
                    height,
                    viewMatrix=view_gl,
                    projectionMatrix=proj_gl,
                    renderer=self._pb_renderer,
                    flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX,
                    shadow=0,
                    physicsClientId=cid,
                )
                bodies_seen = np.asarray(seg, dtype=np.int32).reshape(height, width) & _BODY_MASK
                for instance_id, target in shown:
                    masks[instance_id] |= bodies_seen == target.body
                    self._set_visible(target, False, home, away)
        finally:
            for b in everything:
                if b.alpha_hideable and self.renderer == "tiny":
                    self._set_visible(b, True, home, away)
            if saved_state is not None:
                p.restoreState(stateId=saved_state, physicsClientId=cid)
                p.removeState(saved_state, physicsClientId=cid)

    def _set_visible(self, b: _Body, visible: bool, home: dict[int, Any], away: dict[int, Any]) -> None:
        cid = self._cid
        if b.body in away:
            pos, orn = home[b.body] if visible else away[b.body]
            p.resetBasePositionAndOrientation(b.body, pos, orn, physicsClientId=cid)
            return
        for link, rgba in b.link_colors.items():
            color = list(rgba) if visible else [rgba[0], rgba[1], rgba[2], 0.0]
            p.changeVisualShape(b.body, link, rgbaColor=color, physicsClientId=cid)


def _scale(entry: Mapping[str, Any], where: str) -> float:
    scale = float(entry.get("scale", 1.0))
    if not scale > 0:
        raise AssetError(f"{where}.scale: expected a positive number, got {scale}")
    return scale


def _light_kwargs(light: Mapping[str, Any] | None) -> dict[str, Any]:
    """``getCameraImage`` keyword arguments for a view's light (see :mod:`simgen.backends.base`)."""
    kwargs: dict[str, Any] = {}
    if not light:
        return kwargs
    distance = float(light.get("distance", 10.0))
    direction = np.asarray(light.get("direction", (0.0, 0.0, 1.0)), dtype=np.float64)
    # PyBullet's lightDirection is the light's position: the light shines from there towards the origin.
    kwargs["lightDirection"] = [float(v) for v in direction * distance]
    kwargs["lightDistance"] = distance
    for key, arg in (
        ("ambient", "lightAmbientCoeff"),
        ("diffuse", "lightDiffuseCoeff"),
        ("specular", "lightSpecularCoeff"),
    ):
        if light.get(key) is not None:
            kwargs[arg] = float(light[key])
    if light.get("color") is not None:
        kwargs["lightColor"] = [float(c) for c in light["color"]]
    kwargs["shadow"] = int(bool(light.get("shadows", True)))
    return kwargs


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
