"""Reading spec files: every bad file is one SpecError naming it, and no input hangs, explodes or overflows."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from simgen.cli import app
from simgen.errors import SpecError
from simgen.spec import load_spec, loader, read_spec_file

REPO = Path(__file__).resolve().parents[2]
SCENES = sorted((REPO / "scenes").glob("*.yaml"))
MINIMAL = "objects: [{name: boxes, assets: [{shape: box, size: [0.1, 0.1, 0.1]}], count: 3}]\n"

LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])


@pytest.fixture(params=LOADERS, ids=lambda c: c.__name__)
def yaml_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[type]:
    """Run a test with libyaml's C parser and with the pure-Python one."""
    monkeypatch.setattr(loader, "YAML_LOADER", request.param)
    yield request.param


def write(tmp_path: Path, text: str | bytes, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def refused(path: Path | str, match: str, *, within_s: float = 5.0) -> SpecError:
    """Read ``path``: it must fail with a SpecError matching ``match`` quickly, with a short message."""
    start = time.perf_counter()
    with pytest.raises(SpecError, match=match) as info:
        read_spec_file(path)
    assert time.perf_counter() - start < within_s
    assert len(str(info.value)) < 800 and "\n" not in str(info.value)
    return info.value


def test_the_c_parser_is_used_and_reads_the_library_like_the_python_one() -> None:
    assert loader.YAML_LOADER is yaml.CSafeLoader  # PyYAML's wheels bundle libyaml
    for path in SCENES:
        text = path.read_text()
        assert read_spec_file(path) == yaml.load(text, Loader=yaml.SafeLoader), path.name


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly(tmp_path: Path, yaml_loader: type) -> None:
    # 9**9 = 387 million strings once expanded; only 81 nodes and 72 aliases as written.
    err = refused(write(tmp_path, billion_laughs()), r"aliases expand the document by \d+ values")
    assert err.source == str(tmp_path / "spec.yaml")


def test_many_aliases_are_refused(tmp_path: Path, yaml_loader: type) -> None:
    text = "shared: &s [1]\nmany: [" + ", ".join(["*s"] * (loader.MAX_ALIASES + 1)) + "]\n"
    refused(write(tmp_path, text), "more than 10000 aliases")


def test_recursive_alias_is_refused(tmp_path: Path, yaml_loader: type) -> None:
    refused(write(tmp_path, "a: &a [1, *a]\n"), "recursive document")
    refused(write(tmp_path, "a: &a {b: {c: *a}}\n"), "recursive document")


def test_modest_aliases_still_load(tmp_path: Path, yaml_loader: type) -> None:
    text = (
        "objects:\n"
        "  - {name: a, assets: [{shape: box, size: [0.1, 0.1, 0.1]}], count: &n {kind: intrange, low: 1, high: 3}}\n"
        "  - {name: b, assets: [{shape: box, size: [0.1, 0.1, 0.1]}], count: *n}\n"
    )
    loaded = load_spec(write(tmp_path, text))
    assert loaded.raw["objects"][1]["count"] == {"kind": "intrange", "low": 1, "high": 3}


@pytest.mark.parametrize("depth", [loader.MAX_DEPTH + 1, 999, 10_000, 200_000])
def test_deep_yaml_nesting_is_a_clean_error(tmp_path: Path, yaml_loader: type, depth: int) -> None:
    refused(write(tmp_path, "a: " + "[" * depth + "]" * depth + "\n"), "nest|nesting depth")


def test_deep_block_nesting_is_a_clean_error(tmp_path: Path, yaml_loader: type) -> None:
    text = "".join(" " * i + "a:\n" for i in range(1500)) + " " * 1500 + "1\n"
    refused(write(tmp_path, text), "nest|nesting depth")


def test_depth_through_aliases_counts(tmp_path: Path, yaml_loader: type) -> None:
    # Each line is shallow, but the expanded document nests 70 levels deep.
    lines = ["l0: &l0 [1]"] + [f"l{i}: &l{i} [*l{i - 1}]" for i in range(1, 70)]
    refused(write(tmp_path, "\n".join(lines) + "\n"), "nests more than 64 levels")


@pytest.mark.parametrize("depth", [loader.MAX_DEPTH + 1, 10_000, 1_000_000])
def test_deep_json_nesting_is_a_clean_error(tmp_path: Path, depth: int) -> None:
    refused(write(tmp_path, '{"a": ' + "[" * depth + "]" * depth + "}", "spec.json"), "nests more than")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_json_non_finite_numbers_are_refused(tmp_path: Path, literal: str) -> None:
    refused(write(tmp_path, '{"camera": {"far": ' + literal + "}}", "spec.json"), "must be finite")


@pytest.mark.parametrize("name", ["spec.yaml", "spec.json"])
def test_huge_integer_is_a_clean_error(tmp_path: Path, name: str) -> None:
    digits = "7" * 5000
    text = f'{{"frames_per_scene": {digits}}}' if name.endswith(".json") else f"frames_per_scene: {digits}\n"
    err = refused(write(tmp_path, text, name), "cannot parse")
    assert digits not in str(err)


def test_invalid_date_is_a_clean_error(tmp_path: Path) -> None:
    refused(write(tmp_path, "name: 2024-13-40\n"), "cannot parse the YAML")


def test_parse_error_on_a_huge_line_quotes_a_bounded_snippet(tmp_path: Path, yaml_loader: type) -> None:
    err = refused(write(tmp_path, "name: [" + "x, " * 30_000 + "\n"), r"cannot parse the YAML: .* \(line 2, column 1\)")
    assert "x, x" not in str(err)


def test_non_utf8_spec_names_the_byte_offset(tmp_path: Path) -> None:
    path = write(tmp_path, b"name: ok\ndescription: caf\xe9\n")
    err = refused(path, r"not UTF-8 text: byte 0xe9 at byte offset 25 \(line 2, column 17\)")
    assert str(path) in str(err)


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    assert read_spec_file(write(tmp_path, "\ufeff" + MINIMAL))["objects"][0]["name"] == "boxes"
    assert read_spec_file(write(tmp_path, "\ufeff" + json.dumps({"name": "x"}), "s.json")) == {"name": "x"}


def test_a_folder_given_as_the_spec_lists_its_specs(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(MINIMAL)
    refused(tmp_path, r"is a folder, not a spec file; it holds mine.yaml")
    (tmp_path / "looks.yaml").mkdir()
    refused(tmp_path / "looks.yaml", "is a folder")


def test_path_with_nul_byte(tmp_path: Path) -> None:
    err = refused(f"{tmp_path}/a\0b.yaml", "NUL byte")
    assert "\0" not in str(err) and "\\x00" in str(err)


def test_over_long_path(tmp_path: Path) -> None:
    err = refused(tmp_path / ("a" * 5000 + ".yaml"), "too long")
    assert "5000" not in str(err) or len(str(err)) < 800
    refused(str(tmp_path) + "/a" * 3000 + ".yaml", "too long|no such")


def test_parent_that_is_a_file(tmp_path: Path) -> None:
    refused(write(tmp_path, MINIMAL) / "x.yaml", "Not a directory")


def test_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    refused(tmp_path / "loop.yaml", "symbolic links")


def run_bounded(fn: Callable[[], Any], seconds: float) -> Any:
    """Run ``fn`` in a daemon thread: a regression that blocks fails the test instead of hanging it."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for over {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match=r"is a FIFO \(named pipe\); a spec must be a regular file"):
        run_bounded(lambda: read_spec_file(fifo), 5)


def test_device_is_refused_instead_of_read_forever(tmp_path: Path) -> None:
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")  # read_text() used to read it until memory ran out
    with pytest.raises(SpecError, match="is a character device"):
        run_bounded(lambda: read_spec_file(tmp_path / "zero.yaml"), 5)


def test_oversized_spec_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with open(path, "wb") as fh:
        fh.truncate(loader.MAX_SPEC_BYTES + 1)  # sparse: nothing is written
    refused(path, r"the spec file is 16.0 MB; specs over 16 MB are refused", within_s=1)


def test_unreadable_spec(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    path.chmod(0)
    if os.geteuid() != 0:
        refused(path, "permission denied")
        return
    # root reads anything: check as an unprivileged user in a forked child (the interpreter is not visible to them)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            read_spec_file(path)
        except SpecError as exc:
            os.write(write_fd, str(exc).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        message = fh.read().decode()
    assert os.waitpid(pid, 0)[1] == 0
    assert message == f"{path}: permission denied: the spec file cannot be read"


def test_unsupported_suffix_and_missing_file(tmp_path: Path) -> None:
    refused(write(tmp_path, MINIMAL, "spec.txt"), "unsupported spec file type '.txt'")
    write(tmp_path, MINIMAL, "tabletop.yaml")
    refused(tmp_path / "tabeltop.yaml", "no such spec file .did you mean 'tabletop.yaml'")


def test_cli_reports_a_bad_spec_file_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    out = tmp_path / "out"
    for spec in (tmp_path, write(tmp_path, b"name: caf\xe9\n"), write(tmp_path, billion_laughs(), "bomb.yaml")):
        result = CliRunner().invoke(app, ["generate", str(spec), "-o", str(out), "-n", "1"])
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert "Traceback" not in result.output and len(errors) == 1 and str(spec) in errors[0], result.output
        assert not out.exists()  # nothing is written for a spec that does not load


def test_big_spec_loads_in_bounded_time(tmp_path: Path) -> None:
    """Not a benchmark: a 2 MB spec (a long choice list) must load in seconds with the C parser."""
    values = "".join(f"        - {0.8 + (i % 5000) / 10000:.4f}\n" for i in range(150_000))
    text = (REPO / "scenes" / "tabletop_clutter.yaml").read_text()
    old = "    distance: {kind: uniform, low: 0.8, high: 1.3}\n"
    assert old in text
    path = write(tmp_path, text.replace(old, "    distance:\n      kind: choice\n      values:\n" + values))
    start = time.perf_counter()
    raw = read_spec_file(path)
    assert len(raw["camera"]["look_at"]["distance"]["values"]) == 150_000
    assert time.perf_counter() - start < 20


def test_randomizer_checks_run_at_load_time_with_the_entry_path() -> None:
    """``Randomizer.check`` (here: joint names against the robot's URDF) runs when the spec loads."""
    raw = read_spec_file(REPO / "scenes" / "robot_workcell.yaml")
    raw["randomizers"][0]["joints"] = ["panda_joint1", "panda_jiont3"]
    with pytest.raises(SpecError) as info:
        load_spec(raw, base_dir=REPO / "scenes")
    assert info.value.path == "randomizers[0].joints[1]" and "did you mean 'panda_joint3'" in str(info.value)
    load_spec(raw, base_dir=REPO / "scenes", check_assets=False)  # workers reload without the file checks
