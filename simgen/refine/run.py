"""``refine_dataset``: refine every frame of a dataset, check its labels still hold, write the results.

Output, beside the originals in ``OUT``:

* ``refined/000000.png``: refined images that passed the label check (or, with ``on_mismatch="flag"``, all
  of them); ``refined/rejected/000000.png``: refined images that failed it, kept for inspection only.
* ``annotations.refined.coco.json``: the COCO file of the refined images. Labels carry over unchanged
  (same annotation ids). Rejected frames are left out; flagged frames and objects carry a
  ``refine_mismatch`` / ``refine_unverified`` flag. Every image and annotation holds its check result.
* ``dataset.json`` gains a ``refine`` record: model and ControlNet provenance, settings, seed, check
  thresholds and the summary. Each ``manifest.jsonl`` line gains a ``refine`` record: status, generator
  seed, prompt, check scores, refined file and its SHA-256.

``dataset.json`` and ``manifest.jsonl`` are rewritten atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

import simgen
from simgen.errors import OutputExistsError, SimgenError
from simgen.io import atomic_open, atomic_write_bytes, encode_png, sha256_file, write_file
from simgen.refine.base import Refiner
from simgen.refine.check import CheckConfig, check_frame, edge_structure
from simgen.refine.controls import control_images
from simgen.refine.settings import RefineSettings, RefineSettingsError, frame_seed, render_prompt

__all__ = ["REFINED_COCO", "REFINED_DIR", "RefineResult", "build_refiner", "refine_dataset"]

log = logging.getLogger(__name__)

REFINED_DIR = "refined"
REJECTED_DIR = "refined/rejected"
COCO_FILE = "annotations.coco.json"
REFINED_COCO = "annotations.refined.coco.json"
DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.jsonl"
OnMismatch = Literal["reject", "flag"]


@dataclass
class RefineResult:
    """What ``refine_dataset`` did.

    Attributes:
        out: The dataset folder.
        coco: The refined COCO file.
        summary: Counts and score statistics (also in ``dataset.json["refine"]["summary"]``).
        frames: One record per refined frame (also in ``manifest.jsonl``).
    """

    out: Path
    coco: Path
    summary: dict[str, Any]
    frames: list[dict[str, Any]] = field(default_factory=list)


def build_refiner(settings: RefineSettings) -> Refiner:
    """Load the diffusers pipeline the settings ask for.

    ``pipeline="auto"`` reads a local model's ``model_index.json`` (a Stable Diffusion class selects the SD
    path) and otherwise uses FLUX.

    Args:
        settings: Refinement settings.

    Returns:
        A loaded refiner.

    Raises:
        DependencyMissing: The ``[refine]`` extra is missing.
        ModelNotFound: A model or ControlNet is not available.
    """
    from simgen.refine.loading import read_model_index, require_refine_extra, resolve_source, resolve_sources

    require_refine_extra()  # fast checks first: the extra (without importing it), then every model source
    family = settings.pipeline
    if family == "auto":
        family = "flux"
        if settings.model is not None:
            source = resolve_source(settings.model, what="base model", required_file="model_index.json")
            cls_name = str((read_model_index(source) or {}).get("_class_name", ""))
            if cls_name.startswith(("StableDiffusion", "Controlnet", "ControlNet")):
                family = "sd"
    resolve_sources(settings, family)
    if family == "sd":
        from simgen.refine.sd import SDRefiner

        return SDRefiner(settings)
    from simgen.refine.flux import FluxRefiner

    return FluxRefiner(settings)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SimgenError(f"{path.parent} is not a simgen dataset: {path.name} is missing") from None
    except json.JSONDecodeError as exc:
        raise SimgenError(f"{path}: not valid JSON ({exc})") from None


def _atomic_write_json(path: Path, obj: Any, *, indent: int | None = 2) -> str:
    data = (json.dumps(obj, indent=indent) + "\n").encode()
    return atomic_write_bytes(path, data)


def _rewrite_manifest(path: Path, records: dict[int, dict[str, Any]]) -> str:
    """Stream manifest.jsonl line by line into a temporary file with each frame's refine record, then rename.

    Returns:
        The SHA-256 of the new manifest.
    """
    digest = hashlib.sha256()
    with atomic_open(path, "w") as dst, path.open() as src:
        for line in src:
            if not line.strip():
                continue
            entry = json.loads(line)
            entry.pop("refine", None)
            record = records.get(int(entry.get("frame", -1)))
            if record is not None:
                entry["refine"] = record
            text = json.dumps(entry, separators=(",", ":")) + "\n"
            digest.update(text.encode())
            dst.write(text)
    return digest.hexdigest()


def _imread_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SimgenError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _imread_raw(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SimgenError(f"cannot read {path}")
    return img


def _masks(image: dict[str, Any], anns: list[dict[str, Any]], instances: np.ndarray | None) -> list[np.ndarray]:
    h, w = int(image["height"]), int(image["width"])
    out = []
    for a in anns:
        iid = a.get("instance_id")
        if instances is not None and iid is not None:
            out.append(instances == int(iid))
            continue
        seg = a.get("segmentation")
        if isinstance(seg, dict):
            from pycocotools import mask as mask_utils

            counts = seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"]
            rle = {"size": seg["size"], "counts": counts}
            out.append(mask_utils.decode(rle).astype(bool))
        else:
            raise SimgenError(
                f"annotation {a.get('id')}: needs an instance_id with an instance PNG or an RLE segmentation "
                "for the label check"
            )
        if out[-1].shape != (h, w):
            raise SimgenError(f"annotation {a.get('id')}: mask shape {out[-1].shape} != image {h}x{w}")
    return out


def _batches(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        if batch and (len(batch) == size or item["_shape"] != batch[0]["_shape"]):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def refine_dataset(
    out: str | Path,
    settings: RefineSettings | None = None,
    *,
    check: CheckConfig | None = None,
    on_mismatch: OnMismatch = "reject",
    refiner: Refiner | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> RefineResult:
    """Refine the renders of a dataset with a diffusion pipeline and check that every label still holds.

    A frame is accepted only when the label-preservation check passes for every object (see
    :mod:`simgen.refine.check`). With ``on_mismatch="reject"`` other frames are left out of the refined COCO
    (their images go to ``refined/rejected/``); with ``"flag"`` they stay in, and the failing objects and
    frames carry a ``refine_mismatch`` flag.

    Args:
        out: A generated dataset folder.
        settings: Refinement settings (model, ControlNet, control, strength, steps, guidance, seed, ...).
        check: Label-check thresholds; defaults to ``CheckConfig()``.
        on_mismatch: ``reject`` or ``flag``.
        refiner: A loaded refiner to use instead of building one from ``settings`` (tests, custom models).
        overwrite: Replace an earlier refinement of this dataset.
        limit: Refine only the first ``limit`` frames.
        progress: Called with the number of newly refined frames.

    Returns:
        The summary and the per-frame records.

    Raises:
        SimgenError: ``out`` is not a dataset, or a setting is invalid.
        OutputExistsError: ``out`` was refined before and ``overwrite`` is False.
        DependencyMissing: The ``[refine]`` extra is missing (only when no ``refiner`` is given).
        ModelNotFound: A model or ControlNet is not available.
    """
    start = time.perf_counter()
    out = Path(out)
    settings = settings or RefineSettings()
    check = check or CheckConfig()
    if on_mismatch not in ("reject", "flag"):
        raise RefineSettingsError(f"--on-mismatch: expected reject or flag, got '{on_mismatch}'")
    if limit is not None and limit < 1:
        raise RefineSettingsError(f"--limit: expected an integer >= 1, got {limit}")
    if not out.is_dir():
        raise SimgenError(f"{out}: no such dataset folder")
    dataset = _read_json(out / DATASET_FILE)
    coco = _read_json(out / COCO_FILE)
    if not (out / MANIFEST_FILE).is_file():
        raise SimgenError(f"{out} is not a simgen dataset: {MANIFEST_FILE} is missing")
    refined_dir = out / REFINED_DIR
    if refined_dir.exists() or (out / REFINED_COCO).exists():
        if not overwrite:
            raise OutputExistsError(
                f"{out} was refined before ({REFINED_DIR}/ exists); pass --overwrite to refine it again"
            )
        shutil.rmtree(refined_dir, ignore_errors=True)
        (out / REFINED_COCO).unlink(missing_ok=True)

    anns_by_image: dict[Any, list[dict[str, Any]]] = {}
    for a in coco.get("annotations", []):
        anns_by_image.setdefault(a["image_id"], []).append(a)
    cat_names = {c["id"]: c["name"] for c in coco.get("categories", [])}
    images = sorted(coco.get("images", []), key=lambda im: (im.get("frame_index", im["id"]), im["id"]))
    if limit is not None:
        images = images[:limit]
    if not images:
        raise SimgenError(f"{out / COCO_FILE} lists no images to refine")
    for im in images:
        im["_shape"] = (int(im["height"]), int(im["width"]))

    load_start = time.perf_counter()
    if refiner is None:
        refiner = build_refiner(settings)
    load_seconds = time.perf_counter() - load_start
    provenance = refiner.describe()
    refined_dir.mkdir(parents=True, exist_ok=True)

    records: dict[int, dict[str, Any]] = {}
    by_image: dict[Any, dict[str, Any]] = {}
    refine_seconds = check_seconds = 0.0
    for batch in _batches(images, settings.batch_size):
        renders, controls, prompts, seeds, extras = [], [], [], [], []
        for im in batch:
            frame = int(im.get("frame_index", im["id"]))
            rgb = _imread_rgb(out / im["file_name"])
            depth = _imread_raw(out / im["depth_file"]) if im.get("depth_file") else None
            if "depth" in settings.control and depth is None:
                raise SimgenError(f"frame {frame}: --control depth needs a depth map, and {im['file_name']} has none")
            anns = anns_by_image.get(im["id"], [])
            renders.append(rgb)
            controls.append(
                control_images(
                    settings.control, rgb, depth, canny_low=settings.canny_low, canny_high=settings.canny_high
                )
            )
            prompts.append(
                render_prompt(
                    settings.prompt_template, [cat_names.get(a["category_id"], "object") for a in anns],
                    frame=frame, scene=im.get("scene_index"),
                )
            )  # fmt: skip
            seeds.append(frame_seed(settings.seed, frame))
            extras.append((frame, depth, anns))
        t0 = time.perf_counter()
        refined = refiner.refine(renders, controls, prompts, seeds)
        refine_seconds += time.perf_counter() - t0
        if len(refined) != len(batch):
            raise SimgenError(f"the refiner returned {len(refined)} images for a batch of {len(batch)}")
        for im, rgb, new, prompt, seed, (frame, depth, anns) in zip(
            batch, renders, refined, prompts, seeds, extras, strict=True
        ):
            if new.shape != rgb.shape or new.dtype != np.uint8:
                raise SimgenError(
                    f"frame {frame}: the refiner returned {new.shape} {new.dtype}, expected {rgb.shape} uint8"
                )
            t1 = time.perf_counter()
            instances = _imread_raw(out / im["instance_file"]) if im.get("instance_file") else None
            result = check_frame(
                rgb, new, _masks(im, anns, instances), [a.get("bbox") for a in anns], check,
                depth=depth, render_structure=edge_structure(rgb, check),
            )  # fmt: skip
            check_seconds += time.perf_counter() - t1
            status = "accepted" if result.passed else ("flagged" if on_mismatch == "flag" else "rejected")
            stem = Path(im["file_name"]).stem
            rel = f"{REJECTED_DIR if status == 'rejected' else REFINED_DIR}/{stem}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            # Like the generator's frame files: temporary name and rename, checksummed, no per-file fsync.
            digest = write_file(out, rel, encode_png(new))
            record = {
                "status": status,
                "file": {"path": rel, "sha256": digest},
                "source": im["file_name"],
                "seed": seed,
                "prompt": prompt,
                "check": result.to_json(),
                "objects": [
                    {"annotation_id": a["id"], **o.to_json()} for a, o in zip(anns, result.objects, strict=True)
                ],
                "settings": "dataset.json#refine",
            }
            records[frame] = record
            by_image[im["id"]] = record
            if status != "accepted":
                log.info("frame %d %s: %s", frame, status, "; ".join(result.reasons))
        if progress is not None:
            progress(len(batch))

    summary = _summary(records, len(images), refine_seconds, check_seconds, load_seconds)
    refine_record = {
        "simgen_version": getattr(simgen, "__version__", None),
        "model": provenance,
        "settings": settings.to_json(),
        "seed": settings.seed,
        "frame_seed": "simgen.refine.settings.frame_seed(seed, frame_index)",
        "check": check.to_json(),
        "on_mismatch": on_mismatch,
        "coco": REFINED_COCO,
        "images": REFINED_DIR,
        "summary": summary,
    }
    refined_coco = _refined_coco(coco, images, anns_by_image, by_image, refine_record)
    checksums = {
        REFINED_COCO: _atomic_write_json(out / REFINED_COCO, refined_coco, indent=None),
        MANIFEST_FILE: _rewrite_manifest(out / MANIFEST_FILE, records),
    }
    if "manifest_chain" in dataset:  # every line changed on purpose: relink the chain, then checksum it again
        from simgen.provenance.chain import rechain

        dataset["manifest_chain"] = rechain(out)
        checksums[MANIFEST_FILE] = sha256_file(out / MANIFEST_FILE)
    dataset["refine"] = refine_record
    if isinstance(dataset.get("files"), dict):
        dataset["files"].update({"refined": f"{REFINED_DIR}/", "refined_coco": REFINED_COCO})
    if isinstance(dataset.get("checksums"), dict):  # keep the generator's checksums true after the rewrite
        dataset["checksums"].update(checksums)
    _atomic_write_json(out / DATASET_FILE, dataset)
    summary["seconds_total"] = round(time.perf_counter() - start, 3)
    log.info("refined %d frames: %s", len(images), summary["frames"])
    return RefineResult(out, out / REFINED_COCO, summary, [records[k] for k in sorted(records)])


def _summary(
    records: dict[int, dict[str, Any]], n: int, refine_s: float, check_s: float, load_s: float
) -> dict[str, Any]:
    frames = {"total": n, "accepted": 0, "flagged": 0, "rejected": 0}
    objects = {"checked": 0, "pass": 0, "fail": 0, "unverified": 0}
    scores = []
    for r in records.values():
        frames[r["status"]] += 1
        for o in r["objects"]:
            objects[o["status"]] += 1
            if o["status"] != "unverified":
                objects["checked"] += 1
        if r["check"]["frame_score"] is not None:
            scores.append(r["check"]["frame_score"])
    stats = {"min": round(float(np.min(scores)), 4), "median": round(float(np.median(scores)), 4)} if scores else None
    return {
        "frames": frames,
        "objects": objects,
        "frame_score": stats,
        "seconds_per_frame": {"refine": round(refine_s / max(n, 1), 4), "check": round(check_s / max(n, 1), 4)},
        "seconds_load": round(load_s, 3),
    }


def _refined_coco(
    coco: dict[str, Any],
    images: list[dict[str, Any]],
    anns_by_image: dict[Any, list[dict[str, Any]]],
    by_image: dict[Any, dict[str, Any]],
    refine_record: dict[str, Any],
) -> dict[str, Any]:
    out_images, out_anns = [], []
    for im in images:
        record = by_image[im["id"]]
        if record["status"] == "rejected":
            continue
        entry = {k: v for k, v in im.items() if k != "_shape"}
        entry["source_file_name"] = im["file_name"]
        entry["file_name"] = record["file"]["path"]
        entry["refine"] = {"status": record["status"], "seed": record["seed"], **record["check"]}
        out_images.append(entry)
        for a, o in zip(anns_by_image.get(im["id"], []), record["objects"], strict=True):
            ann = dict(a)
            ann["refine_check"] = {k: v for k, v in o.items() if k != "annotation_id"}
            flags = list(ann.get("flags") or [])
            if o["status"] == "fail":
                flags.append("refine_mismatch")
            elif o["status"] == "unverified":
                flags.append("refine_unverified")
            ann["flags"] = flags
            out_anns.append(ann)
    for im in images:
        im.pop("_shape", None)
    info = dict(coco.get("info") or {})
    info["refine"] = {k: refine_record[k] for k in ("model", "settings", "seed", "check", "on_mismatch")}
    info["description"] = (info.get("description", "") + " (refined)").strip()
    return {**{k: v for k, v in coco.items() if k not in ("images", "annotations", "info")}, "info": info,
            "images": out_images, "annotations": out_anns}  # fmt: skip
