r"""``text/magpie-v1``: instructions from a local open-weight model's own chat template (Xu et al., 2024, Magpie).

Magpie gives an aligned model only the *pre-query template*, the part of its chat template that opens a user turn
(``<|start_header_id|>user<|end_header_id|>\n\n`` for Llama 3), and lets it write the user's query itself; the
query then goes through the full chat template to get the response. This needs raw access to the model's tokens
and template, which **the hosted Anthropic Messages API does not give** (it accepts messages, not raw text, and
never lets the model write a user turn). So Magpie runs only with a local causal LM through ``transformers``
(extra ``[refine]``: torch and transformers): pass the model and its tokenizer.

- The pre-query template is derived from the tokenizer's ``chat_template``: the template is rendered with one
  user message holding a sentinel, and cut before the sentinel. The token that follows the sentinel (the end of
  the user turn) stops the query.
- Sampling is simgen's own loop (temperature, top-p) with a ``torch.Generator`` seeded from ``rng`` per record:
  no global torch random state is read or changed. Outputs repeat exactly on the same machine and thread count;
  CPU matrix products may round differently elsewhere, which can change a sampled token.
- Drops: ``empty_query``, ``empty_response``.

Records: ``instruction`` = the query, ``output`` = the response, ``operation`` = ``magpie``, ``generation`` 1, the
model's name, and the SHA-256 of the chat template as the template hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from simgen.errors import DependencyMissing
from simgen.generators.text.records import Produced, Rejection, TextRecord, record_id

__all__ = ["Magpie", "pre_query_template"]

_SENTINEL = "SIMGENMAGPIESENTINEL"


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise DependencyMissing("torch", "refine", "Magpie with a local model") from exc
    return torch


def pre_query_template(tokenizer: Any, system: str | None = None) -> tuple[str, str]:
    """``(pre_query, after_query)``: the chat template's text before and after a user message.

    Raises:
        ValueError: The tokenizer has no chat template, or its template does not show the user message verbatim.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("Magpie needs a tokenizer with a chat_template (an instruction-tuned model's tokenizer)")
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": _SENTINEL})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    if text.count(_SENTINEL) != 1:
        raise ValueError("the chat template does not render the user message verbatim; Magpie cannot split it")
    before, after = text.split(_SENTINEL)
    return before, after


@dataclass
class Magpie:
    """The ``text/magpie-v1`` generator (see the module docstring).

    Args:
        model: A ``transformers`` causal LM (``AutoModelForCausalLM``), in eval mode.
        tokenizer: Its tokenizer, with a ``chat_template``.
        system: An optional system prompt rendered before the user turn.
        max_query_tokens: The longest query.
        max_response_tokens: The longest response.
        temperature: Sampling temperature (0: greedy).
        top_p: Nucleus sampling mass.
    """

    name: ClassVar[str] = "text/magpie-v1"
    uses_llm: ClassVar[bool] = False  # a local model, not the hosted API

    model: Any
    tokenizer: Any
    system: str | None = None
    max_query_tokens: int = 64
    max_response_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.max_query_tokens < 1 or self.max_response_tokens < 1:
            raise ValueError("Magpie: max_query_tokens and max_response_tokens must be >= 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"Magpie: temperature >= 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        self._pre, after = pre_query_template(self.tokenizer, self.system)
        ids = self.tokenizer(after, add_special_tokens=False)["input_ids"]
        self._stop_turn = {ids[0]} if ids else set()
        eos = self.tokenizer.eos_token_id
        self._stop = {eos} if eos is not None else set()
        self._stop_turn |= self._stop
        self._template_sha256 = hashlib.sha256(str(self.tokenizer.chat_template).encode("utf-8")).hexdigest()

    @property
    def model_name(self) -> str:
        """The model's name or path, else its class name."""
        return str(getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__)

    def config(self) -> dict[str, Any]:
        """Settings, the pre-query template and the chat template's hash, for ``dataset.json``."""
        return {
            "generator": self.name,
            "model": self.model_name,
            "pre_query_template": self._pre,
            "chat_template_sha256": self._template_sha256,
            "system": self.system,
            "max_query_tokens": self.max_query_tokens,
            "max_response_tokens": self.max_response_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }

    def _next(self, logits: Any, gen: Any) -> int:
        torch = _torch()
        if self.temperature == 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.double() / self.temperature, dim=-1)
        if self.top_p < 1:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < self.top_p  # always keeps the top token
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs, 1, generator=gen))

    def _sample(self, prompt_ids: list[int], stop: set[int], max_new: int, gen: Any) -> list[int]:
        torch = _torch()
        out: list[int] = []
        past = None
        ids = torch.tensor([prompt_ids], dtype=torch.long)
        with torch.no_grad():
            for _ in range(max_new):
                res = self.model(input_ids=ids, past_key_values=past, use_cache=True)
                past = res.past_key_values
                token = self._next(res.logits[0, -1].float(), gen)
                if token in stop:
                    break
                out.append(token)
                ids = torch.tensor([[token]], dtype=torch.long)
        return out

    def produce(
        self, units: Sequence[Any], rng: np.random.Generator, client: Any = None, *, n: int | None = None
    ) -> Produced:
        """``n`` query/response records sampled from the local model (``units`` and ``client`` are not used).

        Raises:
            ValueError: No ``n``.
        """
        if n is None or n < 1:
            raise ValueError(f"magpie: n must be a positive number of records, got {n!r}")
        torch = _torch()
        out = Produced(stats={"samples": n})
        pre_ids = self.tokenizer(self._pre, add_special_tokens=False)["input_ids"]
        for _ in range(n):
            seed = int(rng.integers(0, 2**63))
            gen = torch.Generator(device="cpu").manual_seed(seed)
            query = self.tokenizer.decode(
                self._sample(pre_ids, self._stop_turn, self.max_query_tokens, gen), skip_special_tokens=True
            ).strip()
            if not query:
                out.rejected.append(Rejection("empty_query", detail={"seed": seed}))
                continue
            prompt = self.tokenizer.apply_chat_template(
                [
                    *([{"role": "system", "content": self.system}] if self.system else []),
                    {"role": "user", "content": query},
                ],
                tokenize=False,
                add_generation_prompt=True,
            )
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            response = self.tokenizer.decode(
                self._sample(prompt_ids, self._stop_turn, self.max_response_tokens, gen), skip_special_tokens=True
            ).strip()
            if not response:
                out.rejected.append(Rejection("empty_response", query, detail={"seed": seed}))
                continue
            out.records.append(
                TextRecord(
                    id=record_id("mp", self.name, self.model_name, query, response),
                    instruction=query,
                    input="",
                    output=response,
                    operation="magpie",
                    generator=self.name,
                    model=self.model_name,
                    template="chat-template",
                    template_sha256=self._template_sha256,
                    origin="synthetic",
                    generation=1,
                    meta={"seed": seed, "pre_query_template": self._pre},
                )
            )
        return out
