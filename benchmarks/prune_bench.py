"""Wall time and circuit size of ``runtime.prune`` on a freshly trained small model.

Trains the "small" SparseGPT (2 layers, d_model 64, 4 heads x 16, d_mlp 256,
AbsTopK 1/4, weight density 1/16) on a two-task mixture generated here, then
prunes one task and reports: learned vs attribution circuit sizes (nodes and
edges), losses, the controls and the time of each stage. Run from the
repository root:

    python benchmarks/prune_bench.py [--threads 2] [--trials 16] [--steps 150]

The trained weights are cached in --cache (default /tmp), keyed by the
training settings, so a rerun measures pruning alone.
"""

from __future__ import annotations

import argparse
import os
import random
import string
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.ablation import mean_activations  # noqa: E402
from runtime.batch import Batch, encode_batch  # noqa: E402
from runtime.model import ModelConfig, SparseGPT  # noqa: E402
from runtime.prune import PruneConfig, prune  # noqa: E402
from runtime.sparsity import density_schedule, project_topk_, sparsified_parameters  # noqa: E402
from runtime.tokenizer import Tokenizer  # noqa: E402

TOKENIZER = Tokenizer(list(string.ascii_letters) + list(" =:'\"\n[],0123456789") + ["]]"])
SMALL = ModelConfig(vocab_size=len(TOKENIZER), n_layer=2, d_model=64, n_head=4, d_head=16, d_mlp=256, context=40)
TASKS = ("quote_close", "while_return_true", "bracket_depth")


def quote_close(rng: random.Random) -> tuple[str, str, str]:
    """``abc = 'xy zzw`` -> ``'``: close the string with the quote that opened it."""
    quote = rng.choice("'\"")
    name = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 6)))
    words = [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 6))) for _ in range(rng.randint(1, 3))
    ]
    return f"{name} = {quote}{' '.join(words)}", quote, "'" if quote == '"' else '"'


def while_return_true(rng: random.Random) -> tuple[str, str, str]:
    """``    while True`` -> ``:``; ``return True`` -> newline."""
    keyword = rng.choice(("while", "return"))
    answer = ":" if keyword == "while" else "\n"
    return f"{'    ' * rng.randint(0, 2)}{keyword} True", answer, "\n" if answer == ":" else ":"


def bracket_depth(rng: random.Random) -> tuple[str, str, str]:
    """``x = [1, [2, 3`` -> ``]]``; ``x = [4, 5`` -> ``]``: close every open list at once."""
    depth = rng.randint(1, 2)
    items = [str(rng.randint(0, 9)) for _ in range(rng.randint(1, 4))]
    cut = rng.randint(0, len(items) - 1)
    inner = ", ".join(items[cut:])
    body = ", ".join(items[:cut] + ([f"[{inner}"] if depth == 2 else [inner]))
    name = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 4)))
    answer = "]]" if depth == 2 else "]"
    return f"{name} = [{body}", answer, "]" if answer == "]]" else "]]"


def sample(tasks: tuple[str, ...], n: int, rng: random.Random) -> Batch:
    makers = {"quote_close": quote_close, "while_return_true": while_return_true, "bracket_depth": bracket_depth}
    ids = [rng.randrange(len(tasks)) for _ in range(n)]
    rows = [makers[tasks[i]](rng) for i in ids]
    return encode_batch(
        TOKENIZER, [r[0] for r in rows], [r[1] for r in rows], competitors=[[r[2]] for r in rows],
        task_ids=ids, task_names=tasks, context=SMALL.context,
    )


