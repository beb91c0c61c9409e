"""Shared fixtures of the tune tests: a real-like domain (raw PyBullet + photos + a camera pipeline) and small specs."""

from __future__ import annotations

import warnings
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
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
            self.fc = torch.nn.Linear(8 * 4 * 4, 32)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.conv(x))
            x = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
            return torch.relu(self.fc(x))

    with torch.random.fork_rng():
        torch.manual_seed(0)
        module = Tiny().eval()
    path = tmp_path_factory.mktemp("extractor") / "tiny.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated upstream; the validators load it all the same
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(module), str(path))
    return path
