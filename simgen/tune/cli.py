"""``simgen tune SPEC --real REAL``: a thin command-line layer over :func:`simgen.tune.study.tune`.

Nothing heavy is imported at module import: ``simgen --help`` stays fast and works without optuna or torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from simgen.console import err, out, print_error
from simgen.errors import SimgenError

__all__ = ["register"]

log = logging.getLogger(__name__)


def tune(
    spec: Annotated[Path, typer.Argument(help="The scene spec to tune (YAML or JSON).")],
    real: Annotated[
        Path, typer.Option("--real", metavar="REAL", help="A small labeled real set: COCO folder or .json file.")
    ],
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Output folder (a rerun resumes it).")] = Path("tuned"),
    budget: Annotated[int, typer.Option(min=0, help="Trials in the study in all, the spec as written included.")] = 40,
    frames: Annotated[int, typer.Option(min=1, help="Frames per generated dataset.")] = 120,
    resolution: Annotated[str, typer.Option(help="WIDTHxHEIGHT of the generated datasets.")] = "320x240",
    seed: Annotated[int, typer.Option(min=0, help="Seed of the split, the study, the datasets, the bootstraps.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes per generate.")] = 1,
    renderer: Annotated[str, typer.Option(help="auto, egl or tiny.")] = "auto",
    attribute: Annotated[
        bool, typer.Option("--attribute", help="Run no new trials: attribute and report on the best spec so far.")
    ] = False,
    attribution_seeds: Annotated[int, typer.Option(min=0, help="Seeds per ablated spec (0 skips).")] = 3,
    eval_seeds: Annotated[int, typer.Option(min=1, help="Seeds per spec in the held-out comparison.")] = 3,
    holdout: Annotated[float, typer.Option(help="Fraction of the real images held out for the final report.")] = 0.3,
    extractor: Annotated[
        str, typer.Option(help="efficientnet-lite0, inception, a TorchScript file, or package.module:factory.")
    ] = "efficientnet-lite0",
    crop_size: Annotated[int, typer.Option(min=16, help="Side of the crops fed to the extractor.")] = 128,
    window: Annotated[
        float, typer.Option(help="Search each number from value/W to value*W inside its bounds (0: whole bounds).")
    ] = 4.0,
    add: Annotated[
        list[str] | None, typer.Option(help="A randomizer the spec does not list, to try too (off as written).")
    ] = None,
    n_boot: Annotated[int, typer.Option(min=10, help="Bootstrap resamples.")] = 1000,
    keep_datasets: Annotated[
        bool, typer.Option(help="Keep every generated dataset (default: removed once scored).")
    ] = False,
    asset_root: Annotated[list[Path] | None, typer.Option(help="Extra folder assets may come from.")] = None,
    runner: Annotated[str, typer.Option(help="local (process pool) or ray, for each generate.")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --runner ray).")] = None,
    device: Annotated[str, typer.Option(help="Torch device for the features (cpu, cuda).")] = "cpu",
) -> None:
    """Tune SPEC's randomizers against REAL, attribute their effects, and compare on held-out real images."""
    from simgen.cli import _parse_resolution

    size = _parse_resolution(resolution)
    if not 0.0 < holdout < 1.0:
        raise typer.BadParameter(f"expected a fraction in (0, 1), got {holdout}", param_hint="--holdout")
    if window != 0 and window <= 1:
        raise typer.BadParameter(
            f"expected a factor > 1, or 0 for the whole bounds, got {window}", param_hint="--window"
        )
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # its per-trial lines; ours say the same, shorter
    except ImportError:
        pass  # tune() raises DependencyMissing naming the extra
    try:
        from simgen.tune.study import tune as run_tune

        with err.status("tuning...") as status:

            def progress(message: str) -> None:
                err.print(escape(message))
                status.update(escape(message))

            result = run_tune(
                spec, real, out_dir, search=not attribute, progress=progress, budget=budget, frames=frames,
                resolution=size, seed=seed, workers=workers, renderer=renderer, holdout=holdout,
                extractor=extractor, crop_size=crop_size, window=window or None,
                add_randomizers=add or [], attribution_seeds=attribution_seeds,
                eval_seeds=eval_seeds, n_boot=n_boot, keep_datasets=keep_datasets, asset_roots=asset_root or [],
                runner=runner, ray_address=address, device=device,
            )  # fmt: skip
    except SimgenError as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    except KeyboardInterrupt as exc:
        print_error(f"interrupted; rerun the same command to resume from {out_dir / 'study.db'}")
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    effects = result.report["attribution"]["effects"]
    if effects:
        out.print("[bold]attribution[/] (with minus without each randomizer, on the tuning part):")
        for effect in effects:
            out.print(f"  {escape(effect['line'])}")
    colour = "green" if result.verdict.startswith("gain") else "yellow"
    out.print(f"[{colour}]{escape(result.verdict)}[/]")
    roots = "".join(f" --asset-root {r}" for r in result.asset_roots)
    out.print(f"best spec: {result.best_yaml}; report: {result.report_html} and {result.report_json}")
    out.print(f"next: simgen generate {result.best_yaml}{roots} -n 1000 -o out/tuned, then simgen validate it")


def register(app: typer.Typer) -> None:
    """Add the ``tune`` command to simgen's typer app."""
    app.command("tune")(tune)
