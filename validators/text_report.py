"""``simgen validate`` for text: a JSONL of records against the real seeds, as report.json and report.html.

:func:`validate_text_dataset` reads the synthetic records (a ``records.jsonl`` or a text dataset folder, through
:func:`simgen.generators.text.records.read_records`) and the real seeds (records, or seed tasks in Self-Instruct
or Alpaca form through :func:`~simgen.generators.text.records.load_seeds`), and gathers
:func:`simgen.validators.text.validate_text`'s section (diversity, novelty, seed copies, lengths, types, critic
scores) with the synthetic dataset's own real/synthetic mix and generations.
"""

from __future__ import annotations

import html
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simgen.errors import SimgenError, did_you_mean
from simgen.validators.detect import data_file

__all__ = ["TextValidationReport", "read_seed_file", "validate_text_dataset"]

#: The text views of a record that can be measured (:meth:`TextRecord.text`).
FIELDS = ("prompt", "all", "instruction", "input", "output", "caption")


@dataclass
class TextValidationReport:
    """What ``simgen validate`` measured on text; :meth:`as_dict` is ``report.json``, :meth:`html` the page.

    Attributes:
        synthetic: Path and record counts of the synthetic side.
        real: Path and record count of the seeds, or None.
        section: :func:`~simgen.validators.text.validate_text`'s result.
        dataset_mix: Origin and generation counts among the synthetic file's own records.
        settings: How the run was configured.
        timings_s: Seconds per step.
        warnings: Things skipped or limiting the results.
    """

    synthetic: dict[str, Any]
    real: dict[str, Any] | None
    section: dict[str, Any]
    dataset_mix: dict[str, Any]
    settings: dict[str, Any]
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    modality: str = "text"

    def as_dict(self) -> dict[str, Any]:
        """The JSON document written as ``report.json``."""
        from simgen import __version__

        s = self.section
        return {
            "simgen_version": __version__,
            "modality": self.modality,
            "synthetic": self.synthetic,
            "real": self.real,
            "metrics": s["metrics"],
            "novelty": s["novelty"],
            "privacy": s["privacy"] or {"skipped": "no seeds (--real): nothing to compare with"},
            "lengths": s["lengths"],
            "types": s["types"],
            "critic": s["critic"],
            "dataset_mix": self.dataset_mix,
            "settings": self.settings,
            "timings_s": self.timings_s,
            "warnings": self.warnings,
        }

    def html(self) -> str:
        """The report as one self-contained HTML page."""
        return _render(self)


def read_seed_file(path: str | Path) -> list[Any]:
    """Real seeds: a JSONL of text records (lines with ``origin``) or of seed tasks (Self-Instruct or Alpaca).

    Raises:
        SpecError: A missing file, bad JSON, or a line that fits neither form (naming the file and line).
    """
    from simgen.generators.text.records import load_seeds, read_records

    p = data_file(path, "text")
    first = ""
    with p.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip():
                first = line
                break
    try:
        is_record = isinstance(data := json.loads(first), dict) and "origin" in data
    except json.JSONDecodeError:
        is_record = False  # load_seeds reports the line
    return read_records(p) if is_record else load_seeds(p)


def validate_text_dataset(
    synthetic: str | Path,
    real: str | Path | None = None,
    *,
    field: str = "prompt",
    seed: int = 0,
    max_self_bleu: int = 5000,
) -> TextValidationReport:
    """Measure a synthetic text dataset against real seeds.

    Args:
        synthetic: A JSONL of text records, or a folder with ``records.jsonl``.
        real: The real seeds (records or seed tasks); default: the real records in the synthetic file.
        field: Which text is measured: ``prompt``, ``all``, ``instruction``, ``input``, ``output`` or ``caption``.
        seed: Seeds the Self-BLEU subsample of large corpora.
        max_self_bleu: Self-BLEU on at most this many texts per side.

    Raises:
        SpecError: An unreadable records or seeds file.
        SimgenError: An unknown field (with a "did you mean"), or no synthetic record.
    """
    from collections import Counter

    from simgen.generators.text.records import read_records
    from simgen.validators.text import validate_text

    if field not in FIELDS:
        raise SimgenError(
            f"--field: unknown text field '{field}'{did_you_mean(field, FIELDS)}; expected one of: {', '.join(FIELDS)}"
        )
    t0 = time.perf_counter()
    syn_path = Path(synthetic)
    records = read_records(data_file(syn_path, "text"))
    seeds = read_seed_file(real) if real is not None else None
    timings = {"load": time.perf_counter() - t0}
    t0 = time.perf_counter()
    section = validate_text(records, seeds, rng=np.random.default_rng(seed), field=field, max_self_bleu=max_self_bleu)
    timings["metrics"] = time.perf_counter() - t0
    origin = Counter(r.origin for r in records)
    mix = {
        "records": len(records),
        "origin": dict(sorted(origin.items())),
        "real_share": origin["real"] / len(records) if records else None,
        "generation": {str(k): v for k, v in sorted(Counter(r.generation for r in records).items())},
    }
    n_syn = section["synthetic"]["records"]
    return TextValidationReport(
        synthetic={"path": str(syn_path), "records": len(records), "synthetic_records": n_syn},
        real={"path": str(real), "records": len(seeds)} if real is not None and seeds is not None else None,
        section=section,
        dataset_mix=mix,
        settings={
            "seed": seed,
            "field": field,
            "max_self_bleu": max_self_bleu,
            "copy_threshold": section["settings"]["copy_threshold"],
        },
        timings_s={k: round(v, 3) for k, v in timings.items()},
        warnings=list(section["warnings"]),
    )


