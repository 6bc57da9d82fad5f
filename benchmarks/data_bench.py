"""Task data speed: examples per second for each shipped task, and the cost of one training batch.

1. Sampling alone (TaskSampler.draw), per task; aim: at least 20,000 examples/s.
2. Sampling from the training side of the split (rejecting eval examples).
3. Sampling + encoding into runtime.batch.Batch, batch 128, per task and for
   the shipped mixture (specs/common.circ, `recipe`).
4. The mixture batch's cost against a 100 ms training step; aim: at most 5%.

Figures are the best of several rounds (the machine is shared: the best round
is the one least disturbed). Torch runs on one thread here, as a DataLoader
worker would.

Run: python benchmarks/data_bench.py
"""

from __future__ import annotations

import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from circuitdsl.tasks import data  # noqa: E402
from circuitdsl.pipeline import check_spec  # noqa: E402
from circuitdsl.tasks.sampler import TaskSampler  # noqa: E402

BATCH = 128
STEP_MS = 100.0  # a training step of batch 128 on this machine takes 70-150 ms


def best_rate(fn, items: int, rounds: int = 15) -> float:
    """Items per second of the fastest of ``rounds`` runs of ``fn``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return items / best


def main() -> None:
    torch.set_num_threads(1)
    program = check_spec(ROOT / "specs" / "common.circ")
    tokenizer = data.make_tokenizer(program.vocab)
    context = program.models["sparse_small"].context
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    print()
    print("| task | sampling (ex/s) | train side of split (ex/s) | sampling + encoding, batch 128 (ex/s) | ms per batch of 128 |")
    print("|---|---|---|---|---|")
    n = 5_000
    for name, task in program.tasks.items():
        sampler = TaskSampler(task)
        rng = random.Random(0)
        raw = best_rate(lambda: [sampler.draw(rng) for _ in range(n)], n)
        side = data.SplitSampler(task, "train")
        split = best_rate(lambda: [side.draw(rng) for _ in range(n)], n)
        make = data.MixtureBatches([task], batch_size=BATCH, seed=0, tokenizer=tokenizer, context=context)
        batches = 10
        encoded = best_rate(lambda: [make(i) for i in range(batches)], batches * BATCH)
        print(f"| {name} | {raw:,.0f} | {split:,.0f} | {encoded:,.0f} | {1000 * BATCH / encoded:.2f} |")

    mixture = data.mixture_of(program, "recipe")
    make = data.MixtureBatches(mixture, batch_size=BATCH, seed=0, tokenizer=tokenizer, context=context)
    batches = 10
    examples_rate = best_rate(lambda: [make.examples(i) for i in range(batches)], batches * BATCH)
    full_rate = best_rate(lambda: [make(i) for i in range(batches)], batches * BATCH)
    examples = [make.examples(i) for i in range(batches)]
    encode_rate = best_rate(
        lambda: [data.encode_examples(ex, tokenizer, make.task_names, context=context) for ex in examples], batches * BATCH
    )
    per_batch = 1000 * BATCH / full_rate
    print(
        f"| mixture `recipe` (4 tasks) | - | {examples_rate:,.0f} | {full_rate:,.0f} | {per_batch:.2f} |"
    )
    print()
    print(f"of which encoding alone: {1000 * BATCH / encode_rate:.2f} ms per batch of {BATCH}")
    share = per_batch / STEP_MS
    print(f"one batch of {BATCH}: {per_batch:.2f} ms = {share:.1%} of a {STEP_MS:.0f} ms training step "
          f"(aim <= 5%: {'met' if share <= 0.05 else 'NOT met'})")


if __name__ == "__main__":
    main()
