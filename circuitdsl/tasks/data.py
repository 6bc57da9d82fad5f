"""Tasks become data: held-out splits, evaluation sets and training mixtures.

Examples come from :mod:`circuitdsl.tasks.sampler`; this module decides which side
of the split each one is on, and encodes them in the runtime's one batch
layout (:mod:`runtime.batch`). A bracket-depth example, encoded::

    prompt "x = [1, [2"   answer "]]"   competitors ("]",)   task_ids 0
    tokens  <bos> x ␣ = ␣ [ 1 , ␣ [ 2 <pad> ...   answer_pos 10

**Splits.** Whether an example is held out depends only on its text: the
blake2b hash of prompt and answer puts one example in eight on the eval side
(:func:`split_of`). Training draws reject eval examples and evaluation draws
reject training ones, so the two never share an example, whatever the seeds.
A task with so few distinct examples that one side is empty (a probe of
``PROBE_DRAWS`` draws finds none there) cannot be split: both sides then draw
from all of its examples, and a :class:`SplitWarning` says so.

**Determinism.** Everything is seeded by strings (``random.Random("train:0:17")``
hashes them with SHA-512), so batch ``i`` of seed ``s`` is the same bytes in
every process and does not depend on the batches before it; DataLoader
workers can make them in any order.

Torch is imported only inside the functions that build tensors, so importing
this module (and the sampler) stays as cheap as ``circ check``.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import random
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from runtime.tokenizer import TokenizeError, Tokenizer

from circuitdsl.diagnostics import CircError, Diagnostic
from circuitdsl.spec.claims import Variant
from circuitdsl.spec.checked import CheckedSpec, TaskSpec, TrainSpec, VocabSpec
from circuitdsl.tasks.sampler import Example, TaskSampler

if TYPE_CHECKING:
    from runtime.batch import Batch
    from runtime.dataset import BatchStream

#: One example in this many is held out for evaluation.
EVAL_ONE_IN = 8
#: Draws that decide whether a task's examples fall on both sides of the split.
PROBE_DRAWS = 1024
#: Draws in a row rejected before a side is given up as (nearly) empty.
MAX_REJECTIONS = 10_000

SIDES = ("train", "eval")


class SplitWarning(UserWarning):
    """A task whose examples cannot be split into disjoint training and evaluation sets."""


def make_tokenizer(vocab: VocabSpec) -> Tokenizer:
    """The tokenizer of a spec's vocabulary (PAD and BOS first, then every token)."""
    return Tokenizer(vocab.all_tokens)


def split_of(prompt: str, answer: str) -> str:
    """``"eval"`` for one example in EVAL_ONE_IN, ``"train"`` for the rest, by a hash of its text.

    blake2b, not ``hash()``: Python salts string hashes per process, and the
    split must be the same in every run and on every machine.
    """
    digest = hashlib.blake2b(f"{prompt}\0{answer}".encode(), digest_size=8, person=b"circ-split").digest()
    return "eval" if digest[0] % EVAL_ONE_IN == 0 else "train"


@attrs.frozen
class SplitProbe:
    """What ``PROBE_DRAWS`` draws of a task say about its split."""

    draws: int
    distinct: int
    on_eval: int  # distinct examples on the eval side

    @property
    def splittable(self) -> bool:
        return 0 < self.on_eval < self.distinct


@functools.lru_cache(maxsize=256)
def probe(task: TaskSpec, variant: Variant | None = None) -> SplitProbe:
    """Draw a task with a fixed seed and count its distinct examples on each side."""
    sampler = TaskSampler(task, variant)
    rng = random.Random(f"probe:{task.name}")
    seen = {}
    for _ in range(PROBE_DRAWS):
        ex = sampler.draw(rng)
        key = (ex.prompt, ex.answer)
        if key not in seen:
            seen[key] = split_of(ex.prompt, ex.answer)
    return SplitProbe(PROBE_DRAWS, len(seen), sum(side == "eval" for side in seen.values()))


class SplitSampler:
    """Examples of one side of a task's split: every draw is on ``side``.

    ``warning`` is set (and a :class:`SplitWarning` issued) when the task
    cannot be split, in which case draws come from all of its examples.
    """

    def __init__(self, task: TaskSpec, side: str, variant: Variant | None = None):
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, not {side!r}")
        self.task = task
        self.side = side
        self.sampler = TaskSampler(task, variant)
        self.warning: str | None = None
        found = probe(task, variant)
        self._split = found.splittable
        if not self._split:
            empty = "eval" if found.on_eval == 0 else "train"
            self._give_up(
                f"task `{task.name}` has too few distinct examples for a held-out split "
                f"({found.distinct} in {found.draws} draws, none on the {empty} side): "
                "training and evaluation draw from the same examples"
            )

    def _give_up(self, message: str) -> None:
        self._split = False
        self.warning = message
        warnings.warn(message, SplitWarning, stacklevel=3)

    def draw(self, rng: random.Random) -> Example:
        sampler, side = self.sampler, self.side
        if not self._split:
            return sampler.draw(rng)
        values = sampler.values
        for _ in range(MAX_REJECTIONS):
            env = values(rng)
            if split_of(env["prompt"], env["answer"]) == side:
                return sampler.example(env)
        # The probe saw this side, but it is so rare that drawing it costs more than it is worth.
        self._give_up(
            f"task `{self.task.name}` drew {MAX_REJECTIONS} examples in a row that were not on the {side} "
            "side of the split: training and evaluation now draw from the same examples"
        )
        return sampler.draw(rng)


