"""Scaling of `simgen generate`: workers, Ray vs the local pool, and memory vs dataset size.

Prints, in one run:
  * 2 workers vs 1 (same frames):                 target >= 1.8x
  * Ray local cluster vs the local pool, 2 CPUs:  target >= 0.9x
  * peak RSS of 5,000 vs 500 frames (small res):  target <= 1.1x

Each run happens in a fresh subprocess, so peak RSS and start-up costs are measured honestly.
Set SIMGEN_BENCH_RENDERER=tiny (or egl) to pin the renderer.
Usage: python benchmarks/scaling.py [--frames 160] [--rounds 2] [--small 500] [--large 5000] [--only ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "scenes" / "tabletop_clutter.yaml"
SINGLE_THREAD = {"LP_NUM_THREADS": "0"}

CHILD = r"""
import json, resource, sys, time, os
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
from simgen.engine import generate
from simgen.spec import load_spec, read_spec_file
spec_path, out, n, workers, runner, w, h, count, fps = sys.argv[1:]
raw = read_spec_file(spec_path)
raw["objects"][0]["count"] = int(count)
raw["frames_per_scene"] = int(fps)
spec = load_spec(raw, base_dir=os.path.dirname(spec_path))
t = time.perf_counter()
r = generate(spec, out, n_frames=int(n), seed=0, workers=int(workers), runner=runner, resolution=(int(w), int(h)),
             renderer=os.environ.get("SIMGEN_BENCH_RENDERER", "auto"))
dt = time.perf_counter() - t
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"fps": int(n) / dt, "seconds": dt, "peak_rss_mb": rss / 1024, "renderer": r.renderer}))
"""


def run(out: Path, n: int, workers: int, runner: str, res: tuple[int, int], count: int, fps: int,
        *, pin_one_core: bool = False, env: dict[str, str] | None = None) -> dict:  # fmt: skip
    cmd = [sys.executable, "-c", CHILD, str(SPEC), str(out), str(n), str(workers), runner, str(res[0]), str(res[1]),
           str(count), str(fps)]  # fmt: skip
    if pin_one_core:
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})})
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=160, help="frames of each workers run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repeats; the best of each is kept")
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--ray-frames", type=int, default=320, help="amortises Ray's ~6 s start")
    parser.add_argument("--only", choices=["workers", "ray", "rss"], default=None, help="run one section")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="simgen-scaling-"))
    res, count = (320, 240), 15
    if args.only in (None, "workers"):
        workers_section(tmp, args, res, count)
    if args.only in (None, "ray"):
        ray_section(tmp, args, res, count)
    if args.only in (None, "rss"):
        rss_section(tmp, args)
    shutil.rmtree(tmp, ignore_errors=True)


def best_of(rounds: int, runs: dict[str, Callable[[Path], dict]], tmp: Path) -> dict[str, dict]:
    """Run every configuration ``rounds`` times, interleaved (the machine's load drifts), and keep each one's best."""
    best: dict[str, dict] = {}
    for r in range(rounds):
        for name, fn in runs.items():
            result = fn(tmp / f"{name}-{r}")
            if name not in best or result["fps"] > best[name]["fps"]:
                best[name] = result
    return best


def workers_section(tmp: Path, args: argparse.Namespace, res: tuple[int, int], count: int) -> None:
    n = args.frames
    runs = {
        "one": lambda out: run(out, n, 1, "local", res, count, 4),
        "two": lambda out: run(out, n, 2, "local", res, count, 4),
    }
    if shutil.which("taskset"):
        # Per-core scaling: one worker confined to one core (llvmpipe on its own thread) vs two workers on two cores.
        runs["pinned"] = lambda out: run(out, n, 1, "local", res, count, 4, pin_one_core=True, env=SINGLE_THREAD)
    best = best_of(args.rounds, runs, tmp)
    one, two = best["one"], best["two"]
    print(f"{n} frames, best of {args.rounds} interleaved rounds")
    print(f"1 worker  {one['fps']:.2f} frames/s ({one['renderer']}; llvmpipe and the label thread use both cores)")
    print(f"2 workers {two['fps']:.2f} frames/s   ratio {two['fps'] / one['fps']:.2f}x (target >= 1.8x)")
    if "pinned" in best:
        pinned = best["pinned"]
        print(f"1 worker on 1 core {pinned['fps']:.2f} frames/s -> 2 workers on 2 cores: "
              f"{two['fps'] / pinned['fps']:.2f}x per-core scaling")  # fmt: skip
        if len(os.sched_getaffinity(0)) == 2:
            # One worker also draws on the second core (label thread, llvmpipe threads); two workers cannot.
            cap = 2 * pinned["fps"] / one["fps"]
            print(f"ceiling of 2 workers vs 1 on 2 cores: 2 x {pinned['fps']:.2f} / {one['fps']:.2f} = {cap:.2f}x; "
                  f"reached {two['fps'] / one['fps'] / cap:.0%} of it")  # fmt: skip


def ray_section(tmp: Path, args: argparse.Namespace, res: tuple[int, int], count: int) -> None:
    n = args.ray_frames
    best = best_of(
        args.rounds,
        {
            "ray": lambda out: run(out, n, 2, "ray", res, count, 4),
            "pool": lambda out: run(out, n, 2, "local", res, count, 4),
        },
        tmp,
    )
    ray, pool = best["ray"], best["pool"]
    print(f"{n} frames, best of {args.rounds} interleaved rounds, each including Ray's local cluster start and stop")
    print(f"ray {ray['fps']:.2f} frames/s vs pool {pool['fps']:.2f} frames/s   "
          f"ratio {ray['fps'] / pool['fps']:.2f}x (target >= 0.9x)")  # fmt: skip


def rss_section(tmp: Path, args: argparse.Namespace) -> None:
    small = run(tmp / "small", args.small, 1, "local", (64, 48), 3, 50)
    large = run(tmp / "large", args.large, 1, "local", (64, 48), 3, 50)
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    print(f"peak RSS {args.small} frames {small['peak_rss_mb']:.0f} MB")
    print(f"peak RSS {args.large} frames {large['peak_rss_mb']:.0f} MB")
    print(f"   ratio {ratio:.3f} (target <= 1.1)")


if __name__ == "__main__":
    main()
