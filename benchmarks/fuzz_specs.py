"""Hostile input, counted: mutate the shipped specs and check each mutant as `circ check` would.

    python benchmarks/fuzz_specs.py --count 5000 --seed 0

Every mutant of a shipped spec (or example) is written beside the original, so
its imports resolve, and run through the language half of the pipeline:
check, and for a spec that checks, fmt, show --json and 20 draws of every task
and adversarial variant (as `circ sample`). Each outcome is one of

    ok          the mutant is a valid spec, and formats and serialises
    located     a CircError whose every diagnostic has a file:line:col
    unlocated   a CircError with a diagnostic that has no place
    timeout     longer than --timeout seconds (a hang)
    memory      MemoryError (the process is capped at --memory GiB)
    crash:T     any other exception, of type T (a traceback for the user)

and the counts are printed as a table (issue 13's figures in RESULTS.md come
from here). ``tests/property/test_fuzz_specs.py`` runs the same mutations
under hypothesis and fails on anything but ok or located.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitdsl.diagnostics import CircError  # noqa: E402
from circuitdsl.pipeline import check_spec  # noqa: E402
from circuitdsl.spec.serialize import to_data  # noqa: E402
from circuitdsl.syntax.files import read_source  # noqa: E402
from circuitdsl.tasks.sampler import sample_examples  # noqa: E402
from circuitdsl.syntax.formatter import format_source  # noqa: E402

#: What a mutation inserts: punctuation and keywords that confuse a parser, and
#: values that broke the checker before (huge, negative, non-finite, deep).
INSERTIONS = [
    "{", "}", "(", ")", "[", "]", "=", ":", ",", '"', "'", "#", "->", "..", "|", "%", "-", "==", "\n", " ",
    "\\", "${", "$", "in", "if", "then", "else", "and", "not", "role", "ablate", "adversarial", "expect",
    "task", "model", "train", "prune", "hypothesis", "import", "extends", "when", "with", "\t", "\r",
    "\u00e9", "\U0001f600", "\x00", "\ufeff",
    "1e400", "-1", "0", "1/0", "10 ** 9", "99999999999999999999999", "9" * 400, "1e308 * 10", "0.0",
    "[" * 500, "(" * 500, "- " * 500, " + 1" * 500, " * 1" * 500, "not " * 300,
    '"ab" * 1000000000', "repeat(\"x\", 1000000000000)", "word(100000000)", "choice(1, 2, weights: [1e400, 1])",
    "d_mlp = 1000000000", "context = 1048576", "eval_examples = 1e12", "steps = 1e15", "confidence = 1",
    'import "/etc/passwd"', 'import "../../../../etc/hosts"', 'import "/dev/zero"',
]
#: Inserted at the start of a block's body, where it parses: 1,500 variables, each reading
#: the next, which a recursive dependency search follows until the stack runs out.
CHAIN = "".join(f"    chain{i} = chain{i + 1} + 1\n" for i in range(1500)) + "    chain1500 = 1\n"
_BLOCK_START = re.compile(r"^(?:task|adversarial|model|train)\b[^\n]*\{[ \t]*\n", re.M)
HOSTILE_NUMBERS = ["0", "-1", "-0", "1e400", "1e-400", "99999999999999999999", "9" * 311, "0.5", "1e12", "1/0", "3.7"]
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?(?![\w.])")
_NAME = re.compile(r"\b[a-z_][a-z0-9_]{2,}\b")


def sources() -> list[Path]:
    return sorted((ROOT / "specs").glob("**/*.circ")) + sorted((ROOT / "examples").glob("**/*.circ"))


def mutate(text: str, rng: random.Random) -> str:
    """One to six random edits of ``text``."""
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(7)
        at = rng.randint(0, len(text))
        if kind == 6:
            starts = [m.end() for m in _BLOCK_START.finditer(text)]
            if starts:
                at = rng.choice(starts)
                text = text[:at] + CHAIN + text[at:]
        elif kind == 0:
            text = text[:at] + rng.choice(INSERTIONS) + text[at:]
        elif kind == 1:
            text = text[:at] + text[at + rng.randint(1, 40) :]
        elif kind in (2, 3):
            pattern = _NUMBER if kind == 2 else _NAME
            found = list(pattern.finditer(text))
            if found:
                m = rng.choice(found)
                new = rng.choice(HOSTILE_NUMBERS) if kind == 2 else _typo(m.group(0), rng)
                text = text[: m.start()] + new + text[m.end() :]
        else:
            lines = text.split("\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            if kind == 4:
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word))
    return rng.choice([word[:i] + word[i + 1 :], word[:i] + word[i] * 2 + word[i + 1 :], word[::-1]])


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def classify(path: Path, timeout: float) -> tuple[str, str]:
    """(outcome, detail) of checking the spec at ``path`` as `circ check`, `fmt` and `show --json` do."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        try:
            spec = check_spec(path)
        except CircError as err:
            unlocated = [d for d in err.diagnostics if d.span is None or d.span.line < 1 or d.span.column < 1]
            if unlocated:
                return "unlocated", unlocated[0].message
            return "located", err.diagnostics[0].code
        json.dumps(to_data(spec), ensure_ascii=False)
        format_source(read_source(path), str(path))
        try:
            for task in spec.tasks.values():
                sample_examples(task, 20, 0)
            for hypothesis in spec.hypotheses.values():
                for variant in hypothesis.variants:
                    sample_examples(spec.tasks[hypothesis.prune.task], 20, 0, variant)
        except CircError as err:  # a value the checker could not rule out, found while drawing
            return "located", err.diagnostics[0].code
        return "ok", ""
    except _Timeout:
        return "timeout", ""
    except MemoryError:
        return "memory", ""
    except RecursionError as err:
        return "crash:RecursionError", str(err)[:120]
    except Exception as err:  # noqa: BLE001 - counting what escapes is the point
        return f"crash:{type(err).__name__}", str(err)[:120]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Workspace:
    """A copy of specs/ and examples/ in a temporary project, so mutants beside them import what they did."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="circ-fuzz-"))
        (self.root / "circ.toml").write_text("")
        for folder in ("specs", "examples"):
            shutil.copytree(ROOT / folder, self.root / folder)

    def mutant(self, original: Path, text: str) -> Path:
        path = self.root / original.relative_to(ROOT).parent / "fuzz_mutant.circ"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return path

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds before a mutant counts as a hang")
    parser.add_argument("--memory", type=float, default=4.0, help="address-space cap in GiB")
    parser.add_argument("--show", type=int, default=3, help="examples to print of each failure kind")
    parser.add_argument("--keep", type=Path, default=None, help="save each failing mutant in this folder")
    args = parser.parse_args()
    cap = int(args.memory * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    rng = random.Random(args.seed)
    files = sources()
    texts = {f: f.read_text(encoding="utf-8") for f in files}
    workspace = Workspace()
    counts: collections.Counter = collections.Counter()
    examples: dict[str, list[str]] = collections.defaultdict(list)
    slowest = (0.0, "")
    started = time.perf_counter()
    try:
        for i in range(args.count):
            original = rng.choice(files)
            text = mutate(texts[original], rng)
            path = workspace.mutant(original, text)
            t0 = time.perf_counter()
            outcome, detail = classify(path, args.timeout)
            elapsed = time.perf_counter() - t0
            slowest = max(slowest, (elapsed, f"#{i} {original.name}"))
            counts[outcome] += 1
            if outcome not in ("ok", "located"):
                if len(examples[outcome]) < args.show:
                    examples[outcome].append(f"#{i} from {original.relative_to(ROOT)}: {detail}")
                if args.keep is not None:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    name = f"{i}-{outcome.replace(':', '-')}-{original.relative_to(ROOT).as_posix().replace('/', '_')}"
                    (args.keep / name).write_text(text, encoding="utf-8", errors="surrogatepass")
    finally:
        workspace.close()
    total = time.perf_counter() - started
    print(f"{args.count} mutants of {len(files)} shipped specs, seed {args.seed}, {total:.0f} s "
          f"(slowest {slowest[0]:.2f} s, {slowest[1]})")
    print("| outcome | count |\n|---|---|")
    for outcome, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"| {outcome} | {count} |")
    for outcome, shown in examples.items():
        print(f"\n{outcome}:")
        for line in shown:
            print("  " + line)


if __name__ == "__main__":
    main()
