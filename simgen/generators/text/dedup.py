"""Exact and near-duplicate removal with ROUGE-L, made fast by a MinHash LSH prefilter.

**ROUGE-L** is ``rouge-score``'s (``RougeScorer(["rougeL"])``, no stemming, its default tokenizer: lowercase,
runs of ``[a-z0-9]``): the F-measure of the longest common subsequence of two token lists, ``2 L / (m + n)``.
Self-Instruct drops a new instruction whose ROUGE-L against any instruction already in the pool is above 0.7.

**The prefilter.** Brute force costs n²/2 LCS computations (50 million for 10k
records). Instead each text is a MinHash of its token *multiset* (the k-th occurrence of a token is its own
element, ``"the#2"``), and an LSH index returns the earlier texts whose Jaccard similarity is probably above a
threshold. The threshold follows from a bound: the LCS is a common sub-multiset, so with multiset Jaccard ``J``,
``J >= F / (2 - F)`` for any pair of ROUGE-L F-measure ``F`` (F > 0.7 implies J > 0.538). The LSH bands are
chosen so that a pair at that Jaccard is a candidate with probability above 99.6% (:func:`lsh_params`); real
near-duplicates sit well above the bound, where the probability is higher still. Candidates are then thinned in
two steps before any LCS: the MinHash estimate of their Jaccard must be within 4.5 standard errors of the bound
(one numpy comparison per query; a true pair fails it with probability below 1e-5), and an exact bound,
``F <= 2 |A ∩ B| / (m + n)`` (a multiset intersection), must exceed the threshold. The recall of the LSH stage
(:func:`candidate_recall`) and the agreement of the whole dedup with brute force are measured in the tests and in
``benchmarks/text.py``.

**Exact duplicates** are texts equal after :func:`normalise` (Unicode NFKC, case-folded, punctuation and
whitespace collapsed); they are removed first, by hash.

Both passes are greedy in input order: the first of a group is kept, later ones are dropped with the id of the
record they duplicate and the score. The MinHash permutations are seeded, so results are deterministic.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from simgen.errors import DependencyMissing

__all__ = [
    "DEFAULT_THRESHOLD",
    "DedupResult",
    "Duplicate",
    "RougeIndex",
    "brute_force_pairs",
    "candidate_recall",
    "dedup",
    "jaccard_bound",
    "lsh_params",
    "lsh_recall",
    "nearest_exact",
    "normalise",
    "normalised_hash",
    "rouge_l",
    "tokens",
]

T = TypeVar("T")

#: Self-Instruct's threshold: a new text with ROUGE-L above this against a kept one is a near-duplicate.
DEFAULT_THRESHOLD = 0.7
#: MinHash permutations: 256 keeps the chance of missing a pair at the Jaccard bound below 0.4%.
DEFAULT_NUM_PERM = 256
#: Fixed seed of the MinHash permutations (results must not depend on anything else).
MINHASH_SEED = 1
_PUNCT_SPACE = re.compile(r"[\W_]+", re.UNICODE)
_TOKEN_RE = re.compile(r"[a-z0-9]+")


def _require_text_extra() -> tuple[Any, Any]:
    try:
        from datasketch import MinHash, MinHashLSH
    except ImportError as exc:
        raise DependencyMissing("datasketch", "text", "near-duplicate search") from exc
    return MinHash, MinHashLSH


def _scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as exc:
        raise DependencyMissing("rouge-score", "text", "ROUGE-L") from exc
    return rouge_scorer


def normalise(text: str) -> str:
    """The text for exact-duplicate detection: NFKC, case-folded, punctuation and whitespace runs -> one space."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _PUNCT_SPACE.sub(" ", folded).strip()


def normalised_hash(text: str) -> str:
    """SHA-256 of :func:`normalise` (hex)."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def tokens(text: str) -> list[str]:
    """rouge-score's default tokens (lowercase ``[a-z0-9]+`` runs, no stemming): what ROUGE-L compares.

    Equal to ``rouge_score.tokenize.tokenize(text, None)``; checked in the tests.
    """
    return _TOKEN_RE.findall(text.lower())


class _Tokenizer:
    """A tokenizer for ``RougeScorer(tokenizer=...)`` that remembers its last texts (pairs repeat a lot)."""

    def __init__(self, size: int = 65536) -> None:
        self._memo: dict[str, list[str]] = {}
        self._size = size

    def tokenize(self, text: str) -> list[str]:
        got = self._memo.get(text)
        if got is None:
            if len(self._memo) >= self._size:
                self._memo.clear()
            got = self._memo[text] = tokens(text)
        return got


_SCORER: Any = None


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F-measure of two texts with ``rouge-score`` (symmetric; 0 when either has no token)."""
    global _SCORER  # one scorer per process: building one per call would dominate the cost
    if _SCORER is None:
        _SCORER = _scorer().RougeScorer(["rougeL"], use_stemmer=False, tokenizer=_Tokenizer())
    return float(_SCORER.score(a, b)["rougeL"].fmeasure)