# --------------------------------------------------------------------------------------------------
# The HTML page


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}"
    return html.escape(str(v))


def _novelty_plot(novelty: dict[str, Any]) -> str | None:
    from simgen.validators.report import SYN_COLOR, fig_b64, figure

    hist = novelty.get("histogram")
    if not hist:
        return None
    edges = np.asarray(hist["bins"], float)
    fig = figure(6.5, 3.0)
    ax = fig.add_subplot()
    ax.bar(edges[:-1], hist["counts"], width=np.diff(edges), align="edge", color=SYN_COLOR, edgecolor="white")
    ax.axvline(0.7, color="#a60", linestyle="--", label="0.7 (Self-Instruct's filter)")
    ax.axvline(0.9, color="#c33", linestyle="--", label="0.9 (near-verbatim copy)")
    ax.set_xlabel("highest ROUGE-L F to a seed")
    ax.set_ylabel("synthetic texts")
    ax.legend(fontsize=8)
    return fig_b64(fig)


def _lengths_plot(lengths: dict[str, dict[str, Any]]) -> str | None:
    from simgen.validators.report import REAL_COLOR, SYN_COLOR, fig_b64, figure

    fields = sorted(set(lengths.get("synthetic", {})) | set(lengths.get("real", {})))
    if not fields:
        return None
    fig = figure(6.5, 3.0)
    ax = fig.add_subplot()
    x = np.arange(len(fields))
    for dx, side, color in ((-0.2, "synthetic", SYN_COLOR), (0.2, "real", REAL_COLOR)):
        stats = [lengths.get(side, {}).get(f, {}) for f in fields]
        mean = [s.get("mean", 0.0) for s in stats]
        lo = [max(0.0, s.get("mean", 0.0) - s.get("p5", 0.0)) for s in stats]
        hi = [max(0.0, s.get("p95", 0.0) - s.get("mean", 0.0)) for s in stats]
        ax.bar(x + dx, mean, 0.4, yerr=[lo, hi], color=color, label=side, capsize=3)
    ax.set_xticks(x, fields)
    ax.set_ylabel("words (mean, 5-95%)")
    ax.legend(fontsize=8)
    return fig_b64(fig)


def _critic_plot(critic: dict[str, Any]) -> str | None:
    from simgen.validators.report import fig_b64, figure

    aspects = critic.get("aspects") or {}
    if not aspects:
        return None
    fig = figure(6.5, 0.5 * len(aspects) + 1.6)
    ax = fig.add_subplot()
    colors = ["#c33", "#e80", "#cc3", "#8c4", "#2a7"]
    names = sorted(aspects)
    left = np.zeros(len(names))
    for k in range(1, 6):
        counts = np.array([aspects[a]["counts"].get(str(k), 0) for a in names], float)
        totals = np.array([max(1, sum(aspects[a]["counts"].values())) for a in names], float)
        share = counts / totals
        ax.barh(names, share, left=left, color=colors[k - 1], label=str(k))
        left += share
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of judged records per score (1 to 5)")
    ax.legend(ncol=5, fontsize=8, loc="lower right")
    return fig_b64(fig)


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...]) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _counts(d: dict[str, Any]) -> str:
    return ", ".join(f"{html.escape(str(k))}: {v}" for k, v in d.items()) or "none"


