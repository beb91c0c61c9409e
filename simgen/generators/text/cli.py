"""``simgen text self-instruct | evol-instruct | critic | captions | magpie``: a thin layer over the run module.

The run module is :mod:`simgen.generators.text.run`.

Every command writes ``OUT/records.jsonl`` through the one run loop (``--resume``, ``--overwrite``,
``simgen verify OUT``) and ends with a one-screen summary: records kept, dropped by reason, requests,
tokens, cache hits and cost. The API key comes from ``ANTHROPIC_API_KEY`` only (``ANTHROPIC_BASE_URL``
for another endpoint); without it an LLM command stops at once with one line and exit code 2.
A spent budget (``--max-requests``, ``--max-tokens``) stops the run cleanly with exit code 3: rerun with
``--resume`` and a larger budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from simgen.console import err as console
from simgen.console import print_error
from simgen.llm.client import DEFAULT_MODEL

#: Exit code of a run stopped by its budget (2 is an error; 3 says "resume me with a larger budget").
BUDGET_EXIT = 3

OutOpt = Annotated[Path, typer.Option("-o", "--out", help="Dataset folder.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Anthropic model id.")]
ConcurrencyOpt = Annotated[int, typer.Option(min=1, help="Requests in flight at once (over every worker).")]
MaxRequestsOpt = Annotated[
    int | None, typer.Option(min=0, help="Paid requests this run may make (cached answers are free).")
]
MaxTokensOpt = Annotated[int | None, typer.Option(min=0, help="Input + output tokens this run may pay for.")]
SeedOpt = Annotated[int, typer.Option(min=0, help="Dataset seed.")]
WorkersOpt = Annotated[int, typer.Option(min=1, help="Worker processes.")]
ResumeOpt = Annotated[bool, typer.Option(help="Continue, or repair, the run in OUT (cached answers are free).")]
OverwriteOpt = Annotated[
    bool, typer.Option(help="Replace a previous simgen run in OUT (and its response cache): only files simgen wrote.")
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0.001, help="Seconds per HTTP attempt.")]
RetriesOpt = Annotated[int, typer.Option(min=0, help="Retries after a 429, 5xx or timeout.")]
BackoffOpt = Annotated[float, typer.Option("--backoff", min=0.0, help="First retry delay in s (doubles per retry).")]
PerUnitOpt = Annotated[
    int | None, typer.Option(min=1, help="Inputs (or records) per committed unit (part of the output's identity).")
]
TemperatureOpt = Annotated[float | None, typer.Option(min=0.0, help="Sampling temperature (default: the API's).")]
SeedsOpt = Annotated[
    Path | None, typer.Option("--seeds", help="Seed tasks (JSONL: Self-Instruct or Alpaca lines); default simgen's.")
]
CriticOpt = Annotated[
    float | None,
    typer.Option("--critic-threshold", min=1.0, max=5.0, help="Judge every record; keep those with a mean >= this."),
]


@contextmanager
def _bar(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """A progress bar of units on stderr; yields the run loop's ``progress`` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TextColumn("units"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("units", total=total)
        yield lambda k: bar.update(task, advance=k)


def _no_key_message(command: str, offline: str = "") -> str:
    tail = f"; {offline}" if offline else ""
    return (
        f"simgen text {command} needs an Anthropic API key: set ANTHROPIC_API_KEY "
        f"(and ANTHROPIC_BASE_URL for another endpoint){tail}"
    )


