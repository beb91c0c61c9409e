"""``simgen tabular fit | sample | generate``: a thin typer layer over :mod:`simgen.generators.tabular.run`."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from simgen.console import err as console
from simgen.console import print_error

GeneratorOpt = Annotated[
    str | None, typer.Option("--generator", "-g", help="Registered generator (default tabular/gaussian-copula-v2).")
]
MetadataOpt = Annotated[Path | None, typer.Option("--metadata", help="YAML overriding inferred column types.")]
SeedOpt = Annotated[int, typer.Option(min=0, help="Seed.")]
RowsOpt = Annotated[int, typer.Option("-n", "--rows", min=1, help="Rows to sample.")]
WorkersOpt = Annotated[int, typer.Option(min=1, help="Worker processes.")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue, or repair, the run in OUT (rechecks every checksum).")]
OverwriteOpt = Annotated[
    bool, typer.Option(help="Replace a previous simgen run in OUT: removes only files simgen recorded.")
]
ConditionsOpt = Annotated[
    list[str] | None, typer.Option("--conditions", "-c", help="COLUMN=VALUE fixed in every row (repeatable).")
]
BlockOpt = Annotated[int, typer.Option(min=1, help="Rows per block (part of the output's identity).")]
ParquetOpt = Annotated[bool, typer.Option(help="Also write table.parquet (needs pyarrow).")]


def parse_conditions(items: list[str] | None) -> dict[str, Any]:
    """``["label=1", "sex=F"]`` as ``{"label": 1, "sex": "F"}`` (numbers, true/false and empty as None parsed).

    Raises:
        typer.BadParameter: An item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected COLUMN=VALUE, got '{item}'", param_hint="--conditions")
        out[name] = _scalar(raw)
    return out


def _scalar(raw: str) -> Any:
    if raw == "":
        return None
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


@contextmanager
def _bar(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar of blocks on stderr; yields the run loop's ``progress`` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]sample"), BarColumn(), MofNCompleteColumn(), TextColumn("blocks"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("blocks", total=total)
        yield lambda k: bar.update(task, advance=k)


def _sample(model: Path, out: Path, n: int, seed: int, workers: int, resume: bool, overwrite: bool,
            conditions: list[str] | None, rows_per_block: int, parquet: bool) -> None:  # fmt: skip
    from simgen.engine.run import RunConfig
    from simgen.generators.tabular.run import TableModality, sample_table

    if resume and overwrite:
        raise typer.BadParameter("use one of them: --resume keeps the run in OUT, --overwrite replaces it",
                                 param_hint="--resume/--overwrite")  # fmt: skip
    conds = parse_conditions(conditions)
    # A bad model or condition fails in one line before the progress bar draws (the run checks again, cached).
    modality = TableModality(model, n, rows_per_block=rows_per_block, conditions=conds)
    modality.check(RunConfig(out=out, n_records=modality.n_blocks, seed=seed))
    try:
        with _bar(-(-n // rows_per_block)) as progress:
            result = sample_table(
                model, out, n_rows=n, seed=seed, workers=workers, rows_per_block=rows_per_block,
                conditions=conds, parquet=parquet, resume=resume, overwrite=overwrite, progress=progress,
            )  # fmt: skip
    except KeyboardInterrupt as exc:
        print_error("interrupted; rerun with --resume to finish")
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    rate = n / result.seconds if result.seconds > 0 else 0.0
    console.print(
        f"[green]wrote[/] {n} rows to {result.out / 'table.csv'} ({result.made} blocks sampled, "
        f"{result.reused} kept) from {result.dataset.get('generator')} in {result.seconds:.1f} s ({rate:,.0f} rows/s)"
    )


def fit(
    real: Annotated[Path, typer.Argument(help="The real table (CSV or Parquet).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Model folder.")] = Path("model"),
    generator: GeneratorOpt = None,
    metadata: MetadataOpt = None,
    seed: SeedOpt = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace a model already in OUT.")] = False,
) -> None:
    """Fit a tabular generator to REAL and save the model into OUT."""
    from simgen.generators.tabular.run import fit_table

    model = fit_table(real, generator=generator, metadata=metadata, seed=seed)
    digest = model.save(out, overwrite=overwrite)
    console.print(f"[green]fitted[/] {model.generator} on {real} -> {out} (sha256 {digest[:12]})")


def sample(
    model: Annotated[Path, typer.Argument(help="A model folder from `simgen tabular fit`.")],
    n: RowsOpt = 1000,
    out: Annotated[Path, typer.Option("-o", "--out", help="Dataset folder.")] = Path("out/table"),
    seed: SeedOpt = 0,
    workers: WorkersOpt = 1,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    conditions: ConditionsOpt = None,
    rows_per_block: BlockOpt = 1000,
    parquet: ParquetOpt = False,
) -> None:
    """Sample N rows from MODEL into OUT/table.csv (rows/ holds the blocks; `simgen verify OUT` checks them)."""
    _sample(model, out, n, seed, workers, resume, overwrite, conditions, rows_per_block, parquet)


def generate(
    real: Annotated[Path, typer.Argument(help="The real table (CSV or Parquet).")],
    n: RowsOpt = 1000,
    out: Annotated[Path, typer.Option("-o", "--out", help="Dataset folder.")] = Path("out/table"),
    generator: GeneratorOpt = None,
    metadata: MetadataOpt = None,
    seed: SeedOpt = 0,
    workers: WorkersOpt = 1,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    conditions: ConditionsOpt = None,
    rows_per_block: BlockOpt = 1000,
    parquet: ParquetOpt = False,
) -> None:
    """Fit a generator to REAL, then sample N rows into OUT (the model is kept in OUT/model)."""
    from simgen.generators.tabular.run import fit_table

    model = fit_table(real, generator=generator, metadata=metadata, seed=seed)
    # The fit is deterministic, so a resumed run refits the same model (same hash). It is saved outside OUT
    # while sampling (--overwrite clears OUT first) and the dataset keeps its own copy in OUT/model.
    with tempfile.TemporaryDirectory(prefix="simgen-model-") as tmp:
        model.save(tmp, overwrite=True)
        console.print(f"[green]fitted[/] {model.generator} on {real}")
        _sample(Path(tmp), out, n, seed, workers, resume, overwrite, conditions, rows_per_block, parquet)


def register(app: typer.Typer) -> None:
    """Add the ``tabular`` sub-app (fit, sample, generate) to the ``simgen`` app.

    Args:
        app: The root typer app.
    """
    from simgen.cli import clean_errors  # simgen.cli calls this once clean_errors is defined

    tabular_app = typer.Typer(help="Synthetic tables: fit a generator to a real table, sample new rows.",
                              no_args_is_help=True)  # fmt: skip
    for func in (fit, sample, generate):
        tabular_app.command(name=func.__name__)(clean_errors(func))
    app.add_typer(tabular_app, name="tabular")
