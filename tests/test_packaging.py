"""What a plugin author gets from ``pip install simgen``: the wheel carries what simgen.testing needs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_scene_library_and_conformance_runs_from_it(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    wheel = next(tmp_path.glob("simgen-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for scene in sorted((REPO / "scenes").glob("*.yaml")):
        assert f"simgen/scenes/{scene.name}" in names
    # Unpacked away from the source tree, the conformance spec loads from the package alone.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import simgen.testing.conformance as c, pathlib; "
        f"assert pathlib.Path(c.__file__).is_relative_to({str(site)!r}), c.__file__; "
        "spec = c.conformance_spec(); print(spec.spec.name)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip()
