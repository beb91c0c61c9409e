"""Load, validate and dump scene specs (YAML or JSON).

A spec file may come from anyone (a colleague, an LLM), so reading one is bounded. The file must be a
regular file of at most :data:`MAX_SPEC_BYTES`, in UTF-8. YAML is parsed with libyaml's C parser when
PyYAML has it (about 5x faster), and the parsed document must nest at most :data:`MAX_DEPTH` levels and
use at most :data:`MAX_ALIASES` aliases to lists and mappings, which may add at most
:data:`MAX_ALIAS_NODES` values in all ("billion laughs" documents are refused before they are built).
JSON must not use the NaN/Infinity literals. Every failure is one :class:`SpecError` naming the file.

A spec's own ``asset_roots`` may only name folders inside its own folder (or in pybullet_data): a spec
cannot widen the sandbox it is checked against. Wider roots come from the caller (``--asset-root``, the
``asset_roots`` argument of :func:`load_spec`).
"""

from __future__ import annotations

import errno
import functools
import gc
import hashlib
import json
import math
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from simgen.assets import PHOTO_FOLDER, PYBULLET_PREFIX, image_pool, inside_any, pybullet_data_dir, resolve_asset
from simgen.errors import AssetError, RegistryError, SpecError, did_you_mean
from simgen.randomizers.base import Randomizer, SampleContext
from simgen.spec.errors import FieldProblem, format_path, shorten, spec_error_from_validation
from simgen.spec.models import AssetEntry, Fixture, SceneSpec, check_instance_budget

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
#: Spec files above this size are refused. A valid spec is far smaller (lists hold at most 10,000 items); parsing
#: 16 MB of YAML takes about 11 s and 0.6 GB on a busy 2-core machine, 64 MB about 45 s and 2 GB.
MAX_SPEC_BYTES = 16 * 1024 * 1024
#: How deeply lists and mappings may nest (counting through aliases); real specs use fewer than 10 levels.
MAX_DEPTH = 64
#: How many YAML aliases may point at a list or a mapping.
MAX_ALIASES = 10_000
#: How many values expanding those aliases may add to the document.
MAX_ALIAS_NODES = 1_000_000
#: libyaml's C parser when PyYAML was built with it, else the pure-Python one (same results, slower).
YAML_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SHOWN_CHARS = 300


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
        """The spec with every default filled in (what dataset.json records).

        A spec without a ``carla:`` section resolves without the key, so a PyBullet spec's record and hash are
        what they were before the section existed.
        """
        return self.spec.model_dump(mode="json", exclude={"carla"} if self.spec.carla is None else None)

    def digest(self) -> str:
        """SHA-256 of the resolved spec's canonical JSON."""
        blob = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON spec file into a mapping, with one clear error for anything that is not one.

    Raises:
        SpecError: Naming the file: it cannot be opened (missing, a folder, not a regular file, permission,
            a NUL byte or an over-long name), is too big, is not UTF-8 (with the byte offset), does not
            parse (with the line), nests too deeply, expands too much through aliases, uses JSON's
            NaN/Infinity, or is not a mapping at the top level.
    """
    shown = _shown(path)
    if "\0" in os.fspath(path):
        raise SpecError("the spec path contains a NUL byte", source=shown)
    path = Path(path)
    text = _decode(_read_bytes(path, shown), shown)
    data = _parse_json(text, shown) if path.suffix.lower() == ".json" else _parse_yaml(text, shown)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"the top level must be a mapping, got {type(data).__name__}", source=shown)
    return data


def _clip(text: str, limit: int = _SHOWN_CHARS) -> str:
    """At most ``limit`` characters of ``text``: messages never quote a whole input."""
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} characters)"


def _shown(path: str | os.PathLike[str]) -> str:
    """A path for messages: control characters escaped, long names shortened in the middle."""
    text = os.fspath(path)
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= _SHOWN_CHARS else f"{text[:120]}...{text[-120:]} ({len(text)} characters)"


_FILE_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _read_bytes(path: Path, shown: str) -> bytes:
    """The spec file's bytes, once it is known to be a regular file of a spec type and bounded size.

    It is opened without blocking, so a FIFO or a device is refused instead of read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise SpecError(f"no such spec file{_sibling_hint(path)}", source=shown) from None
    except PermissionError:
        raise SpecError("permission denied: the spec file cannot be read", source=shown) from None
    except IsADirectoryError:
        raise SpecError(f"is a folder, not a spec file{_folder_hint(path)}", source=shown) from None
    except OSError as exc:
        raise SpecError(f"cannot open the spec file: {_os_reason(exc)}", source=shown) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SpecError(f"is a folder, not a spec file{_folder_hint(path)}", source=shown)
        if not stat.S_ISREG(st.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise SpecError(f"is {kind}; a spec must be a regular file", source=shown)
        if path.suffix.lower() not in SPEC_SUFFIXES:
            raise SpecError(
                f"unsupported spec file type '{_clip(path.suffix)}'; expected one of {SPEC_SUFFIXES}", source=shown
            )
        if st.st_size > MAX_SPEC_BYTES:
            raise SpecError(_too_big(st.st_size), source=shown)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read the spec file: {_os_reason(exc)}", source=shown) from None
    finally:
        os.close(fd)
    if len(data) > MAX_SPEC_BYTES:  # it grew while being read
        raise SpecError(_too_big(len(data)), source=shown)
    return data


def _too_big(size: int) -> str:
    return f"the spec file is {size / 2**20:.1f} MB; specs over {MAX_SPEC_BYTES // 2**20} MB are refused"


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the path or one of its names is too long"
    return exc.strerror or type(exc).__name__


def _sibling_hint(path: Path) -> str:
    try:
        siblings = [p.name for p in path.parent.iterdir() if p.suffix in SPEC_SUFFIXES]
    except OSError:
        return ""
    return did_you_mean(path.name, siblings)


def _folder_hint(path: Path) -> str:
    try:
        specs = sorted(p.name for p in path.iterdir() if p.suffix.lower() in SPEC_SUFFIXES)
    except OSError:
        return ""
    if not specs:
        return ""
    more = f" and {len(specs) - 5} more" if len(specs) > 5 else ""
    return f"; it holds {', '.join(specs[:5])}{more}"


def _decode(data: bytes, shown: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
            f"(line {line}, column {column}); save the spec as UTF-8",
            source=shown,
        ) from None
    return text.removeprefix("\ufeff")  # a byte-order mark


class _TooBig(Exception):
    """A parsed document nests too deeply or expands too much (the message says which)."""


class _MeasuredLoader:
    """Mixin for PyYAML's safe loaders: the composed node graph is measured before any object is built from it."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()  # type: ignore[attr-defined]
        if node is None:
            return None
        _measure_nodes(node)
        return self.construct_document(node)  # type: ignore[attr-defined]


@functools.cache
def _loader_class(base: type) -> type:
    return type(f"Spec{base.__name__}", (_MeasuredLoader, base), {})


def _measure_nodes(root: yaml.Node) -> None:
    """Refuse a node graph that nests too deeply, loops, or expands too much through aliases.

    Aliased nodes are shared, so the graph stays small while the document it stands for may be huge; the
    expanded size and depth of every list and mapping are computed once each (iteratively, so no input can
    exhaust the stack). A scalar alias adds one value, as its ``*name`` does, so only aliases to lists and
    mappings are counted.
    """
    if isinstance(root, yaml.ScalarNode):
        return
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values when expanded, depth)
    open_ids: set[int] = set()  # the lists and mappings being measured: the path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    aliases = distinct = 0
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_ids.discard(key)
            size, depth = 1, 1
            for kid in _children(node):
                if isinstance(kid, yaml.ScalarNode):
                    size += 1
                else:
                    kid_size, kid_depth = done[id(kid)]
                    size, depth = size + kid_size, max(depth, kid_depth + 1)
            if depth > MAX_DEPTH:
                raise _TooBig(f"the document nests more than {MAX_DEPTH} levels deep")
            done[key] = (size, depth)
        elif key in done:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _TooBig(f"the document uses more than {MAX_ALIASES} aliases to lists and mappings")
        elif key in open_ids:
            raise _TooBig("an alias refers to a list or mapping that contains it (a recursive document)")
        elif len(open_ids) >= MAX_DEPTH:
            raise _TooBig(f"the document nests more than {MAX_DEPTH} levels deep")
        else:
            open_ids.add(key)
            kids = _children(node)
            containers = [kid for kid in kids if not isinstance(kid, yaml.ScalarNode)]
            distinct += 1 + len(kids) - len(containers)
            stack.append((node, True))
            stack.extend((kid, False) for kid in containers)
    expanded = done[id(root)][0]
    if expanded - distinct > MAX_ALIAS_NODES:
        raise _TooBig(
            f"aliases expand the document by {expanded - distinct} values, more than the {MAX_ALIAS_NODES} allowed"
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _parse_yaml(text: str, shown: str) -> Any:
    loader = _loader_class(YAML_LOADER)(text)
    # A big document is millions of acyclic node objects, and every full collection would rescan them all,
    # which makes parsing superlinear (measured: a 50 MB spec parses in 29 s with the collector paused, 47 s
    # without). Nothing built here needs it.
    paused = gc.isenabled()
    gc.disable()
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise SpecError(f"cannot parse the YAML: {_yaml_reason(exc)}", source=shown) from None
    except _TooBig as exc:
        raise SpecError(f"{exc}; simplify the spec", source=shown) from None
    except RecursionError:
        raise SpecError(f"the document nests more than {MAX_DEPTH} levels deep", source=shown) from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more than 4300 digits, a date like 2024-13-40
        raise SpecError(f"cannot parse the YAML: {_clip(str(exc))}", source=shown) from None
    finally:
        if paused:
            gc.enable()
        loader.dispose()


def _yaml_reason(exc: yaml.YAMLError) -> str:
    """PyYAML's problem on one line, with where it is (its message quotes a snippet over several lines)."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return _clip(" ".join(str(exc).split()))
    text = ": ".join(" ".join(part.split()) for part in (exc.context, exc.problem) if part)
    mark = exc.problem_mark or exc.context_mark
    return _clip(text) + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark else "")


