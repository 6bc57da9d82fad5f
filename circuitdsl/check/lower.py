"""Checked claim statements -> typed claims (:mod:`circuitdsl.spec.claims`), each with its id.

Runs only on a hypothesis the claim checker found no error in, so every
constant here is known to be one: a failure to fold is a bug, not a user error.
"""

from __future__ import annotations

import attrs

from circuitdsl.evaluate import NotConstant, constant_number
from circuitdsl.spec import claims as c
from circuitdsl.spec.inferred import Typing
from circuitdsl.syntax import ast as n
from circuitdsl.syntax.formatter import format_expr, format_statement


def lower_claims(statements: list, variant_typing: dict[str, Typing]) -> tuple[c.Claim, ...]:
    """One typed claim per statement, and one per ``expect`` of an adversarial block
    (``variant_typing``: what the claim checker inferred of each block's variant)."""
    out: list[c.Claim] = []
    ids: dict[str, int] = {}

    def unique(base: str) -> str:
        ids[base] = ids.get(base, 0) + 1
        return base if ids[base] == 1 else f"{base}#{ids[base]}"

    for position, stmt in enumerate(statements):
        text = format_statement(stmt)
        if isinstance(stmt, n.SizeClaim):
            bound = _number(stmt.bound)
            out.append(
                c.SizeClaim(
                    unique(f"size.{stmt.metric}"), text, stmt.metric, stmt.op, bound, layers_of(stmt.layer),
                    f"{stmt.op} {format_expr(stmt.bound)}", position, span=stmt.span,
                )
            )
        elif isinstance(stmt, n.RoleDecl):
            decl = fold(stmt)
            out.append(c.RoleClaim(unique(f"role.{stmt.name}"), text, decl, layers_of(stmt.layer), position, span=stmt.span))
        elif isinstance(stmt, n.AblateClaim):
            out.append(
                c.AblateClaim(
                    unique("ablate." + "+".join(stmt.targets)), text, tuple(stmt.targets), stmt.ablation,
                    lower_outcome(stmt.outcome), position, span=stmt.span,
                )
            )
        elif isinstance(stmt, n.InterveneClaim):
            through = "" if stmt.bridge is None else f"@{stmt.bridge}"
            out.append(_intervene(unique(f"intervene.{stmt.role}{through}"), text, stmt, position))
        elif isinstance(stmt, n.Adversarial):
            variant = lower_variant(stmt, variant_typing[stmt.name])
            expects = [item for item in stmt.body if isinstance(item, n.Expect)]
            for number, expect in enumerate(expects, 1):
                out.append(
                    c.ExpectClaim(
                        unique(f"adversarial.{stmt.name}.{number}"),
                        f"adversarial {stmt.name}: " + format_statement(expect),
                        variant,
                        lower_outcome(expect.outcome),
                        position,
                        span=expect.span,
                    )
                )
        else:
            raise TypeError(f"not a claim: {stmt!r}")
    return tuple(out)


def lower_outcome(o: n.Outcome) -> c.Outcome:
    metric = o.metric
    token = None
    if metric.args:
        first = metric.args[0].value
        token = first.value if isinstance(first, n.String) else None
    shown = metric.name if metric.args is None else f"{metric.name}({', '.join(format_expr(a.value) for a in metric.args)})"
    change = f"{o.change} by " if o.change else ""
    return c.Outcome(
        metric=metric.name,
        token=token,
        change=o.change,
        op=o.op,
        bound=_number(o.bound),
        when=fold(o.when),
        metric_text=shown,
        threshold=f"{change}{o.op} {format_expr(o.bound)}",
    )


def lower_variant(block: n.Adversarial, typing: Typing) -> c.Variant:
    bindings = tuple(item for item in block.body if isinstance(item, n.Binding))
    fixed = tuple(b for b in bindings if not isinstance(b.value, n.Range))
    axes = tuple(
        (b.name, tuple(range(int(_number(b.value.low)), int(_number(b.value.high)) + 1)))
        for b in bindings
        if isinstance(b.value, n.Range)
    )
    return c.Variant(block.name, bindings, fixed, axes, typing=typing)


def _intervene(id: str, text: str, stmt: n.InterveneClaim, position: int) -> c.InterveneClaim:
    value = stmt.value
    number, mean_of, at = None, None, 0
    try:
        number = float(constant_number(value))
    except NotConstant:
        # The checker allows only `mean(act | condition, at: k)` besides a number.
        mean_of = next((a.given for a in value.args if a.name is None), None)
        written = value.keyword("at")
        at = None if written is None else 0 if isinstance(written, n.Name) else int(constant_number(written))
    return c.InterveneClaim(
        id, text, stmt.role, number, fold(mean_of), at, fold(stmt.when), format_expr(value),
        lower_outcome(stmt.outcome), position, span=stmt.span, bridge=stmt.bridge,
    )


def layers_of(layer: n.LayerFilter | None) -> frozenset[int] | None:
    """The layers ``in layer L`` / ``in layers A..B`` names; None for no filter."""
    if layer is None:
        return None
    if isinstance(layer.layers, n.Range):
        return frozenset(range(int(_number(layer.layers.low)), int(_number(layer.layers.high)) + 1))
    return frozenset({int(_number(layer.layers))})


def fold(node):
    """``node`` with every constant arithmetic subexpression replaced by its :class:`~n.Number`."""
    if node is None or isinstance(node, (str, int, float, bool, n.Number, n.String, n.Name)):
        return node
    if isinstance(node, tuple):
        return tuple(fold(x) for x in node)
    if isinstance(node, (n.Unary, n.Binary, n.Percent)):
        try:
            value = constant_number(node)
        except NotConstant:
            pass
        else:
            return n.Number(value, span=getattr(node, "span", None))
    if not attrs.has(type(node)):
        return node
    changes = {}
    for field in attrs.fields(type(node)):
        if not field.eq:
            continue
        old = getattr(node, field.name)
        new = fold(old)
        if new is not old:
            changes[field.name] = new
    return attrs.evolve(node, **changes) if changes else node


def _number(e: n.Expr) -> float:
    return float(constant_number(e))
