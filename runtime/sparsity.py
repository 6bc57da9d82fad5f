"""Weight sparsity: which matrices are sparse, how sparse, and when.

Training keeps weights sparse by projection, as in Gao et al. (2025): after
every optimizer step each sparsified matrix keeps only its largest-magnitude
entries (``project_topk_``), and the fraction kept is annealed from dense to
the target over the first part of training (``density_schedule``), with a
learning rate shaped to match (``sharkfin_lr``). Everything here is
deterministic: the same weights and step give the same result.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn as nn

from .model import SparseGPT


def sparsified_parameters(model: SparseGPT) -> list[tuple[str, nn.Parameter]]:
    """The weight matrices that sparsity applies to, in module order.

    Every attention and MLP matrix; the embeddings and unembedding only with
    ``config.sparsify_embeddings``. Never RMSNorm scales, sinks or the bigram
    table, which are not edges between units.
    """
    embeddings = model.config.sparsify_embeddings
    return [
        (f"{name}.weight", module.weight)
        for name, module in model.named_modules()
        if (isinstance(module, nn.Linear) and name.startswith("blocks."))
        or (embeddings and (isinstance(module, nn.Embedding) or name == "lm_head"))
    ]


@torch.no_grad()
def project_topk_(params: Iterable[tuple[str, torch.Tensor]], density: float, min_live_per_row: int) -> None:
    """Zero all but the k = max(1, round(density * numel)) largest |w| of each matrix.

    ``params`` are (name, matrix) pairs, as ``sparsified_parameters`` returns.
    Each row (output unit; a token's vector for an embedding) first keeps its
    ``min_live_per_row`` largest entries, or as many as fit k evenly across
    rows; the rest of the k go to the largest remaining entries. Exactly k
    entries are kept and the others set to exactly 0.0.
    """
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if min_live_per_row < 0:
        raise ValueError(f"min_live_per_row must be >= 0, got {min_live_per_row}")
    for _, w in params:
        rows, cols = w.shape
        k = max(1, round(density * w.numel()))
        if k >= w.numel():
            continue
        score = w.abs()
        live = min(min_live_per_row, k // rows, cols)
        if live > 0:
            # At most k entries are guaranteed, so +inf puts all of them in the top k.
            score.scatter_(1, score.topk(live, dim=1).indices, math.inf)
        keep = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
        keep[score.view(-1).topk(k, sorted=False).indices] = True
        w.masked_fill_(~keep.view_as(w), 0.0)


def density_schedule(
    step: int, total_steps: int, target: float, start_frac: float = 0.01, end_frac: float = 0.5
) -> float:
    """Density for ``step``: 1 before ``start_frac`` of training, ``target`` from
    ``end_frac`` on, and linear in density in between.

    Starting dense and annealing lets the kept weights be chosen by magnitudes
    the model has learned rather than by those of its random initialisation.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target density must be in (0, 1], got {target}")
    if not 0 <= start_frac <= end_frac <= 1:
        raise ValueError(f"need 0 <= start_frac <= end_frac <= 1, got {start_frac} and {end_frac}")
    start, end = start_frac * total_steps, end_frac * total_steps
    if step >= end:
        return target
    if step <= start:
        return 1.0
    return 1.0 + (target - 1.0) * (step - start) / (end - start)


def sharkfin_lr(
    step: int, total: int, base_lr: float, warmup_frac: float, current_density: float, final_density: float
) -> float:
    """Learning rate for ``step``: linear warmup, linear decay to 0 at ``total``,
    times sqrt(final_density / current_density).

    ``base_lr`` is the rate for the final sparse model. While the weights are
    denser than that, the factor holds the rate down (a sparser model takes a
    larger rate), so as the density anneals the rate climbs before the decay
    brings it down: the shark fin.
    """
    for name, density in (("current_density", current_density), ("final_density", final_density)):
        if not 0 < density <= 1:
            raise ValueError(f"{name} must be in (0, 1], got {density}")
    if not 0 <= warmup_frac < 1:
        raise ValueError(f"warmup_frac must be in [0, 1), got {warmup_frac}")
    warmup = warmup_frac * total
    if step < warmup:
        shape = min(1.0, (step + 1) / warmup)
    else:
        shape = max(0.0, (total - step) / (total - warmup))
    return base_lr * shape * math.sqrt(final_density / current_density)


def measured_density(model: SparseGPT) -> dict[str, float]:
    """Fraction of nonzero entries in each sparsified matrix."""
    return {name: torch.count_nonzero(p).item() / p.numel() for name, p in sparsified_parameters(model)}
