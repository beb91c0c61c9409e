"""Sampling a scene and its views into plain-data states, by running the randomizers in order.

This is the only place randomizers are called. Each one gets its own rng, derived from
``(seed, stage, index, randomizer position, name)``, so adding a randomizer never shifts another's values.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from simgen.assets import resolve_asset
from simgen.frame import FrameBuffers
from simgen.randomizers import REGISTRY, Randomizer, SampleContext, SensorRandomizer, core_randomizers
from simgen.sampling import rng_for
from simgen.spec.loader import LoadedSpec, randomizer_params


def merge_patch(state: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``patch`` into a copy of ``state``: mappings merge key by key, anything else replaces.

    A mapping patched onto a list of entries with uids (the state's ``fixtures``) merges into those entries by
    uid, ``{"fixtures": {"table": {"color": [...]}}}``, so a randomizer can change one fixture without
    restating the list.

    Raises:
        ValueError: Such a mapping names a uid the list does not hold.
    """
    out = dict(state)
    for key, value in patch.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = merge_patch(current, value)
        elif isinstance(value, dict) and _uid_list(current):
            out[key] = _merge_by_uid(key, current, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _uid_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(e, dict) and "uid" in e for e in value)


def _merge_by_uid(key: str, entries: list[dict[str, Any]], patch: dict[str, Any]) -> list[dict[str, Any]]:
    uids = [e["uid"] for e in entries]
    unknown = [uid for uid in patch if uid not in uids]
    if unknown:
        raise ValueError(f"a patch of {key} names {unknown[0]!r}, which is not among them: {uids}")
    return [merge_patch(e, patch[e["uid"]]) if e["uid"] in patch else e for e in entries]


@dataclass
class RandomizerSet:
    """The instantiated randomizers of a spec, by stage, in run order."""

    scene: list[Randomizer]
    view: list[Randomizer]
    sensor: list[SensorRandomizer]

    @classmethod
    def from_spec(cls, loaded: LoadedSpec) -> RandomizerSet:
        """The backend's core randomizers first (they read their spec sections), then the spec's list in order."""
        core_scene, core_view = core_randomizers(loaded.spec.backend)
        scene: list[Randomizer] = [REGISTRY.get(n)() for n in core_scene]
        view: list[Randomizer] = [REGISTRY.get(n)() for n in core_view]
        sensor: list[SensorRandomizer] = []
        for i, entry in enumerate(loaded.spec.randomizers):
            rcls = REGISTRY.get(entry.type)
            params = randomizer_params(entry, rcls, f"randomizers[{i}]", str(loaded.source) if loaded.source else None)
            r = rcls(params, entry.tags)
            {"scene": scene, "view": view, "sensor": sensor}[r.stage].append(r)  # type: ignore[arg-type]
        return cls(scene, view, sensor)


def base_scene_state(loaded: LoadedSpec) -> dict[str, Any]:
    """The scene state before any randomizer: ground and physics settings."""
    spec = loaded.spec
    ground_color = None if spec.ground.color is None else [float(c) for c in spec.ground.color]  # type: ignore[arg-type]
    return {
        "ground": {"kind": spec.ground.kind, "color": ground_color},
        "fixtures": [],
        "objects": {},
        "physics": spec.physics.model_dump(),
    }


def sample_scene(
    loaded: LoadedSpec, randomizers: RandomizerSet, seed: int, scene_index: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the scene randomizers for one scene.

    Returns:
        ``(state, patches)``: the merged scene state, and each randomizer's patch by name (for the manifest).
    """
    state = base_scene_state(loaded)
    patches: dict[str, Any] = {}
    for pos, r in enumerate(randomizers.scene):
        rng = rng_for(seed, "scene", scene_index, pos, r.name)
        ctx = SampleContext(loaded.spec, scene_index, state, loaded.base_dir, loaded.roots)
        patch = r.sample(rng, ctx)
        patches[_key(r, pos)] = patch
        state = merge_patch(state, patch)
    return state, patches


def replay_scene(loaded: LoadedSpec, patches: dict[str, Any]) -> dict[str, Any]:
    """Rebuild a scene state from recorded patches, without sampling."""
    state = base_scene_state(loaded)
    for patch in patches.values():
        state = merge_patch(state, patch)
    return state


def sample_view(
    loaded: LoadedSpec, randomizers: RandomizerSet, seed: int, frame_index: int, scene_state: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the view randomizers (camera, light, ...) for one frame. Returns ``(view, patches)``.

    With a stereo camera, frames 2k and 2k+1 are the left and right views of pair k: they share the
    pair's rng and index, so every draw is the same and only the camera's side differs.
    """
    view: dict[str, Any] = {}
    patches: dict[str, Any] = {}
    stereo = loaded.spec.camera.stereo_baseline is not None
    key = frame_index // 2 if stereo else frame_index
    side = frame_index % 2 if stereo else None
    for pos, r in enumerate(randomizers.view):
        rng = rng_for(seed, "stereo-view" if stereo else "view", key, pos, r.name)
        ctx = SampleContext(loaded.spec, key, scene_state, loaded.base_dir, loaded.roots, stereo_side=side, view=view)
        patch = r.sample(rng, ctx)
        patches[_key(r, pos)] = patch
        view = merge_patch(view, patch)
    return view, patches


def sample_sensor(
    loaded: LoadedSpec, randomizers: RandomizerSet, seed: int, frame_index: int, scene_state: dict[str, Any]
) -> dict[str, Any]:
    """Draw every sensor effect's parameters for one frame (applied later by :func:`apply_sensor`)."""
    patches: dict[str, Any] = {}
    for pos, r in enumerate(randomizers.sensor):
        rng = rng_for(seed, "sensor", frame_index, pos, r.name)
        ctx = SampleContext(loaded.spec, frame_index, scene_state, loaded.base_dir, loaded.roots)
        patches[_key(r, pos)] = r.sample(rng, ctx)
    return patches


def apply_sensor(
    buffers: FrameBuffers, randomizers: RandomizerSet, patches: dict[str, Any], seed: int, frame_index: int
) -> np.ndarray:
    """Apply the sampled sensor effects to the frame's RGB, in order, and return the new RGB.

    Effects may read the depth and instance mask (a background photo goes where nothing was hit) but
    never change them: labels are computed from the untouched buffers.
    """
    rgb = buffers.rgb
    for pos, r in enumerate(randomizers.sensor):
        rng = rng_for(seed, "sensor-apply", frame_index, pos, r.name)
        patch = patches[_key(r, pos)]
        rgb = r.apply_with(rgb, patch, rng, buffers) if r.needs_buffers else r.apply(rgb, patch, rng)
    return rgb


def _key(r: Randomizer, pos: int) -> str:
    return f"{pos}:{r.name}"


def backend_scene(loaded: LoadedSpec, state: dict[str, Any]) -> dict[str, Any]:
    """The scene state with every file asset resolved to an absolute path, as the backend needs it."""
    out = copy.deepcopy(state)
    for entry in [*out["fixtures"], *out["objects"].values()]:
        ref = entry.get("asset")
        entry["path"] = str(resolve_asset(ref, base_dir=loaded.base_dir, roots=loaded.roots)) if ref else None
    return out
