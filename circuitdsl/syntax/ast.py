"""The spec objects a ``.circ`` file parses into: frozen, span-carrying, torch-free.

These classes mirror the grammar one to one and hold *structure only*: names
are still strings, settings are still expressions. Meaning (which name refers
to what, which values are legal) is the checker's job, which turns a
:class:`Module` tree into the resolved objects of :mod:`circuitdsl.spec.checked`.

Every node carries an optional ``span`` that is ignored by ``==``, so a spec
printed by :mod:`circuitdsl.syntax.formatter` and parsed again compares equal to the
original.
"""

from __future__ import annotations

from typing import Union

import attrs

from circuitdsl.syntax.spans import Span, span_field

# ---------------------------------------------------------------- expressions


@attrs.frozen
class Number:
    """An integer or decimal literal: ``3``, ``0.15``, ``1e-3``."""

    value: int | float
    span: Span | None = span_field()


@attrs.frozen
class String:
    """A string literal, escapes already decoded."""

    value: str
    span: Span | None = span_field()


@attrs.frozen
class Template:
    """A string with ``${name}`` holes: ``"x = ${body}"``.

    ``parts`` alternates freely between literal text (``str``) and :class:`Name`.
    """

    parts: tuple[Union[str, "Name"], ...]
    span: Span | None = span_field()


@attrs.frozen
class Bool:
    value: bool
    span: Span | None = span_field()


@attrs.frozen
class Name:
    """A reference: a variable, a block, or a word with meaning in context (``mean``)."""

    id: str
    span: Span | None = span_field()


@attrs.frozen
class ListExpr:
    items: tuple["Expr", ...]
    span: Span | None = span_field()


@attrs.frozen
class MapEntry:
    key: str
    value: "Expr"
    span: Span | None = span_field()


@attrs.frozen
class MapExpr:
    """``{quote_close: 2, bracket_depth: 1}``: keys are names, order is kept."""

    entries: tuple[MapEntry, ...]
    span: Span | None = span_field()


@attrs.frozen
class Arg:
    """One argument of a call.

    ``name`` is set for ``name: value``; ``given`` for ``value | condition``
    (the conditioning bar of ``mean(act | token == "[")``).
    """

    value: "Expr"
    name: str | None = None
    given: "Expr | None" = None
    span: Span | None = span_field()


@attrs.frozen
class Call:
    func: str
    args: tuple[Arg, ...]
    span: Span | None = span_field()

    def keyword(self, name: str) -> "Expr | None":
        for arg in self.args:
            if arg.name == name:
                return arg.value
        return None

    @property
    def positional(self) -> tuple["Expr", ...]:
        return tuple(arg.value for arg in self.args if arg.name is None)


@attrs.frozen
class Unary:
    op: str  # "-" or "not"
    operand: "Expr"
    span: Span | None = span_field()


@attrs.frozen
class Binary:
    """``left op right`` for arithmetic, comparison, ``in``, ``and``/``or``."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span | None = span_field()


@attrs.frozen
class Range:
    """``lo..hi``, both ends included: ``1..6`` is one to six."""

    low: "Expr"
    high: "Expr"
    span: Span | None = span_field()


@attrs.frozen
class Percent:
    """``50%``: a fraction written as a percentage."""

    value: "Expr"
    span: Span | None = span_field()


@attrs.frozen
class IfElse:
    cond: "Expr"
    then: "Expr"
    orelse: "Expr"
    span: Span | None = span_field()


Expr = Union[
    Number, String, Template, Bool, Name, ListExpr, MapExpr, Call, Unary, Binary, Range, Percent, IfElse
]


def _call_children(e: Call) -> tuple:
    inside = []
    for arg in e.args:
        inside.append(arg.value)
        if arg.given is not None:
            inside.append(arg.given)
    return tuple(inside)


# One table, so that every walker over expressions agrees on what is inside what; a
# dict lookup on the type, because the checker walks every node of a 1 MB spec.
_CHILDREN = {
    Template: lambda e: tuple(p for p in e.parts if isinstance(p, Name)),
    ListExpr: lambda e: e.items,
    MapExpr: lambda e: tuple(entry.value for entry in e.entries),
    Call: _call_children,
    Unary: lambda e: (e.operand,),
    Binary: lambda e: (e.left, e.right),
    Range: lambda e: (e.low, e.high),
    Percent: lambda e: (e.value,),
    IfElse: lambda e: (e.cond, e.then, e.orelse),
}
_LEAF = lambda e: ()  # noqa: E731


def children(e: Expr) -> tuple:
    """The expressions directly inside ``e``, in source order: operands, items, call
    arguments and their ``| condition``, and a template's variables."""
    return _CHILDREN.get(type(e), _LEAF)(e)


