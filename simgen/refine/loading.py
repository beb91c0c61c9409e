"""Shared loading of diffusers pipelines: the optional extra, model sources, device and dtype, provenance.

Everything that touches torch or diffusers imports them inside functions, so ``import simgen.refine`` and
the label check work without the ``[refine]`` extra.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simgen.errors import DependencyMissing
from simgen.refine.settings import (
    DEFAULT_CONTROLNETS,
    DEFAULT_MODELS,
    ModelNotFound,
    RefineSettings,
    RefineSettingsError,
)

__all__ = [
    "ModelSource",
    "hub_offline",
    "import_refine_extra",
    "package_versions",
    "require_refine_extra",
    "resolve_source",
    "resolve_sources",
]

log = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_TRUE = {"1", "true", "yes", "on"}
REFINE_PACKAGES = ("torch", "diffusers", "transformers", "accelerate", "sentencepiece", "protobuf")


def require_refine_extra() -> None:
    """Fail fast, without importing them, when torch, diffusers or transformers is not installed.

    Raises:
        DependencyMissing: Naming the package and the ``[refine]`` extra.
    """
    import importlib.util

    for name in ("torch", "diffusers", "transformers"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise DependencyMissing(name, "refine", "simgen refine (diffusion refinement)")


def import_refine_extra() -> tuple[Any, Any]:
    """Import torch and diffusers, or say which extra installs them.

    Returns:
        The ``torch`` and ``diffusers`` modules.

    Raises:
        DependencyMissing: torch, diffusers or transformers is not installed.
    """
    for name in ("torch", "diffusers", "transformers"):
        try:
            __import__(name)
        except ImportError as exc:
            raise DependencyMissing(name, "refine", "simgen refine (diffusion refinement)") from exc
    import diffusers
    import torch

    return torch, diffusers


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape refined images."""
    from simgen.engine.run import package_versions as versions

    return versions(REFINE_PACKAGES)


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` is set, read at call time)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers
        return False
    return bool(constants.HF_HUB_OFFLINE)


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from.

    Attributes:
        ref: What the user gave (hub id or folder).
        path: The local folder to load from, or None to let diffusers download ``ref`` from the hub.
        hub_id: The hub id, when ``ref`` is one.
        revision: The hub commit of the cached snapshot, when known.
        subfolder: Component subfolder inside ``path``/``ref`` (e.g. ``controlnet``), if any.
    """

    ref: str
    path: str | None
    hub_id: str | None
    revision: str | None = None
    subfolder: str | None = None

    @property
    def load_from(self) -> str:
        """The argument to pass to ``from_pretrained``."""
        return self.path if self.path is not None else str(self.ref)

    def config_digest(self) -> str | None:
        """SHA-256 over the JSON configs of a local folder (cheap stand-in for hashing gigabytes of weights)."""
        if self.path is None:
            return None
        root = Path(self.path) / (self.subfolder or "")
        h = hashlib.sha256()
        for p in sorted(root.rglob("*.json")):
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
        return h.hexdigest()

    def to_json(self) -> dict[str, Any]:
        """Provenance record."""
        return {
            "ref": self.ref,
            "hub_id": self.hub_id,
            "revision": self.revision,
            "path": self.path,
            "subfolder": self.subfolder,
            "config_sha256": self.config_digest(),
        }


def _download_hint(hub_id: str | None, what: str) -> str:
    if hub_id is None:
        return f"check the path of the {what}"
    gated = " (FLUX.1-dev is gated: accept its licence on the model page and `huggingface-cli login` first)"
    extra = gated if hub_id.startswith("black-forest-labs/") else ""
    return f"download it with `huggingface-cli download {hub_id}`{extra}, or pass a local folder"


def resolve_source(
    ref: str, *, what: str, required_file: str | None = None, subfolder: str | None = None
) -> ModelSource:
    """Resolve a ``--model`` / ``--controlnet`` value to a local folder or a hub id, failing fast and clearly.

    Local folders are tried first. A hub id is looked up in the local Hugging Face cache; when it is not
    there and the hub is offline (``HF_HUB_OFFLINE=1``), this fails at once instead of waiting for network
    timeouts.

    Args:
        ref: A hub id (``owner/name``) or a folder.
        what: What it is, for messages ("base model", "ControlNet").
        required_file: A file the folder must hold (``model_index.json`` for a pipeline, ``config.json`` for a
            ControlNet), relative to ``subfolder``.
        subfolder: A component subfolder inside the model.

    Returns:
        The resolved source.

    Raises:
        ModelNotFound: A missing folder, a folder that is not a diffusers model, or a hub id that is not
            available offline.
    """
    ref = str(ref)
    path = Path(ref).expanduser()
    looks_like_path = ref.startswith((".", "/", "~")) or ref.count("/") != 1 or "\\" in ref
    if path.exists() or looks_like_path or not _HUB_ID.match(ref):
        if not path.is_dir():
            raise ModelNotFound(
                f"{what} '{ref}': no such folder" + ("" if looks_like_path else " and not a hub id (owner/name)")
            )
        if required_file is not None and not (path / (subfolder or "") / required_file).is_file():
            inside = f"{subfolder}/{required_file}" if subfolder else required_file
            raise ModelNotFound(
                f"{what} '{ref}' is not a diffusers folder: {inside} is missing "
                "(save one with `save_pretrained`, or download a diffusers-format model)"
            )
        return ModelSource(ref, str(path.resolve()), None, None, subfolder)
    cached = _cached_snapshot(ref, required_file, subfolder)
    if cached is not None:
        revision = Path(cached).name
        log.debug("%s %s found in the local hub cache at %s", what, ref, cached)
        return ModelSource(ref, cached, ref, revision, subfolder)
    if hub_offline():
        raise ModelNotFound(
            f"{what} '{ref}' is neither a local folder nor in the local Hugging Face cache, and the hub is offline "
            "(HF_HUB_OFFLINE=1): " + _download_hint(ref, what)
        )
    return ModelSource(ref, None, ref, None, subfolder)


def _cached_snapshot(hub_id: str, required_file: str | None, subfolder: str | None) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    filename = "/".join(p for p in (subfolder, required_file or "config.json") if p)
    try:
        found = try_to_load_from_cache(hub_id, filename)
    except Exception:  # a malformed id or cache counts as "not cached"
        return None
    if not isinstance(found, str):
        return None
    snapshot = Path(found).parent
    for _ in (subfolder or "").split("/") if subfolder else ():
        snapshot = snapshot.parent
    return str(snapshot)


def resolve_sources(settings: RefineSettings, family: str) -> tuple[ModelSource, list[ModelSource]]:
    """Resolve the base model and the ControlNets a refinement will load, without loading anything.

    ControlNets: ``settings.controlnet`` if given; else the model folder's own ``controlnet/`` component;
    else the default hub ControlNet(s) for the control.

    Args:
        settings: Refinement settings.
        family: ``flux`` or ``sd``.

    Returns:
        The base model and the ControlNet sources.

    Raises:
        ModelNotFound: Something is missing (the message names what to download).
    """
    model = resolve_source(
        settings.model or DEFAULT_MODELS[family], what="base model", required_file="model_index.json"
    )
    index = read_model_index(model) or {}
    if settings.controlnet:
        cns = [resolve_source(c, what="ControlNet", required_file="config.json") for c in settings.controlnet]
    elif "controlnet" in index:
        cns = [ModelSource(model.ref, model.path, model.hub_id, model.revision, "controlnet")]
    else:
        cns = [
            resolve_source(c, what="ControlNet", required_file="config.json")
            for c in DEFAULT_CONTROLNETS[family][settings.control]
        ]
    return model, cns


def read_model_index(source: ModelSource) -> dict[str, Any] | None:
    """The ``model_index.json`` of a local pipeline folder, or None."""
    if source.path is None:
        return None
    p = Path(source.path) / "model_index.json"
    if not p.is_file():
        return None
    return json.loads(p.read_text())


def resolve_device(torch: Any, device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; ``cuda`` without CUDA fails clearly.

    Args:
        torch: The torch module.
        device: ``auto``, ``cuda`` or ``cpu``.

    Returns:
        ``cuda`` or ``cpu``.

    Raises:
        RefineSettingsError: ``cuda`` was asked for but torch sees no CUDA device.
    """
    has_cuda = bool(torch.cuda.is_available())
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        raise RefineSettingsError(
            "--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False); use --device cpu or auto"
        )
    return device


def resolve_dtype(torch: Any, dtype: str, device: str, *, gpu_default: str) -> Any:
    """The torch dtype for a ``--dtype`` value: ``auto`` is ``gpu_default`` on CUDA, float32 on CPU."""
    name = (gpu_default if device == "cuda" else "float32") if dtype == "auto" else dtype
    if name == "bfloat16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        log.warning("this GPU has no bfloat16 support; using float16")
        name = "float16"
    return getattr(torch, name)


def load_error(exc: BaseException, source: ModelSource, what: str) -> ModelNotFound:
    """Turn a diffusers/hub loading error into a ModelNotFound naming what to download."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelNotFound(f"could not load {what} '{source.ref}': {text}; {_download_hint(source.hub_id, what)}")
