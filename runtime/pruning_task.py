"""What every pruning stage shares: a task split in two, how nodes are ablated on it, and its loss.

A ``PruneTask`` holds the model, the train and held-out rows, the ablation
(``mean``, ``zero``, ``resample``), the loss (``ce``, ``contrast``) and the
norms (``live``, ``frozen``). It measures the loss of a keep set, one set at
a time (``evaluate``) or many in one forward pass (``evaluate_many``: the
sets laid out as a leading batch dimension, as the batched mask trainer
lays out trials). ``discretise`` and ``shrink`` turn node scores into a
keep set at the target loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import torch
from torch import Tensor

from .ablation import ablation_hooks, ablation_values, resample_activations, resample_donors
from .batch import Batch
from .losses import row_losses, rivals
from .model import Hook, SparseGPT
from .nodes import sites
from .norms import frozen_norms, norm_scales

#: progress(stage, done, total, info). Stages, in order: "identity"; "masks"
#: (steps of one group of trials, info["run"] = its first trial number or a
#: control's name) interleaved with "search" (trials done, info["trial"]);
#: "cleanup"; "attribution"; "calibrate"; then the controls "nonsense",
#: "random_model", "minimality" and "ablation".
Progress = Callable[[str, int, int, dict], None]


class IdentityCheckError(RuntimeError):
    """With no node ablated the masked model's logits differ from the plain model's: a bug, not a finding."""


def length_chunks(batch: Batch, size: int) -> list[Batch]:
    """``batch``'s rows sorted by length (stably) in chunks of ``size``, each padded only to its own longest.

    Losses are per example, so running a batch this way gives the same
    losses and gradients while computing far fewer padding positions: on
    the small model, 4 chunks of 64 made a 256-row mask step about a third
    faster than one batch.
    """
    order = torch.argsort(batch.lengths, stable=True)
    return [batch.select(part) for part in order.split(size)]


@dataclass(frozen=True)
class Chunk:
    """Rows run together, with what ablating them needs beyond the keep set."""

    batch: Batch
    donors: dict[str, Tensor] | None  # resample ablation's donor activations
    norms: list[Tensor] | None  # frozen norms' factors from the unpruned pass


@dataclass
class PruneTask:
    model: SparseGPT
    train: Batch
    eval: Batch
    kind: str  # ablation
    means: Mapping[str, Tensor] | None
    seed: int
    chunk: int = 64
    loss: str = "ce"
    norm: str = "live"
    generator: torch.Generator = field(init=False)
    eval_chunks: list[Chunk] = field(init=False)

    def __post_init__(self):
        if self.kind == "mean" and self.means is None:
            raise ValueError("mean ablation needs mean activations (ablation.mean_activations)")
        self.generator = torch.Generator().manual_seed(self.seed)
        if not getattr(self, "_rivals_set", False):
            self.train, self.eval = (self._with_rivals(b) for b in (self.train, self.eval))
        self.eval_chunks = [self.prepare(part) for part in length_chunks(self.eval, self.chunk)]

    def _with_rivals(self, batch: Batch) -> Batch:
        # The contrast loss's rival is fixed per example on the unpruned model
        # and carried as the batch's one competitor column (losses.rivals).
        if self.loss != "contrast":
            return batch
        parts = []
        for start in range(0, len(batch), 512):
            part = batch.select(slice(start, start + 512))
            with torch.no_grad():
                parts.append(rivals(self.model(part.tokens, part.answer_pos), part))
        return replace(batch, competitors=torch.cat(parts)[:, None] if parts else batch.competitors[:, :1])

    def settings(self, **changes) -> dict:
        base = dict(kind=self.kind, means=self.means, seed=self.seed, chunk=self.chunk, loss=self.loss, norm=self.norm)
        return base | changes

    def with_kind(self, kind: str) -> PruneTask:
        return _rebuilt(self, self.model, kind=kind)

    def on(self, model: SparseGPT) -> PruneTask:
        """The same task on another model (a worker's copy, or the random control)."""
        return _rebuilt(self, model)

    def prepare(self, batch: Batch, generator: torch.Generator | None = None) -> Chunk:
        """``batch`` with its donors (drawn from ``generator``, default the task's) and frozen norm factors."""
        donors = None
        if self.kind == "resample":
            donors = resample_activations(self.model, batch, resample_donors(batch, generator or self.generator))
        norms = norm_scales(self.model, batch) if self.norm == "frozen" else None
        return Chunk(batch, donors, norms)

    def values(self, chunk: Chunk) -> dict[str, Tensor]:
        """Ablated values per site for running ``chunk`` through mask gates."""
        return {name: ablation_values(self.kind, name, self.means, chunk.donors) for name in self.model.site_names}

    def keep(self, flat: Tensor) -> dict[str, Tensor]:
        """Canonical-order bool vector -> per-site keep masks."""
        return dict(zip(self.model.site_names, flat.split([s.width for s in sites(self.model.config)])))

    def hooks(self, flat_keep: Tensor, chunk: Chunk) -> dict[str, Hook]:
        return ablation_hooks(self.model, self.keep(flat_keep), self.kind, self.means, chunk.donors)

    def row_losses(self, logits: Tensor, batch: Batch, repeat: int = 1) -> Tensor:
        answers = batch.answers.repeat(repeat)
        rival = batch.competitors[:, 0].repeat(repeat) if self.loss == "contrast" else None
        return row_losses(self.loss, logits, answers, rival)

    def forward(self, chunk: Chunk, hooks: Mapping[str, Hook], repeat: int = 1) -> Tensor:
        """Answer logits (repeat * B, V) of ``chunk``'s rows tiled ``repeat`` times, under ``hooks``."""
        b = chunk.batch
        tokens, pos = (b.tokens, b.answer_pos) if repeat == 1 else (b.tokens.repeat(repeat, 1), b.answer_pos.repeat(repeat))
        with self.model.hooks(hooks), frozen_norms(self.model, chunk.norms, repeat):
            return self.model(tokens, pos)

    @torch.no_grad()
    def circuit_logits(self, flat_keep: Tensor, chunks: list[Chunk]) -> tuple[Tensor, list[Batch]]:
        """(logits, batches) of ``chunks`` with the nodes not in ``flat_keep`` ablated."""
        logits = [self.forward(c, self.hooks(flat_keep, c)) for c in chunks]
        return torch.cat(logits), [c.batch for c in chunks]

    def chunks_loss(self, flat_keep: Tensor, chunks: list[Chunk]) -> tuple[float, float]:
        logits, batches = self.circuit_logits(flat_keep, chunks)
        return self.loss_acc(logits, batches)

    def loss_acc(self, logits: Tensor, batches: list[Batch]) -> tuple[float, float]:
        losses = torch.cat([self.row_losses(lg, b) for lg, b in zip(logits.split([len(b) for b in batches]), batches)])
        answers = torch.cat([b.answers for b in batches])
        return losses.mean().item(), (logits.argmax(-1) == answers).float().mean().item()

    def evaluate(self, flat_keep: Tensor) -> tuple[float, float]:
        """(loss, accuracy) on the eval split with the nodes not in ``flat_keep`` ablated."""
        return self.chunks_loss(flat_keep, self.eval_chunks)

    @torch.no_grad()
    def evaluate_many(self, keeps: Tensor, chunks: list[Chunk] | None = None, width: int = 16) -> Tensor:
        """(K,) losses of K keep sets (K, N) on ``chunks`` (default: eval), ``width`` sets per forward pass."""
        chunks = self.eval_chunks if chunks is None else chunks
        out = []
        for group in keeps.split(width):
            total, rows = torch.zeros(len(group), dtype=torch.float64), 0
            for c in chunks:
                logits = self.forward(c, self.many_hooks(group, c), repeat=len(group))
                total += self.row_losses(logits, c.batch, len(group)).view(len(group), -1).double().sum(1)
                rows += len(c.batch)
            out.append(total / rows)
        return torch.cat(out).float()

    def many_hooks(self, keeps: Tensor, chunk: Chunk) -> dict[str, Hook]:
        """Hooks ablating keep set k on the k-th tiling of the rows (K, N) bool."""
        K = len(keeps)
        values = self.values(chunk)
        split = keeps.split([s.width for s in sites(self.model.config)], dim=1)

        def make(keep: Tensor, value: Tensor) -> Hook:
            mask = keep[:, None, None, :]  # (K, 1, 1, w)

            def hook(x: Tensor) -> Tensor:
                tiled = x.view(K, -1, *x.shape[1:])  # (K, B, T, w)
                return torch.where(mask, tiled, value.to(x.dtype)).view(x.shape)

            return hook

        return {name: make(k, values[name]) for name, k in zip(self.model.site_names, split)}


def _rebuilt(task: PruneTask, model: SparseGPT, **changes) -> PruneTask:
    # The rows already carry their rivals (chosen on the task's own model), so they are not chosen again.
    new = PruneTask.__new__(PruneTask)
    new._rivals_set = True
    PruneTask.__init__(new, model, task.train, task.eval, **task.settings(**changes))
    return new


#: The name the rest of the pipeline used before the task had its own module.
_Task = PruneTask


def check_identity(model: SparseGPT, batch: Batch, hooks: Mapping[str, Hook], what: str = "ablation hooks",
                   norms: list[Tensor] | None = None, repeat: int = 1) -> None:
    """Raise IdentityCheckError unless ``hooks`` (and frozen ``norms``) leave the logits bit-identical.

    Run with every node kept: any difference means the ablation machinery
    itself changes the model (a wrong broadcast, a NaN in the means, a stray
    hook), and every loss measured through it would be wrong. With
    ``repeat`` the rows are tiled as the batched trainer tiles them, and
    compared with the plain model on the same tiling.
    """
    tokens, pos = batch.tokens.repeat(repeat, 1), batch.answer_pos.repeat(repeat)
    with torch.no_grad():
        plain = model(tokens, pos)
        with model.hooks(hooks), frozen_norms(model, norms, repeat):
            hooked = model(tokens, pos)
    if not torch.equal(plain, hooked):
        diff = (plain - hooked).abs().nan_to_num(nan=math.inf).max().item()
        raise IdentityCheckError(
            f"identity check failed for {what}: with no node ablated the logits differ from the "
            f"plain model's by up to {diff:.3g}"
        )


@dataclass(frozen=True)
class _Pick:
    keep: Tensor  # canonical-order bool
    loss: float
    accuracy: float
    reached: bool
    evaluated: int  # losses measured to find it


def discretise(task: PruneTask, scores: Tensor, target: float, scan: int, raw_k: int | None = None) -> _Pick:
    """Smallest top-k of ``scores`` (canonical order) whose eval loss is <= target.

    Bisects on k. The loss is not monotone in k, so also tried: ``raw_k``
    (the masks' own kept set, when given) and the ``scan`` sizes just below
    the bisection's answer; the smallest passing k among everything measured
    wins. When even k = all nodes misses the target the pick is the raw set
    (or everything) and ``reached`` is False. Nodes scored -inf are never
    kept (cleanup's re-training restricts the search so).
    """
    n = int(torch.isfinite(scores).sum()) if scores.is_floating_point() else scores.numel()
    order = torch.argsort(scores, descending=True, stable=True)
    measured: dict[int, tuple[float, float]] = {}

    def keep_top(k: int) -> Tensor:
        keep = torch.zeros(scores.numel(), dtype=torch.bool)
        keep[order[:k]] = True
        return keep

    def passes(k: int) -> bool:
        if k not in measured:
            measured[k] = task.evaluate(keep_top(k))
        return measured[k][0] <= target

    if not passes(n):
        k = n if raw_k is None else min(raw_k, n)
        passes(k)
        return _Pick(keep_top(k), *measured[k], False, len(measured))
    lo, hi = 0, n  # passes(hi); lo fails (or is 0, not yet measured)
    if raw_k is not None and raw_k < n:
        if passes(raw_k):
            hi = raw_k
        else:
            lo = raw_k
    if lo == 0 and passes(0):
        hi = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    for k in range(hi - 1, max(hi - 1 - scan, -1), -1):
        passes(k)
    best = min(k for k, (loss, _) in measured.items() if loss <= target)
    return _Pick(keep_top(best), *measured[best], True, len(measured))


def fit_chunks(task: PruneTask) -> list[Chunk]:
    """A part of the *train* split as large as the eval split: where cleanup decides removals."""
    return [task.prepare(part) for part in length_chunks(task.train.select(slice(0, len(task.eval))), task.chunk)]


def shrink(task: PruneTask, pick: _Pick, scores: Tensor, target: float, fit: list[Chunk] | None = None,
           workers=None) -> _Pick:
    """``pick`` with kept nodes dropped greedily, lowest score first, while the loss stays <= target.

    Each removal is decided on a part of the *train* split, so the eval
    loss reported for the result is not the loss the choices were fitted
    to. When the shrunk circuit misses the target on the eval split (a
    choice that overfitted), the unshrunk pick is returned. A pick that
    never reached the target is returned as it is.

    With ``workers``, the next few candidates are tried side by side, each
    against the same kept set: most removals fail, and until one passes those
    are exactly the trials the one-at-a-time loop makes. Past the first that
    passes, the window's other results are dropped and tried again on the
    smaller set, so the outcome is the sequential one.
    """
    if not pick.reached:
        return pick
    fit = fit_chunks(task) if fit is None else fit
    keep = pick.keep.clone()
    kept = keep.nonzero().flatten()
    order = kept[torch.argsort(scores[kept], stable=True)].tolist()
    ahead = workers.n if workers is not None else 1
    evaluated, at = pick.evaluated, 0
    while at < len(order):
        window = order[at : at + ahead]
        trial_sets = []
        for index in window:
            trial = keep.clone()
            trial[index] = False
            trial_sets.append(trial)
        if workers is None:
            losses = [task.chunks_loss(trial_sets[0], fit)[0]]
        else:
            losses = workers.map(lambda worker, trial: worker.chunks_loss(trial, fit)[0], trial_sets)
        passed = next((i for i, loss in enumerate(losses) if loss <= target), None)
        tried = len(window) if passed is None else passed + 1
        evaluated += tried
        at += tried
        if passed is not None:
            keep[window[passed]] = False
    loss, accuracy = task.evaluate(keep)
    if loss > target:
        return pick
    return _Pick(keep, loss, accuracy, True, evaluated + 1)


def evaluate_sets(task: PruneTask, keeps: Tensor, chunks: list[Chunk] | None = None, workers=None,
                  width: int = 16) -> Tensor:
    """``task.evaluate_many``, its groups of ``width`` sets shared out among ``workers``: the same numbers,
    since each set's loss depends only on its own group."""
    if workers is None or len(keeps) <= width:
        return task.evaluate_many(keeps, chunks, width)
    groups = list(keeps.split(width))
    return torch.cat(workers.map(lambda worker, group: worker.evaluate_many(group, chunks, width), groups))


def split_task(batch: Batch, eval_examples: int) -> tuple[Batch, Batch]:
    """(train, eval): the last min(eval_examples, len // 4) rows are held out.

    A batch of fewer than 4 rows is used whole for both.
    """
    held = min(eval_examples, len(batch) // 4)
    if held == 0:
        return batch, batch
    return batch.select(slice(0, len(batch) - held)), batch.select(slice(len(batch) - held, len(batch)))
