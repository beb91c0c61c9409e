"""Probe renders and the critics of ideation: does a proposal render, hold, and differ from its base?

A probe renders a few frames of a proposal at low resolution with the real engine
(:func:`simgen.engine.generation.generate`) into a folder inside the ideation output. Frames are one per scene
(``frames_per_scene: 1``), so a few frames see a few different scenes, and attempts are capped, so a probe is
cheap. Pixel thresholds of the constraints (``visible_px``, ``box_area``, ``box_w``...) and
``labels.min_visible_px`` are scaled from the spec's resolution to the probe's, so a constraint tests the same
thing at both; visibility, truncation, distance, brightness and contrast need no scaling.

- :func:`auto_critic`: the constraints hold at a usable acceptance rate, and the label statistics of the probe
  frames differ from the base spec's (a two-sample Kolmogorov-Smirnov test per statistic at the 5% level):
  otherwise the proposal is a copy of the base, not an edge case.
- :func:`vision_critic`: the preview image and the rationale go to the model, which scores them (tool use).
"""

from __future__ import annotations

import base64
import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simgen.errors import SimgenError
from simgen.scenarios.loader import split_scenario

if TYPE_CHECKING:
    from simgen.llm import LLMClient

__all__ = [
    "ProbeResult",
    "Verdict",
    "VisionVerdict",
    "auto_critic",
    "ks_statistic",
    "probe_data",
    "render_probe",
    "vision_critic",
]

#: Attempts per probe frame at most (a proposal needing more is not usable anyway).
PROBE_ATTEMPTS = 12
_AREA_ATTRS = ("visible_px", "box_area")
_LENGTH_ATTRS = ("box_w", "box_h", "border_distance")
#: c(alpha) of the two-sample KS test at alpha = 0.05.
_KS_C = 1.358


@dataclass(frozen=True)
class ProbeResult:
    """What a probe render gave.

    Attributes:
        ok: Whether it rendered (every frame met the constraints within the capped attempts).
        reason: Why not, when not ok.
        acceptance: Accepted frames / attempts, when rendered.
        stats: Label statistics: name -> values (per frame or per object).
        images: The probe images, in frame order.
    """

    ok: bool
    reason: str = ""
    acceptance: float | None = None
    stats: dict[str, list[float]] = field(default_factory=dict)
    images: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """A critic's decision and its reason (plain data for ``ideation.jsonl``)."""

    critic: str
    ok: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "critic": self.critic,
            "ok": self.ok,
            "reason": self.reason,
            **({"details": self.details} if self.details else {}),
        }


def _scale_cmp(node: Mapping[str, Any], factor: float) -> dict[str, Any]:
    return {
        k: (round(v * factor, 6) if k in ("ge", "gt", "le", "lt", "eq") and isinstance(v, int | float) else v)
        for k, v in node.items()
    }


def _scale_constraint(c: Mapping[str, Any], s: float) -> dict[str, Any]:
    c = dict(c)
    select = dict(c.get("select") or {})
    for attr in (*_AREA_ATTRS, *_LENGTH_ATTRS):
        if isinstance(select.get(attr), Mapping):
            select[attr] = _scale_cmp(select[attr], s * s if attr in _AREA_ATTRS else s)
    if select:
        c["select"] = select
    of = c.get("of")
    if c.get("stat") in ("min", "max", "mean") and of in (*_AREA_ATTRS, *_LENGTH_ATTRS):
        c = _scale_cmp(c, s * s if of in _AREA_ATTRS else s)
    return c