# ---------------------------------------------------------------- evaluation sets


@attrs.frozen
class EvalSet:
    """Held-out examples with their latent variables, and the same examples encoded."""

    examples: tuple[Example, ...]
    #: The examples as one batch (None when no tokenizer was given); row i is examples[i].
    batch: Batch | None = attrs.field(eq=False, repr=False)
    task_names: tuple[str, ...]
    #: Why a task's evaluation examples may also be training examples (see SplitWarning).
    warnings: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.examples)


def make_eval_set(
    task: TaskSpec,
    n: int,
    seed: int | str,
    tokenizer: Tokenizer | None = None,
    *,
    context: int | None = None,
    variant: Variant | None = None,
) -> EvalSet:
    """``n`` examples from the eval side of ``task`` (or of a ``variant`` of it).

    The same arguments give the same examples. With a tokenizer the examples
    are also encoded into ``batch`` (``context`` bounds the rows).
    """
    return make_eval_sets([task], n, seed, tokenizer, context=context, variant=variant)


def make_eval_sets(
    tasks: Sequence[TaskSpec],
    n: int,
    seed: int | str,
    tokenizer: Tokenizer | None = None,
    *,
    context: int | None = None,
    variant: Variant | None = None,
) -> EvalSet:
    """``n`` held-out examples of each task, in task order, as one set (``task_ids`` tell them apart)."""
    examples: list[Example] = []
    notes: list[str] = []
    for task in tasks:
        sampler = SplitSampler(task, "eval", variant)
        rng = random.Random(f"eval:{task.name}:{seed}")
        examples.extend(sampler.draw(rng) for _ in range(n))
        if sampler.warning:
            notes.append(sampler.warning)
    names = tuple(task.name for task in tasks)
    batch = None if tokenizer is None else encode_examples(examples, tokenizer, names, context=context, tasks=tasks)
    return EvalSet(tuple(examples), batch, names, tuple(notes))


def task_batch(
    task: TaskSpec,
    n: int,
    *,
    seed: int | str,
    tokenizer: Tokenizer,
    context: int | None = None,
    variant: Variant | None = None,
    side: str = "train",
) -> tuple[Batch, list[Example]]:
    """``n`` examples of one task from one side of its split, encoded, with the examples themselves.

    For work on one task apart from training (pruning draws from the training
    side; measurements of a finished circuit from the eval side).
    """
    sampler = SplitSampler(task, side, variant)
    rng = random.Random(f"task:{side}:{task.name}:{seed}")
    examples = [sampler.draw(rng) for _ in range(n)]
    return encode_examples(examples, tokenizer, (task.name,), context=context, tasks=(task,)), examples


def eval_batch(
    tasks: Sequence[TaskSpec], n: int, *, seed: int | str, tokenizer: Tokenizer, context: int | None = None
) -> Batch:
    """The encoded batch of :func:`make_eval_sets`, for code that needs only tensors."""
    return make_eval_sets(tasks, n, seed, tokenizer, context=context).batch


# ---------------------------------------------------------------- encoding


def encode_examples(
    examples: Sequence[Example],
    tokenizer: Tokenizer,
    task_names: Sequence[str],
    *,
    context: int | None = None,
    tasks: Sequence[TaskSpec] = (),
) -> Batch:
    """Examples in the runtime's batch layout; ``task_ids`` index ``task_names``.

    A prompt or answer the vocabulary cannot encode, or a prompt longer than
    the context, raises :class:`CircError` naming the task and the example
    (``circ check`` rules these out where it can enumerate the values).
    """
    from runtime.batch import encode_batch

    index = {name: i for i, name in enumerate(task_names)}
    try:
        return encode_batch(
            tokenizer,
            [ex.prompt for ex in examples],
            [ex.answer for ex in examples],
            competitors=[ex.competitors for ex in examples],
            task_ids=[index[ex.task] for ex in examples],
            task_names=tuple(task_names),
            context=context,
        )
    except (TokenizeError, ValueError):
        check_encodable(examples, tokenizer, context=context, tasks=tasks)
        raise


def check_encodable(
    examples: Sequence[Example], tokenizer: Tokenizer, *, context: int | None = None, tasks: Sequence[TaskSpec] = ()
) -> None:
    """Raise :class:`CircError` for the first example the vocabulary cannot encode (or the context hold)."""
    error = _encoding_error(examples, tokenizer, context, {t.name: t for t in tasks})
    if error is not None:
        raise error


