"""Conditions over an example's latent variables and the token at a position.

A condition (``depth == 2``, ``token == "["``, ``n in 1..3 and not q == "'"``)
is evaluated on one example's latents, with ``token`` bound to the text of
one token. The checker has already resolved every name, so an unknown name
here is a bug, not a user error.
"""

from __future__ import annotations

import operator
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from runtime.tokenizer import Tokenizer

from .. import nodes as n
from ..check_task import free_names
from ..formatter import format_expr
from ..program import TaskSpec
from ..settings import NotConstant, constant_number
from .errors import NoSamples, VerifyError
from .samples import Samples, draw

_ORDER: dict[str, Callable] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def uses_token(expr: n.Expr | None) -> bool:
    return any(name.id == "token" for name in free_names(expr))


def names_in(expr: n.Expr | None) -> set[str]:
    return {name.id for name in free_names(expr)}


def evaluate(expr: n.Expr, env: Mapping[str, object]) -> object:
    """The value of ``expr`` with the names of ``env``; conditions give a bool."""
    if isinstance(expr, (n.Number, n.String, n.Bool)):
        return expr.value
    if isinstance(expr, n.Percent):
        return evaluate(expr.value, env) / 100
    if isinstance(expr, n.Name):
        if expr.id not in env:
            raise VerifyError(f"`{expr.id}` has no value here (known: {', '.join(sorted(env))})")
        return env[expr.id]
    if isinstance(expr, n.Unary):
        value = evaluate(expr.operand, env)
        return (not value) if expr.op == "not" else -value
    if isinstance(expr, n.Binary):
        if expr.op == "and":
            return bool(evaluate(expr.left, env)) and bool(evaluate(expr.right, env))
        if expr.op == "or":
            return bool(evaluate(expr.left, env)) or bool(evaluate(expr.right, env))
        left = evaluate(expr.left, env)
        if expr.op == "in":
            if isinstance(expr.right, n.Range):
                low, high = evaluate(expr.right.low, env), evaluate(expr.right.high, env)
                return _ordered(operator.le, low, left) and _ordered(operator.le, left, high)
            if isinstance(expr.right, n.ListExpr):
                return left in [evaluate(item, env) for item in expr.right.items]
            raise VerifyError("`in` takes a range or a list")
        right = evaluate(expr.right, env)
        if expr.op in _ORDER:
            return _ordered(_ORDER[expr.op], left, right)
        try:
            return {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}[expr.op](left, right)
        except (TypeError, ZeroDivisionError) as err:
            raise VerifyError(f"cannot compute `{expr.op}` of {left!r} and {right!r}: {err}") from None
    raise VerifyError(f"a {type(expr).__name__} cannot be evaluated in a condition")


def _ordered(op: Callable, left, right) -> bool:
    # `q < 2` with q text is false rather than an error: the checker lets a
    # comparison of a variable with a value through whatever their types.
    try:
        return bool(op(left, right))
    except TypeError:
        return False


def sample_mask(cond: n.Expr | None, samples: Samples) -> Tensor:
    """(N,) bool: the samples whose latents satisfy ``cond`` (all, for None).

    ``token`` here is the token at the answer position (the prompt's last).
    """
    if cond is None:
        return torch.ones(len(samples), dtype=torch.bool)
    if not uses_token(cond):
        return torch.tensor([bool(evaluate(cond, ex.latents)) for ex in samples.examples], dtype=torch.bool)
    tokens = samples.batch.tokens[torch.arange(len(samples)), samples.batch.answer_pos].tolist()
    return torch.tensor(
        [bool(evaluate(cond, {**ex.latents, "token": samples.token_text(t)})) for ex, t in zip(samples.examples, tokens)],
        dtype=torch.bool,
    )


def position_mask(cond: n.Expr | None, samples: Samples, where: Tensor) -> Tensor:
    """(N, T) bool: the positions of ``where`` at which ``cond`` holds, ``token`` being the token there."""
    if cond is None:
        return where.clone()
    if not uses_token(cond):
        return where & sample_mask(cond, samples)[:, None]
    out = torch.zeros_like(where)
    tokens = samples.batch.tokens
    for i, ex in enumerate(samples.examples):
        cols = where[i].nonzero().flatten()
        if cols.numel() == 0:
            continue
        ids = tokens[i, cols]
        # Evaluated once per distinct token of the row, not once per position.
        verdicts = {
            t: bool(evaluate(cond, {**ex.latents, "token": samples.token_text(t)})) for t in ids.unique().tolist()
        }
        keep = torch.tensor([verdicts[t] for t in ids.tolist()], dtype=torch.bool)
        out[i, cols[keep]] = True
    return out


def variable_values(name: str, samples: Samples) -> Tensor:
    """(N,) float: a latent variable as a number (a bool as 0/1), for ``corr``."""
    values = []
    for ex in samples.examples:
        value = ex.latents.get(name)
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)):
            raise VerifyError(
                f"`corr` needs a number, but `{name}` is {type(value).__name__} ({value!r}); "
                f"correlate with a condition instead, e.g. `corr(act, {name} == {value!r})`"
            )
        values.append(float(value))
    return torch.tensor(values, dtype=torch.float64)


def layers_of(layer: n.LayerFilter | None) -> set[int] | None:
    """The layers ``in layer L`` / ``in layers A..B`` names; None for no filter."""
    if layer is None:
        return None
    try:
        if isinstance(layer.layers, n.Range):
            return set(range(int(constant_number(layer.layers.low)), int(constant_number(layer.layers.high)) + 1))
        return {int(constant_number(layer.layers))}
    except NotConstant as err:
        raise VerifyError(f"a layer must be a number: {err.message}") from None


def draw_when(
    cond: n.Expr | None,
    task: TaskSpec,
    n_samples: int,
    seed: str,
    tokenizer: Tokenizer,
    context: int,
    overrides: Sequence[n.Binding] = (),
) -> Samples:
    """``n_samples`` samples on which ``cond`` holds (drawing more rounds for a rare one)."""
    if cond is None or not uses_token(cond):
        keep = None if cond is None else (lambda ex: bool(evaluate(cond, ex.latents)))
        return draw(task, n_samples, seed, tokenizer, context, overrides=overrides, keep=keep)
    # `token` needs the encoded prompt: draw, then keep the rows that satisfy it.
    samples = draw(task, n_samples, seed, tokenizer, context, overrides=overrides)
    rows = sample_mask(cond, samples)
    if not rows.any():
        raise NoSamples(f"no sample satisfied `{format_expr(cond)}`")
    return samples.select(rows)
