"""Split a dataset into scenes and shards. Shards follow scene boundaries and never change the output.

A plan is arithmetic, not a list: :attr:`Plan.shards` is a lazy sequence that computes shard ``k`` when
asked, so even the largest plan allowed costs a few bytes. Its size is bounded (:data:`MAX_FRAMES`,
:data:`MAX_SHARDS`) so a typo such as ``-n 1000000000`` is refused at once, before anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from simgen.errors import PlanError

#: The most frames one run may plan: ten million 640x480 frames are terabytes of PNGs already.
MAX_FRAMES = 10_000_000
#: The most shards one run may plan; each gets a folder of work files and a job for the runner.
MAX_SHARDS = 1_000_000


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
        n_frames: Total frames, 1 to :data:`MAX_FRAMES`.
        frames_per_scene: Views rendered per settled scene (the last scene may have fewer).
        scenes_per_shard: Scenes per shard (the last shard may have fewer).

    Raises:
        PlanError: A count is not a positive integer, or the plan exceeds :data:`MAX_FRAMES` frames or
            :data:`MAX_SHARDS` shards.
    """

    n_frames: int
    frames_per_scene: int
    scenes_per_shard: int

    def __post_init__(self) -> None:
        for name in ("n_frames", "frames_per_scene", "scenes_per_shard"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PlanError(f"{name} must be an integer >= 1, got {value!r:.40}")
        if self.n_frames > MAX_FRAMES:
            raise PlanError(
                f"n_frames is {self.n_frames:,}, more than the {MAX_FRAMES:,} frames one run may plan; "
                "split the dataset into several runs (with different seeds)"
            )
        if len(self.shards) > MAX_SHARDS:
            raise PlanError(
                f"{self.n_frames:,} frames in shards of {self.scenes_per_shard * self.frames_per_scene} make "
                f"{len(self.shards):,} shards, more than {MAX_SHARDS:,}; use larger shards"
            )

    @classmethod
    def build(cls, n_frames: int, frames_per_scene: int, *, shard_frames: int = 64) -> Plan:
        """A plan with shards of about ``shard_frames`` frames (rounded to whole scenes)."""
        if isinstance(frames_per_scene, bool) or not isinstance(frames_per_scene, int) or frames_per_scene < 1:
            return cls(n_frames, frames_per_scene, 1)  # refused by the checks, with their message
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
    def shards(self) -> Shards:
        """Every shard, in order, as a lazy sequence (nothing is built until a shard is asked for)."""
        return Shards(self)


class Shards(Sequence[Shard]):
    """The shards of a plan, computed on demand: ``len``, indexing, slicing and iteration in O(1) memory."""

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._len = math.ceil(plan.n_scenes / plan.scenes_per_shard)

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> Shard: ...

    @overload
    def __getitem__(self, index: slice) -> list[Shard]: ...

    def __getitem__(self, index: int | slice) -> Shard | list[Shard]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(f"shard {index} out of range: the plan has {self._len}")
        p = self._plan
        s0 = index * p.scenes_per_shard
        s1 = min(s0 + p.scenes_per_shard, p.n_scenes)
        return Shard(index, s0, s1, p.scene_frames(s0).start, p.scene_frames(s1 - 1).stop)

    def __iter__(self) -> Iterator[Shard]:
        return (self[i] for i in range(self._len))

    def __repr__(self) -> str:
        return f"<{self._len} shards of {self._plan!r}>"