# ---------------------------------------------------------------- statements


@attrs.frozen
class Binding:
    """``name = expr``: a setting, or a task's variable."""

    name: str
    value: Expr
    span: Span | None = span_field()
    name_span: Span | None = span_field()


@attrs.frozen
class LayerFilter:
    """``in layer 1`` / ``in layers 0..1``."""

    word: str
    layers: Expr
    span: Span | None = span_field()


@attrs.frozen
class SizeClaim:
    """``nodes <= 24``, ``edges in layer 1 <= 10``."""

    metric: str
    op: str
    bound: Expr
    layer: LayerFilter | None = None
    span: Span | None = span_field()


@attrs.frozen
class RoleDecl:
    """``role NAME : KIND KIND [in layer L] [where PREDICATE]``."""

    name: str
    kind: tuple[str, str]
    layer: LayerFilter | None = None
    where: Expr | None = None
    span: Span | None = span_field()
    kind_span: Span | None = span_field()


@attrs.frozen
class Metric:
    """What an outcome measures: ``accuracy``, ``loss``, ``p("]]")``."""

    name: str
    args: tuple[Arg, ...] | None = None
    span: Span | None = span_field()


@attrs.frozen
class Outcome:
    """``METRIC [drops by | rises by] OP BOUND [when CONDITION]``."""

    metric: Metric
    op: str
    bound: Expr
    change: str | None = None  # "drops" or "rises"
    when: Expr | None = None
    span: Span | None = span_field()


@attrs.frozen
class AblateClaim:
    """``ablate circuit|complement|ROLE, ... [with KIND] -> OUTCOME``."""

    targets: tuple[str, ...]
    outcome: Outcome
    ablation: str | None = None
    span: Span | None = span_field()
    targets_span: Span | None = span_field()
    ablation_span: Span | None = span_field()
    #: One span per target, so an unknown role in `ablate a, b` is shown where it is written.
    target_spans: tuple[Span, ...] | None = span_field()


@attrs.frozen
class InterveneClaim:
    """``intervene ROLE = VALUE [when CONDITION] [through bridge B] -> OUTCOME``."""

    role: str
    value: Expr
    outcome: Outcome
    when: Expr | None = None
    #: The bridge the change crosses into the dense model, whose outcome is measured.
    bridge: str | None = None
    span: Span | None = span_field()
    role_span: Span | None = span_field()
    bridge_span: Span | None = span_field()


@attrs.frozen
class Expect:
    outcome: Outcome
    span: Span | None = span_field()


@attrs.frozen
class Adversarial:
    """A variant of the task (rebound variables) and what the model will do on it."""

    name: str
    body: tuple[Binding | Expect, ...]
    span: Span | None = span_field()


Claim = Union[Binding, SizeClaim, RoleDecl, AblateClaim, InterveneClaim, Adversarial]

# ---------------------------------------------------------------- blocks


@attrs.frozen
class Import:
    path: str
    span: Span | None = span_field()


@attrs.frozen
class SettingsBlock:
    """``vocab``, ``task``, ``model``, ``train`` and ``prune`` blocks: a list of bindings.

    ``kind`` is the keyword; ``name`` is ``None`` only for ``vocab``.
    """

    kind: str
    name: str | None
    body: tuple[Binding, ...]
    extends: str | None = None
    span: Span | None = span_field()
    name_span: Span | None = span_field()
    extends_span: Span | None = span_field()


@attrs.frozen
class HypothesisBlock:
    name: str
    prune: str
    body: tuple[Claim, ...]
    span: Span | None = span_field()
    name_span: Span | None = span_field()
    prune_span: Span | None = span_field()


Item = Union[Import, SettingsBlock, HypothesisBlock]


@attrs.frozen
class Comment:
    """A ``# ...`` comment; kept out of the spec, but the formatter puts it back."""

    text: str
    span: Span


@attrs.frozen
class Module:
    """One parsed ``.circ`` file."""

    items: tuple[Item, ...]
    path: str = attrs.field(default="<string>", eq=False)
    comments: tuple[Comment, ...] = attrs.field(default=(), eq=False, repr=False)
    #: The paths (as ``path`` shows them) of the files its imports read, set by
    #: ``syntax.files.load_modules``: which vocab blocks a file sees follows from them.
    imports: tuple[str, ...] = attrs.field(default=(), eq=False, repr=False)
