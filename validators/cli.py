"""``simgen validate SYN --real REAL``: a thin command-line layer over ``validate`` (``validate_datasets``).

Nothing heavy is imported at module import: ``simgen --help`` stays fast and works without torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from simgen.console import err, out, print_error
from simgen.errors import SimgenError

__all__ = ["register"]

log = logging.getLogger(__name__)


def validate(
    synthetic: Annotated[
        Path, typer.Argument(metavar="SYN", help="The synthetic dataset (a simgen output folder, COCO or images).")
    ],
    real: Annotated[
        Path, typer.Option("--real", metavar="REAL", help="The real dataset: COCO (folder or .json) or images.")
    ],
    report_dir: Annotated[Path, typer.Option("-o", "--out", help="Folder for report.json and report.html.")] = Path(
        "validation"
    ),
    extractor: Annotated[
        str, typer.Option(help="inception, efficientnet-lite0, a TorchScript file, or package.module:factory.")
    ] = "inception",
    inception_weights: Annotated[
        Path | None, typer.Option(help="Inception weights: TorchScript (default_1.pt) or a torch-fidelity .pth.")
    ] = None,
    utility: Annotated[str, typer.Option(help="TSTR/TRTR task: crops, detection or none.")] = "crops",
    crop_mode: Annotated[str, typer.Option(help="crops: probe (frozen features) or finetune.")] = "probe",
    detector: Annotated[str, typer.Option(help="detection: a torchvision detector name.")] = (
        "fasterrcnn_mobilenet_v3_large_320_fpn"
    ),
    iterations: Annotated[int, typer.Option(min=1, help="detection: training steps per model.")] = 2000,
    max_images: Annotated[int | None, typer.Option(min=2, help="At most this many images per side.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every random draw.")] = 0,
    n_boot: Annotated[int, typer.Option(min=1, help="Bootstrap resamples per metric.")] = 50,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 16,
    device: Annotated[str, typer.Option(help="Torch device (cpu, cuda).")] = "cpu",
    cache: Annotated[bool, typer.Option(help="Use the per-dataset feature cache.")] = True,
    strict: Annotated[bool, typer.Option(help="Exit with code 1 when the label validator finds problems.")] = False,
) -> None:
    """Measure how far SYN is from REAL (FID, KID, MMD, PRDC with CIs), TSTR vs TRTR, and check the labels."""
    try:
        from simgen.validators.pipeline import ValidateConfig
        from simgen.validators.pipeline import validate as run_validation
        from simgen.validators.report import write_report

        if crop_mode not in ("probe", "finetune"):
            raise typer.BadParameter(f"expected probe or finetune, got '{crop_mode}'", param_hint="--crop-mode")
        options: dict[str, object] = {}
        if utility == "crops":
            options = {"mode": crop_mode}
        elif utility == "detection":
            options = {"detector": detector, "iterations": iterations}
        with err.status("validating...") as status:

            def progress(side: str, done: int, total: int) -> None:
                status.update(f"{side} features: {done}/{total} images")

            config = ValidateConfig(
                extractor=extractor, inception_weights=inception_weights, utility=utility, utility_options=options,
                max_images=max_images, seed=seed, n_boot=n_boot, batch_size=batch_size, device=device, cache=cache,
            )  # fmt: skip
            report = run_validation(synthetic, real, config, progress=progress)
            json_path, html_path = write_report(report, report_dir)
    except SimgenError as exc:
        print_error(exc)
        raise typer.Exit(2) from None

    table = Table(title=f"{synthetic} vs {real} ({report.extractor})")
    for col in ("metric", "value", f"{100 * report.settings['level']:.0f}% CI", ""):
        table.add_column(col)
    for name, m in report.metrics.items():
        table.add_row(name, f"{m['value']:.4g}", f"[{m['ci'][0]:.4g}, {m['ci'][1]:.4g}]",
                      "higher is better" if m["higher_is_better"] else "lower is better")  # fmt: skip
    out.print(table)
    u = report.utility
    if "tstr" in u:
        for key in u["tstr"]["overall"]:
            out.print(f"utility ({u['task']}) {key}: TSTR {u['tstr']['overall'][key]:.3f}, "
                      f"TRTR {u['trtr']['overall'][key]:.3f}, gap {u['gap']['overall'][key]:+.3f}")  # fmt: skip
    for side, info in report.labels.items():
        if info.get("checked"):
            kinds = ", ".join(f"{k} {v}" for k, v in info["by_kind"].items())
            colour = "green" if info["n_problems"] == 0 else "red"
            out.print(f"labels ({side}): [{colour}]{info['n_problems']} problems[/]" + (f" ({kinds})" if kinds else ""))
    for w in report.warnings:
        out.print(f"[yellow]warning:[/] {escape(w)}")
    out.print(f"report: {html_path} and {json_path}")
    if strict and report.n_label_problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``validate`` command to simgen's typer app."""
    app.command("validate")(validate)