def train(steps: int, batch: int, lr: float, seed: int) -> SparseGPT:
    """Plain AdamW on the answer loss, projecting weights to the annealed density after each step."""
    model = SparseGPT(SMALL, seed=seed)
    params = sparsified_parameters(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    rng = random.Random(seed)
    for step in range(steps):
        data = sample(TASKS, batch, rng)
        loss = F.cross_entropy(model(data.tokens, data.answer_pos), data.answers)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:  # linear decay over the last half
            group["lr"] = lr * min(1.0, 2 * (steps - step) / steps)
        opt.step()
        project_topk_(params, density_schedule(step, steps, SMALL.density), SMALL.min_live_per_row)
        if step % 100 == 0 or step == steps - 1:
            print(f"  train step {step:4d}  loss {loss.item():.3f}", flush=True)
    return model.eval()


@torch.no_grad()
def task_loss(model: SparseGPT, data: Batch) -> tuple[float, float]:
    logits = model(data.tokens, data.answer_pos)
    return F.cross_entropy(logits, data.answers).item(), (logits.argmax(-1) == data.answers).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=800)
    parser.add_argument("--train-batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", default="quote_close", choices=TASKS)
    parser.add_argument("--examples", type=int, default=2560, help="task examples given to prune (incl. held out)")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--target", type=float, default=0.15)
    parser.add_argument("--mean-samples", type=int, default=4000)
    parser.add_argument("--no-controls", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cache = args.cache / f"prune_bench_{'_'.join(TASKS)}_{args.train_steps}_{args.train_batch}_{args.lr}_{args.seed}.pt"
    start = time.perf_counter()
    if cache.exists():
        model = SparseGPT(SMALL)
        model.load_state_dict(torch.load(cache))
        model.eval()
        print(f"model loaded from {cache}")
    else:
        print(f"training {args.train_steps} steps, batch {args.train_batch}, on {', '.join(TASKS)}")
        model = train(args.train_steps, args.train_batch, args.lr, args.seed)
        torch.save(model.state_dict(), cache)
        print(f"trained in {time.perf_counter() - start:.1f} s")
    rng = random.Random(args.seed + 100)
    for name in TASKS:
        loss, acc = task_loss(model, sample((name,), 1000, rng))
        print(f"  {name}: loss {loss:.4f}, accuracy {acc:.3f}")

    start = time.perf_counter()
    mixture = sample(TASKS, args.mean_samples, random.Random(args.seed + 1))
    means = mean_activations(model, mixture.split(500))
    means_s = time.perf_counter() - start
    print(f"means over {args.mean_samples} mixture samples: {means_s:.1f} s")

    config = PruneConfig(target=args.target, trials=args.trials, steps=args.steps, batch=args.batch,
                         seed=args.seed, controls=not args.no_controls)
    task_batch = sample((args.task,), args.examples, random.Random(args.seed + 2))

    def progress(stage, done, total, info):
        if stage == "search":
            t = info["trial"]
            outcome = f"{t.nodes:4d} nodes kept by its masks, loss {t.loss:.3f}, reached {t.reached}"
            print(f"  trial {t.number}: {outcome}, {t.seconds:.1f} s  lam {t.params.lam:.2e} "
                  f"lr {t.params.lr:.3f} T {t.params.temperature:.3f} steps {t.params.steps}", flush=True)
        elif stage not in ("masks", "minimality"):
            print(f"  {stage}: {info}", flush=True)

    start = time.perf_counter()
    result = prune(model, task_batch, means, config, mixture=mixture.split(500)[:4], progress=progress)
    total = time.perf_counter() - start

    c, b = result.circuit, result.baseline
    print(f"\nprune {args.task}: {total:.1f} s in all ({args.threads} threads, load average "
          f"{os.getloadavg()[0]:.1f} at the end); stages: "
          + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    print(f"full model loss {result.full_loss:.4f}; everything ablated {result.empty_loss:.3f}")
    print(f"learned:     {len(c.nodes):4d} nodes {len(c.edges):4d} edges  loss {c.loss:.4f} "
          f"(calibrated {c.calibrated_loss:.4f}, scale {c.scale:.2f})  accuracy {c.accuracy:.3f}  per layer {c.per_layer}")
    if b is not None:
        print(f"attribution: {len(b.nodes):4d} nodes {len(b.edges):4d} edges  loss {b.loss:.4f} "
              f"(calibrated {b.calibrated_loss:.4f})  accuracy {b.accuracy:.3f}")
        print(f"attribution / learned nodes: {result.size_ratio:.1f}x")
    print(f"best hyperparameters: {result.best}")
    if result.controls is not None:
        ctl = result.controls
        print(f"nonsense task: reached {ctl.nonsense.reached}, {ctl.nonsense.nodes} nodes, loss {ctl.nonsense.loss:.3f} "
              f"(full model {ctl.nonsense.full_loss:.3f}); flag {ctl.nonsense_flag}")
        print(f"random model:  reached {ctl.random_model.reached}, {ctl.random_model.nodes} nodes, "
              f"loss {ctl.random_model.loss:.3f} (full model {ctl.random_model.full_loss:.3f})")
        print(f"minimality: {len(ctl.removable)} of {len(c.nodes)} nodes removable: {list(ctl.removable)}")
        print("ablation agreement: " + ", ".join(f"{k} {v:.3f}" for k, v in ctl.ablation_agreement.items()))
    print("nodes:", ", ".join(c.nodes))


if __name__ == "__main__":
    main()
