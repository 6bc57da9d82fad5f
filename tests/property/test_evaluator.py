"""The expression language's evaluators agree on every well-typed expression.

Four places compute what an expression means: the sampler's compiled closures
(the data generator), the verifier's conditions over latents, constant folding
of settings and bounds, and the checker's value-set analysis. Random
well-typed expression trees over an environment of names are handed to each,
and each must give the same value (type included: ``2`` and ``2.0`` print
differently in a prompt) or fail the same way.

Against the code as it stood, they agree everywhere but on ``/`` in constant
folding, which gave an int when the quotient was whole (``4/2`` -> ``2``,
``0/3/-7`` -> ``0`` where the others give ``-0.0``), though the type checker
calls every quotient FLOAT.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from circuitdsl.check import builtins as b
from circuitdsl.check.sink import Reporter
from circuitdsl.check.tasks import TaskAnalysis
from circuitdsl.diagnostics import CircError
from circuitdsl.evaluate import NotConstant, constant_number
from circuitdsl.spec.checked import VocabSpec
from circuitdsl.syntax import ast as n
from circuitdsl.tasks.sampler import _Compiler

conditions = pytest.importorskip("circuitdsl.verification.conditions")
from circuitdsl.verification.errors import VerifyError  # noqa: E402

# ---------------------------------------------------------------- well-typed expressions

#: The names every generated expression may use, by type.
NAMES = {"int": ("i", "j"), "float": ("x",), "bool": ("p",), "str": ("s", "t")}
TYPES = {name: {"int": b.INT, "float": b.FLOAT, "bool": b.BOOL, "str": b.STR}[kind] for kind, names in NAMES.items() for name in names}

SMALL_INTS = st.integers(-12, 12)
FLOATS = st.one_of(st.sampled_from([0.0, 0.5, -1.5, 2.0, 0.1, 1e-3]), st.floats(-50, 50, allow_nan=False, width=32))
TEXT = st.text(alphabet="ab[]' ", max_size=3)

ENVS = st.fixed_dictionaries(
    {
        "i": SMALL_INTS,
        "j": SMALL_INTS,
        "x": FLOATS,
        "p": st.booleans(),
        "s": TEXT,
        "t": TEXT,
    }
)


@st.composite
def exprs(draw, kind: str, depth: int = 4):
    """A tree the checker types as ``kind``: ``int``, ``num`` (int or float), ``bool`` or ``str``."""
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return draw(_leaf(kind))
    sub = depth - 1
    if kind == "int":
        shape = draw(st.sampled_from(["neg", "arith", "if"]))
        if shape == "neg":
            return n.Unary("-", draw(exprs("int", sub)))
        if shape == "arith":
            return n.Binary(draw(st.sampled_from("+-*")), draw(exprs("int", sub)), draw(exprs("int", sub)))
        return n.IfElse(draw(exprs("bool", sub)), draw(exprs("int", sub)), draw(exprs("int", sub)))
    if kind == "num":
        shape = draw(st.sampled_from(["int", "neg", "arith", "divide", "percent", "if"]))
        if shape == "int":
            return draw(exprs("int", depth))
        if shape == "neg":
            return n.Unary("-", draw(exprs("num", sub)))
        if shape == "arith":
            return n.Binary(draw(st.sampled_from("+-*")), draw(exprs("num", sub)), draw(exprs("num", sub)))
        if shape == "divide":
            return n.Binary("/", draw(exprs("num", sub)), draw(exprs("num", sub)))
        if shape == "percent":
            return n.Percent(draw(exprs("num", sub)))
        return n.IfElse(draw(exprs("bool", sub)), draw(exprs("num", sub)), draw(exprs("num", sub)))
    if kind == "bool":
        shape = draw(st.sampled_from(["not", "logic", "equal", "order", "in_range", "in_list", "if"]))
        if shape == "not":
            return n.Unary("not", draw(exprs("bool", sub)))
        if shape == "logic":
            return n.Binary(draw(st.sampled_from(["and", "or"])), draw(exprs("bool", sub)), draw(exprs("bool", sub)))
        if shape == "equal":
            of = draw(st.sampled_from(["num", "bool", "str"]))
            return n.Binary(draw(st.sampled_from(["==", "!="])), draw(exprs(of, sub)), draw(exprs(of, sub)))
        if shape == "order":
            return n.Binary(draw(st.sampled_from(["<", "<=", ">", ">="])), draw(exprs("num", sub)), draw(exprs("num", sub)))
        if shape == "in_range":
            return n.Binary("in", draw(exprs("num", sub)), n.Range(draw(exprs("int", sub)), draw(exprs("int", sub))))
        if shape == "in_list":
            of = draw(st.sampled_from(["num", "bool", "str"]))
            items = draw(st.lists(exprs(of, sub - 1), max_size=3))
            return n.Binary("in", draw(exprs(of, sub)), n.ListExpr(tuple(items)))
        return n.IfElse(draw(exprs("bool", sub)), draw(exprs("bool", sub)), draw(exprs("bool", sub)))
    shape = draw(st.sampled_from(["concat", "template", "if"]))
    if shape == "concat":
        return n.Binary("+", draw(exprs("str", sub)), draw(exprs("str", sub)))
    if shape == "template":
        holes = [n.Name(name) for name in draw(st.lists(st.sampled_from(list(TYPES)), min_size=1, max_size=3))]
        parts: list = []
        for hole in holes:
            parts += [draw(TEXT), hole]
        return n.Template(tuple(p for p in parts if p != ""))
    return n.IfElse(draw(exprs("bool", sub)), draw(exprs("str", sub)), draw(exprs("str", sub)))


def _leaf(kind: str):
    if kind == "int":
        return st.one_of(SMALL_INTS.map(n.Number), st.sampled_from(NAMES["int"]).map(n.Name))
    if kind == "num":
        return st.one_of(_leaf("int"), FLOATS.map(n.Number), st.sampled_from(NAMES["float"]).map(n.Name))
    if kind == "bool":
        return st.one_of(st.booleans().map(n.Bool), st.sampled_from(NAMES["bool"]).map(n.Name))
    return st.one_of(TEXT.map(n.String), st.sampled_from(NAMES["str"]).map(n.Name))


ANY_EXPR = st.sampled_from(["num", "bool", "str"]).flatmap(exprs)


@st.composite
def constant_numbers(draw, depth: int = 4):
    """Arithmetic on number literals, the one thing constant folding takes."""
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return n.Number(draw(st.one_of(SMALL_INTS, FLOATS)))
    sub = depth - 1
    shape = draw(st.sampled_from(["neg", "arith", "percent"]))
    if shape == "neg":
        return n.Unary("-", draw(constant_numbers(sub)))
    if shape == "percent":
        return n.Percent(draw(constant_numbers(sub)))
    return n.Binary(draw(st.sampled_from("+-*/")), draw(constant_numbers(sub)), draw(constant_numbers(sub)))

# ---------------------------------------------------------------- each evaluator, as it is called

ERROR = "error"


def by_sampler(expr, env):
    try:
        return _Compiler(TYPES, "t", None).compile(expr)(dict(env), random.Random(0))
    except CircError:
        return ERROR


def by_conditions(expr, env):
    try:
        return conditions.evaluate(expr, env)
    except VerifyError:
        return ERROR


def by_constant_folding(expr):
    try:
        return constant_number(expr)
    except NotConstant:
        return ERROR


def value_set(expr, env):
    """What the checker's static analysis says ``expr`` can be, the names bound to ``env``'s values."""
    literal = {bool: n.Bool, str: n.String}
    bindings = {name: n.Binding(name, literal.get(type(value), n.Number)(value)) for name, value in env.items()}
    return TaskAnalysis(bindings, VocabSpec(), Reporter(), "task `t`").values(expr)


def nodes(expr):
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        for child in (getattr(e, f, None) for f in ("left", "right", "operand", "value", "cond", "then", "orelse", "low", "high")):
            if child is not None and not isinstance(child, (int, float, str)):
                stack.append(child)
        stack.extend(getattr(e, "items", ()))


def is_constant_number(expr) -> bool:
    """What constant folding takes: arithmetic on number literals."""
    return all(
        isinstance(e, (n.Number, n.Percent)) or (isinstance(e, n.Unary) and e.op == "-") or (isinstance(e, n.Binary) and e.op in "+-*/")
        for e in nodes(expr)
    )


def conditions_take(expr) -> bool:
    """The old conditions evaluator knows no templates and no `if`."""
    return not any(isinstance(e, (n.Template, n.IfElse)) for e in nodes(expr))


def same(a, b) -> bool:
    # repr tells 2 from 2.0 and True from 1, which == does not.
    return repr(a) == repr(b)


# ---------------------------------------------------------------- the old evaluators, side by side

EMPTY_ENV = {"i": 0, "j": 0, "x": 0.0, "p": False, "s": "", "t": ""}


def has_division(expr) -> bool:
    return any(isinstance(e, n.Binary) and e.op == "/" for e in nodes(expr))


@settings(max_examples=max(200, settings.default.max_examples), deadline=None)
@given(ANY_EXPR, ENVS)
def test_the_old_evaluators_agree_but_on_division(expr, env):
    reference = by_sampler(expr, env)
    if conditions_take(expr):
        assert same(by_conditions(expr, env), reference), "conditions"
    if is_constant_number(expr) and not has_division(expr):
        assert same(by_constant_folding(expr), reference), "constant folding"
    if reference != ERROR:
        values = value_set(expr, env)
        assert values is None or reference in values, "value sets"


@pytest.mark.xfail(
    strict=True,
    reason="constant folding gives `4/2` as the int 2 (and `0/3/-7` as 0, not -0.0); "
    "the sampler, the conditions and the value sets give 2.0, as the type checker's FLOAT says",
)
@settings(max_examples=max(200, settings.default.max_examples), deadline=None)
@given(constant_numbers().filter(has_division))
@example(n.Binary("/", n.Number(4), n.Number(2)))
def test_the_old_constant_folding_divides_like_the_others(expr):
    assert same(by_constant_folding(expr), by_sampler(expr, EMPTY_ENV))
