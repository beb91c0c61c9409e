"""Text generators: Self-Instruct, Evol-Instruct, a critic filter, scenario captions and Magpie, on the shared core.

Every generator follows one contract (:class:`~simgen.generators.text.records.TextGenerator`):
``produce(units, rng, client, n=...) -> Produced``, a pure function of a shard's inputs, its ``rng`` and the
(cached) LLM responses. Records are :class:`~simgen.generators.text.records.TextRecord` JSONL lines with their
lineage, provenance, critic verdict, origin and generation.

Nothing heavy is imported here: the generators, ``rouge-score``, ``datasketch`` and scikit-learn load on first use
(extra ``[text]``; the LLM modes also need ``[llm]``; Magpie runs a local model and needs ``[refine]``).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Registered names -> ``"module:Class"``, for the generator registry.
TEXT_GENERATORS: dict[str, str] = {
    "text/self-instruct-v1": "simgen.generators.text.self_instruct:SelfInstruct",
    "text/evol-instruct-v1": "simgen.generators.text.evol_instruct:EvolInstruct",
    "text/critic-filter-v1": "simgen.generators.text.critic:CriticFilter",
    "text/scenario-captions-v1": "simgen.generators.text.captions:ScenarioCaptions",
    "text/magpie-v1": "simgen.generators.text.magpie:Magpie",
}

_EXPORTS = {
    "SelfInstruct": "self_instruct",
    "EvolInstruct": "evol_instruct",
    "CriticFilter": "critic",
    "ScenarioCaptions": "captions",
    "Magpie": "magpie",
    "read_frame_facts": "captions",
    "template_caption": "captions",
    "TextRecord": "records",
    "CriticVerdict": "records",
    "Produced": "records",
    "Rejection": "records",
    "TextGenerator": "records",
    "load_seeds": "records",
    "read_records": "records",
    "records_jsonl": "records",
    "dedup": "dedup",
    "rouge_l": "dedup",
    "RougeIndex": "dedup",
    "get_template": "prompts",
}

__all__ = sorted([*_EXPORTS, "TEXT_GENERATORS"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simgen.generators.text' has no attribute {name!r}")
    return getattr(importlib.import_module(f"simgen.generators.text.{module}"), name)
