"""``simgen mix REAL SYN -o OUT --real-fraction 0.1``: a thin typer layer over :func:`simgen.mix.mix`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simgen.mix.core import DEFAULT_MIN_REAL_FRACTION


def mix_command(
    real: Annotated[Path, typer.Argument(help="Real data: COCO JSON or folder, CSV/Parquet table, JSONL records.")],
    synthetic: Annotated[Path, typer.Argument(metavar="SYN", help="Synthetic data of the same kind.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="New dataset folder.")],
    real_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of real records (the mix never has fewer).")
    ] = 0.1,
    seed: Annotated[int, typer.Option(min=0, help="Chooses the records and their order.")] = 0,
    total: Annotated[
        int | None, typer.Option(min=1, help="Records in the mix (default: every synthetic one, plus real).")
    ] = None,
    min_real_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Refuse a mix with a lower real fraction.")
    ] = DEFAULT_MIN_REAL_FRACTION,
    allow_below_minimum: Annotated[
        bool, typer.Option("--allow-below-minimum", help="Mix even below --min-real-fraction.")
    ] = False,
    syn_generation: Annotated[
        int, typer.Option(min=0, help="Generation of synthetic records that do not record one.")
    ] = 0,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a previous simgen dataset in OUT (only files simgen recorded).")
    ] = False,
) -> None:
    """Mix real and synthetic data into OUT; every record keeps its origin, generation and source."""
    from simgen.console import err as console
    from simgen.mix import mix

    result = mix(real, synthetic, out, real_fraction=real_fraction, seed=seed, total=total,
                 min_real_fraction=min_real_fraction, allow_below_minimum=allow_below_minimum,
                 synthetic_generation=syn_generation, overwrite=overwrite)  # fmt: skip
    mixed = result.dataset["mix"]
    console.print(
        f"[green]mixed[/] {result.counts.total} {result.modality} records into {result.out}: "
        f"{mixed['n_real']} real, {mixed['n_synthetic']} synthetic (real fraction "
        f"{mixed['real_fraction_achieved']:.3f})",
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add the ``mix`` command to the ``simgen`` app.

    Args:
        app: The root typer app.
    """
    from simgen.cli import clean_errors  # simgen.cli calls this once clean_errors is defined

    app.command(name="mix")(clean_errors(mix_command))
