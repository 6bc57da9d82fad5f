"""Parse + check speed of the language front end.

1. A generated 1,000-line spec (many tasks, models, trains, prunes and hypotheses),
   parsed alone and parsed and checked, in process; aim: parse + check under
   100 ms per 1,000 lines.
2. Big files, parsed alone and parsed and checked: 1 MB of such blocks, and 1 MB
   of one task with 25,000 commented bindings; with --big, 10 MB of blocks too.
   Parsing is linear in the text; aim: 1 MB in about a second.
3. `circ check specs/bracket_depth.circ` as a user runs it, interpreter start
   included; aim: under 0.5 s wall.

4. With --lark-cython (when the lark-cython package is installed): our LALR loop
   against lark-cython's compiled parser over the same tables and node builder,
   on the 1 MB files.

Run: python benchmarks/parse_bench.py [--big] [--lark-cython]
(medians of repeated runs; CPU time in process, wall for 3.)
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
from circuitdsl.syntax.parser import load_parser, parse  # noqa: E402


def generated_spec(target_lines: int = 1000) -> str:
    """Blocks in the shape of the shipped specs, renamed, until the spec has ~target_lines lines."""
    parts = ['vocab {\n    tokens = ["]]", ".add", " +="]\n}\n']
    lines = parts[0].count("\n")
    i = 0
    while lines < target_lines:
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
        lines += parts[-1].count("\n")
        i += 1
    return "".join(parts)


def blocks_of_size(megabytes: float) -> str:
    """:func:`generated_spec` grown to about ``megabytes`` MB."""
    sample = generated_spec()
    return generated_spec(int(megabytes * 1e6 * sample.count("\n") / len(sample)))


def one_big_task(megabytes: float) -> str:
    """One task with a chain of commented bindings, about ``megabytes`` MB."""
    count = int(megabytes * 1e6 / 40)
    body = "".join(f"    v{i} = {i} + v0 * 2  # c{i}\n" for i in range(1, count))
    return f'vocab {{ tokens = ["]]"] }}\ntask big {{\n    v0 = 1\n{body}    prompt = "x"\n    answer = "]]"\n}}\n'


def cpu_seconds(fn) -> float:
    """CPU time of one call: the machine may be busy with other work."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def wall_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare_lark_cython(sizes: list[tuple[str, str]]) -> None:
    """Our loop (``parser._DRIVER``) against lark-cython's parser, both calling our node builder."""
    import gc

    import lark
    import lark_cython

    from circuitdsl.syntax import parser as front

    compiled = lark.Lark(
        front.grammar_path().read_text(encoding="utf-8"),
        _plugins=lark_cython.plugins,
        transformer=front._BUILDER,
        **front._PARSER_OPTIONS,
    )
    for label, big in sizes:
        times: dict[str, list[float]] = {"ours": [], "lark-cython": []}
        results = {}
        for _ in range(3):
            for name, run in (("ours", front._DRIVER.parse), ("lark-cython", compiled.parse)):
                # The builder tells tokens from nodes by lark's Token class; lark-cython's
                # tokens are a class of their own, so its run widens that check.
                front.Token = (lark.Token, lark_cython.Token) if name == "lark-cython" else lark.Token
                front._BUILDER.begin("big.circ")
                gc.disable()
                try:
                    start = time.process_time()
                    results[name] = run(big)
                    times[name].append(time.process_time() - start)
                finally:
                    gc.enable()
                    front.Token = lark.Token
        same = list(results["ours"]) == list(results["lark-cython"])
        ours, theirs = min(times["ours"]), min(times["lark-cython"])
        print(f"{label}: parse, our loop {ours:.2f} s, lark-cython {theirs:.2f} s ({theirs / ours:.2f}x); same nodes: {same}")


def main() -> None:
    load_parser()  # the table cache is warm for users after their first run
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")

    text = generated_spec()
    lines = text.count("\n")
    check_spec_text(text, "generated.circ")  # warm the lexer
    # Interleaved, so that a machine busy with something else slows both alike.
    parse_times, check_times = [], []
    for _ in range(9):
        parse_times.append(cpu_seconds(lambda: parse(text, "generated.circ")))
        check_times.append(cpu_seconds(lambda: check_spec_text(text, "generated.circ")))
    parsing, checking = statistics.median(parse_times), statistics.median(check_times)
    print(f"parse:         {lines} lines in {parsing * 1000:.1f} ms = {parsing / lines * 1e6:.1f} ms per 1,000 lines")
    print(f"parse + check: {lines} lines in {checking * 1000:.1f} ms = {checking / lines * 1e6:.1f} ms per 1,000 lines")
    print(f"  parsing is {parsing / checking:.0%} of parse + check")

    sizes = [("1 MB of blocks", blocks_of_size(1)), ("1 MB, one task", one_big_task(1))]
    if "--big" in sys.argv:
        sizes.append(("10 MB of blocks", blocks_of_size(10)))
    for label, big in sizes:
        parsed = cpu_seconds(lambda: parse(big, "big.circ"))
        checked = cpu_seconds(lambda: check_spec_text(big, "big.circ"))
        print(f"{label} ({big.count(chr(10))} lines): parse {parsed:.2f} s, parse + check {checked:.2f} s")
    if "--lark-cython" in sys.argv:
        compare_lark_cython(sizes)

    command = [sys.executable, "-m", "circuitdsl", "check", "specs/bracket_depth.circ"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    wall = wall_seconds(lambda: subprocess.run(command, cwd=ROOT, check=True, capture_output=True), 7)
    baseline = wall_seconds(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 7)
    print(f"circ check specs/bracket_depth.circ: {wall:.3f} s wall (bare interpreter start: {baseline:.3f} s)")


if __name__ == "__main__":
    main()
