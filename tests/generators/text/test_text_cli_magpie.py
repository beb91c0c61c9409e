"""``simgen text magpie --backend transformers --model PATH`` on a tiny random local model saved here (no download)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

torch = pytest.importorskip("torch", reason="Magpie needs the [refine] extra")
transformers = pytest.importorskip("transformers", reason="Magpie needs the [refine] extra")
pytestmark = [pytest.mark.torch, pytest.mark.cli]

from simgen.engine.verify import verify_dataset  # noqa: E402
from simgen.generators.text.cli import register  # noqa: E402

TEMPLATE = (
    "{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama with random weights and a chat template, saved as a local model folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<|start|>", "<|end|>", "user", "assistant", "system"] + [f"w{i}" for i in range(40)]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<|end|>", additional_special_tokens=["<|start|>", "<|end|>"]
    )
    tokenizer.chat_template = TEMPLATE
    config = LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)  # fmt: skip
    with torch.random.fork_rng():  # random weights without touching the global state the tests run under
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).eval()
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def invoke(args: list[str]) -> Result:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """simgen (the test's root app)."""

    register(app)
    return CliRunner().invoke(app, ["text", "magpie", *args], env={"ANTHROPIC_API_KEY": None, "COLUMNS": None})


def test_magpie_on_a_local_model_needs_no_key_and_repeats_exactly(model_dir: Path, tmp_path: Path) -> None:
    args = ["--model", str(model_dir), "-n", "5", "--per-unit", "2", "--max-query-tokens", "6",
            "--max-response-tokens", "6"]  # fmt: skip
    first = invoke([*args, "-o", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    again = invoke([*args, "-o", str(tmp_path / "b")])
    assert again.exit_code == 0, again.output
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "records.jsonl").read_bytes() == (b / "records.jsonl").read_bytes()
    rows = [json.loads(line) for line in (a / "records.jsonl").read_text().splitlines()]
    ds = json.loads((a / "dataset.json").read_text())
    dropped = sum(ds["dropped_by_reason"].values())
    assert rows and len(rows) + dropped == 5 and ds["n_units"] == 3 and ds["method"] == "magpie"
    assert ds["generator_config"]["pre_query_template"] == "<|start|>user\n" and ds["llm"] == {"usage": {}}
    assert ds["packages"]["transformers"] and ds["packages"]["torch"]
    for r in rows:
        assert r["operation"] == "magpie" and r["template"] == "chat-template" and r["model"]
        assert r["template_sha256"] == ds["generator_config"]["chat_template_sha256"] and r["instruction"]
    assert verify_dataset(a).ok


def test_magpie_cannot_run_on_the_hosted_api(model_dir: Path, tmp_path: Path) -> None:
    result = invoke(["--model", str(model_dir), "--backend", "anthropic", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith("error: magpie cannot run on backend 'anthropic': it needs raw access to a model's chat")
    assert "\n" not in line and not (tmp_path / "out").exists()
    missing = invoke(["--model", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")])
    assert missing.exit_code == 2 and "no such model folder" in missing.stderr
