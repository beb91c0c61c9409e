"""A tiny TorchScript feature extractor with fixed random weights, for tests of the validators and their users.

It maps (N, 3, S, S) images to (N, dim) features: fast, deterministic (seed 0), no download. It checks the
plumbing (caching, loading, reports), not the quality of features. Needs torch (the ``metrics`` extra).
"""

from __future__ import annotations

import warnings
from pathlib import Path


def write_tiny_extractor(path: Path, dim: int = 2048) -> Path:
    """Save the tiny scripted net to ``path`` (parents created) and return ``path``."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
            self.fc = torch.nn.Linear(8 * 4 * 4, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.conv(x))
            x = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
            return torch.relu(self.fc(x))

    with torch.random.fork_rng():
        torch.manual_seed(0)
        module = Tiny(dim).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # TorchScript is deprecated upstream, but it is the format the wheel ships
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(module), str(path))
    return path
