"""The asset sandbox: what URDF, SDF, OBJ and MTL files reference, the spec's own roots, and photo folders."""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from simgen import assets
from simgen.errors import AssetError, SpecError
from simgen.frame import FrameBuffers
from simgen.randomizers.background import BackgroundParams, BackgroundPhoto
from simgen.spec import load_spec

DATA = assets.pybullet_data_dir()
CUBE_OBJ = (DATA / "cube.obj").read_text()
INERTIAL = '<inertial><mass value="1"/><inertia ixx="1" ixy="0" ixz="0" iyy="1" iyz="0" izz="1"/></inertial>'


def urdf(mesh: str, texture: str | None = None) -> str:
    material = f'<material name="m"><texture filename="{texture}"/></material>' if texture else ""
    return (
        f'<?xml version="1.0"?>\n<robot name="r"><link name="base">{INERTIAL}'
        f'<visual><geometry><mesh filename="{mesh}"/></geometry>{material}</visual>'
        f'<collision><geometry><box size="0.1 0.1 0.1"/></geometry></collision></link></robot>\n'
    )


def spec_of(*refs: str) -> dict[str, Any]:
    return {"objects": [{"name": "g", "assets": list(refs)}]}


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A spec folder and, beside it, an outside folder holding a mesh, a material and an image."""
    spec_dir, outside = tmp_path / "spec", tmp_path / "outside"
    spec_dir.mkdir()
    outside.mkdir()
    (outside / "secret.obj").write_text(CUBE_OBJ)
    (outside / "secret.mtl").write_text("newmtl m\nmap_Kd secret.png\n")
    cv2.imwrite(str(outside / "secret.png"), np.zeros((4, 4, 3), np.uint8))
    return spec_dir, outside


@pytest.mark.parametrize("mesh", ["{outside}/secret.obj", "../outside/secret.obj", "package://outside/secret.obj"])
def test_urdf_mesh_outside_the_roots_is_refused(tree: tuple[Path, Path], mesh: str) -> None:
    spec_dir, outside = tree
    mesh = mesh.format(outside=outside)
    (spec_dir / "robot.urdf").write_text(urdf(mesh))
    with pytest.raises(AssetError) as info:
        load_spec(spec_of("robot.urdf"), base_dir=spec_dir)
    message = str(info.value)
    assert message.startswith("objects[0].assets[0]: ")
    assert f"{spec_dir / 'robot.urdf'} references '{mesh}'" in message
    assert f"resolves to {outside / 'secret.obj'}, outside the allowed asset roots" in message
    load_spec(spec_of("robot.urdf"), base_dir=spec_dir, asset_roots=[outside])  # the caller may allow it


def test_urdf_found_in_a_parent_folder_like_pybullet_does(tmp_path: Path) -> None:
    """PyBullet looks for a URDF's mesh in the URDF's folder, then in every folder above it (measured)."""
    spec_dir = tmp_path / "spec"
    (spec_dir / "robots").mkdir(parents=True)
    (tmp_path / "m.obj").write_text(CUBE_OBJ)  # above the spec folder: PyBullet would find and open it
    (spec_dir / "robots" / "r.urdf").write_text(urdf("m.obj"))
    with pytest.raises(AssetError, match=rf"resolves to {tmp_path / 'm.obj'}, outside"):
        load_spec(spec_of("robots/r.urdf"), base_dir=spec_dir)
    (spec_dir / "m.obj").write_text(CUBE_OBJ)  # now the nearer copy, inside the spec folder, is the one opened
    load_spec(spec_of("robots/r.urdf"), base_dir=spec_dir)
    urdf_file = spec_dir / "robots" / "r.urdf"
    assert assets.find_referenced_file(urdf_file, "m.obj") == spec_dir / "m.obj"
    assert assets.find_referenced_file(urdf_file, "package://spec/m.obj") == spec_dir / "m.obj"
    assert assets.find_referenced_file(urdf_file, "nowhere.obj") is None


def test_lookup_matches_what_pybullet_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulated lookup agrees with the file PyBullet 3.2.7 itself reports for a loaded URDF's mesh."""
    import pybullet as p

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "c" / "zz").mkdir(parents=True)
    (tmp_path / "c" / "zz" / "m.obj").write_text(CUBE_OBJ)  # found only from the working folder
    (tmp_path / "a" / "n.obj").write_text(CUBE_OBJ)  # found in the URDF's parent folder
    urdf_file = tmp_path / "a" / "b" / "t.urdf"
    monkeypatch.chdir(tmp_path / "c")
    for name, expected in [
        ("n.obj", tmp_path / "a" / "n.obj"),
        ("package://zz/m.obj", tmp_path / "c" / "zz" / "m.obj"),
    ]:
        urdf_file.write_text(urdf(name))
        cid = p.connect(p.DIRECT)
        try:
            body = p.loadURDF(str(urdf_file), physicsClientId=cid)
            loaded = p.getVisualShapeData(body, physicsClientId=cid)[0][4].decode()
        finally:
            p.disconnect(physicsClientId=cid)
        assert Path(os.path.realpath(loaded)) == expected == assets.find_referenced_file(urdf_file, name)


