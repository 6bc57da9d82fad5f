"""`children` is the one list of what is inside an expression that every walker uses."""

from circuitdsl.check.tasks import nesting
from circuitdsl.check.values import free_names, subexpressions
from circuitdsl.syntax import ast as n


def name(i: int) -> n.Name:
    return n.Name(f"v{i}")


#: Every expression kind with operands, each operand a distinct variable in source order.
WITH_OPERANDS = {
    n.Template: n.Template(("a", name(0), "b", name(1))),
    n.ListExpr: n.ListExpr((name(0), name(1), name(2))),
    n.MapExpr: n.MapExpr((n.MapEntry("x", name(0)), n.MapEntry("y", name(1)))),
    n.Call: n.Call("mean", (n.Arg(name(0), given=name(1)), n.Arg(name(2), name="k"))),
    n.Unary: n.Unary("-", name(0)),
    n.Binary: n.Binary("+", name(0), name(1)),
    n.Range: n.Range(name(0), name(1)),
    n.Percent: n.Percent(name(0)),
    n.IfElse: n.IfElse(name(0), name(1), name(2)),
}


def _names_anywhere(value):
    """Every Name in ``value``'s fields, found by attrs reflection, not by `children`."""
    if isinstance(value, n.Name):
        return [value]
    if isinstance(value, tuple):
        return [x for v in value for x in _names_anywhere(v)]
    if hasattr(value, "__attrs_attrs__"):
        return [x for f in value.__attrs_attrs__ if f.name != "span" for x in _names_anywhere(getattr(value, f.name))]
    return []


def test_every_expression_kind_has_its_operands_in_source_order():
    kinds = set(n.Expr.__args__) - {n.Number, n.String, n.Bool, n.Name}
    assert kinds == set(WITH_OPERANDS)  # a new kind needs its entry in `children`
    for kind, e in WITH_OPERANDS.items():
        # Each example's variables are numbered from v0 in source order, so missing or
        # reordered operands show as a gap or a swap.
        expected = sorted({x.id for x in _names_anywhere(e)}, key=lambda v: int(v[1:]))
        assert [c.id for c in n.children(e)] == expected, kind


def test_leaves_have_no_children():
    for leaf in (n.Number(1), n.String("x"), n.Bool(True), name(0)):
        assert n.children(leaf) == ()


def test_walkers_agree_on_a_nested_expression():
    # if v0 then [v1, -v2] else f(v3 | v4) + v5%
    e = n.IfElse(
        name(0),
        n.ListExpr((name(1), n.Unary("-", name(2)))),
        n.Binary("+", n.Call("f", (n.Arg(name(3), given=name(4)),)), n.Percent(name(5))),
    )
    assert [x.id for x in free_names(e)] == [f"v{i}" for i in range(6)]
    assert {x.id for x in subexpressions(e) if isinstance(x, n.Name)} == {f"v{i}" for i in range(6)}
    assert nesting(e, lambda _: 1) == 4  # IfElse > Binary > Call/Percent > Name
