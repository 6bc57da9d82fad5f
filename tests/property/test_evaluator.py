"""One meaning for every expression: :func:`circuitdsl.evaluate.evaluate`.

Four places compute what an expression means: the sampler's compiled closures
(the data generator), the verifier's conditions over latents, constant folding
of settings and bounds, and the checker's value-set analysis. Random
well-typed expression trees over an environment of names are handed to each,
and each must give what ``evaluate`` gives (type included: ``2`` and ``2.0``
print differently in a prompt) or fail where it fails. The conditions call
``evaluate`` itself, so they are not compared here.

Before there was one evaluator, each had its own operator table, and a test
like this one found them agreeing everywhere but on ``/`` in constant folding,
which gave an int when the quotient was whole (``4/2`` -> ``2``, ``0/3/-7`` ->
``0`` where the others gave ``-0.0``), though the type checker calls every
quotient FLOAT.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from circuitdsl.check import builtins as b
from circuitdsl.check.sink import DiagnosticSink
from circuitdsl.check.tasks import TaskAnalysis
from circuitdsl.diagnostics import CircError
from circuitdsl.evaluate import EvaluationError, NotConstant, constant_number, evaluate
from circuitdsl.spec.checked import VocabSpec
from circuitdsl.syntax import ast as n
from circuitdsl.syntax.spans import Span
from circuitdsl.tasks.sampler import _Compiler

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


def compiled(expr):
    """The closure the sampler draws ``expr`` with."""
    return _Compiler(TYPES, "t", None).compile(expr)


def by_sampler(expr, env):
    try:
        return compiled(expr)(dict(env), random.Random(0))
    except CircError:
        return ERROR


def by_evaluate(expr, env):
    try:
        return evaluate(expr, env)
    except EvaluationError:
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
    return TaskAnalysis(bindings, VocabSpec(), DiagnosticSink(), "task `t`").values(expr)


def same(a, b) -> bool:
    # repr tells 2 from 2.0 and True from 1, which == does not.
    return repr(a) == repr(b)


# ---------------------------------------------------------------- each against evaluate

EXAMPLES = settings(max_examples=max(200, settings.default.max_examples), deadline=None)
EMPTY_ENV = {"i": 0, "j": 0, "x": 0.0, "p": False, "s": "", "t": ""}


@EXAMPLES
@given(ANY_EXPR, ENVS)
@example(n.Binary("/", n.Number(4), n.Number(2)), EMPTY_ENV)
@example(n.Binary("/", n.Name("i"), n.Number(0)), EMPTY_ENV)
def test_the_sampler_computes_what_evaluate_does(expr, env):
    assert same(by_sampler(expr, env), by_evaluate(expr, env))


@EXAMPLES
@given(constant_numbers())
@example(n.Binary("/", n.Number(4), n.Number(2)))
@example(n.Binary("/", n.Binary("/", n.Number(0), n.Number(3)), n.Number(-7)))
def test_constant_folding_computes_what_evaluate_does(expr):
    assert same(by_constant_folding(expr), by_evaluate(expr, {}))


@EXAMPLES
@given(ANY_EXPR, ENVS)
def test_the_value_sets_hold_the_value(expr, env):
    value = by_evaluate(expr, env)
    values = value_set(expr, env)
    if value != ERROR and values is not None:
        assert value in values


# ---------------------------------------------------------------- what was decided


def test_a_quotient_is_a_float_as_the_checker_types_it():
    quotient = n.Binary("/", n.Number(4), n.Number(2))
    analysis = TaskAnalysis({}, VocabSpec(), DiagnosticSink(), "task `t`")
    assert analysis.infer(quotient) == b.FLOAT
    for value in (evaluate(quotient, {}), constant_number(quotient), by_sampler(quotient, EMPTY_ENV)):
        assert repr(value) == "2.0"
    assert analysis.values(quotient) == {2.0}


def test_whole_arithmetic_stays_int():
    assert repr(constant_number(n.Binary("*", n.Number(2), n.Number(64)))) == "128"


def test_division_by_zero_is_located():
    at = Span("t.circ", 3, 14, 3, 19, 40, 45)
    divisor_at = Span("t.circ", 3, 18, 3, 19, 44, 45)
    division = n.Binary("/", n.Name("i"), n.Number(0, span=divisor_at), span=at)
    with pytest.raises(EvaluationError, match="division by zero") as raised:
        evaluate(division, {"i": 1})
    assert raised.value.span == at
    with pytest.raises(NotConstant, match="division by zero") as folded:
        constant_number(n.Binary("/", n.Number(1), n.Number(0), span=at))
    assert folded.value.span == at
    # The sampler points at the divisor, with the draw that made it 0.
    with pytest.raises(CircError, match="division by zero") as drawn:
        compiled(division)({"i": 1}, random.Random(0))
    assert drawn.value.diagnostics[0].span == divisor_at


def test_ordering_across_types_is_false_not_an_error():
    for op in ("<", "<=", ">", ">="):
        assert evaluate(n.Binary(op, n.Name("q"), n.Number(2)), {"q": "'"}) is False
    assert evaluate(n.Binary("in", n.Name("q"), n.Range(n.Number(1), n.Number(3))), {"q": "'"}) is False


def test_text_plus_a_number_is_an_error():
    with pytest.raises(EvaluationError, match="cannot compute `\\+`"):
        evaluate(n.Binary("+", n.String("a"), n.Number(1)), {})
    assert evaluate(n.Binary("+", n.String("a"), n.String("b")), {}) == "ab"


def test_deep_nesting_does_not_exhaust_the_stack():
    deep: n.Expr = n.Number(1)
    for _ in range(20_000):
        deep = n.Binary("+", n.Number(1), n.Unary("-", n.Unary("-", deep)))
    assert evaluate(deep, {}) == constant_number(deep) == 20_001
