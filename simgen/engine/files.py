"""Where a dataset's files live, and how a dataset's records are read back safely, whatever its modality.

Everything that reads a dataset back (resume, ``verify``, ``replay``, ``inspect``, ``--overwrite``)
goes through the readers here, so a damaged or hostile dataset gives one :class:`SimgenError` naming
the file and what is wrong, and a recorded path never leads outside the dataset folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from simgen.errors import SimgenError
from simgen.writers.coco import COCO_FILE

if TYPE_CHECKING:
    from simgen.spec.models import Outputs


WORK_DIR = ".simgen"
RUN_FILE = "run.json"
MANIFEST_FILE = "manifest.jsonl"
DATASET_FILE = "dataset.json"
PREVIEW_RECORD = "preview.json"
FRAME_DIRS = {"rgb": "images", "depth": "depth", "instances": "instances"}
#: Keys that make a dataset.json simgen's own (an unrelated dataset.json has neither).
DATASET_KEYS = ("simgen_version", "spec_sha256")
#: Keys that make a .simgen/run.json simgen's own (any modality: the record count's key varies).
RUN_KEYS = ("spec_sha256", "seed")


@dataclass(frozen=True)
class Layout:
    """Paths of one dataset folder.

    Attributes:
        root: The dataset folder.
    """

    root: Path

    @property
    def work(self) -> Path:
        """Hidden folder for shard fragments and markers."""
        return self.root / WORK_DIR

    @property
    def run_file(self) -> Path:
        """The run's identity (spec digest, seed, frame count, ...), written before anything else."""
        return self.work / RUN_FILE

    def shard_dir(self, name: str) -> Path:
        """Work folder of one shard."""
        return self.work / "shards" / name

    def done_marker(self, name: str) -> Path:
        """Marker written atomically when a shard is complete."""
        return self.work / "shards" / f"{name}.done.json"

    @staticmethod
    def frame_file(kind: str, frame: int) -> str:
        """Relative path of one frame's file of a kind (``rgb``, ``depth``, ``instances``)."""
        return f"{FRAME_DIRS[kind]}/{frame:06d}.png"


def coco_image_kind(outputs: Outputs) -> str | None:
    """Which frame file COCO's ``images[].file_name`` names: the RGB, else the depth, else the instance PNG.

    COCO needs one picture per image record, and it must exist: with ``outputs.rgb: false`` the
    labels annotate the depth image (or the instance image), which is the picture the dataset has.
    """
    for kind in FRAME_DIRS:
        if getattr(outputs, kind):
            return kind
    return None


# --- reading a dataset back -------------------------------------------------------------------


def dataset_path(root: Path, rel: Any) -> Path | None:
    """``root/rel`` when ``rel`` is a relative path that stays inside ``root``, else None.

    Absolute paths, ``..`` parts, and symbolic links that lead out of ``root`` are refused, so a
    damaged or hostile record can never make simgen read (or delete) a file elsewhere.
    """
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        return None
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        return None
    path = root / pure
    try:
        path.resolve().relative_to(root.resolve())
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop
        return None
    return path


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing, unreadable or invalid file is one :class:`SimgenError` naming it.

    Raises:
        SimgenError: The file is missing, unreadable, not UTF-8 or not valid JSON.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SimgenError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise SimgenError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise SimgenError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        what = "empty" if not text.strip() else f"not valid JSON ({exc.msg}: line {exc.lineno}, column {exc.colno})"
        raise SimgenError(f"{path}: {what}") from None
    except RecursionError:
        raise SimgenError(f"{path}: nested too deeply to be a simgen file") from None


