"""``simgen mix``: a real-data anchor against model collapse, for images (COCO), tables and text (JSONL).

Refitting a generator on its own output, generation after generation, loses the tails of the real data and
then its shape (Shumailov et al. 2024); keeping real data in every generation's training set prevents it
(Gerstgrasser et al. 2024). :func:`mix` makes such a training set: ``real_fraction`` of it real records, the
rest synthetic, each record keeping its origin, its generation and the source it came from. A mix below
:data:`DEFAULT_MIN_REAL_FRACTION` (or the ``min_real_fraction`` given) is refused unless
``allow_below_minimum``.

>>> from simgen.mix import mix
>>> mix("real/", "out/dataset", "mixed/", real_fraction=0.1, seed=1)  # doctest: +SKIP

See :mod:`simgen.mix.coco`, :mod:`simgen.mix.tables` and :mod:`simgen.mix.text` for each output's layout and
where the provenance goes; :mod:`simgen.mix.core` for the counts, the choice and ``dataset.json``.
"""

from __future__ import annotations

from pathlib import Path

from simgen.mix.core import (
    DEFAULT_MIN_REAL_FRACTION,
    MixCounts,
    MixError,
    MixResult,
    build_folder,
    check_minimum,
    plan_counts,
    select,
    write_dataset_record,
    write_manifest,
)

__all__ = [
    "DEFAULT_MIN_REAL_FRACTION",
    "MODALITIES",
    "MixCounts",
    "MixError",
    "MixResult",
    "detect_modality",
    "mix",
    "plan_counts",
    "select",
]

MODALITIES = ("images", "tables", "text")
RECORD_KEYS = {"images": "image", "tables": "row", "text": "record"}


def detect_modality(path: str | Path) -> str:
    """``images``, ``tables`` or ``text``: what a simgen dataset says it is, else what the files are.

    Raises:
        MixError: ``path`` does not exist or holds nothing mixable.
    """
    from simgen.engine.files import DATASET_KEYS, simgen_record
    from simgen.mix.coco import coco_file
    from simgen.mix.tables import table_file
    from simgen.mix.text import records_file

    p = Path(path)
    if not p.exists():
        raise MixError(f"{p}: no such file or folder")
    meta = simgen_record(p / "dataset.json", DATASET_KEYS) if p.is_dir() else None
    if meta is not None and meta.get("modality", "images") in MODALITIES:
        return str(meta.get("modality", "images"))
    found = [m for m, probe in (("tables", table_file), ("text", records_file), ("images", coco_file)) if probe(p)]
    if not found:
        raise MixError(
            f"{p}: nothing to mix here; expected a COCO .json (or a folder with one), a .csv/.parquet table "
            "(or a folder with table.csv), or a .jsonl file (or a folder with records.jsonl)"
        )
    return found[0]


def mix(
    real: str | Path,
    synthetic: str | Path,
    out: str | Path,
    *,
    real_fraction: float = 0.1,
    seed: int = 0,
    total: int | None = None,
    min_real_fraction: float = DEFAULT_MIN_REAL_FRACTION,
    allow_below_minimum: bool = False,
    synthetic_generation: int = 0,
    overwrite: bool = False,
) -> MixResult:
    """Mix ``real_fraction`` of REAL records with synthetic ones into a new dataset ``out``.

    Args:
        real: The real data: a COCO JSON or a folder holding one, a CSV/Parquet table or a simgen table
            dataset, a JSONL file or a folder holding ``records.jsonl``.
        synthetic: The synthetic data, of the same modality (a simgen dataset, or a previous mix).
        out: The new dataset's folder (must not hold anything, unless ``overwrite`` and a simgen dataset).
        real_fraction: The share of real records, in [0, 1] (the one achieved is never lower).
        seed: Chooses the records and their order.
        total: Records in the mix; default every synthetic record and the real ones the fraction needs.
        min_real_fraction: The least ``real_fraction`` allowed.
        allow_below_minimum: Mix even below ``min_real_fraction``.
        synthetic_generation: The generation of synthetic records that record none.
        overwrite: Replace a previous simgen dataset in ``out``.

    Returns:
        What was written.

    Raises:
        MixError: A fraction out of range or below the minimum, inputs of different modalities or columns, too
            few records, records whose provenance contradicts their side.
        OutputExistsError: ``out`` holds something.
    """
    check_minimum(real_fraction, min_real_fraction, allow_below_minimum)
    if seed < 0:
        raise MixError(f"seed must be >= 0, got {seed}")
    if synthetic_generation < 0:
        raise MixError(f"synthetic_generation must be >= 0, got {synthetic_generation}")
    real_p, syn_p, out_p = Path(real), Path(synthetic), Path(out)
    modality = detect_modality(real_p)
    other = detect_modality(syn_p)
    if other != modality:
        raise MixError(f"REAL ({real_p}) holds {modality} and SYN ({syn_p}) holds {other}; mix the same kind")
    src_real, src_syn = _read(modality, real_p, syn_p, synthetic_generation)
    counts = plan_counts(src_real.n, src_syn.n, real_fraction, total)
    settings = {
        "real_fraction_requested": real_fraction,
        "min_real_fraction": min_real_fraction,
        "allowed_below_minimum": bool(allow_below_minimum and real_fraction < min_real_fraction),
        "seed": seed,
        "total": total,
    }
    key = RECORD_KEYS[modality]
    with build_folder(out_p, overwrite) as root:
        checksums, entries, files, packages = _write(modality, root, src_real, src_syn, counts, seed)
        chain = write_manifest(root, key, entries)
        dataset = write_dataset_record(
            root,
            modality=modality,
            record_key=key,
            sources=[(src_real, counts.n_real), (src_syn, counts.n_synthetic)],
            origins=[e["origin"] for e in entries],
            generations=[e["generation"] for e in entries],
            settings=settings,
            files=files,
            checksums=checksums,
            chain=chain,
            packages=packages,
        )
    return MixResult(out_p, modality, counts, dataset)


def _read(modality: str, real: Path, syn: Path, generation: int):  # type: ignore[no-untyped-def]
    if modality == "images":
        from simgen.mix.coco import read_coco_source as read
    elif modality == "tables":
        from simgen.mix.tables import read_table_source as read  # type: ignore[assignment]
    else:
        from simgen.mix.text import read_text_source as read  # type: ignore[assignment]
    return read(real, "real"), read(syn, "synthetic", default_generation=generation)


def _write(modality: str, root: Path, real, syn, counts: MixCounts, seed: int):  # type: ignore[no-untyped-def]
    if modality == "images":
        from simgen.mix import coco

        checksums, entries = coco.mix_coco(root, real, syn, counts, seed)
        return checksums, entries, coco.coco_files(), coco.PACKAGES
    if modality == "tables":
        from simgen.mix import tables

        table, entries = tables.mix_frames(real, syn, counts, seed)
        return tables.write_table(root, table), entries, tables.table_files(), tables.PACKAGES
    from simgen.mix import text

    checksums, entries = text.mix_text(root, real, syn, counts, seed)
    return checksums, entries, text.text_files(), text.PACKAGES
