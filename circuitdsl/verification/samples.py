"""Fresh samples of a task (or of a variant), drawn by the sampler and encoded once.

Every draw is named by a seed string built from the run's seed and what the
samples are for (``"7:claim3:variant:pad=2"``), so the same inputs always give
the same samples and no two measurements share them by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch

from runtime.batch import Batch, encode_batch
from runtime.tokenizer import Tokenizer

from circuitdsl.syntax import ast as n
from circuitdsl.spec.checked import TaskSpec
from circuitdsl.spec.claims import Variant
from circuitdsl.tasks.sampler import Example, sample_examples
from circuitdsl.verification.errors import NoSamples, VerifyError

#: Rounds of ``n`` draws tried when only some samples satisfy a condition.
MAX_ROUNDS = 20


@dataclass(frozen=True)
class Samples:
    examples: tuple[Example, ...]
    batch: Batch
    tokenizer: Tokenizer

    def __len__(self) -> int:
        return len(self.examples)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.tokens[token_id]

    def select(self, rows: torch.Tensor) -> Samples:
        """The samples ``rows`` (a bool mask) picks, keeping the batch's width so position masks still line up."""
        index = rows.nonzero().flatten()
        b = self.batch
        batch = replace(
            b,
            tokens=b.tokens[index],
            lengths=b.lengths[index],
            answers=b.answers[index],
            competitors=b.competitors[index],
            task_ids=b.task_ids[index],
        )
        return Samples(tuple(self.examples[i] for i in index.tolist()), batch, self.tokenizer)

    def chunks(self, size: int) -> list[Batch]:
        """Consecutive row slices of at most ``size``, all of the full width (so their activations stack)."""
        b = self.batch
        return [
            replace(
                b,
                tokens=b.tokens[i : i + size],
                lengths=b.lengths[i : i + size],
                answers=b.answers[i : i + size],
                competitors=b.competitors[i : i + size],
                task_ids=b.task_ids[i : i + size],
            )
            for i in range(0, len(self), size)
        ]


def encode(examples: Sequence[Example], tokenizer: Tokenizer, context: int) -> Samples:
    if not examples:
        raise VerifyError("no samples to measure on")
    try:
        batch = encode_batch(
            tokenizer,
            [e.prompt for e in examples],
            [e.answer for e in examples],
            competitors=[e.competitors for e in examples],
            task_names=(examples[0].task,),
            context=context,
        )
    except ValueError as err:  # a prompt too long for the model, or a character it lacks
        raise VerifyError(str(err)) from None
    return Samples(tuple(examples), batch, tokenizer)


def draw(
    task: TaskSpec,
    n_samples: int,
    seed: str,
    tokenizer: Tokenizer,
    context: int,
    *,
    variant: Variant | None = None,
    keep: Callable[[Example], bool] | None = None,
) -> Samples:
    """``n_samples`` examples of the task (or of a ``variant``), only those ``keep`` accepts.

    A rare condition is met by drawing more rounds of ``n_samples``, up to
    MAX_ROUNDS; fewer samples than asked are returned rather than none, and
    none at all is a VerifyError naming the condition's rarity.
    """
    found: list[Example] = []
    for round_ in range(MAX_ROUNDS if keep is not None else 1):
        batch = sample_examples(task, n_samples, f"{seed}:{round_}", variant)
        found.extend(e for e in batch if keep is None or keep(e))
        if len(found) >= n_samples:
            break
    if not found:
        raise NoSamples(f"no sample satisfied the condition in {MAX_ROUNDS * n_samples} draws")
    return encode(found[:n_samples], tokenizer, context)
