"""The generator contract shared by every non-image modality, and the model file format.

A :class:`Generator` learns from real data and returns a :class:`FittedModel`; the model samples new records
from a ``numpy.random.Generator`` that the caller passes in (never a global one), so a shard's records depend on
its seed alone. Models save to a folder and load back without executing anything from it:

- ``model.json``: the format name and version, the registered generator name, and the model's configuration
  (plain JSON: numbers, strings, lists, mappings);
- ``arrays.npz``: numeric arrays only, each an ``.npy`` entry in an uncompressed zip with fixed timestamps, so the
  same model always gives the same bytes. It is read with ``allow_pickle=False``, and ``model.json`` records its
  SHA-256, which :func:`load_model` checks.

No pickle anywhere: a model file from someone else is data, not code. The generator name in ``model.json`` must be
a registered name; a ``"module:Class"`` string is refused there, since importing a module runs its code.

The SHA-256 of ``model.json`` (which covers ``arrays.npz`` through its recorded hash) identifies a saved model;
:meth:`FittedModel.save` returns it, for ``dataset.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from simgen import __version__
from simgen.errors import OutputExistsError, SimgenError
from simgen.io import atomic_write_bytes

__all__ = [
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "FittedModel",
    "Generator",
    "GeneratorError",
    "ModelFileError",
    "ModelState",
    "check_rng",
    "load_model",
    "model_digest",
]

MODEL_FORMAT = "simgen-model"
MODEL_FORMAT_VERSION = 1
MODEL_JSON = "model.json"
ARRAYS_FILE = "arrays.npz"
#: Array kinds a model file may hold: bool, signed and unsigned integers, floats. Never objects or strings.
_ARRAY_KINDS = frozenset("biuf")
_MAX_JSON_BYTES = 256 << 20
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class GeneratorError(SimgenError, ValueError):
    """A generator cannot fit or sample what it was asked to."""


class ModelFileError(GeneratorError):
    """A saved model is missing, damaged, tampered with, or of an unknown format or generator."""


def check_rng(rng: Any, name: str = "rng") -> np.random.Generator:
    """Return ``rng`` if it is a ``numpy.random.Generator``.

    Raises:
        TypeError: Anything else (a seed, ``None`` or the legacy ``RandomState``): randomness is always passed in.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name}: expected a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return rng


@dataclass
class ModelState:
    """Everything a fitted model needs to sample: JSON configuration and numeric arrays."""

    config: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    """Learns from real data: ``fit(table, metadata, rng) -> FittedModel``.

    Attributes:
        name: The registered, versioned name (``tabular/gaussian-copula-v1``).
        model_class: The :class:`FittedModel` subclass its ``fit`` returns, for :func:`load_model`.
    """

    name: ClassVar[str]
    model_class: ClassVar[type[FittedModel]]

    def fit(self, table: Any, metadata: Any, rng: np.random.Generator) -> FittedModel:
        """Learn from ``table`` (described by ``metadata``); whatever is random draws from ``rng``."""
        ...


class FittedModel(ABC):
    """A learned model: samples records, and saves to / loads from a folder (see the module docstring)."""

    #: The registered name of the generator that made this model.
    generator: ClassVar[str]

    @abstractmethod
    def state(self) -> ModelState:
        """The model as JSON configuration plus numeric arrays."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: ModelState) -> FittedModel:
        """Rebuild a model from :meth:`state`; raise :class:`ModelFileError` if it is inconsistent."""

    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator, **kwargs: Any) -> Any:
        """``n`` new records drawn from ``rng``: the same generator state gives the same records."""

    def save(self, path: str | Path, *, overwrite: bool = False) -> str:
        """Write the model into the folder ``path`` (created if needed).

        Args:
            path: The model folder.
            overwrite: Replace a model already there.

        Returns:
            The model's SHA-256 (of ``model.json``, which records the arrays' hash).

        Raises:
            OutputExistsError: A model is already there and ``overwrite`` is false.
        """
        folder = Path(path)
        if (folder / MODEL_JSON).exists() and not overwrite:
            raise OutputExistsError(f"{folder / MODEL_JSON} already exists; pass overwrite=True to replace it")
        folder.mkdir(parents=True, exist_ok=True)
        state = self.state()
        blob = _pack_arrays(state.arrays)
        header = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "generator": self.generator,
            "simgen_version": __version__,
            "arrays": {
                "file": ARRAYS_FILE,
                "sha256": hashlib.sha256(blob).hexdigest(),
                "entries": {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in state.arrays.items()},
            },
            "config": state.config,
        }
        text = json.dumps(header, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
        atomic_write_bytes(folder / ARRAYS_FILE, blob)
        data = text.encode("utf-8")
        atomic_write_bytes(folder / MODEL_JSON, data)  # written last: a model.json always has its arrays beside it
        return hashlib.sha256(data).hexdigest()


def model_digest(path: str | Path) -> str:
    """The SHA-256 that :meth:`FittedModel.save` returned for the model in folder ``path``."""
    return hashlib.sha256((Path(path) / MODEL_JSON).read_bytes()).hexdigest()


def _pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """Numeric arrays as an uncompressed ``.npz`` with fixed timestamps: the same arrays give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            arr = np.ascontiguousarray(arrays[key])
            if arr.dtype.kind not in _ARRAY_KINDS:
                raise TypeError(f"model array '{key}' has dtype {arr.dtype}; only numbers and booleans are saved")
            item = io.BytesIO()
            np.lib.format.write_array(item, arr, allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME), item.getvalue())
    return buf.getvalue()