def _render(report: TextValidationReport) -> str:
    from simgen import __version__
    from simgen.validators.report import CSS, img_tag

    s = report.section
    real = report.real
    side = (
        f"<span class=syn><b>synthetic</b></span> {html.escape(report.synthetic['path'])} "
        f"({report.synthetic['synthetic_records']} synthetic of {report.synthetic['records']} records) vs "
        + (
            f"<span class=real><b>seeds</b></span> {html.escape(real['path'])} ({real['records']} records)"
            if real
            else "the real records it carries"
        )
    )
    config = (
        f"text measured: {html.escape(report.settings['field'])}; seed {report.settings['seed']}; simgen {__version__}"
    )
    warn = "".join(f"<li class=warn>{html.escape(w)}</li>" for w in report.warnings)
    metric_rows = [
        (k, m["value"], m["real"], "higher" if m["higher_is_better"] else "lower", m["description"])
        for k, m in s["metrics"].items()
    ]
    nov, priv = s["novelty"], s["privacy"]
    if priv:
        examples = _table(
            [(c["id"], c["seed_id"], c["kind"], c["rouge_l"]) for c in priv["examples"]],
            ("synthetic id", "seed id", "kind", "ROUGE-L"),
        )
        status = (
            "<span class=ok>no copies</span>"
            if not (priv["exact"] or priv["near"])
            else (f"<span class=bad>{priv['exact']} exact and {priv['near']} near-verbatim copies</span>")
        )
        privacy = (
            f"<p>{status} of a seed among {priv['n']} synthetic texts (share {_fmt(priv['share'])}; "
            f"near-verbatim: ROUGE-L ≥ {priv['threshold']}).</p>" + (examples if priv["examples"] else "")
        )
    else:
        privacy = "<p class=muted>Skipped: no seeds to compare with.</p>"
    novelty_txt = (
        f"<p>Mean highest ROUGE-L to a seed {_fmt(nov.get('mean'))}, median {_fmt(nov.get('median'))}, "
        f"95th percentile {_fmt(nov.get('p95'))}; share above 0.7: {_fmt(nov.get('share_above_0.7'))}.</p>"
        if nov.get("n")
        else "<p class=muted>Skipped: no seeds to compare with.</p>"
    )
    plot = _novelty_plot(nov)
    lengths = _lengths_plot(s["lengths"])
    critic = s["critic"]
    cplot = _critic_plot(critic)
    critic_txt = (
        f"<p>{critic['n']} judged records; pass rate {_fmt(critic['pass_rate'])}; statuses "
        f"{_counts(critic['status'])}; mean score {_fmt(critic['mean_score'].get('mean'))}.</p>"
        if critic.get("n")
        else "<p class=muted>No critic scores in the records.</p>"
    )
    t_syn, t_real = s["types"]["synthetic"], s["types"]["real"]
    mix = report.dataset_mix
    sections = [
        "<h1>simgen validation report: text</h1>",
        f"<p>{side}.<br><span class=muted>{config}</span></p>",
        f"<ul>{warn}</ul>" if warn else "",
        "<h2>Diversity</h2>",
        _table(metric_rows, ("metric", "synthetic", "seeds", "better", "meaning")),
        "<h2>Novelty against the seeds</h2>",
        novelty_txt,
        img_tag(plot, "novelty histogram", "560px") if plot else "",
        "<h2>Privacy: copies of the seeds</h2>",
        privacy,
        "<h2>Lengths and types</h2>",
        img_tag(lengths, "lengths per field", "560px") if lengths else "",
        _table(
            [
                (
                    k,
                    t_syn.get(k) if not isinstance(t_syn.get(k), dict) else _counts(t_syn[k]),
                    t_real.get(k) if not isinstance(t_real.get(k), dict) else _counts(t_real[k]),
                )
                for k in ("n", "kind", "operation", "generation", "with_input_share", "leading_words")
            ],
            ("", "synthetic", "seeds"),
        ),
        "<h2>Real/synthetic mix</h2>",
        f"<p>The synthetic file holds {mix['records']} records: origin {_counts(mix['origin'])} (real share "
        f"{_fmt(mix['real_share'])}); generations {_counts(mix['generation'])}.</p>",
        "<h2>Critic scores</h2>",
        critic_txt,
        img_tag(cplot, "critic score distributions", "560px") if cplot else "",
        f"<p class=muted>Timings (s): {html.escape(json.dumps(report.timings_s))}</p>",
    ]
    head = f'<head><meta charset="utf-8"><title>simgen validation report: text</title><style>{CSS}</style></head>'
    body = "\n".join(x for x in sections if x)
    return f'<!DOCTYPE html>\n<html lang="en">{head}\n<body>\n{body}\n</body></html>\n'
