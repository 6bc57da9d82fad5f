"""The one evaluator of the expression language: what an operator means, everywhere it is used.

The sampler's compiled closures (the data generator), the verifier's
conditions over latents, constant folding of settings and bounds, and the
checker's value sets all take their operators from the tables here, so an
expression means the same in a task, a `when` clause and a setting
(tests/property/test_evaluator.py holds them to it).

What each operator means, consistent with the type checker (circuitdsl/check/tasks.py):

* ``+ - *`` are Python's on numbers: int with int stays int (``d_model = 2 * 64``
  is 128, not 128.0). ``+`` on two texts concatenates; text plus a number is a
  ``TypeError``, never a silent conversion (``str(n)`` says it).
* ``/`` is true division and always a float: ``4/2`` is ``2.0``, as the checker
  types every quotient FLOAT and as a prompt writes it (``${q}`` is ``2.0``).
  Dividing by zero raises ``ZeroDivisionError``; :func:`evaluate` turns it into
  an :class:`EvaluationError` at the division, constant folding into
  ``NotConstant("division by zero")``, the sampler into a located ``CircError``.
* ``50%`` is the fraction ``0.5`` (always a float).
* ``== !=`` are Python equality (``2 == 2.0``); values of different types are unequal.
* ``< <= > >=`` are Python's order, but across types (text with a number) they are
  false rather than an error: a condition over latents (``q < 2`` with ``q`` text)
  is not type-checked against the task's variables, and a sample it cannot
  describe is one it does not select; aborting a whole verify run would help no
  one. In a task the checker has proved both sides numbers, so this never fires.
* ``and or not`` take bools; ``and``/``or`` give a bool and look at their right
  side only when the left does not decide.
* ``x in lo..hi`` is ``lo <= x <= hi`` (both ends included, ordered like ``<=``,
  ``hi`` looked at only when ``lo <= x``); ``x in [a, b]`` is equality with an item.
* Values become text (``${x}``, ``str(x)``) by :func:`as_text`: bools as ``true``/``false``.

Torch-free: the checker and ``circ check`` import it.
"""

from __future__ import annotations

import math
import operator
import reprlib
from collections.abc import Callable, Mapping
from typing import Any

from circuitdsl.syntax import ast as n
from circuitdsl.syntax.spans import Span


class NotConstant(Exception):
    def __init__(self, message: str, span: Span | None, hint: str | None = None):
        super().__init__(message)
        self.message, self.span, self.hint = message, span, hint


class EvaluationError(Exception):
    """An expression with no value: a division by zero, text plus a number, an unknown name."""

    def __init__(self, message: str, span: Span | None = None):
        super().__init__(message)
        self.message, self.span = message, span


# ---------------------------------------------------------------- the operators


def _less(left, right) -> bool:
    try:
        return left < right
    except TypeError:
        return False


def _at_most(left, right) -> bool:
    try:
        return left <= right
    except TypeError:
        return False


def _greater(left, right) -> bool:
    try:
        return left > right
    except TypeError:
        return False


def _at_least(left, right) -> bool:
    try:
        return left >= right
    except TypeError:
        return False


#: The ordering comparisons: false, not an error, across types (see above).
ORDER: dict[str, Callable[[Any, Any], bool]] = {"<": _less, "<=": _at_most, ">": _greater, ">=": _at_least}

#: Every binary operator on two values already computed. ``and``/``or`` are here for
#: the value sets, which know both sides; evaluators skip the right side when the left decides.
def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric(op: Callable[[Any, Any], Any], symbol: str) -> Callable[[Any, Any], Any]:
    """``op`` on two numbers only. Python would also repeat a text (``"ab" * 10**9`` builds
    2 GB before the type check could object) or add lists; the language does neither."""

    def apply(left, right):
        if not (_is_number(left) and _is_number(right)):
            raise TypeError(f"`{symbol}` takes numbers, not {type(left).__name__} and {type(right).__name__}")
        return op(left, right)

    return apply


def _add(left, right):
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    return _plus(left, right)


_plus = _numeric(operator.add, "+")

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add,
    "-": _numeric(operator.sub, "-"),
    "*": _numeric(operator.mul, "*"),
    "/": _numeric(operator.truediv, "/"),
    "==": operator.eq,
    "!=": operator.ne,
    **ORDER,
    "and": lambda left, right: bool(left and right),
    "or": lambda left, right: bool(left or right),
}

UNARY: dict[str, Callable[[Any], Any]] = {"-": operator.neg, "not": operator.not_}


def percent(value):
    """``50%``: a fraction written as a percentage."""
    return value / 100


def in_range(item, low, high) -> bool:
    """``item in low..high``, both ends included."""
    return _at_most(low, item) and _at_most(item, high)


def in_list(item, items) -> bool:
    """``item in [a, b]``."""
    return item in items


