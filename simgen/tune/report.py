"""What a tune writes: ``best.yaml`` (a spec under a header comment), ``report.json``, a self-contained ``report.html``.

The page reuses the validation report's pieces (its CSS, matplotlib figure helpers and sample grids from
:mod:`simgen.validators.report`); every picture is an inline PNG, nothing is fetched.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simgen.errors import SimgenError
from simgen.spec.loader import LoadedSpec, dump_spec, dump_spec_yaml, load_spec

if TYPE_CHECKING:
    from simgen.tune.study import Tuner

__all__ = ["relocate_spec", "render_html", "write_best_yaml", "write_reports"]

log = logging.getLogger(__name__)

PYBULLET_PREFIX = "pybullet_data:"
GOOD, BAD, NEUTRAL = "#2a9d4b", "#d62728", "#1f77b4"


def _relative_file(ref: Any) -> bool:
    return isinstance(ref, str) and not ref.startswith(PYBULLET_PREFIX) and not Path(ref).is_absolute()


def relocate_spec(raw: dict[str, Any], loaded: LoadedSpec, dest: Path) -> tuple[dict[str, Any], list[Path]]:
    """Rewrite a spec's spec-relative file references so that they resolve from ``dest``.

    Asset files, photo folders of randomizer parameters and the spec's own ``asset_roots`` are relative to
    the original spec's folder. Written elsewhere, the spec names them relative to its new folder; since a
    spec may only read inside its own folder, loading it then needs that folder as an asset root (the
    returned roots, with the caller's own).

    Args:
        raw: The spec as :func:`dump_spec` gives it (changed in place).
        loaded: The original spec (its folder and roots).
        dest: The folder the spec will be written to.

    Returns:
        ``(raw, roots)``: the roots to pass as ``asset_roots`` / ``--asset-root``.
    """
    from simgen.assets import PHOTO_FOLDER
    from simgen.randomizers import REGISTRY

    base = loaded.base_dir
    moved = False

    def move(ref: str) -> str:
        nonlocal moved
        if base is None or not _relative_file(ref):
            return ref
        moved = True
        return Path(os.path.relpath(base / ref, dest.resolve())).as_posix()

    for fx in raw.get("fixtures", []):
        fx["asset"] = move(fx["asset"]) if isinstance(fx.get("asset"), str) else fx.get("asset")
    for group in raw.get("objects", []):
        assets = group.get("assets", [])
        for i, entry in enumerate(assets):
            if isinstance(entry, str):
                assets[i] = move(entry)
            elif isinstance(entry, dict) and isinstance(entry.get("asset"), str):
                entry["asset"] = move(entry["asset"])
    for entry in raw.get("randomizers", []):
        fields = REGISTRY.get(entry["type"]).Params.model_fields
        for name, info in fields.items():
            if isinstance(entry.get(name), str) and any(m is PHOTO_FOLDER for m in info.metadata):
                entry[name] = move(entry[name])
    own_roots = [r for r in raw.get("asset_roots", []) if _relative_file(r)]
    if own_roots:  # a spec may not list roots outside its own folder: they become caller-given roots
        raw["asset_roots"] = [r for r in raw["asset_roots"] if not _relative_file(r)]
        if not raw["asset_roots"]:
            del raw["asset_roots"]
        moved = True
    roots = list(loaded.roots)
    if moved and base is not None and base not in roots:
        roots.insert(0, base)
    return raw, roots


def _header(tuner: Tuner, roots: list[Path]) -> str:
    from simgen import __version__

    cfg = tuner.cfg
    best = tuner._best_trial()
    h = tuner.heldout
    res = f"{cfg.resolution[0]}x{cfg.resolution[1]}" if cfg.resolution else "the spec's resolution"
    source = tuner.loaded.source or "a spec given as data"
    tuning = f"{tuner.split.images['tune']} images, {len(tuner.tune_crops)} crops"
    score = f"{best.value:.3f} (trial {best.number})" if best else "no finished trial: this is the spec as written"
    lines = [
        f"Tuned by `simgen tune` (simgen {__version__}) from {source} against the real set {tuner.real}.",
        f"Study: '{tuner.study.study_name}' in {tuner.out / 'study.db'}: {len(tuner._counted())} trials, "
        f"TPE seeded from {cfg.seed}.",
        f"Objective: {tuner_objective()}, trained on {cfg.frames} generated frames at {res} and tested on the "
        f"real tuning part ({tuning}): {score}.",
    ]
    if h:
        lines += [f"Held-out ({h['images']} images never seen by the search): {h['verdict']}"]
    if roots:
        lines += [
            "Asset files resolve relative to this file: load it with " + " ".join(f"--asset-root {r}" for r in roots)
        ]
    wrapped = []
    for line in lines:
        while len(line) > 116:
            cut = line.rfind(" ", 0, 116)
            cut = cut if cut > 0 else 116
            wrapped.append(line[:cut])
            line = "  " + line[cut:].lstrip()
        wrapped.append(line)
    return "".join(f"# {w}\n" for w in wrapped)


def tuner_objective() -> str:
    """The objective's wording."""
    from simgen.tune.study import OBJECTIVE

    return OBJECTIVE


def write_best_yaml(tuner: Tuner) -> tuple[Path, list[Path]]:
    """Write ``best.yaml``: the best spec, a header comment, file references valid from the output folder.

    The file is loaded back and must dump to the same spec (a valid spec that round-trips).

    Returns:
        ``(path, asset roots needed to load it)``.
    """
    from simgen.writers.atomic import atomic_write_text

    raw, roots = relocate_spec(tuner.space.spec_dict(tuner.best_params()), tuner.loaded, tuner.out)
    path = tuner.out / "best.yaml"
    loaded = load_spec(raw, base_dir=tuner.out, asset_roots=roots, check_assets=False)
    atomic_write_text(path, _header(tuner, roots) + dump_spec_yaml(loaded))
    again = load_spec(path, asset_roots=roots)
    if dump_spec(again) != dump_spec(loaded):  # pragma: no cover - a bug in the dump, not a user error
        raise SimgenError(f"{path} does not round-trip through load_spec/dump_spec")
    return path, roots


# --- plots ---------------------------------------------------------------------------------------------


def _helpers() -> Any:
    from simgen.validators import report as vr

    return vr


def _trials_plot(trials: list[dict[str, Any]]) -> str | None:
    from matplotlib.ticker import MaxNLocator

    vr = _helpers()
    done = [t for t in trials if t["state"] == "COMPLETE"]
    if not done:
        return None
    fig = vr.figure(9, 3.4)
    ax = fig.add_subplot(1, 2, 1)
    x = [t["number"] for t in done]
    y = [t["tstr"] for t in done]
    ax.scatter(x, y, s=18, color=NEUTRAL, label="trial")
    ax.plot(x, np.maximum.accumulate(y), color=GOOD, label="best so far")
    failed = [t["number"] for t in trials if t["state"] == "FAIL"]
    if failed:
        ax.scatter(failed, [min(y)] * len(failed), marker="x", color=BAD, label="failed")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("TSTR on the tuning part")
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    kid = [(t["number"], t["kid"]) for t in done if t.get("kid") is not None]
    if kid:
        ax2.scatter([k[0] for k in kid], [k[1] for k in kid], s=18, color=BAD)
    ax2.set_xlabel("trial")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_ylabel("KID to the tuning crops (lower: closer)")
    return vr.fig_b64(fig)


def _importance_plot(values: dict[str, float]) -> str | None:
    if not values:
        return None
    vr = _helpers()
    items = sorted(values.items(), key=lambda kv: kv[1])[-20:]
    fig = vr.figure(8, 0.35 * len(items) + 1.2)
    ax = fig.add_subplot()
    ax.barh([k for k, _ in items], [v for _, v in items], color=NEUTRAL)
    ax.set_xlabel("importance (share of the objective's variance)")
    ax.tick_params(axis="y", labelsize=7)
    return vr.fig_b64(fig)


def _effect_plot(effects: list[dict[str, Any]], key: str, label: str, better_positive: bool) -> str | None:
    if not effects:
        return None
    vr = _helpers()
    names = [e["type"] + ("" if e["in_best"] else " (off)") for e in effects]
    v = np.array([e[key]["value"] for e in effects], float)
    lo = np.array([e[key]["ci"][0] for e in effects], float)
    hi = np.array([e[key]["ci"][1] for e in effects], float)
    colors = [GOOD if (x > 0) == better_positive else BAD for x in v]
    fig = vr.figure(6, 0.4 * len(effects) + 1.2)
    ax = fig.add_subplot()
    y = np.arange(len(effects))
    err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)]).clip(min=0)
    ax.barh(y, np.nan_to_num(v), xerr=err, color=colors, capsize=3)
    ax.axvline(0, color="#444", lw=0.8)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel(label)
    return vr.fig_b64(fig)


