"""Conditions over an example's latent variables and the token at a position.

A condition (``depth == 2``, ``token == "["``, ``n in 1..3 and not q == "'"``)
is evaluated on one example's latents, with ``token`` bound to the text of
one token. The checker has already resolved every name, so an unknown name
here is a bug, not a user error.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from runtime.tokenizer import Tokenizer

from circuitdsl import evaluate as evaluation
from circuitdsl.syntax import ast as n
from circuitdsl.check.values import free_names
from circuitdsl.syntax.formatter import format_expr
from circuitdsl.spec.checked import TaskSpec
from circuitdsl.spec.claims import Variant
from circuitdsl.verification.errors import NoSamples, VerifyError
from circuitdsl.verification.samples import Samples, draw


def uses_token(expr: n.Expr | None) -> bool:
    return any(name.id == "token" for name in free_names(expr))


def names_in(expr: n.Expr | None) -> set[str]:
    return {name.id for name in free_names(expr)}


def evaluate(expr: n.Expr, env: Mapping[str, object]) -> object:
    """The value of ``expr`` with the names of ``env``; conditions give a bool.

    The language's one evaluator (:func:`circuitdsl.evaluate.evaluate`), its
    failures raised as the VerifyError a verify run reports.
    """
    try:
        return evaluation.evaluate(expr, env)
    except evaluation.EvaluationError as err:
        raise VerifyError(err.message) from None


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


def draw_when(
    cond: n.Expr | None,
    task: TaskSpec,
    n_samples: int,
    seed: str,
    tokenizer: Tokenizer,
    context: int,
    variant: Variant | None = None,
) -> Samples:
    """``n_samples`` samples on which ``cond`` holds (drawing more rounds for a rare one)."""
    if cond is None or not uses_token(cond):
        keep = None if cond is None else (lambda ex: bool(evaluate(cond, ex.latents)))
        return draw(task, n_samples, seed, tokenizer, context, variant=variant, keep=keep)
    # `token` needs the encoded prompt: draw, then keep the rows that satisfy it.
    samples = draw(task, n_samples, seed, tokenizer, context, variant=variant)
    rows = sample_mask(cond, samples)
    if not rows.any():
        raise NoSamples(f"no sample satisfied `{format_expr(cond)}`")
    return samples.select(rows)
