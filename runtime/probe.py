"""Running a model to read what it answers and what its units do.

Two questions a claim asks of a model, each one forward pass:

* what does it predict at the answer position (``readout``): the logits there,
  from which the answer's log-probability, the argmax, a token's probability
  and the margin over the competitors follow;
* what do some of its nodes carry (``record``): their activations at every
  position, so that statistics can be taken at the answer, a few tokens
  before it, or wherever a token condition holds (``positions``).

Both run the model in full mode (every position through every layer), so a
hook sees (B, T, width) at every site, the last layer's MLP included, and
position-dependent hooks (interventions at one position) work anywhere.
Full-mode logits gathered at ``answer_pos`` equal answer_pos-mode logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from .batch import Batch
from .model import Hook, SparseGPT


@dataclass(frozen=True)
class Readout:
    """The model's prediction at each row's answer position."""

    logits: Tensor  # (B, V)
    answers: Tensor  # (B,)
    competitors: Tensor  # (B, C), -1 where a row has fewer

    @property
    def log_probs(self) -> Tensor:  # (B, V)
        return self.logits.log_softmax(-1)

    @property
    def answer_logprob(self) -> Tensor:  # (B,)
        return self.log_probs.gather(1, self.answers[:, None]).squeeze(1)

    @property
    def argmax(self) -> Tensor:  # (B,)
        return self.logits.argmax(-1)

    @property
    def correct(self) -> Tensor:  # (B,) bool
        return self.argmax == self.answers

    @property
    def margin(self) -> Tensor:  # (B,)
        """Answer logit minus the best competitor's.

        A row without competitors competes with every other token, so its
        margin is over the best token that is not the answer.
        """
        rows = torch.arange(self.logits.size(0), device=self.logits.device)
        answer = self.logits[rows, self.answers]
        valid = self.competitors >= 0
        named = self.logits.gather(1, self.competitors.clamp(min=0)).masked_fill(~valid, float("-inf"))
        best_named = named.max(-1).values
        others = self.logits.clone()
        others[rows, self.answers] = float("-inf")
        best_other = others.max(-1).values
        return answer - torch.where(valid.any(-1), best_named, best_other)

    def prob(self, token_id: int) -> Tensor:  # (B,)
        return self.logits.softmax(-1)[:, token_id]

    def token_logits(self, token_ids: Tensor) -> Tensor:  # (B, K)
        return self.logits[:, token_ids]

    def select(self, rows: Tensor) -> Readout:
        return Readout(self.logits[rows], self.answers[rows], self.competitors[rows])


@torch.no_grad()
def readout(model: SparseGPT, batch: Batch, hooks: Mapping[str, Hook] | None = None) -> Readout:
    """Logits at the answer positions of ``batch``, with ``hooks`` installed."""
    device = next(model.parameters()).device
    batch = batch.to(device)
    if not hooks:
        # Nothing patched: the answer-position mode gives the same logits and
        # skips the last MLP everywhere else (about half the work).
        logits = model(batch.tokens, answer_pos=batch.answer_pos)  # (B, V)
        return Readout(logits.float().cpu(), batch.answers.cpu(), batch.competitors.cpu())
    with model.hooks(hooks):
        logits = model(batch.tokens)  # (B, T, V); see the module docstring for why not answer_pos mode
    rows = torch.arange(len(batch), device=device)
    return Readout(logits[rows, batch.answer_pos].float().cpu(), batch.answers.cpu(), batch.competitors.cpu())


@torch.no_grad()
def record(
    model: SparseGPT,
    batch: Batch,
    columns: Mapping[str, Tensor],
    hooks: Mapping[str, Hook] | None = None,
) -> dict[str, Tensor]:
    """Activations of some units at every position: ``{site: (B, T, k)}``.

    ``columns`` maps a site to the (k,) unit indices wanted there; recording
    only those keeps memory at a few units per site however wide it is.
    Padding positions hold whatever the model computed there; use
    ``batch.attention_mask`` (or ``positions``) to ignore them. ``hooks``
    run first, so an ablated or patched site is recorded as patched.
    """
    device = next(model.parameters()).device
    batch = batch.to(device)
    out: dict[str, Tensor] = {}

    def recorder(site: str, index: Tensor) -> Hook:
        index = index.to(device)

        def hook(x: Tensor) -> None:
            out[site] = x.index_select(-1, index).float().cpu()

        return hook

    with model.hooks(hooks or {}):
        with model.hooks({site: recorder(site, idx) for site, idx in columns.items()}):
            model(batch.tokens)
    return out


def positions(batch: Batch, offset: int | None) -> Tensor:
    """(B, T) bool: the positions a measurement reads.

    ``offset`` 0 is the answer position, ``-k`` the k-th position before it
    (a row too short to have one contributes nothing), ``None`` every real
    position, BOS included.
    """
    T = batch.tokens.size(1)
    if offset is None:
        return batch.attention_mask.cpu()
    if offset > 0:
        raise ValueError(f"positions are counted back from the answer: offset must be <= 0, got {offset}")
    at = batch.answer_pos.cpu() + offset  # (B,)
    return (torch.arange(T)[None, :] == at[:, None]) & (at[:, None] >= 0)
