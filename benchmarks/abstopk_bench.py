"""CPU time of AbsTopK candidates, forward + backward, at the shipped site shapes.

Each candidate is checked bit-identical to ``runtime.model.abs_topk`` (values
and gradients) before it is timed; one that is not is reported and not timed.
Candidates are timed in alternation so machine drift hits all alike. Two are
not implementations but bounds: "compiled" is the current function through
``torch.compile`` (Inductor's C++ backend; compile time not counted), and
"threshold floor" is what a threshold carried over from the last step would
cost at best, given the exact threshold of this very input for free (no check
that it still keeps k, no correction where it does not). Run from the
repository root:

    python benchmarks/abstopk_bench.py [--iters 50] [--no-compile]
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


def threshold_floor(x0: torch.Tensor, k: int):
    """Masking by a threshold known in advance: the kth |x| of ``x0`` itself, computed outside the timing."""
    a = x0.abs()
    thr = a.kthvalue(a.shape[-1] - k + 1, dim=-1, keepdim=True).values

    def apply(x, k):
        return x.masked_fill(x.detach().abs() < thr, 0.0)

    return apply


def candidates(x0: torch.Tensor, k: int, compiled) -> dict:
    out = dict(CANDIDATES, **{"threshold floor": threshold_floor(x0, k)})
    if compiled is not None:
        out["compiled"] = compiled
    return out


def topk_values_threshold(x, k):  # same values unless a nonzero |x| ties the kth (it keeps both)
    a = x.abs()
    thr = a.topk(k, dim=-1, sorted=False).values.amin(-1, keepdim=True)
    return x.masked_fill(a < thr, 0.0)


def inference(iters: int) -> None:
    """Forward only, under no_grad, at the verifier's batch of 256 rows: where only values count,
    a threshold may keep extra tied entries, so more candidates are exact."""
    gen = torch.Generator().manual_seed(1)
    fns = {"current abs_topk": abs_topk, "kthvalue threshold": kth_threshold, "topk values threshold": topk_values_threshold}
    for width, k in ((64, 16), (256, 64)):
        x = torch.randn(256, 40, width, generator=gen)
        same = {name: torch.equal(fn(x, k), abs_topk(x, k)) for name, fn in fns.items()}
        times = {name: [] for name in fns}
        with torch.no_grad():
            for _ in range(iters):
                for name, fn in fns.items():
                    start = time.perf_counter()
                    fn(x, k)
                    times[name].append(time.perf_counter() - start)
        base = min(times["current abs_topk"])
        print(f"inference, shape (256, 40, {width}), k {k}, forward only:")
        for name in fns:
            print(f"  {name:>22}: min {1e3 * min(times[name]):6.2f} ms, {min(times[name]) / base:.2f}x current; same values: {same[name]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile candidate")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    compiled = None if args.no_compile else torch.compile(scatter_gather, dynamic=False)
    gen = torch.Generator().manual_seed(0)
    for b, t, width, k in SHAPES:
        x0 = torch.randn(b, t, width, generator=gen)
        g = torch.randn(b, t, width, generator=gen)
        ref_x = x0.clone().requires_grad_()
        ref = scatter_gather(ref_x, k)
        ref.backward(g)
        ok, fns = {}, candidates(x0, k, compiled)
        compile_start = time.perf_counter()
        if compiled is not None:
            compiled(x0.clone().requires_grad_(), k).backward(g)
            print(f"  torch.compile's first call (compiling): {time.perf_counter() - compile_start:.1f} s")
        for name, fn in fns.items():
            xx = x0.clone().requires_grad_()
            y = fn(xx, k)
            y.backward(g)
            same = torch.equal(y.view(torch.int32), ref.detach().view(torch.int32)) and torch.equal(
                xx.grad.view(torch.int32), ref_x.grad.view(torch.int32))
            ok[name] = same
        times = {name: [] for name in fns}
        for _ in range(args.iters):
            for name, fn in fns.items():
                xx = x0.clone().requires_grad_()
                start = time.perf_counter()
                fn(xx, k).backward(g)
                times[name].append(time.perf_counter() - start)
        print(f"shape ({b}, {t}, {width}), k {k}, {args.threads} threads, {args.iters} iters, fwd+bwd:")
        base = min(times["scatter+gather"])
        for name in fns:
            best = min(times[name])
            print(f"  {name:>22}: min {1e3 * best:6.2f} ms, median {1e3 * statistics.median(times[name]):6.2f} ms,"
                  f" {best / base:.2f}x scatter+gather; bit-identical: {ok[name]}")
    inference(args.iters)


if __name__ == "__main__":
    main()
