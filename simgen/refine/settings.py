"""Refinement settings, their validation, per-frame seeds and prompts. No torch here."""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from simgen.errors import ModelNotFound, RefineSettingsError, did_you_mean
from simgen.refine.controls import parse_control
from simgen.sampling import rng_for

__all__ = [
    "DEFAULT_CONTROLNETS",
    "DEFAULT_MODELS",
    "PROMPT_FIELDS",
    "UNION_MODES",
    "ModelNotFound",
    "RefineSettings",
    "RefineSettingsError",
    "frame_seed",
    "render_prompt",
]

# Hub ids used when --model / --controlnet are not given.
DEFAULT_MODELS = {"flux": "black-forest-labs/FLUX.1-dev", "sd": "stable-diffusion-v1-5/stable-diffusion-v1-5"}
DEFAULT_CONTROLNETS: dict[str, dict[tuple[str, ...], tuple[str, ...]]] = {
    "flux": {
        ("canny",): ("InstantX/FLUX.1-dev-Controlnet-Canny",),
        ("depth",): ("Shakker-Labs/FLUX.1-dev-ControlNet-Depth",),
        ("canny", "depth"): ("Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro",),
        ("depth", "canny"): ("Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro",),
    },
    "sd": {
        ("canny",): ("lllyasviel/control_v11p_sd15_canny",),
        ("depth",): ("lllyasviel/control_v11f1p_sd15_depth",),
        ("canny", "depth"): ("lllyasviel/control_v11p_sd15_canny", "lllyasviel/control_v11f1p_sd15_depth"),
        ("depth", "canny"): ("lllyasviel/control_v11f1p_sd15_depth", "lllyasviel/control_v11p_sd15_canny"),
    },
}
# Control modes of the InstantX / Shakker-Labs FLUX ControlNet-Union models.
UNION_MODES = {"canny": 0, "tile": 1, "depth": 2, "blur": 3, "pose": 4, "gray": 5, "lq": 6}
PROMPT_FIELDS = ("categories", "category_list", "n_objects", "frame", "scene")
PIPELINES = ("auto", "flux", "sd")
DEVICES = ("auto", "cuda", "cpu")
DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass(frozen=True)
class RefineSettings:
    """Everything that shapes the refined images; recorded in dataset.json and the manifest.

    Attributes:
        model: Base model: a hub id or a local folder (None: the pipeline's default, FLUX.1-dev).
        controlnet: ControlNets, hub ids or local folders: one per control, or one union ControlNet for all.
            Empty: the model folder's own ``controlnet/`` if it has one, else the default for the control.
        control: Control names, e.g. ``("canny",)`` or ``("canny", "depth")``.
        pipeline: ``flux``, ``sd`` or ``auto`` (from the model's ``model_index.json``; FLUX when unknown).
        strength: How far from the render to go, in (0, 1]; 1 generates from the controls alone
            (``FluxControlNetPipeline``), below 1 refines the render (``FluxControlNetImg2ImgPipeline``).
        steps: Denoising steps (img2img runs about ``steps * strength`` of them).
        guidance: Guidance scale (FLUX.1-dev's distilled guidance; classifier-free guidance for SD).
        controlnet_scale: ControlNet conditioning scale, per ControlNet.
        seed: Refinement seed; frame i's generator is seeded from ``(seed, i)``.
        prompt_template: ``str.format`` template; fields: ``categories`` ("a duck, two mugs and a lego"),
            ``category_list`` ("duck, mug, lego"), ``n_objects``, ``frame``, ``scene``.
        batch_size: Frames per pipeline call.
        device: ``auto`` (CUDA when available), ``cuda`` or ``cpu``.
        dtype: ``auto`` (bfloat16 on CUDA for FLUX, float16 on CUDA for SD, float32 on CPU) or a torch dtype name.
        cpu_offload: Keep idle sub-models in CPU memory (``enable_model_cpu_offload``); needs CUDA.
        max_sequence_length: T5 prompt tokens (FLUX only; 512 for FLUX.1-dev).
        canny_low: Canny lower threshold of the control image.
        canny_high: Canny upper threshold of the control image.
    """

    model: str | None = None
    controlnet: tuple[str, ...] = ()
    control: tuple[str, ...] = ("canny",)
    pipeline: str = "auto"
    strength: float = 0.5
    steps: int = 28
    guidance: float = 3.5
    controlnet_scale: float = 0.6
    seed: int = 0
    prompt_template: str = "a photo of {categories} on a table"
    batch_size: int = 1
    device: str = "auto"
    dtype: str = "auto"
    cpu_offload: bool = False
    max_sequence_length: int = 512
    canny_low: int = 100
    canny_high: int = 200

    def __post_init__(self) -> None:
        # Accept "canny+depth" or a sequence for control, and a single string for controlnet.
        text = self.control if isinstance(self.control, str) else "+".join(self.control)
        try:
            control = parse_control(text)
        except ValueError:
            raise RefineSettingsError(f"--control: expected canny, depth or canny+depth, got '{text}'") from None
        object.__setattr__(self, "control", control)
        if isinstance(self.controlnet, str):
            object.__setattr__(self, "controlnet", (self.controlnet,))
        object.__setattr__(self, "controlnet", tuple(str(c) for c in self.controlnet))
        self.check()

    def check(self) -> None:
        """Validate every setting, naming the option, what was expected and what was received.

        Raises:
            RefineSettingsError: The first invalid setting.
        """
        if self.pipeline not in PIPELINES:
            raise RefineSettingsError(
                f"--pipeline: expected one of {', '.join(PIPELINES)}, got '{self.pipeline}'"
                + did_you_mean(self.pipeline, PIPELINES)
            )
        if self.device not in DEVICES:
            raise RefineSettingsError(
                f"--device: expected one of {', '.join(DEVICES)}, got '{self.device}'"
                + did_you_mean(self.device, DEVICES)
            )
        if self.dtype not in DTYPES:
            raise RefineSettingsError(
                f"--dtype: expected one of {', '.join(DTYPES)}, got '{self.dtype}'" + did_you_mean(self.dtype, DTYPES)
            )
        if not 0.0 < self.strength <= 1.0:
            raise RefineSettingsError(f"--strength: expected a number in (0, 1], got {self.strength}")
        if self.steps < 1:
            raise RefineSettingsError(f"--steps: expected an integer >= 1, got {self.steps}")
        if self.strength < 1.0 and int(self.steps * self.strength) < 1:
            raise RefineSettingsError(
                f"--strength {self.strength} with --steps {self.steps} runs no denoising step "
                f"(img2img runs int(steps * strength) = {int(self.steps * self.strength)}); raise --steps or --strength"
            )
        if self.guidance < 0:
            raise RefineSettingsError(f"--guidance: expected a number >= 0, got {self.guidance}")
        if self.controlnet_scale < 0:
            raise RefineSettingsError(f"--controlnet-scale: expected a number >= 0, got {self.controlnet_scale}")
        if self.seed < 0:
            raise RefineSettingsError(f"--seed: expected an integer >= 0, got {self.seed}")
        if self.batch_size < 1:
            raise RefineSettingsError(f"--batch-size: expected an integer >= 1, got {self.batch_size}")
        if self.max_sequence_length < 1:
            raise RefineSettingsError(f"max_sequence_length: expected an integer >= 1, got {self.max_sequence_length}")
        if self.controlnet and len(self.controlnet) not in (1, len(self.control)):
            raise RefineSettingsError(
                f"--controlnet: expected one union ControlNet or one per control ({len(self.control)} for "
                f"{'+'.join(self.control)}), got {len(self.controlnet)}"
            )
        if not 0 <= self.canny_low <= self.canny_high:
            raise RefineSettingsError(
                f"--canny-low/--canny-high: expected 0 <= low <= high, got {self.canny_low}, {self.canny_high}"
            )
        if self.cpu_offload and self.device == "cpu":
            raise RefineSettingsError("--cpu-offload needs a CUDA device; it cannot be combined with --device cpu")
        check_template(self.prompt_template)

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON-serializable dict."""
        out = asdict(self)
        out["control"] = "+".join(self.control)
        out["controlnet"] = list(self.controlnet)
        return out


def check_template(template: str) -> None:
    """Validate a prompt template's fields.

    Args:
        template: A ``str.format`` template.

    Raises:
        RefineSettingsError: An unknown field, a positional field or a malformed template.
    """
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise RefineSettingsError(f"--prompt-template: malformed template '{template}': {exc}") from None
    for name in fields:
        key = name.split(".")[0].split("[")[0]
        if key not in PROMPT_FIELDS:
            raise RefineSettingsError(
                f"--prompt-template: unknown field '{{{name}}}'; expected fields: "
                + ", ".join("{" + f + "}" for f in PROMPT_FIELDS)
                + did_you_mean(key, PROMPT_FIELDS)
            )


def _plural(name: str, n: int) -> str:
    if n == 1:
        return f"a{'n' if name[:1].lower() in 'aeiou' else ''} {name}"
    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}
    if name.endswith(("s", "x", "ch", "sh")):
        noun = name + "es"
    elif name.endswith("y") and name[-2:-1] not in "aeiou":
        noun = name[:-1] + "ies"
    else:
        noun = name + "s"
    return f"{words.get(n, str(n))} {noun}"


def render_prompt(template: str, categories: Sequence[str], *, frame: int, scene: int | None) -> str:
    """Fill a prompt template for one frame.

    Args:
        template: The ``--prompt-template``.
        categories: The category name of every labeled object in the frame (repeats count).
        frame: Frame index.
        scene: Scene index, if known.

    Returns:
        The prompt, e.g. "a photo of two ducks and a mug on a table".
    """
    counts: dict[str, int] = {}
    for c in categories:
        counts[c] = counts.get(c, 0) + 1
    parts = [_plural(c.replace("_", " "), n) for c, n in counts.items()]
    if not parts:
        phrase = "objects"
    elif len(parts) == 1:
        phrase = parts[0]
    else:
        phrase = ", ".join(parts[:-1]) + " and " + parts[-1]
    return template.format(
        categories=phrase,
        category_list=", ".join(counts),
        n_objects=len(categories),
        frame=frame,
        scene="" if scene is None else scene,
    )


def frame_seed(seed: int, frame_index: int) -> int:
    """The torch generator seed of one frame: a function of ``(seed, frame index)`` only.

    Args:
        seed: The refinement seed.
        frame_index: The frame's index in the dataset.

    Returns:
        A non-negative 63-bit integer.
    """
    return int(rng_for(seed, "refine", frame_index).integers(0, 2**63 - 1))
