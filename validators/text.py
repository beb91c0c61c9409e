r"""Text: diversity, novelty against the seeds, near-verbatim copies of the seeds, lengths, types and critic scores.

Every metric is a pure function of lists of strings; :func:`validate_text` gathers them for a set of records
(:class:`~simgen.generators.text.records.TextRecord`) into one JSON-ready report section, with the seeds (the real
side) measured the same way as a baseline wherever that makes sense.

**Tokens.** Diversity metrics split lowercased text into words and punctuation marks (``\w+`` runs and single
other characters, Unicode-aware: :func:`words`). ROUGE-L (novelty, privacy) uses rouge-score's own tokens.

**Diversity.**

- *distinct-n* (Li et al., 2016): distinct n-grams over all n-grams of the corpus; higher is more diverse.
- *Self-BLEU* (Zhu et al., 2018, Texygen): the mean over texts of the sentence BLEU-4 of each text against all the
  others as references; lower is more diverse. BLEU is written here as NLTK's ``sentence_bleu`` defines it
  (clipped n-gram precision up to 4, uniform weights, brevity penalty against the closest reference length, ties
  to the shorter; smoothing method 1: a zero count becomes 0.1), and cross-checked against NLTK in the tests. A
  text's reference counts are the maxima over the other texts, kept per n-gram as the best count, its text and
  the runner-up count, so all of a corpus costs one pass over its n-grams, not n².
- *compression ratio*: raw UTF-8 bytes of the texts (joined by newlines) over their gzip size (level 9); higher
  means more repetition, so lower is more diverse.
- *TF-IDF spread*: the mean pairwise cosine distance between TF-IDF vectors (scikit-learn ``TfidfVectorizer``,
  L2-normalised rows, fitted on the texts measured). With unit rows the mean over pairs i != j of the cosine is
  ``(|sum x|^2 - sum |x_i|^2) / (n (n - 1))``, exact and linear in the corpus; higher is more diverse.

**Novelty**: each synthetic text's highest ROUGE-L F against the seeds (exact maxima: candidates are visited by
decreasing multiset-overlap bound, which stops the search once no seed can beat the best).

**Privacy** (the shared check, for text): near-verbatim copies of real seeds, that is, synthetic texts equal to a
seed after normalisation, or with ROUGE-L at or above 0.9 against one.
"""

from __future__ import annotations

import bisect
import gzip
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from simgen.errors import DependencyMissing, SimgenError
from simgen.generators.text.dedup import nearest_exact, normalised_hash
from simgen.generators.text.records import TextRecord

__all__ = [
    "TEXT_METRIC_INFO",
    "bleu",
    "compression_ratio",
    "critic_stats",
    "distinct_n",
    "length_stats",
    "novelty",
    "seed_copies",
    "self_bleu",
    "tfidf_spread",
    "type_stats",
    "validate_text",
    "words",
]

_WORDS = re.compile(r"\w+|[^\w\s]", re.UNICODE)
#: Method 1 smoothing's count for an n-gram order with no match (NLTK's default epsilon).
EPSILON = 0.1
#: Near-verbatim copy threshold (ROUGE-L F).
COPY_THRESHOLD = 0.9

TEXT_METRIC_INFO: dict[str, tuple[str, bool]] = {
    "distinct_1": ("distinct unigrams / all unigrams of the corpus", True),
    "distinct_2": ("distinct bigrams / all bigrams of the corpus", True),
    "self_bleu": ("mean BLEU-4 of each text against all the others (NLTK method-1 smoothing)", False),
    "compression_ratio": ("raw bytes / gzip bytes of the joined texts (repetition)", False),
    "tfidf_spread": ("mean pairwise cosine distance of TF-IDF vectors", True),
    "novelty_rouge_l": ("mean over texts of the highest ROUGE-L F to a seed (lower is more novel)", False),
    "seed_copy_share": ("share of texts equal to a seed or with ROUGE-L >= 0.9 to one (privacy)", False),
}


