"""The camera rig on the ego and its per-sensor queues, matched to the world tick by ``frame`` id.

CARLA delivers sensor data on its own thread, after (or, sometimes, before) ``world.tick()`` returns; an
image left in a queue from an earlier tick, or a late one, is the best-known cause of CARLA boxes that do not
line up with the pixels. So each sensor gets its own queue, and :meth:`SensorQueue.get` returns the image
whose ``frame`` equals the tick's frame: older images are dropped (and counted), newer ones are kept for a
later tick, and a missing one fails after a timeout with the sensor and the frame named.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from simgen.backends.carla_spec import CameraState
from simgen.errors import BackendUnavailable

log = logging.getLogger(__name__)

#: The three cameras of a rig: simgen's name -> CARLA blueprint.
SENSORS: dict[str, str] = {
    "rgb": "sensor.camera.rgb",
    "depth": "sensor.camera.depth",
    "instance": "sensor.camera.instance_segmentation",
}

#: Camera attributes set when the blueprint has them: a pinhole without motion blur or lens distortion,
#: so that every pixel lines up with the projected boxes (motion blur smears moving actors over their box).
PINHOLE_ATTRIBUTES: dict[str, str] = {
    "sensor_tick": "0.0",
    "motion_blur_intensity": "0.0",
    "lens_k": "0.0",
    "lens_kcube": "0.0",
    "lens_circle_multiplier": "0.0",
}


class SensorQueue:
    """The images one sensor delivered, waiting to be matched to a tick.

    ``put`` is the sensor's ``listen`` callback (it runs on CARLA's thread); ``get`` runs on ours.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._q: queue.Queue[Any] = queue.Queue()
        self._ahead: dict[int, Any] = {}
        #: Images dropped because they belonged to an earlier frame than the one asked for.
        self.dropped = 0
        self.last_frame: int | None = None

    def put(self, data: Any) -> None:
        """Queue one image (``data.frame`` is its frame id)."""
        self._q.put(data)

    def get(self, frame: int, timeout_s: float) -> Any:
        """The image of ``frame``, waiting at most ``timeout_s`` seconds for it.

        Raises:
            BackendUnavailable: No image of ``frame`` arrived in time (naming the sensor, the frame and the
                latest frame it did deliver).
        """
        if frame in self._ahead:
            return self._take_ahead(frame)
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                data = self._q.get(timeout=max(remaining, 0.0)) if remaining > 0 else self._q.get_nowait()
            except queue.Empty:
                seen = "none yet" if self.last_frame is None else f"the latest was frame {self.last_frame}"
                raise BackendUnavailable(
                    f"carla sensor '{self.name}': no image of frame {frame} within {timeout_s:g} s ({seen}); "
                    "the server may be overloaded: raise carla.ego.camera.sensor_timeout_s"
                ) from None
            got = int(data.frame)
            self.last_frame = got if self.last_frame is None else max(self.last_frame, got)
            if got == frame:
                self._forget_before(frame)
                return data
            if got < frame:
                self.dropped += 1
                log.debug("sensor %s: dropped a stale image of frame %d (waiting for %d)", self.name, got, frame)
            else:
                self._ahead[got] = data

    def _take_ahead(self, frame: int) -> Any:
        data = self._ahead.pop(frame)
        self._forget_before(frame)
        return data

    def _forget_before(self, frame: int) -> None:
        for old in [f for f in self._ahead if f < frame]:
            del self._ahead[old]
            self.dropped += 1

    def clear(self) -> None:
        """Drop everything queued (a new rig or a new scene)."""
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._ahead.clear()


@dataclass
class CameraRig:
    """Three cameras at one mount on the ego, each with its queue."""

    camera: CameraState
    sensors: dict[str, Any] = field(default_factory=dict)
    queues: dict[str, SensorQueue] = field(default_factory=dict)

    def same(self, camera: CameraState) -> bool:
        """Whether this rig already renders ``camera`` (same size, field of view and mount)."""
        return self.camera == camera


def spawn_rig(carla_module: Any, world: Any, ego: Any, camera: CameraState, track: Any) -> CameraRig:
    """Spawn the RGB, depth and instance cameras at ``camera``'s mount, rigidly attached to ``ego``.

    Args:
        carla_module: ``carla`` or a fake.
        world: The ``carla.World``.
        ego: The ego actor.
        camera: Size, horizontal field of view and mount.
        track: Called with each spawned sensor at once, so it is destroyed even if a later one fails.

    Returns:
        The rig, every sensor listening into its queue.
    """
    library = world.get_blueprint_library()
    mount = carla_module.Transform(
        carla_module.Location(x=camera.location[0], y=camera.location[1], z=camera.location[2]),
        carla_module.Rotation(pitch=camera.rotation[0], yaw=camera.rotation[1], roll=camera.rotation[2]),
    )
    rig = CameraRig(camera)
    for name, blueprint in SENSORS.items():
        bp = library.find(blueprint)
        values = {"image_size_x": str(camera.width), "image_size_y": str(camera.height), "fov": repr(camera.fov_deg)}
        values.update(PINHOLE_ATTRIBUTES)
        for key, value in values.items():
            if bp.has_attribute(key):
                bp.set_attribute(key, value)
        sensor = world.spawn_actor(bp, mount, attach_to=ego, attachment_type=carla_module.AttachmentType.Rigid)
        track(sensor)
        q = SensorQueue(name)
        sensor.listen(q.put)
        rig.sensors[name] = sensor
        rig.queues[name] = q
    return rig