class _NonFinite(Exception):
    """JSON's non-standard NaN or Infinity literal, or a number too large for a float."""


def _json_constant(name: str) -> Any:
    raise _NonFinite(f"the JSON literal {name} is not allowed: numbers must be finite")


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(f"the JSON number {_clip(text, 40)} is too large: numbers must be finite")
    return value


def _parse_json(text: str, shown: str) -> Any:
    try:
        data = json.loads(text, parse_constant=_json_constant, parse_float=_json_float)
    except _NonFinite as exc:
        raise SpecError(str(exc), source=shown) from None
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"cannot parse the JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", source=shown
        ) from None
    except RecursionError:
        raise SpecError(f"the document nests more than {MAX_DEPTH} levels deep", source=shown) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise SpecError(f"cannot parse the JSON: {_clip(str(exc))}", source=shown) from None
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        kids = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for kid in kids:
            if isinstance(kid, dict | list):
                if depth >= MAX_DEPTH:
                    raise SpecError(f"the document nests more than {MAX_DEPTH} levels deep", source=shown)
                stack.append((kid, depth + 1))
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
        asset_roots: Extra folders assets may come from (besides the spec's folder and pybullet_data). These
            are trusted; the spec's own ``asset_roots`` may only name folders inside its folder.
        check_assets: Resolve every file asset (and what it references) and check every photo folder now,
            so a bad path fails before any rendering.

    Returns:
        The validated spec with its origin.

    Raises:
        SpecError: A field is invalid; the message names the file, the field path, what was expected
            and what was received, with a "did you mean" for unknown names.
        AssetError: An asset is missing, resolves outside the allowed roots, does not parse or references a
            file outside them; or a photo folder is missing, empty or holds a broken or oversized image.
    """
    path: Path | None = None
    if isinstance(source, Mapping):
        raw = dict(source)
    else:
        raw = read_spec_file(source)
        path = Path(source)
        if base_dir is None:
            base_dir = path.parent
    label = _shown(path) if path else None
    try:
        spec = SceneSpec.model_validate(raw)
    except ValidationError as exc:
        raise spec_error_from_validation(exc, SceneSpec, label) from None
    base = Path(base_dir).resolve() if base_dir is not None else None
    roots = (*_spec_roots(spec, base, label), *(_root(r, base) for r in asset_roots))
    randomizers = _check_randomizers(spec, label)
    _check_tags(spec, label)
    loaded = LoadedSpec(spec, raw, path, base, roots)
    if check_assets:
        try:
            for where, ref in iter_file_assets(spec):
                resolve_asset(ref, base_dir=base, roots=roots, where=where)
            for where, randomizer in randomizers:
                for name, folder in _photo_folders(randomizer.params):
                    image_pool(folder, base_dir=base, roots=roots, where=f"{where}.{name}")
            _check_against_spec(randomizers, SampleContext(spec, 0, base_dir=base, roots=roots), label)
            _check_link_instances(spec, base, roots, label)
        except AssetError as exc:
            raise AssetError(f"{label}: {exc}" if label else str(exc)) from None
    return loaded


def _root(root: str | Path, base: Path | None) -> Path:
    p = Path(root).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p.resolve()


def _spec_roots(spec: SceneSpec, base: Path | None, source: str | None) -> list[Path]:
    """The spec's own ``asset_roots``, each inside the spec's folder or pybullet_data (a spec cannot widen them)."""
    found = []
    for i, root in enumerate(spec.asset_roots):
        where = f"asset_roots[{i}]"
        if root.startswith(PYBULLET_PREFIX):
            path = (pybullet_data_dir() / root[len(PYBULLET_PREFIX) :]).resolve()
        elif base is None:
            raise SpecError(
                "a spec given as data without base_dir cannot list asset_roots; pass load_spec(asset_roots=...)",
                path=where,
                source=source,
            )
        else:
            path = _root(root, base)
        if not inside_any(path, [pybullet_data_dir(), *([base] if base else [])]):
            outside = f"the spec's folder ({base})" if base else "pybullet_data"
            raise SpecError(
                f"'{_clip(root)}' resolves to {path}, outside {outside}; a spec may only list folders inside its "
                f"own folder or pybullet_data. To allow it, pass --asset-root {path} (or asset_roots= of load_spec)",
                path=where,
                source=source,
            )
        found.append(path)
    return found


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


def _check_randomizers(spec: SceneSpec, source: str | None) -> list[tuple[str, Randomizer]]:
    """Check every randomizer entry's type and parameters; return each built, with its field path."""
    from simgen.randomizers import REGISTRY, all_core_randomizers

    cores = all_core_randomizers()
    built: list[tuple[str, Randomizer]] = []
    for i, entry in enumerate(spec.randomizers):
        where = f"randomizers[{i}]"
        if entry.type in cores:
            raise SpecError(
                f"'{entry.type}' always runs from its spec section; configure that section instead",
                path=f"{where}.type",
                source=source,
            )
        try:
            cls = REGISTRY.get(entry.type)
        except RegistryError as exc:
            raise SpecError(str(exc), path=f"{where}.type", source=source) from None
        built.append((where, cls(randomizer_params(entry, cls, where, source), entry.tags)))
    return built


def _photo_folders(params: BaseModel) -> list[tuple[str, str]]:
    """The parameters annotated as photo folders (:data:`simgen.assets.PhotoFolder`), as ``(name, folder)``."""
    fields = type(params).model_fields.items()
    return [(name, getattr(params, name)) for name, info in fields if any(m is PHOTO_FOLDER for m in info.metadata)]


def _check_against_spec(randomizers: list[tuple[str, Randomizer]], ctx: SampleContext, source: str | None) -> None:
    """Run each randomizer's load-time :meth:`~simgen.randomizers.base.Randomizer.check`, prefixing its paths."""
    for where, randomizer in randomizers:
        try:
            randomizer.check(ctx)
        except SpecError as exc:
            problems = [(f"{where}.{p}" if p else where, m) for p, m in exc.problems]
            raise SpecError(source=source, problems=problems) from None


def _check_link_instances(spec: SceneSpec, base: Path | None, roots: tuple[Path, ...], source: str | None) -> None:
    """The instance budget again, now that files resolve: a ``link_labels`` fixture takes one id per URDF link."""
    from simgen.randomizers.robots import urdf_links

    def links(_: int, fixture: Fixture) -> int:
        return len(urdf_links(str(resolve_asset(fixture.asset, base_dir=base, roots=roots))))

    try:
        check_instance_budget(spec, links=links)
    except FieldProblem as exc:
        raise exc.spec_error(source) from None


def _check_tags(spec: SceneSpec, source: str | None) -> None:
    """Every randomizer tag selects something its randomizer can act on (see ``Randomizer.targets``).

    A tag names object groups and fixtures (by name or tag) or, as ``ground``, the ground plane. It is refused
    when it names nothing, when what it names is of a kind the randomizer cannot change (a fixture for
    ``physics/dynamics-v1``), and on a randomizer that ignores tags (sensor effects). Types were checked before.
    """
    from simgen.randomizers import REGISTRY
    from simgen.randomizers.base import GROUND_TAG, TARGET_KINDS, spec_tags

    def words(kinds: Sequence[str] | set[str]) -> str:
        names = {"objects": "object groups", "fixtures": "fixtures", "ground": "the ground"}
        return " and ".join(names[k] for k in TARGET_KINDS if k in kinds)

    known = spec_tags(spec)
    for i, entry in enumerate(spec.randomizers):
        targets = REGISTRY.get(entry.type).targets
        if entry.tags and targets == ():
            raise SpecError(
                f"'{entry.type}' takes no tags: it acts on the whole frame, not on objects, fixtures or the ground; "
                "remove them",
                path=format_path(("randomizers", i, "tags")),
                source=source,
            )
        for j, tag in enumerate(entry.tags):
            kinds = known.get(tag, set())
            if not kinds:
                names = sorted(known)
                no_plane = " (and ground.kind is 'none', so there is no ground plane)" if tag == GROUND_TAG else ""
                problem = (
                    f"tag '{tag}' matches nothing: no object group or fixture has it{no_plane}"
                    f"{did_you_mean(tag, names)}; known tags: {shorten(', '.join(names)) or '(none)'}"
                )
            elif targets is not None and not kinds.intersection(targets):
                problem = (
                    f"tag '{tag}' matches only {words(kinds)}, which {entry.type} cannot change: "
                    f"it acts on {words(targets)} only"
                )
            else:
                continue
            raise SpecError(problem, path=format_path(("randomizers", i, "tags", j)), source=source)


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
