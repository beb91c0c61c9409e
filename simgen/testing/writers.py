"""Conformance checks for dataset writers (:class:`~simgen.writers.base.DatasetWriter`), and helpers to build frames.

:func:`check_writer` runs a writer the way the engine does, twice, and asserts its contract:

* ``write_frame`` returns a :class:`~simgen.writers.base.FrameOutput` whose checksums match the files on
  disk, whose paths are relative and belong to one frame only, and whose record is plain JSON;
* nothing else appears on disk (no unlisted file, no temporary file left behind);
* ``finalize`` accepts the records streamed once, in frame order, after a JSON round trip (as the engine
  reads them back from the shard fragments), and its checksums match too;
* the same frames give byte-identical files, records and checksums, whatever the order they are written
  in (shards finish in any order) and when a frame is written again over its own files (a resumed run).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from simgen.frame import FrameBuffers, ModelPart, ObjectInfo
from simgen.io import encode_png, sha256_file, write_file
from simgen.labels import annotate, depth_to_png_mm
from simgen.writers.base import DatasetWriter, FrameContext, FrameOutput

#: Folder of each kind of frame file the engine writes before the writers run.
FRAME_DIRS = {"rgb": "images", "depth": "depth", "instances": "instances"}


class WriterCheckError(AssertionError):
    """A writer broke the :class:`~simgen.writers.base.DatasetWriter` contract."""


def frame_context(
    buffers: FrameBuffers,
    frame: int,
    categories: Sequence[str],
    *,
    scene: int = 0,
    kinds: Sequence[str] = ("rgb", "depth", "instances"),
    min_visible_px: int = 1,
    min_visibility: float = 0.0,
    on_filtered: Literal["drop", "flag"] = "drop",
) -> FrameContext:
    """A :class:`FrameContext` built the way the shard loop builds it: real labels, a real COCO record.

    Args:
        buffers: The frame's buffers.
        frame: Frame index.
        categories: Category names (id = position + 1).
        scene: Scene index.
        kinds: Which engine files the frame has (``rgb``, ``depth``, ``instances``); see :func:`stage_frame_files`.
        min_visible_px: Passed to :func:`simgen.labels.annotate`.
        min_visibility: Passed to :func:`simgen.labels.annotate`.
        on_filtered: Passed to :func:`simgen.labels.annotate`.

    Returns:
        The context.
    """
    from simgen.writers.coco import frame_record

    annotations = annotate(
        buffers, min_visible_px=min_visible_px, min_visibility=min_visibility, on_filtered=on_filtered
    )
    files = {kind: f"{FRAME_DIRS[kind]}/{frame:06d}.png" for kind in kinds}
    coco = frame_record(
        frame_index=frame,
        scene_index=scene,
        file_name=files.get("rgb", f"{FRAME_DIRS['rgb']}/{frame:06d}.png"),
        annotations=annotations,
        category_ids={name: i + 1 for i, name in enumerate(categories)},
        depth_file=files.get("depth"),
        instance_file=files.get("instances"),
        K=buffers.K,
        T_world_cam=buffers.T_world_cam,
        width=buffers.width,
        height=buffers.height,
    )
    return FrameContext(frame, scene, buffers, annotations, coco, files, tuple(categories))


#: Categories of :func:`example_buffers`.
EXAMPLE_CATEGORIES = ("box", "can")


def _rotation(axis: Sequence[float], angle: float) -> np.ndarray:
    a = np.asarray(axis, dtype=np.float64)
    x, y, z = a / np.linalg.norm(a)
    c, s = np.cos(angle), np.sin(angle)
    return np.array(
        [
            [c + x * x * (1 - c), x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
            [y * x * (1 - c) + z * s, c + y * y * (1 - c), y * z * (1 - c) - x * s],
            [z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)],
        ]
    )


def example_buffers(frame: int, *, width: int = 96, height: int = 72, empty: bool = False) -> FrameBuffers:
    """A small hand-drawn frame with the cases writers must get right, different for every ``frame``.

    Five labeled objects and one unlabeled occluder, drawn far to near into the instance image: a box
    partly hidden by a disc, a disc, a thin bar that cuts a rectangle behind it in two (a mask in two
    parts), that rectangle, and a box cut by the left image border. A patch of the first box has no
    depth (``0``). Every object has a rigid pose, a 3D box (scaled per instance), a box-shaped 3D model
    that fills it, and its unoccluded silhouette (``unoccluded_masks`` and ``unoccluded_px``). With
    ``empty`` nothing labeled is in view.

    Args:
        frame: Frame index; it shifts the shapes and changes the poses (deterministically).
        width: Image width.
        height: Image height.
        empty: Only the unlabeled occluder is drawn.

    Returns:
        The buffers.
    """
    rng = np.random.default_rng([20240611, frame])
    dx, dy = int(rng.integers(-4, 5)), int(rng.integers(-3, 4))
    yy, xx = np.mgrid[0:height, 0:width]
    shapes: list[tuple[int, str, bool, float, np.ndarray]] = []  # id, category, labeled, depth_m, mask

    def rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        return (xx >= x0 + dx) & (xx < x1 + dx) & (yy >= y0 + dy) & (yy < y1 + dy)

    def disc(cx: float, cy: float, r: float) -> np.ndarray:
        return (xx - cx - dx) ** 2 + (yy - cy - dy) ** 2 <= r * r

    if not empty:
        shapes += [
            (1, "box", True, 2.0, rect(10, 8, 40, 34)),
            (2, "can", True, 1.5, disc(38, 30, 11.0)),
            (3, "box", True, 1.0, rect(52, 38, 92, 41)),
            (4, "can", True, 1.8, rect(58, 26, 84, 60)),
            (5, "box", True, 1.2, rect(-12, 46, 14, 66)),
        ]
    shapes.append((6, "box", False, 0.9, disc(14, 60, 5.0)))

    ids = np.zeros((height, width), np.uint16)
    depth = np.full((height, width), 3.0, np.float32)
    for iid, _, _, z, mask in sorted(shapes, key=lambda s: -s[3]):
        ids[mask] = iid
        depth[mask] = z
    depth[8 + dy : 14 + dy, 10 + dx : 18 + dx] = 0.0  # no depth measured there
    rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)

    T_world_cam = np.eye(4)
    T_world_cam[:3, :3] = _rotation((1.0, 0.2, 0.1), np.pi + 0.3 + 0.01 * frame)
    T_world_cam[:3, 3] = (0.1, -0.2, 1.5)
    objects, poses = [], {}
    for iid, category, labeled, z, _ in shapes:
        scale = float(rng.uniform(0.8, 1.3))
        size = (0.10 * scale, 0.06 * scale, 0.08 * scale)
        center = (0.0, 0.0, size[2] / 2)  # a base frame at the bottom face, as simgen's assets often have
        asset = f"pybullet_data:{category}.urdf"
        model = (ModelPart("box", position=center, size=size),)  # the 3D box itself: a box-shaped object
        objects.append(ObjectInfo(iid, f"clutter/{iid}", category, labeled, center, size, asset, model))
        T_cam_obj = np.eye(4)
        T_cam_obj[:3, :3] = _rotation(rng.normal(size=3), float(rng.uniform(0.0, np.pi)))
        T_cam_obj[:3, 3] = (rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), z)
        poses[iid] = T_world_cam @ T_cam_obj
    K = np.array([[80.0, 0.0, width / 2 - 0.5], [0.0, 80.0, height / 2 - 0.5], [0.0, 0.0, 1.0]])
    full = {iid: mask.copy() for iid, _, _, _, mask in shapes}
    return FrameBuffers(
        rgb=rgb,
        depth_m=depth,
        instance_ids=ids,
        K=K,
        T_world_cam=T_world_cam,
        objects=objects,
        object_poses=poses,
        unoccluded_px={iid: int(m.sum()) for iid, m in full.items()},
        unoccluded_masks=full,
    )


def example_contexts(
    n_frames: int = 4, *, empty_frame: int | None = 2, frames_per_scene: int = 2, **annotate_options: Any
) -> list[FrameContext]:
    """Frames ``0..n_frames-1`` of :func:`example_buffers`, as :func:`frame_context` builds them.

    Args:
        n_frames: How many frames.
        empty_frame: The frame with nothing labeled in view, or None.
        frames_per_scene: Frames per scene (sets each context's scene index).
        **annotate_options: ``min_visible_px``, ``min_visibility``, ``on_filtered``.

    Returns:
        The contexts, in frame order.
    """
    return [
        frame_context(
            example_buffers(f, empty=f == empty_frame),
            f,
            EXAMPLE_CATEGORIES,
            scene=f // frames_per_scene,
            **annotate_options,
        )
        for f in range(n_frames)
    ]


def stage_frame_files(root: Path, ctx: FrameContext) -> dict[str, str]:
    """Write the files the engine writes before the writers run, under the names ``ctx.files`` gives.

    ``rgb`` is the RGB PNG, ``depth`` the uint16 millimetre PNG, ``instances`` the uint16 id PNG.

    Returns:
        Relative path -> SHA-256 of each file written.
    """
    out: dict[str, str] = {}
    b = ctx.buffers
    for kind, rel in ctx.files.items():
        if kind == "rgb":
            image = np.asarray(b.rgb, dtype=np.uint8)
        elif kind == "depth":
            image = depth_to_png_mm(b.depth_m)
        elif kind == "instances":
            image = np.asarray(b.instance_ids).astype(np.uint16)
        else:
            raise ValueError(f"ctx.files: unknown kind '{kind}', expected one of {sorted(FRAME_DIRS)}")
        (Path(root) / rel).parent.mkdir(parents=True, exist_ok=True)
        out[rel] = write_file(Path(root), rel, encode_png(image))
    return out


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices, normals and triangles of an ASCII PLY with ``x y z nx ny nz`` vertices (BOP's model files).

    A plain reader of the PLY layout, apart from the writer's code, for tests to read models back.
    """
    lines = Path(path).read_text().splitlines()
    if lines[:2] != ["ply", "format ascii 1.0"] or "end_header" not in lines:
        raise ValueError(f"{path}: not an ASCII PLY file")
    end = lines.index("end_header")
    counts = {ln.split()[1]: int(ln.split()[2]) for ln in lines[:end] if ln.startswith("element")}
    props = [ln.split()[-1] for ln in lines[:end] if ln.startswith("property float")]
    if props != ["x", "y", "z", "nx", "ny", "nz"]:
        raise ValueError(f"{path}: expected vertex properties x y z nx ny nz, got {props}")
    n = counts["vertex"]
    rows = np.array([ln.split() for ln in lines[end + 1 : end + 1 + n]], dtype=np.float64).reshape(n, 6)
    faces = np.array([ln.split() for ln in lines[end + 1 + n :]], dtype=np.int64).reshape(-1, 4)
    if faces.size and not np.all(faces[:, 0] == 3):
        raise ValueError(f"{path}: expected triangles only")
    return rows[:, :3], rows[:, 3:], faces[:, 1:]


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too), relative POSIX path -> bytes."""
    out: dict[str, bytes] = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def _check_files(root: Path, files: Any, who: str) -> dict[str, str]:
    if not isinstance(files, Mapping):
        raise WriterCheckError(f"{who}: expected a dict of relative path -> sha256, got {type(files).__name__}")
    for rel, digest in files.items():
        p = PurePosixPath(str(rel))
        if not isinstance(rel, str) or p.is_absolute() or ".." in p.parts or "\\" in rel or str(p) != rel:
            raise WriterCheckError(f"{who}: '{rel}' is not a normalised relative POSIX path")
        path = root / rel
        if not path.is_file():
            raise WriterCheckError(f"{who}: lists '{rel}', which is not a file on disk")
        if sha256_file(path) != digest:
            raise WriterCheckError(f"{who}: the sha256 given for '{rel}' does not match the file on disk")
    return dict(files)


def _check_record(record: Any, who: str) -> None:
    if record is None:
        return
    if not isinstance(record, dict):
        raise WriterCheckError(f"{who}: the record must be a dict or None, got {type(record).__name__}")
    try:
        back = json.loads(json.dumps(record, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise WriterCheckError(f"{who}: the record is not plain JSON ({exc})") from exc
    if back != record:
        raise WriterCheckError(f"{who}: the record changes through a JSON round trip (tuples, non-str keys ...)")


def _run(
    writer: DatasetWriter, root: Path, contexts: Sequence[FrameContext], order: Sequence[int], dataset: dict[str, Any]
) -> tuple[dict[int, FrameOutput], dict[str, str], dict[str, bytes]]:
    root.mkdir(parents=True, exist_ok=False)
    staged: set[str] = set()
    for ctx in contexts:
        staged |= set(stage_frame_files(root, ctx))
    outputs: dict[int, FrameOutput] = {}
    owner: dict[str, int] = {}
    for k in order:
        ctx = contexts[k]
        who = f"{type(writer).__name__}.write_frame(frame {ctx.frame})"
        out = writer.write_frame(root, ctx)
        if not isinstance(out, FrameOutput):
            raise WriterCheckError(f"{who}: expected a FrameOutput, got {type(out).__name__}")
        files = _check_files(root, out.files, who)
        _check_record(out.record, who)
        for rel in files:
            if rel in staged:
                raise WriterCheckError(f"{who}: lists the engine's own file '{rel}'")
            if owner.setdefault(rel, ctx.frame) != ctx.frame:
                raise WriterCheckError(f"{who}: writes '{rel}', which frame {owner[rel]} wrote too")
        outputs[ctx.frame] = out
    stray = set(_tree(root)) - staged - set(owner)
    if stray:
        raise WriterCheckError(f"{type(writer).__name__}.write_frame left unlisted files: {sorted(stray)[:5]}")

    def records() -> Iterator[dict[str, Any]]:  # as the engine streams them back from the fragments
        for frame in sorted(outputs):
            record = outputs[frame].record
            if record is not None:
                yield json.loads(json.dumps(record))

    who = f"{type(writer).__name__}.finalize"
    final = _check_files(root, writer.finalize(root, records(), dataset), who)
    clash = set(final) & (staged | set(owner))
    if clash:
        raise WriterCheckError(f"{who}: rewrites per-frame files {sorted(clash)[:5]}")
    stray = set(_tree(root)) - staged - set(owner) - set(final)
    if stray:
        raise WriterCheckError(f"{who} left unlisted files: {sorted(stray)[:5]}")
    return outputs, final, _tree(root)


def check_writer(
    writer: DatasetWriter,
    contexts: Sequence[FrameContext],
    *,
    dataset: dict[str, Any] | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Assert a writer's contract on some frames (see the module docstring).

    Args:
        writer: The writer to check.
        contexts: Frames with distinct indices; their engine files (``ctx.files``) are written first, with
            :func:`stage_frame_files`.
        dataset: The dataset record handed to ``finalize``; by default ``{"categories": [...]}`` from the
            first context's categories.
        tmp_dir: An empty or absent folder to work in; a temporary one by default.

    Raises:
        WriterCheckError: The writer broke its contract (the message says how).
    """
    if not isinstance(writer, DatasetWriter):
        raise WriterCheckError(f"{type(writer).__name__} lacks name, write_frame or finalize")
    if not isinstance(writer.name, str) or not writer.name:
        raise WriterCheckError(f"{type(writer).__name__}.name must be a non-empty str, got {writer.name!r}")
    if not contexts:
        raise WriterCheckError("check_writer needs at least one frame")
    frames = [c.frame for c in contexts]
    if len(set(frames)) != len(frames):
        raise WriterCheckError(f"contexts: frame indices must be distinct, got {frames}")
    if dataset is None:
        cats = contexts[0].categories
        dataset = {"categories": [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(cats)]}
    with tempfile.TemporaryDirectory(prefix="simgen-check-writer-") as tmp:
        base = Path(tmp_dir) if tmp_dir is not None else Path(tmp)
        forward = sorted(range(len(contexts)), key=lambda k: frames[k])
        out_a, final_a, tree_a = _run(writer, base / "a", contexts, forward, dataset)
        out_b, final_b, tree_b = _run(writer, base / "b", contexts, forward[::-1], dataset)
        name = type(writer).__name__
        for frame, a in out_a.items():
            if a != out_b[frame]:
                raise WriterCheckError(f"{name}: frame {frame} gives another output when frames come in another order")
        if final_a != final_b:
            raise WriterCheckError(f"{name}.finalize: checksums differ when frames come in another order")
        if tree_a != tree_b:
            differ = sorted(k for k in set(tree_a) | set(tree_b) if tree_a.get(k) != tree_b.get(k))
            raise WriterCheckError(f"{name}: files differ when frames come in another order: {differ[:5]}")

        # A resumed run writes a finished frame again over its own files, then finalizes again.
        root = base / "a"
        first = contexts[forward[0]]
        again = writer.write_frame(root, first)
        if again != out_a[first.frame]:
            raise WriterCheckError(f"{name}: writing frame {first.frame} again gives another output")
        records = (json.loads(json.dumps(out_a[f].record)) for f in sorted(out_a) if out_a[f].record is not None)
        if writer.finalize(root, records, dataset) != final_a:
            raise WriterCheckError(f"{name}.finalize: a second run gives other checksums")
        if _tree(root) != tree_a:
            raise WriterCheckError(f"{name}: writing a frame and finalizing again changed the files on disk")


