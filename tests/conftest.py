"""Shared test setup: offline hubs, a quiet Mesa cache, and the repository's paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MESA_SHADER_CACHE_DIR", "/tmp/simgen-mesa-cache")

REPO = Path(__file__).resolve().parents[1]
SCENES = REPO / "scenes"


@pytest.fixture
def default_spec_path() -> Path:
    """The README's default scene."""
    return SCENES / "tabletop_clutter.yaml"