def test_urdf_texture_and_package_uri_inside_are_fine(tree: tuple[Path, Path]) -> None:
    spec_dir, _ = tree
    (spec_dir / "pkg" / "meshes").mkdir(parents=True)
    (spec_dir / "pkg" / "meshes" / "m.obj").write_text(CUBE_OBJ)
    cv2.imwrite(str(spec_dir / "t.png"), np.zeros((4, 4, 3), np.uint8))
    (spec_dir / "r.urdf").write_text(urdf("package://pkg/meshes/m.obj", texture="t.png"))
    load_spec(spec_of("r.urdf"), base_dir=spec_dir)
    (spec_dir / "r.urdf").write_text(urdf("package://pkg/meshes/m.obj", texture="../outside/secret.png"))
    with pytest.raises(AssetError, match=r"references '../outside/secret.png', which resolves to .*, outside"):
        load_spec(spec_of("r.urdf"), base_dir=spec_dir)


def test_obj_material_library_and_texture_outside_are_refused(tree: tuple[Path, Path]) -> None:
    spec_dir, _ = tree
    (spec_dir / "a.obj").write_text("mtllib ../outside/secret.mtl\n" + CUBE_OBJ)
    with pytest.raises(AssetError, match=r"a.obj references '../outside/secret.mtl', which resolves to"):
        load_spec(spec_of("a.obj"), base_dir=spec_dir)
    (spec_dir / "b.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd ../outside/secret.png\n")
    (spec_dir / "b.obj").write_text("mtllib b.mtl\n" + CUBE_OBJ)
    with pytest.raises(AssetError, match=r"b.mtl references '../outside/secret.png', which resolves to"):
        load_spec(spec_of("b.obj"), base_dir=spec_dir)
    (spec_dir / "b.mtl").write_text("newmtl m\nmap_Kd -s 1 1 1 ../outside/secret.png\n")  # options before the name
    with pytest.raises(AssetError, match="outside the allowed asset roots"):
        load_spec(spec_of("b.obj"), base_dir=spec_dir)
    (spec_dir / "c.urdf").write_text(urdf("b.obj"))  # through a URDF too
    with pytest.raises(AssetError, match=r"b.mtl references"):
        load_spec(spec_of("c.urdf"), base_dir=spec_dir)
    (spec_dir / "b.mtl").write_text("newmtl m\nmap_Kd missing.png\n")  # a missing texture only loses colour
    load_spec(spec_of("c.urdf"), base_dir=spec_dir)


def test_sdf_uri_outside_is_refused(tree: tuple[Path, Path]) -> None:
    spec_dir, outside = tree
    sdf = (
        "<sdf version='1.6'><world name='w'><model name='m'><link name='l'><visual name='v'><geometry>"
        f"<mesh><uri>{outside}/secret.obj</uri></mesh></geometry></visual></link></model></world></sdf>"
    )
    (spec_dir / "world.sdf").write_text(sdf)
    spec = {"fixtures": [{"name": "w", "asset": "world.sdf"}], "objects": []}
    with pytest.raises(AssetError, match=r"fixtures\[0\].asset: .*world.sdf references .*secret.obj"):
        load_spec(spec, base_dir=spec_dir)


def test_malformed_and_entity_urdfs_are_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.urdf").write_text("<robot name='r'><link name='a'></robot>")
    with pytest.raises(AssetError, match=r"objects\[0\].assets\[0\]: URDF file .*bad.urdf does not parse: mismatched"):
        load_spec(spec_of("bad.urdf"), base_dir=tmp_path)
    lol = '<!DOCTYPE r [<!ENTITY a "lol">]><robot name="&a;"/>'
    (tmp_path / "lol.urdf").write_text(lol)
    with pytest.raises(AssetError, match="declares XML entities"):
        load_spec(spec_of("lol.urdf"), base_dir=tmp_path)


def test_missing_mesh_is_refused_at_load_time(tmp_path: Path) -> None:
    (tmp_path / "r.urdf").write_text(urdf("meshes/gone.obj"))
    with pytest.raises(AssetError, match="references 'meshes/gone.obj', which does not exist where PyBullet looks"):
        load_spec(spec_of("r.urdf"), base_dir=tmp_path)


