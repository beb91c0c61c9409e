"""inspect, verify and replay on a damaged dataset report the damage in one line; they never crash."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from simgen.cli import app
from simgen.engine import generate
from simgen.engine.replay import replay_frame
from simgen.engine.verify import verify_dataset
from simgen.errors import SimgenError
from simgen.inspect_dataset import summarize, write_preview
from simgen.spec import read_spec_file

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "scenes" / "tabletop_clutter.yaml"


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = read_spec_file(DEFAULT)
    raw["objects"][0]["count"] = 3
    raw["frames_per_scene"] = 2
    raw["physics"]["max_steps"] = 200
    raw["labels"]["min_visible_px"] = 4
    spec = tmp_path_factory.mktemp("spec") / "small.yaml"
    spec.write_text(yaml.safe_dump(raw))
    out = tmp_path_factory.mktemp("intact") / "ds"
    generate(spec, out, n_frames=4, seed=1, renderer="tiny", resolution=(64, 48))
    return out


# --- ways to damage a dataset --------------------------------------------------------------------


def truncate(rel: str) -> Callable[[Path], None]:
    def hurt(root: Path) -> None:
        data = (root / rel).read_bytes()
        (root / rel).write_bytes(data[: len(data) // 2])

    return hurt


def replace(rel: str, data: bytes) -> Callable[[Path], None]:
    def hurt(root: Path) -> None:
        (root / rel).write_bytes(data)

    return hurt


def edit_json(rel: str, change: Callable[[Any], None]) -> Callable[[Path], None]:
    def hurt(root: Path) -> None:
        obj = json.loads((root / rel).read_text())
        change(obj)
        (root / rel).write_text(json.dumps(obj))

    return hurt


def edit_manifest(change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Callable[[Path], None]:
    def hurt(root: Path) -> None:
        lines = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
        (root / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in change(lines)))

    return hurt


def _set(path: list[Any], value: Any) -> Callable[[Any], None]:
    def change(obj: Any) -> None:
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value

    return change


def _entry(index: int, /, **fields: Any) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def change(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        lines[index].update(fields)
        return lines

    return change


DS, MF, COCO, IMG = "dataset.json", "manifest.jsonl", "annotations.coco.json", "images/000000.png"

# name: (damage, the tool that must report it, a word its report names)
CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "dataset_truncated": (truncate(DS), "replay", DS),
    "dataset_garbage": (replace(DS, b"\xff\xfe\x00garbage"), "replay", DS),
    "dataset_empty": (replace(DS, b""), "replay", DS),
    "dataset_a_list": (replace(DS, b"[1, 2]"), "replay", DS),
    "dataset_not_simgens": (edit_json(DS, lambda m: m.pop("simgen_version")), "replay", DS),
    "dataset_n_frames_a_string": (edit_json(DS, _set(["n_frames"], "four")), "replay", "n_frames"),
    "dataset_spec_a_number": (edit_json(DS, _set(["spec"], 3)), "replay", "spec"),
    "dataset_bad_types": (edit_json(DS, lambda m: m.update(checksums=[1], seed="x")), "summarize", "seed"),
    "dataset_no_frames_per_scene": (edit_json(DS, _set(["frames_per_scene"], 0)), "replay", "frames_per_scene"),
    "manifest_truncated": (truncate(MF), "verify", MF),
    "manifest_garbage": (replace(MF, b"\x00\x01 not json\n{"), "replay", MF),
    "manifest_empty": (replace(MF, b""), "replay", MF),
    "manifest_line_missing": (edit_manifest(lambda lines: lines[1:]), "replay", "no line for frame 0"),
    "manifest_frame_a_string": (edit_manifest(_entry(0, frame="0")), "replay", "frame"),
    "manifest_files_a_string": (edit_manifest(_entry(0, files="x")), "replay", "files"),
    "manifest_file_entry_wrong": (edit_manifest(_entry(0, files={"rgb": {"path": 3}})), "replay", "files"),
    "manifest_view_a_list": (edit_manifest(_entry(0, view=[1])), "replay", "view"),
    "manifest_patches_wrong": (edit_manifest(_entry(0, scene_patches={"0:x": {"objects": 5}})), "replay", MF),
    "manifest_sensor_a_list": (edit_manifest(_entry(0, sensor=[1])), "replay", "sensor"),
    "coco_truncated": (truncate(COCO), "summarize", COCO),
    "coco_garbage": (replace(COCO, b"\x89PNG garbage"), "summarize", COCO),
    "coco_empty": (replace(COCO, b""), "summarize", COCO),
    "coco_images_an_object": (edit_json(COCO, _set(["images"], {})), "summarize", "images"),
    "coco_bbox_a_string": (edit_json(COCO, _set(["annotations", 0, "bbox"], "x")), "summarize", "bbox"),
    "coco_bbox_huge": (edit_json(COCO, _set(["annotations", 0, "bbox"], [1e300, -1e300, 1e300, 5])), "verify", COCO),
    "coco_category_id_a_string": (edit_json(COCO, _set(["categories", 0, "id"], "a")), "summarize", "categories"),
    "coco_rle_damaged": (
        edit_json(COCO, _set(["annotations", 0, "segmentation", "counts"], "0~~~~")),
        "preview",
        "RLE",
    ),
    "coco_file_name_outside": (
        edit_json(COCO, _set(["images", 0, "file_name"], "/etc/hostname")),
        "preview",
        "outside",
    ),
    "image_missing": (lambda root: (root / IMG).unlink(), "preview", IMG),
    "image_truncated": (truncate(IMG), "preview", IMG),
}


def _one_line(exc: SimgenError) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize("case", list(CASES))
def test_damage_is_reported_and_never_crashes(intact: Path, tmp_path: Path, case: str) -> None:
    root = tmp_path / "ds"
    shutil.copytree(intact, root)
    damage, must_report, word = CASES[case]
    damage(root)
    reports: dict[str, str] = {}
    for tool, call in (
        ("summarize", lambda: summarize(root)),
        ("preview", lambda: write_preview(root, tmp_path / "preview.png")),
        ("verify", lambda: verify_dataset(root)),
        ("replay", lambda: replay_frame(root, 0)),
    ):
        try:  # anything but a SimgenError fails the test with its traceback
            result = call()
        except SimgenError as exc:
            reports[tool] = _one_line(exc)
            continue
        if tool == "verify" and not result.ok:
            reports[tool] = " ".join(result.missing + result.corrupt + result.extra + getattr(result, "invalid", []))
        if tool == "replay" and not all(result.identical.values()):
            reports[tool] = "differs: " + ", ".join(k for k, same in result.identical.items() if not same)
    assert "verify" in reports, "verify must see every kind of damage"
    assert must_report in reports, reports
    assert word in reports[must_report], reports[must_report]


def test_verify_never_reads_outside_the_dataset(intact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import simgen.engine.verify as verify_module

    root = tmp_path / "ds"
    shutil.copytree(intact, root)
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    os.symlink(outside, root / "images" / "leak.png")
    sneaky = {
        "a": {"path": "/etc/hostname", "sha256": "0" * 64},
        "b": {"path": "../secret.txt", "sha256": "0" * 64},
        "c": {"path": "images/leak.png", "sha256": "0" * 64},
    }
    edit_manifest(_entry(1, files=sneaky))(root)
    read: list[Path] = []
    real = verify_module.sha256_file

    def spy(path: Path) -> str:
        read.append(Path(path).resolve())
        return real(path)

    monkeypatch.setattr(verify_module, "sha256_file", spy)
    report = verify_dataset(root)
    assert not report.ok
    outside_the_dataset = [str(p) for p in read if not p.is_relative_to(root.resolve())]
    assert outside_the_dataset == []
    for rel in ("/etc/hostname", "../secret.txt", "images/leak.png"):
        assert any(rel in line and "outside the dataset" in line for line in report.invalid), report.invalid


def test_cli_reports_damage_as_one_line(intact: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(intact, root)
    replace(COCO, b"{")(root)
    replace(DS, b"[")(root)
    runner = CliRunner()
    shown = runner.invoke(app, ["inspect", str(root), "--preview", str(tmp_path / "p.png")])
    assert shown.exit_code == 2 and COCO in shown.output and "Traceback" not in shown.output, shown.output
    checked = runner.invoke(app, ["verify", str(root)])
    assert checked.exit_code == 1 and "Traceback" not in checked.output, checked.output
    replayed = runner.invoke(app, ["replay", str(root), "--frame", "0"])
    assert replayed.exit_code == 2 and DS in replayed.output and "Traceback" not in replayed.output, replayed.output
