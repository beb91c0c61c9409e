"""What every kind of mix shares: how many records of each side, which ones, their provenance, the output folder.

A mix takes ``n_real`` records of REAL and ``n_synthetic`` of SYN (:func:`plan_counts`), chosen without
replacement and shuffled together by the seed (:func:`select`), so the same inputs and seed give the same
bytes. Every output record keeps where it came from: its ``origin`` (``real`` or ``synthetic``), its
``generation`` (0 for real data and for data made from a spec or fitted on real data; ``k`` for data made by a
model fitted on generation ``k - 1``), the side it was taken from, the source's hash and its index there.

The output folder is built next to ``OUT`` under a hidden temporary name and renamed into place when complete
(:func:`build_folder`): a mix that fails or is killed leaves no half-written ``OUT``. ``dataset.json`` records
the sources and their hashes, the fractions asked for and achieved, and the manifest's chain head; the manifest
has one hash-chained line per record (:mod:`simgen.provenance.chain`), so ``simgen verify OUT`` checks it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import secrets
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import simgen
from simgen.errors import SimgenError
from simgen.io import atomic_open, atomic_write_json, sha256_file
from simgen.provenance.chain import ChainWriter

__all__ = [
    "DEFAULT_MIN_REAL_FRACTION",
    "MixCounts",
    "MixError",
    "Source",
    "build_folder",
    "check_minimum",
    "plan_counts",
    "resolve_provenance",
    "select",
]

#: The least real fraction a mix may have unless told otherwise: below it, refitting on the mix generation after
#: generation drifts away from the real data (Shumailov et al. 2024; Gerstgrasser et al. 2024).
DEFAULT_MIN_REAL_FRACTION = 0.1
ORIGINS = ("real", "synthetic")
ROLES = ("real", "synthetic")
DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.jsonl"
#: Characters of a source's SHA-256 that tag its records (``dataset.json`` maps them to the whole hash).
SOURCE_ID_CHARS = 16


class MixError(SimgenError, ValueError):
    """A mix cannot be made: a fraction out of range or below the minimum, inputs that do not match, too few records."""


@dataclass(frozen=True)
class MixCounts:
    """How many records a mix takes from each side.

    Attributes:
        n_real: Records taken from REAL.
        n_synthetic: Records taken from SYN.
    """

    n_real: int
    n_synthetic: int

    @property
    def total(self) -> int:
        """Records in the mix."""
        return self.n_real + self.n_synthetic

    @property
    def real_fraction(self) -> float:
        """The share of records taken from REAL."""
        return self.n_real / self.total if self.total else 0.0


def plan_counts(
    available_real: int, available_synthetic: int, real_fraction: float, total: int | None = None
) -> MixCounts:
    """How many records of each side make a mix with at least ``real_fraction`` real records.

    With ``total``: ``ceil(real_fraction * total)`` real records and the rest synthetic. Without: every synthetic
    record and as many real ones as the fraction needs; when REAL is too small for that, every real record and as
    many synthetic ones as keep the fraction. Rounding always favours real records, so the fraction achieved is
    never below the one asked for.

    Raises:
        MixError: A fraction outside [0, 1], a total below 1, or a side with too few records.
    """
    if not (isinstance(real_fraction, (int, float)) and 0.0 <= real_fraction <= 1.0):
        raise MixError(f"real_fraction must be between 0 and 1, got {real_fraction}")
    eps = 1e-9  # 0.1 * 30 is 3.0000000000000004: it must not round up to 4
    if total is not None:
        if total < 1:
            raise MixError(f"total must be >= 1, got {total}")
        n_real = math.ceil(real_fraction * total - eps)
        n_syn = total - n_real
        for side, need, have in (("REAL", n_real, available_real), ("SYN", n_syn, available_synthetic)):
            if need > have:
                raise MixError(
                    f"a mix of {total} records with real fraction {real_fraction:g} needs {need} records of {side}, "
                    f"which has {have}; lower --total"
                )
        return MixCounts(n_real, n_syn)
    if real_fraction >= 1.0:
        counts = MixCounts(available_real, 0)
    elif real_fraction <= 0.0:
        counts = MixCounts(0, available_synthetic)
    else:
        n_syn = available_synthetic
        n_real = math.ceil(real_fraction * n_syn / (1.0 - real_fraction) - eps)
        if n_real > available_real:
            n_real = available_real
            n_syn = math.floor(n_real * (1.0 - real_fraction) / real_fraction + eps)
        counts = MixCounts(n_real, n_syn)
    if counts.total == 0:
        raise MixError(f"nothing to mix: REAL has {available_real} records and SYN {available_synthetic}")
    if real_fraction > 0 and counts.n_real == 0:
        raise MixError("REAL has no records; a mix with a real fraction needs some")
    return counts


def check_minimum(real_fraction: float, minimum: float, allow_below: bool) -> None:
    """Refuse a real fraction below the minimum, unless ``allow_below``.

    Raises:
        MixError: ``minimum`` outside [0, 1], or ``real_fraction < minimum`` without ``allow_below``.
    """
    if not 0.0 <= minimum <= 1.0:
        raise MixError(f"min_real_fraction must be between 0 and 1, got {minimum}")
    if real_fraction < minimum and not allow_below:
        raise MixError(
            f"real fraction {real_fraction:g} is below the minimum {minimum:g}: refitting on mostly synthetic data "
            "drifts away from the real data generation after generation (model collapse); pass "
            "--allow-below-minimum to mix it anyway"
        )


def select(counts: MixCounts, available_real: int, available_synthetic: int, seed: int) -> list[tuple[str, int]]:
    """The records of the mix in output order: ``(role, index in that side)``, chosen and shuffled by the seed.

    Each side's choice and the shuffle draw from their own streams of ``seed``, so the real records chosen do
    not depend on how many synthetic ones there are.
    """
    from simgen.sampling import rng_for

    real = np.sort(rng_for(seed, "mix", "real").choice(available_real, counts.n_real, replace=False))
    syn = np.sort(rng_for(seed, "mix", "synthetic").choice(available_synthetic, counts.n_synthetic, replace=False))
    picks = [("real", int(i)) for i in real] + [("synthetic", int(i)) for i in syn]
    order = rng_for(seed, "mix", "order").permutation(len(picks))
    return [picks[int(j)] for j in order]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def resolve_provenance(
    role: str,
    origins: Sequence[Any],
    generations: Sequence[Any],
    *,
    default_generation: int = 0,
    where: str,
    label: str = "record",
) -> tuple[list[str], list[int]]:
    """Every record's origin and generation: what the record says, else what its side implies.

    REAL records are real, generation 0; one that says otherwise is refused. SYN records keep what they record
    (a previous mix holds real records too), else ``synthetic`` and ``default_generation``.

    Args:
        role: ``real`` or ``synthetic``: the side the records come from.
        origins: Each record's own ``origin``, or None.
        generations: Each record's own ``generation``, or None.
        default_generation: The generation of SYN records that record none.
        where: The source, for messages.
        label: What a record is called in messages (``image``, ``row``).

    Raises:
        MixError: An unknown origin or a bad generation, or a REAL record that is not real.
    """
    out_o: list[str] = []
    out_g: list[int] = []
    for i, (o, g) in enumerate(zip(origins, generations, strict=True)):
        if o is not None and (not isinstance(o, str) or o not in ORIGINS):
            raise MixError(f"{where}: {label} {i}: origin must be 'real' or 'synthetic', got {o!r}")
        if g is not None and not (_is_int(g) and g >= 0):
            raise MixError(f"{where}: {label} {i}: generation must be an integer >= 0, got {g!r}")
        if role == "real":
            if o == "synthetic":
                raise MixError(f"{where}: {label} {i} has origin 'synthetic'; REAL must hold real records only")
            out_o.append("real")
            out_g.append(0)
        else:
            out_o.append(o or "synthetic")
            out_g.append(int(g) if g is not None else (0 if o == "real" else default_generation))
    return out_o, out_g


@dataclass
class Source:
    """One input of a mix.

    Attributes:
        role: ``real`` or ``synthetic``.
        path: The path given.
        kind: ``coco``, ``table`` or ``jsonl``.
        main_file: The file whose hash names the source (the COCO JSON, the table, the JSONL).
        sha256: That file's SHA-256.
        origins: Every record's origin (see :func:`resolve_provenance`).
        generations: Every record's generation.
        simgen: The source's own ``dataset.json`` facts when it is a simgen dataset (spec hash, seed, modality).
    """

    role: str
    path: Path
    kind: str
    main_file: Path
    sha256: str
    origins: list[str] = field(default_factory=list)
    generations: list[int] = field(default_factory=list)
    simgen: dict[str, Any] | None = None

    @property
    def n(self) -> int:
        """Records available."""
        return len(self.origins)

    @property
    def id(self) -> str:
        """The short id its records carry: the first :data:`SOURCE_ID_CHARS` hex digits of its hash."""
        return self.sha256[:SOURCE_ID_CHARS]

    def describe(self, taken: int) -> dict[str, Any]:
        """The source's entry in ``dataset.json``'s ``mix.sources``."""
        out: dict[str, Any] = {
            "role": self.role,
            "id": self.id,
            "path": str(self.path),
            "kind": self.kind,
            "file": self.main_file.name,
            "sha256": self.sha256,
            "available": self.n,
            "taken": taken,
        }
        if self.simgen is not None:
            out["simgen"] = self.simgen
        return out


def simgen_facts(folder: Path) -> dict[str, Any] | None:
    """The provenance a simgen dataset in ``folder`` records (None for a folder that is not one)."""
    from simgen.engine.files import DATASET_KEYS, simgen_record

    meta = simgen_record(folder / DATASET_FILE, DATASET_KEYS)
    if meta is None:
        return None
    keys = ("spec_sha256", "seed", "modality", "generator", "simgen_version")
    facts = {k: meta[k] for k in keys if k in meta}
    facts["dataset_sha256"] = sha256_file(folder / DATASET_FILE)
    if isinstance(meta.get("mix"), dict):
        facts["mix"] = True
    return facts


def manifest_provenance(folder: Path, record_key: str) -> dict[int, tuple[Any, Any, dict[str, Any]]]:
    """``record index -> (origin, generation, entry)`` from a simgen dataset's manifest (empty without one)."""
    from simgen.engine.files import manifest_entries

    path = folder / MANIFEST_FILE
    if not path.is_file():
        return {}
    out: dict[int, tuple[Any, Any, dict[str, Any]]] = {}
    for _, entry in manifest_entries(path, record_key):
        if isinstance(entry, dict):
            out[entry[record_key]] = (entry.get("origin"), entry.get("generation"), entry)
    return out


