"""What verification is given (VerifyContext), and one model it runs claims on (Arm).

Every claim but a size claim is run twice: on the trained model and on an
untrained control of the same architecture, with the same circuit nodes and
the same samples. Each run is an *arm*: a model, its mean activations, and
its wiring (relations read off its own weights).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Mapping

import attrs
import torch
from torch import Tensor

from runtime.ablation import ablation_hooks, mean_activations, resample_activations, resample_donors
from runtime.batch import Batch
from runtime.circuit import circuit_edges
from runtime.model import Hook, SparseGPT
from runtime.probe import Readout, readout, record
from runtime.relations import Wiring
from runtime.tokenizer import Tokenizer

from circuitdsl.syntax import ast as n
from circuitdsl.syntax.formatter import format_expr
from circuitdsl.spec.checked import TaskSpec
from circuitdsl.verification.conditions import draw_when
from circuitdsl.verification.samples import Samples, draw


class SampleBank:
    """Fresh samples of the unchanged task, one set per condition, shared by every claim of a hypothesis.

    The unchanged-task side of a comparison (``ablate ... drops by``, an
    intervention's baseline, an adversarial's reference) is the same
    measurement for every claim with the same ``when``: drawing it once lets
    each arm run it once. The seed names the condition, not the claim.
    """

    def __init__(self, ctx: VerifyContext, n_samples: int):
        self.ctx, self.n_samples = ctx, n_samples
        self._drawn: dict[str, Samples] = {}

    def task(self, when: n.Expr | None) -> Samples:
        key = "" if when is None else format_expr(when)
        if key not in self._drawn:
            ctx = self.ctx
            self._drawn[key] = draw_when(when, ctx.task, self.n_samples, f"{ctx.seed}:task:{key}", ctx.tokenizer, ctx.context)
        return self._drawn[key]


def _edge_triples(edges) -> tuple[tuple[str, str, float], ...]:
    """Edges as (src, dst, weight), whether given so or as ``runtime.circuit.Edge`` objects."""
    return tuple((e.src, e.dst, float(e.weight)) if hasattr(e, "src") else (e[0], e[1], float(e[2])) for e in edges)


@attrs.frozen(eq=False)
class VerifyContext:
    """Everything ``verify_hypothesis`` measures with, besides the hypothesis."""

    model: SparseGPT
    #: Untrained, same architecture: a claim that holds here too is vacuous.
    control_model: SparseGPT
    tokenizer: Tokenizer
    #: The task of the prune block the hypothesis is about.
    task: TaskSpec
    circuit_nodes: tuple[str, ...] = attrs.field(converter=tuple)
    #: (src, dst, weight) for every edge of the circuit, as pruning found them (``Edge`` objects are accepted).
    circuit_edges: tuple[tuple[str, str, float], ...] = attrs.field(converter=_edge_triples)
    #: Mean activation of every site over the training distribution: {site: (width,)}.
    means: Mapping[str, Tensor]
    #: The prune block's `ablation`: what `ablate` uses without `with`.
    default_ablation: str
    #: The model's context, in tokens (BOS included).
    context: int
    #: Where the models are; each arm runs its batches on its own model's device.
    device: torch.device | str
    seed: int
    #: The control model's means; computed from task samples when None.
    control_means: Mapping[str, Tensor] | None = None
    #: Rows per forward pass.
    batch_size: int = 256
    #: Bridge name -> the dense model and the bridges from the trained and the control sparse model.
    bridges: Mapping[str, "BridgeSides"] = attrs.field(factory=dict)


@attrs.frozen(eq=False)
class BridgeSides:
    """What a claim through a bridge needs: the dense model, and a bridge for each arm's sparse model."""

    dense: SparseGPT
    trained: object  # runtime.bridge.Bridge
    control: object