def _run(command: str, job: Any, out: Path, llm: Any, *, seed: int, workers: int, resume: bool, overwrite: bool,
         offline: str = "") -> None:  # fmt: skip
    """Check everything (inputs, key, folder), run with a progress bar, print the summary."""
    from simgen.errors import BudgetExhausted, LLMError
    from simgen.generators.text.run import TextModality, partial_summary, run_text
    from simgen.llm import APIKeyMissing, has_api_key

    if resume and overwrite:
        raise typer.BadParameter("use one of them: --resume keeps the run in OUT, --overwrite replaces it",
                                 param_hint="--resume/--overwrite")  # fmt: skip
    modality = TextModality(job, llm)
    modality.prepare()  # a bad input fails in one line before the progress bar draws
    if job.uses_llm and not has_api_key():
        raise APIKeyMissing(_no_key_message(command, offline))
    try:
        with _bar(modality.n_units, command) as progress:
            result = run_text(job, out, llm=llm, seed=seed, workers=workers, resume=resume, overwrite=overwrite,
                              modality=modality, progress=progress)  # fmt: skip
    except KeyboardInterrupt as exc:
        print_error("interrupted; rerun with --resume to finish (answers received so far are cached)")
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    except BudgetExhausted as exc:
        _print_partial(command, out, partial_summary(out), modality.n_units)
        print_error(f"{exc}; rerun with --resume and a larger --{exc.limit.replace('_', '-')}")
        raise typer.Exit(BUDGET_EXIT) from None
    except LLMError as exc:
        if isinstance(exc, APIKeyMissing):
            raise APIKeyMissing(_no_key_message(command, offline)) from None
        _print_partial(command, out, partial_summary(out), modality.n_units)
        print_error(f"{exc}; rerun with --resume to continue (answers received so far are cached)")
        raise typer.Exit(2) from None
    print_summary(command, result)


def _table() -> Any:
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("what", no_wrap=True, style="bold")
    table.add_column("value", overflow="fold")
    return table


def _money(value: Any) -> str:
    return "unknown (no list price for the model)" if value is None else f"${value:,.4f} (estimate)"


def _llm_rows(table: Any, this_run: dict[str, Any] | None, usage: dict[str, Any] | None) -> None:
    if this_run:
        table.add_row(
            "requests",
            f"{this_run['requests']:,} paid, {this_run['cache_hits']:,} cached, {this_run['retries']:,} retries",
        )
        table.add_row("tokens", f"{this_run['input_tokens']:,} in, {this_run['output_tokens']:,} out (this run)")
        table.add_row("cost", f"{_money(this_run['cost_usd'])} this run")
    responses = (usage or {}).get("responses")
    if responses:
        table.add_row(
            "all answers",
            f"{responses['responses']:,} used: {responses['input_tokens']:,} in, {responses['output_tokens']:,} out, "
            f"{_money(responses.get('cost_usd'))}",
        )


def print_summary(command: str, result: Any) -> None:
    """The one-screen summary of a finished run (stderr, readable at 80 columns)."""
    ds = result.dataset
    table = _table()
    target = ds.get("target")
    kept = ds.get("counts", {}).get("records", 0)
    table.add_row("records", f"{kept:,} kept" + (f" of {target:,} wanted" if target else "") + f" -> {result.out}")
    dropped = ds.get("dropped_by_reason") or {}
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0])))
    table.add_row("dropped", f"{sum(dropped.values()):,}" + (f": {reasons}" if reasons else ""))
    llm = ds.get("llm") or {}
    _llm_rows(table, llm.get("this_run"), llm.get("usage"))
    table.add_row("units", f"{result.made} made, {result.reused} kept from before, in {result.seconds:.1f} s")
    console.print(f"[green]simgen text {command}[/] done")
    console.print(table)


def _print_partial(command: str, out: Path, summary: dict[str, Any], n_units: int) -> None:
    table = _table()
    table.add_row("units", f"{summary['units']} of {n_units} committed in {out}")
    table.add_row("records", f"{summary['kept']:,} kept so far, {summary['dropped']:,} dropped")
    _llm_rows(table, summary.get("this_run"), None)
    console.print(f"[yellow]simgen text {command}[/] stopped early")
    console.print(table)


def _llm(model: str, concurrency: int, max_requests: int | None, max_tokens: int | None, timeout: float,
         max_retries: int, temperature: float | None, backoff: float) -> Any:  # fmt: skip
    from simgen.generators.text.run import LLMOptions

    return LLMOptions(model=model, concurrency=concurrency, max_requests=max_requests, max_tokens=max_tokens,
                      timeout_s=timeout, max_retries=max_retries, temperature=temperature,
                      backoff_s=backoff)  # fmt: skip


def _critic(threshold: float | None) -> dict[str, Any] | None:
    return None if threshold is None else {"threshold": threshold}