def words(text: str) -> list[str]:
    """Lowercased word and punctuation tokens (see the module docstring)."""
    return _WORDS.findall(text.lower())


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Distinct n-grams / all n-grams over the corpus, or ``None`` when it has no n-gram."""
    grams: Counter[tuple[str, ...]] = Counter()
    for t in texts:
        grams.update(_ngrams(words(t), n))
    total = sum(grams.values())
    return len(grams) / total if total else None


def _bleu_from_counts(matches: Sequence[int], totals: Sequence[int], hyp_len: int, ref_len: int) -> float:
    """Sentence BLEU from clipped matches and n-gram totals per order (NLTK's formula, method-1 smoothing)."""
    if not matches or matches[0] == 0:
        return 0.0
    weight = 1.0 / len(matches)
    logs = [math.log((m if m else EPSILON) / max(1, t)) for m, t in zip(matches, totals, strict=True)]
    if hyp_len > ref_len:
        bp = 1.0
    elif hyp_len == 0:
        bp = 0.0
    else:
        bp = math.exp(1.0 - ref_len / hyp_len)
    return bp * math.exp(math.fsum(weight * x for x in logs))


def bleu(hypothesis: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4) -> float:
    """Sentence BLEU of a token list against reference token lists (NLTK ``sentence_bleu`` with method 1).

    Raises:
        ValueError: No reference.
    """
    if not references:
        raise ValueError("bleu: at least one reference is needed")
    matches, totals = [], []
    for n in range(1, max_n + 1):
        counts = Counter(_ngrams(hypothesis, n))
        best: Counter[tuple[str, ...]] = Counter()
        for ref in references:
            best |= Counter(_ngrams(ref, n))
        matches.append(sum(min(c, best[g]) for g, c in counts.items()))
        totals.append(sum(counts.values()))
    h = len(hypothesis)
    ref_len = min((len(r) for r in references), key=lambda r: (abs(r - h), r))
    return _bleu_from_counts(matches, totals, h, ref_len)


def _closest_other_length(sorted_lengths: list[int], counts: Counter[int], h: int) -> int:
    """The reference length closest to ``h`` among all texts but one text of length ``h`` (ties: the shorter)."""
    if counts[h] > 1:
        return h
    i = bisect.bisect_left(sorted_lengths, h)
    below = sorted_lengths[i - 1] if i > 0 else None
    j = i + 1 if i < len(sorted_lengths) and sorted_lengths[i] == h else i
    above = sorted_lengths[j] if j < len(sorted_lengths) else None
    if below is None:
        return int(above)  # type: ignore[arg-type]
    if above is None or h - below <= above - h:
        return below
    return above


def self_bleu(
    texts: Sequence[str], *, max_n: int = 4, rng: np.random.Generator | None = None, max_texts: int | None = None
) -> float | None:
    """Mean BLEU of each text against all the other texts (see the module docstring); ``None`` under 2 texts.

    Args:
        texts: The corpus.
        max_n: The highest n-gram order.
        rng: Draws the subsample when ``max_texts`` is smaller than the corpus.
        max_texts: Measure a uniform subsample of this many texts (hypotheses and references alike).
    """
    items = list(texts)
    if max_texts is not None and len(items) > max_texts:
        if rng is None:
            raise ValueError("self_bleu: a subsample (max_texts) needs an rng")
        items = [items[i] for i in sorted(rng.choice(len(items), size=max_texts, replace=False))]
    if len(items) < 2:
        return None
    toks = [words(t) for t in items]
    per_order: list[list[Counter[tuple[str, ...]]]] = [
        [Counter(_ngrams(t, n)) for t in toks] for n in range(1, max_n + 1)
    ]
    # Per n-gram: (best count, its text, best count among the other texts).
    tops: list[dict[tuple[str, ...], list[int]]] = []
    for counters in per_order:
        top: dict[tuple[str, ...], list[int]] = {}
        for doc, counter in enumerate(counters):
            for g, c in counter.items():
                entry = top.get(g)
                if entry is None:
                    top[g] = [c, doc, 0]
                elif c > entry[0]:
                    entry[2], entry[0], entry[1] = entry[0], c, doc
                elif c > entry[2]:
                    entry[2] = c
        tops.append(top)
    lengths = [len(t) for t in toks]
    length_counts = Counter(lengths)
    unique = sorted(length_counts)
    scores = []
    for doc, tok in enumerate(toks):
        matches, totals = [], []
        for counters, top in zip(per_order, tops, strict=True):
            m = 0
            for g, c in counters[doc].items():
                best, best_doc, second = top[g]
                m += min(c, second if best_doc == doc else best)
            matches.append(m)
            totals.append(sum(counters[doc].values()))
        ref_len = _closest_other_length(unique, length_counts, len(tok))
        scores.append(_bleu_from_counts(matches, totals, len(tok), ref_len))
    return float(np.mean(scores))


def compression_ratio(texts: Sequence[str]) -> float | None:
    """Raw UTF-8 bytes over gzip bytes (level 9, no timestamp) of the texts joined by newlines; ``None`` if empty."""
    raw = "\n".join(texts).encode("utf-8")
    if not raw:
        return None
    return len(raw) / len(gzip.compress(raw, compresslevel=9, mtime=0))


def tfidf_spread(texts: Sequence[str]) -> float | None:
    """Mean pairwise cosine distance of the texts' TF-IDF vectors; ``None`` under 2 texts or without a word."""
    if len(texts) < 2:
        return None
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError as exc:
        raise DependencyMissing("scikit-learn", "text", "the TF-IDF spread") from exc
    try:
        x = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b").fit_transform(texts)
    except ValueError:  # an empty vocabulary: no text has a word
        return None
    n = x.shape[0]
    total = np.asarray(x.sum(axis=0)).ravel()
    self_sim = float(x.multiply(x).sum())
    mean_cos = (float(total @ total) - self_sim) / (n * (n - 1))
    return 1.0 - mean_cos


def _max_rouge(texts: Sequence[str], seeds: Sequence[str]) -> list[tuple[float, int]]:
    return nearest_exact(texts, seeds)


def novelty(texts: Sequence[str], seeds: Sequence[str], best: list[tuple[float, int]] | None = None) -> dict[str, Any]:
    """Each text's highest ROUGE-L to the seeds, summarised (mean, quantiles, share above 0.7)."""
    best = best if best is not None else _max_rouge(texts, seeds)
    if not best:
        return {"n": 0}
    v = np.array([s for s, _ in best])
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "p95": float(np.quantile(v, 0.95)),
        "max": float(v.max()),
        "share_above_0.7": float((v > 0.7).mean()),
        "histogram": {
            "bins": [round(b, 1) for b in np.linspace(0, 1, 11)],
            "counts": np.histogram(v, bins=10, range=(0.0, 1.0))[0].tolist(),
        },
    }