def test_nul_bytes_and_over_long_names_are_asset_errors(photos: Path) -> None:
    spec_dir = photos.parent
    long_name = "/".join(["a" * 300] * 3) + ".urdf"  # a name longer than the filesystem allows
    with pytest.raises(AssetError, match=r"objects\[0\].assets\[0\]: the path 'a\\x00b.urdf' contains a NUL byte"):
        load_spec(spec_of("a\0b.urdf"), base_dir=spec_dir)
    with pytest.raises(
        AssetError, match=r"objects\[0\].assets\[0\]: cannot use the path 'a+\.\.\.a+\.urdf': File name too long"
    ):
        load_spec(spec_of(long_name), base_dir=spec_dir)
    with pytest.raises(AssetError, match=r"randomizers\[0\].folder: the path 'p\\x00' contains a NUL byte"):
        load_spec(photo_spec("p\0"), base_dir=spec_dir)
    with pytest.raises(AssetError, match=r"randomizers\[0\].folder: cannot use the path .*File name too long"):
        load_spec(photo_spec("x" * 400), base_dir=spec_dir)


def test_bundled_robot_passes_and_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    ref = "pybullet_data:franka_panda/panda.urdf"  # 11 links, 22 meshes
    assets.resolve_asset(ref, base_dir=None)
    reads: list[str] = []
    original = assets._xml_refs
    monkeypatch.setattr(assets, "_xml_refs", lambda *a: reads.append(a[0]) or original(*a))
    for _ in range(10):
        assets.resolve_asset(ref, base_dir=None)
    assert reads == []  # parsed once per file version; only where each mesh lands is looked up again


def test_spec_cannot_widen_its_own_roots(tree: tuple[Path, Path]) -> None:
    spec_dir, outside = tree
    (spec_dir / "link.obj").symlink_to(outside / "secret.obj")
    for root in ("/", str(outside), "..", "~"):
        with pytest.raises(SpecError, match=r"asset_roots\[0\]: .* outside the spec's folder .* --asset-root"):
            load_spec({**spec_of("link.obj"), "asset_roots": [root]}, base_dir=spec_dir)
    (spec_dir / "escape").symlink_to(outside)  # a root inside that is a link out
    with pytest.raises(SpecError, match=r"asset_roots\[0\]"):
        load_spec({**spec_of("link.obj"), "asset_roots": ["escape"]}, base_dir=spec_dir)
    with pytest.raises(SpecError, match="without base_dir cannot list asset_roots"):
        load_spec({**spec_of("pybullet_data:cube.obj"), "asset_roots": [str(outside)]})
    loaded = load_spec(spec_of("link.obj"), base_dir=spec_dir, asset_roots=[outside])  # the caller may
    assert loaded.roots == (outside,)
    (spec_dir / "meshes").mkdir()
    inside = load_spec(
        {**spec_of("pybullet_data:cube.obj"), "asset_roots": ["meshes", "pybullet_data:"]}, base_dir=spec_dir
    )
    assert inside.roots == (spec_dir / "meshes", DATA)


def test_spec_file_roots_follow_the_rule_through_the_cli(tree: tuple[Path, Path]) -> None:
    from typer.testing import CliRunner

    from simgen.cli import app

    spec_dir, outside = tree
    (spec_dir / "s.yaml").write_text(
        f"asset_roots: ['{outside}']\nobjects: [{{name: g, assets: ['{outside}/secret.obj']}}]\n"
    )
    out = spec_dir / "out"
    result = CliRunner().invoke(app, ["generate", str(spec_dir / "s.yaml"), "-o", str(out), "-n", "1"])
    assert result.exit_code == 2 and "asset_roots[0]" in result.output and not out.exists()


