from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from simgen.frame import FrameBuffers, ObjectInfo
from simgen.io import append_jsonl_line, write_png
from simgen.labels import annotate, depth_to_png_mm
from simgen.writers.coco import CocoWriteError, frame_record, write_coco

W, H = 64, 48
K = np.array([[60.0, 0.0, W / 2], [0.0, 60.0, H / 2], [0.0, 0.0, 1.0]])
CATEGORIES = ["box", "can"]
CATEGORY_IDS = {name: i + 1 for i, name in enumerate(CATEGORIES)}
CATEGORIES_JSON = [{"id": i, "name": n, "supercategory": "object"} for n, i in CATEGORY_IDS.items()]
INFO = {"description": "test", "seed": 0}

# pycocotools' Masks.__array__ predates numpy 2's copy keyword (annToMask); not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
N_FRAMES = 6
EMPTY_FRAME = 2  # rendered, but nothing labeled in view


def _buffers(frame: int) -> FrameBuffers:
    rng = np.random.default_rng([1234, frame])
    ids = np.zeros((H, W), np.uint16)
    objects, poses = [], {}
    n = 0 if frame == EMPTY_FRAME else int(rng.integers(1, 6))
    for i in range(1, n + 1):
        x0, y0 = int(rng.integers(0, W - 4)), int(rng.integers(0, H - 4))
        w, h = int(rng.integers(1, 20)), int(rng.integers(1, 20))
        ids[y0 : y0 + h, x0 : x0 + w] = i  # later objects occlude earlier ones
        objects.append(ObjectInfo(i, f"clutter/{i}", CATEGORIES[i % 2], True, (0.0, 0.0, 0.0), (0.1, 0.1, 0.1)))
        T = np.eye(4)
        T[:3, 3] = (rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2), rng.uniform(0.5, 2.0))
        poses[i] = T
    rgb = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 3.0, size=(H, W)).astype(np.float32)
    return FrameBuffers(rgb, depth, ids, K, np.eye(4), objects, poses)


