"""Split a dataset into scenes and shards. Shards follow scene boundaries and never change the output."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    """A contiguous run of whole scenes.

    Attributes:
        index: Shard number.
        scene_start: First scene (inclusive).
        scene_stop: Last scene (exclusive).
        frame_start: First frame (inclusive).
        frame_stop: Last frame (exclusive).
    """

    index: int
    scene_start: int
    scene_stop: int
    frame_start: int
    frame_stop: int

    @property
    def n_frames(self) -> int:
        """Frames in this shard."""
        return self.frame_stop - self.frame_start

    @property
    def name(self) -> str:
        """Folder name of its work files."""
        return f"shard_{self.index:06d}"


@dataclass(frozen=True)
class Plan:
    """Frames grouped into scenes (``frames_per_scene`` views of one settled scene) and shards.

    Attributes:
        n_frames: Total frames.
        frames_per_scene: Views rendered per settled scene (the last scene may have fewer).
        scenes_per_shard: Scenes per shard (the last shard may have fewer).
    """

    n_frames: int
    frames_per_scene: int
    scenes_per_shard: int

    def __post_init__(self) -> None:
        if self.n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {self.n_frames}")
        if self.frames_per_scene < 1 or self.scenes_per_shard < 1:
            raise ValueError("frames_per_scene and scenes_per_shard must be >= 1")

    @classmethod
    def build(cls, n_frames: int, frames_per_scene: int, *, shard_frames: int = 64) -> Plan:
        """A plan with shards of about ``shard_frames`` frames (rounded to whole scenes)."""
        return cls(n_frames, frames_per_scene, max(1, round(shard_frames / frames_per_scene)))

    @property
    def n_scenes(self) -> int:
        """Number of scenes."""
        return math.ceil(self.n_frames / self.frames_per_scene)

    def scene_frames(self, scene: int) -> range:
        """Frame indices of one scene."""
        start = scene * self.frames_per_scene
        return range(start, min(start + self.frames_per_scene, self.n_frames))

    @property
    def shards(self) -> list[Shard]:
        """Every shard, in order."""
        out = []
        for index, s0 in enumerate(range(0, self.n_scenes, self.scenes_per_shard)):
            s1 = min(s0 + self.scenes_per_shard, self.n_scenes)
            out.append(Shard(index, s0, s1, self.scene_frames(s0).start, self.scene_frames(s1 - 1).stop))
        return out
