"""The ``simgen refine`` command: a thin typer layer over :func:`simgen.refine.refine_dataset`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def refine(
    out: Annotated[Path, typer.Argument(help="A generated dataset folder.")],
    model: Annotated[
        str | None, typer.Option(help="Base model: hub id or local folder [default: black-forest-labs/FLUX.1-dev].")
    ] = None,
    controlnet: Annotated[
        list[str] | None,
        typer.Option(help="ControlNet hub id or folder; once per control, or one union ControlNet for canny+depth."),
    ] = None,
    control: Annotated[str, typer.Option(help="canny, depth or canny+depth.")] = "canny",
    pipeline: Annotated[str, typer.Option(help="flux, sd (Stable Diffusion, smaller GPUs) or auto.")] = "auto",
    strength: Annotated[float, typer.Option(help="How far from the render, in (0, 1]; 1 = from controls only.")] = 0.5,
    steps: Annotated[int, typer.Option(help="Denoising steps.")] = 28,
    guidance: Annotated[float, typer.Option(help="Guidance scale.")] = 3.5,
    controlnet_scale: Annotated[float, typer.Option(help="ControlNet conditioning scale.")] = 0.6,
    seed: Annotated[int, typer.Option(help="Refinement seed; frame i uses a generator seeded from (seed, i).")] = 0,
    prompt_template: Annotated[
        str, typer.Option(help="Prompt; fields {categories} {category_list} {n_objects} {frame} {scene}.")
    ] = "a photo of {categories} on a table",
    batch_size: Annotated[int, typer.Option(help="Frames per pipeline call.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cuda or cpu.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, bfloat16, float16 or float32.")] = "auto",
    cpu_offload: Annotated[bool, typer.Option(help="Offload idle sub-models to CPU memory (needs CUDA).")] = False,
    max_sequence_length: Annotated[int, typer.Option(help="T5 prompt tokens (FLUX).")] = 512,
    canny_low: Annotated[int, typer.Option(help="Canny lower threshold of the control image.")] = 100,
    canny_high: Annotated[int, typer.Option(help="Canny upper threshold of the control image.")] = 200,
    on_mismatch: Annotated[
        str,
        typer.Option(
            help="reject: leave frames whose labels no longer match out of the refined COCO; flag: mark them."
        ),
    ] = "reject",
    min_object_score: Annotated[float, typer.Option(help="Outline score an object needs (0..1).")] = 0.5,
    min_frame_score: Annotated[float, typer.Option(help="Pooled outline score a frame needs (0..1).")] = 0.7,
    tolerance: Annotated[float, typer.Option(help="Edge match tolerance in pixels.")] = 3.0,
    require_verified: Annotated[
        bool, typer.Option(help="Fail objects too small or low-contrast to verify, instead of reporting them.")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Refine only the first N frames.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier refinement of OUT.")] = False,
) -> None:
    """Make renders look real with a diffusion ControlNet, and check that every label still matches."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from simgen.refine.check import CheckConfig
    from simgen.refine.run import refine_dataset
    from simgen.refine.settings import RefineSettings

    settings = RefineSettings(
        model=model, controlnet=tuple(controlnet or ()), control=control, pipeline=pipeline, strength=strength,
        steps=steps, guidance=guidance, controlnet_scale=controlnet_scale, seed=seed, prompt_template=prompt_template,
        batch_size=batch_size, device=device, dtype=dtype, cpu_offload=cpu_offload,
        max_sequence_length=max_sequence_length, canny_low=canny_low, canny_high=canny_high,
    )  # fmt: skip
    try:
        check = CheckConfig(
            tolerance_px=tolerance, min_object_score=min_object_score, min_frame_score=min_frame_score,
            require_verified=require_verified,
        )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    from simgen.console import err as console

    with Progress(
        TextColumn("[bold]refine"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("frames", total=None)
        result = refine_dataset(
            out, settings, check=check, on_mismatch=on_mismatch, overwrite=overwrite, limit=limit,  # type: ignore[arg-type]
            progress=lambda k: bar.advance(task, k),
        )  # fmt: skip
    f, o = result.summary["frames"], result.summary["objects"]
    console.print(
        f"[green]refined[/] {f['total']} frames of {out}: {f['accepted']} accepted, {f['flagged']} flagged, "
        f"{f['rejected']} rejected; objects {o['pass']} pass, {o['fail']} fail, {o['unverified']} unverified; "
        f"{result.summary['seconds_per_frame']['refine']:.2f} s/frame"
    )
    console.print(f"refined COCO: {result.coco}")
    typer.echo(json.dumps(result.summary))


def register(app: typer.Typer) -> None:
    """Add the ``refine`` command to the ``simgen`` app.

    Args:
        app: The root typer app.
    """
    app.command(name="refine")(refine)
