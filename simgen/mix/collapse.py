"""Fit -> sample -> refit over generations, with three ways to build each training set (model collapse).

``benchmarks/collapse.py`` runs this on real tables and plots it; ``tests/mix/test_collapse.py`` checks the known
result on a small one. Generation ``k`` fits a tabular generator on generation ``k - 1``'s training set (the real
table for ``k = 1``) and samples ``n`` rows (``n`` = the real table's size). The next training set is:

* ``replace``: the last sample only (Shumailov et al. 2024: errors compound, the data drifts away);
* ``accumulate``: the real table and every sample so far (Gerstgrasser et al. 2024: the error stays bounded);
* ``anchor``: ``n`` rows, a fraction of them real rows drawn anew, the rest the last sample, mixed by
  :func:`simgen.mix.tables.mix_frames` (what ``simgen mix`` writes).

Each sample is scored against the real table with the quality score
(:func:`simgen.validators.tabular.quality_score`; 1 is indistinguishable).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simgen.mix.core import plan_counts
from simgen.mix.tables import PROVENANCE_COLUMNS, from_frame, mix_frames
from simgen.sampling import rng_for

if TYPE_CHECKING:
    import pandas as pd

    from simgen.generators.tabular.metadata import TableMetadata

__all__ = ["REGIMES", "collapse_scores", "next_training_set"]

REGIMES = ("replace", "accumulate", "anchor")


def next_training_set(
    regime: str,
    real: pd.DataFrame,
    samples: list[pd.DataFrame],
    *,
    seed: int,
    generation: int,
    anchor_fraction: float = 0.1,
) -> pd.DataFrame:
    """The table the next generation is fitted on, given every sample so far (``samples[-1]`` the last).

    Raises:
        ValueError: An unknown regime.
    """
    import pandas as pd

    last = samples[-1]
    if regime == "replace":
        return last
    if regime == "accumulate":
        return pd.concat([real, *samples], ignore_index=True)
    if regime != "anchor":
        raise ValueError(f"regime: expected one of {', '.join(REGIMES)}, got {regime!r}")
    n = len(last)
    counts = plan_counts(len(real), n, anchor_fraction, total=n)
    syn = from_frame(last, "synthetic", default_generation=generation)
    mixed, _ = mix_frames(from_frame(real, "real"), syn, counts, rng_seed(seed, generation))
    return mixed.drop(columns=list(PROVENANCE_COLUMNS))


def rng_seed(seed: int, generation: int) -> int:
    """The mix seed of one generation: a fresh choice of real rows each time."""
    return int(rng_for(seed, "collapse", "mix", generation).integers(0, 2**31 - 1))


def collapse_scores(
    generator: str,
    regime: str,
    real: pd.DataFrame,
    metadata: TableMetadata,
    *,
    generations: int,
    seed: int = 0,
    anchor_fraction: float = 0.1,
) -> list[float]:
    """Quality scores of generations 1..``generations`` for one registered generator, regime and seed."""
    from simgen.generators import REGISTRY
    from simgen.validators.tabular import quality_score

    cls = REGISTRY.get(generator)
    n = len(real)
    train = real
    samples: list[pd.DataFrame] = []
    scores: list[float] = []
    for g in range(1, generations + 1):
        # The same random streams in every regime (common random numbers): generation 1 is the same sample in
        # all three, and later differences come from the training sets alone.
        model = cls().fit(train, metadata, rng_for(seed, "collapse", g, "fit"))
        sample = model.sample(n, rng_for(seed, "collapse", g, "sample"))
        samples.append(sample)
        scores.append(float(quality_score(real, sample, metadata)["score"]))
        train = next_training_set(regime, real, samples, seed=seed, generation=g, anchor_fraction=anchor_fraction)
    return scores