def simgen_record(path: Path, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The JSON object in ``path`` if it is one of simgen's own records (it has every key in ``keys``), else None.

    A missing, unreadable or foreign file gives None: only simgen's own records make a folder simgen's.
    """
    if not path.is_file() or path.is_symlink():
        return None
    try:
        obj = read_json(path)
    except SimgenError:
        return None
    if isinstance(obj, dict) and all(isinstance(obj.get(k), (str, int)) and obj.get(k) != "" for k in keys):
        return obj
    return None


def read_dataset_record(root: Path) -> dict[str, Any]:
    """``root/dataset.json``, checked to be simgen's.

    Raises:
        SimgenError: It is missing, damaged, or not a simgen dataset record.
    """
    path = root / DATASET_FILE
    if not path.is_file():
        raise SimgenError(f"{root} has no {DATASET_FILE}; is it a finished simgen dataset?")
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise SimgenError(f"{path}: expected a JSON object, got {json_kind(type(meta))}")
    missing = [k for k in DATASET_KEYS if k not in meta]
    if missing:
        raise SimgenError(f"{path}: not a simgen dataset record (no {', '.join(missing)})")
    return meta


#: What the tools read from every dataset.json, and the type each must have.
DATASET_FIELDS: dict[str, type] = {
    "seed": int,
    "checksums": dict,
}
#: ... and from an image dataset's (``"modality": "images"``, the default of datasets that do not say).
IMAGE_DATASET_FIELDS: dict[str, type] = {
    "spec": dict,
    "seed": int,
    "n_frames": int,
    "frames_per_scene": int,
    "backend": str,
    "renderer": str,
    "checksums": dict,
}


def dataset_modality(meta: dict[str, Any]) -> tuple[str, str]:
    """``(modality, record_key)`` of a dataset record: ``("images", "frame")`` unless it says otherwise."""
    modality = meta.get("modality", "images")
    key = meta.get("record_key", "frame")
    return (modality if isinstance(modality, str) else "images", key if isinstance(key, str) and key else "frame")


def dataset_record_problems(meta: dict[str, Any], where: Path) -> list[str]:
    """Every field the tools read that is missing or of the wrong type, one message each.

    Every dataset needs :data:`DATASET_FIELDS` and a count ``n_<record_key>s``; an image dataset also
    :data:`IMAGE_DATASET_FIELDS`.
    """
    modality, key = dataset_modality(meta)
    fields = dict(IMAGE_DATASET_FIELDS) if modality == "images" else {**DATASET_FIELDS, f"n_{key}s": int}
    problems = []
    for name, kind in fields.items():
        try:
            value = record_field(meta, name, kind, where)
        except SimgenError as exc:
            problems.append(str(exc))
            continue
        if name in (f"n_{key}s", "frames_per_scene") and value < 1:
            problems.append(f"{where}: '{name}' must be >= 1, got {value}")
    return problems


def record_field(meta: dict[str, Any], key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    """``meta[key]``, checked to be of ``kind`` (a bool never counts as an int).

    Raises:
        SimgenError: The key is missing or holds the wrong type.
    """
    if key not in meta:
        raise SimgenError(f"{where}: '{key}' is missing")
    value = meta[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise SimgenError(f"{where}: '{key}' must be {json_kind(kinds)}, got {json_kind(type(value))}")
    return value


_JSON_NAMES = {dict: "an object", list: "a list", int: "an integer", float: "a number", str: "a string",
               bool: "a boolean", type(None): "null"}  # fmt: skip


def json_kind(kind: type | tuple[type, ...]) -> str:
    """A JSON type's name for messages: ``dict`` -> "an object", ``(int, float)`` -> "an integer or a number"."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)


def manifest_entries(
    path: Path, record_key: str = "frame"
) -> Iterator[tuple[int, dict[str, Any] | SimgenError]]:
    """Stream ``(line number, entry)`` from a manifest; a bad line gives ``(line number, the error)``.

    The caller decides whether a bad line is fatal (replay) or one more finding (verify). ``record_key`` is
    the key of each line's record index (``"frame"`` for images).

    Raises:
        SimgenError: The file cannot be opened.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed below; bytes, so a non-UTF-8 line is one finding)
    except FileNotFoundError:
        raise SimgenError(f"{path}: no such file") from None
    except OSError as exc:
        raise SimgenError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    with fh:
        for number, raw in enumerate(fh, start=1):
            try:
                yield number, check_manifest_entry(json.loads(raw), f"{path} line {number}", record_key)
            except SimgenError as exc:
                yield number, exc
            except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                yield number, SimgenError(f"{path} line {number}: not valid JSON")


def check_manifest_entry(entry: Any, where: str, record_key: str = "frame") -> dict[str, Any]:
    """A manifest entry with its record index (``record_key``, ``frame`` for images) and ``files`` checked.

    Raises:
        SimgenError: The index is not a non-negative int, or ``files`` is not
            ``{kind: {"path": str, "sha256": str}}``.
    """
    if not isinstance(entry, dict):
        raise SimgenError(f"{where}: expected a JSON object, got {json_kind(type(entry))}")
    index = entry.get(record_key)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise SimgenError(f"{where}: '{record_key}' must be an int >= 0, got {_short(index)}")
    files = entry.get("files", {})
    if not isinstance(files, dict):
        raise SimgenError(f"{where}: 'files' must be an object, got {json_kind(type(files))}")
    for kind, f in files.items():
        if not (isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str)):
            expected = '{"path": str, "sha256": str}'
            raise SimgenError(f"{where}: files['{kind}'] must be {expected}, got {_short(f)}")
    return entry


def recorded_files(entry: dict[str, Any]) -> list[dict[str, str]]:
    """Every ``{"path", "sha256"}`` a checked manifest entry records: its frame files, and its refined image.

    ``simgen refine`` adds ``entry["refine"]["file"]``; a malformed one is left out (the manifest's own
    checksum already reports the damage).
    """
    out = list(entry.get("files", {}).values())
    refine = entry.get("refine")
    f = refine.get("file") if isinstance(refine, dict) else None
    if isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str):
        out.append(f)
    return out


def _short(value: Any, limit: int = 60) -> str:
    """A bounded repr: an error message never carries a whole input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- what simgen wrote in a folder (for --overwrite and --resume) ------------------------------

_TEMP_NAME = re.compile(r"^\.(?P<name>.+?)(?:\.[0-9a-f]{8})?\.tmp$")
_DIGITS = re.compile(r"[0-9]")


@dataclass
class FolderScan:
    """What a folder holds, split into the files simgen's own records say it wrote and everything else.

    Attributes:
        root: The folder.
        run: Its ``.simgen/run.json`` when that is simgen's, else None.
        dataset: Its ``dataset.json`` when that is simgen's, else None.
        owned: Files (and links) simgen wrote, relative to ``root``.
        foreign: Every other file or link, relative to ``root``.
        made_dirs: Folders simgen made (they hold or held its files), relative, deepest first.
    """

    root: Path
    run: dict[str, Any] | None
    dataset: dict[str, Any] | None
    owned: list[str]
    foreign: list[str]
    made_dirs: list[str]

    @property
    def is_simgen(self) -> bool:
        """Whether one of simgen's own records (run.json or dataset.json) is there."""
        return self.run is not None or self.dataset is not None

    def describe_foreign(self, limit: int = 5) -> str:
        """The first few foreign paths, for an error message."""
        shown = ", ".join(f"'{p}'" for p in self.foreign[:limit])
        more = len(self.foreign) - limit
        return shown + (f" and {more} more" if more > 0 else "")


def scan_folder(root: Path) -> FolderScan:
    """Split what ``root`` holds into simgen's files and foreign ones, from simgen's own records.

    A file is simgen's when its records list it: ``dataset.json`` (``files``, ``checksums``), the
    manifest and every shard fragment (each frame's files), everything under ``.simgen/``, a recorded
    preview. A file named like a recorded one with other digits (``images/000007.png`` beside a recorded
    ``images/000006.png``, a frame a killed run wrote but had not committed yet), and a hidden temporary
    name of one of those (``.000007.png.tmp``), count too. Nothing is simgen's unless a simgen
    ``run.json`` or ``dataset.json`` is there. Symbolic links are never followed: a link is a foreign
    entry unless its own path is recorded.
    """
    layout = Layout(root)
    run = simgen_record(layout.run_file, RUN_KEYS)
    dataset = simgen_record(root / DATASET_FILE, DATASET_KEYS)
    files, dirs = _walk(root)
    owned: list[str] = []
    foreign: list[str] = []
    if run is None and dataset is None:
        return FolderScan(root, None, None, [], files, [])
    recorded = _recorded_paths(root, dataset, dataset_modality(dataset or run or {})[1])
    templates = {_DIGITS.sub("#", rel) for rel in recorded} | {f"{d}/######.png" for d in FRAME_DIRS.values()}

    def is_owned(rel: str) -> bool:
        if rel == WORK_DIR or rel.startswith(WORK_DIR + "/"):
            return True
        if rel in recorded or _DIGITS.sub("#", rel) in templates:
            return True
        folder, _, name = rel.rpartition("/")
        temp = _TEMP_NAME.match(name)
        if temp is None:
            return False
        base = f"{folder}/{temp['name']}" if folder else temp["name"]
        return base in recorded or _DIGITS.sub("#", base) in templates

    for rel in files:
        (owned if is_owned(rel) else foreign).append(rel)
    holding = {str(parent) for rel in owned for parent in PurePosixPath(rel).parents}
    made = {d for d in dirs if d in holding or is_owned(d) or d in FRAME_DIRS.values()}
    made_dirs = sorted(made, key=lambda d: (-d.count("/"), d))
    return FolderScan(root, run, dataset, owned, foreign, made_dirs)


def remove_owned(scan: FolderScan) -> None:
    """Delete the files ``scan`` found simgen wrote, then the folders it made once they are empty.

    Links are unlinked, never followed; folders that still hold anything are left; ``root`` stays.
    """
    for rel in scan.owned:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scan.root / rel)
    for rel in scan.made_dirs:
        path = scan.root / rel
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):  # not empty: it holds something of the user's
                path.rmdir()


