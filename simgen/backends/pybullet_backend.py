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
* **EGL textures.** ``changeVisualShape(textureUniqueId=...)`` draws the right image with EGL only in the
  first build of a process (after that, another build's image), so with EGL a texture is baked into a copy of
  the body's mesh files instead (see :mod:`simgen.backends.pybullet_bake`); TinyRenderer uses
  ``loadTexture``/``changeVisualShape`` (see :mod:`simgen.backends.pybullet_appearance`).
* **EGL texture rows.** The plugin uploads textures as packed 8-bit RGB under OpenGL's default
  ``GL_UNPACK_ALIGNMENT`` of 4: a texture whose width is not a multiple of 4 was drawn sheared, and its upload
  read past the end of the pixel buffer (pybullet_data's tray: a SIGSEGV in ``loadURDF`` whenever the page after
  that buffer happened to be unmapped). The plugin's context gets ``GL_UNPACK_ALIGNMENT`` 1 as it loads (see
  :mod:`simgen.backends.pybullet_egl`).
* **EGL memory.** The plugin frees no mesh or texture on ``resetSimulation``: measured ~7 MB per build of
  ten objects on a table (its own textured meshes: duck, cube, table), ~1 MB more with eleven 128-256 px
  textures. TinyRenderer frees everything. Long EGL runs should recycle worker processes.
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
the physics state is untouched. Fixture joints (``scene["joints"]``) are set at build time and held exactly
while physics settles (see :mod:`simgen.backends.pybullet_links`); SDF fixtures are placed at
``T_fixture * T_sdf`` and made static (see :mod:`simgen.backends.pybullet_bodies`).

The build steps live in :class:`~simgen.backends.pybullet_build.SceneBuilderMixin` and the visibility passes
in :class:`~simgen.backends.pybullet_visibility.VisibilityMixin`; this module holds the lifecycle, the
orchestration of a build, settling, rendering and flying occluders.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pybullet as p
import pybullet_data

from simgen.backends.base import Recycling, spec_categories
from simgen.backends.pybullet_appearance import TextureCache, check_rgba
from simgen.backends.pybullet_bodies import PRIMITIVES, create_visual_body, occluder_shape, primitive_visual
from simgen.backends.pybullet_build import DEFAULT_OBJ_MASS, SceneBuilderMixin, _reach
from simgen.backends.pybullet_camera import depth_to_metres, gl_list, opengl_projection, opengl_view
from simgen.backends.pybullet_egl import (
    EGL_BUSY,
    EGL_CLIENTS,
    EGL_LOCK,
    EGL_RECYCLE_BUILDS,
    EGL_RECYCLE_MIN_BUILDS,
    disconnect,
    load_egl_plugin,
    probe_auto_renderer,
)
from simgen.backends.pybullet_links import snap_joints
from simgen.backends.pybullet_records import IDENTITY_QUAT as _IDENTITY_QUAT
from simgen.backends.pybullet_records import Body as _Body
from simgen.backends.pybullet_records import Instance as _Instance
from simgen.backends.pybullet_timeline import TimelineMixin
from simgen.backends.pybullet_visibility import VisibilityMixin
from simgen.errors import AssetError, BackendUnavailable, SimgenError, did_you_mean
from simgen.frame import FrameBuffers, ModelPart, ObjectInfo

if TYPE_CHECKING:
    from simgen.spec.loader import LoadedSpec
    from simgen.spec.models import Fixture

logger = logging.getLogger(__name__)

