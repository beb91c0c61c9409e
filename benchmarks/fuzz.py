"""Fuzz the scene-spec loader at scale: the generator and checks of tests/spec/test_fuzz.py, 1,000+ examples.

Every example is a library spec with one to three mutations. It is loaded from a YAML file as a user
would; every Nth spec that loads (and is of ordinary cost) also renders one 64x48 frame through
``simgen.engine.generate``; a refused spec is handed to ``generate`` too, which must refuse it before its
output folder exists. The outcome counts are printed, and every unclean outcome with its mutations.
Target: 100% clean (loaded, rendered, or refused with a field path), 0 tracebacks, 0 hangs.

    .venv/bin/python benchmarks/fuzz.py --examples 1000 --render-every 10
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def _fuzz_module() -> ModuleType:
    # The generator lives with the test that runs it in CI; load that file rather than copy it.
    path = REPO / "tests" / "spec" / "test_fuzz.py"
    spec = importlib.util.spec_from_file_location("simgen_spec_fuzz", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    """Run the fuzz and print the outcome counts; exit 1 when any outcome is not clean."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=1000, help="mutated specs to try (default 1000)")
    parser.add_argument("--render-every", type=int, default=10, help="render every Nth spec that loads (0: never)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: derandomized)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the placement warnings of crowded specs are expected here

    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    fuzz = _fuzz_module()
    counts: Counter[str] = Counter()
    bad: list[tuple[str, str, str]] = []
    loaded = 0
    start = time.perf_counter()

    @settings(
        max_examples=args.examples,
        derandomize=args.seed is None,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=fuzz.mutated_specs())
    def run(case: fuzz.Case) -> None:
        nonlocal loaded
        # Decide from a load-only attempt which specs load, then render every Nth of them.
        render = bool(args.render_every) and loaded % args.render_every == 0
        outcome = fuzz.attempt(case, render=render)
        if outcome.kind in ("loaded", "rendered"):
            loaded += 1
        counts[outcome.kind] += 1
        if not outcome.clean:
            bad.append((outcome.kind, repr(case), outcome.detail))

    if args.seed is not None:
        run = hypothesis_seed(args.seed)(run)
    run()
    seconds = time.perf_counter() - start

    total = sum(counts.values())
    clean = sum(counts[k] for k in ("loaded", "rendered", "error"))
    print(f"{total} mutated specs in {seconds:.1f} s")
    for kind in ("loaded", "rendered", "error", "traceback", "hang", "no-field-path", "wrote-before-failing"):
        print(f"  {kind:22s}{counts[kind]:6d}")
    print(f"  {'clean':22s}{clean:6d}  ({100.0 * clean / max(total, 1):.1f}%)")
    print("  (loaded: validated, not rendered; rendered: validated and rendered one 64x48 frame;")
    print("   error: refused with a SpecError/AssetError naming a field, and generate wrote nothing)")
    for kind, case, detail in bad:
        print(f"\n{kind}: {case}\n{detail}")
    return 0 if clean == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