def seed_copies(
    ids: Sequence[str],
    texts: Sequence[str],
    seed_ids: Sequence[str],
    seeds: Sequence[str],
    *,
    threshold: float = COPY_THRESHOLD,
    best: list[tuple[float, int]] | None = None,
    max_examples: int = 20,
) -> dict[str, Any]:
    """Synthetic texts that are exact (normalised) or near-verbatim (ROUGE-L >= threshold) copies of seeds."""
    best = best if best is not None else _max_rouge(texts, seeds)
    seed_hash = {normalised_hash(s): i for i, s in enumerate(seeds)}
    copies = []
    for i, text in enumerate(texts):
        exact = seed_hash.get(normalised_hash(text))
        score, j = best[i]
        if exact is not None:
            copies.append({"id": ids[i], "seed_id": seed_ids[exact], "kind": "exact", "rouge_l": 1.0})
        elif score >= threshold:
            copies.append({"id": ids[i], "seed_id": seed_ids[j], "kind": "near", "rouge_l": round(score, 6)})
    copies.sort(key=lambda c: (-c["rouge_l"], c["id"]))
    return {
        "threshold": threshold,
        "n": len(texts),
        "exact": sum(c["kind"] == "exact" for c in copies),
        "near": sum(c["kind"] == "near" for c in copies),
        "share": len(copies) / len(texts) if texts else 0.0,
        "examples": copies[:max_examples],
    }


