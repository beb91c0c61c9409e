"""Appearance, dynamics and flying-occluder patches applied by the PyBullet backend, with both renderers."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pybullet as p
import pytest

from simgen.backends import pybullet_appearance as appearance
from simgen.backends.pybullet_backend import PyBulletBackend
from simgen.errors import AssetError
from simgen.randomizers.textures import render_texture

CHECKER = {"kind": "checker", "seed": 1, "size": 64, "colors": [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], "cells": 8}
PERLIN = {
    "kind": "perlin",
    "seed": 3,
    "size": 128,
    "colors": [[0.1, 0.9, 0.1], [0.9, 0.9, 0.1]],
    "scale": 4,
    "octaves": 3,
    "persistence": 0.5,
}


def solid(rgb: list[float]) -> dict[str, Any]:
    """A procedural record that renders one flat colour."""
    return {"kind": "linear-gradient", "seed": 0, "size": 16, "colors": [rgb, rgb], "angle_deg": 0.0}


def textured_scene(pb: SimpleNamespace, texture: Any = None, ground: Any = None) -> dict[str, Any]:
    """A URDF cube, an OBJ duck, a primitive box and an untextured URDF cube of the same asset and scale."""
    objects = [
        pb.obj("cube/0", path=pb.DATA / "cube_small.urdf", position=(-0.15, 0.0, 0.05), scale=2.0),
        pb.obj("duck/0", path=pb.DATA / "duck.obj", position=(0.0, -0.2, 0.0), scale=0.1),
        pb.obj("box/0", shape={"shape": "box", "size": [0.1, 0.1, 0.1]}, position=(0.0, 0.2, 0.05)),
        pb.obj("cube/1", path=pb.DATA / "cube_small.urdf", position=(0.15, 0.0, 0.05), scale=2.0),
    ]
    for o in objects[:3]:
        o["texture"] = texture
    state = pb.scene(objects, ground="plane")
    state["ground"]["texture"] = ground
    return state


def mean_rgb(frame: Any, instance_id: int) -> np.ndarray:
    mask = frame.instance_ids == instance_id
    assert mask.sum() > 50, instance_id
    return frame.rgb[mask].astype(float).mean(axis=0)


def test_textures_show_and_are_reproducible(backend: PyBulletBackend, pb: SimpleNamespace) -> None:
    cam = pb.view(pb.look_at([0.5, -0.6, 0.7], [0.0, 0.0, 0.05]))
    backend.build(textured_scene(pb))
    plain = backend.render(cam)
    backend.build(textured_scene(pb, CHECKER, PERLIN))
    first = backend.render(cam)
    backend.build(textured_scene(pb, {"kind": "image", "path": str(pb.DATA / "uvmap.png")}))
    backend.render(cam)
    backend.build(textured_scene(pb, CHECKER, PERLIN))
    again = backend.render(cam)

    np.testing.assert_array_equal(first.rgb, again.rgb)  # the same records give the same pixels
    np.testing.assert_array_equal(first.instance_ids, plain.instance_ids)  # textures change no label
    for i in (1, 2, 3):  # textured: much more red and blue than the white-ish untextured render
        mask = plain.instance_ids == i
        assert np.abs(first.rgb[mask].astype(float) - plain.rgb[mask]).mean() > 40, i
        assert np.ptp(first.rgb[mask][:, 0].astype(float)) > 100  # the checker's two colours both show
    cube1 = plain.instance_ids == 4  # same asset and scale as the textured cube/0, untextured
    np.testing.assert_array_equal(first.rgb[cube1], plain.rgb[cube1])
    ground = (plain.instance_ids == 0) & (plain.depth_m > 0)
    g_plain, g_first = plain.rgb[ground].astype(float), first.rgb[ground].astype(float)
    assert np.abs(g_first - g_plain).mean() > 40
    assert g_first[:, 1].mean() > g_first[:, 2].mean() + 60  # perlin green/yellow, not the blue checker


def test_egl_textures_stay_right_across_builds(backend: PyBulletBackend, pb: SimpleNamespace) -> None:
    """Regression: PyBullet's EGL plugin draws ``changeVisualShape`` textures of a later build with an earlier
    build's images; the backend bakes textures into mesh materials instead. Each build must show its own colour."""
    cam = pb.view(pb.look_at([0.5, -0.6, 0.7], [0.0, 0.0, 0.05]))
    colours = {"red": [0.9, 0.1, 0.1], "green": [0.1, 0.8, 0.1], "blue": [0.1, 0.2, 0.9]}
    for name, rgb in [*colours.items(), ("red", colours["red"])]:
        backend.build(textured_scene(pb, solid(rgb), solid(rgb)))
        frame = backend.render(cam)
        for i in (1, 2, 3):
            assert int(np.argmax(mean_rgb(frame, i))) == int(np.argmax(rgb)), (name, i, mean_rgb(frame, i))
        ground = (frame.instance_ids == 0) & (frame.depth_m > 0)
        assert int(np.argmax(frame.rgb[ground].astype(float).mean(axis=0))) == int(np.argmax(rgb)), name


