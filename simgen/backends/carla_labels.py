"""Decoding of CARLA camera images into simgen's buffers: pure numpy functions of the raw bytes.

Every CARLA camera sends ``raw_data`` as BGRA bytes, row by row (``height * width * 4`` bytes):

* **RGB** (``sensor.camera.rgb``): the colour, alpha 255.
* **Depth** (``sensor.camera.depth``): the depth along the optical axis, linear, 24 bits over 1000 m:
  ``(R + 256 G + 65536 B) / (256^3 - 1) * 1000`` metres. Pixels that hit nothing (the sky) are all 255,
  i.e. exactly 1000 m; simgen's ``depth_m`` is 0 there.
* **Instance segmentation** (``sensor.camera.instance_segmentation``): the semantic tag in R
  (``carla.CityObjectLabel``) and a 16-bit object id in G (low byte) and B (high byte): ``G + 256 B``.
  Since 0.9.16 the id is the *actor id* (its low 16 bits) for every actor (vehicles, walkers, traffic
  lights and signs), and Unreal's own object id for everything else (buildings, roads, parked cars that
  are part of the map). See ``docs/carla.md`` for the quirks (large maps, tag spreading).

:func:`remap_instances` turns CARLA ids into simgen's instance ids (1..N, 0 = background) through the
actors the backend tracks; any other id (map geometry) becomes background.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Largest 24-bit depth code; the sky.
DEPTH_CODE_MAX = 256**3 - 1
#: Depth of the largest code, metres.
DEPTH_FAR_M = 1000.0


def bgra_array(raw_data: bytes | bytearray | memoryview, width: int, height: int) -> np.ndarray:
    """View CARLA's ``raw_data`` as a (height, width, 4) uint8 BGRA array (read-only, no copy).

    Raises:
        ValueError: The byte count is not ``height * width * 4``.
    """
    buf = np.frombuffer(raw_data, dtype=np.uint8)
    if buf.size != height * width * 4:
        raise ValueError(f"camera image: expected {height}x{width}x4 = {height * width * 4} bytes, got {buf.size}")
    return buf.reshape(height, width, 4)


def decode_rgb(bgra: np.ndarray) -> np.ndarray:
    """The (H, W, 3) uint8 RGB image of a BGRA array (a new, contiguous array)."""
    return np.ascontiguousarray(bgra[..., 2::-1])


def depth_codes(bgra: np.ndarray) -> np.ndarray:
    """The 24-bit depth codes ``R + 256 G + 65536 B`` of a depth camera's BGRA array, as uint32."""
    b = bgra.astype(np.uint32)
    return b[..., 2] | (b[..., 1] << 8) | (b[..., 0] << 16)


def decode_depth(bgra: np.ndarray) -> np.ndarray:
    """Depth in metres, float32 (H, W), from a depth camera's BGRA array; 0 where nothing was hit (the sky).

    Computed in float64 and rounded once to float32, so a code decodes to the float32 nearest to its exact value.
    """
    codes = depth_codes(bgra)
    metres = codes.astype(np.float64) * (DEPTH_FAR_M / DEPTH_CODE_MAX)
    metres[codes == DEPTH_CODE_MAX] = 0.0
    return metres.astype(np.float32)


def decode_instance(bgra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Semantic tags and object ids of an instance camera's BGRA array.

    Returns:
        ``(tags, ids)``: (H, W) uint8 (R) and (H, W) uint16 (``G + 256 B``).
    """
    tags = np.ascontiguousarray(bgra[..., 2])
    ids = bgra[..., 1].astype(np.uint16) | (bgra[..., 0].astype(np.uint16) << 8)
    return tags, ids


def id16(actor_id: int) -> int:
    """The id an actor has in the instance image: the low 16 bits of its actor id."""
    return int(actor_id) & 0xFFFF


def remap_instances(
    tags: np.ndarray,
    ids: np.ndarray,
    instance_of: Mapping[int, int],
    allowed_tags: Mapping[int, frozenset[int]] | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Simgen's instance-id image from CARLA's ids: ``instance_of[id]`` where known, 0 elsewhere.

    Args:
        tags: (H, W) uint8 semantic tags.
        ids: (H, W) uint16 CARLA ids (:func:`decode_instance`).
        instance_of: CARLA 16-bit id -> simgen instance id (1..65535).
        allowed_tags: simgen instance id -> the semantic tags its pixels may carry. A pixel whose tag is not
            among them is background (a map object whose Unreal id happens to equal an actor's). None: no check.

    Returns:
        ``(instance_ids, counts)``: the uint16 (H, W) image, and pixel counts: ``"tag_rejected"`` (known id,
        wrong tag) and ``"unmatched"`` (a non-zero id of no tracked actor, on a tag of a labelable class).
    """
    from simgen.backends.carla_spec import OBJECT_TAGS

    lut = np.zeros(65536, dtype=np.uint16)
    for carla_id, instance in instance_of.items():
        lut[int(carla_id) & 0xFFFF] = instance
    out = lut[ids]
    counts = {"tag_rejected": 0, "unmatched": 0}
    if allowed_tags is not None and instance_of:
        n = int(max(instance_of.values())) + 1
        ok = np.zeros((n, 256), dtype=bool)
        ok[0, :] = True
        for instance, allowed in allowed_tags.items():
            ok[instance, list(allowed)] = True
        good = ok[out, tags]
        counts["tag_rejected"] = int(np.count_nonzero(~good))
        out = np.where(good, out, np.uint16(0))
    object_tag = np.zeros(256, dtype=bool)
    object_tag[list(OBJECT_TAGS)] = True
    counts["unmatched"] = int(np.count_nonzero((lut[ids] == 0) & (ids != 0) & object_tag[tags]))
    return out.astype(np.uint16, copy=False), counts