def self_instruct(
    n: Annotated[int, typer.Option("-n", "--records", min=1, help="Records to make.")] = 50,
    seeds: SeedsOpt = None,
    out: OutOpt = Path("out/text"),
    critic_threshold: CriticOpt = None,
    rouge_threshold: Annotated[float, typer.Option(min=0.01, max=1.0, help="Drop ROUGE-L above this.")] = 0.7,
    model: ModelOpt = DEFAULT_MODEL,
    concurrency: ConcurrencyOpt = 4,
    max_requests: MaxRequestsOpt = None,
    max_tokens: MaxTokensOpt = None,
    seed: SeedOpt = 0,
    workers: WorkersOpt = 1,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    timeout: TimeoutOpt = 120.0,
    max_retries: RetriesOpt = 4,
    backoff: BackoffOpt = 0.5,
    per_unit: PerUnitOpt = None,
    temperature: TemperatureOpt = None,
) -> None:
    """New instruction records bootstrapped from seed tasks (Self-Instruct), into OUT/records.jsonl."""
    from simgen.generators.text.run import TextJob

    job = TextJob(method="self-instruct", inputs=str(seeds) if seeds else None, target=n,
                  params={"rouge_threshold": rouge_threshold}, critic=_critic(critic_threshold),
                  per_unit=per_unit)  # fmt: skip
    llm = _llm(model, concurrency, max_requests, max_tokens, timeout, max_retries, temperature, backoff)
    _run("self-instruct", job, out, llm, seed=seed, workers=workers, resume=resume, overwrite=overwrite)


def evol_instruct(
    seeds: SeedsOpt = None,
    rounds: Annotated[int, typer.Option(min=1, help="Evolution rounds.")] = 3,
    out: OutOpt = Path("out/text"),
    critic_threshold: CriticOpt = None,
    no_judge: Annotated[bool, typer.Option("--no-judge", help="Skip rule 1's LLM equality check.")] = False,
    model: ModelOpt = DEFAULT_MODEL,
    concurrency: ConcurrencyOpt = 4,
    max_requests: MaxRequestsOpt = None,
    max_tokens: MaxTokensOpt = None,
    seed: SeedOpt = 0,
    workers: WorkersOpt = 1,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    timeout: TimeoutOpt = 120.0,
    max_retries: RetriesOpt = 4,
    backoff: BackoffOpt = 0.5,
    per_unit: PerUnitOpt = None,
    temperature: TemperatureOpt = None,
) -> None:
    """Evolve each seed instruction in depth and breadth over ROUNDS (Evol-Instruct, WizardLM's elimination rules)."""
    from simgen.generators.text.run import TextJob

    job = TextJob(method="evol-instruct", inputs=str(seeds) if seeds else None,
                  params={"rounds": rounds, "judge_equality": not no_judge}, critic=_critic(critic_threshold),
                  per_unit=per_unit)  # fmt: skip
    llm = _llm(model, concurrency, max_requests, max_tokens, timeout, max_retries, temperature, backoff)
    _run("evol-instruct", job, out, llm, seed=seed, workers=workers, resume=resume, overwrite=overwrite)


def critic(
    records: Annotated[Path, typer.Argument(help="Records to judge: a JSONL file or a simgen text output folder.")],
    out: OutOpt = Path("out/text"),
    threshold: Annotated[float, typer.Option(min=1.0, max=5.0, help="Mean score (1-5) a record needs.")] = 3.5,
    min_score: Annotated[int | None, typer.Option(min=1, max=5, help="Score every aspect needs.")] = None,
    model: ModelOpt = DEFAULT_MODEL,
    concurrency: ConcurrencyOpt = 4,
    max_requests: MaxRequestsOpt = None,
    max_tokens: MaxTokensOpt = None,
    seed: SeedOpt = 0,
    workers: WorkersOpt = 1,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    timeout: TimeoutOpt = 120.0,
    max_retries: RetriesOpt = 4,
    backoff: BackoffOpt = 0.5,
    per_unit: PerUnitOpt = None,
    temperature: TemperatureOpt = None,
) -> None:
    """Judge RECORDS on UltraFeedback's rubric; keep those that pass, with scores and reasons (critic filter)."""
    from simgen.generators.text.run import TextJob

    job = TextJob(method="critic", inputs=str(records), params={"threshold": threshold, "min_score": min_score},
                  per_unit=per_unit)  # fmt: skip
    llm = _llm(model, concurrency, max_requests, max_tokens, timeout, max_retries, temperature, backoff)
    _run("critic", job, out, llm, seed=seed, workers=workers, resume=resume, overwrite=overwrite)