def seed_for(*parts: object) -> int:
    """A 63-bit seed that depends on every part, stable across runs and Python versions."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


ChunkHooks = Callable[[Batch, slice], Mapping[str, Hook]]


@dataclass
class Arm:
    """One model that claims are run on."""

    name: str  # "trained" or "control"
    ctx: VerifyContext
    model: SparseGPT
    wiring: Wiring
    means_given: Mapping[str, Tensor] | None
    bank: SampleBank
    _means: dict[str, Tensor] | None = field(default=None, repr=False)
    #: id(samples) -> (samples, their plain readout): kept with the samples so an id is never reused.
    _plain: dict[int, tuple[Samples, Readout]] = field(default_factory=dict, repr=False)

    @classmethod
    def trained(cls, ctx: VerifyContext, bank: SampleBank) -> Arm:
        wiring = Wiring(ctx.model, ctx.circuit_nodes, ctx.circuit_edges)
        return cls("trained", ctx, ctx.model, wiring, ctx.means, bank)

    @classmethod
    def control(cls, ctx: VerifyContext, bank: SampleBank) -> Arm:
        # The control's own weights join the same nodes differently; its edges are recomputed.
        edges = tuple((e.src, e.dst, e.weight) for e in circuit_edges(ctx.control_model, ctx.circuit_nodes))
        wiring = Wiring(ctx.control_model, ctx.circuit_nodes, edges)
        return cls("control", ctx, ctx.control_model, wiring, ctx.control_means, bank)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def means(self, samples: int) -> dict[str, Tensor]:
        """Mean activations on this model's device; the control's come from task samples when not given."""
        if self._means is None:
            given = self.means_given
            if given is None:
                pool = draw(self.ctx.task, samples, f"{self.ctx.seed}:control-means", self.ctx.tokenizer, self.ctx.context)
                given = mean_activations(self.model, [b.to(self.device) for b in pool.chunks(self.ctx.batch_size)])
            self._means = {site: t.to(self.device) for site, t in given.items()}
        return self._means

    def readout(self, samples: Samples, hooks: ChunkHooks | None = None) -> Readout:
        """The prediction on every sample; ``hooks(chunk, rows)`` gives each chunk's hooks.

        The unchanged model's readout of a sample set is computed once (claims
        share the bank's samples).
        """
        if hooks is None and id(samples) in self._plain:
            return self._plain[id(samples)][1]
        parts = []
        for start, chunk in self._chunks(samples):
            rows = slice(start, start + len(chunk))
            parts.append(readout(self.model, chunk, hooks(chunk, rows) if hooks else None))
        out = Readout(
            torch.cat([p.logits for p in parts]),
            torch.cat([p.answers for p in parts]),
            torch.cat([p.competitors for p in parts]),
        )
        if hooks is None:
            self._plain[id(samples)] = (samples, out)
        return out

    def record(self, samples: Samples, columns: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``{site: (N, T, k)}`` activations of the ``columns`` of each site on every sample."""
        parts: dict[str, list[Tensor]] = {site: [] for site in columns}
        for _, chunk in self._chunks(samples):
            for site, x in record(self.model, chunk, columns).items():
                parts[site].append(x)
        return {site: torch.cat(xs) for site, xs in parts.items()}

    def _chunks(self, samples: Samples):
        size = self.ctx.batch_size
        return [(i * size, chunk) for i, chunk in enumerate(samples.chunks(size))]

    def ablation(self, keep: Mapping[str, Tensor], kind: str, n_means: int, seed: str) -> ChunkHooks:
        """Hooks replacing the nodes ``keep`` marks False by ``kind``, built per chunk."""
        keep = {site: mask.to(self.device) for site, mask in keep.items()}
        means = self.means(n_means) if kind == "mean" else None

        def hooks(chunk: Batch, rows: slice) -> Mapping[str, Hook]:
            donors_from = None
            if kind == "resample":
                generator = torch.Generator().manual_seed(seed_for(seed, rows.start))
                donors = resample_donors(chunk, generator)
                donors_from = resample_activations(self.model, chunk.to(self.device), donors.to(self.device), answer_only=False)
            return ablation_hooks(self.model, keep, kind, means, donors_from)

        return hooks