def probe_data(
    scenario: Mapping[str, Any], resolution: tuple[int, int], *, max_attempts: int = PROBE_ATTEMPTS
) -> dict[str, Any]:
    """The copy of a scenario that a probe renders: one frame per scene, pixel thresholds scaled, attempts capped."""
    data = copy.deepcopy(dict(scenario))
    camera = data.get("camera") or {}
    width = int(camera.get("width", 640))
    s = resolution[0] / width
    data["frames_per_scene"] = 1
    labels = dict(data.get("labels") or {})
    if labels.get("min_visible_px"):
        labels["min_visible_px"] = max(1, math.ceil(labels["min_visible_px"] * s * s))
        data["labels"] = labels
    require = data.get("require")
    if isinstance(require, list):
        require = {"constraints": require}
    if isinstance(require, Mapping):
        data["require"] = {
            "max_attempts": min(int(require.get("max_attempts", 100)), max_attempts),
            "constraints": [_scale_constraint(c, s) for c in require.get("constraints", [])],
        }
    return data


def _label_stats(out: Path) -> tuple[dict[str, list[float]], tuple[Path, ...]]:
    import cv2

    from simgen.scenarios.constraints import luma_stats

    coco = json.loads((out / "annotations.coco.json").read_text(encoding="utf-8"))
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in coco.get("annotations", []):
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    stats: dict[str, list[float]] = {
        k: [] for k in ("objects", "brightness", "contrast", "truncation", "visibility", "box_area_frac", "distance")
    }
    images = []
    for img in sorted(coco.get("images", []), key=lambda r: r.get("frame_index", 0)):
        path = out / img["file_name"]
        images.append(path)
        anns = by_image.get(int(img["id"]), [])
        stats["objects"].append(float(len(anns)))
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            b, c = luma_stats(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            stats["brightness"].append(b)
            stats["contrast"].append(c)
        area = float(img["width"] * img["height"])
        for ann in anns:
            stats["truncation"].append(float(ann.get("truncation", 0.0)))
            if ann.get("visibility") is not None:
                stats["visibility"].append(float(ann["visibility"]))
            w, h = ann["bbox"][2:4]
            stats["box_area_frac"].append(float(w) * float(h) / area)
            t = (ann.get("pose") or {}).get("translation_m")
            if t:
                stats["distance"].append(float(np.linalg.norm(t)))
    return {k: v for k, v in stats.items() if v}, tuple(images)


def render_probe(
    scenario: Mapping[str, Any],
    folder: Path,
    *,
    n_frames: int,
    resolution: tuple[int, int],
    seed: int,
    asset_roots: Sequence[str | Path] = (),
) -> ProbeResult:
    """Render ``n_frames`` probe frames of a scenario (or a plain spec) into ``folder``.

    Returns:
        The probe; a scenario whose constraints fail within the capped attempts gives ``ok=False`` with the
        engine's message (the constraint, the attempts and the closest value seen).
    """
    from simgen.engine.generation import generate
    from simgen.scenarios.ideation.proposal import scenario_yaml

    folder.mkdir(parents=True, exist_ok=True)
    data = probe_data(scenario, resolution)
    spec_file = folder / "probe.yaml"
    spec_file.write_text(scenario_yaml(data), encoding="utf-8")
    out = folder / "frames"
    try:
        result = generate(
            spec_file, out, n_frames=n_frames, seed=seed, resolution=resolution, asset_roots=asset_roots, overwrite=True
        )
    except SimgenError as exc:
        return ProbeResult(False, " ".join(str(exc).split())[:600])
    rejection = (
        ((result.dataset.get("scenario") or {}).get("rejection") or {}) if isinstance(result.dataset, dict) else {}
    )
    stats, images = _label_stats(out)
    return ProbeResult(True, "", rejection.get("acceptance_rate"), stats, images)


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    x, y = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([x, y])
    fx = np.searchsorted(x, grid, side="right") / len(x)
    fy = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(fx - fy)))


