"""C2PA sidecars for rendered images: signed with a local test CA, validated by c2pa's own reader, broken by a byte.

Skipped as a whole where ``c2pa-python`` (the ``[provenance]`` extra) is not installed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

c2pa = pytest.importorskip("c2pa")

from simgen.engine.verify import verify_dataset  # noqa: E402
from simgen.provenance.signing import (  # noqa: E402
    ASSERTION_LABEL,
    RENDERED,
    SigningError,
    check_signatures,
    sign_dataset,
)


def _copy(src: Path, tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    shutil.copytree(src, out)
    return out


def _read(image: Path, sidecar: Path, **kw) -> c2pa.Reader:
    with open(image, "rb") as fh:
        return c2pa.Reader("image/png", fh, manifest_data=sidecar.read_bytes(), **kw)


def test_every_image_gets_a_valid_sidecar_with_its_source_type_and_simgen_assertion(rendered, credentials, tmp_path):
    out = _copy(rendered, tmp_path)
    before = {p.name: p.read_bytes() for p in (out / "images").iterdir()}
    record = sign_dataset(out, credentials.chain, credentials.key)
    assert record["sidecars"] == 3 and record["signer"] == "simgen test signer"
    assert {p.name: p.read_bytes() for p in (out / "images").glob("*.png")} == before  # sidecars: images untouched
    meta = json.loads((out / "dataset.json").read_text())
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for entry in manifest:
        reader = _read(out / entry["files"]["rgb"]["path"], out / "images" / f"{entry['frame']:06d}.c2pa")
        assert reader.get_validation_state() == "Valid"  # signed and intact; the test CA is not a trusted one
        active = reader.get_active_manifest()
        reader.close()
        assertions = {a["label"]: a["data"] for a in active["assertions"]}
        action = assertions["c2pa.actions.v2"]["actions"][0]
        assert action["action"] == "c2pa.created" and action["digitalSourceType"] == RENDERED
        ours = assertions[ASSERTION_LABEL]
        assert ours["spec_sha256"] == meta["spec_sha256"] and ours["seed"] == meta["seed"] == 4
        assert ours["record"] == entry["frame"] and ours["manifest_chain"] == entry["chain"]
        assert ours["sha256"] == entry["files"]["rgb"]["sha256"]
    report = verify_dataset(out)
    assert report.ok, report
    assert sorted(report.signatures.values()) == ["Valid"] * 3
    # Signing again replaces the sidecars; the dataset still verifies.
    assert sign_dataset(out, credentials.chain, credentials.key)["sidecars"] == 3
    assert verify_dataset(out).ok and len(list((out / "images").glob("*.c2pa"))) == 3


def test_a_flipped_image_byte_makes_its_signature_invalid(rendered, credentials, tmp_path) -> None:
    out = _copy(rendered, tmp_path)
    sign_dataset(out, credentials.chain, credentials.key)
    image = out / "images" / "000001.png"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01
    image.write_bytes(bytes(data))
    reader = _read(image, out / "images" / "000001.c2pa")
    assert reader.get_validation_state() == "Invalid"  # c2pa's own verdict: the data hash no longer matches
    reader.close()
    report = check_signatures(out)
    assert report.states == {"images/000000.c2pa": "Valid", "images/000001.c2pa": "Invalid",
                             "images/000002.c2pa": "Valid"}  # fmt: skip
    assert len(report.problems) == 1 and "images/000001.c2pa: signature Invalid" in report.problems[0]
    verified = verify_dataset(out)
    assert verified.corrupt == ["images/000001.png"]
    assert any("000001.c2pa: signature Invalid" in p for p in verified.invalid)


def test_a_sidecar_moved_to_another_image_does_not_match_the_dataset(rendered, credentials, tmp_path) -> None:
    out = _copy(rendered, tmp_path)
    sign_dataset(out, credentials.chain, credentials.key)
    # A valid signature of a different image: caught by c2pa's data hash.
    shutil.copyfile(out / "images" / "000000.c2pa", out / "images" / "000002.c2pa")
    report = check_signatures(out)
    assert report.states["images/000002.c2pa"] == "Invalid" and not report.ok


def test_the_ca_as_trust_anchor_makes_the_signature_trusted(rendered, credentials, tmp_path) -> None:
    out = _copy(rendered, tmp_path)
    sign_dataset(out, credentials.chain, credentials.key)
    report = check_signatures(out, trust_anchors=credentials.ca)
    assert report.ok and set(report.states.values()) == {"Trusted"}


def test_a_self_signed_certificate_is_refused_in_one_line(rendered, credentials, tmp_path) -> None:
    out = _copy(rendered, tmp_path)
    with pytest.raises(SigningError, match="self.pem: c2pa refuses this certificate or key: .*self-signed"):
        sign_dataset(out, credentials.self_signed, credentials.key)
    assert not list((out / "images").glob("*.c2pa")) and "c2pa" not in json.loads((out / "dataset.json").read_text())
    with pytest.raises(SigningError, match="not PEM"):
        sign_dataset(out, out / "dataset.json", credentials.key)
    with pytest.raises(SigningError, match="did you mean 'es256'"):
        sign_dataset(out, credentials.chain, credentials.key, alg="es265")


def test_only_the_synthetic_images_of_a_mix_are_signed(rendered, credentials, tmp_path) -> None:
    import cv2
    import numpy as np
    from sklearn.datasets import load_sample_image

    from simgen.mix import mix

    real = tmp_path / "real"
    (real / "photos").mkdir(parents=True)
    images = []
    for i in range(3):
        photo = np.ascontiguousarray(load_sample_image("china.jpg")[i * 50 : i * 50 + 48, :64])
        cv2.imwrite(str(real / "photos" / f"{i}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
        images.append({"id": i + 1, "file_name": f"photos/{i}.png", "width": 64, "height": 48})
    (real / "coco.json").write_text(json.dumps({"images": images, "annotations": [], "categories": []}))
    out = tmp_path / "mixed"
    mix(real, rendered, out, real_fraction=0.5, seed=1)
    record = sign_dataset(out, credentials.chain, credentials.key)
    coco = json.loads((out / "annotations.coco.json").read_text())
    synthetic = {Path(im["file_name"]).stem for im in coco["images"] if im["origin"] == "synthetic"}
    assert record["sidecars"] == 3 and {p.stem for p in (out / "images").glob("*.c2pa")} == synthetic
    assert verify_dataset(out).ok


def test_the_sign_command(rendered, credentials, tmp_path) -> None:
    from simgen.cli import clean_errors
    from simgen.provenance.cli import register

    app = typer.Typer()
    app.command(name="noop")(clean_errors(lambda: None))
    register(app)
    out = _copy(rendered, tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["sign", str(out), "--cert", str(credentials.chain), "--key", str(credentials.key)])
    assert ok.exit_code == 0, ok.output
    assert "signed 3 images" in ok.output and len(list((out / "images").glob("*.c2pa"))) == 3
    bad = runner.invoke(app, ["sign", str(out), "--cert", str(credentials.self_signed), "--key", str(credentials.key)],
                        env={"COLUMNS": "80"})  # fmt: skip
    assert bad.exit_code == 2
    assert len([line for line in bad.output.splitlines() if line.strip()]) == 1


def test_without_c2pa_verify_still_checks_the_sidecar_bytes_and_says_what_it_skipped(
    rendered, credentials, tmp_path, monkeypatch
) -> None:
    import sys

    from simgen.errors import DependencyMissing

    out = _copy(rendered, tmp_path)
    sign_dataset(out, credentials.chain, credentials.key)
    monkeypatch.setitem(sys.modules, "c2pa", None)  # as if the [provenance] extra were not installed
    with pytest.raises(DependencyMissing, match=r"simgen\[provenance\]"):
        check_signatures(out)
    report = verify_dataset(out)
    assert report.ok and report.signatures == {}
    assert any("C2PA signatures not checked" in n for n in report.notes)
    sidecar = out / "images" / "000000.c2pa"
    sidecar.write_bytes(sidecar.read_bytes()[:-1] + b"\x00")
    assert verify_dataset(out).corrupt == ["images/000000.c2pa"]


def test_simgen_verify_reports_the_signatures(rendered, credentials, tmp_path) -> None:
    from simgen.cli import app

    out = _copy(rendered, tmp_path)
    runner = CliRunner()
    signed = runner.invoke(app, ["sign", str(out), "--cert", str(credentials.chain), "--key", str(credentials.key)])
    assert signed.exit_code == 0, signed.output
    ok = runner.invoke(app, ["verify", str(out)], env={"COLUMNS": "80"})
    assert ok.exit_code == 0, ok.output
    assert "signatures: 3 of 3 valid (C2PA)" in ok.output
    image = out / "images" / "000001.png"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0xFF
    image.write_bytes(bytes(data))
    bad = runner.invoke(app, ["verify", str(out)], env={"COLUMNS": "80"})
    assert bad.exit_code == 1 and "signatures: 2 of 3 valid (C2PA)" in bad.output
