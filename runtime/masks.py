"""Learnable node masks: one score per node, kept when the score is >= 0.

The forward pass uses the hard decision, so the model being trained is
exactly a pruned model (no half-kept nodes whose partial activation the
loss could come to rely on). The backward pass is that of the soft gate
sigmoid(score / temperature), a straight-through surrogate, for the score
*and* for the activation passing the gate. The second matters: with a hard
backward, two nodes in series that are both off (a residual read and the
key channel it feeds, say) get no gradient at all, since each one's effect
runs through the other, and the pair stays pruned for good however much the
task needs it. Through the soft gate a little gradient always gets past.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from .model import Hook
from .nodes import node_name, sites


def straight_through(score: Tensor, temperature: float) -> Tensor:
    """1.0 where score >= 0, else 0.0; gradient d sigmoid(score / temperature) / d score."""
    soft = torch.sigmoid(score / temperature)
    # soft - soft.detach() is exactly 0, so the value is exactly the hard step.
    return (score >= 0).to(score.dtype) + (soft - soft.detach())


class _Gate(torch.autograd.Function):
    """hard * x + (1 - hard) * value forward; the gradient of soft * x + (1 - soft) * value backward."""

    @staticmethod
    def forward(ctx, x: Tensor, hard: Tensor, soft: Tensor, value: Tensor) -> Tensor:
        ctx.save_for_backward(x, soft, value)
        # With hard exactly 1 this is x bit for bit (0 + 1 * x): the identity check relies on it.
        return torch.addcmul((1 - hard) * value, hard, x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, soft, value = ctx.saved_tensors
        if value.dim() <= 1:  # one value per node: sum (x - value) * grad as x * grad - value * grad
            grad_soft = (x * grad).sum_to_size(soft.shape) - value * grad.sum_to_size(soft.shape)
        else:
            grad_soft = ((x - value) * grad).sum_to_size(soft.shape)
        return grad * soft, None, grad_soft, None


class NodeMasks:
    """Scores for every node of a model, one flat vector in canonical order."""

    def __init__(self, config, init: float = 0.1, noise: float = 0.01, generator: torch.Generator | None = None):
        # Just above zero: all nodes start kept, and a small step can drop one.
        # Started far from zero (e.g. 1.0) they drift down together under the
        # size penalty and cross zero in the same few steps: the circuit collapses.
        self.sites = sites(config)
        self.widths = [site.width for site in self.sites]
        score = init + noise * torch.randn(sum(self.widths), generator=generator)
        self.score = score.requires_grad_(True)

    @property
    def scores(self) -> dict[str, Tensor]:
        """Per-site views of the flat scores."""
        return dict(zip((s.name for s in self.sites), self.score.split(self.widths)))

    def parameters(self) -> list[Tensor]:
        return [self.score]

    def gates(self, temperature: float) -> tuple[Tensor, Tensor]:
        """(hard, soft) flat gates: hard is exactly 0 or 1, soft = sigmoid(score / temperature)."""
        return (self.score >= 0).to(self.score.dtype), torch.sigmoid(self.score / temperature)

    def count(self, temperature: float) -> Tensor:
        """Number of kept nodes, with the surrogate's gradient."""
        return straight_through(self.score, temperature).sum()

    def hooks(self, hard: Tensor, soft: Tensor, values: Mapping[str, Tensor]) -> dict[str, Hook]:
        """Hooks gating every site: kept nodes pass, the others become ``values`` (``ablation_values``)."""
        names = [s.name for s in self.sites]

        def make(h: Tensor, s: Tensor, value: Tensor) -> Hook:
            return lambda x: _Gate.apply(x, h, s, value)

        return {
            name: make(h, s, values[name])
            for name, h, s in zip(names, hard.split(self.widths), soft.split(self.widths))
        }

    @torch.no_grad()
    def clamp_(self, low: float = -1.0, high: float = 1.0) -> None:
        # Bounded scores can always come back: an unbounded one could run so
        # far negative that no later gradient would revive its node.
        self.score.clamp_(low, high)

    def keep(self) -> dict[str, Tensor]:
        return {name: (score >= 0).detach() for name, score in self.scores.items()}

    def flat(self) -> Tensor:
        """All scores in canonical node order (``nodes.all_nodes``)."""
        return self.score.detach().clone()

    def kept_names(self) -> list[str]:
        return [node_name(name, int(i)) for name, k in self.keep().items() for i in k.nonzero().flatten()]


def gate_hooks(gates: Mapping[str, Tensor], values: Mapping[str, Tensor]) -> dict[str, Hook]:
    """Hooks computing gate * x + (1 - gate) * value at each site of ``gates``.

    A gate broadcasts against the activation: (width,) per node, or e.g.
    (B, 1, width) per example. With a gate of exactly 1 the result is x bit
    for bit (0 + 1 * x), which the identity check relies on; ``values`` are
    as ``ablation.ablation_values`` gives them.
    """
    def make(gate: Tensor, value: Tensor) -> Hook:
        rest = (1 - gate) * value  # computed once per step, not once per call
        return lambda x: torch.addcmul(rest, gate, x)

    return {name: make(gate, values[name]) for name, gate in gates.items()}