def test_textured_scenes_settle_alike_with_both_renderers(
    tiny: PyBulletBackend, egl: PyBulletBackend, pb: SimpleNamespace
) -> None:
    """EGL loads baked copies of textured files; their physics (collision files, inertia) is the original's."""
    state = textured_scene(pb, CHECKER, PERLIN)
    for o in state["objects"].values():
        o["position"][2] += 0.3
        o["orientation"] = list(pb.quat(0.4, 0.3, 0.2))
    tiny.build(state)
    egl.build(state)
    assert egl.settle() == tiny.settle()


def test_texture_tints_with_a_colour_and_textures_a_robot(backend: PyBulletBackend, pb: SimpleNamespace) -> None:
    """A colour tints a texture; a robot labeled per link is textured (with EGL: a baked URDF whose meshes are
    found through ``package://``) without any change to its geometry or labels."""
    cam = pb.view(pb.look_at([0.5, -0.6, 0.7], [0.0, 0.0, 0.05]))
    state = textured_scene(pb, solid([1.0, 1.0, 1.0]))
    state["objects"]["box/0"]["color"] = [0.0, 0.0, 1.0, 1.0]  # white texture, blue tint: blue
    backend.build(state)
    r, g, b = mean_rgb(backend.render(cam), 3)
    assert b > 2 * r and b > 2 * g

    arm = pb.fixture("arm", pb.DATA / "franka_panda/panda.urdf", labeled=True, category="panda", link_labels=True)
    robot_cam = pb.view(pb.look_at([1.2, -0.9, 1.0], [0.0, 0.0, 0.45]))
    backend.build(pb.scene([], fixtures=[arm]))
    plain = backend.render(robot_cam)
    backend.build(pb.scene([], fixtures=[{**arm, "texture": solid([0.1, 0.8, 0.1])}]))
    green = backend.render(robot_cam)
    np.testing.assert_array_equal(green.instance_ids, plain.instance_ids)
    assert [o.uid for o in green.objects] == [o.uid for o in plain.objects]
    for o in green.objects:
        if (plain.instance_ids == o.instance_id).sum() > 50:
            r, g, b = mean_rgb(green, o.instance_id)
            assert g > 1.5 * r and g > 1.5 * b, o.uid


