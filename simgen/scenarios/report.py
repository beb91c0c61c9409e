"""The coverage of a scenario dataset on disk: ``coverage.json`` and ``coverage.html`` from what was written.

:func:`dataset_coverage` reads only the dataset folder: the frames and their cells from
``annotations.coco.json`` (``image.scenario_cell``), and the factors, design and rejection statistics from
``dataset.json``'s ``scenario`` record. The constraints are checked again on every frame's written labels,
so the report says on how many kept frames each held.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simgen.errors import SimgenError

__all__ = ["COVERAGE_HTML", "COVERAGE_JSON", "DatasetCoverage", "coverage_line", "dataset_coverage", "read_coverage"]

COVERAGE_JSON = "coverage.json"
COVERAGE_HTML = "coverage.html"


@dataclass(frozen=True)
class DatasetCoverage:
    """What :func:`dataset_coverage` wrote.

    Attributes:
        report: The coverage report (see :func:`simgen.scenarios.coverage.coverage_report`).
        json_path: ``coverage.json``.
        html_path: ``coverage.html``.
    """

    report: dict[str, Any]
    json_path: Path
    html_path: Path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SimgenError(f"{path}: not found; is this a finished simgen dataset?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SimgenError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SimgenError(f"{path}: expected a JSON object")
    return data


def _scenario_of(dataset: Mapping[str, Any], where: Path) -> Any:
    """The dataset's scenario, loaded again from its spec and sections (assets are not needed)."""
    from simgen.scenarios.loader import load_scenario

    record = dataset.get("scenario")
    if not isinstance(record, Mapping):
        raise SimgenError(f"{where}: no scenario record; the dataset was not rendered from a scenario file")
    data = {**dataset["spec"], **record["sections"]}
    return load_scenario(
        data,
        base_dir=dataset.get("spec_base_dir"),
        asset_roots=dataset.get("asset_roots") or (),
        check_assets=False,
    )


def dataset_coverage(out: str | Path) -> DatasetCoverage:
    """Write ``coverage.json`` and ``coverage.html`` into a scenario dataset folder and return the report.

    Args:
        out: The dataset folder (``simgen generate SCENARIO.yaml -o OUT``).

    Raises:
        SimgenError: The folder holds no finished dataset, no COCO file, or a dataset not made from a scenario.
    """
    from simgen.engine.files import DATASET_FILE
    from simgen.io import atomic_write_json, atomic_write_text
    from simgen.scenarios.coverage_html import render_coverage_html

    root = Path(out)
    report = read_coverage(root)
    dataset = _read_json(root / DATASET_FILE)
    json_path, html_path = root / COVERAGE_JSON, root / COVERAGE_HTML
    atomic_write_json(json_path, report)
    title = f"simgen coverage: {dataset.get('spec_name') or root.name}"
    atomic_write_text(html_path, render_coverage_html(report, title=title))
    return DatasetCoverage(report, json_path, html_path)


def coverage_line(report: Mapping[str, Any]) -> str:
    """One line of a coverage report: frames, cells covered, t-wise coverage and acceptance."""
    cells, tw = report["cells"], report["t_wise"]
    planned = f" of {cells['planned']} planned" if cells.get("planned") is not None else ""
    line = f"{report['frames']} frames in {cells['covered']} cells{planned}"
    if tw.get("percent") is not None:
        line += f"; {tw['strength']}-wise coverage {tw['percent']:.1f}%"
    acceptance = report.get("acceptance") or {}
    if acceptance.get("acceptance_rate") is not None:
        line += f"; acceptance {100 * acceptance['acceptance_rate']:.1f}%"
    return line


def read_coverage(out: str | Path) -> dict[str, Any]:
    """The coverage report of a scenario dataset folder, computed from what was written; nothing is written.

    Raises:
        SimgenError: As :func:`dataset_coverage`.
    """
    from simgen.engine.files import COCO_FILE, DATASET_FILE
    from simgen.io import read_png
    from simgen.scenarios.constraints import RejectionStats, evaluate, frame_require_rng, needs
    from simgen.scenarios.coverage import FrameCoverage, coverage_report, frames_from_coco

    root = Path(out)
    dataset = _read_json(root / DATASET_FILE)
    scenario = _scenario_of(dataset, root / DATASET_FILE)
    coco = _read_json(root / COCO_FILE)
    seed = int(dataset["seed"])
    design = scenario.design(seed)
    if design is None:
        raise SimgenError(f"{root / DATASET_FILE}: the scenario has no factors, so there is no coverage to report")
    record = dataset["scenario"]
    if record.get("design") is not None and record["design"]["cells"] != [dict(c) for c in design.cells]:
        raise SimgenError(f"{root / DATASET_FILE}: the recorded design differs from the one its scenario gives")
    require = scenario.require
    rgb_needed = require is not None and needs(require.constraints)["rgb"] and dataset.get("coco_images") == "rgb"
    try:
        frames = frames_from_coco(
            coco, tags=scenario.tags(), rgb=(lambda image: read_png(root / image["file_name"])) if rgb_needed else None
        )
    except ValueError as exc:
        raise SimgenError(f"{root / COCO_FILE}: {exc}") from None
    if require is not None:
        frames = [
            FrameCoverage(
                f.frame_index,
                f.cell_index,
                f.cell,
                f.labels,
                tuple(evaluate(require.constraints, f.labels, frame_require_rng(seed, f.frame_index))),
            )
            for f in frames
            if f.labels is not None
        ]
    stats = RejectionStats.from_json(record["rejection"]) if record.get("rejection") else None
    return coverage_report(scenario.domains(), frames, design=design, stats=stats)
