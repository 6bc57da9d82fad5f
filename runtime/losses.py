"""The task losses pruning can hold a circuit to.

    ce        cross-entropy over the whole vocabulary at the answer position
    contrast  the paper release's binary loss: cross-entropy of a 2-way
              softmax over the answer and one competitor token,
              softplus(logit[competitor] - logit[answer])

``contrast`` asks only that the circuit tell the answer from its rival; the
full-vocabulary CE also asks it to push down every unrelated token, which
nodes outside the task's mechanism (bigram-ish priors) do. The rival of each
example (``rivals``) is fixed once, on the unpruned model:

1. the task's own competitors (the ``competitors`` a task spec declares;
   every shipped task declares one), the one the model ranks highest when
   there are several;
2. for a row with none (or only its own answer), the most likely wrong answer among the answers the
   task's batch contains;
3. when the batch has a single answer, the most likely wrong token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .batch import Batch

LOSSES = ("ce", "contrast")


@torch.no_grad()
def rivals(logits: Tensor, batch: Batch) -> Tensor:
    """(B,) each row's competitor token, chosen on the unpruned model's answer ``logits`` (B, V)."""
    B, V = logits.shape
    answers = batch.answers
    listed = torch.zeros(B, V, dtype=torch.bool)
    comp = batch.competitors
    valid = comp >= 0
    if comp.numel():
        index = torch.arange(B)[:, None].expand_as(comp)
        listed[index[valid], comp[valid]] = True
    task_answers = torch.zeros(V, dtype=torch.bool)
    task_answers[answers.unique()] = True
    fallback = task_answers.expand(B, V).clone()
    if int(task_answers.sum()) < 2:
        fallback = torch.ones(B, V, dtype=torch.bool)
    rows = torch.arange(B)
    listed[rows, answers] = False
    fallback[rows, answers] = False
    # A row whose listed competitors are all its own answer (the nonsense
    # control's shuffled answers can be) falls back like a row with none.
    allowed = torch.where(listed.any(1, keepdim=True), listed, fallback)
    return logits.masked_fill(~allowed, float("-inf")).argmax(-1)


def row_losses(kind: str, logits: Tensor, answers: Tensor, rival: Tensor | None) -> Tensor:
    """(B,) per-example loss of answer ``logits`` (B, V) under ``kind``."""
    if kind == "ce":
        return F.cross_entropy(logits, answers, reduction="none")
    if kind == "contrast":
        if rival is None:
            raise ValueError("the contrast loss needs each example's competitor (losses.rivals)")
        pick = lambda t: logits.gather(1, t[:, None]).squeeze(1)  # noqa: E731
        return F.softplus(pick(rival) - pick(answers))
    raise ValueError(f"unknown loss {kind!r}; expected one of {', '.join(LOSSES)}")