def _heldout_plot(h: dict[str, Any]) -> str | None:
    if not h:
        return None
    vr = _helpers()
    fig = vr.figure(5, 3)
    ax = fig.add_subplot()
    names = ["original", "tuned", "TRTR"]
    entries = [h["original"]["tstr"], h["tuned"]["tstr"], h["trtr"]]
    v = np.array([e["value"] for e in entries])
    err = np.array([[e["value"] - e["ci"][0], e["ci"][1] - e["value"]] for e in entries]).T.clip(min=0)
    ax.bar(names, v, yerr=err, color=[NEUTRAL, GOOD, BAD], capsize=4)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy on held-out real crops")
    return vr.fig_b64(fig)


def _grid(folder: Path | None, caption: str, cls: str) -> str:
    vr = _helpers()
    if folder is None:
        return ""
    try:
        from simgen.validators.datasets import load_image_set

        grid = vr.sample_grid(load_image_set(folder), n=9, cols=3)
    except SimgenError as exc:
        return (
            f"<figure><figcaption>{html.escape(caption)}</figcaption><p class=bad>{html.escape(str(exc))}</p></figure>"
        )
    return (
        f"<figure><figcaption class={cls}>{html.escape(caption)}</figcaption>"
        f"{vr.img_tag(vr.png_b64(grid), caption)}</figure>"
    )