def jaccard_bound(threshold: float) -> float:
    """The least multiset Jaccard of a pair whose ROUGE-L F-measure is ``threshold``: ``F / (2 - F)``."""
    return threshold / (2.0 - threshold)


def lsh_params(threshold: float, num_perm: int, *, min_recall: float = 0.995) -> tuple[int, int]:
    """``(bands, rows)`` of an LSH index that keeps a pair at the Jaccard bound with ``min_recall``.

    Among the (b, r) with ``b * r <= num_perm`` that reach the recall at ``J = jaccard_bound(threshold)``, the one
    with the most rows per band (fewest false candidates) wins.
    """
    j = jaccard_bound(threshold)
    best: tuple[int, int] | None = None
    for r in range(1, num_perm + 1):
        b = num_perm // r
        recall = 1.0 - (1.0 - j**r) ** b
        if recall >= min_recall:
            best = (b, r)
    if best is None:
        raise ValueError(f"no LSH bands of {num_perm} permutations keep recall {min_recall} at Jaccard {j:.3f}")
    return best


def lsh_recall(threshold: float, bands: int, rows: int) -> float:
    """Probability that a pair exactly at the Jaccard bound of ``threshold`` is an LSH candidate."""
    return 1.0 - (1.0 - jaccard_bound(threshold) ** rows) ** bands


def _shingles(toks: Sequence[str]) -> list[str]:
    """The token multiset as a set: the k-th occurrence of a token is ``"token#k"``."""
    seen: Counter[str] = Counter()
    out = []
    for t in toks:
        seen[t] += 1
        out.append(f"{t}#{seen[t]}")
    return out


class RougeIndex(Generic[T]):
    """Texts indexed for "is there one with ROUGE-L above ``threshold``?", with a MinHash LSH prefilter.

    Args:
        threshold: The ROUGE-L F-measure above which two texts are near-duplicates.
        num_perm: MinHash permutations.
        min_recall: Probability of keeping a pair at the Jaccard bound as an LSH candidate (sets the bands).
        brute_force: Compare with every indexed text (no prefilter); for small pools and for checking.

    Attributes:
        candidates: Pairs the LSH proposed; ``bounded``: pairs the multiset bound let through to the LCS;
        scored: LCS computations.
    """

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        num_perm: int = DEFAULT_NUM_PERM,
        min_recall: float = 0.995,
        brute_force: bool = False,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold: expected a ROUGE-L value in (0, 1], got {threshold}")
        self.threshold = threshold
        self.brute_force = brute_force
        self.num_perm = num_perm
        self._toks: list[tuple[str, ...]] = []
        self._sets: list[frozenset[str]] = []
        self._lens: list[int] = []
        self._items: list[T] = []
        self.candidates = 0
        self.scored = 0
        if not brute_force:
            minhash, lsh = _require_text_extra()
            self.bands, self.rows = lsh_params(threshold, num_perm, min_recall=min_recall)
            self._minhash = minhash
            self._lsh = lsh(num_perm=num_perm, params=(self.bands, self.rows))
            # The permutations depend on the seed only: draw them once, not per text.
            self._perms = minhash(num_perm=num_perm, seed=MINHASH_SEED).permutations
            self._sigs = np.zeros((0, num_perm), dtype=np.uint64)
            j = jaccard_bound(threshold)
            self._est_floor = j - 4.5 * math.sqrt(j * (1.0 - j) / num_perm)
        _scorer()  # fail early, naming the extra

    def __len__(self) -> int:
        return len(self._lens)

    def _signature(self, shingles: Sequence[str]) -> Any:
        m = self._minhash(num_perm=self.num_perm, seed=MINHASH_SEED, permutations=self._perms)
        m.update_batch([s.encode() for s in shingles])
        return m

    def _candidates(self, sig: Any) -> Sequence[int]:
        if self.brute_force:
            return range(len(self._lens))
        found = self._lsh.query(sig)
        self.candidates += len(found)
        return found

    def _prepare(self, text: str) -> tuple[list[str], list[str], Any]:
        toks = tokens(text)
        shingles = _shingles(toks)
        sig = self._signature(shingles) if toks and not self.brute_force else None
        return toks, shingles, sig

    def nearest(self, text: str) -> tuple[float, T | None]:
        """The highest ROUGE-L above ``threshold`` to an indexed text, and that text's item; ``(0.0, None)`` if none.

        Ties go to the earliest indexed text. Only texts that pass the prefilter are scored.
        """
        toks, shingles, sig = self._prepare(text)
        return self._nearest(toks, frozenset(shingles), sig)

    def _nearest(self, toks: list[str], shingles: frozenset[str], sig: Any) -> tuple[float, T | None]:
        if not toks or not self._lens:
            return 0.0, None
        n, sets, lens, limit = len(toks), self._sets, self._lens, self.threshold
        cands = self._candidates(sig)
        if sig is not None and len(cands) > 8:
            # Most LSH candidates of a large pool are far below the bound: drop those whose MinHash estimate of the
            # Jaccard is more than 4.5 standard errors below it (a miss has probability < 1e-5), in one numpy step.
            idx = np.fromiter(cands, dtype=np.int64, count=len(cands))
            est = (self._sigs[idx] == sig.hashvalues).mean(axis=1)
            cands = idx[est >= self._est_floor].tolist()
        # An exact upper bound of the F-measure from the multiset overlap, 2 |A ∩ B| / (m + n), skips most LCS.
        passing = sorted(k for k in cands if 2.0 * len(shingles & sets[k]) > limit * (n + lens[k]))
        best, best_key = 0.0, -1
        for key in passing:
            if 2.0 * len(shingles & sets[key]) <= best * (n + lens[key]):
                continue
            self.scored += 1
            score = _lcs_f(toks, self._toks[key])
            if score > best:
                best, best_key = score, key
        if best > limit:
            return best, self._items[best_key]
        return 0.0, None

    def add(self, text: str, item: T) -> None:
        """Index ``text``, remembered as ``item`` (an id, a record)."""
        toks, shingles, sig = self._prepare(text)
        self._add(toks, frozenset(shingles), sig, item)

    def _add(self, toks: list[str], shingles: frozenset[str], sig: Any, item: T) -> None:
        key = len(self._lens)
        self._toks.append(tuple(toks))
        self._sets.append(shingles)
        self._lens.append(len(toks))
        self._items.append(item)
        if sig is not None:
            self._lsh.insert(key, sig, check_duplication=False)
            if key >= len(self._sigs):
                grown = np.zeros((max(64, 2 * len(self._sigs)), self.num_perm), dtype=self._sigs.dtype)
                grown[: len(self._sigs)] = self._sigs
                self._sigs = grown
            self._sigs[key] = sig.hashvalues

    def add_if_new(self, text: str, item: T) -> tuple[float, T | None]:
        """:meth:`nearest`, then :meth:`add` when nothing is above the threshold; returns what nearest found."""
        toks, shingles, sig = self._prepare(text)
        frozen = frozenset(shingles)
        score, match = self._nearest(toks, frozen, sig)
        if match is None:
            self._add(toks, frozen, sig, item)
        return score, match