def test_resetsimulation_invalidates_texture_ids() -> None:
    """Why :class:`TextureCache` keeps ids for one build only (measured with TinyRenderer)."""
    cid = p.connect(p.DIRECT)
    view = p.computeViewMatrix([0.0, -1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    proj = p.computeProjectionMatrixFOV(40.0, 1.0, 0.1, 10.0)

    def box_image(texture: int | None) -> np.ndarray:
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[0.2] * 3, rgbaColor=[1, 1, 1, 1], physicsClientId=cid)
        body = p.createMultiBody(0, -1, vis, [0, 0, 0], physicsClientId=cid)
        if texture is not None:
            p.changeVisualShape(body, -1, textureUniqueId=texture, physicsClientId=cid)
        image = p.getCameraImage(48, 48, view, proj, renderer=p.ER_TINY_RENDERER, physicsClientId=cid)[2]
        return np.asarray(image)

    try:
        plain = box_image(None)
        texture = p.loadTexture(appearance.texture_file(CHECKER, "test"), physicsClientId=cid)
        assert np.abs(box_image(texture).astype(int) - plain).mean() > 10
        p.resetSimulation(physicsClientId=cid)
        np.testing.assert_array_equal(box_image(texture), plain)  # the stale id is silently ignored
    finally:
        p.disconnect(physicsClientId=cid)


def test_texture_cache_files(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(appearance, "texture_cache_dir", lambda: tmp_path)
    path = appearance.texture_file(PERLIN, "objects['x'].texture")
    canonical = json.dumps(PERLIN, sort_keys=True, separators=(",", ":"))
    import hashlib

    assert path == str(tmp_path / f"{hashlib.sha256(canonical.encode()).hexdigest()}.png")
    assert appearance.texture_file(dict(reversed(list(PERLIN.items()))), "x") == path  # key order is irrelevant
    assert [f.name for f in tmp_path.iterdir()] == [f"{hashlib.sha256(canonical.encode()).hexdigest()}.png"]
    cid = p.connect(p.DIRECT)
    try:  # PyBullet reads the PNG back as the image render_texture made
        texture = p.loadTexture(path, physicsClientId=cid)
        assert texture >= 0
    finally:
        p.disconnect(physicsClientId=cid)
    import zlib

    data = Path(path).read_bytes()
    raw = zlib.decompress(data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8])
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(128, 1 + 128 * 3)[:, 1:].reshape(128, 128, 3)
    np.testing.assert_array_equal(rows, render_texture(PERLIN))
    with pytest.raises(AssetError, match=r"objects\['x'\].texture: texture record kind"):
        appearance.texture_file({"kind": "plaid"}, "objects['x'].texture")
    with pytest.raises(AssetError, match="not found"):
        appearance.texture_file({"kind": "image", "path": str(tmp_path / "missing.png")}, "ground.texture")


def test_specular_and_dynamics(tiny: PyBulletBackend, pb: SimpleNamespace) -> None:
    cam = pb.view(pb.look_at([0.5, -0.6, 0.7], [0.0, 0.0, 0.05]))
    state = textured_scene(pb)
    tiny.build(state)
    plain = tiny.render(cam)
    dynamics = {"lateral_friction": 0.3, "spinning_friction": 0.01, "rolling_friction": 0.002, "restitution": 0.7}
    state["objects"]["cube/0"]["dynamics"] = dynamics
    state["objects"]["box/0"]["dynamics"] = {"restitution": 0.25}
    state["objects"]["cube/0"]["specular"] = [1.0, 1.0, 1.0]
    tiny.build(state)
    cid = tiny.client_id
    info = p.getDynamicsInfo(tiny._objects[0].body, -1, physicsClientId=cid)
    assert (info[1], info[5], info[6], info[7]) == pytest.approx((0.3, 0.7, 0.002, 0.01))
    box = p.getDynamicsInfo(tiny._objects[2].body, -1, physicsClientId=cid)
    assert box[5] == pytest.approx(0.25) and box[1] == pytest.approx(0.5)  # the rest keeps PyBullet's defaults
    # Measured: specularColor reaches only PyBullet's OpenGL GUI; neither DIRECT-mode renderer changes a pixel.
    np.testing.assert_array_equal(tiny.render(cam).rgb, plain.rgb)
    state["objects"]["cube/0"]["dynamics"] = {"lateral_fiction": 0.3}
    with pytest.raises(AssetError, match="did you mean 'lateral_friction'"):
        tiny.build(state)
    state["objects"]["cube/0"]["dynamics"] = {"restitution": -1}
    with pytest.raises(AssetError, match="restitution"):
        tiny.build(state)


def occluders(T: np.ndarray, target: list[float]) -> list[dict[str, Any]]:
    eye = T[:3, 3]
    between = eye + 0.45 * (np.asarray(target) - eye)
    return [
        {
            "shape": "sphere",
            "radius": 0.06,
            "position": between.tolist(),
            "orientation": [0.0, 0.0, 0.0, 1.0],
            "color": [0.9, 0.1, 0.1, 1.0],
            "labeled": True,
        },
        {
            "shape": "box",
            "size": [0.05, 0.3, 0.04],
            "position": (eye + 0.6 * (np.asarray([0.15, 0.0, 0.05]) - eye)).tolist(),
            "orientation": [0.0, 0.0, 0.0, 1.0],
            "color": [0.1, 0.8, 0.1, 1.0],
            "labeled": False,
        },
    ]


def test_flying_occluders_are_render_only(backend: PyBulletBackend, pb: SimpleNamespace) -> None:
    state = textured_scene(pb)
    backend.build(state)
    backend.settle()
    T = pb.look_at([0.5, -0.6, 0.7], [0.0, 0.0, 0.05])
    before = pb.physics_snapshot(backend)
    plain = backend.render(pb.view(T), visibility=True)
    frame = backend.render(pb.view(T, occluders=occluders(T, [-0.15, 0.0, 0.05])), visibility=True)
    assert pb.physics_snapshot(backend) == before  # same bodies, bit-identical poses and velocities
    after = backend.render(pb.view(T), visibility=True)
    np.testing.assert_array_equal(after.rgb, plain.rgb)
    np.testing.assert_array_equal(after.instance_ids, plain.instance_ids)

    # The labeled sphere is instance 5 (after the 4 objects); the unlabeled box is background, but occludes.
    assert [o.uid for o in frame.objects] == ["cube/0", "duck/0", "box/0", "cube/1", "occluder/0"]
    sphere = frame.objects[4]
    assert (sphere.instance_id, sphere.category, sphere.labeled) == (5, "occluder", True)
    np.testing.assert_allclose(sphere.bbox3d_size, [0.12, 0.12, 0.12])
    np.testing.assert_allclose(frame.object_poses[5][:3, 3], occluders(T, [-0.15, 0.0, 0.05])[0]["position"])
    assert frame.meta["occluders"] == 2
    visible = {i: int((frame.instance_ids == i).sum()) for i in range(1, 6)}
    plain_visible = {i: int((plain.instance_ids == i).sum()) for i in range(1, 5)}
    assert visible[5] > 100
    assert visible[1] < plain_visible[1] - 30  # hidden by the sphere
    assert visible[4] < plain_visible[4] - 30  # hidden by the unlabeled box
    green = (frame.rgb[..., 1] > 150) & (frame.rgb[..., 0] < 100) & (frame.instance_ids == 0)
    assert green.sum() > 30  # the unlabeled box is drawn, as background
    # Unoccluded silhouettes ignore the occluders, which get their own.
    assert frame.unoccluded_px is not None and plain.unoccluded_px is not None and frame.unoccluded_masks is not None
    assert {i: frame.unoccluded_px[i] for i in range(1, 5)} == plain.unoccluded_px
    assert frame.unoccluded_px[5] == visible[5]  # nothing is in front of the sphere
    for i, mask in frame.unoccluded_masks.items():
        assert int(mask.sum()) == frame.unoccluded_px[i] and not np.any((frame.instance_ids == i) & ~mask)


def test_bad_occluders_are_refused_and_leave_nothing_behind(tiny: PyBulletBackend, pb: SimpleNamespace) -> None:
    tiny.build(textured_scene(pb))
    T = pb.look_at([0.5, -0.6, 0.7], [0.0, 0.0, 0.05])
    good = occluders(T, [0.0, 0.0, 0.05])[0]
    bodies = p.getNumBodies(physicsClientId=tiny.client_id)
    with pytest.raises(AssetError, match=r"occluders\[1\].shape: .*did you mean 'sphere'"):
        tiny.render(pb.view(T, occluders=[good, {**good, "shape": "spere"}]))
    with pytest.raises(AssetError, match=r"occluders\[0\]: a box needs 'size'"):
        tiny.render(pb.view(T, occluders=[{**good, "shape": "box"}]))
    assert p.getNumBodies(physicsClientId=tiny.client_id) == bodies


# --- corrupt images and the texture cache (issue 10) -----------------------------------------------------


def test_corrupt_image_texture_is_an_error_not_grey(tiny: PyBulletBackend, pb: SimpleNamespace, tmp_path: Path) -> None:
    """PyBullet's ``loadTexture`` accepts a file that is no image (and draws the surface grey); the backend refuses
    it, naming the file, for objects and the ground alike."""
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    cid = p.connect(p.DIRECT)
    try:
        assert p.loadTexture(str(bad), physicsClientId=cid) >= 0  # why the check is needed
    finally:
        p.disconnect(physicsClientId=cid)
    with pytest.raises(AssetError, match=rf"objects\['cube/0'\].texture.path: {bad} is not a readable image"):
        tiny.build(textured_scene(pb, {"kind": "image", "path": str(bad)}))
    good = (pb.DATA / "uvmap.png").read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(AssetError, match=rf"ground.texture.path: .*{cut} is truncated or corrupt"):
        tiny.build(textured_scene(pb, ground={"kind": "image", "path": str(cut)}))
    tiny.build(textured_scene(pb, {"kind": "image", "path": str(pb.DATA / "uvmap.png")}))  # a whole image is fine


@pytest.fixture
def fresh_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder of its own, as the texture cache's parent, with this process's digests forgotten."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(appearance, "_png_digests", type(appearance._png_digests)())
    return tmp_path


def cache_path(tmp: Path, record: dict[str, Any]) -> Path:
    import os

    import simgen

    return tmp / f"simgen-textures-{os.getuid()}" / simgen.__version__ / f"{appearance.record_digest(record)}.png"


def test_texture_cache_folder_is_private(fresh_tmp: Path) -> None:
    path = Path(appearance.texture_file(CHECKER, "x"))
    assert path == cache_path(fresh_tmp, CHECKER)
    assert (path.parent.stat().st_mode & 0o777, path.parent.parent.stat().st_mode & 0o777) == (0o700, 0o700)


def test_planted_cache_file_is_never_drawn(pb: SimpleNamespace, fresh_tmp: Path) -> None:
    """A file at a procedural texture's cache path is used only if its bytes are the PNG of the record.

    Each render uses a new client: PyBullet keeps a texture it loaded by file name for the client's life.
    """
    cam = pb.view(pb.look_at([0.5, -0.6, 0.7], [0.0, 0.0, 0.05]))

    def render() -> np.ndarray:
        with PyBulletBackend(renderer="tiny") as backend:
            backend.build(textured_scene(pb, CHECKER, PERLIN))
            return backend.render(cam).rgb

    clean = render()
    red = appearance.encode_png(np.full((64, 64, 3), (255, 0, 0), np.uint8))
    for forget in (False, True):  # this process rendered the record already, or not (a new worker)
        if forget:
            appearance._png_digests.clear()
        for record in (CHECKER, PERLIN):
            cache_path(fresh_tmp, record).write_bytes(red)
        np.testing.assert_array_equal(render(), clean)
        assert cache_path(fresh_tmp, CHECKER).read_bytes() == appearance.encode_png(render_texture(CHECKER))


@pytest.mark.parametrize("how", ["world-writable", "symlink", "other-owner"])
def test_unsafe_cache_folder_is_bypassed(
    fresh_tmp: Path, how: str, caplog: pytest.LogCaptureFixture, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import os

    shared = cache_path(fresh_tmp, CHECKER).parent.parent
    if how == "symlink":
        elsewhere = tmp_path_factory.mktemp("attacker")
        shared.symlink_to(elsewhere)
    else:
        shared.mkdir()
        if how == "world-writable":
            shared.chmod(0o777)
        elif os.geteuid() == 0:
            os.chown(shared, 65534, 65534)
        else:
            pytest.skip("only root can make a folder owned by another user")
    with caplog.at_level("WARNING", logger=appearance.__name__):
        path = Path(appearance.texture_file(CHECKER, "x"))
    assert shared not in path.parents and shared.resolve() not in path.parents
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert path.read_bytes() == appearance.encode_png(render_texture(CHECKER))
    assert "texture cache folder" in caplog.text and str(shared) in caplog.text
    assert not list(shared.resolve().rglob("*.png"))  # nothing written where others can reach


# --- appearance randomizers on fixtures and the ground, through the engine (issue 11, item 6) ---------------


def engine_scene(randomizers: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """A labeled table (so it has an instance mask), a robot arm labeled per link, three cubes on the table and
    a ground plane, sampled by the engine with ``randomizers`` and resolved for the backend."""
    from simgen.engine.scene_state import RandomizerSet, backend_scene, sample_scene
    from simgen.spec import load_spec

    cube = {"shape": "box", "size": [0.12, 0.12, 0.12]}
    raw = {
        "version": 1,
        "name": "fixture-appearance",
        "fixtures": [
            {"name": "table", "asset": "pybullet_data:table/table.urdf", "labeled": True, "tags": ["furniture"]},
            {
                "name": "arm",
                "asset": "pybullet_data:franka_panda/panda.urdf",
                "position": [-0.45, 0.0, 0.625],
                "labeled": True,
                "link_labels": True,
                "tags": ["robot"],
            },
        ],
        "objects": [
            {
                "name": "cubes",
                "assets": [{"asset": cube, "category": "cube"}],
                "count": 3,
                "color": [0.9, 0.9, 0.9],
                "region": {"center": [0.1, 0.0, 0.69], "size": [0.4, 0.5, 0.0]},
                "drop_height": 0.0,
                "rotation": "none",
                "min_spacing": 0.15,
            }
        ],
        "randomizers": randomizers,
    }
    loaded = load_spec(raw)
    state, _ = sample_scene(loaded, RandomizerSet.from_spec(loaded), seed=seed, scene_index=0)
    return backend_scene(loaded, state)


def masks(frame: Any) -> dict[str, np.ndarray]:
    """Pixel masks of the cubes together, the table, the arm's links together and the visible ground."""
    by_uid = {o.uid: o.instance_id for o in frame.objects}
    ids = frame.instance_ids
    out = {
        "cubes": np.isin(ids, [i for u, i in by_uid.items() if u.startswith("cubes/")]),
        "table": ids == by_uid["table"],
        "arm": np.isin(ids, [i for u, i in by_uid.items() if u.startswith("arm/")]),
        "ground": (ids == 0) & (frame.depth_m > 0),
    }
    for name, mask in out.items():
        assert mask.sum() > 60, name  # the view shows every part
    return out


FIXTURE_CAM = [[1.1, -0.9, 1.4], [0.0, 0.0, 0.55]]
FIXTURE_K = [[70.0, 0.0, 47.5], [0.0, 70.0, 35.5], [0.0, 0.0, 1.0]]


def mean_rgb_at(frame: Any, mask: np.ndarray) -> np.ndarray:
    return frame.rgb[mask].astype(float).mean(axis=0)


def test_a_colour_randomizer_colours_the_table_and_leaves_the_objects(
    backend: PyBulletBackend, pb: SimpleNamespace
) -> None:
    cam = pb.view(pb.look_at(*FIXTURE_CAM), FIXTURE_K, width=96, height=72)
    backend.build(engine_scene([]))
    plain = backend.render(cam)
    red = {"hue": 0.0, "saturation": 1.0, "value": 1.0}
    backend.build(engine_scene([{"type": "appearance/color-v1", "tags": ["table"], **red}]))
    coloured = backend.render(cam)
    backend.build(engine_scene([{"type": "appearance/color-v1", "tags": ["furniture"], **red}]))  # by its tag
    by_tag = backend.render(cam)

    np.testing.assert_array_equal(coloured.instance_ids, plain.instance_ids)  # appearance changes no label
    m = masks(plain)
    r, g, b = mean_rgb_at(coloured, m["table"])
    r0, g0, _ = mean_rgb_at(plain, m["table"])
    assert r > g + 60 and r > b + 60 and abs(r0 - g0) < 40  # the table turned red; it was not red before
    for part in ("cubes", "arm"):  # the objects and the other fixture are untouched, pixel for pixel
        np.testing.assert_array_equal(coloured.rgb[m[part]], plain.rgb[m[part]])
    np.testing.assert_array_equal(by_tag.rgb, coloured.rgb)


def test_image_texture_tagged_ground_textures_only_the_ground(backend: PyBulletBackend, pb: SimpleNamespace) -> None:
    """Before issue 11, ``appearance/image-texture-v1`` could reach the ground only with every object too."""
    cam = pb.view(pb.look_at(*FIXTURE_CAM), FIXTURE_K, width=96, height=72)
    backend.build(engine_scene([]))
    plain = backend.render(cam)
    photo = {"type": "appearance/image-texture-v1", "tags": ["ground"], "folder": "pybullet_data:"}
    scene = engine_scene([photo])
    assert scene["ground"]["texture"]["kind"] == "image"
    assert all("texture" not in e for e in [*scene["fixtures"], *scene["objects"].values()])
    backend.build(scene)
    textured = backend.render(cam)
    backend.build(engine_scene([photo]))
    again = backend.render(cam)

    np.testing.assert_array_equal(textured.rgb, again.rgb)  # deterministic
    m = masks(plain)
    ground = m["ground"] & (textured.instance_ids == 0)
    assert np.abs(textured.rgb[ground].astype(float) - plain.rgb[ground]).mean() > 10
    for part in ("cubes", "table", "arm"):
        np.testing.assert_array_equal(textured.rgb[m[part]], plain.rgb[m[part]])


def test_a_procedural_texture_on_the_robot_covers_every_link(backend: PyBulletBackend, pb: SimpleNamespace) -> None:
    """A fixture labeled per link is textured whole: every link shows the same texture, nothing else changes."""
    cam = pb.view(pb.look_at(*FIXTURE_CAM), FIXTURE_K, width=96, height=72)
    backend.build(engine_scene([]))
    plain = backend.render(cam)
    green = {"hue": 0.33, "saturation": 1.0, "value": 0.9}
    texture = {
        "type": "appearance/procedural-texture-v1",
        "tags": ["robot"],
        "kind": "checker",
        "size": 16,
        "color_a": green,
        "color_b": green,
    }
    scene = engine_scene([texture])
    backend.build(scene)
    textured = backend.render(cam)

    m = masks(plain)
    np.testing.assert_array_equal(textured.instance_ids, plain.instance_ids)
    arm_ids = {o.instance_id for o in plain.objects if o.uid.startswith("arm/")}
    shown = [i for i in arm_ids if (plain.instance_ids == i).sum() > 15]
    assert len(shown) >= 3
    for i in shown:
        r, g, b = mean_rgb_at(textured, plain.instance_ids == i)
        assert g > 1.5 * r and g > 1.5 * b, i
    for part in ("cubes", "table"):
        np.testing.assert_array_equal(textured.rgb[m[part]], plain.rgb[m[part]])