def as_text(value: object) -> str:
    """How ``${x}`` and ``str(x)`` write a value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------- evaluation

_ARITHMETIC = frozenset("+-*/")


def evaluate(expr: n.Expr, env: Mapping[str, object]) -> object:
    """The value of ``expr`` with the names of ``env``; conditions give a bool.

    Raises :class:`EvaluationError` (with the span of the subexpression at fault)
    for an expression that has no value. Ranges and generator calls are drawn,
    not evaluated: they have a value only on the right of ``in`` (a range) or in
    the sampler.
    """
    return _run(expr, env)


def constant_number(expr: n.Expr) -> int | float:
    """Arithmetic on literals: ``1/16``, ``50%``, ``2 * 64``, ``-1``.

    The same arithmetic as :func:`evaluate`; anything but number literals, unary
    ``-``, ``+ - * /`` and ``%`` is ``NotConstant("expected a number")`` at that node.
    """
    try:
        value = expr.value if isinstance(expr, n.Number) else _run(expr, None)
    except EvaluationError as problem:
        raise NotConstant(problem.message, problem.span) from None
    # Every number the checker compares or a setting holds must be a float too:
    # a 400-digit integer is a typo, and float() of it would crash a caller.
    try:
        float(value)
    except OverflowError:
        raise NotConstant("the number is too large", getattr(expr, "span", None)) from None
    return value


# Steps of the evaluation loop. An explicit stack rather than recursion, so no
# nesting depth can exhaust Python's recursion limit here.
_EVAL, _UNARY, _BINARY, _PERCENT, _LOGIC, _TRUTH, _BRANCH, _LIST, _MEMBER, _RANGE_LOW, _RANGE_HIGH = range(11)


def _run(expr: n.Expr, env: Mapping[str, object] | None) -> object:
    """Evaluate ``expr``; with ``env`` None, only constant arithmetic is allowed."""
    todo: list[tuple[int, Any]] = [(_EVAL, expr)]
    values: list[Any] = []
    push, pop = todo.append, todo.pop
    while todo:
        step, e = pop()
        if step == _EVAL:
            if isinstance(e, n.Number):
                values.append(e.value)
            elif env is None and not _arithmetic(e):
                raise EvaluationError("expected a number", getattr(e, "span", None))
            elif isinstance(e, (n.String, n.Bool)):
                values.append(e.value)
            elif isinstance(e, n.Name):
                values.append(_lookup(e, env))
            elif isinstance(e, n.Template):
                values.append("".join(p if isinstance(p, str) else as_text(_lookup(p, env)) for p in e.parts))
            elif isinstance(e, n.Percent):
                push((_PERCENT, e))
                push((_EVAL, e.value))
            elif isinstance(e, n.Unary):
                push((_UNARY, e))
                push((_EVAL, e.operand))
            elif isinstance(e, n.Binary):
                if e.op in ("and", "or"):
                    push((_LOGIC, e))
                    push((_EVAL, e.left))
                elif e.op != "in":
                    push((_BINARY, e))
                    push((_EVAL, e.right))
                    push((_EVAL, e.left))
                elif isinstance(e.right, n.Range):
                    # The sampler's order: the low end, the item, and the high end only if needed.
                    push((_RANGE_LOW, e))
                    push((_EVAL, e.left))
                    push((_EVAL, e.right.low))
                elif isinstance(e.right, n.ListExpr):
                    push((_MEMBER, e))
                    push((_EVAL, e.right))
                    push((_EVAL, e.left))
                else:
                    raise EvaluationError("`in` takes a range or a list", getattr(e.right, "span", None))
            elif isinstance(e, n.IfElse):
                push((_BRANCH, e))
                push((_EVAL, e.cond))
            elif isinstance(e, n.ListExpr):
                push((_LIST, e))
                for item in reversed(e.items):
                    push((_EVAL, item))
            else:
                raise EvaluationError(f"a {type(e).__name__} cannot be evaluated here", getattr(e, "span", None))
        elif step == _BINARY:
            right = values.pop()
            values[-1] = _apply(e, values[-1], right)
        elif step == _UNARY:
            values[-1] = _apply(e, values[-1])
        elif step == _PERCENT:
            values[-1] = _apply(e, values[-1])
        elif step == _LOGIC:
            left = bool(values.pop())
            if left == (e.op == "or"):
                values.append(left)
            else:
                push((_TRUTH, e))
                push((_EVAL, e.right))
        elif step == _TRUTH:
            values[-1] = bool(values[-1])
        elif step == _BRANCH:
            push((_EVAL, e.then if values.pop() else e.orelse))
        elif step == _LIST:
            count = len(e.items)
            items = values[len(values) - count :]
            del values[len(values) - count :]
            values.append(items)
        elif step == _MEMBER:
            items = values.pop()
            values[-1] = in_list(values[-1], items)
        elif step == _RANGE_LOW:
            item = values.pop()
            low = values.pop()
            if _at_most(low, item):
                values.append(item)
                push((_RANGE_HIGH, e))
                push((_EVAL, e.right.high))
            else:
                values.append(False)
        else:  # _RANGE_HIGH
            high = values.pop()
            values[-1] = _at_most(values[-1], high)
    return values[0]


def _arithmetic(e) -> bool:
    """A node constant folding may take (number literals are handled before)."""
    if isinstance(e, n.Binary):
        return e.op in _ARITHMETIC
    if isinstance(e, n.Unary):
        return e.op == "-"
    return isinstance(e, n.Percent)


def _lookup(name: n.Name, env: Mapping[str, object] | None) -> object:
    if env is None or name.id not in env:
        known = ", ".join(sorted(env or ()))
        raise EvaluationError(f"`{name.id}` has no value here (known: {known})", name.span)
    return env[name.id]


def _apply(e, *operands):
    """``e``'s operator on ``operands``, its failures as errors located at ``e``."""
    try:
        if isinstance(e, n.Binary):
            result = BINARY[e.op](*operands)
        elif isinstance(e, n.Percent):
            result = percent(*operands)
        else:
            result = UNARY[e.op](*operands)
        # `1e308 * 10` is inf in Python; no setting or value means infinity.
        if isinstance(result, float) and not math.isfinite(result):
            raise OverflowError("the result is too large for a number")
        return result
    except ZeroDivisionError:
        raise EvaluationError("division by zero", e.span) from None
    except KeyError:
        raise EvaluationError(f"unknown operator `{e.op}`", e.span) from None
    except (TypeError, OverflowError) as err:
        shown = " and ".join(reprlib.repr(x) for x in operands)
        raise EvaluationError(f"cannot compute `{getattr(e, 'op', '%')}` of {shown}: {err}", e.span) from None
