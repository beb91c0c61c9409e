"""Conformance check of simulator backends (:class:`~simgen.backends.base.Backend`), like ``check_randomizer``.

:func:`check_backend` runs a backend through ``build``, ``settle``, ``render`` and ``close`` on a scene and a
view the caller gives, and asserts the frame contract every label function and writer relies on
(:mod:`simgen.frame`):

* the backend declares ``name``, ``renderer`` and ``capabilities``; ``settle`` returns plain JSON;
* buffers: RGB (H, W, 3) uint8; depth (H, W) float32 in metres, finite, ``>= 0``, and ``> 0`` wherever an
  instance was hit; instance ids (H, W) uint16;
* ``K`` is a pinhole matrix (no skew, positive focal lengths) in OpenCV's pixel-centre convention, and
  ``T_world_cam`` and every object pose are rigid transforms. The centre ``(u, v) = (col, row)`` of every
  visible pixel lies within the projection through ``K`` of its object's 3D box, posed with
  ``inverse(T_world_cam) @ T_world_obj``; and (``exact_depth``) the pixel back-projected with its depth
  (``x = (col - cx) z / fx``) lands inside that box. So the camera, the poses, the depth and ``K`` agree with
  each other to a fraction of a pixel: a ``K`` off by half a pixel fails;
* instance ids and objects match: ids are unique in 1..65535, every object has a pose, and every non-zero
  pixel belongs to an object;
* with the ``visibility`` capability, ``render(visibility=True)`` gives every object its unoccluded pixel count
  and mask, which hold at least its visible pixels, and changes nothing else; without it, the backend refuses
  (a :class:`~simgen.errors.SimgenError`) or leaves them ``None``;
* determinism: two fresh backends built from the same scene settle and render byte-identical frames (a
  render may advance the simulator's clock, as CARLA's tick does: only first renders are compared);
* ``close()`` may be called twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from simgen.backends.base import Backend
from simgen.errors import SimgenError
from simgen.frame import FrameBuffers

__all__ = ["BackendCheckError", "check_backend", "check_frame"]

#: How far (in pixels at the point's depth) a back-projected visible pixel may land outside its object's box.
PIXEL_TOL = 0.25
#: ... plus this much in metres, for the depth buffer's own precision.
DEPTH_TOL_M = 1e-4


class BackendCheckError(AssertionError):
    """A backend broke the :class:`~simgen.backends.base.Backend` contract (the message says how)."""


def check_backend(
    backend_factory: Callable[[], Backend],
    scene_state: Mapping[str, Any],
    view_state: Mapping[str, Any],
    *,
    min_visible_objects: int = 1,
    exact_depth: bool = True,
) -> FrameBuffers:
    """Assert a backend's contract (see the module docstring) on one scene and one view.

    Args:
        backend_factory: Makes a fresh, started backend (called twice: determinism across fresh clients).
        scene_state: A scene the backend builds (its plain-data scene state).
        view_state: A view of it the backend renders.
        min_visible_objects: How many objects must show at least one pixel, so that the conventions are
            really checked (choose a scene and view where they do).
        exact_depth: Check each visible pixel's depth against its object's box too (a renderer's depth is the
            surface's; a test double that paints one depth per object sets False).

    Returns:
        The frame the first backend rendered.

    Raises:
        BackendCheckError: With what was violated.
    """
    first = backend_factory()
    try:
        name = _check_declarations(first)
        settled, frame, visible = _run(first, scene_state, view_state, name, exact_depth)
    finally:
        first.close()
    first.close()  # idempotent
    second = backend_factory()
    try:
        settled_b, frame_b, _ = _run(second, scene_state, view_state, name, exact_depth)
    finally:
        second.close()
    if json.dumps(settled, sort_keys=True) != json.dumps(settled_b, sort_keys=True):
        raise BackendCheckError(f"{name}: two fresh backends settle the same scene differently")
    if not _same_frame(frame, frame_b):
        raise BackendCheckError(f"{name}: two fresh backends render the same scene and view differently")
    shown = sum(1 for n in visible.values() if n > 0)
    if shown < min_visible_objects:
        raise BackendCheckError(
            f"{name}: {shown} object(s) visible in the view, fewer than the {min_visible_objects} the check needs; "
            "choose a scene and view where objects show"
        )
    return frame


def _check_declarations(backend: Any) -> str:
    if not isinstance(backend, Backend):
        raise BackendCheckError(
            f"{type(backend).__name__} lacks name, renderer, capabilities, build, settle, render or close"
        )
    name = backend.name
    if not isinstance(name, str) or not name:
        raise BackendCheckError(f"{type(backend).__name__}.name must be a non-empty str, got {name!r}")
    if not isinstance(backend.renderer, str) or not backend.renderer:
        raise BackendCheckError(
            f"{name}: renderer must be the name of the renderer that runs, got {backend.renderer!r}"
        )
    caps = backend.capabilities
    if not isinstance(caps, Mapping) or not all(isinstance(k, str) and isinstance(v, bool) for k, v in caps.items()):
        raise BackendCheckError(f"{name}: capabilities must map names to bools, got {caps!r}")
    return name


def _run(
    backend: Backend, scene: Mapping[str, Any], view: Mapping[str, Any], name: str, exact_depth: bool
) -> tuple[Any, FrameBuffers, dict[int, int]]:
    built = backend.build(dict(scene))
    if built is not None:
        raise BackendCheckError(f"{name}: build() must return None, got {type(built).__name__}")
    settled = backend.settle()
    try:
        text = json.dumps(settled, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise BackendCheckError(f"{name}: settle() must return plain JSON ({exc})") from None
    if not isinstance(settled, dict) or json.loads(text) != settled:
        raise BackendCheckError(f"{name}: settle() must return a dict that survives a JSON round trip")
    frame = backend.render(dict(view))
    visible = check_frame(frame, view, name, exact_depth=exact_depth)
    _check_visibility(backend, frame, view, name)
    return settled, frame, visible


def check_frame(
    frame: FrameBuffers, view: Mapping[str, Any] | None = None, name: str = "backend", *, exact_depth: bool = True
) -> dict[int, int]:
    """Assert the frame contract of one rendered frame (see the module docstring); return visible pixels by id.

    Args:
        frame: What ``render`` returned.
        view: The view state it rendered; its ``camera`` (``width``, ``height``, ``K``, ``T_world_cam``), when
            it has one, must be what the frame reports.
        name: The backend, for messages.
        exact_depth: Also back-project each visible pixel with its depth into its object's box.

    Raises:
        BackendCheckError: With what was violated.
    """
    if not isinstance(frame, FrameBuffers):
        raise BackendCheckError(f"{name}: render() must return FrameBuffers, got {type(frame).__name__}")
    rgb, depth, ids = frame.rgb, frame.depth_m, frame.instance_ids
    _expect(
        isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8,
        f"{name}: rgb must be (H, W, 3) uint8, got {_describe(rgb)}",
    )
    h, w = rgb.shape[:2]
    _expect(
        isinstance(depth, np.ndarray) and depth.shape == (h, w) and depth.dtype == np.float32,
        f"{name}: depth_m must be ({h}, {w}) float32, got {_describe(depth)}",
    )
    _expect(
        isinstance(ids, np.ndarray) and ids.shape == (h, w) and ids.dtype == np.uint16,
        f"{name}: instance_ids must be ({h}, {w}) uint16, got {_describe(ids)}",
    )
    _expect(
        bool(np.all(np.isfinite(depth))) and float(depth.min(initial=0.0)) >= 0.0,
        f"{name}: depth_m must be finite metres >= 0 (0 where nothing was hit)",
    )
    _expect(bool(np.all(depth[ids != 0] > 0.0)), f"{name}: depth_m is 0 on pixels where an instance was hit")
    K = _pinhole(frame.K, name)
    T_world_cam = _rigid(frame.T_world_cam, f"{name}: T_world_cam")
    camera = view.get("camera") if isinstance(view, Mapping) else None
    if isinstance(camera, Mapping):
        if "width" in camera and "height" in camera:
            _expect(
                (w, h) == (int(camera["width"]), int(camera["height"])),
                f"{name}: the frame is {w}x{h}, the view asked for {camera['width']}x{camera['height']}",
            )
        if "K" in camera:
            _expect(
                np.allclose(K, np.asarray(camera["K"], dtype=np.float64), atol=1e-9),
                f"{name}: the frame's K differs from the view's",
            )
        if "T_world_cam" in camera:
            _expect(
                np.allclose(T_world_cam, np.asarray(camera["T_world_cam"], dtype=np.float64), atol=1e-9),
                f"{name}: the frame's T_world_cam differs from the view's",
            )
    by_id = _check_objects(frame, name)
    present, counts = np.unique(ids, return_counts=True)
    visible = {int(i): int(c) for i, c in zip(present, counts, strict=True) if i != 0}
    strangers = sorted(set(visible) - set(by_id))
    _expect(not strangers, f"{name}: instance ids {strangers[:5]} in instance_ids belong to no object")
    T_cam_world = np.linalg.inv(T_world_cam)
    for iid in visible:
        _check_silhouette(frame, K, T_cam_world, iid, by_id[iid], name)
        if exact_depth:
            _check_projection(frame, K, T_cam_world, iid, by_id[iid], name)
    return visible


def _check_objects(frame: FrameBuffers, name: str) -> dict[int, Any]:
    by_id: dict[int, Any] = {}
    for obj in frame.objects:
        iid = obj.instance_id
        _expect(isinstance(iid, int) and 1 <= iid <= 65535, f"{name}: object '{obj.uid}' has instance id {iid!r}")
        _expect(iid not in by_id, f"{name}: instance id {iid} is given to '{by_id.get(iid, obj).uid}' and '{obj.uid}'")
        size = np.asarray(obj.bbox3d_size, dtype=np.float64)
        _expect(size.shape == (3,) and bool(np.all(size >= 0)), f"{name}: '{obj.uid}' has 3D box size {size}")
        _expect(iid in frame.object_poses, f"{name}: object '{obj.uid}' (id {iid}) has no pose in object_poses")
        _rigid(frame.object_poses[iid], f"{name}: object_poses[{iid}] ('{obj.uid}')")
        by_id[iid] = obj
    extra = sorted(set(frame.object_poses) - set(by_id))
    _expect(not extra, f"{name}: object_poses has ids {extra[:5]} of no object")
    return by_id


def _check_projection(
    frame: FrameBuffers, K: np.ndarray, T_cam_world: np.ndarray, iid: int, obj: Any, name: str
) -> None:
    """Back-project the object's visible pixels (OpenCV: pixel (col, row) at (u, v) = (col, row)) into its box."""
    rows, cols = np.nonzero(frame.instance_ids == iid)
    z = frame.depth_m[rows, cols].astype(np.float64)
    x = (cols - K[0, 2]) * z / K[0, 0]
    y = (rows - K[1, 2]) * z / K[1, 1]
    T_cam_obj = T_cam_world @ np.asarray(frame.object_poses[iid], dtype=np.float64)
    _expect(T_cam_obj[2, 3] > 0 or bool(np.any(z > 0)), f"{name}: '{obj.uid}' is visible but behind the camera")
    T_obj_cam = np.linalg.inv(T_cam_obj)
    local = (T_obj_cam[:3, :3] @ np.stack([x, y, z]) + T_obj_cam[:3, 3:4]).T
    centre = np.asarray(obj.bbox3d_center, dtype=np.float64)
    half = np.asarray(obj.bbox3d_size, dtype=np.float64) / 2.0
    # A pixel's footprint at depth z: how far a fraction of a pixel moves a point there.
    slack = PIXEL_TOL * z / min(K[0, 0], K[1, 1]) + DEPTH_TOL_M
    outside = np.max(np.abs(local - centre) - half, axis=1) - slack
    worst = int(np.argmax(outside))
    if outside[worst] > 0:
        px = (outside[worst] + slack[worst] - DEPTH_TOL_M) * min(K[0, 0], K[1, 1]) / z[worst]
        raise BackendCheckError(
            f"{name}: pixel (col {cols[worst]}, row {rows[worst]}) of '{obj.uid}', back-projected with its depth "
            f"through K (OpenCV: the centre of pixel col i at u = i), lands {px:.2f} px outside the object's 3D box "
            "posed by T_world_cam and object_poses; K, depth, camera pose and object pose disagree"
        )


def _check_silhouette(
    frame: FrameBuffers, K: np.ndarray, T_cam_world: np.ndarray, iid: int, obj: Any, name: str
) -> None:
    """The centres (OpenCV: (u, v) = (col, row)) of the object's visible pixels lie within its projected 3D box."""
    T_cam_obj = T_cam_world @ np.asarray(frame.object_poses[iid], dtype=np.float64)
    centre = np.asarray(obj.bbox3d_center, dtype=np.float64)
    half = np.asarray(obj.bbox3d_size, dtype=np.float64) / 2.0
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    corners = (T_cam_obj[:3, :3] @ (centre + signs * half).T + T_cam_obj[:3, 3:4]).T
    if np.any(corners[:, 2] <= 1e-6):
        return  # the box reaches behind the camera: its projection is unbounded
    u = K[0, 0] * corners[:, 0] / corners[:, 2] + K[0, 2]
    v = K[1, 1] * corners[:, 1] / corners[:, 2] + K[1, 2]
    rows, cols = np.nonzero(frame.instance_ids == iid)
    beyond = max(
        u.min() - cols.min(), cols.max() - u.max(), v.min() - rows.min(), rows.max() - v.max()
    )  # how far the outermost pixel centre lies outside the projected box, in pixels
    if beyond > PIXEL_TOL:
        raise BackendCheckError(
            f"{name}: visible pixels of '{obj.uid}' reach {beyond:.2f} px beyond the projection through K (OpenCV: the "
            f"centre of pixel col i at u = i) of its 3D box posed by T_world_cam and object_poses; K, camera pose "
            "and object pose disagree"
        )


def _check_visibility(backend: Backend, frame: FrameBuffers, view: Mapping[str, Any], name: str) -> None:
    capable = bool(backend.capabilities.get("visibility", False))
    try:
        full = backend.render(dict(view), visibility=True)
    except SimgenError as exc:
        if capable:
            raise BackendCheckError(
                f"{name}: declares the visibility capability but render(visibility=True) fails"
            ) from exc
        return
    if not capable:
        _expect(
            full.unoccluded_px is None and full.unoccluded_masks is None,
            f"{name}: without the visibility capability, unoccluded_px and unoccluded_masks must stay None",
        )
        return
    _expect(_same_frame(frame, full), f"{name}: render(visibility=True) changed the frame itself")
    ids = {o.instance_id for o in full.objects}
    px, masks = full.unoccluded_px, full.unoccluded_masks
    _expect(px is not None and set(px) == ids, f"{name}: unoccluded_px must hold every object's id")
    _expect(masks is not None and set(masks) == ids, f"{name}: unoccluded_masks must hold every object's id")
    assert px is not None and masks is not None
    for iid in ids:
        mask = masks[iid]
        _expect(
            isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == frame.instance_ids.shape,
            f"{name}: unoccluded_masks[{iid}] must be a bool (H, W) mask",
        )
        seen = frame.instance_ids == iid
        _expect(int(mask.sum()) == int(px[iid]), f"{name}: unoccluded_px[{iid}] is not its mask's pixel count")
        # Rendered alone, an object covers its visible pixels (renderers may differ on a pixel at an edge).
        _expect(int((seen & ~mask).sum()) <= 1, f"{name}: object {iid} shows pixels its unoccluded mask lacks")


def _pinhole(K: Any, name: str) -> np.ndarray:
    M = np.asarray(K, dtype=np.float64)
    _expect(M.shape == (3, 3) and bool(np.all(np.isfinite(M))), f"{name}: K must be a finite (3, 3) matrix")
    _expect(
        np.allclose(M[2], [0.0, 0.0, 1.0]) and M[1, 0] == 0.0 and M[0, 1] == 0.0,
        f"{name}: K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {M.tolist()}",
    )
    _expect(M[0, 0] > 0 and M[1, 1] > 0, f"{name}: K's focal lengths must be positive, got {M[0, 0]}, {M[1, 1]}")
    return M


def _rigid(T: Any, what: str) -> np.ndarray:
    from simgen.labels.poses import check_rigid

    try:
        return check_rigid(np.asarray(T, dtype=np.float64), what)
    except SimgenError as exc:
        raise BackendCheckError(str(exc)) from None


def _same_frame(a: FrameBuffers, b: FrameBuffers) -> bool:
    return (
        np.array_equal(a.rgb, b.rgb)
        and np.array_equal(a.depth_m, b.depth_m)
        and np.array_equal(a.instance_ids, b.instance_ids)
        and np.array_equal(np.asarray(a.K), np.asarray(b.K))
        and np.array_equal(np.asarray(a.T_world_cam), np.asarray(b.T_world_cam))
        and [o.uid for o in a.objects] == [o.uid for o in b.objects]
        and all(np.array_equal(a.object_poses[i], b.object_poses.get(i)) for i in a.object_poses)
    )


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise BackendCheckError(message)


def _describe(a: Any) -> str:
    return f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
