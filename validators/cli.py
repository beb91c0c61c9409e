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
        Path,
        typer.Argument(
            metavar="SYN", help="Synthetic data: a simgen output, COCO or images, a table (.csv, .parquet) or .jsonl."
        ),
    ],
    real: Annotated[
        Path,
        typer.Option("--real", metavar="REAL", help="The real data: COCO or images; a table; or text seeds (.jsonl)."),
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
    holdout: Annotated[
        Path | None,
        typer.Option(metavar="HOLDOUT", help="Real data the generator never saw: privacy (and table utility) need it."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="Tables: the column TSTR/TRTR predicts.")] = None,
    task: Annotated[
        str | None, typer.Option(help="Tables: classification or regression (default: from the target's type).")
    ] = None,
    metadata: Annotated[Path | None, typer.Option(help="Tables: a YAML file of column type overrides.")] = None,
    max_rows: Annotated[int | None, typer.Option(min=2, help="Tables: at most this many rows per table.")] = None,
    text_field: Annotated[
        str, typer.Option("--field", help="Text: prompt, all, instruction, input, output or caption.")
    ] = "prompt",
) -> None:
    """Measure how far SYN is from REAL: images, tables or text (detected), with a report.json and report.html.

    Images: FID, KID, MMD, PRDC with CIs, TSTR vs TRTR, the labels, and the memorisation check.

    Tables: fidelity (SDMetrics' quality score), utility (--target, with --holdout), privacy (with --holdout).

    Text: diversity, novelty and copies against the seeds (REAL), lengths, types and critic scores.
    """
    try:
        from simgen.validators.detect import detect_modality

        modality = detect_modality(synthetic)
        for flag, path in (("--real", real), ("--holdout", holdout)):
            if path is not None and (other := detect_modality(path)) != modality:
                raise SimgenError(f"{synthetic} holds {modality} but {flag} {path} holds {other}")
        table_only = [f for f, v in (("--target", target), ("--task", task), ("--metadata", metadata),
                                     ("--max-rows", max_rows)) if v is not None]  # fmt: skip
        if modality != "tables" and table_only:
            raise SimgenError(f"{', '.join(table_only)}: for tables only; {synthetic} holds {modality}")
        if modality == "text" and holdout is not None:
            raise SimgenError(f"--holdout: not used for text; {synthetic} holds text (REAL is the seeds)")
        if modality == "tables":
            _validate_tables(synthetic, real, holdout, report_dir, target=target, task=task, metadata=metadata,
                             seed=seed, n_boot=n_boot, max_rows=max_rows)  # fmt: skip
            return
        if modality == "text":
            _validate_text(synthetic, real, report_dir, field=text_field, seed=seed)
            return
    except SimgenError as exc:
        print_error(exc)
        raise typer.Exit(2) from None
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
                holdout=holdout,
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
    p = report.privacy
    if p.get("flagged"):
        out.print(f"privacy: [red]flagged[/] ({escape('; '.join(p['flags']))})")
    elif "exact_copy_share" in p:
        out.print(f"privacy: [green]no sign of memorisation[/] (exact copies {p['exact_copy_share']['value']:.3f})")
    for w in report.warnings:
        out.print(f"[yellow]warning:[/] {escape(w)}")
    out.print(f"report: {html_path} and {json_path}")
    if strict and report.n_label_problems:
        raise typer.Exit(1)


def _metric_table(title: str, metrics: dict[str, dict], level: float | None = 0.95) -> Table:
    table = Table(title=title)
    for col in ("metric", "value", f"{100 * level:.0f}% CI" if level else "seeds", ""):
        table.add_column(col)
    for name, m in metrics.items():
        if level:
            ci = f"[{m['ci'][0]:.4g}, {m['ci'][1]:.4g}]" if m.get("n_boot") else ""
        else:
            ci = "" if m.get("real") is None else f"{m['real']:.4g}"
        value = "n/a" if m["value"] is None else f"{m['value']:.4g}"
        table.add_row(name, value, ci, "higher is better" if m["higher_is_better"] else "lower is better")
    return table


def _validate_tables(synthetic: Path, real: Path, holdout: Path | None, report_dir: Path, **options: object) -> None:
    from simgen.validators.report import write_report
    from simgen.validators.tables import validate_tables

    with err.status("validating tables..."):
        report = validate_tables(synthetic, real, holdout, **options)  # type: ignore[arg-type]
        json_path, html_path = write_report(report, report_dir)
    out.print(_metric_table(f"{synthetic} vs {real} (tables)", report.metrics, report.settings["level"]))
    u = report.utility
    if "tstr" in u:
        k = u["primary"]
        out.print(f"utility ({u['task']} of {escape(u['target'])}) {k}: TSTR {u['tstr'][k]:.3f}, "
                  f"TRTR {u['trtr'][k]:.3f}, ratio {u['ratio'][k]:.3f}")  # fmt: skip
    for w in report.warnings:
        out.print(f"[yellow]warning:[/] {escape(w)}")
    out.print(f"report: {html_path} and {json_path}")


def _validate_text(synthetic: Path, real: Path, report_dir: Path, **options: object) -> None:
    from simgen.validators.report import write_report
    from simgen.validators.text_report import validate_text_dataset

    with err.status("validating text..."):
        report = validate_text_dataset(synthetic, real, **options)  # type: ignore[arg-type]
        json_path, html_path = write_report(report, report_dir)
    out.print(_metric_table(f"{synthetic} vs {real} (text)", report.section["metrics"], None))
    priv = report.section["privacy"]
    if priv:
        colour = "green" if not (priv["exact"] or priv["near"]) else "red"
        out.print(f"privacy: [{colour}]{priv['exact']} exact and {priv['near']} near-verbatim copies of a seed[/]")
    for w in report.warnings:
        out.print(f"[yellow]warning:[/] {escape(w)}")
    out.print(f"report: {html_path} and {json_path}")


def register(app: typer.Typer) -> None:
    """Add the ``validate`` command to simgen's typer app."""
    app.command("validate")(validate)
