"""ROUGE-L dedup with a MinHash LSH prefilter: agrees with rouge-score and with brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from rouge_score import rouge_scorer, tokenize

from simgen.generators.text.dedup import (
    RougeIndex,
    _shingles,
    brute_force_pairs,
    candidate_recall,
    dedup,
    jaccard_bound,
    lsh_params,
    lsh_recall,
    nearest_exact,
    normalise,
    rouge_l,
    tokens,
)

WORDS = [
    *[
        "robot",
        "arm",
        "gripper",
        "camera",
        "depth",
        "label",
        "box",
        "mug",
        "table",
        "shelf",
        "pick",
        "place",
        "move",
        "grasp",
        "sensor",
        "noise",
        "light",
    ],
    *["the", "a", "of", "to", "and", "in", "for", "with", "on", "how", "why", "what"],
]


def corpus(n: int, seed: int, dup_rate: float = 0.15) -> list[str]:
    """Instruction-like texts over a small vocabulary, with planted near-duplicates (1-3 words changed)."""
    g = np.random.default_rng(seed)
    out: list[str] = []
    for _ in range(n):
        if out and g.random() < dup_rate:
            base = out[int(g.integers(len(out)))].split()
            for _ in range(int(g.integers(1, 4))):
                base[int(g.integers(len(base)))] = str(g.choice(WORDS))
            out.append(" ".join(base))
        else:
            out.append(" ".join(g.choice(WORDS, size=int(g.integers(6, 25)))))
    return out


def test_tokens_and_scores_are_rouge_scores_own() -> None:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    texts = [*corpus(60, 0), "Hello, World! 3.5x café-bar", "Ünïcode only", "", "the the the cat"]
    for a, b in itertools.combinations(texts[-12:], 2):
        assert tokens(a) == tokenize.tokenize(a, None)
        assert rouge_l(a, b) == pytest.approx(scorer.score(a, b)["rougeL"].fmeasure, abs=1e-12)


def test_the_jaccard_bound_holds_on_every_pair() -> None:
    texts = corpus(120, 1, dup_rate=0.4)
    checked = 0
    for a, b in itertools.combinations(texts, 2):
        f = rouge_l(a, b)
        if f == 0:
            continue
        sa, sb = set(_shingles(tokens(a))), set(_shingles(tokens(b)))
        assert len(sa & sb) / len(sa | sb) >= jaccard_bound(f) - 1e-12
        checked += 1
    assert checked > 5000


def test_lsh_parameters_keep_a_pair_at_the_bound() -> None:
    bands, rows = lsh_params(0.7, 256)
    assert bands * rows <= 256 and lsh_recall(0.7, bands, rows) >= 0.995
    assert jaccard_bound(0.7) == pytest.approx(0.7 / 1.3)


def test_exact_duplicates_after_normalisation() -> None:
    items = ["Explain PID control.", "explain   PID control!", "EXPLAIN pid-control", "Explain PID tuning."]
    assert normalise(items[0]) == normalise(items[1]) == "explain pid control"
    result = dedup(items, threshold=None)
    assert result.kept == ["Explain PID control.", "Explain PID tuning."]
    assert [(d.index, d.of, d.kind) for d in result.duplicates] == [(1, 0, "exact"), (2, 0, "exact")]
    assert result.counts == {"n_in": 4, "exact": 2, "near": 0, "kept": 2}


def test_near_duplicates_counted_with_what_they_duplicate() -> None:
    items = [
        "Explain how a robot arm picks a mug from a cluttered table",
        "Describe the noise model of a depth camera",
        "Explain how a robot arm picks a box from a cluttered table",  # one word changed
        "Write a haiku about a warehouse at night",
    ]
    result = dedup(items)
    assert result.counts == {"n_in": 4, "exact": 0, "near": 1, "kept": 3}
    dup = result.duplicates[0]
    assert (dup.index, dup.of, dup.kind) == (2, 0, "near") and dup.score == pytest.approx(rouge_l(items[0], items[2]))


def test_the_prefilter_loses_no_pair_that_brute_force_finds() -> None:
    texts = corpus(700, 2)
    pairs = brute_force_pairs(texts, 0.7)
    assert len(pairs) > 100  # the planted near-duplicates
    # Recall of the LSH candidates: every pair above the threshold is proposed.
    recall = candidate_recall(texts, 0.7)
    assert recall["pairs"] == len(pairs) and recall["missed"] == [] and recall["recall"] == 1.0
    # And the whole greedy dedup keeps exactly what brute force keeps.
    fast, slow = dedup(texts), dedup(texts, brute_force=True)
    assert fast.kept_index == slow.kept_index
    assert [(d.index, d.of) for d in fast.duplicates] == [(d.index, d.of) for d in slow.duplicates]
    assert fast.stats["candidates"] < len(texts) ** 2 / 4  # the prefilter did prune


def test_nearest_exact_is_the_true_maximum() -> None:
    texts, refs = corpus(40, 3), corpus(25, 4)
    got = nearest_exact(texts, refs)
    for t, (score, j) in zip(texts, got, strict=True):
        scores = [rouge_l(t, r) for r in refs]
        assert score == pytest.approx(max(scores)) and (score == 0 or scores.index(max(scores)) == j)


def test_index_threshold_is_strict_like_the_paper() -> None:
    index: RougeIndex[str] = RougeIndex(0.75)
    index.add("a b c d", "x")
    assert index.nearest("a b c e")[1] is None  # exactly 0.75: kept (the paper drops > 0.7)
    assert index.nearest("a b c d")[1] == "x"
