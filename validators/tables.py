"""``simgen validate`` for tables: fidelity, utility and privacy of a synthetic table, as report.json and report.html.

:func:`validate_tables` reads the three tables (synthetic, real training, optional real holdout), checks that
their columns agree, and gathers what :mod:`simgen.validators.tabular` measures, each score with a percentile
bootstrap interval:

- **fidelity**: column shapes, column-pair trends and the overall quality score (SDMetrics' definitions), the
  per-column and per-pair details, and Pearson correlation matrices of the numeric columns for the heatmaps;
- **utility** (with ``target`` and a holdout): TSTR against TRTR on the real holdout, classification or
  regression; skipped, with the reason, otherwise;
- **privacy** (with a holdout): DCR synthetic->train against holdout->train, DCR share, NNDR, exact copies and
  the membership-inference AUC on Gower distances; skipped, with the reason, without a holdout.

The column types come from the synthetic dataset's ``dataset.json`` when a simgen run wrote one (the metadata
the generator learned), otherwise they are inferred from the real rows (training and holdout).
"""

from __future__ import annotations

import html
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from simgen.errors import SimgenError, did_you_mean
from simgen.validators.detect import data_file

__all__ = ["TableValidationReport", "validate_tables"]

TASKS = ("classification", "regression")
#: Marginal plots for this many columns (the lowest column-shape scores first).
MARGINAL_PLOTS = 6
#: Correlation heatmaps show at most this many numeric columns.
HEATMAP_COLUMNS = 30

TABLE_METRIC_INFO: dict[str, tuple[str, bool]] = {
    "quality_score": ("mean of column shapes and column-pair trends (SDMetrics' quality score)", True),
    "column_shapes": ("mean KS complement (numbers, dates) / TV complement (categories) per column", True),
    "column_pair_trends": ("mean correlation similarity / contingency similarity per pair of columns", True),
    "tstr_trtr_ratio": ("TSTR / TRTR of the headline utility metric (1: synthetic trains as well as real)", True),
    "dcr_share": ("share of synthetic rows closer to train than to an equal-size holdout (ideal 0.5)", False),
    "mia_auc": ("membership-inference AUC from distances to synthetic rows (ideal 0.5)", False),
    "exact_copy_share": ("share of synthetic rows equal to a training row (Gower distance 0)", False),
}


@dataclass
class TableValidationReport:
    """Everything ``simgen validate`` measured on a table; :meth:`as_dict` is ``report.json``, :meth:`html` the page.

    Attributes:
        synthetic: Path, rows and columns of the synthetic table.
        real: The same for the real training table.
        holdout: The same for the real holdout, or None.
        columns: Column name -> type (numerical, categorical, boolean, datetime, id).
        metrics: Headline scores: name -> ``{"value", "ci", "level", "n_boot", "higher_is_better", "description"}``.
        fidelity: :func:`~simgen.validators.tabular.quality_report`'s result plus ``correlations``.
        utility: :func:`~simgen.validators.tabular.tabular_utility`'s result, or ``{"skipped": reason}``.
        privacy: :class:`~simgen.validators.privacy.PrivacyResult` as a dict, or ``{"skipped": reason}``.
        settings: How the run was configured.
        timings_s: Seconds per step.
        warnings: Things skipped or limiting the results.
        marginals: Values of a few columns per side, for the marginal plots (not in the JSON).
    """

    synthetic: dict[str, Any]
    real: dict[str, Any]
    holdout: dict[str, Any] | None
    columns: dict[str, str]
    metrics: dict[str, dict[str, Any]]
    fidelity: dict[str, Any]
    utility: dict[str, Any]
    privacy: dict[str, Any]
    settings: dict[str, Any]
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    marginals: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    modality: str = "tables"

    def as_dict(self) -> dict[str, Any]:
        """The JSON document written as ``report.json``."""
        from simgen import __version__

        return {
            "simgen_version": __version__,
            "modality": self.modality,
            "synthetic": self.synthetic,
            "real": self.real,
            "holdout": self.holdout,
            "columns": self.columns,
            "metrics": self.metrics,
            "fidelity": self.fidelity,
            "utility": self.utility,
            "privacy": self.privacy,
            "settings": self.settings,
            "timings_s": self.timings_s,
            "warnings": self.warnings,
        }

    def html(self) -> str:
        """The report as one self-contained HTML page."""
        return _render(self)


