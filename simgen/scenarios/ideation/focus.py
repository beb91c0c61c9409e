"""Aim ideation at what a validation found weak: ``--from-report validation/report.json``.

``simgen validate`` writes ``report.json`` with the per-class TSTR (train on synthetic, test on real) scores of
its utility check and the label findings of each side. :func:`read_focus` picks the weakest classes (lowest
TSTR score, then largest gap to TRTR) among the categories the base spec can render, and the conditions to
stress (occlusion, truncation, lighting, viewpoint) from the label findings. The LLM's goal text and the
offline ideator's choice of edge cases both use the result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simgen.errors import SimgenError, did_you_mean

__all__ = ["DEFAULT_CONDITIONS", "Focus", "WeakClass", "read_focus"]

#: The conditions a weak class gets when the findings name none: the classic failure modes of detectors.
DEFAULT_CONDITIONS = ("occlusion", "truncation", "lighting", "viewpoint")
#: Label finding kinds -> the condition they point at.
FINDING_CONDITIONS = {
    "bbox_out_of_bounds": "truncation",
    "truncation_out_of_range": "truncation",
    "visibility_out_of_range": "occlusion",
    "mask_box_mismatch": "occlusion",
    "instance_mask_mismatch": "occlusion",
    "bbox_degenerate": "viewpoint",
    "depth_holes": "viewpoint",
    "depth_empty": "viewpoint",
}
#: Per-class scores, in order of preference, that rank classes (higher is better for each).
SCORE_KEYS = ("f1", "AP", "AP50", "accuracy", "precision")


@dataclass(frozen=True)
class WeakClass:
    """One class the synthetic data serves badly.

    Attributes:
        name: The class (a category name).
        metric: The per-class score used (``f1``, ``AP``...).
        tstr: Its TSTR score.
        gap: TRTR minus TSTR, when the report has it.
        support: Its test examples, when known.
    """

    name: str
    metric: str
    tstr: float
    gap: float | None
    support: int | None

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {"name": self.name, "metric": self.metric, "tstr": self.tstr, "gap": self.gap, "support": self.support}


@dataclass(frozen=True)
class Focus:
    """What a validation report says ideation should aim at.

    Attributes:
        source: The report's path, as given.
        classes: The weakest classes the base spec can render, weakest first.
        conditions: Conditions to stress, most indicated first.
        findings: Label problem counts by kind over both sides.
        notes: What could not be used (a weak class the base spec does not render...).
    """

    source: str
    classes: tuple[WeakClass, ...]
    conditions: tuple[str, ...]
    findings: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def categories(self) -> tuple[str, ...]:
        """The weak classes' names."""
        return tuple(c.name for c in self.classes)

    def goal_text(self) -> str:
        """A paragraph for the LLM's prompt."""
        parts = []
        if self.classes:
            listed = "; ".join(
                f"'{c.name}' (TSTR {c.metric} {c.tstr:.3f}"
                + (f", {c.gap:+.3f} below training on real" if c.gap is not None else "")
                + ")"
                for c in self.classes
            )
            parts.append(
                f"A validation of synthetic data against real data found these classes weakest: {listed}. "
                "Aim the scenarios at them: select them by category in the require constraints."
            )
        if self.conditions:
            parts.append(f"Stress these conditions first: {', '.join(self.conditions)}.")
        if self.findings:
            kinds = ", ".join(f"{k} x{v}" for k, v in self.findings.items())
            parts.append(f"Label findings of the validation: {kinds}.")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """Plain data (for ``ideation.jsonl``)."""
        return {
            "source": self.source,
            "classes": [c.to_json() for c in self.classes],
            "conditions": list(self.conditions),
            "findings": dict(self.findings),
            "notes": list(self.notes),
        }


def _score_key(per_class: Mapping[str, Mapping[str, Any]]) -> str | None:
    keys = {k for scores in per_class.values() for k in scores}
    return next((k for k in SCORE_KEYS if k in keys), None)


def read_focus(path: str | Path, categories: Sequence[str], *, max_classes: int = 2) -> Focus:
    """Read ``report.json`` of ``simgen validate`` and choose the classes and conditions to aim at.

    Args:
        path: The report file.
        categories: The categories the base spec renders (a weak class outside them cannot be targeted).
        max_classes: How many weak classes to aim at.

    Returns:
        The focus; with no usable utility result, no classes (the conditions still come from the findings).

    Raises:
        SimgenError: The file cannot be read or is not a ``simgen validate`` report.
    """
    report = _read(Path(path))
    notes: list[str] = []
    utility = report.get("utility") or {}
    weak: list[WeakClass] = []
    tstr = utility.get("tstr") if isinstance(utility, Mapping) else None
    if not isinstance(tstr, Mapping) or not isinstance(tstr.get("per_class"), Mapping):
        reason = utility.get("skipped") if isinstance(utility, Mapping) else None
        notes.append(f"no per-class TSTR result in the report ({reason or 'utility not run'})")
    else:
        per_class = tstr["per_class"]
        key = _score_key(per_class)
        gaps = ((utility.get("gap") or {}).get("per_class") or {}) if key else {}
        ranked = []
        for name, scores in per_class.items():
            value = scores.get(key) if key else None
            if not isinstance(value, int | float):
                continue
            gap = (gaps.get(name) or {}).get(key)
            support = scores.get("support")
            ranked.append(
                WeakClass(
                    str(name),
                    str(key),
                    float(value),
                    float(gap) if isinstance(gap, int | float) else None,
                    int(support) if isinstance(support, int) else None,
                )
            )
        ranked.sort(key=lambda c: (c.tstr, -(c.gap or 0.0), c.name))
        for c in ranked:
            if c.name in categories:
                if len(weak) < max_classes:
                    weak.append(c)
            elif len(weak) < max_classes:
                notes.append(f"weak class '{c.name}' is no category of the base spec{did_you_mean(c.name, categories)}")
    findings: dict[str, int] = {}
    for info in (report.get("labels") or {}).values():
        if isinstance(info, Mapping):
            for kind, count in (info.get("by_kind") or {}).items():
                findings[str(kind)] = findings.get(str(kind), 0) + int(count)
    indicated = sorted(
        {FINDING_CONDITIONS[k] for k in findings if k in FINDING_CONDITIONS},
        key=lambda c: (-sum(n for k, n in findings.items() if FINDING_CONDITIONS.get(k) == c), c),
    )
    conditions = tuple(dict.fromkeys([*indicated, *DEFAULT_CONDITIONS]))
    return Focus(str(path), tuple(weak), conditions, dict(sorted(findings.items())), tuple(notes))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SimgenError(
            f"{path}: no such report; run `simgen validate SYN REAL -o DIR` to write DIR/report.json"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SimgenError(f"{path}: cannot read the validation report: {exc}") from None
    if not isinstance(data, dict) or "utility" not in data or "labels" not in data:
        raise SimgenError(f"{path}: not a `simgen validate` report.json (it needs 'utility' and 'labels')")
    return data
