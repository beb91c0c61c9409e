"""Scene specs: typed models, loading with precise errors, dumping, JSON Schema."""

from __future__ import annotations

from simgen.spec.loader import LoadedSpec, dump_spec, dump_spec_yaml, load_spec, read_spec_file, spec_json_schema
from simgen.spec.models import SceneSpec

__all__ = ["LoadedSpec", "SceneSpec", "dump_spec", "dump_spec_yaml", "load_spec", "read_spec_file", "spec_json_schema"]