# --- photos ---------------------------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def photo_spec(folder: str) -> dict[str, Any]:
    return {**spec_of("pybullet_data:cube.obj"), "randomizers": [{"type": "background/photo-v1", "folder": folder}]}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "spec" / "photos"  # the spec's folder is its parent
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), np.full((8, 12, 3), 200, np.uint8))
    cv2.imwrite(str(folder / "b.jpg"), np.full((8, 12, 3), 90, np.uint8))
    (folder / "notes.txt").write_text("not a photo: ignored")
    (folder / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # hidden: skipped
    return folder


def test_photo_folder_is_checked_at_load_time(photos: Path) -> None:
    spec_dir = photos.parent
    load_spec(photo_spec("photos"), base_dir=spec_dir)
    assert [p.name for p in assets.image_pool("photos", base_dir=spec_dir)] == ["a.png", "b.jpg"]
    with pytest.raises(AssetError, match=r"randomizers\[0\].folder: no folder 'fotos'"):
        load_spec(photo_spec("fotos"), base_dir=spec_dir)
    (spec_dir / "empty").mkdir()
    with pytest.raises(AssetError, match=r"randomizers\[0\].folder: no PNG/JPEG/BMP images in"):
        load_spec(photo_spec("empty"), base_dir=spec_dir)
    with pytest.raises(AssetError, match="outside the allowed asset roots"):
        load_spec(photo_spec("/"), base_dir=spec_dir)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"this is text", "is not a readable image: not a PNG, JPEG or BMP image"),
        (b"\x89PNG\r\n\x1a\n", "is not a readable image: the PNG has no IHDR header"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "is not a readable image: the file ends inside its header"),
        (png_header(0, 10), r"is empty \(0x10\)"),
        (png_header(100_000, 100_000), r"is 100000x100000 \(10000 megapixels\); images over 50 megapixels are refused"),
    ],
    ids=["text", "png-without-header", "cut-jpeg-header", "empty", "decompression-bomb"],
)
def test_broken_or_huge_photo_names_the_file(photos: Path, content: bytes, match: str) -> None:
    (photos / "c.png").write_bytes(content)
    start = time.perf_counter()
    with pytest.raises(AssetError, match=rf"randomizers\[0\].folder: .*c.png .*{match}"):
        load_spec(photo_spec("photos"), base_dir=photos.parent)
    assert time.perf_counter() - start < 2  # the header decides; nothing is decoded


def test_oversized_photo_file_is_refused_unread(photos: Path) -> None:
    with open(photos / "c.bmp", "wb") as fh:
        fh.write(b"BM")
        fh.truncate(assets.MAX_IMAGE_BYTES + 1)  # sparse
    with pytest.raises(AssetError, match=r"c.bmp is 100 MB; images over 100 MB are refused"):
        load_spec(photo_spec("photos"), base_dir=photos.parent)


def test_photo_symlinked_out_of_the_roots_is_refused(photos: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.png"
    cv2.imwrite(str(outside), np.zeros((4, 4, 3), np.uint8))
    (photos / "c.png").symlink_to(outside)
    with pytest.raises(AssetError, match=r"c.png resolves to .*elsewhere.png, outside the allowed asset roots"):
        load_spec(photo_spec("photos"), base_dir=photos.parent)


def truncated(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("name", ["a.png", "b.jpg"])
def test_truncated_photo_is_an_error_when_used(photos: Path, name: str) -> None:
    """A truncated image passes the header check; decoding it names the file instead of pasting half a photo."""
    noisy = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(photos / name), noisy)
    truncated(photos / name)
    with pytest.raises(AssetError, match=rf"{name} is truncated or corrupt: it cannot be decoded"):
        assets.read_image(photos / name)
    with pytest.raises(AssetError, match=rf"background/photo-v1: .*{name} is truncated or corrupt"):
        apply_background(photos, name)


def apply_background(folder: Path, name: str) -> np.ndarray:
    h, w = 6, 8
    rgb = np.full((h, w, 3), 7, np.uint8)
    buffers = FrameBuffers(rgb, np.zeros((h, w), np.float32), np.zeros((h, w), np.uint16), np.eye(3), np.eye(4), [], {})
    patch = {"path": str(folder / name), "crop": [0.0, 0.0], "flip": False, "replace": "empty"}
    return BackgroundPhoto(BackgroundParams(folder=str(folder)), []).apply_with(
        rgb, patch, np.random.default_rng(0), buffers
    )


def test_fifo_named_like_a_photo_is_refused_without_blocking(photos: Path) -> None:
    os.mkfifo(photos / "pipe.png")
    assert [p.name for p in assets.image_pool("photos", base_dir=photos.parent)] == ["a.png", "b.jpg"]  # not listed
    with pytest.raises(AssetError, match="pipe.png is not a regular file"):
        assets.read_image(photos / "pipe.png")  # a recorded path is refused, not waited on


def test_background_still_pastes_a_good_photo(photos: Path) -> None:
    assert (apply_background(photos, "a.png") == 200).all()  # a uniform grey photo fills the empty frame


def test_complete_jpeg_with_trailing_data_is_accepted(photos: Path) -> None:
    """Phones append data after a JPEG's end marker (motion photos); the image itself is whole."""
    path = photos / "b.jpg"
    path.write_bytes(path.read_bytes() + b"\x00" * 1000 + b"ftypmp42")
    assert assets.read_image(path).shape == (8, 12, 3)
