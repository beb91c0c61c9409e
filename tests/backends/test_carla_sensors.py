"""Frame-id matching of sensor queues: stale images are dropped, early ones kept, a missing one times out."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from simgen.backends.carla_sensors import SensorQueue
from simgen.errors import BackendUnavailable


def _img(frame: int, tag: str = "") -> SimpleNamespace:
    return SimpleNamespace(frame=frame, tag=tag)


def test_the_image_of_the_asked_frame_wins_over_stale_ones_queued_first() -> None:
    q = SensorQueue("depth")
    for frame in (7, 8, 8, 9):  # leftovers of earlier ticks, a duplicate, then the one wanted
        q.put(_img(frame, f"f{frame}"))
    got = q.get(9, timeout_s=1.0)
    assert got.frame == 9
    assert q.dropped == 3
    # A naive reader taking the first image would have had frame 7: that is the bug this guards against.


def test_an_image_that_arrives_early_is_kept_for_its_tick() -> None:
    q = SensorQueue("rgb")
    q.put(_img(12))
    q.put(_img(11))  # out of order
    assert q.get(11, timeout_s=1.0).frame == 11
    assert q.get(12, timeout_s=1.0).frame == 12
    assert q.dropped == 0


def test_a_late_image_from_another_thread_is_waited_for() -> None:
    q = SensorQueue("instance")
    q.put(_img(4))  # stale
    timer = threading.Timer(0.1, q.put, (_img(5),))
    timer.start()
    try:
        assert q.get(5, timeout_s=2.0).frame == 5
    finally:
        timer.join()
    assert q.dropped == 1


def test_a_missing_frame_fails_within_the_timeout_naming_sensor_and_frame() -> None:
    q = SensorQueue("instance")
    q.put(_img(20))
    t0 = time.monotonic()
    with pytest.raises(
        BackendUnavailable, match=r"sensor 'instance': no image of frame 21 within 0.2 s \(the latest was frame 20\)"
    ):
        q.get(21, timeout_s=0.2)
    assert time.monotonic() - t0 < 1.0