def auto_critic(probe: ProbeResult, base: ProbeResult, *, min_acceptance: float) -> Verdict:
    """Keep a proposal whose constraints hold at ``min_acceptance`` or more and whose labels differ from the base's.

    Each statistic both probes have is compared with a two-sample KS test at the 5% level
    (``D > 1.358 * sqrt((n + m) / (n m))``); one significant difference is enough.
    """
    if not probe.ok:
        return Verdict("auto", False, f"probe render failed: {probe.reason}")
    rate = probe.acceptance
    if rate is not None and rate < min_acceptance:
        return Verdict(
            "auto", False, f"acceptance {rate:.2f} is below the usable {min_acceptance:.2f}", {"acceptance": rate}
        )
    compared: dict[str, dict[str, float]] = {}
    for name, values in sorted(probe.stats.items()):
        other = base.stats.get(name)
        if not other:
            continue
        n, m = len(values), len(other)
        crit = _KS_C * math.sqrt((n + m) / (n * m))
        compared[name] = {
            "ks": round(ks_statistic(values, other), 4),
            "critical": round(crit, 4),
            "mean": round(float(np.mean(values)), 4),
            "base_mean": round(float(np.mean(other)), 4),
        }
    details: dict[str, Any] = {"acceptance": rate, "stats": compared}
    differing = sorted((v["ks"] - v["critical"], k) for k, v in compared.items() if v["ks"] > v["critical"])
    if not differing:
        if not compared:
            return Verdict("auto", False, "no label statistic to compare with the base spec", details)
        top = max(compared, key=lambda k: compared[k]["ks"] - compared[k]["critical"])
        v = compared[top]
        return Verdict(
            "auto",
            False,
            f"not an edge case: label statistics match the base spec's (closest to differing: {top}, "
            f"KS {v['ks']:.2f} <= {v['critical']:.2f})",
            details,
        )
    names = [k for _, k in reversed(differing)]
    first = compared[names[0]]
    return Verdict(
        "auto",
        True,
        (f"acceptance {rate:.2f}; " if rate is not None else "")
        + f"differs from the base on {', '.join(names)} ({names[0]} mean {first['mean']:.3g} vs "
        f"{first['base_mean']:.3g}, KS {first['ks']:.2f} > {first['critical']:.2f})",
        details,
    )


class VisionVerdict(BaseModel):
    """Your judgement of whether the preview shows the edge case the rationale describes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: Annotated[int, Field(ge=0, le=10)] = Field(description="0 = does not show it, 10 = clearly shows it")
    reason: str = Field(min_length=1, max_length=500)


def preview_png(images: Sequence[Path], cols: int = 2) -> bytes:
    """A grid of up to four probe images as PNG bytes."""
    import cv2

    from simgen.io import encode_png

    tiles = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in images[:4]]
    tiles = [t for t in tiles if t is not None]
    if not tiles:
        raise SimgenError("no probe image to preview")
    h, w = tiles[0].shape[:2]
    while len(tiles) % cols:
        tiles.append(np.zeros((h, w, 3), np.uint8))
    rows = [np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)]
    return encode_png(cv2.cvtColor(np.vstack(rows), cv2.COLOR_BGR2RGB))


def vision_critic(
    client: LLMClient, images: Sequence[Path], name: str, rationale: str, *, min_score: int, salt: str
) -> tuple[Verdict, dict[str, Any]]:
    """Send the preview and the rationale to the model; keep the proposal when its score reaches ``min_score``.

    Returns:
        ``(verdict, the exchange's record for ideation.jsonl)``.
    """
    data = base64.b64encode(preview_png(images)).decode("ascii")
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
        {
            "type": "text",
            "text": (
                f"These are low-resolution probe renders of the synthetic scenario '{name}'. Its author says: "
                f"{rationale}\nDoes the preview show that edge case? Score it from 0 to 10 with a short reason."
            ),
        },
    ]
    result = client.structured([{"role": "user", "content": content}], VisionVerdict, salt=salt)
    record = result.record()
    if result.status != "ok" or result.value is None:
        why = result.refusal or (result.errors[-1] if result.errors else result.status)
        return Verdict("vision", False, f"vision critic gave no score: {why}"), record
    v = result.value
    ok = v.score >= min_score
    return Verdict("vision", ok, f"score {v.score}/10: {' '.join(v.reason.split())}", {"score": v.score}), record


def spec_only(data: Mapping[str, Any]) -> dict[str, Any]:
    """The spec part of a scenario mapping (its base render has no factors, constraints or timeline)."""
    return split_scenario(data)[0]
