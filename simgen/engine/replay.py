"""Regenerate one frame from ``dataset.json`` and ``manifest.jsonl`` alone, without sampling anything."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simgen.engine.files import DATASET_FILE, MANIFEST_FILE, encode_png
from simgen.engine.scene_state import RandomizerSet, backend_scene, merge_patch, replay_scene
from simgen.errors import SimgenError
from simgen.spec.loader import LoadedSpec, load_spec


@dataclass
class ReplayedFrame:
    """A regenerated frame and how it compares with the stored one.

    Attributes:
        frame: Frame index.
        files: Regenerated PNG bytes by kind (``rgb``, ``depth``, ``instances``).
        identical: Kind -> whether the bytes equal the stored file.
        settled_match: Whether the settled poses equal the recorded ones.
    """

    frame: int
    files: dict[str, bytes]
    identical: dict[str, bool]
    settled_match: bool


def read_manifest_lines(root: Path, frames: set[int]) -> dict[int, dict[str, Any]]:
    """The manifest entries of the given frames (one streaming pass)."""
    found: dict[int, dict[str, Any]] = {}
    with open(root / MANIFEST_FILE, encoding="utf-8") as fh:
        for line in fh:
            entry = json.loads(line)
            if entry["frame"] in frames:
                found[entry["frame"]] = entry
                if len(found) == len(frames):
                    break
    return found


def dataset_spec(root: Path) -> tuple[dict[str, Any], LoadedSpec]:
    """The dataset record and its spec, loaded from the resolved copy in dataset.json."""
    meta_path = root / DATASET_FILE
    if not meta_path.is_file():
        raise SimgenError(f"{root} has no {DATASET_FILE}; is it a finished simgen dataset?")
    meta = json.loads(meta_path.read_text())
    loaded = load_spec(meta["spec"], base_dir=meta.get("spec_base_dir"), asset_roots=meta.get("asset_roots", []))
    return meta, loaded


def replay_frame(root: str | Path, frame: int, *, renderer: str | None = None) -> ReplayedFrame:
    """Rebuild frame ``frame``'s scene from its recorded patches, settle, render its recorded view.

    Args:
        root: A finished dataset.
        frame: The frame index.
        renderer: Renderer to use; defaults to the one the dataset recorded.
    """
    from simgen.backends import make_backend
    from simgen.engine.scene_state import apply_sensor

    root = Path(root)
    meta, loaded = dataset_spec(root)
    if not 0 <= frame < meta["n_frames"]:
        raise SimgenError(f"frame {frame} is outside the dataset (0..{meta['n_frames'] - 1})")
    first = (frame // meta["frames_per_scene"]) * meta["frames_per_scene"]
    entries = read_manifest_lines(root, {frame, first})
    scene_entry, entry = entries[first], entries[frame]
    state = replay_scene(loaded, scene_entry["scene_patches"])
    view: dict[str, Any] = {}
    for patch in entry["view"].values():
        view = merge_patch(view, patch)
    backend = make_backend(meta["backend"], renderer=renderer or meta["renderer"])
    try:
        backend.build(backend_scene(loaded, state))
        settled = backend.settle()
        buffers = backend.render(view, visibility=loaded.spec.labels.visibility)
    finally:
        backend.close()
    randomizers = RandomizerSet.from_spec(loaded)
    rgb = apply_sensor(buffers, randomizers, entry.get("sensor", {}), meta["seed"], frame)
    from simgen.labels import depth_to_png_mm

    files = {
        "rgb": encode_png(np.ascontiguousarray(rgb)),
        "depth": encode_png(depth_to_png_mm(buffers.depth_m)),
        "instances": encode_png(buffers.instance_ids.astype(np.uint16)),
    }
    identical = {}
    for kind, data in files.items():
        stored = entry["files"].get(kind)
        identical[kind] = stored is not None and (root / stored["path"]).read_bytes() == data
    return ReplayedFrame(frame, files, identical, settled == scene_entry.get("settled"))
