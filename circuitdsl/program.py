"""The checked spec: every name resolved, every setting a typed value.

This is what the checker hands on and what the runtime consumes. Task
expressions and claims stay as :mod:`circuitdsl.nodes` objects (plain frozen
attrs, never parse trees): the runtime interprets them.
"""

from __future__ import annotations

import attrs

from . import nodes as n
from .spans import Span, span_field

PRINTABLE = "".join(chr(c) for c in range(32, 127)) + "\n\t"


@attrs.frozen
class VocabSpec:
    chars: str = PRINTABLE
    tokens: tuple[str, ...] = ()

    @property
    def all_tokens(self) -> tuple[str, ...]:
        """Every token, single characters first, in a stable order."""
        return tuple(self.chars) + tuple(t for t in self.tokens if t not in self.chars)

    def is_token(self, text: str) -> bool:
        return (len(text) == 1 and text in self.chars) or text in self.tokens


@attrs.frozen
class TaskSpec:
    name: str
    #: Every binding in source order, `prompt`/`answer`/`competitors` included.
    bindings: tuple[n.Binding, ...]
    span: Span | None = span_field()

    def binding(self, name: str) -> n.Binding | None:
        return next((b for b in self.bindings if b.name == name), None)

    @property
    def latents(self) -> tuple[str, ...]:
        """The latent variables: every binding but the task's interface."""
        return tuple(b.name for b in self.bindings if b.name not in ("prompt", "answer", "competitors"))


@attrs.frozen
class ModelSpec:
    name: str
    layers: int
    d_model: int
    heads: int
    d_head: int
    d_mlp: int
    context: int
    density: float
    act_topk: float
    sinks: bool
    positional: bool
    bigram: bool
    sparsify_embeddings: bool
    min_live: int
    span: Span | None = span_field()


@attrs.frozen
class TrainSpec:
    name: str
    model: ModelSpec
    #: (task name, weight); weights sum to 1.
    mixture: tuple[tuple[str, float], ...]
    steps: int
    batch: int
    lr: float
    seed: int
    anneal: tuple[float, float]
    warmup: float
    grad_clip: float
    weight_decay: float
    beta1: float
    beta2: float
    eps: float
    loss_on: str
    eval_examples: int
    span: Span | None = span_field()


@attrs.frozen
class PruneSpec:
    name: str
    train: TrainSpec
    task: str
    target: float
    ablation: str
    method: str
    baseline: str
    trials: int
    steps: int
    batch: int
    mean_samples: int
    seed: int
    controls: bool
    span: Span | None = span_field()


@attrs.frozen
class HypothesisSpec:
    name: str
    prune: PruneSpec
    #: Claims in source order (settings removed).
    claims: tuple[n.SizeClaim | n.RoleDecl | n.AblateClaim | n.InterveneClaim | n.Adversarial, ...]
    samples: int
    seed_share: float
    confidence: float
    span: Span | None = span_field()

    @property
    def roles(self) -> tuple[n.RoleDecl, ...]:
        return tuple(c for c in self.claims if isinstance(c, n.RoleDecl))


@attrs.frozen
class Program:
    """Everything one ``.circ`` file means, its imports included."""

    path: str
    vocab: VocabSpec
    tasks: dict[str, TaskSpec]
    models: dict[str, ModelSpec]
    trains: dict[str, TrainSpec]
    prunes: dict[str, PruneSpec]
    hypotheses: dict[str, HypothesisSpec]
    #: Text of every file read, for rendering later diagnostics.
    sources: dict[str, str] = attrs.field(eq=False, repr=False, factory=dict)