def _walk(root: Path) -> tuple[list[str], list[str]]:
    """Every non-folder entry (files, links, anything else) and every real folder under ``root``, relative."""
    files: list[str] = []
    dirs: list[str] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(root / rel_dir if rel_dir else root) as entries:
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=False):
                    dirs.append(rel)
                    stack.append(rel)
                else:
                    files.append(rel)
    return sorted(files), dirs


def _recorded_paths(root: Path, dataset: dict[str, Any] | None, record_key: str) -> set[str]:
    """Relative paths simgen's records list (damaged records are read as far as they go)."""
    recorded = {DATASET_FILE, COCO_FILE, MANIFEST_FILE}
    if dataset is not None:
        files = dataset.get("files")
        if isinstance(files, dict):
            recorded |= {v for v in files.values() if isinstance(v, str) and not v.endswith("/")}
        checksums = dataset.get("checksums")
        if isinstance(checksums, dict):
            recorded |= {k for k in checksums if isinstance(k, str)}
    manifests = [root / MANIFEST_FILE, *sorted((root / WORK_DIR / "shards").glob(f"*/{MANIFEST_FILE}"))]
    for manifest in manifests:
        if not manifest.is_file() or manifest.is_symlink():
            continue
        for _, entry in manifest_entries(manifest, record_key):
            if isinstance(entry, dict):
                recorded |= {f["path"] for f in recorded_files(entry)}
    preview = simgen_record(root / WORK_DIR / PREVIEW_RECORD, ("path",))
    if preview is not None and isinstance(preview["path"], str):
        recorded.add(preview["path"])
    return {str(PurePosixPath(p)) for p in recorded if p}