def _read_header(folder: Path) -> dict[str, Any]:
    path = folder / MODEL_JSON
    if not path.is_file():
        raise ModelFileError(f"{folder}: not a model folder (no {MODEL_JSON})")
    if path.stat().st_size > _MAX_JSON_BYTES:
        raise ModelFileError(f"{path}: larger than {_MAX_JSON_BYTES >> 20} MiB; not a simgen model")
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: not a simgen model file (format is not '{MODEL_FORMAT}')")
    version = header.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format_version {version} is newer than this simgen reads ({MODEL_FORMAT_VERSION}); upgrade simgen"
        )
    for key, kind in (("generator", str), ("arrays", dict), ("config", dict)):
        if not isinstance(header.get(key), kind):
            raise ModelFileError(f"{path}: '{key}' must be a {kind.__name__}")
    return header


def _read_arrays(folder: Path, spec: dict[str, Any]) -> dict[str, np.ndarray]:
    path = folder / ARRAYS_FILE
    if spec.get("file") != ARRAYS_FILE or not isinstance(spec.get("entries"), dict):
        raise ModelFileError(f"{folder / MODEL_JSON}: 'arrays' must name {ARRAYS_FILE} and its entries")
    if not path.is_file():
        raise ModelFileError(f"{path}: missing")
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != spec.get("sha256"):
        raise ModelFileError(f"{path}: SHA-256 does not match the one in {MODEL_JSON}; the model is damaged or changed")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            for key in npz.files:
                arrays[key] = npz[key]
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path}: not a readable array file: {exc}") from None
    entries = spec["entries"]
    if set(arrays) != set(entries):
        raise ModelFileError(f"{path}: holds {sorted(arrays)}, {MODEL_JSON} lists {sorted(entries)}")
    for key, arr in arrays.items():
        want = entries[key]
        if (
            arr.dtype.kind not in _ARRAY_KINDS
            or not isinstance(want, dict)
            or arr.dtype.str != want.get("dtype")
            or list(arr.shape) != want.get("shape")
        ):
            raise ModelFileError(f"{path}: array '{key}' is {arr.dtype.str} {list(arr.shape)}, expected {want}")
    return arrays


def load_model(path: str | Path) -> FittedModel:
    """Load a model saved with :meth:`FittedModel.save`, checking its format, hash and generator.

    Args:
        path: The model folder.

    Returns:
        The model.

    Raises:
        ModelFileError: A missing folder or file, an unknown or newer format, a hash mismatch, an unregistered
            generator name, or arrays that do not match the configuration.
    """
    from simgen.generators import REGISTRY  # the registry imports this module

    folder = Path(path)
    header = _read_header(folder)
    name = header["generator"]
    if ":" in name or name not in REGISTRY:
        # Only registered names: a "module:Class" string here would import (run) a module named by a file.
        raise ModelFileError(f"{folder / MODEL_JSON}: unknown generator '{name}'; registered: {', '.join(REGISTRY)}")
    cls = REGISTRY.get(name)
    if getattr(cls, "model_class", None) is None:
        raise ModelFileError(f"{folder / MODEL_JSON}: '{name}' does not save models")
    arrays = _read_arrays(folder, header["arrays"])
    model = cls.model_class.from_state(ModelState(config=header["config"], arrays=arrays))
    if model.generator != name:
        raise ModelFileError(f"{folder / MODEL_JSON}: generator '{name}' built a '{model.generator}' model")
    return model
