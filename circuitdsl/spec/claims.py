"""Claims as the checker hands them on: typed, lowered, and each with a stable id.

The verifier decides these and nothing else. Everything the checker can
decide is decided here already: bounds are floats, layers are sets, sweeps
are lists of values, an adversarial block is one claim per ``expect``. What is
left as an expression (a role's ``where``, an outcome's ``when``) is only
what needs samples to evaluate.

**Ids** name a claim by what it is about, so adding a claim elsewhere in the
hypothesis does not rename it: ``size.nodes``, ``role.opener``,
``ablate.circuit``, ``intervene.type_ch``, ``intervene.type_ch@b`` (through bridge ``b``),
``adversarial.bracket_in_string.1``
(the first ``expect`` of that block). A second claim with the same id gets
``#2``. Verdicts, pytest items, JSON and HTML are keyed by these ids.
"""

from __future__ import annotations

import attrs

from circuitdsl.spec.inferred import Typing
from circuitdsl.syntax import ast as n
from circuitdsl.syntax.spans import Span, span_field


@attrs.frozen
class Outcome:
    """What a claim predicts of a metric: ``accuracy drops by >= 0.25 when depth == 2``."""

    #: ``accuracy``, ``loss``, ``margin``, ``p`` or ``rate``.
    metric: str
    #: The token of ``p("t")`` and ``rate("t")``; None for the others.
    token: str | None
    #: ``"drops"``, ``"rises"`` or None (a bound on the metric itself).
    change: str | None
    op: str
    bound: float
    #: The samples it is measured on; None for all of them.
    when: n.Expr | None
    #: The metric as written: ``p("]]")``.
    metric_text: str
    #: The bound as written: ``drops by >= 0.25``.
    threshold: str


@attrs.frozen
class SizeClaim:
    id: str
    text: str
    #: ``nodes`` or ``edges``.
    metric: str
    op: str
    bound: float
    #: The layers counted; None for all.
    layers: frozenset[int] | None
    threshold: str
    #: Index of the statement in the hypothesis: names the fresh samples a claim draws.
    position: int
    span: Span | None = span_field()
    kind = "size"


@attrs.frozen
class RoleClaim:
    id: str
    text: str
    #: The declaration, constants folded: its ``where`` is evaluated on samples.
    decl: n.RoleDecl
    layers: frozenset[int] | None
    position: int
    span: Span | None = span_field()
    kind = "role"

    @property
    def name(self) -> str:
        return self.decl.name


@attrs.frozen
class AblateClaim:
    id: str
    text: str
    #: ``("circuit",)``, ``("complement",)`` or role names.
    targets: tuple[str, ...]
    #: ``mean``, ``zero``, ``resample``; None for the prune block's.
    ablation: str | None
    outcome: Outcome
    position: int
    span: Span | None = span_field()
    kind = "ablate"


@attrs.frozen
class InterveneClaim:
    id: str
    text: str
    role: str
    #: A constant the role's nodes are set to, or None when ``mean`` is.
    number: float | None
    #: ``mean(act | condition, at: k)``: the condition and the position offset (None for a number).
    mean_of: n.Expr | None
    at: int
    #: The intervention runs only on samples where this holds.
    when: n.Expr | None
    #: The value as written.
    value_text: str
    outcome: Outcome
    position: int
    span: Span | None = span_field()
    #: The bridge the change crosses (``HypothesisSpec.bridges``); the outcome is then the dense model's.
    bridge: str | None = None
    kind = "intervene"


@attrs.frozen
class Variant:
    """An adversarial block's changed task: fixed overrides, and the swept variables with their values."""

    name: str
    #: Every override as written (the sampler draws the variant from these).
    bindings: tuple[n.Binding, ...]
    #: Overrides that are not swept.
    fixed: tuple[n.Binding, ...]
    #: (variable, its whole-number values) per swept variable, in source order.
    axes: tuple[tuple[str, tuple[int, ...]], ...]
    #: The checker's types and order of the task with these overrides (a sweep point has the same).
    typing: Typing | None = attrs.field(default=None, eq=False, repr=False)

    def at(self, point: tuple[n.Binding, ...]) -> Variant:
        """One point of the sweep: the fixed overrides and each swept variable bound to a number."""
        return attrs.evolve(self, bindings=point, fixed=point, axes=())


@attrs.frozen
class ExpectClaim:
    id: str
    text: str
    variant: Variant
    outcome: Outcome
    position: int
    span: Span | None = span_field()
    kind = "adversarial"


Claim = SizeClaim | RoleClaim | AblateClaim | InterveneClaim | ExpectClaim
