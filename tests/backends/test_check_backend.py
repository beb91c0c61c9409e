"""simgen.testing.check_backend: PyBullet and the fake CARLA layer pass it, and it catches broken backends."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simgen.backends import make_backend
from simgen.backends.pybullet_backend import PyBulletBackend
from simgen.frame import FrameBuffers
from simgen.testing import pybullet_scenes as S
from simgen.testing.backends import BackendCheckError, check_backend

K = [[80.0, 0.0, 47.5], [0.0, 80.0, 35.5], [0.0, 0.0, 1.0]]  # OpenCV: cx = (W - 1) / 2 at 96x72
SCENE = S.scene(
    [
        S.obj("duck/0", path=S.DATA / "duck_vhacd.urdf", position=(0.0, 0.0, 0.7), orientation=S.quat(0.3, 0.1, 0.5)),
        S.obj("cube/0", path=S.DATA / "cube_small.urdf", position=(0.12, 0.05, 0.7), scale=2.0),
        S.obj("ball/0", shape={"shape": "sphere", "radius": 0.04}, position=(-0.1, -0.05, 0.7)),
        S.obj("mug/0", path=S.DATA / "objects/mug.urdf", position=(-0.05, 0.12, 0.7)),
    ],
    ground="plane",
    table=True,
)
VIEW = S.view(S.look_at([0.6, 0.4, 1.3], [0.0, 0.0, 0.65]), K, width=96, height=72)


def test_pybullet_tiny_passes() -> None:
    frame = check_backend(lambda: make_backend("pybullet", renderer="tiny"), SCENE, VIEW, min_visible_objects=4)
    assert {o.uid for o in frame.objects} == {"duck/0", "cube/0", "ball/0", "mug/0"}


@pytest.mark.slow
def test_pybullet_egl_passes() -> None:
    if PyBulletBackend.resolve_renderer("auto") != "egl":
        pytest.skip("no EGL here")  # the probe says so; TinyRenderer is checked above
    check_backend(lambda: make_backend("pybullet", renderer="egl"), SCENE, VIEW, min_visible_objects=4)


class _Broken:
    """A PyBullet backend with one thing wrong."""

    name = "broken"
    capabilities = PyBulletBackend.capabilities

    def __init__(self, fault: str) -> None:
        self.inner = PyBulletBackend(renderer="tiny")
        self.renderer = self.inner.renderer
        self.fault = fault

    def build(self, scene: dict[str, Any]) -> None:
        self.inner.build(scene)

    def settle(self) -> dict[str, Any]:
        return self.inner.settle()

    def render(self, view: dict[str, Any], *, visibility: bool = False) -> FrameBuffers:
        if self.fault == "half-pixel K":  # a renderer reading K in the pixel-edge convention (cx = W / 2)
            camera = {
                **view["camera"],
                "K": (np.asarray(view["camera"]["K"]) - [[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]]).tolist(),
            }
            frame = self.inner.render({**view, "camera": camera}, visibility=visibility)
            frame.K = np.asarray(view["camera"]["K"], dtype=np.float64)  # ... and reporting the K it was given
            return frame
        frame = self.inner.render(view, visibility=visibility)
        if self.fault == "stranger":  # a pixel of an id no object has
            frame.instance_ids = frame.instance_ids.copy()
            frame.instance_ids[0, 0] = 999
            frame.depth_m = frame.depth_m.copy()
            frame.depth_m[0, 0] = 1.0
        elif self.fault == "noise":  # randomness that is not the scene's
            frame.rgb = (frame.rgb ^ np.uint8(np.random.default_rng().integers(1, 255))).astype(np.uint8)
        elif self.fault == "float64 depth":
            frame.depth_m = frame.depth_m.astype(np.float64)
        elif self.fault == "camera pose":  # the pose of another camera, 2 cm off
            frame.T_world_cam = frame.T_world_cam.copy()
            frame.T_world_cam[0, 3] += 0.02
        return frame

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("half-pixel K", "outside|beyond the projection"),
        ("stranger", "belong to no object"),
        ("noise", "changed the frame itself|two fresh backends render"),
        ("float64 depth", "float32"),
        ("camera pose", "T_world_cam differs from the view"),
    ],
)
def test_broken_backends_fail(fault: str, message: str) -> None:
    with pytest.raises(BackendCheckError, match=message):
        check_backend(lambda: _Broken(fault), SCENE, VIEW)


def test_a_view_with_nothing_visible_checks_nothing_and_says_so() -> None:
    away = S.view(S.look_at([0.0, 0.0, 1.0], [0.0, 5.0, 1.0]), K, width=96, height=72)  # looking away
    with pytest.raises(BackendCheckError, match=r"0 object\(s\) visible"):
        check_backend(lambda: make_backend("pybullet", renderer="tiny"), SCENE, away)


def test_fake_carla_passes() -> None:
    pytest.importorskip("carla", reason="the carla client (pip install 'simgen[carla]') is not installed")
    from simgen.backends.carla import CarlaBackend
    from simgen.backends.carla_randomizers import CarlaCameraMount, CarlaSceneSampler
    from simgen.backends.carla_spec import CarlaSection
    from simgen.randomizers.base import SampleContext
    from simgen.sampling import rng_for
    from simgen.testing.fake_carla import FakeServer, fake_carla

    xodr = (Path(__file__).parent / "data" / "simgen_crossing.xodr").read_text()
    section = CarlaSection.model_validate(
        {
            "warmup_ticks": 2,
            "ego": {"autopilot": False, "camera": {"width": 64, "height": 48, "ticks_per_view": 1}},
            "actors": [
                {
                    "name": "cars",
                    "kind": "vehicle",
                    "count": 12,
                    "blueprints": ["vehicle.tesla.model3"],
                    "autopilot": False,
                },
                {"name": "people", "kind": "walker", "count": 6},
            ],
        }
    )
    ctx = SampleContext(spec=types.SimpleNamespace(carla=section), index=0)  # type: ignore[arg-type]
    scene = CarlaSceneSampler().sample(rng_for(5, "scene"), ctx)  # seed 5: several cars in view
    view = CarlaCameraMount().sample(rng_for(5, "view"), ctx)

    def factory() -> CarlaBackend:
        return CarlaBackend(config=section, carla_module=fake_carla(FakeServer(xodr)))

    # The fake paints each actor with the depth of its nearest face, so only the silhouettes are exact.
    frame = check_backend(factory, scene, view, min_visible_objects=3, exact_depth=False)
    assert frame.unoccluded_px is None  # CARLA cannot render an actor alone
    with pytest.raises(BackendCheckError, match="back-projected with its depth"):
        check_backend(factory, scene, view, min_visible_objects=3)
