"""text/magpie-v1 with a tiny randomly initialised causal LM and a chat template built here (no download)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="Magpie needs the [refine] extra")
transformers = pytest.importorskip("transformers", reason="Magpie needs the [refine] extra")
pytestmark = pytest.mark.torch

from simgen.generators.text.magpie import Magpie, pre_query_template  # noqa: E402

TEMPLATE = (
    "{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tiny():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<|start|>", "<|end|>", "user", "assistant", "system"] + [f"w{i}" for i in range(40)]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<|end|>", additional_special_tokens=["<|start|>", "<|end|>"]
    )
    tokenizer.chat_template = TEMPLATE
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    with torch.random.fork_rng():  # random weights without touching the global state the tests run under
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).eval()
    return model, tokenizer


def test_pre_query_template_comes_from_the_chat_template(tiny) -> None:
    _, tokenizer = tiny
    assert pre_query_template(tokenizer) == ("<|start|>user\n", "<|end|>\n")
    assert pre_query_template(tokenizer, system="Be brief.")[0] == "<|start|>system\nBe brief.<|end|>\n<|start|>user\n"


def test_records_are_seeded_and_leave_the_global_rng_alone(tiny) -> None:
    model, tokenizer = tiny
    gen = Magpie(model, tokenizer, max_query_tokens=8, max_response_tokens=8)
    state = torch.random.get_rng_state()
    a = gen.produce([], np.random.default_rng(0), n=4)
    assert torch.equal(state, torch.random.get_rng_state())
    b = gen.produce([], np.random.default_rng(0), n=4)
    c = gen.produce([], np.random.default_rng(1), n=4)
    assert [r.line() for r in a.records] == [r.line() for r in b.records]
    assert [r.instruction for r in a.records] != [r.instruction for r in c.records]
    assert len(a.records) + len(a.rejected) == 4 and a.records
    for r in a.records:
        assert r.operation == "magpie" and r.generation == 1 and r.template == "chat-template"
        assert 1 <= len(r.instruction.split()) <= 8 and 1 <= len(r.output.split()) <= 8
        assert "<|" not in r.instruction + r.output  # special tokens stop the turn or are dropped
    assert gen.config()["pre_query_template"] == "<|start|>user\n"


def test_the_query_stops_at_the_end_of_the_user_turn(tiny) -> None:
    model, tokenizer = tiny
    # Greedy decoding: the same query every time.
    gen = Magpie(model, tokenizer, temperature=0, max_query_tokens=8, max_response_tokens=2)
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    assert end in gen._stop_turn
    ids = tokenizer("<|start|>user\n", add_special_tokens=False)["input_ids"]
    expected = []
    with torch.no_grad():  # greedy decoding by hand, without a KV cache
        for _ in range(8):
            nxt = int(model(input_ids=torch.tensor([ids + expected])).logits[0, -1].argmax())
            if nxt == end:
                break
            expected.append(nxt)
    out = gen.produce([], np.random.default_rng(0), n=1)
    want = tokenizer.decode(expected, skip_special_tokens=True).strip()
    if want:
        assert out.records[0].instruction == want
    else:
        assert out.counts["empty_query"] == 1


def test_a_tokenizer_without_chat_template_is_refused(tiny) -> None:
    model, tokenizer = tiny
    from transformers import PreTrainedTokenizerFast

    bare = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer, unk_token="<unk>")
    with pytest.raises(ValueError, match="chat_template"):
        Magpie(model, bare)
