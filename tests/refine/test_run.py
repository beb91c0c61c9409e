"""refine_dataset end to end with injected refiners (no torch): outputs, provenance, reject/flag, errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from simgen.errors import OutputExistsError, SimgenError
from simgen.refine import CheckConfig, RefineSettings, frame_seed, refine_dataset
from simgen.refine.run import REFINED_COCO


def _read_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_identity_refinement_is_accepted_with_labels_carried_over(make_dataset, function_refiner):
    out = make_dataset(n_frames=3)
    refiner = function_refiner(lambda im, s: im.copy(), "identity")
    result = refine_dataset(out, RefineSettings(seed=5), refiner=refiner)
    assert result.summary["frames"] == {"total": 3, "accepted": 3, "flagged": 0, "rejected": 0}
    assert result.summary["objects"]["fail"] == 0

    original = json.loads((out / "annotations.coco.json").read_text())
    refined = json.loads((out / REFINED_COCO).read_text())
    assert [im["file_name"] for im in refined["images"]] == [f"refined/{i:06d}.png" for i in range(3)]
    assert [im["source_file_name"] for im in refined["images"]] == [im["file_name"] for im in original["images"]]
    for a, b in zip(original["annotations"], refined["annotations"], strict=True):
        assert {k: v for k, v in b.items() if k != "refine_check"} == a
        assert b["flags"] == [] and b["refine_check"]["status"] == "pass"
    for i in range(3):  # the identity refiner wrote the render back, pixel for pixel
        assert np.array_equal(_read_rgb(out / f"refined/{i:06d}.png"), _read_rgb(out / f"images/{i:06d}.png"))
    coco = COCO(str(out / REFINED_COCO))  # the reference tool reads it
    assert len(coco.getAnnIds()) == len(original["annotations"])

    # Prompts name the frame's objects; seeds follow (seed, frame index).
    assert refiner.calls[0]["prompts"][0] == "a photo of a duck, a mug and a cube on a table"
    assert [s for c in refiner.calls for s in c["seeds"]] == [frame_seed(5, i) for i in range(3)]


def test_provenance_in_dataset_and_manifest(make_dataset, function_refiner):
    out = make_dataset(n_frames=2)
    settings = RefineSettings(model="my/model", controlnet=("my/cn",), strength=0.4, steps=10, guidance=2.0, seed=9,
                              prompt_template="{category_list} on wood")  # fmt: skip
    refine_dataset(out, settings, refiner=function_refiner(lambda im, s: im, "identity"))
    record = json.loads((out / "dataset.json").read_text())["refine"]
    assert record["model"] == {"family": "test", "name": "identity"}
    assert record["settings"]["model"] == "my/model" and record["settings"]["controlnet"] == ["my/cn"]
    assert record["settings"]["strength"] == 0.4 and record["settings"]["steps"] == 10 and record["seed"] == 9
    assert record["check"] == CheckConfig().to_json()
    assert record["coco"] == REFINED_COCO and record["summary"]["frames"]["accepted"] == 2
    lines = _manifest(out)
    assert len(lines) == 2
    for i, line in enumerate(lines):
        r = line["refine"]
        assert r["status"] == "accepted" and r["seed"] == frame_seed(9, i)
        assert r["prompt"] == "duck, mug, cube on wood"
        assert r["file"]["path"] == f"refined/{i:06d}.png"
        assert len(r["file"]["sha256"]) == 64 and r["source"] == f"images/{i:06d}.png"
        assert [o["annotation_id"] for o in r["objects"]] == [1 + 3 * i, 2 + 3 * i, 3 + 3 * i]
        assert line["view"] == {"azimuth_deg": 10.0 * i}  # the rest of the line is untouched


@pytest.mark.parametrize("kind", ["shift", "erase"])
def test_planted_failures_are_rejected(make_dataset, function_refiner, planted, kind):
    out = make_dataset(n_frames=3)
    coco = json.loads((out / "annotations.coco.json").read_text())
    inst = {
        im["frame_index"]: cv2.imread(str(out / im["instance_file"]), cv2.IMREAD_UNCHANGED) for im in coco["images"]
    }
    seeds = {frame_seed(0, i): i for i in range(3)}

    def plant(im, seed):
        frame = seeds[seed]
        if frame != 1:
            return im.copy()
        if kind == "shift":
            return planted.shift(im, 10, 0)
        mask = (inst[frame] == 2).astype(np.uint8)  # erase object 2: paint it over from its surroundings
        return cv2.inpaint(im, cv2.dilate(mask, np.ones((3, 3), np.uint8)), 5, cv2.INPAINT_TELEA)

    result = refine_dataset(out, refiner=function_refiner(plant, kind))
    assert result.summary["frames"] == {"total": 3, "accepted": 2, "flagged": 0, "rejected": 1}
    refined = json.loads((out / REFINED_COCO).read_text())
    assert [im["frame_index"] for im in refined["images"]] == [0, 2]
    assert {a["image_id"] for a in refined["annotations"]} == {1, 3}
    assert (out / "refined/rejected/000001.png").is_file() and not (out / "refined/000001.png").exists()
    bad = _manifest(out)[1]["refine"]
    assert bad["status"] == "rejected" and bad["file"]["path"] == "refined/rejected/000001.png"
    assert bad["check"]["reasons"]
    if kind == "erase":
        assert [o["status"] for o in bad["objects"]] == ["pass", "fail", "pass"]


def test_flag_mode_keeps_frames_and_flags_objects(make_dataset, function_refiner, planted):
    out = make_dataset(n_frames=2)
    result = refine_dataset(out, on_mismatch="flag", refiner=function_refiner(lambda im, s: planted.shift(im, 0, 10)))
    assert result.summary["frames"] == {"total": 2, "accepted": 0, "flagged": 2, "rejected": 0}
    refined = json.loads((out / REFINED_COCO).read_text())
    assert len(refined["images"]) == 2 and all(im["refine"]["status"] == "flagged" for im in refined["images"])
    assert any("refine_mismatch" in a["flags"] for a in refined["annotations"])
    assert all(a["refine_check"]["status"] in ("pass", "fail", "unverified") for a in refined["annotations"])


def test_photometric_refinement_is_accepted(make_dataset, function_refiner, planted):
    out = make_dataset(n_frames=4, width=96, height=72)
    result = refine_dataset(out, refiner=function_refiner(lambda im, s: planted.photometric(im, s % 1000)))
    assert result.summary["frames"]["accepted"] == 4, result.frames


def test_second_run_needs_overwrite_and_replaces(make_dataset, function_refiner, planted):
    out = make_dataset(n_frames=2)
    refine_dataset(out, refiner=function_refiner(lambda im, s: planted.shift(im, 10)))
    assert (out / "refined/rejected").is_dir()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        refine_dataset(out, refiner=function_refiner(lambda im, s: im))
    result = refine_dataset(out, refiner=function_refiner(lambda im, s: im), overwrite=True, limit=1)
    assert result.summary["frames"]["accepted"] == 1
    assert not (out / "refined/rejected").exists()
    lines = _manifest(out)
    assert lines[0]["refine"]["status"] == "accepted" and "refine" not in lines[1]  # stale record removed


def test_checksums_follow_the_rewrite(make_dataset, function_refiner):
    import hashlib

    out = make_dataset(n_frames=1)
    dataset = json.loads((out / "dataset.json").read_text())
    dataset["checksums"] = {"manifest.jsonl": "stale"}
    dataset["files"] = {"coco": "annotations.coco.json"}
    (out / "dataset.json").write_text(json.dumps(dataset))
    refine_dataset(out, refiner=function_refiner(lambda im, s: im))
    dataset = json.loads((out / "dataset.json").read_text())
    for name in ("manifest.jsonl", REFINED_COCO):
        assert dataset["checksums"][name] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert dataset["files"]["refined_coco"] == REFINED_COCO


def test_masks_from_rle_when_instance_png_is_missing(make_dataset, function_refiner, planted):
    out = make_dataset(n_frames=1)
    coco = json.loads((out / "annotations.coco.json").read_text())
    for im in coco["images"]:
        im.pop("instance_file")
    (out / "annotations.coco.json").write_text(json.dumps(coco))
    result = refine_dataset(out, refiner=function_refiner(lambda im, s: planted.shift(im, 10)))
    assert result.summary["frames"]["rejected"] == 1


def test_not_a_dataset_and_bad_arguments(tmp_path, make_dataset, function_refiner):
    with pytest.raises(SimgenError, match="no such dataset folder"):
        refine_dataset(tmp_path / "nope", refiner=function_refiner(lambda im, s: im))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SimgenError, match="dataset.json is missing"):
        refine_dataset(tmp_path / "empty", refiner=function_refiner(lambda im, s: im))
    out = make_dataset(n_frames=1)
    with pytest.raises(SimgenError, match="--on-mismatch"):
        refine_dataset(out, on_mismatch="drop", refiner=function_refiner(lambda im, s: im))  # type: ignore[arg-type]
    with pytest.raises(SimgenError, match="returned"):
        refine_dataset(out, refiner=function_refiner(lambda im, s: im[:10]))


def test_a_refined_generated_dataset_still_verifies(tmp_path, function_refiner):
    """Refine rewrites every manifest line on purpose; it relinks the hash chain, so ``simgen verify`` passes."""
    from pathlib import Path

    from simgen.engine.generation import generate
    from simgen.engine.verify import verify_dataset

    out = tmp_path / "ds"
    scene = Path(__file__).resolve().parents[2] / "scenes" / "tabletop_clutter.yaml"
    generate(scene, out, n_frames=2, seed=1, workers=1, renderer="tiny", resolution=(64, 48))
    chain_before = json.loads((out / "dataset.json").read_text())["manifest_chain"]
    refine_dataset(out, RefineSettings(seed=2), refiner=function_refiner(lambda im, s: im.copy(), "identity"))
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["manifest_chain"]["head"] != chain_before["head"]  # the lines changed, and so did the chain
    assert all("refine" in line for line in _manifest(out))
    report = verify_dataset(out)
    assert report.ok, (report.invalid, report.corrupt, report.missing, report.extra)