def captions(
    dataset: Annotated[Path, typer.Argument(help="An image dataset folder (annotations.coco.json).")],
    out: OutOpt = Path("out/captions"),
    llm_mode: Annotated[bool, typer.Option("--llm", help="Have the LLM paraphrase the facts (needs a key).")] = False,
    model: ModelOpt = DEFAULT_MODEL,
    concurrency: ConcurrencyOpt = 4,
    max_requests: MaxRequestsOpt = None,
    max_tokens: MaxTokensOpt = None,
    seed: SeedOpt = 0,
    workers: WorkersOpt = 1,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    timeout: TimeoutOpt = 120.0,
    max_retries: RetriesOpt = 4,
    backoff: BackoffOpt = 0.5,
    per_unit: PerUnitOpt = None,
    temperature: TemperatureOpt = None,
) -> None:
    """A caption for each frame of DATASET from its labels (template, offline; or --llm)."""
    from simgen.generators.text.run import TextJob

    job = TextJob(method="captions", inputs=str(dataset), llm_captions=llm_mode, per_unit=per_unit)
    llm = _llm(model, concurrency, max_requests, max_tokens, timeout, max_retries, temperature, backoff)
    _run("captions", job, out, llm, seed=seed, workers=workers, resume=resume, overwrite=overwrite,
         offline="or drop --llm to write the template captions offline")  # fmt: skip


def magpie(
    model: Annotated[Path, typer.Option("--model", help="A local causal LM folder with a chat template.")],
    backend: Annotated[str, typer.Option(help="transformers (the only one: see the help).")] = "transformers",
    n: Annotated[int, typer.Option("-n", "--records", min=1, help="Records to sample.")] = 50,
    out: OutOpt = Path("out/text"),
    max_query_tokens: Annotated[int, typer.Option(min=1, help="Longest query.")] = 64,
    max_response_tokens: Annotated[int, typer.Option(min=1, help="Longest response.")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature (0: greedy).")] = 1.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="Nucleus mass.")] = 1.0,
    seed: SeedOpt = 0,
    workers: WorkersOpt = 1,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    per_unit: PerUnitOpt = None,
) -> None:
    """Magpie: instructions a local open-weight model writes from its own pre-query template.

    Magpie needs raw access to the model's chat template, which Anthropic's hosted Messages API does not give;
    it runs only on a local model through transformers (extra [refine]). Nothing is downloaded.
    """
    from simgen.errors import SimgenError
    from simgen.generators.text.run import LLMOptions, TextJob

    if backend != "transformers":
        raise SimgenError(
            f"magpie cannot run on backend '{backend}': it needs raw access to a model's chat template, which the "
            "hosted Anthropic Messages API does not give; use --backend transformers --model PATH (a local model)"
        )
    params = {"max_query_tokens": max_query_tokens, "max_response_tokens": max_response_tokens,
              "temperature": temperature, "top_p": top_p}  # fmt: skip
    job = TextJob(method="magpie", target=n, params=params, local_model=str(model), per_unit=per_unit)
    _run("magpie", job, out, LLMOptions(), seed=seed, workers=workers, resume=resume, overwrite=overwrite)


def register(app: typer.Typer) -> None:
    """Add the ``text`` sub-app (self-instruct, evol-instruct, critic, captions, magpie) to the ``simgen`` app.

    Calling it twice on one app adds the commands once.

    Args:
        app: The root typer app.
    """
    from simgen.cli import clean_errors  # simgen.cli calls this once clean_errors is defined

    if any(group.name == "text" for group in app.registered_groups):
        return
    text_app = typer.Typer(help="Text made by an LLM: Self-Instruct, Evol-Instruct, a critic filter, captions.",
                           no_args_is_help=True)  # fmt: skip
    for func in (self_instruct, evol_instruct, critic, captions, magpie):
        text_app.command(name=func.__name__.replace("_", "-"))(clean_errors(func))
    app.add_typer(text_app, name="text")
