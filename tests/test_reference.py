from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from simgen.cli import app
from simgen.randomizers import REGISTRY
from simgen.reference import randomizers_markdown

REPO = Path(__file__).resolve().parents[1]


def test_docs_randomizers_md_is_generated_from_the_registry() -> None:
    expected = randomizers_markdown()
    actual = (REPO / "docs" / "randomizers.md").read_text()
    assert actual == expected, "regenerate with: simgen list randomizers --markdown > docs/randomizers.md"
    for name in REGISTRY.names():
        assert f"## `{name}`" in actual


def test_list_randomizers_verbose_shows_parameters() -> None:
    result = CliRunner().invoke(app, ["list", "randomizers", "--verbose"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "sensor/motion-blur-v1" in result.output and "length_px" in result.output
