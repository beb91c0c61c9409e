"""Model collapse, and the real-data anchor that prevents it: fit -> sample -> refit over generations.

Reproduces the setting of Shumailov et al. 2024 ("AI models collapse when trained on recursively generated data",
Nature) and Gerstgrasser et al. 2024 ("Is model collapse inevitable? Breaking the curse of recursion by
accumulating real and synthetic data") with simgen's own tabular generators on a real table bundled with
scikit-learn. Generation 0 is the real table; generation ``k`` fits a generator on generation ``k - 1``'s training
set and samples ``n`` rows (``n`` = the real table's size). Three ways to build the next training set:

* ``replace``: the last synthetic sample only (Shumailov et al.: errors compound, the data drifts and collapses);
* ``accumulate``: the real table and every synthetic sample so far (Gerstgrasser et al.: the error stays bounded);
* ``anchor``: ``n`` rows of which 10% are real rows, drawn fresh from the real table, and 90% the last synthetic
  sample, mixed through ``simgen mix``'s code path (:func:`simgen.mix.tables.mix_frames`).

Each generation's sample is scored against the whole real table with the quality score (SDMetrics' column
shapes and column-pair trends, :func:`simgen.validators.tabular.quality_score`); the loop is
:func:`simgen.mix.collapse.collapse_scores`: 1 is indistinguishable. The
score is averaged over ``--repeats`` seeds. A table of scores per generation and regime is printed and a plot is
saved (matplotlib). Usage::

    python benchmarks/collapse.py [--dataset wine] [--generations 5] [--repeats 3]
        [--generators tabular/gaussian-copula-v1,tabular/cart-v1] [--plot collapse.png]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simgen.generators.tabular.metadata import infer_metadata
from simgen.mix.collapse import REGIMES, collapse_scores


def load_dataset(name: str) -> pd.DataFrame:
    """A real table bundled with scikit-learn, with its class as a named category where it has one."""
    from sklearn import datasets as skd

    loaders: dict[str, Callable[..., Any]] = {
        "wine": skd.load_wine,
        "breast_cancer": skd.load_breast_cancer,
        "diabetes": skd.load_diabetes,
        "iris": skd.load_iris,
    }
    if name not in loaders:
        raise SystemExit(f"unknown dataset {name!r}; one of {', '.join(loaders)}")
    data = loaders[name](as_frame=True)
    frame = data.frame.drop(columns="target")
    names = getattr(data, "target_names", None)
    if names is not None and name != "diabetes":
        frame["label"] = np.asarray(names)[data.target.to_numpy()]
    else:
        frame["target"] = data.target
    return frame


def measure(
    dataset: str, generators: list[str], generations: int, repeats: int, anchor: float
) -> tuple[dict[tuple[str, str], np.ndarray], pd.DataFrame]:
    """``(generator, regime) -> scores`` (repeats x generations), and the real table."""
    real = load_dataset(dataset)
    metadata = infer_metadata(real, source=dataset)
    out: dict[tuple[str, str], np.ndarray] = {}
    for generator in generators:
        for regime in REGIMES:
            t0 = time.perf_counter()
            rows = [
                collapse_scores(
                    generator, regime, real, metadata, generations=generations, seed=seed, anchor_fraction=anchor
                )
                for seed in range(repeats)
            ]
            out[(generator, regime)] = np.asarray(rows)
            print(f"  {generator:28s} {regime:10s} {time.perf_counter() - t0:6.1f} s", flush=True)
    return out, real


def print_table(results: dict[tuple[str, str], np.ndarray], generations: int) -> None:
    """Mean quality score (and its spread over seeds) per generation, one row per generator and regime."""
    head = " ".join(f"{'gen ' + str(g):>13s}" for g in range(1, generations + 1))
    print(f"\n{'generator':28s} {'regime':10s} {head}   drop 1->{generations}")
    for (generator, regime), scores in results.items():
        mean, sd = scores.mean(axis=0), scores.std(axis=0)
        cells = " ".join(f"{m:.4f}±{s:.4f}" for m, s in zip(mean, sd, strict=True))
        print(f"{generator:28s} {regime:10s} {cells}   {mean[0] - mean[-1]:+.4f}")


def plot(results: dict[tuple[str, str], np.ndarray], generations: int, path: Path, title: str) -> None:
    """One panel per generator: mean score per generation, one line per regime, a band of one SD."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    generators = sorted({g for g, _ in results})
    fig, axes = plt.subplots(1, len(generators), figsize=(5.5 * len(generators), 4), squeeze=False)
    x = np.arange(1, generations + 1)
    for ax, generator in zip(axes[0], generators, strict=True):
        for regime in REGIMES:
            scores = results[(generator, regime)]
            mean, sd = scores.mean(axis=0), scores.std(axis=0)
            ax.plot(x, mean, marker="o", label=regime)
            ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
        ax.set_title(generator)
        ax.set_xlabel("generation")
        ax.set_ylabel("quality score vs real")
        ax.set_xticks(x)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="wine")
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generators", default="tabular/gaussian-copula-v1,tabular/cart-v1")
    parser.add_argument("--anchor-fraction", type=float, default=0.1, help="real share of the anchor regime")
    parser.add_argument("--plot", type=Path, default=Path("collapse.png"))
    args = parser.parse_args()
    generators = [g.strip() for g in args.generators.split(",") if g.strip()]
    print(f"model collapse on {args.dataset}: {args.generations} generations, {args.repeats} seeds, "
          f"anchor = {args.anchor_fraction:.0%} real rows")  # fmt: skip
    t0 = time.perf_counter()
    results, real = measure(args.dataset, generators, args.generations, args.repeats, args.anchor_fraction)
    print_table(results, args.generations)
    title = f"{args.dataset} ({len(real)} rows x {real.shape[1]} columns): fit -> sample -> refit"
    plot(results, args.generations, args.plot, title)
    print(f"\nplot: {args.plot}  ({time.perf_counter() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
