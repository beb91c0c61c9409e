"""The coverage report as one self-contained HTML page (plots are inline base64 PNGs, no external resources).

Sections: a summary (frames, cells covered, t-wise coverage, acceptance), frames per cell, frames per level
of each factor, a heat map of frames per pair of levels for each pair of factors (an empty square is a
pair no frame shows), acceptance per constraint, and per-cell label statistics (objects per frame, and
visibility and truncation histograms as heat maps over the cells). Input is :func:`coverage_report`'s dict,
so the page can be drawn again from ``coverage.json`` alone. Plots use matplotlib's object API through the
validation report's helpers (matplotlib is in the ``[metrics]`` extra).
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

# The validation report's figure helpers: one way to draw an inline plot in simgen's HTML pages.
from simgen.validators.report import CSS, fig_b64, figure, img_tag

#: The most factor pairs drawn as heat maps (a page with 32 factors would otherwise hold 496).
MAX_PAIR_PLOTS = 12
#: The most cells drawn one bar (or row) each; more are summarized.
MAX_CELLS_SHOWN = 200


def _num(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _cell_label(levels: Mapping[str, Any], names: list[str]) -> str:
    # In the factors' order, as the column header names them (a cell's levels may come back key-sorted).
    values = (levels.get(name) for name in names)
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _frames_per_cell_plot(cells: list[dict[str, Any]]) -> str | None:
    if not cells:
        return None
    shown = cells[:MAX_CELLS_SHOWN]
    fig = figure(max(5.0, 0.22 * len(shown) + 2), 3.0)
    ax = fig.add_subplot()
    ax.bar(np.arange(len(shown)), [c["frames"] for c in shown], color="#1f77b4")
    ax.set_xlabel("cell index")
    ax.set_ylabel("frames")
    if len(shown) <= 40:
        ax.set_xticks(np.arange(len(shown)), [str(c["index"]) for c in shown], fontsize=7)
    return fig_b64(fig)


def _levels_plot(levels: Mapping[str, Mapping[str, int]]) -> str | None:
    items = list(levels.items())
    if not items:
        return None
    cols = min(4, len(items))
    rows = -(-len(items) // cols)
    fig = figure(3.2 * cols, 2.4 * rows)
    for i, (name, counts) in enumerate(items):
        ax = fig.add_subplot(rows, cols, i + 1)
        labels = list(counts)
        values = [counts[k] for k in labels]
        ax.bar(np.arange(len(labels)), values, color=["#d62728" if v == 0 else "#1f77b4" for v in values])
        ax.set_xticks(np.arange(len(labels)), labels, rotation=45 if len(labels) > 4 else 0, fontsize=7, ha="right")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    return fig_b64(fig)


def _pair_plots(report: Mapping[str, Any]) -> str | None:
    factors = report["factors"]
    if len(factors) < 2:
        return None
    pairs = list(itertools.combinations(range(len(factors)), 2))[:MAX_PAIR_PLOTS]
    cols = min(4, len(pairs))
    rows = -(-len(pairs) // cols)
    fig = figure(3.4 * cols, 3.0 * rows)
    for k, (a, b) in enumerate(pairs):
        fa, fb = factors[a], factors[b]
        grid = np.zeros((len(fa["levels"]), len(fb["levels"])), dtype=np.int64)
        for cell in report["cells"]["frames_per_cell"]:
            grid[cell["slots"][a], cell["slots"][b]] += cell["frames"]
        ax = fig.add_subplot(rows, cols, k + 1)
        masked = np.ma.masked_equal(grid, 0)  # uncovered pairs stay white
        ax.imshow(masked, cmap="Blues", aspect="auto", vmin=0)
        ax.set_yticks(np.arange(len(fa["levels"])), fa["levels"], fontsize=7)
        ax.set_xticks(np.arange(len(fb["levels"])), fb["levels"], fontsize=7, rotation=45, ha="right")
        ax.set_ylabel(fa["name"], fontsize=8)
        ax.set_xlabel(fb["name"], fontsize=8)
        top = max(int(grid.max()), 1)
        for (i, j), v in np.ndenumerate(grid):
            color = "#c33" if not v else "w" if v > top / 2 else "k"
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color=color, weight="bold" if not v else None)
    return fig_b64(fig)


def _constraints_plot(constraints: Mapping[str, Mapping[str, Any]]) -> str | None:
    names = [n for n, c in constraints.items() if c.get("acceptance_rate") is not None]
    if not names:
        return None
    fig = figure(max(5.0, 0.6 * len(names) + 2), 3.0)
    ax = fig.add_subplot()
    rates = [constraints[n]["acceptance_rate"] for n in names]
    ax.bar(np.arange(len(names)), rates, color=["#d62728" if r < 0.05 else "#1f77b4" for r in rates])
    ax.set_xticks(np.arange(len(names)), names, rotation=30 if len(names) > 4 else 0, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("acceptance rate")
    return fig_b64(fig)


def _histogram_heatmap(per_cell: list[dict[str, Any]], key: str) -> str | None:
    shown = per_cell[:MAX_CELLS_SHOWN]
    if not shown or not any(sum(c[key]["counts"]) for c in shown):
        return None
    counts = np.array([c[key]["counts"] for c in shown], dtype=np.float64)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    edges = shown[0][key]["edges"]
    fig = figure(6.0, max(2.0, 0.25 * len(shown) + 1.2))
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="viridis", aspect="auto", vmin=0, vmax=1, extent=(edges[0], edges[-1], len(shown), 0))
    ax.set_xlabel(key)
    ax.set_ylabel("cell")
    if len(shown) <= 40:
        ax.set_yticks(np.arange(len(shown)) + 0.5, [str(c["index"]) for c in shown], fontsize=7)
    fig.colorbar(image, ax=ax, label="share")
    return fig_b64(fig)


def render_coverage_html(report: Mapping[str, Any], *, title: str = "simgen coverage report") -> str:
    """The coverage report (:func:`~simgen.scenarios.coverage.coverage_report`) as one HTML page."""
    cells = report["cells"]
    tw = report["t_wise"]
    acc = report.get("acceptance") or {}
    summary = f"{report['frames']} frames; {cells['covered']} cells covered"
    if cells.get("planned") is not None:
        summary += f" of {cells['planned']} planned"
    if tw.get("percent") is not None:
        summary += f"; {tw['strength']}-wise coverage {_num(tw['percent'])}% ({tw['covered']} of {tw['total']} tuples)"
    if tw.get("design_percent") is not None:
        summary += f", the design's own {_num(tw['design_percent'])}%"
    if acc.get("acceptance_rate") is not None:
        summary += (
            f"; acceptance {_num(100 * acc['acceptance_rate'])}% ({acc['frames']} frames in {acc['attempts']} attempts)"
        )
    names = [f["name"] for f in report["factors"]]
    cell_rows = "".join(
        f"<tr><td class=num>{c['index']}</td><td>{html.escape(_cell_label(c['levels'], names))}</td>"
        f"<td class=num>{c['frames']}</td></tr>"
        for c in cells["frames_per_cell"][:MAX_CELLS_SHOWN]
    )
    factor_head = html.escape(", ".join(names))
    constraint_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td class=num>{c.get('attempts', '-')}</td>"
        f"<td class=num>{c.get('held', '-')}</td><td class=num>{_num(c.get('acceptance_rate'), 3)}</td>"
        f"<td class=num>{c.get('not_enforced', '-')}</td><td class=num>{_num(c.get('closest_value'), 4)}</td>"
        f"<td class=num>{c.get('held_on_frames', '-')}</td></tr>"
        for name, c in report["constraints"].items()
    )
    per_cell_rows = "".join(
        f"<tr><td class=num>{c['index']}</td><td>{html.escape(_cell_label(c['levels'], names))}</td>"
        f"<td class=num>{c['frames']}</td><td class=num>{_num(c['objects_per_frame']['mean'])}</td>"
        f"<td class=num>{_num(c['objects_per_frame']['min'], 0)}-{_num(c['objects_per_frame']['max'], 0)}</td>"
        f"<td class=num>{c['visibility']['missing']}</td><td class=num>{_num(c['brightness']['mean'], 3)}</td></tr>"
        for c in report["per_cell"][:MAX_CELLS_SHOWN]
    )
    plots = {
        "cells": _frames_per_cell_plot(cells["frames_per_cell"]),
        "levels": _levels_plot(report["levels"]),
        "pairs": _pair_plots(report),
        "constraints": _constraints_plot(report["constraints"]),
        "visibility": _histogram_heatmap(report["per_cell"], "visibility"),
        "truncation": _histogram_heatmap(report["per_cell"], "truncation"),
    }
    more = len(cells["frames_per_cell"]) - MAX_CELLS_SHOWN
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(summary)}</p>",
        "<h2>Frames per cell</h2>",
        img_tag(plots["cells"], "frames per cell") if plots["cells"] else "",
        f"<table><tr><th>cell</th><th>{factor_head}</th><th>frames</th></tr>{cell_rows}</table>",
        f"<p class=muted>{more} more cells in coverage.json.</p>" if more > 0 else "",
        "<h2>Frames per level</h2>",
        img_tag(plots["levels"], "frames per level") if plots["levels"] else "",
        "<h2>Pairs of levels</h2>",
        img_tag(plots["pairs"], "frames per pair of levels") if plots["pairs"] else "<p class=muted>One factor.</p>",
        "<p class=muted>Each square counts the frames showing that pair of levels; a red 0 marks a pair no "
        "frame shows.</p>",
        "<h2>Constraints</h2>",
        (
            "<table><tr><th>constraint</th><th>attempts</th><th>held</th><th>acceptance</th><th>not enforced</th>"
            f"<th>closest value</th><th>held on kept frames</th></tr>{constraint_rows}</table>"
            if constraint_rows
            else "<p class=muted>No constraints.</p>"
        ),
        img_tag(plots["constraints"], "acceptance per constraint") if plots["constraints"] else "",
        "<h2>Labels per cell</h2>",
        "<table><tr><th>cell</th><th>levels</th><th>frames</th><th>objects per frame</th><th>range</th>"
        f"<th>objects without visibility</th><th>brightness</th></tr>{per_cell_rows}</table>",
        "<p class=muted>Histograms of the cells' objects (the share of each cell's objects in each bin).</p>",
        img_tag(plots["visibility"], "visibility per cell") if plots["visibility"] else "",
        img_tag(plots["truncation"], "truncation per cell") if plots["truncation"] else "",
    ]
    head = f'<head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{CSS}</style></head>'
    body = "\n".join(part for part in sections if part)
    return f'<!DOCTYPE html>\n<html lang="en">{head}\n<body>\n{body}\n</body></html>\n'
