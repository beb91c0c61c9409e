"""Core view randomizers: the camera on a look-at shell, and the light."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from simgen.randomizers.base import Randomizer, SampleContext, Stage
from simgen.randomizers.geometry import as_list, intrinsics_from_fov, look_at, spherical
from simgen.sampling import sample

DEFAULT_FOV_DEG = 60.0


class LookAtShell(Randomizer):
    """A camera on a spherical shell around a jittered target, with roll and field of view.

    Reads ``camera``: distance, azimuth and elevation (degrees), target and its Gaussian jitter,
    roll, and either ``fov_deg`` or ``intrinsics``.
    """

    name: ClassVar[str] = "camera/look-at-shell-v1"
    stage: ClassVar[Stage] = "view"
    reads: ClassVar[tuple[str, ...]] = ("camera",)

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"camera": {width, height, K, near, far, T_world_cam, sampled}}``."""
        cam = ctx.spec.camera
        la = cam.look_at
        i = ctx.index
        if cam.intrinsics is not None:
            fx, fy, cx, cy = (float(sample(v, rng, i)) for v in (cam.intrinsics.fx, cam.intrinsics.fy,
                                                                   cam.intrinsics.cx, cam.intrinsics.cy))
            K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
            fov = math.degrees(2 * math.atan(cam.height / (2 * fy)))
        else:
            # The spec model keeps every fov_deg it can draw inside (0, 180) degrees.
            fov = DEFAULT_FOV_DEG if cam.fov_deg is None else float(sample(cam.fov_deg, rng, i))
            K = intrinsics_from_fov(cam.width, cam.height, fov)
        distance = float(sample(la.distance, rng, i))
        azimuth = float(sample(la.azimuth_deg, rng, i))
        elevation = float(sample(la.elevation_deg, rng, i))
        jitter = abs(float(sample(la.target_jitter, rng, i)))
        roll = float(sample(la.roll_deg, rng, i))
        target = np.array(sample(la.target, rng, i), dtype=float) + rng.normal(0.0, 1.0, size=3) * jitter
        eye = target + distance * spherical(azimuth, elevation)
        pose = look_at(eye, target, math.radians(roll))
        sampled: dict[str, Any] = {}
        if cam.stereo_baseline is not None:
            baseline = float(sample(cam.stereo_baseline, rng, i))
            side = ctx.stereo_side or 0
            pose[:3, 3] += side * baseline * pose[:3, 0]  # the right camera sits along the left one's x axis
            sampled = {"stereo_baseline": baseline, "stereo_side": "right" if side else "left"}
        return {
            "camera": {
                "width": cam.width,
                "height": cam.height,
                "K": as_list(K),
                "near": cam.near,
                "far": cam.far,
                "T_world_cam": as_list(pose),
                "sampled": {
                    "distance": distance,
                    "azimuth_deg": azimuth,
                    "elevation_deg": elevation,
                    "roll_deg": roll,
                    "fov_deg": fov,
                    "target": as_list(target),
                    **sampled,
                },
            }
        }


class DirectionalLight(Randomizer):
    """The light's direction (azimuth, elevation), colour times intensity, and shading coefficients."""

    name: ClassVar[str] = "light/directional-v1"
    stage: ClassVar[Stage] = "view"
    reads: ClassVar[tuple[str, ...]] = ("light",)

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> dict[str, Any]:
        """Return ``{"light": {direction, color, distance, ambient, diffuse, specular, shadows}}``."""
        light = ctx.spec.light
        i = ctx.index
        azimuth = float(sample(light.azimuth_deg, rng, i))
        elevation = float(sample(light.elevation_deg, rng, i))
        intensity = max(float(sample(light.intensity, rng, i)), 0.0)
        color = [min(max(float(c) * intensity, 0.0), 10.0) for c in sample(light.color, rng, i)]
        return {
            "light": {
                "direction": as_list(spherical(azimuth, elevation)),
                "color": color,
                "distance": light.distance,
                "ambient": float(sample(light.ambient, rng, i)),
                "diffuse": float(sample(light.diffuse, rng, i)),
                "specular": float(sample(light.specular, rng, i)),
                "shadows": light.shadows,
                "sampled": {"azimuth_deg": azimuth, "elevation_deg": elevation, "intensity": intensity},
            }
        }
