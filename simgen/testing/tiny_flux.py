"""Tiny random diffusion pipelines built from configs, for offline tests and smoke runs.

``build_tiny_flux_controlnet(path)`` writes a complete FLUX ControlNet pipeline folder (transformer,
ControlNet, VAE, CLIP and T5 text encoders with their tokenizers, scheduler) with random weights, about a
megabyte in all. ``simgen refine OUT --model PATH`` loads it through the same
``from_pretrained`` path as the real FLUX.1 weights, so the whole refinement flow can be tested
without a GPU, a network or a 30 GB download. The images it makes are noise: it checks plumbing,
determinism and provenance, never image quality.

``build_tiny_sd_controlnet(path)`` does the same for the Stable Diffusion ControlNet path.

Needs the ``[refine]`` extra (torch, diffusers, transformers, tokenizers).
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

from simgen.errors import DependencyMissing

__all__ = ["build_tiny_flux_controlnet", "build_tiny_sd_controlnet"]

TEXT_DIM = 32


def _require() -> tuple[Any, Any, Any]:
    try:
        import diffusers
        import torch
        import transformers
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise DependencyMissing(exc.name or "diffusers", "refine", "building a tiny test pipeline") from exc
    return torch, diffusers, transformers


def _clip_tokenizer(transformers: Any) -> Any:
    """A CLIP BPE tokenizer with a byte-level vocab of 514 entries and no merges."""
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.json"
        merges_file = Path(tmp) / "merges.txt"
        vocab_file.write_text(json.dumps(vocab))
        merges_file.write_text("#version: 0.2\n")
        return transformers.CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)


def _t5_tokenizer(transformers: Any) -> Any:
    """A T5 fast tokenizer over a small Unigram vocab (characters and a few word pieces)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + c, -3.0) for c in string.ascii_lowercase]
    pieces += [(c, -4.0) for c in string.ascii_letters + string.digits + string.punctuation]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return transformers.T5TokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0,
        model_max_length=512,
    )  # fmt: skip


def _text_encoders(torch: Any, transformers: Any) -> tuple[Any, Any]:
    clip = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            hidden_size=TEXT_DIM, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
            vocab_size=1000, max_position_embeddings=77, projection_dim=TEXT_DIM, bos_token_id=512,
            eos_token_id=513, pad_token_id=1,
        )
    ).eval()  # fmt: skip
    t5 = transformers.T5EncoderModel(
        transformers.T5Config(
            d_model=TEXT_DIM, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
            vocab_size=1000, dropout_rate=0.0,
        )
    ).eval()  # fmt: skip
    return clip, t5


def build_tiny_flux_controlnet(path: str | Path, *, seed: int = 0, union: bool = False) -> Path:
    """Build a tiny random ``FluxControlNetPipeline`` from configs and ``save_pretrained`` it to ``path``.

    The folder holds every component, including ``controlnet/``, so ``simgen refine OUT --model PATH`` works
    without ``--controlnet``. Weights come from ``torch.manual_seed(seed)``: the same seed gives the same
    folder contents.

    Args:
        path: Destination folder (created; existing files are overwritten).
        seed: Seed of the random weights.
        union: Build a union ControlNet (``num_mode=10``, like InstantX/Shakker ControlNet-Union), which takes
            one control mode per control image.

    Returns:
        ``path`` as a ``Path``.
    """
    torch, diffusers, transformers = _require()
    path = Path(path)
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's global RNG
        torch.manual_seed(seed)
        pipe = _flux_pipeline(diffusers, transformers, torch, union)
    path.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(str(path), safe_serialization=True)
    return path


def _flux_pipeline(diffusers: Any, transformers: Any, torch: Any, union: bool) -> Any:
    common = dict(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=TEXT_DIM, pooled_projection_dim=TEXT_DIM, axes_dims_rope=[4, 4, 8],
    )  # fmt: skip
    transformer = diffusers.FluxTransformer2DModel(**common).eval()
    controlnet = diffusers.FluxControlNetModel(**common, num_mode=10 if union else None).eval()
    # Two VAE blocks (4x fewer latent pixels than one block at the same image size) and no mid-block
    # attention keep a 64x64 frame well under a second on a CPU.
    vae = diffusers.AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4, 4), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035, mid_block_add_attention=False,
    ).eval()  # fmt: skip
    clip, t5 = _text_encoders(torch, transformers)
    return diffusers.FluxControlNetPipeline(
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=clip,
        tokenizer=_clip_tokenizer(transformers),
        text_encoder_2=t5,
        tokenizer_2=_t5_tokenizer(transformers),
        transformer=transformer,
        controlnet=controlnet,
    )


def build_tiny_sd_controlnet(path: str | Path, *, seed: int = 0) -> Path:
    """Build a tiny random ``StableDiffusionControlNetPipeline`` from configs and ``save_pretrained`` it.

    Args:
        path: Destination folder (created).
        seed: Seed of the random weights.

    Returns:
        ``path`` as a ``Path``.
    """
    torch, diffusers, transformers = _require()
    path = Path(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = _sd_pipeline(diffusers, transformers, torch)
    path.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(str(path), safe_serialization=True)
    return path


def _sd_pipeline(diffusers: Any, transformers: Any, torch: Any) -> Any:
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM, norm_num_groups=2, attention_head_dim=2,
    ).eval()  # fmt: skip
    controlnet = diffusers.ControlNetModel(
        block_out_channels=(4, 8), layers_per_block=1, in_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), cross_attention_dim=TEXT_DIM,
        conditioning_embedding_out_channels=(4, 8), norm_num_groups=2, attention_head_dim=2,
    ).eval()  # fmt: skip
    vae = diffusers.AutoencoderKL(
        block_out_channels=(4, 8), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    ).eval()  # fmt: skip
    clip, _ = _text_encoders(torch, transformers)
    return diffusers.StableDiffusionControlNetPipeline(
        vae=vae,
        text_encoder=clip,
        tokenizer=_clip_tokenizer(transformers),
        unet=unet,
        controlnet=controlnet,
        scheduler=diffusers.DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
