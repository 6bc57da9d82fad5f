"""Cleanup: after discretising, remove what the circuit does not need, until nothing can go.

Each round runs three passes over the kept set:

    singles   drop kept nodes one at a time, lowest mask score first, while
              the loss stays at the target (``pruning_task.shrink``)
    pairs     two nodes each needed alone can be jointly redundant (two
              copies of one signal): the pairs among the ``pair_candidates``
              nodes whose single removal costs least are tried, all in one
              batched evaluation, and passing pairs are removed best first
    retrain   masks re-trained with every node outside the kept set held
              ablated, at the chosen lambda and 2x, 4x, 8x it (one batched
              group), each discretised within the kept set; a smaller
              circuit that reaches the target replaces the current one

Removals are decided on a part of the train split and kept only when the
held-out loss stays at the target too.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations

import torch
from torch import Tensor

from .pruning_task import Chunk, Progress, PruneTask, _Pick, discretise, evaluate_sets, fit_chunks, shrink
from .trials import Hyperparameters, train_group

#: Lambda multiples the re-training tries: the kept set already meets the
#: target, so only a stronger penalty can find a smaller one inside it.
RETRAIN_LAMBDAS = (1.0, 2.0, 4.0, 8.0)


def cleanup(task: PruneTask, pick: _Pick, scores: Tensor, hp: Hyperparameters, config, progress: Progress,
            run: str = "cleanup", workers=None) -> tuple[_Pick, list[dict]]:
    """``pick`` cleaned up; also one record per round (nodes after each pass).

    ``workers`` share out the evaluations (not the re-training, whose
    result depends on how trials are grouped); the result is the same."""
    rounds: list[dict] = []
    if not pick.reached or config.cleanup_rounds == 0:
        return pick, rounds
    fit = fit_chunks(task)
    for number in range(config.cleanup_rounds):
        size = int(pick.keep.sum())
        pick = shrink(task, pick, scores, config.target, fit, workers)
        singles = int(pick.keep.sum())
        pick = _pairs(task, pick, config, fit, workers)
        pairs = int(pick.keep.sum())
        if config.cleanup_steps > 0:
            pick, scores = _retrain(task, pick, scores, hp, config, progress, f"{run} {number + 1}")
        record = {"start": size, "singles": singles, "pairs": pairs, "retrain": int(pick.keep.sum())}
        rounds.append(record)
        progress("cleanup", number + 1, config.cleanup_rounds, record | {"loss": pick.loss, "run": run})
        if int(pick.keep.sum()) == size:
            break
    return pick, rounds


def _pairs(task: PruneTask, pick: _Pick, config, fit: list[Chunk], workers=None) -> _Pick:
    """Remove jointly removable pairs among the cheapest single removals.

    The single removals and the candidate pairs are each measured once, in
    batched passes; pairs are then taken best first, each checked on top of
    the pairs already removed (on the fit rows, then held out).
    """
    if int(pick.keep.sum()) < 2 or config.pair_candidates < 2:
        return pick
    kept = pick.keep.nonzero().flatten()
    without = pick.keep.repeat(len(kept), 1)
    without[torch.arange(len(kept)), kept] = False
    single = evaluate_sets(task, without, fit, workers)
    cheap = kept[torch.argsort(single, stable=True)[: config.pair_candidates]].tolist()
    pairs = list(combinations(sorted(cheap), 2))
    sets = pick.keep.repeat(len(pairs), 1)
    for row, (i, j) in enumerate(pairs):
        sets[row, [i, j]] = False
    losses = evaluate_sets(task, sets, fit, workers)
    evaluated = pick.evaluated + len(kept) + len(pairs)
    for row in torch.argsort(losses, stable=True).tolist():
        if losses[row] > config.target:
            break
        i, j = pairs[row]
        if not (pick.keep[i] and pick.keep[j]):
            continue
        keep = pick.keep.clone()
        keep[[i, j]] = False
        evaluated += 1
        if task.chunks_loss(keep, fit)[0] > config.target:
            continue
        loss, accuracy = task.evaluate(keep)
        evaluated += 1
        if loss <= config.target:
            pick = _Pick(keep, loss, accuracy, True, evaluated)
    return pick


def _retrain(task: PruneTask, pick: _Pick, scores: Tensor, hp: Hyperparameters, config, progress: Progress,
             run: str) -> tuple[_Pick, Tensor]:
    hps = [replace(hp, lam=hp.lam * f, steps=config.cleanup_steps) for f in RETRAIN_LAMBDAS]
    found = train_group(task, hps, config, progress, run, allowed=pick.keep)
    best, best_scores = pick, scores
    for row in found:
        within = row.masked_fill(~pick.keep, float("-inf"))
        candidate = discretise(task, within, config.target, config.scan, int(row.ge(0).sum()))
        if candidate.reached and int(candidate.keep.sum()) < int(best.keep.sum()):
            best, best_scores = candidate, row
    return best, best_scores
