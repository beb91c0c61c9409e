"""Shared fixtures of the tune tests: a real-like domain (raw PyBullet + photos + a camera pipeline) and small specs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simgen.testing.reallike import hand_written_spec, write_domain


@pytest.fixture(scope="session")
def domain(tmp_path_factory: pytest.TempPathFactory):
    """40 real-like images, a background folder and the hand-written spec (written once per session)."""
    pytest.importorskip("sklearn")
    return write_domain(tmp_path_factory.mktemp("reallike"), n_real=40, seed=0)


@pytest.fixture(scope="session")
def make_spec(domain):
    """``make_spec(name, randomizers)``: the hand-written spec with only those randomizers, beside its photos."""

    def make(name: str, randomizers: list[str], *, width: int = 320, height: int = 240) -> Path:
        path = domain.spec.parent / name
        spec = hand_written_spec(width=width, height=height, randomizers=randomizers)
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    return make


@pytest.fixture(scope="session")
def tiny_extractor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny TorchScript feature net (random weights): fast features for tests that check plumbing, not quality."""
    pytest.importorskip("torch")
    from simgen.testing.tiny_extractor import write_tiny_extractor

    return write_tiny_extractor(tmp_path_factory.mktemp("extractor") / "tiny.pt", 32)