# --------------------------------------------------------------------------------------------------
# Reading and checking


def _read(path: Path, role: str) -> Any:
    from simgen.generators.tabular.metadata import read_table

    table = read_table(data_file(path, "tables"))
    if len(table) == 0:
        raise SimgenError(f"{path}: the {role} table has no rows")
    return table


def _check_columns(real: Any, other: Any, role: str) -> None:
    """The ``role`` table must have exactly the real table's columns (order aside)."""
    want, have = [str(c) for c in real.columns], [str(c) for c in other.columns]
    missing = [c for c in want if c not in have]
    extra = [c for c in have if c not in want]
    if not missing and not extra:
        return
    parts = []
    if missing:
        hint = did_you_mean(missing[0], extra) if extra else ""
        parts.append(f"missing {', '.join(repr(c) for c in missing)}{hint}")
    if extra:
        parts.append(f"extra {', '.join(repr(c) for c in extra)}")
    raise SimgenError(f"the {role} table's columns differ from the real table's: {'; '.join(parts)}")


def _stored_metadata(synthetic: Path) -> Any:
    """The metadata a simgen table run recorded in ``dataset.json``, or None."""
    from simgen.generators.tabular.metadata import TableMetadata

    info = synthetic / "dataset.json" if synthetic.is_dir() else None
    if info is None or not info.is_file():
        return None
    try:
        meta = json.loads(info.read_text(encoding="utf-8")).get("metadata")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise SimgenError(f"{info}: cannot read it ({exc})") from None
    return TableMetadata.from_dict(meta, source=str(info)) if meta is not None else None


def _with_task(metadata: Any, rows: Any, target: str, task: str | None) -> Any:
    """The metadata with the target's type changed where ``task`` asks for another kind of column.

    ``rows`` holds every table's target values, so that a numeric column used as class labels knows every
    class the synthetic table holds too.
    """
    from simgen.generators.tabular.metadata import infer_metadata

    col = metadata.column(target)
    if task is None or (task == "classification") == col.discrete:
        return metadata
    new_type = "categorical" if task == "classification" else "numerical"
    fixed = infer_metadata(rows.to_frame(), {"columns": {target: new_type}}).columns[0]
    return metadata.model_copy(update={"columns": [fixed if c.name == target else c for c in metadata.columns]})


def _describe(path: Path, table: Any, used: int) -> dict[str, Any]:
    return {"path": str(path), "rows": int(len(table)), "rows_used": int(used), "columns": int(table.shape[1])}


def _entry(name: str, value: float, ci: dict[str, Any] | None, level: float) -> dict[str, Any]:
    description, higher = TABLE_METRIC_INFO[name]
    lo_hi = ci["ci"] if ci else [math.nan, math.nan]
    n_boot = ci["n_boot"] if ci else 0
    return {
        "value": value,
        "ci": lo_hi,
        "level": level,
        "n_boot": n_boot,
        "higher_is_better": higher,
        "description": description,
    }


# --------------------------------------------------------------------------------------------------
# The validation


