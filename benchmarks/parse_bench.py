"""Parse + check speed of the language front end.

1. A generated 1,000-line spec (many tasks, models, trains, prunes and hypotheses),
   parsed and checked in process; aim: under 100 ms per 1,000 lines.
2. `circ check specs/bracket_depth.circ` as a user runs it, interpreter start
   included; aim: under 0.5 s wall.

Run: python benchmarks/parse_bench.py   (medians of repeated runs)
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from circuitdsl.pipeline import check_spec_text  # noqa: E402
from circuitdsl.syntax.parser import load_parser  # noqa: E402


def generated_spec(target_lines: int = 1000) -> str:
    """Blocks in the shape of the shipped specs, renamed, until the spec has ~target_lines lines."""
    parts = ['vocab {\n    tokens = ["]]", ".add", " +="]\n}\n']
    i = 0
    while sum(p.count("\n") for p in parts) < target_lines:
        parts.append(
            f"""
task depth_{i} {{
    depth  = choice(1, 2)
    name   = identifier(1..4)
    body   = nested_list(depth: depth, items: 1..4, values: int(0..9))
    prompt = "${{name}} = ${{body}}"
    answer = if depth == 2 then "]]" else "]"
    competitors = if depth == 2 then "]" else "]]"
}}
model m_{i} {{
    layers  = 2
    d_model = 64
    heads   = 4
    context = 64
    density = 1/16
}}
train t_{i} {{
    model  = m_{i}
    tasks  = {{depth_{i}: 1}}
    steps  = 800
    anneal = 1% .. 50%
}}
prune p_{i} {{
    train  = t_{i}
    task   = depth_{i}
    target = loss <= 0.15
}}
hypothesis h_{i} on p_{i} {{
    nodes <= 40
    role opener  : resid channel in layer 0 where mean(act | token == "[") > 0
    role counter : attn head in layer 1 where reads(opener, as: value)
    ablate circuit    -> accuracy <= 0.6
    ablate complement -> loss <= 0.3
    adversarial strings {{
        depth  = 1
        prompt = "${{name}} = [\\"[[\\", " + body
        expect accuracy drops by >= 0.25
    }}
}}
"""
        )
        i += 1
    return "".join(parts)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    load_parser()  # the table cache is warm for users after their first run
    text = generated_spec()
    lines = text.count("\n")
    check_spec_text(text, "generated.circ")  # warm the lexer
    seconds = median_seconds(lambda: check_spec_text(text, "generated.circ"), 7)
    per_1000 = seconds / lines * 1000
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"parse + check: {lines} lines in {seconds * 1000:.1f} ms = {per_1000 * 1000:.1f} ms per 1,000 lines")
    command = [sys.executable, "-m", "circuitdsl", "check", "specs/bracket_depth.circ"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    wall = median_seconds(lambda: subprocess.run(command, cwd=ROOT, check=True, capture_output=True), 7)
    baseline = median_seconds(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 7)
    print(f"circ check specs/bracket_depth.circ: {wall:.3f} s wall (bare interpreter start: {baseline:.3f} s)")


if __name__ == "__main__":
    main()
