"""Regenerate one frame from ``dataset.json`` and ``manifest.jsonl`` alone, without sampling anything."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simgen.engine.files import (
    DATASET_FILE,
    MANIFEST_FILE,
    dataset_modality,
    dataset_path,
    dataset_record_problems,
    manifest_entries,
    read_dataset_record,
)
from simgen.engine.scene_state import RandomizerSet, backend_scene, merge_patch, replay_scene
from simgen.errors import SimgenError
from simgen.spec.loader import LoadedSpec, load_spec

#: What a damaged record can make the scene code raise while it is replayed.
_DAMAGE = (KeyError, TypeError, ValueError, IndexError, AttributeError)


@dataclass
class ReplayedFrame:
    """A regenerated frame and how it compares with the stored one.

    Attributes:
        frame: Frame index.
        files: Regenerated PNG bytes by kind, for the kinds the dataset writes (``rgb``, ``depth``, ``instances``).
        identical: Kind -> whether the bytes equal the stored file (False when it is missing).
        settled_match: Whether the settled poses equal the recorded ones.
    """

    frame: int
    files: dict[str, bytes]
    identical: dict[str, bool]
    settled_match: bool


def read_manifest_lines(root: Path, frames: set[int]) -> dict[int, dict[str, Any]]:
    """The manifest entries of the given frames (one streaming pass).

    Raises:
        SimgenError: The manifest is missing, or a line on the way is damaged.
    """
    found: dict[int, dict[str, Any]] = {}
    for _, entry in manifest_entries(root / MANIFEST_FILE):
        if isinstance(entry, SimgenError):
            raise entry
        if entry["frame"] in frames:
            found[entry["frame"]] = entry
            if len(found) == len(frames):
                break
    return found


def dataset_spec(root: Path) -> tuple[dict[str, Any], LoadedSpec]:
    """The dataset record and its spec, loaded from the resolved copy in dataset.json.

    Raises:
        SimgenError: dataset.json is missing, damaged, or its spec is invalid.
    """
    meta = read_dataset_record(root)
    where = root / DATASET_FILE
    modality = dataset_modality(meta)[0]
    if modality != "images":
        raise SimgenError(f"{where}: a dataset of {modality}, not images; replay regenerates frames only")
    problems = dataset_record_problems(meta, where)
    if problems:
        raise SimgenError(problems[0])
    spec = meta["spec"]
    base_dir = meta.get("spec_base_dir")
    roots = meta.get("asset_roots", [])
    if base_dir is not None and not isinstance(base_dir, str):
        raise SimgenError(f"{where}: 'spec_base_dir' must be a string or null")
    if not (isinstance(roots, list) and all(isinstance(r, str) for r in roots)):
        raise SimgenError(f"{where}: 'asset_roots' must be a list of strings")
    return meta, load_spec(spec, base_dir=base_dir, asset_roots=roots)


def replay_frame(root: str | Path, frame: int, *, renderer: str | None = None) -> ReplayedFrame:
    """Rebuild frame ``frame``'s scene from its recorded patches, settle, render its recorded view.

    Args:
        root: A finished dataset.
        frame: The frame index.
        renderer: Renderer to use; defaults to the one the dataset recorded.

    Raises:
        SimgenError: The frame is outside the dataset, or a record it needs is missing or damaged
            (the message names the file and what is wrong).
    """
    from simgen.backends import make_backend
    from simgen.engine.images import encode_frame
    from simgen.engine.scene_state import apply_sensor

    root = Path(root)
    meta, loaded = dataset_spec(root)
    n_frames, per_scene, seed = meta["n_frames"], meta["frames_per_scene"], meta["seed"]  # checked by dataset_spec
    renderer = renderer or meta["renderer"]
    if not 0 <= frame < n_frames:
        raise SimgenError(f"frame {frame} is outside the dataset (0..{n_frames - 1})")
    first = (frame // per_scene) * per_scene
    entries = read_manifest_lines(root, {frame, first})
    for needed in sorted({frame, first}):
        if needed not in entries:
            raise SimgenError(f"{root / MANIFEST_FILE}: no line for frame {needed}")
    scene_entry, entry = entries[first], entries[frame]
    if "sequence" in entry:  # captured during the physics: one view of a settled scene would not reproduce it
        raise SimgenError(
            f"frame {frame} is frame {entry['sequence'].get('frame_id', '?')} of timeline sequence "
            f"{entry['sequence'].get('video_id', '?')}; replay re-renders "
            "a settled scene's view and does not re-capture sequences yet; simgen verify checks its files"
        )
    manifest = root / MANIFEST_FILE
    patches = scene_entry.get("scene_patches")
    views = entry.get("view")
    sensor = entry.get("sensor", {})
    for name, value in (("scene_patches", patches), ("view", views), ("sensor", sensor)):
        if not isinstance(value, dict) or not all(isinstance(p, dict) for p in value.values()):
            owner = first if name == "scene_patches" else frame
            raise SimgenError(f"{manifest} frame {owner}: '{name}' must be an object of patches")
    try:
        state = replay_scene(loaded, patches)
        view: dict[str, Any] = {}
        for patch in views.values():
            view = merge_patch(view, patch)
        scene = backend_scene(loaded, state)
    except _DAMAGE as exc:
        raise SimgenError(f"{manifest} frame {first}: its recorded patches cannot be replayed ({exc!r:.200})") from None
    backend = make_backend(meta["backend"], renderer=renderer)
    try:
        try:
            backend.build(scene)
            settled = backend.settle()
            buffers = backend.render(view, visibility=loaded.spec.labels.visibility)
        except _DAMAGE as exc:
            problem = f"its recorded scene cannot be rebuilt ({exc!r:.200})"
            raise SimgenError(f"{manifest} frame {first}: {problem}") from None
    finally:
        backend.close()
    try:
        rgb = apply_sensor(buffers, RandomizerSet.from_spec(loaded), sensor, seed, frame)
    except _DAMAGE as exc:
        raise SimgenError(f"{manifest} frame {frame}: its sensor patches cannot be replayed ({exc!r:.200})") from None
    files = encode_frame(rgb, buffers, loaded.spec.outputs)
    identical = {kind: _same(root, entry["files"].get(kind), data) for kind, data in files.items()}
    return ReplayedFrame(frame, files, identical, settled == scene_entry.get("settled"))


def _same(root: Path, stored: dict[str, Any] | None, data: bytes) -> bool:
    """Whether the stored file (confined to the dataset) holds exactly ``data``."""
    path = dataset_path(root, stored["path"]) if stored else None
    if path is None or not path.is_file():
        return False
    try:
        return path.read_bytes() == data
    except OSError:
        return False
