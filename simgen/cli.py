"""The ``simgen`` command line: a thin typer layer over the library API."""

from __future__ import annotations

import functools
import importlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from simgen.console import err as console
from simgen.console import out as out_console
from simgen.console import print_error
from simgen.errors import OutputWriteError, SimgenError

app = typer.Typer(
    name="simgen",
    help="Synthetic perception data: randomized scenes, exact labels, COCO/YOLO/BOP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
list_app = typer.Typer(help="List registered components.", no_args_is_help=True)
app.add_typer(list_app, name="list")
P = ParamSpec("P")
R = TypeVar("R")


def clean_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a SimgenError, or an operating-system error, into one red line and exit code 2, never a traceback.

    The library raises SimgenErrors with context for every failure it foresees; an OSError that still
    reaches here (a read-only or full disk, a path that is a file) is an ordinary I/O failure of the
    user's machine, not a bug, so it gets the same one line naming the path and the reason.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SimgenError as exc:
            print_error(exc)
            raise typer.Exit(2) from None
        except OSError as exc:
            if OutputWriteError.convertible(exc):  # a full or read-only disk: say how to finish the run
                print_error(OutputWriteError.from_os_error(exc))
            else:
                print_error(describe_os_error(exc))
            raise typer.Exit(2) from None

    return wrapper


def describe_os_error(exc: OSError) -> str:
    """``<path>: <reason>`` for an OSError, with the second path of a rename or link when there is one."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(map(str, paths))}: {reason}" if paths else reason


class FrameRate:
    """Frames per second of the frames this run rendered, for the progress bar.

    Frames a resumed run keeps are reported in bursts (a shard's kept frames at once) and rendered
    frames one at a time, so only single-frame advances count; and no rate is shown before a second
    has passed, when two frames finishing together would read as thousands of frames per second.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.start = clock()
        self.rendered = 0

    def advance(self, k: int) -> str:
        """Count an advance of ``k`` frames; return the rate as text (``-`` while unknown)."""
        if k == 1:
            self.rendered += 1
        elapsed = self.clock() - self.start
        if elapsed < 1.0 or self.rendered == 0:
            return "-"
        return f"{self.rendered / elapsed:.1f}"


def _parse_resolution(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected WIDTHxHEIGHT like 640x480, got '{value}'") from None
    if w <= 0 or h <= 0:
        raise typer.BadParameter(f"width and height must be positive, got '{value}'")
    return w, h


@app.command()
@clean_errors
def generate(
    spec: Annotated[Path, typer.Argument(help="Scene spec (YAML or JSON).")],
    n: Annotated[int, typer.Option("-n", "--frames", min=1, help="Frames to render.")] = 100,
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")] = Path("out/dataset"),
    seed: Annotated[int, typer.Option(min=0, help="Dataset seed.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    renderer: Annotated[str, typer.Option(help="auto, or one of the backend's (PyBullet: egl, tiny).")] = "auto",
    resolution: Annotated[str | None, typer.Option(help="WIDTHxHEIGHT, overriding the spec.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue, or repair, the run in OUT (rechecks every checksum).")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace a previous simgen run in OUT: removes only files simgen recorded; "
            "refuses if OUT holds anything else."
        ),
    ] = False,
    shard_frames: Annotated[
        int | None,
        typer.Option(min=1, help="About how many frames per shard (default: 16 shards per worker, 64 frames at most)."),
    ] = None,
    asset_root: Annotated[list[Path] | None, typer.Option(help="Extra folder assets may come from.")] = None,
    runner: Annotated[str, typer.Option(help="local (process pool) or ray.")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --runner ray).")] = None,
    preview: Annotated[bool, typer.Option(help="Write preview.png when done.")] = True,
    carla_servers: Annotated[
        str | None,
        typer.Option(
            help="host:port,host:port: the CARLA servers (backend: carla), one per worker: worker k uses server "
            "k mod n. Overrides carla.servers."
        ),
    ] = None,
) -> None:
    """Render N labeled frames of a scene spec into OUT."""
    from simgen.backends.carla import servers_override

    if resume and overwrite:
        raise typer.BadParameter("use one of them: --resume keeps the run in OUT, --overwrite replaces it",
                                 param_hint="--resume/--overwrite")  # fmt: skip
    with servers_override(carla_servers):
        _generate(spec, n, out, seed, workers, renderer, resolution, resume, overwrite, shard_frames, asset_root,
                  runner, address, preview, carla_servers is not None)  # fmt: skip


def _generate(
    spec: Path, n: int, out: Path, seed: int, workers: int, renderer: str, resolution: str | None, resume: bool,
    overwrite: bool, shard_frames: int | None, asset_root: list[Path] | None, runner: str, address: str | None,
    preview: bool, servers_given: bool,
) -> None:  # fmt: skip
    from simgen.backends.carla import preflight
    from simgen.engine.generation import ImageOptions, generate_images
    from simgen.engine.run import RunConfig

    # A CARLA run reaches its servers before anything is written: no server is one line and no folder.
    preflight(spec, workers=workers, runner=runner, asset_roots=asset_root or [], servers_given=servers_given,
              resolution_given=resolution is not None)  # fmt: skip
    columns = (
        TextColumn("[bold]generate"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]} frames/s"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    )  # fmt: skip
    try:
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("frames", total=n, rate="-")
            frame_rate = FrameRate()

            def advance(k: int) -> None:
                bar.update(task, advance=k, rate=frame_rate.advance(k))

            config = RunConfig(
                out=out, n_records=n, seed=seed, workers=workers, resume=resume, overwrite=overwrite,
                shard_records=shard_frames, runner=runner, ray_address=address,
            )  # fmt: skip
            options = ImageOptions(
                renderer=renderer, resolution=_parse_resolution(resolution), asset_roots=asset_root or []
            )
            result = generate_images(spec, config, options, progress=advance)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (simgen.errors.Interrupted): workers are stopped
        print_error("interrupted; rerun with --resume to finish")
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    rate = result.made / result.seconds if result.seconds > 0 else 0.0
    console.print(
        f"[green]wrote[/] {result.n_frames} frames to {result.out} "
        f"({result.made} rendered, {result.reused} kept) with renderer {result.renderer} in {result.seconds:.1f} s "
        f"({rate:.1f} frames/s)"
    )
    if preview and "coco" in result.dataset.get("formats", ["coco"]):
        from simgen.inspect_dataset import write_preview

        console.print(f"preview: {write_preview(result.out)}")
    elif preview:
        console.print("no preview: it draws the COCO labels, and this spec has outputs.coco: false")


def _require_coco(out: Path, command: str) -> None:
    """Refuse, in one line, a dataset written without COCO (``outputs.coco: false``): ``command`` reads its labels.

    Raises:
        SimgenError: The dataset's record says it has no COCO file.
    """
    from simgen.engine.files import DATASET_FILE, DATASET_KEYS, simgen_record

    meta = simgen_record(out / DATASET_FILE, DATASET_KEYS)
    formats = meta.get("formats") if meta else None
    if isinstance(formats, list) and "coco" not in formats:
        raise SimgenError(
            f"{out} has no annotations.coco.json (its spec has outputs.coco: false), and `simgen {command}` reads "
            "the labels from it; `simgen verify` and `simgen replay` work without it"
        )


@app.command()
@clean_errors
def inspect(
    out: Annotated[Path, typer.Argument(help="A generated dataset folder.")],
    preview: Annotated[Path | None, typer.Option(help="Where to write the preview grid.")] = None,
    frames: Annotated[int, typer.Option(min=1, help="Frames in the preview grid.")] = 12,
) -> None:
    """Print a summary of a dataset and write preview.png (frames with boxes and masks)."""
    from simgen.inspect_dataset import summarize, write_preview

    _require_coco(out, "inspect")
    s = summarize(out)
    table = Table(title=f"{out}: {s.frames} frames, {s.annotations} objects")
    table.add_column("category")
    table.add_column("objects", justify="right")
    for name, count in s.per_category.items():
        table.add_row(name, str(count))
    out_console.print(table)
    mean, lo, hi = s.objects_per_frame
    out_console.print(f"objects per frame: mean {mean:.1f}, min {lo}, max {hi}; renderer {s.renderer}, seed {s.seed}")
    if s.visibility_hist:
        peak = max(s.visibility_hist) or 1
        out_console.print(f"visibility ({s.visibility_known} objects):")
        for k, count in enumerate(s.visibility_hist):
            lo_e, hi_e = s.visibility_edges[k], s.visibility_edges[k + 1]
            out_console.print(f"  {lo_e:.1f}-{hi_e:.1f} {'#' * round(40 * count / peak):<40} {count}")
    else:
        out_console.print("visibility: not computed (set labels.visibility: true in the spec)")
    if s.scenario:  # made from a scenario file: its coverage, from what was written (simgen coverage writes the page)
        from simgen.scenarios.report import coverage_line, read_coverage

        try:
            out_console.print(f"scenario coverage: {escape(coverage_line(read_coverage(out)))}")
        except SimgenError as exc:  # a scenario without factors has no cells to cover
            out_console.print(f"scenario coverage: {escape(str(exc))}")
    out_console.print(f"preview: {write_preview(out, preview, max_frames=frames)}")


@app.command()
@clean_errors
def verify(out: Annotated[Path, typer.Argument(help="A generated dataset folder.")]) -> None:
    """Recompute the recorded checksums; exit 1 if any file is missing, extra or corrupt, or a record is invalid."""
    from simgen.engine.verify import verify_dataset

    report = verify_dataset(out)
    findings = (("missing", report.missing), ("corrupt", report.corrupt), ("extra", report.extra),
                ("invalid", report.invalid))  # fmt: skip
    for kind, paths in findings:
        for rel in paths:
            out_console.print(f"[red]{kind}[/] {escape(str(rel))}")
    for note in report.notes:  # what could not be checked here (a signed dataset without c2pa-python)
        out_console.print(f"[yellow]note[/] {escape(note)}")
    if report.signatures:
        from simgen.provenance.signing import VALID_STATES

        valid = sum(state in VALID_STATES for state in report.signatures.values())
        out_console.print(f"signatures: {valid} of {len(report.signatures)} valid (C2PA)")
    if not report.ok:
        counts = ", ".join(f"{len(paths)} {kind}" for kind, paths in findings)
        out_console.print(f"[red]FAILED[/]: {counts} ({report.checked} files checked)")
        raise typer.Exit(1)
    out_console.print(f"[green]OK[/]: {report.checked} files match their checksums")


@app.command()
@clean_errors
def replay(
    out: Annotated[Path, typer.Argument(help="A generated dataset folder.")],
    frame: Annotated[int, typer.Option(min=0, help="Frame index.")] = 0,
    save: Annotated[Path | None, typer.Option(help="Folder to write the regenerated PNGs to.")] = None,
    renderer: Annotated[str | None, typer.Option(help="Override the recorded renderer.")] = None,
) -> None:
    """Regenerate frame i from dataset.json and manifest.jsonl alone; exit 1 unless byte-identical."""
    from simgen.engine.replay import replay_frame

    result = replay_frame(out, frame, renderer=renderer)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        for kind, data in result.files.items():
            (save / f"{kind}_{frame:06d}.png").write_bytes(data)
    for kind, same in result.identical.items():
        out_console.print(f"{kind}: {'[green]identical[/]' if same else '[red]differs[/]'}")
    out_console.print(f"settled poses: {'[green]identical[/]' if result.settled_match else '[red]differ[/]'}")
    if not (all(result.identical.values()) and result.settled_match):
        raise typer.Exit(1)


@app.command()
@clean_errors
def schema(
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Write to a file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of a scene spec."""
    from simgen.spec import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2)
    if out is None:
        typer.echo(text)
        return
    if out.is_dir():
        raise SimgenError(f"{out} is a folder; give a file name such as {out / 'spec.schema.json'}")
    from simgen.writers.atomic import atomic_write_text

    atomic_write_text(out, text + "\n")


@list_app.command("randomizers")
@clean_errors
def list_randomizers(
    markdown: Annotated[bool, typer.Option(help="Print the Markdown reference (docs/randomizers.md).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every parameter and its default.")] = False,
) -> None:
    """Every registered randomizer with its stage (and, with --verbose, its parameters)."""
    from simgen.randomizers import REGISTRY
    from simgen.reference import randomizer_rows, randomizers_markdown

    if markdown:
        typer.echo(randomizers_markdown(), nl=False)
        return
    names = REGISTRY.names()
    table = Table(title="randomizers", show_lines=verbose)
    # Names are what a user copies into a spec: never wrapped or cut, whatever the width.
    table.add_column("name", no_wrap=True, min_width=max(map(len, names), default=4))
    table.add_column("stage", no_wrap=True)
    if verbose:
        table.add_column("parameters (default)")
    table.add_column("description")
    for name in names:
        cls = REGISTRY.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        if not verbose:
            table.add_row(name, cls.stage, doc)
            continue
        params = "\n".join(f"{p} ({d.strip('`')})" for p, d, _ in randomizer_rows(name)) or (
            "reads " + ", ".join(cls.reads) if cls.reads else "-"
        )
        table.add_row(name, cls.stage, params, doc)
    out_console.print(table)
    if not verbose:
        out_console.print("parameters: simgen list randomizers --verbose, or docs/randomizers.md")


_PLUGINS = (
    "simgen.validators.cli",
    "simgen.refine.cli",
    "simgen.generators.tabular.cli",
    "simgen.scenarios.cli",
    "simgen.tune.cli",
    "simgen.generators.text.cli",
    "simgen.mix.cli",
    "simgen.provenance.cli",
)


def _register_plugins() -> None:
    # Commands whose modules pull heavy extras register themselves; their imports stay lazy inside.
    for module_name in _PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that part of simgen is not there
            raise
        module.register(app)


_register_plugins()


def main() -> None:
    """Entry point: run the app, turning simgen errors into one clean message and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except SimgenError as exc:
        print_error(exc)
        raise SystemExit(2) from None