def _render(root: Path, frame: int) -> dict:
    """Write one frame's files under ``root`` the way a shard does; return its fragment record."""
    buffers = _buffers(frame)
    name = f"{frame:06d}.png"
    for sub in ("images", "depth", "instances"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    write_png(root / "images" / name, buffers.rgb)
    write_png(root / "depth" / name, depth_to_png_mm(buffers.depth_m))
    write_png(root / "instances" / name, buffers.instance_ids)
    return frame_record(
        frame_index=frame,
        scene_index=frame // 2,
        file_name=f"images/{name}",
        annotations=annotate(buffers),
        category_ids=CATEGORY_IDS,
        depth_file=f"depth/{name}",
        instance_file=f"instances/{name}",
        K=buffers.K,
        T_world_cam=buffers.T_world_cam,
        width=buffers.width,
        height=buffers.height,
    )


def _fragments(folder: Path, records: dict[int, dict], split: list[list[int]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, frames in enumerate(split):
        path = folder / f"shard-{k:03d}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for f in frames:
                append_jsonl_line(fh, records[f])
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, dict], dict]:
    root = tmp_path_factory.mktemp("coco")
    records = {f: _render(root, f) for f in range(N_FRAMES)}
    fragments = _fragments(root / ".simgen", records, [[0, 1, 2], [3, 4, 5]])
    stats = write_coco(root / "annotations.coco.json", fragments, CATEGORIES_JSON, INFO)
    return root, records, stats


def _load(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_pycocotools_reads_back_every_frame_and_mask(dataset: tuple[Path, dict[int, dict], dict]) -> None:
    root, records, stats = dataset
    coco = _load(root / "annotations.coco.json")
    n_anns = sum(len(r["annotations"]) for r in records.values())
    assert n_anns > 5
    assert stats == {
        "images": N_FRAMES,
        "annotations": n_anns,
        "categories": 2,
        "images_without_annotations": 1,
        "flagged_annotations": 0,
    }
    assert sorted(coco.imgs) == list(range(1, N_FRAMES + 1))
    assert sorted(coco.anns) == list(range(1, n_anns + 1))
    assert coco.getAnnIds(imgIds=[EMPTY_FRAME + 1]) == []
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == set(CATEGORIES)
    previous = 0
    for ann_id in sorted(coco.anns):
        ann = coco.anns[ann_id]
        image = coco.imgs[ann["image_id"]]
        assert image["id"] >= previous  # annotation ids run in frame order
        previous = image["id"]
        ids = cv2.imread(str(root / image["instance_file"]), cv2.IMREAD_UNCHANGED)
        assert ids.dtype == np.uint16
        truth = ids == ann["instance_id"]
        assert np.array_equal(coco.annToMask(ann).astype(bool), truth)
        assert ann["area"] == int(truth.sum()) == ann["px_count_visible"]
        assert ann["bbox"] == mask_utils.toBbox(ann["segmentation"]).tolist()
        assert ann["bbox"][2] >= 1 and ann["bbox"][3] >= 1
        assert set(ann["pose"]) == {"T_cam_obj", "quaternion_xyzw", "translation_m"}
    image = coco.imgs[1]
    assert cv2.imread(str(root / image["file_name"])).shape == (H, W, 3)
    assert image["K"] == K.tolist() and image["T_world_cam"] == np.eye(4).tolist()
    assert (image["frame_index"], image["scene_index"], image["width"], image["height"]) == (0, 0, W, H)


def test_cocoeval_of_ground_truth_against_itself_is_perfect(dataset: tuple[Path, dict[int, dict], dict]) -> None:
    root, _, _ = dataset
    coco = _load(root / "annotations.coco.json")
    dets = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
         "segmentation": a["segmentation"], "score": 1.0}
        for a in coco.anns.values()
    ]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        results = coco.loadRes(dets)
        for iou_type in ("bbox", "segm"):
            ev = COCOeval(coco, results, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            assert ev.stats[0] == pytest.approx(1.0), iou_type


@pytest.mark.torch
@pytest.mark.slow  # importing torchvision alone takes seconds
def test_torchvision_coco_detection_loads_it(dataset: tuple[Path, dict[int, dict], dict]) -> None:
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    root, records, _ = dataset
    # In a fresh process: importing torch into one that has run PyBullet's EGL plugin (Mesa's llvmpipe) crashes it.
    code = (
        "import contextlib, io, json, sys\n"
        "from torchvision.datasets import CocoDetection\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    ds = CocoDetection(root=sys.argv[1], annFile=sys.argv[1] + '/annotations.coco.json')\n"
        "image, target = ds[0]\n"
        f"print(json.dumps([len(ds), list(image.size), [t['image_id'] for t in target], ds[{EMPTY_FRAME}][1]]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    n, size, image_ids, empty = json.loads(proc.stdout.strip().splitlines()[-1])
    assert n == N_FRAMES and size == [W, H]
    assert len(image_ids) == len(records[0]["annotations"]) > 0 and set(image_ids) == {1}
    assert empty == []


@pytest.mark.parametrize(
    "split",
    [
        [[0, 1, 2, 3, 4, 5]],
        [[5, 3], [4], [2, 0, 1]],  # frames out of order inside and across fragments (a resumed shard)
        [[0], [], [1, 2], [3], [4, 5]],
    ],
)
def test_output_bytes_do_not_depend_on_how_frames_are_split(
    dataset: tuple[Path, dict[int, dict], dict], tmp_path: Path, split: list[list[int]]
) -> None:
    root, records, _ = dataset
    fragments = _fragments(tmp_path / "frags", records, split)
    out = tmp_path / "annotations.coco.json"
    write_coco(out, fragments, CATEGORIES_JSON, INFO)
    assert out.read_bytes() == (root / "annotations.coco.json").read_bytes()


def test_frame_record_is_plain_rounded_json(dataset: tuple[Path, dict[int, dict], dict]) -> None:
    _, records, _ = dataset
    rec = records[0]
    assert json.loads(json.dumps(rec, allow_nan=False)) == rec
    assert rec["image"]["id"] == 1 and all("id" not in a for a in rec["annotations"])
    third = frame_record(
        0, 0, "images/000000.png", [], CATEGORY_IDS, depth_file=None, instance_file=None,
        K=np.full((3, 3), 1.0 / 3.0), T_world_cam=-np.eye(4) * 1e-9, width=W, height=H,
    )  # fmt: skip
    assert third["image"]["K"][0][0] == 0.333333
    assert third["image"]["T_world_cam"][0][0] == 0.0 and str(third["image"]["T_world_cam"][0][0]) == "0.0"
    assert third["annotations"] == []


def test_flagged_objects_without_pixels_are_written(tmp_path: Path) -> None:
    buffers = _buffers(1)
    buffers.objects.append(ObjectInfo(40, "hidden/0", "can", True, (0.0, 0.0, 0.0), (0.1, 0.1, 0.1)))
    buffers.object_poses[40] = np.eye(4)  # at the camera centre: no pixel, amodal box everywhere
    anns = annotate(buffers, on_filtered="flag")
    rec = frame_record(
        1, 0, "images/000001.png", anns, CATEGORY_IDS, depth_file=None, instance_file=None,
        K=K, T_world_cam=np.eye(4), width=W, height=H,
    )  # fmt: skip
    hidden = rec["annotations"][-1]
    assert hidden["uid"] == "hidden/0" and hidden["flags"] == ["min_visible_px"]
    assert hidden["bbox"] == [0.0, 0.0, 0.0, 0.0] and hidden["area"] == 0
    stats = write_coco(tmp_path / "c.json", _fragments(tmp_path, {1: rec}, [[1]]), CATEGORIES_JSON, INFO)
    assert stats["flagged_annotations"] == 1


def test_unknown_category_names_a_suggestion() -> None:
    buffers = _buffers(0)
    with pytest.raises(CocoWriteError, match=r"category 'box' of 'clutter/\d+' \(did you mean 'boxx'\?\)"):
        frame_record(
            0, 0, "images/000000.png", annotate(buffers), {"boxx": 1, "can": 2}, depth_file=None,
            instance_file=None, K=K, T_world_cam=np.eye(4), width=W, height=H,
        )  # fmt: skip


def test_bad_fragments_are_refused_and_leave_the_old_file(
    dataset: tuple[Path, dict[int, dict], dict], tmp_path: Path
) -> None:
    _, records, _ = dataset
    out = tmp_path / "annotations.coco.json"
    out.write_text("previous")
    dup = _fragments(tmp_path / "dup", records, [[0, 1], [1, 2]])
    with pytest.raises(CocoWriteError, match="frame 1 appears twice"):
        write_coco(out, dup, CATEGORIES_JSON, INFO)
    torn = _fragments(tmp_path / "torn", records, [[0, 1]])
    with open(torn[0], "a", encoding="utf-8") as fh:
        fh.write('{"image": {"frame_in')
    with pytest.raises(CocoWriteError, match="torn last line"):
        write_coco(out, torn, CATEGORIES_JSON, INFO)
    # fails only in the second (annotation) pass, after images were streamed to the temporary file
    with pytest.raises(CocoWriteError, match="category_id"):
        write_coco(out, _fragments(tmp_path / "ok", records, [[0, 1]]), CATEGORIES_JSON[:1], INFO)
    assert out.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["annotations.coco.json"]


def test_no_frames_gives_a_valid_empty_dataset(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    stats = write_coco(out, [], CATEGORIES_JSON, INFO)
    assert stats["images"] == stats["annotations"] == 0
    data = json.loads(out.read_text())
    assert data["images"] == [] and data["annotations"] == [] and data["categories"] == CATEGORIES_JSON


# ----------------------------------------------------------------------------- the COCO writer


def test_coco_writer_streams_the_same_file_as_the_fragment_merge(
    dataset: tuple[Path, dict[int, dict], dict], tmp_path: Path
) -> None:
    from simgen.writers.coco import COCO_FILE, CocoWriter

    root, records, stats = dataset
    writer = CocoWriter()
    dataset_record = {"categories": CATEGORIES_JSON, "spec_name": "unit", "simgen_version": "0", "seed": 0}
    checksums = writer.finalize(tmp_path, (records[f] for f in range(N_FRAMES)), dataset_record)
    assert list(checksums) == [COCO_FILE]
    assert writer.stats == stats  # the counts dataset.json records
    merged = json.loads((root / COCO_FILE).read_text())
    streamed = json.loads((tmp_path / COCO_FILE).read_text())
    assert streamed["images"] == merged["images"] and streamed["annotations"] == merged["annotations"]
    assert streamed["info"] == {"description": "simgen dataset of scene 'unit'", "version": "0",
                                "spec_sha256": None, "seed": 0}  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == [COCO_FILE]  # the annotation spool leaves nothing


def test_coco_writer_refuses_frames_out_of_order_or_twice(
    dataset: tuple[Path, dict[int, dict], dict], tmp_path: Path
) -> None:
    from simgen.writers.coco import CocoWriter

    _, records, _ = dataset
    meta = {"categories": CATEGORIES_JSON}
    with pytest.raises(CocoWriteError, match="appears twice or out of frame order"):
        CocoWriter().finalize(tmp_path, [records[0], records[1], records[1]], meta)
    with pytest.raises(CocoWriteError, match="appears twice or out of frame order"):
        CocoWriter().finalize(tmp_path, [records[1], records[0]], meta)
    with pytest.raises(CocoWriteError, match="category list"):
        CocoWriter().finalize(tmp_path, [records[0]], {})
    assert list(tmp_path.iterdir()) == []


def test_coco_writer_passes_check_writer() -> None:
    from simgen.testing.writers import check_writer, example_contexts
    from simgen.writers.coco import CocoWriter

    check_writer(CocoWriter(), example_contexts())


def _sequence_record(frame: int, video_record: dict | None = None) -> dict:
    buffers = _buffers(frame)
    rec = frame_record(
        frame_index=frame,
        scene_index=frame // 3,
        file_name=f"images/{frame:06d}.png",
        annotations=annotate(buffers),
        category_ids=CATEGORY_IDS,
        depth_file=None,
        instance_file=None,
        K=buffers.K,
        T_world_cam=buffers.T_world_cam,
        width=buffers.width,
        height=buffers.height,
        sequence={"video_id": frame // 3 + 1, "frame_id": frame % 3, "t_s": 0.025 * (frame % 3), "n_frames": 3,
                  "fps": 40.0},
    )  # fmt: skip
    if video_record is not None:
        rec["video"] = video_record
    return rec


def test_sequence_frames_carry_video_and_track_fields_and_the_file_lists_videos_and_tracks(tmp_path):
    records = [_sequence_record(f) for f in range(N_FRAMES)]
    assert records[4]["image"]["video_id"] == 2 and records[4]["image"]["frame_id"] == 1
    assert records[4]["image"]["timestamp_s"] == 0.025
    ann = records[4]["annotations"][0]
    assert ann["video_id"] == 2 and ann["track_id"] == 1 * 65536 + ann["instance_id"]
    paths = _fragments(tmp_path / "frag", dict(enumerate(records)), [[3, 4, 5], [0, 1, 2]])
    stats = write_coco(tmp_path / "coco.json", paths, CATEGORIES_JSON, INFO)
    data = json.loads((tmp_path / "coco.json").read_text())
    assert list(data)[-2:] == ["videos", "tracks"] and stats["videos"] == 2
    assert [v["name"] for v in data["videos"]] == ["sequence_000000", "sequence_000001"]
    coco = COCO(str(tmp_path / "coco.json"))  # pycocotools ignores the extra keys
    tracks = {t["id"]: t for t in data["tracks"]}
    assert stats["tracks"] == len(tracks)
    for a in coco.dataset["annotations"]:
        track = tracks[a["track_id"]]
        assert (track["uid"], track["video_id"]) == (a["uid"], coco.imgs[a["image_id"]]["video_id"])


def test_a_video_that_changes_between_its_frames_is_refused(tmp_path):
    first = _sequence_record(0)
    second = _sequence_record(1, {**_sequence_record(1)["video"], "fps": 10.0})
    paths = _fragments(tmp_path / "frag", {0: first, 1: second}, [[0, 1]])
    with pytest.raises(CocoWriteError, match="video 1 is"):
        write_coco(tmp_path / "coco.json", paths, CATEGORIES_JSON, INFO)
