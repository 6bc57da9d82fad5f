"""Wall time of the main job, `circ verify`, cold (nothing cached) and warm (model and circuit cached).

Runs the installed `circ` as a user would, in a fresh cache folder, then again
in the same folder, and prints the wall times with the split the run record
gives (train / prune / verify). Run from the repository root:

    python benchmarks/verify_bench.py [specs/bracket_depth.circ] [--threads 2] [--warm-runs 3]
    python benchmarks/verify_bench.py --warm-cache ~/.cache/circuitdsl   # warm runs only, in that cache

The cold run trains the shipped model and prunes the circuit (minutes); the
warm runs only load them and decide the claims. The limits (issue 6): cold
under 5 minutes, warm under 20 seconds, on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_verify(spec: str, cache: Path, threads: int | None, out: Path) -> tuple[float, dict, int]:
    command = ["circ", "verify", spec, "--json", "--quiet", "--cache-dir", str(cache), "--out", str(out)]
    if threads is not None:
        command += ["--threads", str(threads)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        sys.exit(f"circ verify gave no JSON (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return wall, document, done.returncode


def split(document: dict) -> dict:
    """Seconds per stage, summed over the hypotheses' seed runs."""
    total: dict[str, float] = {}
    for hypothesis in document["hypotheses"]:
        for seed in hypothesis["record"]["seeds"]:
            for stage, seconds in seed["seconds"].items():
                total[stage] = total.get(stage, 0.0) + seconds
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="specs/bracket_depth.circ")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--warm-cache", type=Path, default=None, help="skip the cold run: time warm runs in this cache")
    args = parser.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    work = Path(tempfile.mkdtemp(prefix="verify-bench-"))
    cache = args.warm_cache or work / "cache"
    try:
        if args.warm_cache is None:
            cold, document, code = run_verify(args.spec, cache, args.threads, work / "out")
            stages = ", ".join(f"{k} {v:.1f} s" for k, v in split(document).items())
            print(f"cold: {cold:.1f} s wall (exit {code}); {stages}")
        warm = []
        for _ in range(args.warm_runs):
            wall, document, code = run_verify(args.spec, cache, args.threads, work / "out")
            warm.append(wall)
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in split(document).items())
        print(f"warm: median {statistics.median(warm):.1f} s wall of {args.warm_runs} (exit {code}); last run {stages}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