def _encoding_error(examples, tokenizer: Tokenizer, context, tasks: dict[str, TaskSpec]) -> CircError | None:
    for ex in examples:
        span = tasks[ex.task].span if ex.task in tasks else None
        where = f"task `{ex.task}` drew prompt {ex.prompt!r}"
        for token, what in [(ex.answer, "the answer")] + [(c, "a competitor") for c in ex.competitors]:
            if token not in tokenizer.ids:
                return CircError([Diagnostic("C0404", f"{where} with {what} {token!r}, which is not one token of the vocab", span)])
        try:
            length = len(tokenizer.encode(ex.prompt))
        except TokenizeError as err:
            return CircError([Diagnostic("C0408", f"{where}: {err}", span)])
        if context is not None and length + 1 > context:
            return CircError(
                [Diagnostic("C0405", f"{where}, {length} tokens: more than the context of {context} holds with the start token", span)]
            )
    return None


# ---------------------------------------------------------------- training mixtures


def _mixture(tasks, weights) -> tuple[tuple[TaskSpec, ...], tuple[float, ...]]:
    if isinstance(tasks, Mapping):
        if weights is not None:
            raise TypeError("give weights either in the mapping or as `weights`, not both")
        tasks, weights = tuple(tasks), tuple(tasks.values())
    tasks = tuple(tasks)
    weights = tuple(float(w) for w in weights) if weights is not None else (1.0,) * len(tasks)
    if not tasks or len(weights) != len(tasks):
        raise ValueError(f"a mixture needs one weight per task, found {len(tasks)} tasks and {len(weights)} weights")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"mixture weights must be non-negative and not all zero, found {weights}")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"a task appears twice in the mixture: {names}")
    total = sum(weights)
    return tasks, tuple(w / total for w in weights)


class MixtureBatches:
    """Batch ``i`` of a weighted task mixture, from the training side of each split.

    Each row picks its task by weight, then draws from that task; the batch is
    a function of ``(seed, i)`` alone. Picklable (samplers are rebuilt from
    their specs), so DataLoader workers can make batches.
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec] | Mapping[TaskSpec, float],
        weights: Sequence[float] | None = None,
        *,
        batch_size: int,
        seed: int | str,
        tokenizer: Tokenizer,
        context: int | None = None,
        side: str = "train",
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, found {batch_size}")
        self.tasks, self.weights = _mixture(tasks, weights)
        self.task_names = tuple(t.name for t in self.tasks)
        self.batch_size = batch_size
        self.seed = seed
        self.tokenizer = tokenizer
        self.context = context
        self.side = side
        self.samplers = [SplitSampler(task, side) for task in self.tasks]
        self._cumulative = list(itertools.accumulate(self.weights))
        self._cumulative[-1] = 1.0  # so rounding never lets a draw fall past the last task

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(s.warning for s in self.samplers if s.warning)

    def examples(self, index: int) -> list[Example]:
        """The examples of batch ``index``, before encoding."""
        rng = random.Random(f"{self.side}:{self.seed}:{index}")
        random_ = rng.random
        cumulative, samplers = self._cumulative, self.samplers
        if len(samplers) == 1:
            draw = samplers[0].draw
            return [draw(rng) for _ in range(self.batch_size)]
        return [samplers[bisect.bisect_right(cumulative, random_())].draw(rng) for _ in range(self.batch_size)]

    def __call__(self, index: int) -> Batch:
        return encode_examples(self.examples(index), self.tokenizer, self.task_names, context=self.context, tasks=self.tasks)


def training_batches(
    tasks: Sequence[TaskSpec] | Mapping[TaskSpec, float],
    weights: Sequence[float] | None = None,
    *,
    batch_size: int,
    seed: int | str,
    tokenizer: Tokenizer,
    context: int | None = None,
    start: int = 0,
) -> Iterator[Batch]:
    """Endless training batches of a mixture (``{task: weight}``, or tasks and weights), from batch ``start`` on."""
    make = MixtureBatches(tasks, weights, batch_size=batch_size, seed=seed, tokenizer=tokenizer, context=context)
    for index in itertools.count(start):
        yield make(index)


def mixture_dataset(
    tasks: Sequence[TaskSpec] | Mapping[TaskSpec, float],
    weights: Sequence[float] | None = None,
    *,
    batch_size: int,
    seed: int | str,
    tokenizer: Tokenizer,
    context: int | None = None,
    steps: int | None = None,
) -> BatchStream:
    """The training mixture as a ``torch.utils.data.IterableDataset`` of whole batches.

    Use it with ``DataLoader(dataset, batch_size=None, num_workers=k)``: worker
    ``w`` makes batches ``w, w + k, ...`` and the loader returns them in order,
    the same batches as :func:`training_batches` (``steps`` of them, or endless).
    """
    from runtime.dataset import BatchStream

    make = MixtureBatches(tasks, weights, batch_size=batch_size, seed=seed, tokenizer=tokenizer, context=context)
    return BatchStream(make, stop=steps)


def mixture_of(program: CheckedSpec, train: str | TrainSpec) -> dict[TaskSpec, float]:
    """The ``{task: weight}`` mixture a train block declares."""
    spec = program.trains[train] if isinstance(train, str) else train
    return {program.tasks[name]: weight for name, weight in spec.mixture}