RENDERERS = ("auto", "egl", "tiny")
__all__ = ["DEFAULT_OBJ_MASS", "PRIMITIVES", "RENDERERS", "PyBulletBackend"]
#: The EGL plugin's fixed window size; larger images are upsampled by pixel repetition.
EGL_MAX_RESOLUTION = (1024, 768)
#: Where TinyRenderer samples a pixel relative to its centre, in pixels (x right, y down).
TINY_SAMPLE_OFFSET = (-0.5, 0.5)
DEFAULT_PHYSICS = {"max_steps": 1000, "rest_velocity": 0.01, "gravity": -9.81, "timestep": 1.0 / 240.0}
#: Colour of a flying occluder whose entry has none.
DEFAULT_OCCLUDER_COLOR = (0.5, 0.5, 0.5, 1.0)
#: Steps between two rest checks in :meth:`PyBulletBackend.settle`.
SETTLE_CHECK_EVERY = 10
#: When the engine restarts an EGL client (see :class:`~simgen.backends.base.Recycling`).
EGL_RECYCLING = Recycling(EGL_RECYCLE_BUILDS, EGL_RECYCLE_MIN_BUILDS)
_BODY_MASK = (1 << 24) - 1  # ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX: value = body + ((link + 1) << 24)
_MAX_INSTANCES = int(np.iinfo(np.uint16).max)


