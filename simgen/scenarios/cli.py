"""The scenario commands: ``simgen coverage`` and ``simgen ideate``, thin layers over the library.

``coverage`` wraps :func:`simgen.scenarios.report.dataset_coverage`; ``ideate`` wraps
:func:`simgen.scenarios.ideation.ideate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["coverage", "ideate", "register"]


def coverage(
    dataset: Annotated[Path, typer.Argument(help="A dataset folder rendered from a scenario file.")],
) -> None:
    """Write OUT/coverage.json and OUT/coverage.html: cells covered, pairwise coverage, acceptance per constraint."""
    from rich.markup import escape

    from simgen.console import out as console
    from simgen.scenarios.report import coverage_line, dataset_coverage

    written = dataset_coverage(dataset)
    console.print(escape(coverage_line(written.report)))
    console.print(f"[green]wrote[/] {escape(str(written.json_path))} and {escape(str(written.html_path))}")


def ideate(
    base_spec: Annotated[Path, typer.Argument(help="The base scene spec (or scenario) file.")],
    goal: Annotated[str, typer.Option(help="What to find failure cases for.")] = "",
    n: Annotated[int, typer.Option("-n", "--proposals", min=1, max=200, help="Proposals to request.")] = 12,
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder for the scenarios.")] = Path("scenarios"),
    model: Annotated[str, typer.Option(help="Anthropic model (with ANTHROPIC_API_KEY).")] = "claude-sonnet-4-5",
    repairs: Annotated[int, typer.Option(min=0, max=10, help="Repair rounds per invalid proposal.")] = 2,
    probe_frames: Annotated[int, typer.Option(min=1, max=64, help="Probe frames per proposal.")] = 4,
    probe_width: Annotated[int, typer.Option(min=16, max=1024, help="Probe width in px (base aspect kept).")] = 96,
    vision_critic: Annotated[bool, typer.Option(help="Let the model score each probe preview.")] = False,
    min_score: Annotated[int, typer.Option(min=0, max=10, help="Lowest vision score kept.")] = 5,
    min_acceptance: Annotated[float, typer.Option(min=0.0, max=1.0, help="Lowest probe acceptance kept.")] = 0.1,
    from_report: Annotated[
        Path | None, typer.Option(help="A `simgen validate` report.json: aim at its weakest classes.")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the probes and the offline ideator.")] = 0,
    asset_root: Annotated[list[Path] | None, typer.Option(help="Extra folder assets may come from.")] = None,
    offline: Annotated[bool, typer.Option(help="Use the offline ideator even with a key.")] = False,
    max_retries: Annotated[int, typer.Option(min=0, max=20, help="Retries on 429, 5xx and timeouts.")] = 4,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds per HTTP attempt.")] = 120.0,
    max_requests: Annotated[int | None, typer.Option(min=0, help="Paid requests this run may make.")] = None,
) -> None:
    """Propose edge-case scenarios of BASE_SPEC; validate, repair, probe-render and criticise them; keep the best.

    An Anthropic model proposes them when ANTHROPIC_API_KEY is set (ANTHROPIC_BASE_URL: another endpoint).

    Without a key, a built-in combinatorial ideator does. Writes OUT/<name>.yaml and OUT/ideation.jsonl.
    """
    from rich.markup import escape

    from simgen.console import err as status_console
    from simgen.console import out as console
    from simgen.scenarios.ideation import IdeateConfig
    from simgen.scenarios.ideation import ideate as run_ideate

    config = IdeateConfig(
        goal=goal, n=n, model=model, repairs=repairs, probe_frames=probe_frames, probe_width=probe_width,
        vision_critic=vision_critic, min_score=min_score, from_report=from_report, seed=seed,
        asset_roots=tuple(asset_root or ()), min_acceptance=min_acceptance, offline=True if offline else None,
        max_retries=max_retries, timeout_s=timeout, max_requests=max_requests,
    )  # fmt: skip
    result = run_ideate(base_spec, out, config)
    for note in result.notes:
        status_console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(escape(summary_table(result.summary, result.model)))
    for path in result.accepted:
        console.print(f"[green]wrote[/] {escape(str(path))}")
    console.print(f"[green]wrote[/] {escape(str(out / 'ideation.jsonl'))}")


def summary_table(summary: dict[str, int], model: str) -> str:
    """The summary as plain text, at most 60 columns wide (readable at 80)."""
    rows = [
        ("proposed", summary.get("proposed", 0)),
        ("valid", summary.get("valid", 0)),
        ("  valid after repair", summary.get("valid_after_repair", 0)),
        ("refused by the model", summary.get("refused", 0)),
        ("invalid after repairs", summary.get("invalid", 0)),
        ("duplicates", summary.get("duplicates", 0)),
        ("rejected by a critic", summary.get("rejected_by_critic", 0)),
        ("accepted", summary.get("accepted", 0)),
    ]
    title = f"ideation summary ({model})"
    lines = [title[:60], "-" * 32]
    lines += [f"{name:<24}{count:>8}" for name, count in rows]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the ``coverage`` and ``ideate`` commands to the ``simgen`` app.

    Args:
        app: The root typer app.
    """
    from simgen.cli import clean_errors

    app.command(name="coverage")(clean_errors(coverage))
    app.command(name="ideate")(clean_errors(ideate))
