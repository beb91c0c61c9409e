"""Generate an image dataset: the public ``generate`` call, a thin layer over the one run loop.

``generate(spec, out, n_frames=..., seed=..., ...)`` keeps its keyword interface; it builds a
:class:`~simgen.engine.run.RunConfig` and an :class:`~simgen.engine.images.ImageModality` and runs them with
:func:`~simgen.engine.run.run_dataset`. :func:`generate_images` takes the config objects directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simgen.engine.images import KEY_PACKAGES, ImageModality, categories, with_resolution
from simgen.engine.run import SHARDS_PER_WORKER, RunConfig, run_dataset
from simgen.spec.loader import LoadedSpec, load_spec

__all__ = [
    "KEY_PACKAGES",
    "SHARDS_PER_WORKER",
    "GenerateResult",
    "ImageOptions",
    "categories",
    "generate",
    "generate_images",
]


@dataclass
class GenerateResult:
    """Summary of a generate call."""

    out: Path
    n_frames: int
    made: int
    reused: int
    renderer: str
    seconds: float
    dataset: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ImageOptions:
    """What an image run needs besides its :class:`~simgen.engine.run.RunConfig`.

    Attributes:
        renderer: ``auto``, or one of the backend's renderers (PyBullet: ``egl``, ``tiny``).
        resolution: ``(width, height)`` overriding the spec's camera.
        asset_roots: Extra folders assets may come from (when the spec is a file).
    """

    renderer: str = "auto"
    resolution: tuple[int, int] | None = None
    asset_roots: Sequence[str | Path] = ()


def generate_images(
    spec: str | Path | LoadedSpec,
    config: RunConfig,
    options: ImageOptions | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> GenerateResult:
    """Generate ``config.n_records`` labeled frames of a scene spec into ``config.out`` (see :func:`generate`)."""
    options = options or ImageOptions()
    modality = _scenario_modality(spec, options)
    if modality is not None:
        loaded = modality.loaded
    else:
        loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec, asset_roots=options.asset_roots)
        if options.resolution is not None:
            loaded = with_resolution(loaded, options.resolution)
        modality = ImageModality(loaded, renderer=options.renderer, resolution=options.resolution)
    spec_file = Path(loaded.source) if loaded.source else None
    result = run_dataset(modality, config, progress=progress, spec_file=spec_file)
    dataset = result.dataset
    return GenerateResult(
        result.out, result.n_records, result.made, result.reused, dataset["renderer"], result.seconds, dataset
    )


def _scenario_modality(spec: str | Path | LoadedSpec, options: ImageOptions) -> ImageModality | None:
    """The modality of a scenario file (one with ``factors``, ``design``, ``require`` or ``timeline``), else None.

    ``--resolution`` is written into the file's camera before the scenario is loaded (factors cannot write the
    camera's size, so every cell gets it).

    Raises:
        SpecError: The scenario is invalid (see :func:`simgen.scenarios.load_scenario`).
        SimgenError: ``--resolution`` with explicit camera intrinsics.
    """
    if isinstance(spec, LoadedSpec):
        return None
    from simgen.errors import SimgenError
    from simgen.scenarios import load_scenario
    from simgen.scenarios.engine import ScenarioSource, is_scenario
    from simgen.spec import read_spec_file

    data = read_spec_file(spec)
    if not is_scenario(data):
        return None
    # Validated from the file first, so every error names it; then as the workers will load it.
    load_scenario(spec, asset_roots=options.asset_roots)
    if options.resolution is not None:
        camera = dict(data.get("camera") or {})
        if camera.get("intrinsics") is not None:
            raise SimgenError("--resolution cannot rescale explicit camera.intrinsics; edit the spec instead")
        camera["width"], camera["height"] = int(options.resolution[0]), int(options.resolution[1])
        data = {**data, "camera": camera}
    source = ScenarioSource(data, str(Path(spec).parent), tuple(str(r) for r in options.asset_roots), source=str(spec))
    scenario = source.load()
    return ImageModality(
        scenario.base,
        renderer=options.renderer,
        resolution=options.resolution,
        scenario=scenario,
        scenario_source=source,
    )


def generate(
    spec: str | Path | LoadedSpec,
    out: str | Path,
    *,
    n_frames: int,
    seed: int = 0,
    workers: int = 1,
    renderer: str = "auto",
    resolution: tuple[int, int] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    shard_frames: int | None = None,
    asset_roots: Sequence[str | Path] = (),
    runner: str = "local",
    ray_address: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> GenerateResult:
    """Generate ``n_frames`` labeled frames of a scene spec into ``out``.

    Frame i depends only on ``(spec, seed, i)``: the output is byte-identical whatever ``workers``,
    ``shard_frames`` or runner, and a killed run resumed with ``resume=True`` ends identical too.

    Args:
        spec: A spec file or a loaded spec.
        out: Output folder; must be empty unless ``resume`` or ``overwrite``.
        n_frames: Frames to render.
        seed: Dataset seed.
        workers: Worker processes.
        renderer: ``auto``, or one of the backend's renderers (PyBullet: ``egl``, ``tiny``).
        resolution: ``(width, height)`` overriding the spec's camera.
        resume: Continue a run in ``out``, or repair a finished one: every recorded checksum is checked
            (as ``verify`` does) and exactly the missing or damaged frames are redone; the dataset-level
            files (COCO, manifest, YOLO/BOP files, dataset.json) are always rebuilt.
        overwrite: Delete a previous simgen run in ``out`` first: only the files simgen's own records
            list; refused (nothing deleted) when ``out`` holds anything else or is a symbolic link.
        shard_frames: About how many frames each shard holds (rounded to whole scenes). By default at
            most 64, and small enough that every worker gets sixteen shards; a resumed run keeps the
            size its first run chose.
        asset_roots: Extra folders assets may come from.
        runner: ``local`` (process pool) or ``ray``.
        ray_address: With ``runner="ray"``, a running cluster's address; None starts a local one with
            ``workers`` CPUs.
        progress: Called with the number of newly finished frames.

    Returns:
        A summary with the dataset record; ``made`` frames were rendered by this call and ``reused`` kept.

    Raises:
        OutputExistsError: ``out`` cannot be started, resumed or overwritten (see above).
        SimgenError: ``resume`` and ``overwrite`` together, bad counts, or ``outputs`` with no image.
    """
    config = RunConfig(
        out=Path(out),
        n_records=n_frames,
        seed=seed,
        workers=workers,
        resume=resume,
        overwrite=overwrite,
        shard_records=shard_frames,
        runner=runner,
        ray_address=ray_address,
    )
    options = ImageOptions(renderer=renderer, resolution=resolution, asset_roots=asset_roots)
    return generate_images(spec, config, options, progress=progress)