def validate_tables(
    synthetic: str | Path,
    real: str | Path,
    holdout: str | Path | None = None,
    *,
    target: str | None = None,
    task: Literal["classification", "regression"] | None = None,
    metadata: str | Path | None = None,
    seed: int = 0,
    n_boot: int = 50,
    level: float = 0.95,
    max_rows: int | None = None,
    model: Literal["random_forest", "linear"] = "random_forest",
) -> TableValidationReport:
    """Compare a synthetic table with the real table it was made from (and a real holdout it never saw).

    Args:
        synthetic: A CSV/Parquet file, or a simgen table dataset folder (``table.csv``, ``dataset.json``).
        real: The real training table (file or folder).
        holdout: Real rows the generator never saw (file or folder), for utility and privacy.
        target: The column TSTR/TRTR predicts.
        task: ``classification`` or ``regression``; default: from the target's type (categories classify).
        metadata: A YAML file of column type overrides (used when the synthetic side records no metadata).
        seed: Seed of every random draw (row subsamples, bootstrap resamples, models).
        n_boot: Bootstrap resamples per interval.
        level: Confidence level.
        max_rows: Use at most this many rows per table (a seeded subsample), for speed on large tables.
        model: TSTR/TRTR model: ``random_forest`` or ``linear``.

    Returns:
        The report (write it with :func:`simgen.validators.report.write_report`).

    Raises:
        SimgenError: A missing or unreadable table, tables whose columns differ, an unknown target (with a
            "did you mean") or task, or a target type the task cannot use.
    """
    import pandas as pd

    from simgen.generators.tabular.metadata import MetadataError, infer_metadata
    from simgen.validators import tabular as T

    if task is not None and task not in TASKS:
        raise SimgenError(f"unknown task '{task}'{did_you_mean(task, TASKS)}; expected one of: {', '.join(TASKS)}")
    timings: dict[str, float] = {}
    warnings: list[str] = []
    t0 = time.perf_counter()
    syn_path, real_path = Path(synthetic), Path(real)
    hold_path = Path(holdout) if holdout is not None else None
    syn_t, real_t = _read(syn_path, "synthetic"), _read(real_path, "real")
    hold_t = _read(hold_path, "holdout") if hold_path is not None else None
    _check_columns(real_t, syn_t, "synthetic")
    if hold_t is not None:
        _check_columns(real_t, hold_t, "holdout")
    real_rows = real_t if hold_t is None else pd.concat([real_t, hold_t], ignore_index=True)
    if target is not None and target not in real_t.columns:
        names = [str(c) for c in real_t.columns]
        raise MetadataError(
            f"--target: no column '{target}' in the real table{did_you_mean(target, names)}; "
            f"columns: {', '.join(names)}"
        )
    meta = _stored_metadata(syn_path)
    source = "dataset.json of the synthetic dataset" if meta is not None else "inferred from the real rows"
    if meta is None:
        meta = infer_metadata(real_rows, metadata, source=str(real_path))
    if target is not None:
        meta = _with_task(meta, pd.concat([real_rows[target], syn_t[target]], ignore_index=True), target, task)
    timings["load"] = time.perf_counter() - t0

    ss = np.random.SeedSequence(seed).spawn(4)
    rngs = {
        name: np.random.default_rng(s) for name, s in zip(("rows", "fidelity", "utility", "privacy"), ss, strict=True)
    }

    def cap(t: Any) -> Any:
        if max_rows is None or len(t) <= max_rows:
            return t
        return t.iloc[np.sort(rngs["rows"].choice(len(t), max_rows, replace=False))].reset_index(drop=True)

    syn_u, real_u = cap(syn_t), cap(real_t)
    hold_u = cap(hold_t) if hold_t is not None else None
    if max_rows is not None and max(len(syn_t), len(real_t), len(hold_t) if hold_t is not None else 0) > max_rows:
        warnings.append(f"every table was subsampled (seeded) to at most {max_rows} rows")

    t0 = time.perf_counter()
    fidelity = T.quality_report(real_u, syn_u, meta, rng=rngs["fidelity"], n_boot=n_boot, level=level)
    fidelity["correlations"] = _correlations(real_u, syn_u, meta)
    metrics = {
        k: _entry(
            k,
            fidelity["score"] if k == "quality_score" else fidelity[k]["score"],
            fidelity["ci"]["score" if k == "quality_score" else k],
            level,
        )
        for k in ("quality_score", "column_shapes", "column_pair_trends")
    }
    timings["fidelity"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    utility: dict[str, Any]
    if target is None:
        utility = {"skipped": "no --target: name the column TSTR/TRTR should predict"}
    elif hold_u is None:
        utility = {
            "skipped": "no --holdout: TSTR and TRTR are tested on real rows that neither the generator nor "
            "the models saw"
        }
    else:
        utility = T.tabular_utility(
            real_u, hold_u, syn_u, meta, target, rng=rngs["utility"], model=model, n_boot=n_boot, level=level
        )
        key = f"ratio_{utility['primary']}"
        metrics["tstr_trtr_ratio"] = _entry(
            "tstr_trtr_ratio", utility["ratio"][utility["primary"]], utility["ci"].get(key), level
        )
    if "skipped" in utility:
        warnings.append(f"utility skipped: {utility['skipped']}")
    timings["utility"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    privacy: dict[str, Any]
    if hold_u is None:
        privacy = {
            "skipped": "no --holdout: privacy compares synthetic rows' distances to the training rows with "
            "those of real rows the generator never saw (a holdout), so it needs one"
        }
        warnings.append(f"privacy skipped: {privacy['skipped']}")
    else:
        res = T.table_privacy(real_u, hold_u, syn_u, meta, rng=rngs["privacy"], n_boot=n_boot, level=level)
        privacy = res.as_dict()
        for k in ("dcr_share", "mia_auc", "exact_copy_share"):
            metrics[k] = _entry(k, privacy[k]["value"], privacy[k], level)
        if res.exact_copy_share.value > res.holdout_exact_copy_share:
            warnings.append(
                f"{100 * res.exact_copy_share.value:.1f}% of synthetic rows copy a training row exactly "
                f"(the holdout's rate: {100 * res.holdout_exact_copy_share:.1f}%)"
            )
    timings["privacy"] = time.perf_counter() - t0

    shapes = fidelity["column_shapes"]["details"]
    worst = sorted((c for c in shapes if not math.isnan(shapes[c]["score"])), key=lambda c: shapes[c]["score"])
    marginals = {
        c: {"type": meta.column(c).type, "real": real_u[c].to_numpy(), "synthetic": syn_u[c].to_numpy()}
        for c in worst[:MARGINAL_PLOTS]
    }
    settings = {
        "seed": seed,
        "n_boot": n_boot,
        "level": level,
        "max_rows": max_rows,
        "target": target,
        "task": utility.get("task", task),
        "model": model,
        "metadata": source,
    }
    return TableValidationReport(
        synthetic=_describe(syn_path, syn_t, len(syn_u)),
        real=_describe(real_path, real_t, len(real_u)),
        holdout=_describe(hold_path, hold_t, len(hold_u)) if hold_path is not None and hold_u is not None else None,
        columns={c.name: c.type for c in meta.columns},
        metrics=metrics,
        fidelity=fidelity,
        utility=utility,
        privacy=privacy,
        settings=settings,
        timings_s={k: round(v, 3) for k, v in timings.items()},
        warnings=warnings,
        marginals=marginals,
    )


def _correlations(real: Any, synthetic: Any, meta: Any) -> dict[str, Any]:
    """Pearson correlations of the numeric and datetime columns (missing values filled with 0, as SDMetrics)."""
    from simgen.generators.tabular.metadata import encode_column

    cols = [c for c in meta.columns if c.type in ("numerical", "datetime")][:HEATMAP_COLUMNS]
    if len(cols) < 2:
        return {"columns": [c.name for c in cols]}

    def corr(t: Any) -> list[list[float]]:
        x = np.column_stack([np.nan_to_num(encode_column(t[c.name], c, unknown="error")) for c in cols])
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.corrcoef(x, rowvar=False)
        return np.round(np.nan_to_num(r), 6).tolist()

    return {"columns": [c.name for c in cols], "real": corr(real), "synthetic": corr(synthetic)}


# --------------------------------------------------------------------------------------------------
# The HTML page


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.3e}"
    return html.escape(str(v))


def _shapes_plot(details: dict[str, dict[str, Any]]) -> str | None:
    from simgen.validators.report import REAL_COLOR, SYN_COLOR, fig_b64, figure

    items = [(c, d["score"], d["metric"]) for c, d in details.items() if not math.isnan(d["score"])]
    if not items:
        return None
    items.sort(key=lambda x: x[1])
    fig = figure(8, max(2.5, 0.22 * len(items) + 1))
    ax = fig.add_subplot()
    y = np.arange(len(items))
    colors = [SYN_COLOR if m == "KSComplement" else REAL_COLOR for _, _, m in items]
    ax.barh(y, [s for _, s, _ in items], color=colors)
    ax.set_yticks(y, [c for c, _, _ in items], fontsize=7 if len(items) > 20 else 9)
    ax.set_xlim(0, 1)
    ax.set_xlabel("column shape score (blue: KS complement, red: TV complement)")
    return fig_b64(fig)


def _marginals_plot(marginals: dict[str, dict[str, Any]]) -> str | None:
    import pandas as pd

    from simgen.validators.report import REAL_COLOR, SYN_COLOR, fig_b64, figure

    if not marginals:
        return None
    cols = min(3, len(marginals))
    rows = -(-len(marginals) // cols)
    fig = figure(12, 2.8 * rows)
    for i, (name, m) in enumerate(marginals.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        if m["type"] in ("numerical", "datetime"):
            r = pd.to_numeric(pd.Series(m["real"]), errors="coerce").dropna().to_numpy(float)
            s = pd.to_numeric(pd.Series(m["synthetic"]), errors="coerce").dropna().to_numpy(float)
            if m["type"] == "datetime":
                r = pd.to_datetime(pd.Series(m["real"]), errors="coerce").dropna().astype("int64").to_numpy() / 1e9
                s = pd.to_datetime(pd.Series(m["synthetic"]), errors="coerce").dropna().astype("int64").to_numpy() / 1e9
            both = np.concatenate([r, s])
            if both.size:
                edges = np.histogram_bin_edges(both, bins=30)
                ax.hist(r, bins=edges, density=True, alpha=0.55, color=REAL_COLOR, label="real")
                ax.hist(s, bins=edges, density=True, alpha=0.55, color=SYN_COLOR, label="synthetic")
        else:
            fr = pd.Series(m["real"]).astype(str).value_counts(normalize=True)
            fs = pd.Series(m["synthetic"]).astype(str).value_counts(normalize=True)
            cats = list(fr.index.union(fs.index))[:12]
            x = np.arange(len(cats))
            ax.bar(x - 0.2, [fr.get(c, 0.0) for c in cats], 0.4, color=REAL_COLOR, label="real")
            ax.bar(x + 0.2, [fs.get(c, 0.0) for c in cats], 0.4, color=SYN_COLOR, label="synthetic")
            ax.set_xticks(x, [c[:10] for c in cats], rotation=45, ha="right", fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    return fig_b64(fig)


def _heatmaps_plot(corr: dict[str, Any]) -> str | None:
    from simgen.validators.report import fig_b64, figure

    if "real" not in corr:
        return None
    names = corr["columns"]
    real, syn = np.asarray(corr["real"]), np.asarray(corr["synthetic"])
    fig = figure(15, 5.2)
    panels = (
        ("real", real, "coolwarm", -1.0),
        ("synthetic", syn, "coolwarm", -1.0),
        ("|real - synthetic|", np.abs(real - syn), "Reds", 0.0),
    )
    for i, (title, m, cmap, vmin) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=1.0)
        ax.set_title(title, fontsize=10)
        ticks = np.arange(len(names))
        labels = [n[:12] for n in names] if len(names) <= 20 else [""] * len(names)
        ax.set_xticks(ticks, labels, rotation=90, fontsize=6)
        ax.set_yticks(ticks, labels, fontsize=6)
        fig.colorbar(im, ax=ax, shrink=0.7)
    return fig_b64(fig)


def _metric_rows(metrics: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name, m in metrics.items():
        lo, hi = m["ci"]
        arrow = "higher is better" if m["higher_is_better"] else "see meaning"
        rows.append(
            f"<tr><td><b>{html.escape(name)}</b></td><td class=num>{_fmt(m['value'])}</td>"
            f"<td class=num>[{_fmt(lo)}, {_fmt(hi)}]</td><td>{arrow}</td>"
            f"<td>{html.escape(m['description'])}</td></tr>"
        )
    return "".join(rows)


def _skipped(section: dict[str, Any]) -> str:
    return f"<p class=muted>Skipped: {html.escape(section['skipped'])}</p>"


def _utility_html(u: dict[str, Any]) -> str:
    if "skipped" in u:
        return _skipped(u)
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td class=num>{_fmt(u['tstr'][k])}</td><td class=num>{_fmt(u['trtr'][k])}"
        f"</td><td class=num>{_fmt(u['gap'][k])}</td><td class=num>{_fmt(u['ratio'][k])}</td>"
        f"<td class=num>{_ci(u['ci'].get('tstr_' + k))}</td></tr>"
        for k in u["tstr"]
    )
    sizes = ", ".join(f"{k} {v}" for k, v in u["sizes"].items())
    return (
        f"<p>Task: <b>{u['task']}</b> of <b>{html.escape(u['target'])}</b> with a {u['model']} model; headline "
        f"metric <b>{u['primary']}</b>. TSTR trains on the synthetic table, TRTR on the real training table; "
        "both are tested on the real holdout. gap = TRTR - TSTR.</p>"
        "<table><tr><th>metric</th><th>TSTR</th><th>TRTR</th><th>gap</th><th>TSTR / TRTR</th>"
        f"<th>TSTR CI</th></tr>{rows}</table><p class=muted>rows: {sizes}</p>"
    )


def _ci(entry: dict[str, Any] | None) -> str:
    return f"[{_fmt(entry['ci'][0])}, {_fmt(entry['ci'][1])}]" if entry else ""


def _privacy_html(p: dict[str, Any]) -> str:
    if "skipped" in p:
        return _skipped(p)
    d, n = p["dcr"], p["nndr"]
    rows = "".join(
        f"<tr><td>{label}</td><td class=num>{_fmt(a['p05'])}</td><td class=num>{_fmt(a['median'])}</td>"
        f"<td class=num>{_fmt(b['p05'])}</td><td class=num>{_fmt(b['median'])}</td></tr>"
        for label, a, b in (
            ("DCR", d["synthetic_to_train"], d["holdout_to_train"]),
            ("NNDR", n["synthetic_to_train"], n["holdout_to_train"]),
        )
    )
    from simgen.validators.report import dcr_plot, img_tag

    plot = dcr_plot(p)

    return (
        "<table><tr><th></th><th>synthetic→train p5</th><th>median</th><th>holdout→train p5</th><th>median</th>"
        f"</tr>{rows}</table>"
        f"<p>Exact copies: {_fmt(p['exact_copy_share']['value'])} of synthetic rows (holdout baseline "
        f"{_fmt(p['exact_copy_share']['baseline'])}). DCR share {_fmt(p['dcr_share']['value'])} (ideal 0.5); "
        f"membership-inference AUC {_fmt(p['mia_auc']['value'])} (ideal 0.5).</p>"
        + (img_tag(plot, "DCR histograms", "640px") if plot else "")
        + f"<p class=muted>Gower distances ({html.escape(p['metric'])}); sizes "
        f"{html.escape(json.dumps(p['sizes']))}.</p>"
    )


def _render(report: TableValidationReport) -> str:
    from simgen import __version__
    from simgen.validators.report import CSS, img_tag

    f = report.fidelity
    level = f"{100 * report.settings['level']:.0f}%"
    side = (
        f"<span class=syn><b>synthetic</b></span> {html.escape(report.synthetic['path'])} "
        f"({report.synthetic['rows']} rows) vs <span class=real><b>real</b></span> "
        f"{html.escape(report.real['path'])} ({report.real['rows']} rows)"
    )
    if report.holdout:
        side += f", holdout {html.escape(report.holdout['path'])} ({report.holdout['rows']} rows)"
    st = report.settings
    config = (
        f"{len(report.columns)} columns (types {html.escape(st['metadata'])}); seed {st['seed']}; "
        f"{st['n_boot']} bootstrap resamples, {level} intervals; simgen {__version__}"
    )
    warn = "".join(f"<li class=warn>{html.escape(w)}</li>" for w in report.warnings)
    shape_rows = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{report.columns.get(c, '')}</td><td>{d['metric']}</td>"
        f"<td class=num>{_fmt(d['score'])}</td></tr>"
        for c, d in sorted(f["column_shapes"]["details"].items(), key=lambda kv: (np.nan_to_num(kv[1]["score"]), kv[0]))
    )
    pairs = sorted(
        (p for p in f["column_pair_trends"]["details"] if not math.isnan(p["score"])), key=lambda p: p["score"]
    )[:15]
    pair_rows = "".join(
        f"<tr><td>{html.escape(' / '.join(p['columns']))}</td><td>{p['metric']}</td>"
        f"<td class=num>{_fmt(p['score'])}</td></tr>"
        for p in pairs
    )
    shapes, marg, heat = _shapes_plot(f["column_shapes"]["details"]), _marginals_plot(report.marginals), None
    heat = _heatmaps_plot(f["correlations"])
    sections = [
        "<h1>simgen validation report: tables</h1>",
        f"<p>{side}.<br><span class=muted>{config}</span></p>",
        f"<ul>{warn}</ul>" if warn else "",
        "<h2>Scores</h2>",
        f"<table><tr><th>metric</th><th>value</th><th>{level} CI</th><th></th><th>meaning</th></tr>"
        f"{_metric_rows(report.metrics)}</table>",
        "<p class=muted>Fidelity follows SDMetrics' published definitions. Intervals are percentile bootstrap "
        "intervals over resampled rows; the fidelity intervals are recentred on the full-data score.</p>",
        "<h2>Fidelity: column shapes</h2>",
        img_tag(shapes, "column shape scores") if shapes else "",
        f"<table><tr><th>column</th><th>type</th><th>metric</th><th>score</th></tr>{shape_rows}</table>",
        "<h2>Marginals: real vs synthetic</h2>",
        "<p class=muted>The columns with the lowest shape scores.</p>",
        img_tag(marg, "marginal distributions") if marg else "<p class=muted>No column to plot.</p>",
        "<h2>Fidelity: column-pair trends</h2>",
        img_tag(heat, "correlation heatmaps") if heat else "<p class=muted>Fewer than 2 numeric columns.</p>",
        f"<table><tr><th>pair (lowest 15)</th><th>metric</th><th>score</th></tr>{pair_rows}</table>",
        "<h2>Utility: train on synthetic, test on real</h2>",
        _utility_html(report.utility),
        "<h2>Privacy</h2>",
        _privacy_html(report.privacy),
        f"<p class=muted>Timings (s): {html.escape(json.dumps(report.timings_s))}</p>",
    ]
    head = f'<head><meta charset="utf-8"><title>simgen validation report: tables</title><style>{CSS}</style></head>'
    body = "\n".join(s for s in sections if s)
    return f'<!DOCTYPE html>\n<html lang="en">{head}\n<body>\n{body}\n</body></html>\n'
