"""Batches of next-token examples, in the one layout every part of the runtime uses.

An example is a prompt and the one token that must follow it. Encoded, it is
BOS, the prompt's tokens, then PAD up to the batch's longest row::

    prompt "x = [1, [2"  answer "]]"
    tokens   <bos> x ␣ = ␣ [ 1 , ␣ [ 2 <pad> <pad>
    lengths  11                          (real tokens, BOS included)
    answer_pos = lengths - 1 = 10        (the position whose logits predict "]]")

Padding is on the right, so under causal attention no real position ever
sees a pad and the attention mask is needed only to read results.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import Tensor

from .tokenizer import BOS_ID, PAD_ID, Tokenizer

#: Target value that cross-entropy ignores (``F.cross_entropy``'s default).
IGNORE = -100


@dataclass(frozen=True)
class Batch:
    tokens: Tensor  # (B, T) long: BOS, prompt, PAD...
    lengths: Tensor  # (B,) long: real tokens per row, BOS included
    answers: Tensor  # (B,) long: the token after the prompt
    #: (B, C) long: tokens the answer competes with, -1 where a row has fewer.
    competitors: Tensor
    task_ids: Tensor  # (B,) long: index into task_names
    task_names: tuple[str, ...] = ("task",)

    def __len__(self) -> int:
        return self.tokens.size(0)

    @property
    def answer_pos(self) -> Tensor:  # (B,)
        return self.lengths - 1

    @property
    def attention_mask(self) -> Tensor:  # (B, T) bool, True on real tokens
        return torch.arange(self.tokens.size(1), device=self.tokens.device) < self.lengths[:, None]

    def next_token_targets(self) -> Tensor:
        """(B, T) targets for a loss on every position: the next prompt token, the
        answer at answer_pos, IGNORE on padding."""
        targets = torch.full_like(self.tokens, IGNORE)
        targets[:, :-1] = self.tokens[:, 1:]
        targets[~self.attention_mask] = IGNORE
        rows = torch.arange(len(self), device=self.tokens.device)
        targets[rows, self.answer_pos] = self.answers
        return targets

    def to(self, device: torch.device | str) -> Batch:
        return replace(
            self,
            tokens=self.tokens.to(device),
            lengths=self.lengths.to(device),
            answers=self.answers.to(device),
            competitors=self.competitors.to(device),
            task_ids=self.task_ids.to(device),
        )

    def select(self, index: Tensor | slice) -> Batch:
        """The rows ``index`` picks (a bool mask, indices or a slice), trimmed to their longest."""
        lengths = self.lengths[index]
        width = int(lengths.max()) if lengths.numel() else 1
        return replace(
            self,
            tokens=self.tokens[index][:, :width],
            lengths=lengths,
            answers=self.answers[index],
            competitors=self.competitors[index],
            task_ids=self.task_ids[index],
        )

    def split(self, size: int) -> list[Batch]:
        """Consecutive chunks of at most ``size`` rows, for evaluating in pieces."""
        return [self.select(slice(i, i + size)) for i in range(0, len(self), size)]


def encode_batch(
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    competitors: Sequence[Sequence[str]] | None = None,
    task_ids: Sequence[int] | None = None,
    task_names: tuple[str, ...] = ("task",),
    context: int | None = None,
) -> Batch:
    """Encode examples; raises ValueError when a row would not fit ``context`` tokens."""
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    rows = [[BOS_ID] + tokenizer.encode(p) for p in prompts]
    longest = max((len(r) for r in rows), default=1)
    if context is not None and longest > context:
        worst = max(range(len(rows)), key=lambda i: len(rows[i]))
        raise ValueError(
            f"prompt {prompts[worst]!r} is {longest - 1} tokens, more than the context of {context} allows"
        )
    # Padded into one flat int64 buffer and wrapped once: a tensor per row, or
    # torch.tensor on nested lists, costs more than tokenizing the whole batch.
    flat = array("q")
    for row in rows:
        flat.extend(row)
        flat.extend([PAD_ID] * (longest - len(row)))
    tokens = _long_tensor(flat, len(rows), longest)
    competitors = competitors if competitors is not None else [()] * len(rows)
    width = max((len(c) for c in competitors), default=0) or 1
    token_id = tokenizer.token_id
    comp = array("q")
    for row in competitors:
        comp.extend([token_id(t) for t in row])
        comp.extend([-1] * (width - len(row)))
    comp = _long_tensor(comp, len(rows), width)
    return Batch(
        tokens=tokens,
        lengths=torch.tensor([len(r) for r in rows], dtype=torch.long),
        answers=torch.tensor([tokenizer.token_id(a) for a in answers], dtype=torch.long),
        competitors=comp,
        task_ids=torch.tensor(task_ids if task_ids is not None else [0] * len(rows), dtype=torch.long),
        task_names=task_names,
    )


def _long_tensor(buffer: array, rows: int, width: int) -> Tensor:
    """A (rows, width) long tensor of an int64 array (which it keeps alive and owns from now on)."""
    if not buffer:
        return torch.empty((rows, width), dtype=torch.long)
    return torch.frombuffer(buffer, dtype=torch.long).view(rows, width)