def _lcs_f(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F of two token lists, through rouge-score (its ``score`` tokenizes; the tokens are joined back)."""
    # Joining with spaces and re-tokenizing gives the same tokens: each token is one [a-z0-9]+ run.
    return rouge_l(" ".join(a), " ".join(b))


@dataclass(frozen=True)
class Duplicate:
    """A dropped record: its index in the input, the kept one it duplicates, and why.

    Attributes:
        index: Position of the dropped record in the input.
        of: Position of the kept record it duplicates.
        kind: ``exact`` (same normalised text) or ``near`` (ROUGE-L above the threshold).
        score: 1.0 for exact, else the ROUGE-L.
    """

    index: int
    of: int
    kind: str
    score: float


@dataclass
class DedupResult(Generic[T]):
    """What :func:`dedup` kept and dropped.

    Attributes:
        kept: The kept items, in input order.
        kept_index: Their positions in the input.
        duplicates: The dropped ones.
        stats: ``n_in``, ``exact``, ``near``, ``kept``, ``candidates`` (LSH pairs), ``scored`` (LCS computations),
            and the LSH parameters.
    """

    kept: list[T]
    kept_index: list[int]
    duplicates: list[Duplicate]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """``{"n_in", "exact", "near", "kept"}``."""
        return {k: int(self.stats[k]) for k in ("n_in", "exact", "near", "kept")}


def dedup(
    items: Sequence[T],
    text: Callable[[T], str] = str,  # type: ignore[assignment]
    *,
    threshold: float | None = DEFAULT_THRESHOLD,
    num_perm: int = DEFAULT_NUM_PERM,
    brute_force: bool = False,
) -> DedupResult[T]:
    """Remove exact duplicates, then near-duplicates (ROUGE-L above ``threshold``), greedily in input order.

    Args:
        items: Records, strings, anything ``text`` maps to a string.
        text: The text of an item (for records, e.g. ``lambda r: r.prompt``).
        threshold: The ROUGE-L threshold; ``None`` removes exact duplicates only.
        num_perm: MinHash permutations of the prefilter.
        brute_force: Compare every pair (for checking the prefilter).

    Returns:
        The kept items and the duplicates, with counts.
    """
    first_of: dict[str, int] = {}
    duplicates: list[Duplicate] = []
    survivors: list[int] = []
    texts = [text(item) for item in items]
    for i, t in enumerate(texts):
        h = normalised_hash(t)
        if h in first_of:
            duplicates.append(Duplicate(i, first_of[h], "exact", 1.0))
        else:
            first_of[h] = i
            survivors.append(i)
    n_exact = len(duplicates)
    kept_index = survivors
    stats: dict[str, Any] = {}
    if threshold is not None:
        index: RougeIndex[int] = RougeIndex(threshold, num_perm=num_perm, brute_force=brute_force)
        kept_index = []
        for i in survivors:
            score, match = index.add_if_new(texts[i], i)
            if match is None:
                kept_index.append(i)
            else:
                duplicates.append(Duplicate(i, match, "near", round(score, 6)))
        stats = {"candidates": index.candidates, "scored": index.scored}
        if not brute_force:
            stats.update(
                bands=index.bands,
                rows=index.rows,
                num_perm=num_perm,
                recall_at_bound=round(lsh_recall(threshold, index.bands, index.rows), 6),
            )
    duplicates.sort(key=lambda d: d.index)
    stats = {
        "n_in": len(items),
        "exact": n_exact,
        "near": len(duplicates) - n_exact,
        "kept": len(kept_index),
        "threshold": threshold,
        **stats,
    }
    return DedupResult([items[i] for i in kept_index], kept_index, duplicates, stats)


def brute_force_pairs(texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD) -> list[tuple[int, int, float]]:
    """Every pair ``(i, j, score)`` with ``i < j`` and ROUGE-L above ``threshold`` (n²/2 LCS: for checking only).

    The multiset bound (exact) skips pairs that cannot reach the threshold.
    """
    toks = [tokens(t) for t in texts]
    sets = [frozenset(_shingles(t)) for t in toks]
    out = []
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            m, n = len(toks[i]), len(toks[j])
            if not m or not n or 2.0 * len(sets[i] & sets[j]) / (m + n) <= threshold:
                continue
            score = _lcs_f(toks[i], toks[j])
            if score > threshold:
                out.append((i, j, score))
    return out


def nearest_exact(texts: Sequence[str], references: Sequence[str]) -> list[tuple[float, int]]:
    """For each text, its highest ROUGE-L F against ``references`` and that reference's index (exact, no LSH).

    References are visited by decreasing multiset-overlap bound, and the search stops when the bound cannot beat
    the best score found, so most pairs never reach the LCS. Ties go to the lowest index; a text sharing no token
    with any reference gets ``(0.0, -1)``.
    """
    ref_toks = [tokens(r) for r in references]
    ref_sets = [frozenset(_shingles(t)) for t in ref_toks]
    out = []
    for text in texts:
        toks = tokens(text)
        mine = frozenset(_shingles(toks))
        n = len(toks)
        bounds = sorted(
            (
                (2.0 * len(mine & s) / (n + len(t)), j)
                for j, (t, s) in enumerate(zip(ref_toks, ref_sets, strict=True))
                if n and t
            ),
            key=lambda b: (-b[0], b[1]),
        )
        best, best_j = 0.0, -1
        for bound, j in bounds:
            if bound <= best:
                break
            score = _lcs_f(toks, ref_toks[j])
            if score > best or (score == best and best_j > j):
                best, best_j = score, j
        out.append((best, best_j))
    return out


def candidate_recall(texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """How many of the pairs above ``threshold`` (by brute force) the LSH prefilter proposes: its measured recall.

    Every text is indexed, then each pair ``(i, j)`` that brute force finds is checked against the LSH candidates
    of ``j``. For checking and benchmarks (it runs the n²/2 brute force).

    Returns:
        ``{"pairs", "found", "recall", "missed"}`` (``missed``: up to 20 ``(i, j, rouge_l)``).
    """
    index: RougeIndex[int] = RougeIndex(threshold)
    sigs = []
    for i, text in enumerate(texts):
        toks, shingles, sig = index._prepare(text)
        sigs.append(sig)
        index._add(toks, frozenset(shingles), sig, i)
    pairs = brute_force_pairs(texts, threshold)
    missed = [(i, j, s) for i, j, s in pairs if i not in index._lsh.query(sigs[j])]
    found = len(pairs) - len(missed)
    return {"pairs": len(pairs), "found": found, "recall": found / len(pairs) if pairs else 1.0, "missed": missed[:20]}
