"""CPU step time of SparseGPT: AbsTopK activations (1/4 kept) against dense ones.

Times forward + backward of the default "small" model on a batch of 128, in
both forward modes (loss at one answer position, as task training uses it,
and next-token loss at every position), and the weight projection a training
step adds. The two models are timed in alternation so machine drift hits
both alike. Run from the repository root:

    python benchmarks/model_bench.py [--iters 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.model import ModelConfig, SparseGPT  # noqa: E402
from runtime.sparsity import project_topk_, sparsified_parameters  # noqa: E402

BATCH = 128
SMALL = ModelConfig(vocab_size=100, n_layer=2, d_model=64, n_head=4, d_head=16, d_mlp=256, context=48)


def step(model: SparseGPT, tokens: torch.Tensor, answer_pos: torch.Tensor | None) -> None:
    logits = model(tokens, answer_pos)
    if answer_pos is None:
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
    else:
        loss = F.cross_entropy(logits, tokens[:, 0])
    model.zero_grad(set_to_none=True)
    loss.backward()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, SMALL.vocab_size, (BATCH, SMALL.context), generator=gen)
    answer_pos = torch.randint(0, SMALL.context, (BATCH,), generator=gen)
    models = {
        "act_topk 1/4": SparseGPT(SMALL),
        "dense acts": SparseGPT(dataclasses.replace(SMALL, act_topk=1.0)),
    }
    print(f"SparseGPT small, batch {BATCH}, context {SMALL.context}, {args.threads} threads, "
          f"{args.iters} steps each (forward + backward)")
    for mode, pos in (("answer_pos", answer_pos), ("all positions", None)):
        times: dict[str, list[float]] = {name: [] for name in models}
        for name, model in models.items():  # the first steps pay for allocation
            for _ in range(5):
                step(model, tokens, pos)
        for _ in range(args.iters):
            for name, model in models.items():
                times[name].append(timed(lambda: step(model, tokens, pos)))
        # The minimum is the least disturbed by other load on a shared machine.
        for stat in (statistics.median, min):
            ms = {name: 1e3 * stat(t) for name, t in times.items()}
            print(f"  {mode:>13} {stat.__name__:>6}: " + ", ".join(f"{name} {v:6.1f} ms" for name, v in ms.items())
                  + f"; topk/dense = {ms['act_topk 1/4'] / ms['dense acts']:.2f}")

    params = sparsified_parameters(models["act_topk 1/4"])
    project = [timed(lambda: project_topk_(params, SMALL.density, SMALL.min_live_per_row)) for _ in range(args.iters)]
    print(f"  project_topk_ at density {SMALL.density:.4f}: {1e3 * statistics.median(project):.2f} ms")


if __name__ == "__main__":
    main()