def _ci(e: dict[str, Any], digits: int = 3) -> str:
    v, (lo, hi) = e["value"], e["ci"]
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _switches(params: dict[str, Any]) -> str:
    parts = []
    for k, v in params.items():
        if k.endswith(".enabled"):
            parts.append(("+" if v else "\u2212") + k[: -len(".enabled")].split(":", 1)[1])
    return " ".join(parts)


def _trial_row(t: dict[str, Any]) -> str:
    tstr = "" if t["tstr"] is None else f"{t['tstr']:.3f}"
    kid = "" if t["kid"] is None else f"{t['kid']:.4f}"
    return (
        f"<tr><td class=num>{t['number']}</td><td>{t['state']}</td><td class=num>{tstr}</td>"
        f"<td class=num>{kid}</td><td class=num>{t['seconds'] or ''}</td>"
        f"<td>{html.escape(_switches(t['params']))}</td><td>{html.escape(t['error'] or '')}</td></tr>"
    )


def render_html(doc: dict[str, Any], preview: Path | None, real_tune: Path) -> str:
    """The tune report as one self-contained HTML page."""
    vr = _helpers()
    esc = html.escape
    h = doc.get("heldout") or {}
    study = doc["study"]
    verdict = doc.get("verdict", "")
    good = verdict.startswith("gain")
    level = f"{100 * doc['settings']['level']:.0f}%"
    effects = doc["attribution"]["effects"]
    sections = [
        "<h1>simgen tune report</h1>",
        f"<p>Spec {esc(str(doc['spec']))}, real set {esc(doc['real'])} "
        f"({doc['split']['images']['tune']} tuning + {doc['split']['images']['heldout']} held-out images, "
        f"classes {esc(', '.join(doc['split']['classes']))}). {study['n_complete']} finished trials of "
        f"{study['n_trials']}; best trial {study['best_trial']} (TSTR {study['best_value'] or 0:.3f} on the tuning "
        f"part). Best spec: <b>{esc(doc['best_yaml'])}</b>.<br><span class=muted>Objective: {esc(study['objective'])}; "
        f"features {esc(doc['settings']['extractor'])}; {doc['settings']['frames']} frames per dataset; seed "
        f"{doc['settings']['seed']}.</span></p>",
        f"<p class={'ok' if good else 'bad'}><b>{esc(verdict)}</b></p>" if verdict else "",
        "<h2>Held-out: the original spec vs the tuned one</h2>",
    ]
    if h:
        rows = "".join(
            f"<tr><td>{name}</td><td class=num>{_ci(h[key]['tstr'])}</td>"
            f"<td class=num>{_ci(h[key]['kid'], 4)}</td></tr>"
            for name, key in (("original spec", "original"), ("tuned spec", "tuned"))
        )
        sections += [
            f"<table><tr><th></th><th>TSTR ({level} CI)</th><th>KID ({level} CI)</th></tr>{rows}"
            f"<tr><td>tuned \u2212 original</td><td class=num>{_ci(h['gain'])}</td>"
            f"<td class=num>{_ci(h['kid_gain'], 4)}</td></tr>"
            f"<tr><td>TRTR (trained on the tuning part)</td><td class=num>{_ci(h['trtr'])}</td><td></td></tr></table>",
            vr.img_tag(b64, "held-out scores", "480px") if (b64 := _heldout_plot(h)) else "",
            f"<p class=muted>{h['images']} held-out images ({h['crops']} crops), read only here; "
            f"{len(h['seeds'])} generation seeds per spec; intervals resample seeds and images.</p>",
        ]
    else:
        sections.append("<p class=muted>Not run.</p>")
    sections += ["<h2>Attribution: each randomizer, with and without (leave-one-out on the best spec)</h2>"]
    if effects:
        rows = "".join(
            f"<tr><td>{esc(e['type'])}{'' if e['in_best'] else ' <span class=muted>(off in best)</span>'}</td>"
            f"<td class=num>{_ci(e['tstr'], 3)}</td><td class=num>{_ci(e['kid'], 4)}</td>"
            f"<td>{esc(e['line'])}</td></tr>"
            for e in effects
        )
        plots = [
            _effect_plot(effects, "tstr", "effect on TSTR (with \u2212 without; > 0 helps)", True),
            _effect_plot(effects, "kid", "effect on KID (with \u2212 without; < 0 helps)", False),
        ]
        sections += [
            f"<table><tr><th>randomizer</th><th>TSTR effect</th><th>KID effect</th><th></th></tr>{rows}</table>",
            "<div class=side>"
            + "".join(f"<figure>{vr.img_tag(p, 'attribution')}</figure>" for p in plots if p)
            + "</div>",
            f"<p class=muted>On the tuning part, {len(doc['attribution']['seeds'])} generation seeds per spec "
            "(not the search's own seed); paired: both sides share seeds and resampled images.</p>",
        ]
    else:
        sections.append("<p class=muted>Skipped (no attribution seeds).</p>")
    trials_plot = _trials_plot(doc["trials"])
    imp = doc["importances"]
    imp_plot = _importance_plot(imp.get("values", {}))
    sections += [
        "<h2>Objective per trial</h2>",
        vr.img_tag(trials_plot, "objective per trial") if trials_plot else "<p class=muted>No finished trial.</p>",
        "<h2>Parameter importances</h2>",
        vr.img_tag(imp_plot, "parameter importances", "720px") if imp_plot else "",
        f"<p class=muted>{esc(str(imp.get('method')))}: {esc(imp.get('note', ''))}</p>",
        "<h2>Best spec next to the real images</h2>",
        "<div class=side>"
        + _grid(preview, "best spec (generated)", "syn")
        + _grid(real_tune, "real (tuning part)", "real")
        + "</div>",
        "<h2>Search space</h2>",
    ]
    space_rows = "".join(
        f"<tr><td>{esc(r['randomizer'])}</td><td>{esc(f['field'])} ({f['kind']})</td>"
        f"<td>{esc(d['name'].rsplit('.', 1)[1])}</td>"
        f"<td class=num>{d['low']:.4g} \u2013 {d['high']:.4g}{' (log)' if d['log'] else ''}</td>"
        f"<td class=num>{d['initial']:.4g}</td></tr>"
        for r in doc["search_space"]
        for f in r["fields"]
        for d in f["dims"]
    )
    switch_rows = "".join(
        f"<tr><td>{esc(r['randomizer'])}</td><td colspan=4>on / off</td></tr>" for r in doc["search_space"]
    )
    sections.append(
        f"<table><tr><th>randomizer</th><th>field</th><th>part</th><th>searched</th><th>spec</th></tr>"
        f"{switch_rows}{space_rows}</table>"
    )
    trial_rows = "".join(_trial_row(t) for t in doc["trials"])
    sections += [
        "<h2>Trials</h2>",
        f"<table><tr><th>#</th><th>state</th><th>TSTR</th><th>KID</th><th>s</th><th>randomizers</th><th>error</th></tr>"
        f"{trial_rows}</table>",
        f"<p class=muted>Timings (s): {esc(json.dumps(doc['timings_s']))}; simgen {esc(doc['simgen_version'])}</p>",
    ]
    head = f'<head><meta charset="utf-8"><title>simgen tune report</title><style>{vr.CSS}</style></head>'
    body = "\n".join(s for s in sections if s)
    return f'<!DOCTYPE html>\n<html lang="en">{head}\n<body>\n{body}\n</body></html>\n'


def write_reports(tuner: Tuner, document: dict[str, Any], preview: Path | None) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` atomically; return both paths."""
    from simgen.validators.report import finite, json_default
    from simgen.writers.atomic import atomic_write_text

    json_path, html_path = tuner.out / "report.json", tuner.out / "report.html"
    text = json.dumps(finite(document), indent=2, allow_nan=False, default=json_default)
    atomic_write_text(json_path, text + "\n")
    atomic_write_text(html_path, render_html(document, preview, tuner.split.tune))
    return json_path, html_path