class PyBulletBackend(SceneBuilderMixin, VisibilityMixin, TimelineMixin):
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
    #: Per-object renders (visibility fractions, BOP's full masks) work with both renderers. Timelines (stepping,
    #: event actions, RGB-only sub-frames) come from :class:`~simgen.backends.pybullet_timeline.TimelineMixin`.
    capabilities: ClassVar[Mapping[str, bool]] = {"visibility": True, "timeline": True}

    def __init__(self, renderer: str = "auto") -> None:
        if renderer not in RENDERERS:
            raise ValueError(
                f"renderer: expected one of {RENDERERS}, got '{renderer}'{did_you_mean(renderer, RENDERERS)}"
            )
        self._cid = -1
        self._builds = 0
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
        self._model_cache: dict[tuple[str, float], tuple[ModelPart, ...]] = {}
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
                level = logging.WARNING if error is EGL_BUSY else logging.INFO
                logger.log(level, "PyBullet EGL renderer unavailable (%s); using TinyRenderer", error)
        self._textures.clear(self._cid)  # a failed EGL load starts a new client
        #: EGL draws textures only when baked into mesh materials (see :mod:`simgen.backends.pybullet_bake`).
        self._bake = self.renderer == "egl"
        self._pb_renderer = p.ER_BULLET_HARDWARE_OPENGL if self.renderer == "egl" else p.ER_TINY_RENDERER
        # Disconnect (quietly) when garbage-collected or at interpreter exit, if close() was never called.
        self._finalizer = weakref.finalize(self, disconnect, self._cid, self.renderer == "egl")
        logger.debug("PyBullet client %d started with the %s renderer", self._cid, self.renderer)

    # ------------------------------------------------------------------ what the engine asks the class

    @classmethod
    def resolve_renderer(cls, requested: str) -> str:
        """``"egl"`` or ``"tiny"`` for ``"auto"`` (probed once, in a child process), else ``requested``.

        Raises:
            SimgenError: An unknown renderer (with a "did you mean").
        """
        if requested not in RENDERERS:
            raise SimgenError(
                f"renderer: the pybullet backend renders with one of {list(RENDERERS)}, got '{requested}'"
                f"{did_you_mean(requested, RENDERERS)}"
            )
        return probe_auto_renderer() if requested == "auto" else requested

    @classmethod
    def worker_env(cls, workers: int) -> dict[str, str]:
        """The environment of ``workers`` processes sharing the cores: Mesa's llvmpipe draws in each one's own thread.

        llvmpipe (EGL on the CPU) starts one rasterizer thread per core by default; N workers x N threads thrash. With
        ``LP_NUM_THREADS=0`` each worker draws on its own thread, with no hand-off to a helper thread
        (measured here: 2 workers 13-15% faster than with one helper thread each). A value the user set wins.
        It must be set before the process's first GL context: llvmpipe reads it once.
        """
        return {"LP_NUM_THREADS": os.environ.get("LP_NUM_THREADS", "0")} if workers > 1 else {}

    @classmethod
    def categories(cls, loaded: LoadedSpec) -> list[str]:
        """Label categories of a spec (see :func:`~simgen.backends.base.spec_categories`).

        A fixture with ``link_labels`` on a URDF gets one category per link, ``<category>/<link>``, as
        :meth:`build` makes one instance per link (links without visual geometry get an unused id).
        """
        return spec_categories(loaded, fixture_categories=_fixture_categories)

    @property
    def recycling(self) -> Recycling | None:
        """EGL clients leak with every build and are restarted now and then (see the module docstring)."""
        return EGL_RECYCLING if self.renderer == "egl" else None

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
        with EGL_LOCK:
            if EGL_CLIENTS:
                return EGL_BUSY
            error = self._load_egl_plugin()
            if error is None:
                EGL_CLIENTS.add(self._cid)
            return error

    def _load_egl_plugin(self) -> str | None:
        error = load_egl_plugin(self._cid)
        if error is None:
            return None
        # A failed load may leave the client half-configured: start over with a clean one.
        with contextlib.suppress(p.error):
            p.disconnect(physicsClientId=self._cid)
        self._cid = p.connect(p.DIRECT)
        if self._cid < 0:
            raise BackendUnavailable("PyBullet could not start a DIRECT physics client")
        return error

    def _check_open(self) -> int:
        if self._cid < 0:
            raise BackendUnavailable("this PyBullet backend is closed")
        return self._cid

    def close(self) -> None:
        """Disconnect the physics client. Safe to call twice."""
        cid, self._cid = self._cid, -1
        self._reset_records()
        if self._finalizer is not None:
            self._finalizer()  # runs disconnect once; later calls do nothing
        elif cid >= 0:
            disconnect(cid, self.renderer == "egl")

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
        self._builds += 1
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
            path = self._textured_file(str(Path(pybullet_data.getDataPath()) / "plane.urdf"), ground, "ground")
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
                model=self._object_model(record, cache_key) if exact else (),
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
            _, _, rgba, depth_buffer, seg = self._camera_image(width, height, view_gl, proj_gl, **kwargs)
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

    def render_rgb(self, view: dict[str, Any]) -> np.ndarray:
        """Only the RGB of a view (a motion-blur sub-frame): no depth, instance mask or labels are made.

        A view with flying occluders goes through :meth:`render`, which creates and removes them.
        """
        if view.get("occluders"):
            return self.render(view).rgb
        cid = self._check_open()
        cam = view["camera"]
        width, height = int(cam["width"]), int(cam["height"])
        K = np.asarray(cam["K"], dtype=np.float64)
        near, far = float(cam["near"]), float(cam["far"])
        view_gl = gl_list(opengl_view(np.asarray(cam["T_world_cam"], dtype=np.float64)))
        proj_gl = gl_list(self._projection(K, width, height, near, far))
        rgba = p.getCameraImage(
            width,
            height,
            viewMatrix=view_gl,
            projectionMatrix=proj_gl,
            renderer=self._pb_renderer,
            flags=p.ER_NO_SEGMENTATION_MASK,
            physicsClientId=cid,
            **_light_kwargs(view.get("light")),
        )[2]
        return np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[..., :3])

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
                    model=self._object_model(record),
                )
                instances.append(_Instance(record.info, record, None, True))
        return instances

    # ------------------------------------------------------------------ visibility


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


def _fixture_categories(fx: Fixture, loaded: LoadedSpec) -> list[str]:
    """One category per URDF link of a fixture with ``link_labels`` (``<category>/<link>``), else one."""
    base = fx.category or fx.name
    if not (fx.link_labels and isinstance(fx.asset, str) and fx.asset.endswith(".urdf")):
        return [base]
    from simgen.assets import resolve_asset
    from simgen.randomizers.robots import urdf_links

    path = resolve_asset(fx.asset, base_dir=loaded.base_dir, roots=loaded.roots)
    return [f"{base}/{link}" for link in urdf_links(str(path))]
