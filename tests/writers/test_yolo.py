from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils

from simgen.errors import RegistryError
from simgen.labels import rle_decode
from simgen.testing.writers import (
    EXAMPLE_CATEGORIES,
    WriterCheckError,
    check_writer,
    example_buffers,
    example_contexts,
    frame_context,
    stage_frame_files,
)
from simgen.writers.base import DatasetWriter, FrameContext, FrameOutput
from simgen.writers.bop import BopWriter
from simgen.writers.registry import WRITERS, WriterOptionError, make_writer
from simgen.writers.yolo import YoloWriteError, YoloWriter, category_names, mask_polygon

DATASET = {
    "categories": [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(EXAMPLE_CATEGORIES)]
}


def _write(root: Path, writer: YoloWriter, contexts: list[FrameContext]) -> dict[str, str]:
    files: dict[str, str] = {}
    for ctx in contexts:
        stage_frame_files(root, ctx)
        out = writer.write_frame(root, ctx)
        assert out.record is None
        files.update(out.files)
    files.update(writer.finalize(root, iter([]), DATASET))
    return files


def _rows(path: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


def _labelled(ctx: FrameContext) -> list[dict]:
    return [a for a in ctx.coco["annotations"] if not a["flags"] and a["area"] > 0]


@pytest.fixture(scope="module")
def contexts() -> list[FrameContext]:
    return example_contexts(4)


def test_boxes_read_back_as_the_coco_boxes(tmp_path: Path, contexts: list[FrameContext]) -> None:
    files = _write(tmp_path, YoloWriter(), contexts)
    n = 0
    for ctx in contexts:
        rel = f"labels/{ctx.frame:06d}.txt"
        assert files[rel] == hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest()
        rows = _rows(tmp_path / rel)
        anns = _labelled(ctx)
        assert len(rows) == len(anns)
        for row, ann in zip(rows, anns, strict=True):
            cls, cx, cy, w, h = row
            assert cls == ann["category_id"] - 1
            assert all(0.0 <= v <= 1.0 for v in row[1:])
            W, H = ctx.coco["image"]["width"], ctx.coco["image"]["height"]
            box = [(cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H]
            assert np.allclose(box, ann["bbox"], atol=0.5), (box, ann["bbox"])
            n += 1
    assert n >= 10
    text = (tmp_path / "labels/000000.txt").read_text()
    assert text.endswith("\n") and all(len(v.split(".")[1]) == 6 for v in text.split()[1:5])


def _coco_raster(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """pycocotools' rasterisation of a COCO polygon (continuous pixel-edge coordinates)."""
    rles = mask_utils.frPyObjects([np.asarray(polygon, dtype=np.float64).ravel().tolist()], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def _filled(mask: np.ndarray) -> np.ndarray:
    """The mask with its holes filled (YOLO keeps external outlines only)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(out, contours, -1, 1, -1)
    return out.astype(bool)


def test_segments_trace_the_pixel_edges_of_the_visible_masks(tmp_path: Path, contexts: list[FrameContext]) -> None:
    """Each polygon rasterises back (COCO's rasteriser) to exactly its mask, and its box is the COCO box."""
    _write(tmp_path, YoloWriter(segments=True), contexts)
    n = 0
    for ctx in contexts:
        rows = _rows(tmp_path / f"labels/{ctx.frame:06d}.txt")
        anns = _labelled(ctx)
        assert len(rows) == len(anns)
        W, H = ctx.coco["image"]["width"], ctx.coco["image"]["height"]
        for row, ann in zip(rows, anns, strict=True):
            assert row[0] == ann["category_id"] - 1 and len(row) % 2 == 1 and len(row) >= 9
            polygon = np.array(row[1:]).reshape(-1, 2) * (W, H)
            assert np.array_equal(_coco_raster(polygon, H, W), _filled(rle_decode(ann["segmentation"])))
            x, y, w, h = ann["bbox"]
            lo, hi = polygon.min(axis=0), polygon.max(axis=0)  # Ultralytics' segments2boxes
            np.testing.assert_allclose([*lo, *(hi - lo)], [x, y, w, h], atol=1e-4)
            n += 1
    assert n >= 10


def test_a_mask_in_two_parts_gives_one_polygon_covering_both(contexts: list[FrameContext]) -> None:
    ctx = contexts[0]
    ann = next(a for a in ctx.coco["annotations"] if a["instance_id"] == 4)  # cut in two by the bar
    mask = rle_decode(ann["segmentation"])
    n_parts, _ = cv2.connectedComponents(mask.astype(np.uint8))
    assert n_parts - 1 == 2
    polygon = mask_polygon(mask)
    assert np.array_equal(_coco_raster(polygon, *mask.shape), mask)  # both parts, and the bridge adds nothing


def test_mask_polygon_of_tiny_and_thin_parts() -> None:
    mask = np.zeros((10, 12), bool)
    mask[2, 3] = True  # one pixel: the square of its four corners, not a point at its index
    assert mask_polygon(mask).tolist() == [[3, 2], [3, 3], [4, 3], [4, 2]]
    mask[6, 2:9] = True  # a 1-pixel line: a rectangle one pixel tall
    polygon = mask_polygon(mask)
    assert np.array_equal(_coco_raster(polygon, *mask.shape), mask)
    assert {tuple(v) for v in polygon.tolist() if v[1] >= 6} == {(2, 6), (2, 7), (9, 7), (9, 6)}
    with pytest.raises(YoloWriteError, match="empty"):
        mask_polygon(np.zeros((4, 4), bool))


def test_mask_polygon_area_and_box_on_random_masks() -> None:
    """The outline encloses exactly the mask's pixels: its area is the pixel count, its box the pixel-edge box."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        mask = np.zeros((30, 40), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            cv2.circle(mask, (int(rng.integers(0, 40)), int(rng.integers(0, 30))), int(rng.integers(0, 8)), 1, -1)
        m = mask.astype(bool)
        if not m.any():
            continue
        polygon = mask_polygon(m)
        rows, cols = np.nonzero(m)
        assert polygon.min(axis=0).tolist() == [cols.min(), rows.min()]
        assert polygon.max(axis=0).tolist() == [cols.max() + 1, rows.max() + 1]
        assert np.array_equal(_coco_raster(polygon, *m.shape), _filled(m))
        if cv2.connectedComponents(mask, connectivity=8)[0] == 2 and _filled(m).sum() == m.sum():
            x, y = polygon[:, 0], polygon[:, 1]
            assert abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2 == m.sum()


def test_empty_frame_gives_an_empty_label_file(tmp_path: Path, contexts: list[FrameContext]) -> None:
    _write(tmp_path, YoloWriter(), contexts)
    assert contexts[2].coco["annotations"] == []
    assert (tmp_path / "labels/000002.txt").read_bytes() == b""


def test_flagged_annotations_are_left_out(tmp_path: Path) -> None:
    ctxs = example_contexts(2, empty_frame=None, on_filtered="flag", min_visible_px=200)
    flagged = [a for c in ctxs for a in c.coco["annotations"] if a["flags"]]
    assert flagged  # the bar (120 px) at least
    _write(tmp_path, YoloWriter(), ctxs)
    for ctx in ctxs:
        rows = _rows(tmp_path / f"labels/{ctx.frame:06d}.txt")
        assert (
            len(rows)
            == len(_labelled(ctx))
            == len(ctx.coco["annotations"]) - sum(bool(a["flags"]) for a in ctx.coco["annotations"])
        )


def test_data_yaml_names_every_class_and_has_no_path(tmp_path: Path, contexts: list[FrameContext]) -> None:
    files = _write(tmp_path, YoloWriter(), contexts)
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert data == {"train": "images", "val": "images", "nc": 2, "names": {0: "box", 1: "can"}}
    assert files["data.yaml"] == hashlib.sha256((tmp_path / "data.yaml").read_bytes()).hexdigest()
    assert category_names(["a", "b"]) == ["a", "b"]
    with pytest.raises(YoloWriteError, match="ids must be 1..2"):
        category_names([{"id": 1, "name": "a"}, {"id": 3, "name": "b"}])
    with pytest.raises(YoloWriteError, match="categories"):
        YoloWriter().finalize(tmp_path, iter([]), {})


def test_label_path_swaps_images_for_labels(contexts: list[FrameContext]) -> None:
    ctx = contexts[0]
    assert ctx.files["rgb"] == "images/000000.png"
    assert YoloWriter.label_path(ctx) == "labels/000000.txt"
    odd = FrameContext(7, 0, ctx.buffers, [], ctx.coco, {"rgb": "rgb/000007.png"}, ctx.categories)
    with pytest.raises(YoloWriteError, match="under 'images/'"):
        YoloWriter.label_path(odd)


def test_unknown_category_id_is_refused(tmp_path: Path) -> None:
    bad = frame_context(example_buffers(0), 0, EXAMPLE_CATEGORIES)
    bad = FrameContext(0, 0, bad.buffers, bad.annotations, bad.coco, bad.files, ("box",))
    with pytest.raises(YoloWriteError, match="category_id 2"):
        YoloWriter().write_frame(tmp_path, bad)


def test_options_are_checked() -> None:
    with pytest.raises(YoloWriteError, match="segments"):
        YoloWriter(segments="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("segments", [False, True])
def test_check_writer_passes(segments: bool, contexts: list[FrameContext]) -> None:
    check_writer(YoloWriter(segments=segments), contexts)


# ----------------------------------------------------------------------------- registry and checker


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_registered_writer_passes_check_writer(name: str, contexts: list[FrameContext]) -> None:
    writer = make_writer(name)
    assert isinstance(writer, DatasetWriter) and writer.name == name
    check_writer(writer, contexts)


def test_make_writer_options_and_errors() -> None:
    assert make_writer("yolo", segments=True).segments is True  # type: ignore[attr-defined]
    assert make_writer("bop", chunk_size=10).chunk_size == 10  # type: ignore[attr-defined]
    assert isinstance(make_writer("simgen.writers.bop:BopWriter"), BopWriter)
    with pytest.raises(RegistryError, match="did you mean 'yolo'"):
        make_writer("yolov8")
    with pytest.raises(WriterOptionError, match="did you mean 'segments'"):
        make_writer("yolo", segment=True)
    with pytest.raises(RegistryError, match="not a DatasetWriter"):
        make_writer("pathlib:PurePath")


class _Careless:
    """Lists a checksum that does not match, and a record that is not JSON."""

    name = "careless"

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def write_frame(self, root: Path, ctx: FrameContext) -> FrameOutput:
        rel = f"careless/{ctx.frame:06d}.txt"
        (root / "careless").mkdir(exist_ok=True)
        (root / rel).write_text(str(ctx.frame))
        if self.mode == "stray":
            (root / "careless" / f".{ctx.frame}.tmp").write_text("left behind")
        digest = hashlib.sha256(str(ctx.frame).encode()).hexdigest()
        if self.mode == "checksum":
            digest = "0" * 64
        record = {"frame": ctx.frame, "t": (1, 2)} if self.mode == "record" else {"frame": ctx.frame}
        return FrameOutput({rel: digest}, record)

    def finalize(self, root: Path, records, dataset) -> dict[str, str]:
        import random

        text = str(random.random()) if self.mode == "nondeterministic" else "done"
        (root / "careless.txt").write_text(text)
        return {"careless.txt": hashlib.sha256(text.encode()).hexdigest()}


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("checksum", "does not match"),
        ("record", "JSON round trip"),
        ("stray", "unlisted files"),
        ("nondeterministic", "differ"),
        ("fine", None),
    ],
)
def test_check_writer_catches_broken_writers(mode: str, message: str | None, contexts: list[FrameContext]) -> None:
    if message is None:
        check_writer(_Careless(mode), contexts)
        return
    with pytest.raises(WriterCheckError, match=message):
        check_writer(_Careless(mode), contexts)
