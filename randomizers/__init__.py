"""Domain randomizers, imported as ``simgen.randomizers``.

Every randomizer is registered under a versioned name and resolved lazily. Third parties add their
own through the entry-point group ``simgen.randomizers``.
"""

from __future__ import annotations

from simgen.randomizers.base import Randomizer, SampleContext, SensorRandomizer
from simgen.registry import Registry

REGISTRY: Registry[Randomizer] = Registry("randomizer", group="simgen.randomizers")

#: Randomizers that every scene runs, in this order, from its spec sections.
CORE_SCENE = ("scene/fixtures-v1", "objects/count-select-v1", "placement/drop-v1")
CORE_VIEW = ("camera/look-at-shell-v1", "light/directional-v1")
#: The core randomizers of a CARLA scene: the whole ``scene["carla"]`` state and the ego camera of each view,
#: from the spec's ``carla:`` section (PyBullet's cores read sections a CARLA spec does not have).
CARLA_CORE_SCENE = ("carla/scene-v1",)
CARLA_CORE_VIEW = ("carla/camera-mount-v1",)
#: Backend -> (scene cores, view cores); a backend not listed runs PyBullet's (the sections every spec has).
CORE_BY_BACKEND: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pybullet": (CORE_SCENE, CORE_VIEW),
    "carla": (CARLA_CORE_SCENE, CARLA_CORE_VIEW),
}


def core_randomizers(backend: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The scene and view randomizers every scene of ``backend`` runs first, in this order."""
    return CORE_BY_BACKEND.get(backend, (CORE_SCENE, CORE_VIEW))


def all_core_randomizers() -> frozenset[str]:
    """Every core randomizer of every backend: none may be listed under a spec's ``randomizers``."""
    return frozenset(name for scene, view in CORE_BY_BACKEND.values() for name in (*scene, *view))


for _name, _target in {
    "scene/fixtures-v1": "simgen.randomizers.objects:Fixtures",
    "objects/count-select-v1": "simgen.randomizers.objects:CountSelect",
    "placement/drop-v1": "simgen.randomizers.objects:DropPlacement",
    "appearance/color-v1": "simgen.randomizers.appearance:ObjectColor",
    "camera/look-at-shell-v1": "simgen.randomizers.view:LookAtShell",
    "light/directional-v1": "simgen.randomizers.view:DirectionalLight",
    "appearance/procedural-texture-v1": "simgen.randomizers.textures:ProceduralTexture",
    "appearance/ground-texture-v1": "simgen.randomizers.textures:GroundTexture",
    "sensor/gaussian-noise-v1": "simgen.randomizers.sensor:GaussianNoise",
    "sensor/shot-noise-v1": "simgen.randomizers.sensor:ShotNoise",
    "sensor/motion-blur-v1": "simgen.randomizers.sensor:MotionBlur",
    "sensor/defocus-blur-v1": "simgen.randomizers.sensor:DefocusBlur",
    "sensor/jpeg-v1": "simgen.randomizers.sensor:Jpeg",
    "sensor/exposure-v1": "simgen.randomizers.sensor:Exposure",
    "sensor/gamma-v1": "simgen.randomizers.sensor:Gamma",
    "sensor/white-balance-v1": "simgen.randomizers.sensor:WhiteBalance",
    "sensor/contrast-v1": "simgen.randomizers.sensor:Contrast",
    "sensor/vignette-v1": "simgen.randomizers.sensor:Vignette",
    "sensor/chromatic-aberration-v1": "simgen.randomizers.sensor:ChromaticAberration",
    "sensor/dead-pixels-v1": "simgen.randomizers.sensor:DeadPixels",
    "physics/dynamics-v1": "simgen.randomizers.physics:Dynamics",
    "robot/joints-v1": "simgen.randomizers.robots:JointAngles",
    "occluders/flying-v1": "simgen.randomizers.occluders:FlyingOccluders",
    "appearance/specular-v1": "simgen.randomizers.materials:Specular",
    "appearance/image-texture-v1": "simgen.randomizers.materials:ImageTexture",
    "background/photo-v1": "simgen.randomizers.background:BackgroundPhoto",
    # CARLA (simgen.backends.carla_randomizers.RANDOMIZERS; the module is imported only when one is used).
    "carla/scene-v1": "simgen.backends.carla_randomizers:CarlaSceneSampler",
    "carla/camera-mount-v1": "simgen.backends.carla_randomizers:CarlaCameraMount",
    "carla/weather-v1": "simgen.backends.carla_randomizers:CarlaWeather",
    "carla/time-of-day-v1": "simgen.backends.carla_randomizers:CarlaTimeOfDay",
}.items():
    REGISTRY.register(_name, _target)

__all__ = [
    "CARLA_CORE_SCENE",
    "CARLA_CORE_VIEW",
    "CORE_BY_BACKEND",
    "CORE_SCENE",
    "CORE_VIEW",
    "REGISTRY",
    "Randomizer",
    "SampleContext",
    "SensorRandomizer",
    "all_core_randomizers",
    "core_randomizers",
]
