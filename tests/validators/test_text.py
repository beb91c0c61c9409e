"""Text validators on hand-computed cases, cross-checked against NLTK and scikit-learn."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

pytest.importorskip("rouge_score", reason="the [text] extra is not installed")
pytest.importorskip("sklearn", reason="the [text] extra is not installed")

from simgen.generators.text.records import CriticVerdict, TextRecord, load_seeds
from simgen.validators import text as V


def rec(i: int, instruction: str, **kw) -> TextRecord:
    base = {
        "id": f"r{i}",
        "instruction": instruction,
        "operation": "self-instruct/propose",
        "origin": "synthetic",
        "generation": 1,
    }
    base.update(kw)
    return TextRecord(**base)


def test_distinct_n_hand_case() -> None:
    texts = ["the cat sat", "the cat ran"]
    assert V.distinct_n(texts, 1) == pytest.approx(4 / 6)  # the, cat, sat, ran
    assert V.distinct_n(texts, 2) == pytest.approx(3 / 4)  # the-cat twice, cat-sat, cat-ran
    assert V.distinct_n(["a"], 2) is None


def test_bleu_hand_computed() -> None:
    hyp, ref = V.words("the cat sat on the mat"), V.words("the cat is on the mat")
    # p1 = 5/6, p2 = 3/5, p3 = 1/4, p4 = 0 -> 0.1/3 (method 1); equal lengths: brevity penalty exp(0) = 1.
    expected = (5 / 6 * 3 / 5 * 1 / 4 * 0.1 / 3) ** 0.25
    assert V.bleu(hyp, [ref]) == pytest.approx(expected, rel=1e-12)
    assert V.bleu(hyp, [hyp]) == pytest.approx(1.0)
    assert V.bleu(V.words("dog"), [ref]) == 0.0  # no unigram in common
    # Brevity: a 3-token hypothesis fully inside a 6-token reference.
    short = V.words("the cat is")
    assert V.bleu(short, [ref]) == pytest.approx(math.exp(1 - 6 / 3) * (0.1 / 1) ** 0.25)


def test_bleu_and_self_bleu_agree_with_nltk() -> None:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    smooth = SmoothingFunction().method1
    g = np.random.default_rng(0)
    vocab = ["a", "b", "c", "d", "e", "f", "g", "h", ",", "."]
    for trial in range(30):
        texts = [" ".join(g.choice(vocab, size=int(g.integers(1, 12)))) for _ in range(int(g.integers(2, 9)))]
        if trial % 3 == 0:
            texts.append(texts[0])  # duplicates and equal lengths
        toks = [V.words(t) for t in texts]
        ref = np.mean(
            [sentence_bleu(toks[:i] + toks[i + 1 :], toks[i], smoothing_function=smooth) for i in range(len(toks))]
        )
        assert V.self_bleu(texts) == pytest.approx(ref, abs=1e-12)


def test_self_bleu_extremes_and_subsample() -> None:
    assert V.self_bleu(["the same four words"] * 4) == pytest.approx(1.0)
    # Under 4 tokens a text has no 4-gram: NLTK's method 1 counts that order as 0.1 / 1.
    assert V.self_bleu(["same words here"] * 4) == pytest.approx(0.1**0.25)
    assert V.self_bleu(["alpha beta", "gamma delta", "epsilon zeta"]) == 0.0
    assert V.self_bleu(["one"]) is None
    texts = [f"text number {i} about robots" for i in range(50)]
    a = V.self_bleu(texts, rng=np.random.default_rng(1), max_texts=20)
    assert a == V.self_bleu(texts, rng=np.random.default_rng(1), max_texts=20) and a is not None
    with pytest.raises(ValueError, match="needs an rng"):
        V.self_bleu(texts, max_texts=20)


def test_compression_ratio() -> None:
    texts = ["robot arm picks a mug"] * 50
    raw = "\n".join(texts).encode()
    assert V.compression_ratio(texts) == pytest.approx(len(raw) / len(gzip.compress(raw, 9, mtime=0)))
    diverse = [" ".join(np.random.default_rng(i).choice(list("abcdefghijklmnop"), 20)) for i in range(50)]
    assert V.compression_ratio(texts) > 3 * V.compression_ratio(diverse)
    assert V.compression_ratio([]) is None


def test_tfidf_spread_matches_sklearn_pairwise() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_distances

    texts = [s.prompt for s in load_seeds()] + ["", "!!!"]  # empty rows included
    x = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b").fit_transform(texts)
    d = cosine_distances(x)
    n = len(texts)
    assert V.tfidf_spread(texts) == pytest.approx((d.sum() - np.trace(d)) / (n * (n - 1)), abs=1e-9)
    assert V.tfidf_spread(["same", "same"]) == pytest.approx(0.0)
    assert V.tfidf_spread(["...", "?"]) is None  # no word at all


def test_novelty_and_planted_seed_copies() -> None:
    seeds = load_seeds()[:10]
    syn = [
        rec(0, seeds[0].instruction),  # verbatim copy
        rec(1, seeds[1].instruction.upper() + "!!"),  # exact after normalisation
        rec(2, seeds[2].instruction.replace(".", " quickly.")),  # near-verbatim
        rec(3, "Write a limerick about a forklift that learned to dance."),
    ]
    report = V.validate_text(syn, seeds, rng=np.random.default_rng(0), field="instruction")
    privacy = report["privacy"]
    assert (privacy["exact"], privacy["near"]) == (2, 1) and privacy["share"] == pytest.approx(0.75)
    assert {c["id"]: c["seed_id"] for c in privacy["examples"]} == {
        "r0": seeds[0].id,
        "r1": seeds[1].id,
        "r2": seeds[2].id,
    }
    assert report["novelty"]["max"] == pytest.approx(1.0) and report["novelty"]["share_above_0.7"] == pytest.approx(
        0.75
    )
    assert report["metrics"]["seed_copy_share"]["value"] == pytest.approx(0.75)


def test_report_section_is_json_and_has_every_part() -> None:
    seeds = load_seeds()
    verdict = {
        "status": "ok",
        "passed": True,
        "threshold": 3.0,
        "template": "critic/ultrafeedback-v1",
        "template_sha256": "0" * 64,
    }
    syn = [
        rec(
            i,
            f"Explain topic {i} of robot calibration to a new engineer.",
            output="An answer " * (i + 1),
            critic=CriticVerdict(scores={"helpfulness": 1 + i % 5, "honesty": 4}, reasons={}, mean=2.5, **verdict),
            generation=1 + i % 3,
        )
        for i in range(12)
    ]
    report = V.validate_text([*seeds, *syn], rng=np.random.default_rng(0))
    json.dumps(report, allow_nan=False)
    assert report["kind"] == "text" and report["synthetic"]["records"] == 12 and report["real"]["records"] == 40
    for name in ("distinct_1", "distinct_2", "self_bleu", "compression_ratio", "tfidf_spread", "novelty_rouge_l"):
        entry = report["metrics"][name]
        assert entry["value"] is not None and isinstance(entry["higher_is_better"], bool) and entry["description"]
    assert report["metrics"]["distinct_2"]["real"] > report["metrics"]["distinct_2"]["value"]  # templated synthetic
    assert report["types"]["mix"] == {"real": 40, "synthetic": 12}
    assert report["types"]["synthetic"]["generation"] == {"1": 4, "2": 4, "3": 4}
    assert report["lengths"]["synthetic"]["output"]["max"] == 24
    helpful = report["critic"]["aspects"]["helpfulness"]
    assert helpful["counts"] == {"1": 3, "2": 3, "3": 2, "4": 2, "5": 2} and report["critic"]["pass_rate"] == 1.0


def test_no_synthetic_record_is_an_error() -> None:
    from simgen.errors import SimgenError

    with pytest.raises(SimgenError, match="no synthetic record"):
        V.validate_text(load_seeds(), rng=np.random.default_rng(0))
