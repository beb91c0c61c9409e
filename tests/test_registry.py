from __future__ import annotations

import pytest

from simgen.errors import RegistryError
from simgen.randomizers import REGISTRY
from simgen.randomizers.appearance import ObjectColor
from simgen.registry import Registry, import_string


def test_builtin_names_resolve() -> None:
    assert REGISTRY.get("appearance/color-v1") is ObjectColor
    assert "placement/drop-v1" in REGISTRY.names()


def test_unknown_name_suggests() -> None:
    with pytest.raises(RegistryError, match="did you mean 'appearance/color-v1'"):
        REGISTRY.get("appearance/colour-v1")


def test_module_class_string_always_works() -> None:
    assert REGISTRY.get("simgen.randomizers.appearance:ObjectColor") is ObjectColor
    with pytest.raises(RegistryError, match="has no attribute"):
        import_string("simgen.randomizers.appearance:Nope")


def test_names_must_be_versioned() -> None:
    reg: Registry[object] = Registry("thing")
    with pytest.raises(ValueError, match="versioned"):
        reg.register("NoVersion", "x:y")
    reg.register("fam/thing-v2", "x:y")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("fam/thing-v2", "x:z")


def test_entry_points_are_discovered(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import simgen.registry as registry_module

    ep = EntryPoint(name="thirdparty/glow-v1", value="simgen.randomizers.appearance:ObjectColor", group="grp")
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [ep] if group == "grp" else [])
    reg: Registry[object] = Registry("randomizer", group="grp")
    assert reg.get("thirdparty/glow-v1") is ObjectColor


def test_plain_name_registries_for_writers_and_backends() -> None:
    reg: Registry[object] = Registry("writer", versioned=False)
    reg.register("parquet", "x:y")
    with pytest.raises(ValueError, match="lowercase word"):
        reg.register("Parquet-v1", "x:y")
    with pytest.raises(RegistryError, match="did you mean 'parquet'.*known writers: parquet"):
        reg.get("parqet")
    assert reg.target("pkg.mod:Cls") == "pkg.mod:Cls"  # a "module:Class" string stands for itself


def test_writers_and_backends_resolve_through_the_shared_registry() -> None:
    from simgen.backends import BACKENDS, backend_class
    from simgen.writers.coco import CocoWriter
    from simgen.writers.registry import WRITERS

    assert isinstance(WRITERS, Registry) and WRITERS.group == "simgen.writers"
    assert WRITERS.names() == ["bop", "coco", "yolo"] and WRITERS.get("coco") is CocoWriter
    assert isinstance(BACKENDS, Registry) and BACKENDS.group == "simgen.backends"
    assert {"pybullet", "carla"} <= set(BACKENDS.names())
    with pytest.raises(RegistryError, match="did you mean 'pybullet'"):
        backend_class("pybulet")


def test_a_third_party_backend_plugs_in_through_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import simgen.backends as backends
    import simgen.registry as registry_module
    from simgen.backends.pybullet_backend import PyBulletBackend

    ep = EntryPoint(name="mysim", value="simgen.backends.pybullet_backend:PyBulletBackend", group="simgen.backends")
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [ep] if group == "simgen.backends" else [])
    fresh: Registry[object] = Registry("backend", group="simgen.backends", versioned=False)
    monkeypatch.setattr(backends, "BACKENDS", fresh)
    backend = backends.make_backend("mysim", renderer="tiny")
    try:
        assert isinstance(backend, PyBulletBackend)
    finally:
        backend.close()
    assert backends.backend_capabilities("mysim") == {"visibility": True, "timeline": True}
    assert backends.resolve_renderer("mysim", "tiny") == "tiny"
    assert backends.worker_env("mysim", 1) == {}
    assert backends.backend_module("mysim") == "simgen.backends.pybullet_backend"
