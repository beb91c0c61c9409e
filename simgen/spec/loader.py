"""Load, validate and dump scene specs (YAML or JSON)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from simgen.assets import resolve_asset
from simgen.errors import AssetError, RegistryError, SpecError, did_you_mean
from simgen.spec.errors import format_path, spec_error_from_validation
from simgen.spec.models import AssetEntry, SceneSpec

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


class LoadedSpec:
    """A validated spec together with where it came from.

    Attributes:
        spec: The validated model.
        raw: The mapping as the user wrote it.
        source: The file path, or None for specs given as data.
        base_dir: Folder that relative asset paths resolve against.
        roots: Extra allowed asset roots (absolute).
    """

    def __init__(
        self, spec: SceneSpec, raw: dict[str, Any], source: Path | None, base_dir: Path | None, roots: tuple[Path, ...]
    ) -> None:
        self.spec = spec
        self.raw = raw
        self.source = source
        self.base_dir = base_dir
        self.roots = roots

    def resolved(self) -> dict[str, Any]:
        """The spec with every default filled in (what dataset.json records)."""
        return self.spec.model_dump(mode="json")

    def digest(self) -> str:
        """SHA-256 of the resolved spec's canonical JSON."""
        blob = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON spec file into a mapping, with errors that name the file and line."""
    path = Path(path)
    if path.suffix.lower() not in SPEC_SUFFIXES:
        raise SpecError(
            f"unsupported spec file type '{path.suffix}'; expected one of {SPEC_SUFFIXES}", source=str(path)
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        siblings = [p.name for p in path.parent.glob("*") if p.suffix in SPEC_SUFFIXES] if path.parent.is_dir() else []
        raise SpecError(f"no such spec file{did_you_mean(path.name, siblings)}", source=str(path)) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SpecError(f"cannot parse the file: {exc}", source=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"the top level must be a mapping, got {type(data).__name__}", source=str(path))
    return data


def load_spec(
    source: str | Path | Mapping[str, Any],
    *,
    base_dir: str | Path | None = None,
    asset_roots: Sequence[str | Path] = (),
    check_assets: bool = True,
) -> LoadedSpec:
    """Load and fully validate a spec: fields, randomizers and their parameters, tags and assets.

    Args:
        source: A YAML/JSON file path, or the spec as a mapping.
        base_dir: Folder for relative asset paths (defaults to the spec file's folder).
        asset_roots: Extra folders assets may come from (besides the spec's folder and pybullet_data).
        check_assets: Resolve every file asset now, so a bad path fails before any rendering.

    Returns:
        The validated spec with its origin.

    Raises:
        SpecError: A field is invalid; the message names the file, the field path, what was expected
            and what was received, with a "did you mean" for unknown names.
        AssetError: An asset is missing or resolves outside the allowed roots.
    """
    path: Path | None = None
    if isinstance(source, Mapping):
        raw = dict(source)
    else:
        path = Path(source)
        raw = read_spec_file(path)
        if base_dir is None:
            base_dir = path.parent
    label = str(path) if path else None
    try:
        spec = SceneSpec.model_validate(raw)
    except ValidationError as exc:
        raise spec_error_from_validation(exc, SceneSpec, label) from None
    base = Path(base_dir).resolve() if base_dir is not None else None
    roots = tuple(_root(r, base) for r in [*spec.asset_roots, *asset_roots])
    _check_randomizers(spec, label)
    _check_tags(spec, label)
    loaded = LoadedSpec(spec, raw, path, base, roots)
    if check_assets:
        for where, ref in iter_file_assets(spec):
            try:
                resolve_asset(ref, base_dir=base, roots=roots, where=where)
            except AssetError as exc:
                raise AssetError(f"{label}: {exc}" if label else str(exc)) from None
    return loaded


def _root(root: str | Path, base: Path | None) -> Path:
    p = Path(root).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p.resolve()


def iter_file_assets(spec: SceneSpec) -> list[tuple[str, str]]:
    """Every file asset reference with its field path."""
    found: list[tuple[str, str]] = []
    for i, fx in enumerate(spec.fixtures):
        if isinstance(fx.asset, str):
            found.append((f"fixtures[{i}].asset", fx.asset))
    for i, group in enumerate(spec.objects):
        for j, entry in enumerate(group.assets):
            ref = entry.asset if isinstance(entry, AssetEntry) else entry
            if isinstance(ref, str):
                found.append((f"objects[{i}].assets[{j}]", ref))
    return found


def randomizer_params(spec_entry: Any, cls: type, where: str, source: str | None) -> BaseModel:
    """Validate one randomizer entry's parameters against its class's ``Params`` model."""
    try:
        return cls.Params.model_validate(spec_entry.params)
    except ValidationError as exc:
        inner = spec_error_from_validation(exc, cls.Params, None)
        problems = [(f"{where}.{p}" if p else where, m) for p, m in inner.problems]
        raise SpecError(source=source, problems=problems) from None


def _check_randomizers(spec: SceneSpec, source: str | None) -> None:
    from simgen.randomizers import CORE_SCENE, CORE_VIEW, REGISTRY

    for i, entry in enumerate(spec.randomizers):
        where = f"randomizers[{i}]"
        if entry.type in (*CORE_SCENE, *CORE_VIEW):
            raise SpecError(
                f"'{entry.type}' always runs from its spec section; configure that section instead",
                path=f"{where}.type",
                source=source,
            )
        try:
            cls = REGISTRY.get(entry.type)
        except RegistryError as exc:
            raise SpecError(str(exc), path=f"{where}.type", source=source) from None
        randomizer_params(entry, cls, where, source)


def _check_tags(spec: SceneSpec, source: str | None) -> None:
    known = {t for g in spec.objects for t in (*g.tags, g.name)} | {t for f in spec.fixtures for t in (*f.tags, f.name)}
    for i, entry in enumerate(spec.randomizers):
        for j, tag in enumerate(entry.tags):
            if tag not in known:
                raise SpecError(
                    f"tag '{tag}' matches no object group or fixture{did_you_mean(tag, known)}; "
                    f"known tags: {', '.join(sorted(known)) or '(none)'}",
                    path=format_path(("randomizers", i, "tags", j)),
                    source=source,
                )


def dump_spec(spec: SceneSpec | LoadedSpec) -> dict[str, Any]:
    """The spec as the user wrote it: only the fields that were set, so ``dump(load(x)) == x``."""
    model = spec.spec if isinstance(spec, LoadedSpec) else spec
    return model.model_dump(mode="json", exclude_unset=True)


def dump_spec_yaml(spec: SceneSpec | LoadedSpec) -> str:
    """YAML text of :func:`dump_spec`, keys in the spec's order."""
    return yaml.safe_dump(dump_spec(spec), sort_keys=False)


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of a scene spec."""
    schema = SceneSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "simgen scene spec"
    return schema
