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
