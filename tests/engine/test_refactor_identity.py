"""The image output is byte-identical to what the engine wrote before its seams were refactored.

The digests below were recorded with the engine as it was before the refactor (one run loop, I/O module,
writer and backend registries, split shard module): TinyRenderer PNGs, COCO, YOLO and the BOP tree, which are
the same on every machine with the same pybullet and OpenCV wheels. Files that carry timings (manifest,
dataset.json) are left out. Each group is the SHA-256 of its sorted ``"<path> <sha256>"`` lines, so a failure
names the folder or file that changed.

A change that alters these bytes on purpose must update the digests here and say why in its commit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from simgen.engine import generate
from simgen.spec import load_spec, read_spec_file

REPO = Path(__file__).resolve().parents[2]
TABLETOP = REPO / "scenes" / "tabletop_clutter.yaml"

#: Recorded before the refactor: tabletop_clutter with YOLO + BOP and visibility, 8 frames, seed 3, 96x72, tiny, 1 worker.
TABLETOP_YOLO_BOP = {
    "annotations.coco.json": "dafe6f15a4e7c2467eff9bfdd255911f4eb193206e7704abc004b72c47b6afa6",
    "bop/camera.json": "90d3ea8470bd56542508facc108b89dae95c52b09173b1b164ae68999c628106",
    "bop/models/": "c2418455b9f4f0a03406b65a2ff551517429e2f18d2211a0daba30642957d961",
    "bop/models/models_info.json": "c74c71aa6f0de5a020cedf3ae8cf958807a42518c1cc1e24ecc7bb7d021e3454",
    "bop/train_pbr/000000/depth/": "b2755f2dee57da6c52690d596a1700a3f138eb7561c5a0e50c2929ef84acbe2d",
    "bop/train_pbr/000000/mask/": "d546a67d77d0535d29d65913ced0ac85c0d0d8c3a46465143b054685c1df1545",
    "bop/train_pbr/000000/mask_visib/": "f51e6cdc894103aef3584d3cb80127369bb2a222abe78a8c030489846424fcad",
    "bop/train_pbr/000000/rgb/": "fde9d1bfbb142b098c14a170f608e5b4e1abd7e10cafaa4558abf95261613a23",
    "bop/train_pbr/000000/scene_camera.json": "c30b9ebab053a98acbbd212d30d298fa621d9b9868e00913ff81c70b1c77bc03",
    "bop/train_pbr/000000/scene_gt.json": "ca6854c6db8a825d44bee57180986d80efde16b3616059312e292e02d67ae8ae",
    "bop/train_pbr/000000/scene_gt_info.json": "06aba0010d02f74f364d9ed1cfa744a94b750dd8f812620f25ee2b9471e6d6f9",
    "data.yaml": "1629c25a8766b7a143f566690e6324dcc5d14be547b558e4723d2f7cce772659",
    "depth/": "afad6bbf0821b92a531b3b11e6dec32c7c78a99c7d3941987db657f1236f82d0",
    "images/": "493008bbf7ea8b37f90270cf340fe2fbdc73eac7a54e1171297887c2bf4974b0",
    "instances/": "6b030b04c35ae7ac2bf1e61319cf035dd297cfa72621c5836db11a6155ad0f47",
    "labels/": "a69c0b68e1ee1d5cd78585c6f31b923d5bc43a442038084a5900fb54a49f3380",
}

#: Recorded before the refactor: the same scene with two labeled flying occluders, Gaussian noise and YOLO
#: segments, 8 frames, seed 3, 96x72, tiny, 2 workers (the process pool).
TABLETOP_OCCLUDERS = {
    "annotations.coco.json": "5898ed259c14a989ce4afe6c4ecb31c84f059956305d5bbf9e6397b8c89413bc",
    "data.yaml": "1fb137df57b3ca091e4bc24e4d3aae6ea9ff275786ad28d9fac91fdd2489bd4f",
    "depth/": "783e02e807abf660cecc3879384bba1f8dd198dd24177e01d7208e0473f0b676",
    "images/": "d7875ed44fd915761f5cd8c79b9d604f3dc26d610d7d746480b6cfa8faab34a0",
    "instances/": "ad51c506f184ad176e664105b20a8f77bd419dba0e48ddb87de5dbc44f832724",
    "labels/": "8c4285db5eaaf42ce80183fe7d592f61710334eecca44ae70d575231979c5a6c",
}


def _group(rel: str) -> str | None:
    """The group a dataset file is compared in: a top-level or BOP JSON file alone, a folder's files together."""
    parts = rel.split("/")
    if rel in ("annotations.coco.json", "data.yaml"):
        return rel
    if parts[0] in ("images", "depth", "instances", "labels"):
        return parts[0] + "/"
    if parts[0] == "bop":
        return rel if rel.endswith(".json") else "/".join(parts[:-1]) + "/"
    return None  # timings-bearing records and work files


def group_digests(root: Path) -> dict[str, str]:
    """SHA-256 of each group's sorted ``"<path> <sha256>"`` lines."""
    lines: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        group = _group(rel) if path.is_file() else None
        if group is not None:
            lines.setdefault(group, []).append(f"{rel} {hashlib.sha256(path.read_bytes()).hexdigest()}\n")
    return {g: hashlib.sha256("".join(v).encode()).hexdigest() for g, v in sorted(lines.items())}


def _spec(outputs: dict[str, Any], *, visibility: bool = False, randomizers: list[dict[str, Any]] = ()):  # type: ignore[assignment]
    raw = read_spec_file(TABLETOP)
    raw.setdefault("outputs", {}).update(outputs)
    if visibility:
        raw["labels"]["visibility"] = True
    raw["randomizers"] = [*raw["randomizers"], *randomizers]
    return load_spec(raw, base_dir=TABLETOP.parent)


def _changed(got: dict[str, str], want: dict[str, str]) -> list[str]:
    return [g for g in sorted(set(got) | set(want)) if got.get(g) != want.get(g)]


@pytest.mark.slow
def test_tabletop_yolo_bop_is_byte_identical_to_before_the_refactor(tmp_path: Path) -> None:
    loaded = _spec({"yolo": True, "bop": True}, visibility=True)
    generate(loaded, tmp_path / "ds", n_frames=8, seed=3, workers=1, renderer="tiny", resolution=(96, 72))
    assert _changed(group_digests(tmp_path / "ds"), TABLETOP_YOLO_BOP) == []


@pytest.mark.slow
def test_occluders_sensor_segments_on_two_workers_are_byte_identical_to_before_the_refactor(tmp_path: Path) -> None:
    extra = [{"type": "occluders/flying-v1", "count": 2, "labeled": True}, {"type": "sensor/gaussian-noise-v1"}]
    loaded = _spec({"yolo": True, "yolo_segments": True}, randomizers=extra)
    generate(loaded, tmp_path / "ds", n_frames=8, seed=3, workers=2, renderer="tiny", resolution=(96, 72))
    assert _changed(group_digests(tmp_path / "ds"), TABLETOP_OCCLUDERS) == []
