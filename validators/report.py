"""Write a validation report: ``report.json`` for machines, ``report.html`` (self-contained) for people.

The HTML has no external resources: every picture is an inline base64 PNG. Sections: summary and
warnings, the metric table with confidence intervals, TSTR/TRTR utility per class, sample grids of
both datasets side by side with their boxes, objects per class, histograms of the randomized
parameters from the synthetic manifest, a 2-D PCA projection of both feature sets, and the label
problems. Plots are drawn with matplotlib's object API (no pyplot, no global backend change).
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from simgen.errors import DependencyMissing, SimgenError
from simgen.io import atomic_write_text, encode_png
from simgen.validators.datasets import ImageSet, read_rgb
from simgen.validators.pipeline import METRIC_INFO, ValidationReport

__all__ = ["dcr_plot", "draw_boxes", "privacy_section", "render_html", "sample_grid", "write_report"]

log = logging.getLogger(__name__)

SYN_COLOR = "#1f77b4"
REAL_COLOR = "#d62728"
MAX_PROBLEMS_SHOWN = 200


def _palette(n: int) -> np.ndarray:
    hues = (np.arange(max(n, 1)) * 137.508) % 180
    hsv = np.stack([hues, np.full_like(hues, 220), np.full_like(hues, 255)], axis=1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def draw_boxes(rgb: np.ndarray, anns: list[dict[str, Any]], names: dict[int, str]) -> np.ndarray:
    """A copy of ``rgb`` with each annotation's box and class name drawn (colour per class)."""
    out = rgb.copy()
    ids = sorted(names)
    colors = _palette(len(ids))
    color_of = {cid: tuple(int(v) for v in colors[i]) for i, cid in enumerate(ids)}
    thick = max(1, round(min(rgb.shape[:2]) / 240))
    for ann in anns:
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list | tuple) and len(bbox) == 4):
            continue
        x, y, w, h = (float(v) for v in bbox)
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            continue
        c = color_of.get(ann.get("category_id"), (255, 255, 255))
        cv2.rectangle(out, (round(x), round(y)), (round(x + w) - 1, round(y + h) - 1), c, thick)
        label = names.get(ann.get("category_id"), "?")
        cv2.putText(out, label, (round(x), max(round(y) - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, c, thick,
                    cv2.LINE_AA)  # fmt: skip
    return out


def sample_grid(image_set: ImageSet, *, n: int = 9, cols: int = 3, tile_width: int = 240) -> np.ndarray:
    """A grid of the first ``n`` selected images (evenly spaced over the selection), boxes drawn."""
    if not image_set.paths:
        raise SimgenError(f"{image_set.root} has no images to show")
    picks = sorted({int(round(v)) for v in np.linspace(0, len(image_set.paths) - 1, min(n, len(image_set.paths)))})
    by_image = image_set.annotations_by_image() if image_set.coco is not None else {}
    names = image_set.categories
    tiles = []
    for i in picks:
        rgb = read_rgb(image_set.paths[i])
        if image_set.image_ids is not None:
            rgb = draw_boxes(rgb, by_image.get(image_set.image_ids[i], []), names)
        scale = tile_width / rgb.shape[1]
        height = max(1, round(rgb.shape[0] * scale))
        tiles.append(cv2.resize(rgb, (tile_width, height), interpolation=cv2.INTER_AREA))
    cols = min(cols, len(tiles))
    rows = -(-len(tiles) // cols)
    h = max(t.shape[0] for t in tiles)
    gap = 4
    grid = np.full((rows * h + (rows - 1) * gap, cols * tile_width + (cols - 1) * gap, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        y0, x0 = r * (h + gap), c * (tile_width + gap)
        grid[y0 : y0 + tile.shape[0], x0 : x0 + tile_width] = tile
    return grid


def png_b64(rgb: np.ndarray) -> str:
    return base64.b64encode(encode_png(rgb)).decode("ascii")


def figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise DependencyMissing("matplotlib", "metrics", "report plots") from exc
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def fig_b64(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def img_tag(b64: str, alt: str, width: str | None = None) -> str:
    style = f' style="width:{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"{style}>'


def _class_counts_plot(counts: dict[str, dict[str, int]]) -> str | None:
    classes = sorted(set(counts.get("synthetic", {})) | set(counts.get("real", {})))
    if not classes:
        return None
    fig = figure(max(5.0, 0.5 * len(classes) + 2), 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(classes))
    syn = [counts.get("synthetic", {}).get(c, 0) for c in classes]
    real = [counts.get("real", {}).get(c, 0) for c in classes]
    ax.bar(x - 0.2, syn, 0.4, label="synthetic", color=SYN_COLOR)
    ax.bar(x + 0.2, real, 0.4, label="real", color=REAL_COLOR)
    ax.set_xticks(x, classes, rotation=45 if len(classes) > 6 else 0, ha="right" if len(classes) > 6 else "center")
    ax.set_ylabel("objects")
    ax.legend()
    return fig_b64(fig)


def _parameter_plot(parameters: dict[str, list[float]], max_plots: int = 24) -> str | None:
    items = [(k, v) for k, v in parameters.items() if len(v) > 0][:max_plots]
    if not items:
        return None
    cols = 4
    rows = -(-len(items) // cols)
    fig = figure(12, 2.3 * rows)
    for i, (name, values) in enumerate(items):
        ax = fig.add_subplot(rows, cols, i + 1)
        v = np.asarray(values, dtype=float)
        bins = min(30, max(5, int(np.sqrt(v.size)) + 1))
        if np.ptp(v) == 0:  # a constant: one bar, labelled
            ax.bar([v[0]], [v.size], width=1.0 if v[0] == 0 else abs(v[0]) * 0.1, color=SYN_COLOR)
            ax.text(0.5, 0.5, f"constant {v[0]:g}", transform=ax.transAxes, ha="center", fontsize=8)
        else:
            ax.hist(v, bins=bins, color=SYN_COLOR)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    return fig_b64(fig)


def _projection_plot(projection: dict[str, Any]) -> str | None:
    real, syn = np.asarray(projection.get("real", [])), np.asarray(projection.get("synthetic", []))
    if real.size == 0 and syn.size == 0:
        return None
    fig = figure(6, 5)
    ax = fig.add_subplot()
    if syn.size:
        ax.scatter(syn[:, 0], syn[:, 1], s=14, alpha=0.6, label=f"synthetic ({len(syn)})", color=SYN_COLOR)
    if real.size:
        ax.scatter(real[:, 0], real[:, 1], s=14, alpha=0.6, label=f"real ({len(real)})", color=REAL_COLOR, marker="^")
    ratio = [*projection.get("explained_variance_ratio", []), 0.0, 0.0]
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.1f}% of variance)")
    ax.legend()
    return fig_b64(fig)


def _utility_plot(utility: dict[str, Any]) -> str | None:
    if "tstr" not in utility:
        return None
    key = "accuracy" if utility.get("task") == "classification" else "AP50"
    classes = [c for c in utility["classes"] if c in utility["tstr"]["per_class"]]
    if not classes:
        return None
    fig = figure(max(5.0, 0.6 * len(classes) + 2), 3.2)
    ax = fig.add_subplot()
    x = np.arange(len(classes))
    tstr = [utility["tstr"]["per_class"][c].get(key, 0.0) for c in classes]
    ax.bar(x - 0.2, tstr, 0.4, label="TSTR (train synthetic)", color=SYN_COLOR)
    ax.bar(x + 0.2, [utility["trtr"]["per_class"].get(c, {}).get(key, 0.0) for c in classes], 0.4,
           label="TRTR (train real)", color=REAL_COLOR)  # fmt: skip
    ax.set_xticks(x, classes)
    ax.set_ylabel(f"{key} on real test images")
    ax.set_ylim(0, 1.05)
    ax.legend()
    return fig_b64(fig)


def dcr_plot(privacy: dict[str, Any]) -> str | None:
    """Histograms of synthetic->train DCR against the baseline's (holdout->train, or train leave-one-out)."""
    hist = privacy.get("dcr_histogram") or {}
    if not hist.get("edges"):
        return None
    baseline = "holdout -> train" if privacy.get("mode", "holdout") == "holdout" else "train -> other train"
    edges = np.asarray(hist["edges"])
    fig = figure(7, 3.2)
    ax = fig.add_subplot()
    for key, label, color in (("synthetic", "synthetic -> train", SYN_COLOR), ("baseline", baseline, REAL_COLOR)):
        counts = np.asarray(hist[key], float)
        ax.bar(edges[:-1], counts / max(counts.sum(), 1.0), width=np.diff(edges), align="edge", alpha=0.55,
               color=color, label=label)  # fmt: skip
    ax.set_xlabel(f"distance to the closest training record ({privacy.get('metric', '')}; last bin: the rest)")
    ax.set_ylabel("share of records")
    ax.legend()
    return fig_b64(fig)


def privacy_section(privacy: dict[str, Any]) -> str:
    """The image report's memorisation check: copies of, and closeness to, the real (training) images."""
    if not privacy:
        return ""
    if "skipped" in privacy:
        return f"<p class=muted>Skipped: {html.escape(privacy['skipped'])}</p>"
    status = ("<span class=bad>flagged</span>: " + "; ".join(html.escape(f) for f in privacy["flags"])
              if privacy["flagged"] else "<span class=ok>no sign of memorisation</span>")  # fmt: skip
    copies = privacy["exact_copy_share"]
    rows = [("exact-copy share", copies["value"], copies["ci"], f"baseline {_fmt(copies['baseline'])}")]
    if privacy["mode"] == "holdout":
        rows += [
            ("DCR share", privacy["dcr_share"]["value"], privacy["dcr_share"]["ci"], "ideal 0.5"),
            ("membership-inference AUC", privacy["mia_auc"]["value"], privacy["mia_auc"]["ci"], "ideal 0.5"),
        ]
        base = privacy["dcr"]["holdout_to_train"]
    else:
        close = privacy["close_share"]
        rows.append(("closer than 95% of real pairs", close["value"], close["ci"], "about 0.05 expected"))
        base = privacy["dcr"]["train_to_train"]
    syn = privacy["dcr"]["synthetic_to_train"]
    body = "".join(f"<tr><td>{name}</td><td class=num>{_fmt(v)}</td><td class=num>[{_fmt(ci[0])}, {_fmt(ci[1])}]"
                   f"</td><td>{note}</td></tr>" for name, v, ci, note in rows)  # fmt: skip
    plot = dcr_plot(privacy)
    return (f"<p>{status}.</p><table><tr><th>check</th><th>value</th><th>CI</th><th></th></tr>{body}</table>"
            f"<p>Median distance to the closest real image: synthetic {_fmt(syn['median'])}, baseline "
            f"{_fmt(base['median'])}.</p>" + (img_tag(plot, "DCR histograms", "640px") if plot else "")
            + "<p class=muted>Distances between feature vectors (" + html.escape(str(privacy["metric"]))
            + "); exact copies within " + _fmt(float(privacy["exact_tol"])) + ".</p>")  # fmt: skip


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4f}"
    return html.escape(str(v))


def _metric_rows(metrics: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name in METRIC_INFO:
        m = metrics.get(name)
        if m is None:
            continue
        lo, hi = m["ci"]
        arrow = "higher is better" if m["higher_is_better"] else "lower is better"
        std = m.get("subset_std")
        extra = f" (subset std {_fmt(std)})" if std is not None and std > 1e-12 else ""
        title = name.upper() if len(name) <= 3 else name
        rows.append(
            f"<tr><td><b>{title}</b></td><td class=num>{_fmt(m['value'])}{extra}</td>"
            f"<td class=num>[{_fmt(lo)}, {_fmt(hi)}]</td><td>{arrow}</td><td>{html.escape(m['description'])}</td></tr>"
        )
    return "\n".join(rows)


def _utility_section(utility: dict[str, Any]) -> str:
    if "skipped" in utility:
        return f"<p class=muted>Skipped: {html.escape(utility['skipped'])}</p>"
    overall_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td class=num>{_fmt(utility['tstr']['overall'][k])}</td>"
        f"<td class=num>{_fmt(utility['trtr']['overall'].get(k, float('nan')))}</td>"
        f"<td class=num>{_fmt(utility['gap']['overall'].get(k, float('nan')))}</td></tr>"
        for k in utility["tstr"]["overall"]
    )
    keys = [k for k in next(iter(utility["tstr"]["per_class"].values()), {}) if k != "support"]
    head = "".join(f"<th>TSTR {k}</th><th>TRTR {k}</th><th>gap</th>" for k in keys)
    body = []
    for c in utility["classes"]:
        t, r = utility["tstr"]["per_class"].get(c), utility["trtr"]["per_class"].get(c)
        if t is None or r is None:
            continue
        g = utility["gap"]["per_class"].get(c, {})
        cells = "".join(f"<td class=num>{_fmt(t[k])}</td><td class=num>{_fmt(r[k])}</td><td class=num>{_fmt(g.get(k))}"
                        "</td>" for k in keys)  # fmt: skip
        n_test = utility.get("counts", {}).get("real_test", {}).get(c, "")
        body.append(f"<tr><td>{html.escape(c)}</td><td class=num>{n_test}</td>{cells}</tr>")
    settings = ", ".join(f"{k}={v}" for k, v in utility.get("settings", {}).items())
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in utility.get("notes", []))
    plot = _utility_plot(utility)
    return (
        f"<p>Task: <b>{html.escape(utility['task'])}</b>. TSTR trains on synthetic data, TRTR on real training "
        "data; both are tested on the same held-out real data. gap = TRTR - TSTR (positive: the synthetic data "
        "trains a worse model).</p>"
        f"<table><tr><th>overall</th><th>TSTR</th><th>TRTR</th><th>gap</th></tr>{overall_rows}</table>"
        f"<table><tr><th>class</th><th>real test n</th>{head}</tr>{''.join(body)}</table>"
        + (img_tag(plot, "TSTR vs TRTR per class") if plot else "")
        + f"<p class=muted>{html.escape(settings)}</p>"
        + (f"<ul>{notes}</ul>" if notes else "")
    )


def _blank(v: Any) -> str:
    return "" if v is None else html.escape(str(v))


def _labels_section(labels: dict[str, dict[str, Any]]) -> str:
    parts = []
    for side, info in labels.items():
        if not info.get("checked"):
            parts.append(f"<p><b>{side}</b>: not checked ({html.escape(info.get('reason', ''))})</p>")
            continue
        n = info["n_problems"]
        status = "<span class=ok>no problems</span>" if n == 0 else f"<span class=bad>{n} problems</span>"
        kinds = ", ".join(f"{html.escape(k)}: {v}" for k, v in info["by_kind"].items())
        parts.append(f"<p><b>{side}</b>: {status}{' (' + kinds + ')' if kinds else ''}</p>")
        if n:
            rows = "".join(
                f"<tr><td>{html.escape(p['kind'])}</td><td>{_blank(p.get('frame'))}</td><td>{_blank(p.get('image_id'))}"
                f"</td><td>{_blank(p.get('annotation_id'))}</td><td>{html.escape(p['message'])}</td></tr>"
                for p in info["problems"][:MAX_PROBLEMS_SHOWN]
            )
            more = f"<p class=muted>{n - MAX_PROBLEMS_SHOWN} more in report.json</p>" if n > MAX_PROBLEMS_SHOWN else ""
            parts.append(f"<table><tr><th>kind</th><th>frame</th><th>image</th><th>annotation</th><th>message</th></tr>"
                         f"{rows}</table>{more}")  # fmt: skip
    return "\n".join(parts)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0;font-size:13px} td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#777;font-size:12px} .ok{color:#2a7} .bad{color:#c33;font-weight:bold} .warn{color:#a60}
.side{display:flex;gap:16px;flex-wrap:wrap} .side figure{margin:0;flex:1;min-width:300px}
.side img{max-width:100%;border:1px solid #ddd} figcaption{font-weight:bold;margin-bottom:4px}
.syn{color:#1f77b4} .real{color:#d62728} img{max-width:100%}
"""


def render_html(report: ValidationReport) -> str:
    """The report as one self-contained HTML page."""
    syn, real = report.synthetic, report.real
    sets = report.image_sets
    grids = []
    for side, cls in (("synthetic", "syn"), ("real", "real")):
        image_set = sets.get(side)
        if image_set is None:
            continue
        try:
            grids.append(f"<figure><figcaption class={cls}>{side}: {html.escape(str(image_set.root))}</figcaption>"
                         f"{img_tag(png_b64(sample_grid(image_set)), f'{side} samples')}</figure>")  # fmt: skip
        except SimgenError as exc:
            grids.append(f"<figure><figcaption>{side}</figcaption><p class=bad>{html.escape(str(exc))}</p></figure>")
    counts = _class_counts_plot(report.class_counts)
    count_rows = "".join(
        f"<tr><td>{html.escape(c)}</td><td class=num>{report.class_counts.get('synthetic', {}).get(c, 0)}</td>"
        f"<td class=num>{report.class_counts.get('real', {}).get(c, 0)}</td></tr>"
        for c in sorted(set(report.class_counts.get("synthetic", {})) | set(report.class_counts.get("real", {})))
    )
    params = _parameter_plot(report.parameters)
    proj = _projection_plot(report.projection)
    warn = "".join(f"<li class=warn>{html.escape(w)}</li>" for w in report.warnings)
    from simgen import __version__

    level = f"{100 * report.settings.get('level', 0.95):.0f}%"
    st = report.settings
    summary = (
        f"<span class=syn><b>synthetic</b></span> {html.escape(syn['path'])} ({syn['images']} of "
        f"{syn['total_images']} images, {syn['kind']}) vs <span class=real><b>real</b></span> "
        f"{html.escape(real['path'])} ({real['images']} of {real['total_images']} images, {real['kind']})."
    )
    config = (
        f"features: {html.escape(report.extractor)} ({st.get('feature_dim')}-d); seed {st.get('seed')}; "
        f"{st.get('n_boot')} bootstrap resamples, {level} intervals; simgen {__version__}"
    )
    if count_rows:
        counts_table = f"<table><tr><th>class</th><th>synthetic</th><th>real</th></tr>{count_rows}</table>"
    else:
        counts_table = "<p class=muted>No class labels on either side.</p>"
    no_manifest = "<p class=muted>No manifest.jsonl with sampled values.</p>"
    sections = [
        "<h1>simgen validation report</h1>",
        f"<p>{summary}<br><span class=muted>{config}</span></p>",
        f"<ul>{warn}</ul>" if warn else "",
        "<h2>Distribution metrics</h2>",
        f"<table><tr><th>metric</th><th>value</th><th>{level} CI</th><th></th><th>meaning</th></tr>",
        f"{_metric_rows(report.metrics)}</table>",
        "<p class=muted>All metrics compare feature vectors. Intervals are percentile bootstrap intervals: both "
        "sets are resampled with replacement. KID and MMD leave out pairs of copies of one image, like their "
        "diagonal; FID's bootstrap distribution is recentred on the estimate, because copies act as a smaller "
        "sample and inflate FID; PRDC keeps the k-NN balls of the full sets and resamples the samples it averages. "
        "FID and KID grow as sample sizes shrink: compare runs of equal size.</p>",
        "<h2>Utility: train on synthetic, test on real</h2>",
        _utility_section(report.utility),
        "<h2>Samples</h2>",
        f"<div class=side>{''.join(grids)}</div>",
        "<h2>Objects per class</h2>",
        counts_table,
        img_tag(counts, "objects per class") if counts else "",
        "<h2>Randomized parameters (synthetic manifest)</h2>",
        img_tag(params, "parameter histograms") if params else no_manifest,
        "<h2>Feature projection</h2>",
        img_tag(proj, "PCA projection of both feature sets", "640px") if proj else "",
        "<p class=muted>PCA fitted on both feature sets together; overlapping clouds mean similar feature "
        "statistics.</p>",
        "<h2>Privacy: memorisation check</h2>" if report.privacy else "",
        privacy_section(report.privacy),
        "<h2>Label validator</h2>",
        _labels_section(report.labels),
        f"<p class=muted>Timings (s): {html.escape(json.dumps(report.timings_s))}</p>",
    ]
    head = f'<head><meta charset="utf-8"><title>simgen validation report</title><style>{CSS}</style></head>'
    body = "\n".join(part for part in sections if part)
    return f'<!DOCTYPE html>\n<html lang="en">{head}\n<body>\n{body}\n</body></html>\n'


def write_report(report: Any, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out_dir`` (atomically); return both paths.

    ``report`` is an image :class:`ValidationReport` or any report with ``as_dict()`` and ``html()`` (tables, text).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    document = json.dumps(finite(report.as_dict()), indent=2, allow_nan=False, default=json_default)
    page = render_html(report) if isinstance(report, ValidationReport) else report.html()
    for name, text in (("report.json", document), ("report.html", page)):
        target = out / name
        atomic_write_text(target, text)
        paths.append(target)
    log.info("wrote %s and %s", paths[0], paths[1])
    return paths[0], paths[1]


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (JSON has neither)."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