def _summary(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    v = np.asarray(values, dtype=float)
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "p5": float(np.quantile(v, 0.05)),
        "p95": float(np.quantile(v, 0.95)),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def length_stats(records: Sequence[TextRecord]) -> dict[str, Any]:
    """Words per text field (whitespace split), over the records where the field is not empty."""
    out = {}
    for name in ("instruction", "input", "output", "caption"):
        values = [len(t.split()) for r in records if (t := getattr(r, name) or "").strip()]
        if values:
            out[name] = _summary(values)
    return out


def type_stats(records: Sequence[TextRecord], top: int = 15) -> dict[str, Any]:
    """Counts by kind, operation, origin (the real/synthetic mix) and generation; inputs; leading words."""
    first = Counter(w[0] for r in records if (w := words(r.instruction or r.caption or "")))
    n = len(records)
    origin = Counter(r.origin for r in records)
    return {
        "n": n,
        "kind": dict(sorted(Counter(r.kind for r in records).items())),
        "operation": dict(sorted(Counter(r.operation for r in records).items())),
        "origin": dict(sorted(origin.items())),
        "synthetic_share": origin["synthetic"] / n if n else None,
        "generation": {str(k): v for k, v in sorted(Counter(r.generation for r in records).items())},
        "with_input_share": sum(bool((r.input or "").strip()) for r in records) / n if n else None,
        "classification_share": (sum(bool(r.meta.get("is_classification")) for r in records) / n if n else None),
        "leading_words": dict(first.most_common(top)),
    }


def critic_stats(records: Sequence[TextRecord]) -> dict[str, Any]:
    """Score distributions per aspect (counts of 1..5, mean), the mean score's summary, pass rate and statuses."""
    verdicts = [r.critic for r in records if r.critic is not None]
    if not verdicts:
        return {"n": 0}
    scored = [v for v in verdicts if v.status == "ok"]
    aspects = sorted({a for v in scored for a in v.scores})
    per_aspect = {}
    for a in aspects:
        values = [v.scores[a] for v in scored if a in v.scores]
        per_aspect[a] = {"mean": float(np.mean(values)), "counts": {str(k): values.count(k) for k in range(1, 6)}}
    return {
        "n": len(verdicts),
        "status": dict(sorted(Counter(v.status for v in verdicts).items())),
        "pass_rate": sum(v.passed for v in verdicts) / len(verdicts),
        "mean_score": _summary([v.mean for v in scored if v.mean is not None]),
        "aspects": per_aspect,
    }


def _diversity(texts: Sequence[str], rng: np.random.Generator, max_texts: int) -> dict[str, float | None]:
    return {
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "self_bleu": self_bleu(texts, rng=rng, max_texts=max_texts),
        "compression_ratio": compression_ratio(texts),
        "tfidf_spread": tfidf_spread(texts),
    }


def validate_text(
    records: Sequence[TextRecord],
    seeds: Sequence[TextRecord] | None = None,
    *,
    rng: np.random.Generator,
    field: str = "prompt",
    max_self_bleu: int = 5000,
) -> dict[str, Any]:
    """The text section of a validation report.

    Args:
        records: The synthetic records (real ones among them are measured apart, as the mix).
        seeds: The real seed records; defaults to the real records among ``records``.
        rng: Draws the Self-BLEU subsample of a large corpus.
        field: Which text of a record is measured: ``prompt`` (instruction and input, or the caption), ``all``,
            or one field name.
        max_self_bleu: Self-BLEU on at most this many texts per side.

    Returns:
        ``{"kind", "synthetic", "real", "settings", "metrics", "novelty", "privacy", "lengths", "types", "critic",
        "warnings"}``; ``metrics`` maps each name to ``{"value", "real", "higher_is_better", "description"}``.

    Raises:
        SimgenError: No synthetic record.
    """
    synthetic = [r for r in records if r.origin == "synthetic"]
    real = list(seeds) if seeds is not None else [r for r in records if r.origin == "real"]
    if not synthetic:
        raise SimgenError("text validation: no synthetic record to measure")
    syn_texts = [r.text(field) for r in synthetic]
    real_texts = [r.text(field) for r in real]
    warnings: list[str] = []
    syn_div = _diversity(syn_texts, rng, max_self_bleu)
    real_div = _diversity(real_texts, rng, max_self_bleu) if real_texts else {}
    metrics: dict[str, dict[str, Any]] = {}
    for name, value in syn_div.items():
        description, higher = TEXT_METRIC_INFO[name]
        metrics[name] = {
            "value": value,
            "real": real_div.get(name),
            "higher_is_better": higher,
            "description": description,
        }
    novelty_section: dict[str, Any] = {}
    privacy: dict[str, Any] = {}
    if real_texts:
        best = _max_rouge(syn_texts, real_texts)
        novelty_section = novelty(syn_texts, real_texts, best)
        privacy = seed_copies([r.id for r in synthetic], syn_texts, [r.id for r in real], real_texts, best=best)
        for name, value in (("novelty_rouge_l", novelty_section["mean"]), ("seed_copy_share", privacy["share"])):
            description, higher = TEXT_METRIC_INFO[name]
            metrics[name] = {"value": value, "real": None, "higher_is_better": higher, "description": description}
    else:
        warnings.append("no seed records: novelty and the seed-copy privacy check were skipped")
    if len(syn_texts) > max_self_bleu:
        warnings.append(f"Self-BLEU measured on a random {max_self_bleu} of {len(syn_texts)} synthetic texts")
    return {
        "kind": "text",
        "synthetic": {"records": len(synthetic)},
        "real": {"records": len(real)},
        "settings": {"field": field, "max_self_bleu": max_self_bleu, "copy_threshold": COPY_THRESHOLD},
        "metrics": metrics,
        "novelty": novelty_section,
        "privacy": privacy,
        "lengths": {"synthetic": length_stats(synthetic), "real": length_stats(real)},
        "types": {
            "synthetic": type_stats(synthetic),
            "real": type_stats(real),
            "mix": type_stats([*real, *synthetic])["origin"],
        },
        "critic": critic_stats(synthetic),
        "warnings": warnings,
    }