# --- the output -------------------------------------------------------------------------------------------


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``OUT`` that is a file, or holds anything but (with ``overwrite``) a previous simgen dataset.

    Raises:
        OutputExistsError: Naming the folder and what to do.
    """
    from simgen.engine.run import check_out as check_run_out

    check_run_out(out, resume=False, overwrite=overwrite, spec_file=None)


@contextmanager
def build_folder(out: Path, overwrite: bool) -> Iterator[Path]:
    """A hidden temporary folder beside ``out`` to build the mix in; renamed to ``out`` when the block succeeds.

    On an exception the temporary folder is removed and ``out`` is as it was. With ``overwrite``, a previous
    simgen dataset in ``out`` (only files simgen's records list; :func:`check_out` refuses anything else) is
    removed once the new one is complete.
    """
    check_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.mix-{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            from simgen.engine.files import remove_owned, scan_folder

            if any(out.iterdir()):
                check_out(out, overwrite)  # scanned again: a file added meanwhile is never deleted
                remove_owned(scan_folder(out))
            out.rmdir()  # OSError if anything foreign is left: then nothing is replaced
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise


def write_manifest(root: Path, record_key: str, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Write the hash-chained ``manifest.jsonl`` (one line per record, in order); return its chain record."""
    chain = ChainWriter()
    with atomic_open(root / MANIFEST_FILE, "w") as fh:
        for i, entry in enumerate(entries):
            fh.write(chain.line({record_key: i, **entry}))
    return chain.record()


def mix_digest(definition: dict[str, Any]) -> str:
    """SHA-256 of what defines a mix (its sources' hashes, fraction, seed, counts): its ``spec_sha256``."""
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def write_dataset_record(
    root: Path,
    *,
    modality: str,
    record_key: str,
    sources: Sequence[tuple[Source, int]],
    origins: Sequence[str],
    generations: Sequence[int],
    settings: dict[str, Any],
    files: dict[str, str],
    checksums: dict[str, str],
    chain: dict[str, Any],
    packages: Sequence[str],
) -> dict[str, Any]:
    """Write ``dataset.json`` last (atomically): provenance, the mix section, the files and their checksums."""
    from simgen.engine.run import package_versions

    described = [s.describe(taken) for s, taken in sources]
    n = len(origins)
    n_real = sum(1 for o in origins if o == "real")
    definition = {"modality": modality, "sources": [(d["role"], d["sha256"]) for d in described], **settings}
    mix = {
        **settings,
        "real_fraction_achieved": round(n_real / n, 6) if n else 0.0,
        "n_real": n_real,
        "n_synthetic": n - n_real,
        "generations": {str(g): c for g, c in sorted(Counter(generations).items())},
        "sources": described,
    }
    dataset = {
        "simgen_version": simgen.__version__,
        "spec_sha256": mix_digest(definition),
        "seed": settings["seed"],
        "modality": modality,
        "record_key": record_key,
        f"n_{record_key}s": n,
        "mix": mix,
        "files": {**files, "manifest": MANIFEST_FILE},
        "manifest_chain": chain,
        "python": platform.python_version(),
        "packages": package_versions(packages),
        "checksums": {**checksums, MANIFEST_FILE: sha256_file(root / MANIFEST_FILE)},
    }
    atomic_write_json(root / DATASET_FILE, dataset)
    return dataset


@dataclass
class MixResult:
    """What a mix wrote.

    Attributes:
        out: The dataset folder.
        modality: ``images``, ``tables`` or ``text``.
        counts: Records taken from each side.
        dataset: The ``dataset.json`` record.
    """

    out: Path
    modality: str
    counts: MixCounts
    dataset: dict[str, Any]

    @property
    def real_fraction(self) -> float:
        """The real fraction achieved (by origin)."""
        return float(self.dataset["mix"]["real_fraction_achieved"])
