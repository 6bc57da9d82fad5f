"""Frozen norms: every RMSNorm divides by its scale from the unpruned pass.

Residual reads come after RMSNorm, so ablating one residual write changes
the norm of the stream and with it every later read, kept or not: a
circuit's loss then mixes what the ablated nodes carried with how they
scaled the rest. With frozen norms (the paper's release offers them) each
norm's ``rsqrt(mean(x^2) + eps)`` is taken from the same rows run with
nothing ablated, so ablation changes only what it removes.

``norm_scales`` records those factors; ``frozen_norms`` applies them, with
the rows repeated ``repeat`` times when trials are laid out as a batch
dimension (``trials``). With nothing ablated the recorded factor is the
live one bit for bit, so the identity check still holds exactly.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

from .batch import Batch
from .model import RMSNorm, SparseGPT

NORMS = ("live", "frozen")


def _norms(model: SparseGPT) -> list[RMSNorm]:
    return [m for m in model.modules() if isinstance(m, RMSNorm)]


def _factor(norm: RMSNorm, x: Tensor) -> Tensor:
    # The same expression as RMSNorm.forward, so the recorded factor is its own bit for bit.
    return torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)


@torch.no_grad()
def norm_scales(model: SparseGPT, batch: Batch) -> list[Tensor]:
    """Each RMSNorm's factor on ``batch`` (answer_pos mode), unablated: (B, T or 1, 1) per norm."""
    factors: list[Tensor] = []
    handles = [
        norm.register_forward_hook(lambda module, args, out: factors.append(_factor(module, args[0])))
        for norm in _norms(model)
    ]
    try:
        model(batch.tokens, batch.answer_pos)
    finally:
        for handle in handles:
            handle.remove()
    # modules() order is construction order, forward-hook order is call order: key by call order.
    return factors


@contextmanager
def frozen_norms(model: SparseGPT, factors: list[Tensor] | None, repeat: int = 1) -> Iterator[None]:
    """Within the block, RMSNorm i uses ``factors[i]`` (rows tiled ``repeat`` times); None = live norms."""
    if factors is None:
        yield
        return
    tiled = [f.repeat(repeat, 1, 1) if repeat > 1 else f for f in factors]
    calls = [0]  # norms run in the order they were recorded, once per forward pass
    handles = []

    def hook(module: RMSNorm, args, out):
        factor = tiled[calls[0] % len(tiled)]
        calls[0] += 1
        return args[0] * factor * module.weight

    for norm in _norms(model):
        handles.append(norm.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
