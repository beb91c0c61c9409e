"""The image modality: scenes sampled from a spec, settled and rendered by a backend, labelled, written as frames.

It plugs into the one run loop (:func:`simgen.engine.run.run_dataset`) as :class:`ImageModality` (main process)
and :class:`ImageTask` (what each shard runs). A record is a frame; a group of records is a scene: one
sampled, built and settled scene rendered from ``frames_per_scene`` views. A frame's randomness depends only
on ``(seed, scene)`` and ``(seed, frame)``, so the output is byte-identical whatever the sharding.

A frame is finished (on the sink's thread when there is a spare core) in named steps by :class:`FrameFinisher`:
annotate, sensor effects, encode, write its files (and make its COCO record); the run loop then hands it to
the writers (COCO, YOLO, BOP, ...) and commits it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from simgen.engine.files import (
    COCO_FILE,
    DATASET_FILE,
    DATASET_KEYS,
    FRAME_DIRS,
    MANIFEST_FILE,
    Layout,
    coco_image_kind,
    simgen_record,
)
from simgen.engine.plan import Plan
from simgen.engine.scene_state import (
    RandomizerSet,
    apply_sensor,
    backend_scene,
    sample_scene,
    sample_sensor,
    sample_view,
)
from simgen.engine.sink import Record, ms
from simgen.engine.worker import WorkerSetup, acquire_backend
from simgen.errors import SimgenError, SpecError
from simgen.frame import CAMERA_CONVENTION, FrameBuffers
from simgen.io import encode_png, write_file
from simgen.spec.loader import LoadedSpec, load_spec
from simgen.writers.base import DatasetWriter, FrameContext

if TYPE_CHECKING:
    from simgen.engine.run import Finished, RunConfig
    from simgen.engine.shard import ShardWork
    from simgen.scenarios.engine import ScenarioSource
    from simgen.scenarios.loader import LoadedScenario
    from simgen.scenarios.models import Require, Timeline
    from simgen.spec.models import Outputs

__all__ = [
    "KEY_PACKAGES",
    "FrameFinisher",
    "ImageModality",
    "ImageTask",
    "RenderedFrame",
    "SpecSource",
    "categories",
    "check_outputs",
    "encode_frame",
    "with_resolution",
]

#: The packages whose versions shape an image dataset, recorded in dataset.json.
KEY_PACKAGES = ("numpy", "pybullet", "opencv-python-headless", "pydantic", "pycocotools", "pyyaml")


# --- what a spec means for the run ------------------------------------------------------------------------


def categories(loaded: LoadedSpec) -> list[str]:
    """Category names, in order of first appearance (ids are position + 1), as the spec's backend labels them.

    They come from the spec alone (objects, fixtures, and what the randomizers declare; see
    :func:`simgen.backends.base.spec_categories`), so every worker and every shard agrees on the ids before
    anything renders.
    """
    from simgen.backends import backend_categories

    return backend_categories(loaded.spec.backend, loaded)


def check_outputs(loaded: LoadedSpec) -> None:
    """Refuse ``outputs`` and ``labels`` that cannot make a dataset on the spec's backend, before anything is written.

    Raises:
        SimgenError: No image file at all (COCO's ``file_name`` must name one), or BOP without RGB and depth.
        SpecError: ``labels.visibility`` on a backend that cannot render objects alone.
    """
    from simgen.backends import backend_capabilities

    spec = loaded.spec
    outputs = spec.outputs
    if coco_image_kind(outputs) is None:
        raise SimgenError(
            "outputs: rgb, depth and instances are all false; COCO's images[].file_name must name a written "
            "image, so turn on at least one of them"
        )
    if outputs.bop and not (outputs.rgb and outputs.depth):
        raise SimgenError("outputs.bop: the BOP tree needs outputs.rgb and outputs.depth to be true")
    if spec.labels.visibility and not backend_capabilities(spec.backend).get("visibility", False):
        raise SpecError(
            f"the '{spec.backend}' backend cannot render objects alone, so visibility fractions (and BOP's masks) "
            "are unavailable; set labels.visibility: false",
            path="labels.visibility",
            source=str(loaded.source) if loaded.source else None,
        )


def with_resolution(loaded: LoadedSpec, resolution: tuple[int, int]) -> LoadedSpec:
    """The spec with its camera's width and height replaced (``--resolution``).

    Raises:
        SimgenError: The spec has explicit camera intrinsics, which a new size would silently break.
    """
    raw = json.loads(json.dumps(loaded.raw))
    raw.setdefault("camera", {})
    raw["camera"]["width"], raw["camera"]["height"] = int(resolution[0]), int(resolution[1])
    intr = raw["camera"].get("intrinsics")
    if intr is not None:
        raise SimgenError("--resolution cannot rescale explicit camera.intrinsics; edit the spec instead")
    resized = load_spec(raw, base_dir=loaded.base_dir, asset_roots=loaded.roots)
    resized.source = loaded.source  # the file it came from, still; dataset.json records the override
    return resized


def encode_frame(rgb: np.ndarray, buffers: FrameBuffers, outputs: Outputs) -> dict[str, bytes]:
    """The PNG bytes of one frame's files, by kind, for the kinds ``outputs`` asks for.

    The one encoder of frame files: the shard loop writes what it returns and ``replay`` compares with it,
    so the two can never drift apart.

    Args:
        rgb: The frame's RGB after sensor effects.
        buffers: The rendered buffers (depth in metres, instance ids).
        outputs: The spec's ``outputs`` (``rgb``, ``depth``, ``instances`` flags).

    Returns:
        ``kind -> PNG bytes``, in the order rgb, depth, instances.
    """
    from simgen.labels import depth_to_png_mm

    encoded: dict[str, bytes] = {}
    if outputs.rgb:
        encoded["rgb"] = encode_png(np.ascontiguousarray(rgb))
    if outputs.depth:
        encoded["depth"] = encode_png(depth_to_png_mm(buffers.depth_m))
    if outputs.instances:
        encoded["instances"] = encode_png(buffers.instance_ids.astype(np.uint16))
    return encoded


# --- the shard side ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecSource:
    """What a worker needs to reload the spec: picklable, small."""

    raw: dict[str, Any]
    base_dir: str | None
    roots: tuple[str, ...]

    @classmethod
    def of(cls, loaded: LoadedSpec) -> SpecSource:
        """Capture a loaded spec."""
        base = str(loaded.base_dir) if loaded.base_dir else None
        return cls(loaded.raw, base, tuple(str(r) for r in loaded.roots))

    def load(self) -> LoadedSpec:
        """Validate again in this process (cheap) and return the loaded spec."""
        return load_spec(self.raw, base_dir=self.base_dir, asset_roots=self.roots, check_assets=False)


@dataclass
class RenderedFrame:
    """A frame fresh from the renderer, on its way to labels and files.

    Attributes:
        frame: Frame index.
        scene: Scene index.
        buffers: What the backend rendered.
        view_patches: The view randomizers' patches, by randomizer.
        sensor_patches: The sensor effects' drawn parameters, by randomizer.
        extra: Manifest fields of the scene's first frame (its scene patches and settled poses), else empty.
        timings: Milliseconds spent so far, by stage.
        view_seed: The seed the view and sensor streams drew from (a scenario's attempt k > 0); None: the dataset's.
        annotations: The labels, when already made (a ``require`` checked them); None: made by the finisher.
        rgb: The RGB after sensor effects, when already made; None: made by the finisher.
        scenario: A scenario frame's manifest fields (``scenario_cell``, ``require``); ``scenario_cell`` also
            goes into its COCO image record.
    """

    frame: int
    scene: int
    buffers: FrameBuffers
    view_patches: dict[str, Any]
    sensor_patches: dict[str, Any]
    extra: dict[str, Any]
    timings: dict[str, float]
    view_seed: int | None = None
    annotations: list[Any] | None = None
    rgb: np.ndarray | None = None
    scenario: dict[str, Any] = field(default_factory=dict)


class FrameFinisher:
    """Turns a rendered frame into a record, in named steps: annotate, sensor, encode, write files.

    Args:
        loaded: The spec.
        randomizers: Its randomizers (the sensor effects are applied here).
        root: The dataset folder.
        seed: The dataset seed.
        categories: Category names (id = position + 1).
    """

    def __init__(
        self, loaded: LoadedSpec, randomizers: RandomizerSet, root: Path, seed: int, categories: tuple[str, ...]
    ) -> None:
        self.spec, self.randomizers, self.root, self.seed = loaded.spec, randomizers, root, seed
        self.categories = categories
        self.category_ids = {name: i + 1 for i, name in enumerate(categories)}
        self.image_kind = coco_image_kind(loaded.spec.outputs) or "rgb"  # check_outputs refuses a spec with none

    def __call__(self, rendered: RenderedFrame) -> Record:
        """The frame as a record for the writers and the manifest (its PNG files already written)."""
        t0 = time.perf_counter()
        annotations = rendered.annotations if rendered.annotations is not None else self.annotate(rendered.buffers)
        t1 = time.perf_counter()
        rgb = rendered.rgb if rendered.rgb is not None else self.sensor(rendered)
        t2 = time.perf_counter()
        encoded = encode_frame(rgb, rendered.buffers, self.spec.outputs)
        t3 = time.perf_counter()
        files, coco = self.write_files(rendered, encoded, annotations)
        t4 = time.perf_counter()
        buffers = rendered.buffers
        context = FrameContext(
            rendered.frame, rendered.scene, buffers, annotations, coco,
            {k: v["path"] for k, v in files.items()}, self.categories,
        )  # fmt: skip
        fields = {
            "scene": rendered.scene,
            **rendered.extra,
            "view": rendered.view_patches,
            "sensor": rendered.sensor_patches,
            "n_objects": len(buffers.objects),
            "n_annotations": len(annotations),
            **rendered.scenario,
        }
        timings = {**rendered.timings, "labels": ms(t0, t1), "sensor": ms(t1, t2), "encode": ms(t2, t3),
                   "write": ms(t3, t4)}  # fmt: skip
        return Record(index=rendered.frame, context=context, files=files, fields=fields, timings=timings)

    def annotate(self, buffers: FrameBuffers) -> list[Any]:
        """The frame's labels, from its buffers alone, after the spec's label filters."""
        from simgen.labels import annotate

        labels = self.spec.labels
        return annotate(
            buffers,
            min_visible_px=labels.min_visible_px,
            min_visibility=labels.min_visibility,
            on_filtered=labels.on_filtered,
        )

    def sensor(self, rendered: RenderedFrame) -> np.ndarray:
        """The RGB after the sensor effects drawn for the frame (labels are computed without them)."""
        if not self.randomizers.sensor:
            return rendered.buffers.rgb
        seed = self.seed if rendered.view_seed is None else rendered.view_seed
        return apply_sensor(rendered.buffers, self.randomizers, rendered.sensor_patches, seed, rendered.frame)

    def write_files(
        self, rendered: RenderedFrame, encoded: dict[str, bytes], annotations: list[Any]
    ) -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
        """Write the frame's PNGs; return them (``kind -> {"path", "sha256"}``) and the frame's COCO record."""
        from simgen.writers.coco import frame_record

        files: dict[str, dict[str, str]] = {}
        for kind, data in encoded.items():
            rel = Layout.frame_file(kind, rendered.frame)
            files[kind] = {"path": rel, "sha256": write_file(self.root, rel, data)}
        buffers = rendered.buffers
        coco = frame_record(
            frame_index=rendered.frame,
            scene_index=rendered.scene,
            file_name=files[self.image_kind]["path"],
            annotations=annotations,
            category_ids=self.category_ids,
            depth_file=files["depth"]["path"] if "depth" in files else None,
            instance_file=files["instances"]["path"] if "instances" in files else None,
            K=buffers.K,
            T_world_cam=buffers.T_world_cam,
            width=buffers.width,
            height=buffers.height,
            sequence=rendered.scenario.get("sequence"),
        )
        if "scenario_cell" in rendered.scenario:
            coco["image"]["scenario_cell"] = rendered.scenario["scenario_cell"]
        return files, coco


@dataclass(frozen=True, kw_only=True)
class ImageTask:
    """What each shard of an image run does: sample, build, settle, render its scenes; plain and picklable.

    Attributes:
        source: The spec, to reload in the worker.
        backend: The backend's registered name.
        renderer: The renderer every worker uses (already resolved from ``"auto"``).
        categories: Category names (id = position + 1), the same in every shard.
        outputs: The spec's ``outputs``, which choose the writers.
        scenario: The scenario (factors, design, ``require``), or None for a plain spec: then ``source`` is
            the spec every scene is built from, else each scene's cell's spec is.
    """

    record_key: ClassVar[str] = "frame"

    source: SpecSource
    backend: str
    renderer: str
    categories: tuple[str, ...]
    outputs: dict[str, Any]
    scenario: ScenarioSource | None = None

    def writers(self) -> list[DatasetWriter]:
        """The writers ``outputs`` turns on (COCO, YOLO, BOP, ...)."""
        from simgen.writers.registry import writers_for

        return writers_for(self.outputs)

    def produce(self, work: ShardWork) -> None:
        """Render every frame of the shard that is not committed yet, scene by scene, into ``work.submit``.

        A scene is rebuilt whenever one of its frames must be made (a resumed shard redoes exactly its damaged
        frames; rebuilding is deterministic). A scenario with a ``timeline`` makes each scene a sequence
        (:class:`_Sequence`). The renderer that ran goes to ``work.meta["renderer"]``.
        """
        cells = _Cells(self.source, self.scenario, work, self.categories)
        for kind, folder in FRAME_DIRS.items():
            if self.outputs.get(kind):
                (work.layout.root / folder).mkdir(parents=True, exist_ok=True)
        backend = None
        for scene, frames in work.groups():
            backend = acquire_backend(self.backend, self.renderer)
            cell = cells.of_scene(scene)
            if cell.timeline is not None:
                _Sequence(work, cell, scene, set(frames)).run(backend)
                continue
            loaded, randomizers = cell.loaded, cell.randomizers
            t0 = time.perf_counter()
            state, scene_patches = sample_scene(loaded, randomizers, work.seed, scene)
            t1 = time.perf_counter()
            backend.build(backend_scene(loaded, state))
            t2 = time.perf_counter()
            settled = backend.settle()
            t3 = time.perf_counter()
            scene_timings = {"sample_scene": ms(t0, t1), "build": ms(t1, t2), "settle": ms(t2, t3)}
            first_frame = work.plan.scene_frames(scene).start
            for frame in frames:
                first = frame == first_frame
                t4 = time.perf_counter()
                view, view_patches = sample_view(loaded, randomizers, work.seed, frame, state)
                sensor_patches = sample_sensor(loaded, randomizers, work.seed, frame, state)
                t5 = time.perf_counter()
                buffers = backend.render(view, visibility=loaded.spec.labels.visibility)
                t6 = time.perf_counter()
                timings = {**(scene_timings if first else {}), "sample_view": ms(t4, t5), "render": ms(t5, t6)}
                extra = {"scene_patches": scene_patches, "settled": settled} if first else {}
                rendered = RenderedFrame(frame, scene, buffers, view_patches, sensor_patches, extra, timings)
                if cell.record is not None:
                    rendered.scenario["scenario_cell"] = cell.record
                if cell.require is not None:
                    rendered = cells.require(rendered, cell, backend, state)
                work.submit(functools.partial(cell.finish, rendered))
        work.meta["renderer"] = backend.renderer if backend is not None else self.renderer


@dataclass
class _Cell:
    """What the scenes of one cell are built with (a plain spec is one cell with no scenario)."""

    loaded: LoadedSpec
    randomizers: RandomizerSet
    finish: FrameFinisher
    scenario: LoadedScenario | None = None
    record: dict[str, Any] | None = None
    require: Require | None = None
    tags: dict[str, tuple[str, ...]] | None = None
    timeline: Timeline | None = None
    raw: dict[str, Any] | None = None  # the cell's raw spec (for a timeline's light events)
    _lights: list[tuple[LoadedSpec, RandomizerSet] | None] | None = None

    def light_specs(self) -> list[tuple[LoadedSpec, RandomizerSet] | None]:
        """Per timeline event, the spec (and its randomizers) a light event switches to; None for other events."""
        if self._lights is None:
            assert self.scenario is not None and self.raw is not None  # only a timeline's cells ask
            specs = self.scenario.light_specs(self.raw)
            self._lights = [None if s is None else (s, RandomizerSet.from_spec(s)) for s in specs]
        return self._lights


class _Cells:
    """The cell of each scene of a shard, built once per cell; and the ``require`` rejection loop."""

    def __init__(
        self, source: SpecSource, scenario: ScenarioSource | None, work: ShardWork, names: tuple[str, ...]
    ) -> None:
        self.work, self.names, self.seed = work, names, work.seed
        self.scenario = scenario.load() if scenario is not None else None
        self.design = self.scenario.design(work.seed) if self.scenario is not None else None
        self.tags = self.scenario.tags() if self.scenario is not None else None
        self._cells: dict[int, _Cell] = {}
        if self.scenario is None:
            self._plain = self._make(source.load(), None)

    def _make(self, loaded: LoadedSpec, record: dict[str, Any] | None, raw: dict[str, Any] | None = None) -> _Cell:
        randomizers = RandomizerSet.from_spec(loaded)
        finish = FrameFinisher(loaded, randomizers, self.work.layout.root, self.seed, self.names)
        require = self.scenario.require if self.scenario is not None else None
        timeline = self.scenario.timeline if self.scenario is not None else None
        return _Cell(loaded, randomizers, finish, self.scenario, record, require, self.tags, timeline, raw)

    def of_scene(self, scene: int) -> _Cell:
        """The cell scene ``scene`` is built from: its design cell (round robin), or the plain spec."""
        from simgen.scenarios.design import cell_record

        if self.scenario is None:
            return self._plain
        index = self.design.cell_index_for_scene(scene) if self.design is not None else 0
        if index not in self._cells:
            if self.design is None:  # a scenario without factors (a ``require`` alone): the spec itself
                self._cells[index] = self._make(self.scenario.base, None, self.scenario.raw)
            else:
                cell = self.design.cells[index]
                self._cells[index] = self._make(
                    self.scenario.cell_spec(cell), cell_record(index, cell), self.scenario.cell_raw(cell)
                )
        return self._cells[index]

    def require(self, rendered: RenderedFrame, cell: _Cell, backend: Any, state: dict[str, Any]) -> RenderedFrame:
        """The first attempt at the frame whose labels meet ``require``, with its labels and RGB already made.

        Attempt 0 is the frame a plain run renders; attempt k > 0 redraws the frame's view streams (camera,
        light, sensor) from ``attempt_seed(seed, frame, k)``. The scene (and so every scene-level factor and
        randomizer) stays as built: the scene's frames share it.

        Raises:
            RequireUnmet: No attempt of ``require.max_attempts`` was accepted (nothing of the frame is written).
        """
        from simgen.scenarios.constraints import accepted, attempt_seed, unmet_error
        from simgen.scenarios.engine import attempts_json

        require = cell.require
        assert require is not None  # only called for a cell with one
        frame, loaded = rendered.frame, cell.loaded
        log: list[Any] = []
        current = rendered
        for k in range(require.max_attempts):
            if k > 0:
                seed_k = attempt_seed(self.seed, frame, k)
                t0 = time.perf_counter()
                view, view_patches = sample_view(loaded, cell.randomizers, seed_k, frame, state)
                sensor_patches = sample_sensor(loaded, cell.randomizers, seed_k, frame, state)
                t1 = time.perf_counter()
                buffers = backend.render(view, visibility=loaded.spec.labels.visibility)
                t2 = time.perf_counter()
                timings = dict(current.timings)
                timings["sample_view"] = timings.get("sample_view", 0.0) + ms(t0, t1)
                timings["render"] = timings.get("render", 0.0) + ms(t1, t2)
                current = RenderedFrame(
                    frame, rendered.scene, buffers, view_patches, sensor_patches, rendered.extra, timings,
                    view_seed=seed_k, scenario=dict(rendered.scenario),
                )  # fmt: skip
            results, annotations, rgb = _check_require(cell, current, self.seed)
            log.append(results)
            if accepted(results):
                current.annotations, current.rgb = annotations, rgb
                current.scenario["require"] = {
                    "attempt": k,
                    "results": [r.to_json() for r in results],
                    "attempts": attempts_json(log),
                }
                return current
        raise unmet_error(require.constraints, frame, log)


def _check_require(cell: _Cell, rendered: RenderedFrame, seed: int) -> tuple[list[Any], list[Any], np.ndarray]:
    """A rendered frame's ``require`` results, with the labels and RGB they were computed from (made once)."""
    from simgen.scenarios.constraints import evaluate, frame_labels_from_annotations, frame_require_rng

    require = cell.require
    assert require is not None  # only called for a cell with one
    annotations = cell.finish.annotate(rendered.buffers)
    rgb = cell.finish.sensor(rendered)
    buffers = rendered.buffers
    labels = frame_labels_from_annotations(
        annotations, buffers.width, buffers.height, rgb=rgb, tags=cell.tags, frame_index=rendered.frame
    )
    return evaluate(require.constraints, labels, frame_require_rng(seed, rendered.frame)), annotations, rgb


class _Sequence:
    """One scene of a scenario with a ``timeline``: its frames captured during the physics (a sequence).

    The scene is sampled once. Attempt k (k > 0 only with ``require``) rebuilds it, redraws the sequence's
    view (camera, light), its event picks and its sensor effects from ``attempt_seed(seed, first frame, k)``,
    and captures the frames in order; with ``require`` every frame is checked as it is captured and the
    attempt is abandoned at the first frame that fails, so the sequence is kept whole or not at all. Its frames
    are handed over once the whole sequence is accepted (at once, without ``require``).

    The backend receives the same calls whatever frames were already committed (a resumed shard captures the
    whole sequence again and hands over only the missing frames): physics after a render depends on the
    renders made before it (see :mod:`simgen.backends.pybullet_backend`), so skipping one would change the rest.
    """

    def __init__(self, work: ShardWork, cell: _Cell, scene: int, todo: set[int]) -> None:
        self.work, self.cell, self.scene, self.todo = work, cell, scene, todo
        self.frames = work.plan.scene_frames(scene)

    def run(self, backend: Any) -> None:
        """Capture the sequence (with its ``require`` attempts) and submit its frames that are to be made.

        Raises:
            RequireUnmet: No attempt of ``require.max_attempts`` kept every frame (nothing of it is written).
            SpecError: An event's target matches no object of this scene.
        """
        from simgen.scenarios.constraints import accepted, attempt_seed, unmet_error
        from simgen.scenarios.engine import attempts_json

        cell, work, first = self.cell, self.work, self.frames.start
        loaded = cell.loaded
        assert cell.timeline is not None  # only made for a timeline's cells
        t0 = time.perf_counter()
        state, scene_patches = sample_scene(loaded, cell.randomizers, work.seed, self.scene)
        sample_ms = ms(t0, time.perf_counter())
        require = cell.require
        logs: dict[int, list[Any]] = {i: [] for i in self.frames}
        failures: list[tuple[int, list[Any]]] = []
        for k in range(require.max_attempts if require is not None else 1):
            seed_k = attempt_seed(work.seed, first, k)
            made: list[RenderedFrame] = []
            for rendered in self._capture(backend, state, scene_patches, seed_k, k, sample_ms):
                if require is None:
                    if rendered.frame in self.todo:
                        work.submit(functools.partial(cell.finish, rendered))
                    continue
                results, rendered.annotations, rendered.rgb = _check_require(cell, rendered, work.seed)
                logs[rendered.frame].append(results)
                if not accepted(results):
                    failures.append((rendered.frame, results))
                    break
                made.append(rendered)
            else:
                for rendered in made:
                    frame_log = logs[rendered.frame]
                    rendered.scenario["require"] = {
                        "attempt": k,
                        "results": [r.to_json() for r in frame_log[-1]],
                        "attempts": attempts_json(frame_log),
                    }
                    if rendered.frame in self.todo:
                        work.submit(functools.partial(cell.finish, rendered))
                return
        assert require is not None  # without one, the only attempt always ends above
        raise unmet_error(require.constraints, failures[-1][0], [results for _, results in failures])

    def _capture(
        self,
        backend: Any,
        state: dict[str, Any],
        scene_patches: dict[str, Any],
        seed_k: int,
        attempt: int,
        sample_ms: float,
    ) -> Iterator[RenderedFrame]:
        """Build, settle and capture one attempt of the sequence, yielding each frame as a :class:`RenderedFrame`."""
        from simgen.scenarios.timeline import capture_sequence, start_sequence

        cell, first = self.cell, self.frames.start
        loaded, randomizers, timeline = cell.loaded, cell.randomizers, cell.timeline
        assert timeline is not None
        t0 = time.perf_counter()
        backend.build(backend_scene(loaded, state))
        t1 = time.perf_counter()
        settled = start_sequence(backend, timeline)
        t2 = time.perf_counter()
        plan = self._plan(state, seed_k)
        t3 = time.perf_counter()
        timings = {"sample_scene": sample_ms, "build": ms(t0, t1), "settle": ms(t1, t2), "sample_view": ms(t2, t3)}
        fps = 1.0 / (timeline.capture.every_steps * plan.schedule.dt)
        frames = capture_sequence(backend, plan)
        for captured_frame, render_ms in _timed(frames):
            j = captured_frame.index
            frame = first + j
            sensor_patches = sample_sensor(loaded, randomizers, seed_k, frame, state)
            extra = {"scene_patches": scene_patches, "settled": settled, "timeline": {"targets": plan.targets}}
            rendered = RenderedFrame(
                frame, self.scene, captured_frame.buffers, self.view_patches, sensor_patches,
                extra if j == 0 else {}, {**(timings if j == 0 else {}), "render": render_ms},
                view_seed=seed_k if attempt > 0 else None,
            )  # fmt: skip
            if cell.record is not None:
                rendered.scenario["scenario_cell"] = cell.record
            rendered.scenario["sequence"] = {
                "video_id": self.scene + 1,
                "frame_id": j,
                "n_frames": len(self.frames),
                "step": captured_frame.step,
                "t_s": captured_frame.t_s,
                "fps": fps,
                "events": plan.fired(j),
                "renders": captured_frame.renders,
            }
            yield rendered

    def _plan(self, state: dict[str, Any], seed_k: int) -> Any:
        """The attempt's :class:`~simgen.scenarios.timeline.SequencePlan`: its view, event targets and lights."""
        from simgen.scenarios.timeline import sequence_plan

        cell, first = self.cell, self.frames.start
        loaded = cell.loaded
        assert cell.timeline is not None
        view, self.view_patches = sample_view(loaded, cell.randomizers, seed_k, first, state)
        lights = [
            None if lit is None else sample_view(*lit, seed_k, first, state)[0]["light"] for lit in cell.light_specs()
        ]
        return sequence_plan(
            cell.timeline, float(loaded.spec.physics.timestep), len(self.frames), view, state["objects"], seed_k, first,
            lights=lights, visibility=loaded.spec.labels.visibility,
        )  # fmt: skip


def _timed(frames: Iterable[Any]) -> Iterator[tuple[Any, float]]:
    """``(item, milliseconds it took to make)`` for each item of an iterator."""
    it = iter(frames)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        yield item, ms(t0, time.perf_counter())


# --- the main-process side --------------------------------------------------------------------------------


class ImageModality:
    """Frames of a scene spec (see the module docstring), for :func:`simgen.engine.run.run_dataset`.

    Args:
        loaded: The spec (with any ``--resolution`` already applied).
        renderer: The renderer asked for (``"auto"`` is resolved once, in :meth:`start`).
        resolution: The ``--resolution`` override, recorded in dataset.json.
        scenario: A scenario (``loaded`` is then its base spec): scenes are built from their design cells,
            frames must meet its ``require``, and dataset.json gets a ``scenario`` record.
        scenario_source: The scenario as the workers reload it (with ``scenario``).
    """

    name: ClassVar[str] = "images"
    record_key: ClassVar[str] = "frame"

    def __init__(
        self,
        loaded: LoadedSpec,
        *,
        renderer: str = "auto",
        resolution: tuple[int, int] | None = None,
        scenario: LoadedScenario | None = None,
        scenario_source: ScenarioSource | None = None,
    ) -> None:
        self.loaded, self.requested, self.resolution = loaded, renderer, resolution
        self.renderer = renderer
        self.categories: list[str] = []
        self.scenario, self.scenario_source = scenario, scenario_source

    @property
    def backend(self) -> str:
        """The spec's backend."""
        return self.loaded.spec.backend

    def digest(self) -> str:
        """SHA-256 of the resolved spec (and of the scenario's sections, for a scenario)."""
        if self.scenario is None:
            return self.loaded.digest()
        return hashlib.sha256(f"{self.loaded.digest()}:{self.scenario.digest()}".encode()).hexdigest()

    def identity(self) -> dict[str, Any]:
        """A resumed run must also have the same backend and renderer."""
        return {"backend": self.backend, "renderer": self.renderer}

    def check(self, config: RunConfig) -> None:
        """Refuse outputs and labels that cannot make a dataset (see :func:`check_outputs`).

        Raises:
            SpecError: Also a scenario's ``timeline`` on a backend that cannot step its physics and apply events.
        """
        from simgen.backends import backend_capabilities

        check_outputs(self.loaded)
        timeline = self.scenario.timeline if self.scenario is not None else None
        if timeline is not None and not backend_capabilities(self.backend).get("timeline", False):
            raise SpecError(
                f"the '{self.backend}' backend cannot capture sequences (capabilities['timeline'] is not set); "
                "remove the timeline section or use the pybullet backend",
                path="timeline",
                source=self.scenario.label if self.scenario is not None else None,
            )

    def plan(self, n_records: int, shard_records: int) -> Plan:
        """Frames in scenes of ``frames_per_scene``, scenes in shards of about ``shard_records`` frames."""
        return Plan.build(n_records, self.loaded.spec.frames_per_scene, shard_frames=shard_records)

    def worker_setup(self, workers: int) -> WorkerSetup:
        """The backend's environment for ``workers`` processes sharing the cores; the simulator and labels to import."""
        from simgen.backends import backend_module, worker_env

        module = backend_module(self.backend)
        imports = (*([module] if module else []), "simgen.labels", "simgen.engine.images")
        return WorkerSetup(env=worker_env(self.backend, workers), imports=imports)

    def start(self, config: RunConfig) -> None:
        """Resolve the renderer (once, for every worker) and the categories, while the workers start."""
        from simgen.backends import resolve_renderer

        self.renderer = resolve_renderer(self.backend, self.requested)
        self.categories = self.scenario.categories() if self.scenario is not None else categories(self.loaded)

    def task(self) -> ImageTask:
        """What each shard runs."""
        return ImageTask(
            source=SpecSource.of(self.loaded),
            backend=self.backend,
            renderer=self.renderer,
            categories=tuple(self.categories),
            outputs=self.loaded.spec.outputs.model_dump(),
            scenario=self.scenario_source,
        )

    def packages(self) -> Sequence[str]:
        """The packages whose versions shape the images and labels."""
        return KEY_PACKAGES

    def dataset_fields(self, done: Finished) -> dict[str, Any]:
        """The spec, its hash, the seed, the plan, backend and renderer, camera convention, categories and files."""
        loaded, plan, outputs = self.loaded, done.plan, self.loaded.spec.outputs
        ran = sorted({r.renderer for r in done.results if r.renderer}) or [
            _previous_renderer(done.layout) or self.renderer
        ]
        files = {"coco": COCO_FILE} if outputs.coco else {}
        return {
            "spec_name": loaded.spec.name,
            "spec_source": str(loaded.source) if loaded.source else None,
            "spec_sha256": loaded.digest(),
            "spec": loaded.resolved(),
            # --resolution rewrote the camera of the spec above (and its hash); the file is spec_source.
            "resolution_override": [int(v) for v in self.resolution] if self.resolution is not None else None,
            "spec_base_dir": str(loaded.base_dir) if loaded.base_dir else None,
            "asset_roots": [str(r) for r in loaded.roots],
            "seed": done.config.seed,
            "n_frames": plan.n_frames,
            "frames_per_scene": plan.frames_per_scene,
            "n_scenes": plan.n_scenes,
            "backend": loaded.spec.backend,
            "renderer": ran[0] if len(ran) == 1 else "+".join(ran),
            "renderer_requested": self.requested,
            "camera_convention": CAMERA_CONVENTION,
            "categories": [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(self.categories)],
            "counts": {},  # what the writers count (COCO: images, annotations ...), filled in as they finish
            "files": {
                **files,
                "manifest": MANIFEST_FILE,
                **{k: f"{v}/" for k, v in FRAME_DIRS.items() if getattr(outputs, k)},
            },
            # What COCO's images[].file_name names: the RGB, or with outputs.rgb off the depth (else instance) PNG.
            "coco_images": coco_image_kind(outputs),
            **({"scenario": self.scenario_record(done)} if self.scenario is not None else {}),
        }

    def scenario_record(self, done: Finished) -> dict[str, Any]:
        """dataset.json's ``scenario``: its sections, hash, design, and the ``require`` rejection statistics.

        The statistics are rebuilt from ``manifest.jsonl`` (merged before this is called), which holds every
        attempt's results, so a resumed run reports what one uninterrupted run does.
        """
        from simgen.scenarios.engine import rejection_from_manifest

        scenario = self.scenario
        assert scenario is not None  # only called for a scenario
        design = scenario.design(done.config.seed)
        record: dict[str, Any] = {
            "source": scenario.label,
            "sections": scenario.to_json(),
            "sha256": scenario.digest(),
            "design": design.to_json() if design is not None else None,
        }
        if scenario.require is not None:
            names = [c.name for c in scenario.require.constraints]
            stats = rejection_from_manifest(done.layout.root / MANIFEST_FILE, names)
            record["rejection"] = stats.to_json()
        return record


def _previous_renderer(layout: Layout) -> str | None:
    previous = simgen_record(layout.root / DATASET_FILE, DATASET_KEYS)  # None when damaged: it is rebuilt
    renderer = previous.get("renderer") if previous else None
    return renderer if isinstance(renderer, str) else None
