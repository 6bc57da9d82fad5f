"""CPU time of AbsTopK candidates, forward + backward, at the shipped site shapes.

Each candidate is checked bit-identical to ``runtime.model.abs_topk`` (values
and gradients) before it is timed; one that is not is reported and not timed.
Candidates are timed in alternation so machine drift hits all alike. Run from
the repository root:

    python benchmarks/abstopk_bench.py [--iters 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.model import abs_topk  # noqa: E402

# (B, T, width, k) of the small model's sites at batch 128: residual-width
# sites (d_model 64, k 16) and the MLP hidden site (d_mlp 256, k 64).
SHAPES = [(128, 48, 64, 16), (128, 48, 256, 64)]


def scatter_gather(x, k):  # what runtime.model.abs_topk did before
    idx = x.abs().topk(k, dim=-1, sorted=False).indices
    return torch.zeros_like(x).scatter(-1, idx, x.gather(-1, idx))


def mask_fill(x, k):
    idx = x.abs().topk(k, dim=-1, sorted=False).indices
    keep = torch.zeros_like(x, dtype=torch.bool).scatter_(-1, idx, True)
    return x.masked_fill(~keep, 0.0)


def kth_threshold(x, k):  # not tie-exact: keeps every entry equal to the kth
    a = x.abs()
    thr = a.kthvalue(a.shape[-1] - k + 1, dim=-1, keepdim=True).values
    return x.masked_fill(a < thr, 0.0)


CANDIDATES = {"current abs_topk": abs_topk, "scatter+gather": scatter_gather,
              "topk mask+masked_fill": mask_fill, "kthvalue threshold": kth_threshold}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    for b, t, width, k in SHAPES:
        x0 = torch.randn(b, t, width, generator=gen)
        g = torch.randn(b, t, width, generator=gen)
        ref_x = x0.clone().requires_grad_()
        ref = scatter_gather(ref_x, k)
        ref.backward(g)
        ok = {}
        for name, fn in CANDIDATES.items():
            xx = x0.clone().requires_grad_()
            y = fn(xx, k)
            y.backward(g)
            same = torch.equal(y.view(torch.int32), ref.detach().view(torch.int32)) and torch.equal(
                xx.grad.view(torch.int32), ref_x.grad.view(torch.int32))
            ok[name] = same
        times = {name: [] for name in CANDIDATES}
        for _ in range(args.iters):
            for name, fn in CANDIDATES.items():
                xx = x0.clone().requires_grad_()
                start = time.perf_counter()
                fn(xx, k).backward(g)
                times[name].append(time.perf_counter() - start)
        print(f"shape ({b}, {t}, {width}), k {k}, {args.threads} threads, {args.iters} iters, fwd+bwd:")
        base = min(times["scatter+gather"])
        for name in CANDIDATES:
            best = min(times[name])
            print(f"  {name:>22}: min {1e3 * best:6.2f} ms, median {1e3 * statistics.median(times[name]):6.2f} ms,"
                  f" {best / base:.2f}x scatter+gather; bit-identical: {ok[name]}")


if __name__ == "__main__":
    main()
