"""Provenance of every dataset: a hash-chained manifest (:mod:`.chain`) and optional C2PA signing (:mod:`.c2pa`).

The chain needs nothing beyond the standard library. Signing needs the ``[provenance]`` extra (``c2pa-python``);
it is imported only when a dataset is signed or a signature is read.
"""

from __future__ import annotations

from simgen.provenance.chain import CHAIN_ALGORITHM, CHAIN_FIELD, ChainBreak, ChainWriter, check_chain, rechain

__all__ = ["CHAIN_ALGORITHM", "CHAIN_FIELD", "ChainBreak", "ChainWriter", "check_chain", "rechain"]