#: Categories of :func:`rendered_contexts` (id = position + 1).
RENDERED_CATEGORIES = ("ball", "cube", "cylinder", "duck", "lego", "mug", "teddy")


def rendered_contexts(*, width: int = 160, height: int = 120, renderer: str = "tiny") -> list[FrameContext]:
    """Two views of a real PyBullet scene, rendered with visibility and labelled as the shard loop does.

    A table (an unlabeled fixture) with nine objects at fixed poses: URDF meshes (duck, mug, teddy, lego with
    its visual origin offset, a ball), a bare primitive (a cylinder), and three cubes, two of them at the
    same scale and one larger. They overlap in both views, and the first view has an unlabeled flying
    occluder (a bar) that cuts some objects in two. The camera comes from
    :func:`simgen.randomizers.geometry.intrinsics_from_fov`, so it follows simgen's ``K`` convention.

    Args:
        width: Image width.
        height: Image height.
        renderer: The PyBullet renderer (``"tiny"`` is bit-reproducible everywhere).

    Returns:
        The two frames' contexts (frames 0 and 1, scene 0), with every engine file kind.
    """
    from simgen.backends import make_backend
    from simgen.randomizers.geometry import intrinsics_from_fov
    from simgen.testing import pybullet_scenes as pb

    def place(uid: str, path: str | None, position: tuple[float, float, float], rpy: tuple[float, float, float],
              scale: float = 1.0, shape: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        return pb.obj(uid, path=pb.DATA / path if path else None, shape=shape, position=position,
                      orientation=pb.quat(*rpy), scale=scale)  # fmt: skip

    objects = [
        place("duck/0", "duck_vhacd.urdf", (-0.12, 0.06, 0.66), (0.3, 0.1, 0.8)),
        place("mug/0", "objects/mug.urdf", (0.06, 0.12, 0.66), (0.0, 0.2, 2.0)),
        place("teddy/0", "teddy_vhacd.urdf", (0.14, -0.06, 0.67), (1.2, 0.0, 0.4), 1.2),
        place("cube/0", "cube_small.urdf", (-0.04, -0.12, 0.65), (0.2, 0.4, 0.1)),
        place("cube/1", "cube_small.urdf", (0.02, -0.02, 0.66), (0.7, 0.1, 0.3), 1.5),
        place("cube/2", "cube_small.urdf", (0.1, 0.05, 0.65), (0.0, 0.0, 0.9)),
        place("ball/0", "sphere_small.urdf", (-0.02, 0.07, 0.68), (0.5, 0.5, 0.5)),
        place("lego/0", "lego/lego.urdf", (-0.15, -0.05, 0.66), (0.3, 0.9, 0.2), 2.0),
        place("cylinder/0", None, (0.16, 0.1, 0.68), (1.2, 0.3, 0.0),
              shape={"shape": "cylinder", "radius": 0.025, "length": 0.09}),
    ]  # fmt: skip
    target = [0.0, 0.0, 0.66]
    eyes = [[0.27, -0.25, 0.97], [-0.22, -0.3, 1.0]]
    K = intrinsics_from_fov(width, height, 50.0).tolist()
    forward = np.subtract(target, eyes[0]) / np.linalg.norm(np.subtract(target, eyes[0]))
    bar = {  # across the first view, between the camera and the objects
        "shape": "box", "size": [0.5, 0.012, 0.012], "position": (np.asarray(target) - 0.2 * forward).tolist(),
        "orientation": list(pb.quat(0.0, 0.0, float(np.arctan2(-forward[0], forward[1])))), "labeled": False,
    }  # fmt: skip
    backend = make_backend("pybullet", renderer=renderer)
    try:
        backend.build(pb.scene(objects, table=True))
        frames = []
        for i, eye in enumerate(eyes):
            view = pb.view(pb.look_at(eye, target), K, width=width, height=height, occluders=[bar] if i == 0 else [])
            frames.append(backend.render(view, visibility=True))
    finally:
        backend.close()
    return [frame_context(b, i, RENDERED_CATEGORIES) for i, b in enumerate(frames)]
