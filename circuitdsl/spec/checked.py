"""The checked spec: every name resolved, every setting a typed value.

This is what the checker hands on and what the runtime consumes. Task
expressions stay as :mod:`circuitdsl.syntax.ast` objects (plain frozen attrs,
never parse trees) for the sampler to compile; claims are lowered to the typed
objects of :mod:`circuitdsl.spec.claims`, each with its id.
"""

from __future__ import annotations

import attrs

from circuitdsl.spec import claims as c
from circuitdsl.spec.inferred import Typing
from circuitdsl.syntax import ast as n
from circuitdsl.syntax.spans import Span, span_field

PRINTABLE = "".join(chr(c) for c in range(32, 127)) + "\n\t"


@attrs.frozen
class VocabSpec:
    chars: str = PRINTABLE
    tokens: tuple[str, ...] = ()

    @property
    def all_tokens(self) -> tuple[str, ...]:
        """Every token, single characters first, in a stable order."""
        # A set, not the string: `"def" in chars` is a substring test, true of printable.
        single = set(self.chars)
        return tuple(self.chars) + tuple(t for t in self.tokens if t not in single)

    def is_token(self, text: str) -> bool:
        return (len(text) == 1 and text in self.chars) or text in self.tokens


@attrs.frozen
class TaskSpec:
    name: str
    #: Every binding in source order, `prompt`/`answer`/`competitors` included.
    bindings: tuple[n.Binding, ...]
    span: Span | None = span_field()
    #: The checker's types and evaluation order. Derived from the bindings, so it takes no
    #: part in equality, in ``circ show --json`` or in the cache keys.
    typing: Typing | None = attrs.field(default=None, eq=False, repr=False)

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
    #: Held-out accuracy every task must reach, once annealed, to stop before `steps`; None: never.
    stop: float | None
    #: Share of `steps` the rate takes to fall to 0 after the rule fires.
    cooldown: float
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
    eval_every: int
    span: Span | None = span_field()
    #: The vocab its model tokenizes with: what the file declaring the block sees (its own
    #: vocab block merged into those of the files it imports). None: the program's.
    vocab: VocabSpec | None = None


@attrs.frozen
class PruneSpec:
    name: str
    train: TrainSpec
    task: str
    target: float
    ablation: str
    loss: str
    norm: str
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
class BridgeSpec:
    """Encoders and decoders joining a dense model to a sparse one at every sublayer boundary."""

    name: str
    dense: TrainSpec
    sparse: TrainSpec
    steps: int
    batch: int
    lr: float
    nmse: float
    kl: float
    seed: int
    eval_examples: int
    span: Span | None = span_field()


@attrs.frozen
class HypothesisSpec:
    name: str
    prune: PruneSpec
    #: Claims in source order (settings removed), an adversarial block as one claim per `expect`.
    claims: tuple[c.Claim, ...]
    samples: int
    seed_share: float
    confidence: float
    span: Span | None = span_field()
    #: The bridges its claims go through, by name.
    bridges: dict[str, BridgeSpec] = attrs.field(factory=dict)

    @property
    def roles(self) -> tuple[n.RoleDecl, ...]:
        """Every role's declaration, constants folded."""
        return tuple(claim.decl for claim in self.claims if isinstance(claim, c.RoleClaim))

    @property
    def variants(self) -> tuple[c.Variant, ...]:
        """The adversarial blocks' changed tasks, each once, in source order."""
        found = {claim.variant.name: claim.variant for claim in self.claims if isinstance(claim, c.ExpectClaim)}
        return tuple(found.values())

    def claim(self, id: str) -> c.Claim:
        return next(claim for claim in self.claims if claim.id == id)


@attrs.frozen
class CheckedSpec:
    """Everything one ``.circ`` file means, its imports included."""

    path: str
    vocab: VocabSpec
    tasks: dict[str, TaskSpec]
    models: dict[str, ModelSpec]
    trains: dict[str, TrainSpec]
    prunes: dict[str, PruneSpec]
    hypotheses: dict[str, HypothesisSpec]
    bridges: dict[str, BridgeSpec] = attrs.field(factory=dict)
    #: Text of every file read, for rendering later diagnostics.
    sources: dict[str, str] = attrs.field(eq=False, repr=False, factory=dict)
