"""Pure helpers of the visibility renders: which instances can share one "rendered alone" pass.

An instance's unoccluded silhouette is rendered with every other body hidden. Instances whose projected 3D
boxes are disjoint on screen cannot cover each other, so they share one render; :func:`group_disjoint` packs
them greedily, and :func:`screen_rect` gives each instance's conservative pixel rectangle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pybullet as p

from simgen.backends.pybullet_bodies import create_visual_body
from simgen.backends.pybullet_camera import box_corners, matrix_quaternion, project_points
from simgen.backends.pybullet_links import proxy_visual
from simgen.backends.pybullet_records import IDENTITY_QUAT as _IDENTITY_QUAT
from simgen.backends.pybullet_records import Body as _Body
from simgen.backends.pybullet_records import Instance as _Instance

_BODY_MASK = (1 << 24) - 1  # ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX: value = body + ((link + 1) << 24)

#: Extra edge length (metres) added to 3D boxes before projecting them, for renderers' tessellation.
BOX_MARGIN = 0.004
Rect = tuple[int, int, int, int]


def screen_rect(
    center: Sequence[float],
    size: Sequence[float],
    T_world_obj: np.ndarray,
    K: np.ndarray,
    T_world_cam: np.ndarray,
    near: float,
    far: float,
    width: int,
    height: int,
) -> Rect | tuple[()] | None:
    """A pixel rectangle ``(x0, y0, x1, y1)`` that surely holds an instance's pixels.

    Args:
        center: Centre of its 3D box in its own frame.
        size: Edge lengths of its 3D box.
        T_world_obj: Its pose.
        K: Camera intrinsics.
        T_world_cam: Camera pose.
        near: Near clipping distance.
        far: Far clipping distance.
        width: Image width.
        height: Image height.

    Returns:
        The rectangle; ``()`` when the box surely draws no pixel; None when unknown (the box crosses the near
        plane).
    """
    grown = np.asarray(size, dtype=np.float64) + BOX_MARGIN
    corners = box_corners(center, grown) @ T_world_obj[:3, :3].T + T_world_obj[:3, 3]
    uv, z = project_points(K, T_world_cam, corners)
    if np.all(z >= far) or np.all(z <= near):
        return ()
    if np.any(z <= near):
        return None
    x0, y0 = max(math.floor(uv[:, 0].min()) - 1, 0), max(math.floor(uv[:, 1].min()) - 1, 0)
    x1, y1 = min(math.ceil(uv[:, 0].max()) + 1, width), min(math.ceil(uv[:, 1].max()) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return ()
    return (x0, y0, x1, y1)


def group_disjoint(rects: dict[int, Rect | None]) -> list[list[int]]:
    """Greedily group ids whose rectangles are pairwise disjoint; a None rectangle gets a group of its own."""
    groups: list[list[int]] = []
    boxes: list[list[Rect]] = []
    for instance_id, rect in rects.items():
        if rect is None:
            groups.append([instance_id])
            boxes.append([(-(1 << 30), -(1 << 30), 1 << 30, 1 << 30)])
            continue
        for members, taken in zip(groups, boxes, strict=True):
            if all(rect[2] <= t[0] or t[2] <= rect[0] or rect[3] <= t[1] or t[3] <= rect[1] for t in taken):
                members.append(instance_id)
                taken.append(rect)
                break
        else:
            groups.append([instance_id])
            boxes.append([rect])
    return groups


class VisibilityMixin:
    """The "rendered alone" passes of ``PyBulletBackend.render(view, visibility=True)``.

    Mixed into :class:`~simgen.backends.pybullet_backend.PyBulletBackend`, whose state it reads.
    """

    renderer: str
    _cid: int
    _pb_renderer: int
    _bodies: list[_Body]
    _proxy_visuals: dict[tuple[int, int], int]

    def _camera_image(self, width: int, height: int, view_gl: list[float], proj_gl: list[float], **kwargs: Any) -> Any:
        """One ``getCameraImage`` with this client's renderer and the object-and-link segmentation labels read."""
        return p.getCameraImage(
            width,
            height,
            viewMatrix=view_gl,
            projectionMatrix=proj_gl,
            renderer=self._pb_renderer,
            flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX,
            physicsClientId=self._cid,
            **kwargs,
        )

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
                _, _, _, _, seg = self._camera_image(width, height, view_gl, proj_gl, shadow=0)
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
