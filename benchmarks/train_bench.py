"""Training benchmarks for issue 4, all on the shipped recipe (specs/common.circ).

    python benchmarks/train_bench.py overhead      # sparse vs dense step time, one run, as a ratio
    python benchmarks/train_bench.py seeds -n 5    # held-out accuracy, time to 98%, density, dead neurons

Run on an otherwise idle machine; figures go in benchmarks/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circuitdsl.tasks import data  # noqa: E402
from circuitdsl.pipeline import check_spec  # noqa: E402
from circuitdsl.build.models import build_model, tokenizer_for  # noqa: E402
from circuitdsl.spec.plan import plan_training  # noqa: E402
from runtime.model import ModelConfig, SparseGPT  # noqa: E402
from runtime.sparsity import measured_density  # noqa: E402
from runtime.train import TrainConfig, evaluate, train  # noqa: E402


def shipped_plan(seed: int | None = None):
    program = check_spec(ROOT / "specs" / "common.circ")
    return plan_training(program.tasks, program.vocab, program.trains["recipe"], seed=seed)


def overhead(steps: int = 60, repeats: int = 3) -> None:
    """Step time of the sparse recipe vs the same model dense (density 1, no AbsTopK), interleaved."""
    plan = shipped_plan()
    tokenizer = tokenizer_for(plan)
    context = plan.model["context"]
    stream = data.training_batches(plan.tasks, plan.weights, batch_size=plan.batch, seed=0, tokenizer=tokenizer, context=context)
    batches = [next(stream) for _ in range(steps)]
    eval_set = batches[0]
    sparse_cfg = ModelConfig(vocab_size=len(tokenizer), **plan.model)
    dense_cfg = ModelConfig(vocab_size=len(tokenizer), **dict(plan.model, density=1.0, act_topk=1.0))
    # Both anneal from the first step so every timed step pays the projection.
    config = TrainConfig(steps=steps, lr=1e-3, anneal=(0.0, 0.5), eval_every=10**9)
    times = {"sparse": [], "dense": []}
    for _ in range(repeats):
        for label, cfg in (("sparse", sparse_cfg), ("dense", dense_cfg)):
            model = SparseGPT(cfg, seed=0)
            start = time.perf_counter()
            train(model, config, iter(batches), eval_set)
            times[label].append((time.perf_counter() - start) / steps)
    sparse, dense = min(times["sparse"]), min(times["dense"])
    print(f"threads {torch.get_num_threads()}, batch {plan.batch}, context {context}, {steps} steps x {repeats}")
    print(f"step time: sparse {sparse * 1e3:.1f} ms, dense {dense * 1e3:.1f} ms, ratio {sparse / dense:.2f}x (aim <= 1.25x)")


def seeds(n: int, first: int = 0) -> None:
    rows = []
    for seed in range(first, first + n):
        plan = shipped_plan(seed)
        tokenizer = tokenizer_for(plan)
        context = plan.model["context"]
        model = build_model(plan, tokenizer)
        eval_set = data.eval_batch(plan.tasks, plan.eval_examples, seed=seed, tokenizer=tokenizer, context=context)
        batches = data.training_batches(plan.tasks, plan.weights, batch_size=plan.batch, seed=seed, tokenizer=tokenizer, context=context)
        config = TrainConfig(**dict(plan.train, eval_every=50))
        result = train(model, config, batches, eval_set)
        first98 = next(
            (c["step"] for c in result.curve if all(t["accuracy"] >= 0.98 for t in c["tasks"].values())), None
        )
        per_step = result.seconds / result.steps_done
        dead = _dead_fraction(model, eval_set)
        density = sorted(set(round(d, 5) for d in measured_density(model).values()))
        accuracies = {k: round(m.accuracy, 4) for k, m in evaluate(model, eval_set).items()}
        rows.append((seed, accuracies, first98, first98 * per_step if first98 else None, result.tokens / result.seconds, density, dead))
        print(
            f"seed {seed}: {accuracies}  98% at step {first98} (~{first98 * per_step if first98 else float('nan'):.0f} s)"
            f"  {result.tokens / result.seconds:,.0f} tok/s  total {result.seconds:.0f} s  density {density}  dead MLP {dead}",
            flush=True,
        )
    worst = min(min(r[1].values()) for r in rows)
    print(f"worst held-out accuracy over {n} seeds and all tasks: {worst:.4f}")
    times = [r[3] for r in rows if r[3] is not None]
    if times:
        print(f"time to 98% on every task: median {statistics.median(times):.0f} s")


@torch.no_grad()
def _dead_fraction(model: SparseGPT, batch) -> list[float]:
    """Share of MLP neurons never active (nonzero after AbsTopK) on the batch, per layer."""
    seen: dict[str, torch.Tensor] = {}
    hooks = {}
    for layer in range(model.config.n_layer):
        site = f"{layer}.mlp.post_act"
        hooks[site] = (lambda s: lambda x: seen.__setitem__(s, (x != 0).flatten(0, 1).any(0) | seen.get(s, False)))(site)
    with model.hooks(hooks):
        model(batch.tokens)
    return [round(1 - seen[s].float().mean().item(), 3) for s in sorted(seen)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["overhead", "seeds"])
    parser.add_argument("-n", type=int, default=5)
    parser.add_argument("--first", type=int, default=0, help="first seed (to resume a run)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overhead() if args.what == "overhead" else seeds(args.n, args.first)
