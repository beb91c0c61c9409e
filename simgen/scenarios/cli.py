"""The ``simgen coverage`` command: a thin layer over :func:`simgen.scenarios.report.dataset_coverage`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["coverage", "register"]


def coverage(
    dataset: Annotated[Path, typer.Argument(help="A dataset folder rendered from a scenario file.")],
) -> None:
    """Write OUT/coverage.json and OUT/coverage.html: cells covered, pairwise coverage, acceptance per constraint."""
    from rich.markup import escape

    from simgen.console import out as console
    from simgen.scenarios.report import dataset_coverage

    written = dataset_coverage(dataset)
    report = written.report
    cells, tw = report["cells"], report["t_wise"]
    planned = f" of {cells['planned']} planned" if cells.get("planned") is not None else ""
    line = f"{report['frames']} frames in {cells['covered']} cells{planned}"
    if tw.get("percent") is not None:
        line += f"; {tw['strength']}-wise coverage {tw['percent']:.1f}%"
    acceptance = report.get("acceptance") or {}
    if acceptance.get("acceptance_rate") is not None:
        line += f"; acceptance {100 * acceptance['acceptance_rate']:.1f}%"
    console.print(escape(line))
    console.print(f"[green]wrote[/] {escape(str(written.json_path))} and {escape(str(written.html_path))}")


def register(app: typer.Typer) -> None:
    """Add the ``coverage`` command to the ``simgen`` app.

    Args:
        app: The root typer app.
    """
    from simgen.cli import clean_errors

    app.command(name="coverage")(clean_errors(coverage))
