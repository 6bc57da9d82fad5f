"""The mask search: many trials trained at once, trials as a batch dimension.

A *group* of trials is one mask training: scores (trials, nodes), each
trial with its own lambda, learning rate and temperature as tensors, and
every step runs the step's rows tiled once per trial through one forward
pass, trial t's gates applied to the t-th tiling (``_group_hooks``). Adam
is written out so each trial keeps its own learning rate. On the small
model on CPU this saves little: the forward pass is compute-bound, and a
mask step cost 154 ms for one trial, 136 ms per trial in a group of 4 and
126 ms per trial in a group of 8 (one thread). Where per-call overhead
dominates (an accelerator) the saving should be larger; not measured.

The search asks optuna's TPE sampler (seeded, constant liar) for a round
of groups at a time, trains them, scores each trial by its masks' own
kept set on the held-out rows (one batched evaluation), and tells the
sampler. The few best trials are then discretised (bisection on their
scores) and the smallest circuit wins.

Results depend on the seed and on the group size, never on how many
workers run the groups: groups are fixed before they are handed out, and
each runs single-threaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
import torch
from torch import Tensor

from .masks import _Gate, straight_through
from .model import Hook
from .nodes import all_nodes, sites
from .pruning_task import Chunk, Progress, PruneTask, _Pick, discretise, length_chunks


@dataclass(frozen=True)
class Hyperparameters:
    lam: float  # penalty per kept node, in nats
    lr: float
    temperature: float
    steps: int


@dataclass(frozen=True)
class Trial:
    number: int
    params: Hyperparameters
    nodes: int  # size of the masks' own kept set, or of the discretised circuit for a finalist
    loss: float  # its eval loss
    reached: bool
    seconds: float  # its share of its group's training time
    discretised: bool = False  # a finalist: nodes and loss are of its discretised circuit


_BETAS, _EPS = (0.9, 0.999), 1e-8


def _group_hooks(task: PruneTask, hard: Tensor, soft: Tensor, values: dict[str, Tensor]) -> dict[str, Hook]:
    T = hard.size(0)
    widths = [s.width for s in sites(task.model.config)]

    def make(h: Tensor, s: Tensor, value: Tensor) -> Hook:
        h, s = h[:, None, None, :], s[:, None, None, :]  # (T, 1, 1, w)

        def hook(x: Tensor) -> Tensor:
            return _Gate.apply(x.view(T, -1, *x.shape[1:]), h, s, value).view(x.shape)

        return hook

    return {
        name: make(h, s, values[name])
        for name, h, s in zip(task.model.site_names, hard.split(widths, 1), soft.split(widths, 1))
    }


def train_group(
    task: PruneTask,
    hps: list[Hyperparameters],
    config,
    progress: Progress,
    run: int | str = 0,
    allowed: Tensor | None = None,
) -> Tensor:
    """Train one mask set per hyperparameter setting on task loss + lambda * kept; (trials, nodes) scores.

    Every trial starts from the same scores (just above zero, see
    masks.NodeMasks) and sees the same rows: only the hyperparameters
    differ. Nodes outside ``allowed`` stay ablated (score -1, not trained):
    cleanup re-trains within a kept set so.
    """
    model, T = task.model, len(hps)
    steps = max(hp.steps for hp in hps)
    n = len(all_nodes(model.config))
    gen = torch.Generator().manual_seed(config.seed)
    # Donors from a generator of the group's own: a worker's task copy must draw what the original would.
    donor_gen = torch.Generator().manual_seed(config.seed + 7)
    start = config.init + config.init_noise * torch.randn(n, generator=gen)
    frozen_off = None if allowed is None else ~allowed
    score = start.repeat(T, 1)
    if frozen_off is not None:
        score[:, frozen_off] = -1.0
    score.requires_grad_(True)
    lam = torch.tensor([hp.lam for hp in hps])
    lr = torch.tensor([hp.lr for hp in hps])[:, None]
    temp = torch.tensor([hp.temperature for hp in hps])[:, None]
    m, v = torch.zeros(T, n), torch.zeros(T, n)
    static = None if task.kind == "resample" else task.values(Chunk(task.train, None, None))
    warm = max(1.0, config.warmup * steps)
    for step in range(steps):
        rows = torch.randint(len(task.train), (config.batch,), generator=gen)
        ce = torch.zeros(T)
        for batch in length_chunks(task.train.select(rows), config.chunk):
            chunk = task.prepare(batch, donor_gen) if task.kind == "resample" or task.norm == "frozen" else Chunk(batch, None, None)
            values = static if static is not None else task.values(chunk)
            hard, soft = (score >= 0).to(score.dtype), torch.sigmoid(score / temp)
            logits = task.forward(chunk, _group_hooks(task, hard, soft, values), repeat=T)
            part = task.row_losses(logits, batch, T).view(T, -1).sum(1) / config.batch  # (T,)
            part.sum().backward()  # trials share no parameter: each gets its own gradient
            ce += part.detach()
        kept = straight_through(score, temp).sum(1)  # (T,)
        (lam * min(1.0, step / warm) * kept).sum().backward()
        with torch.no_grad():
            g = score.grad
            m.mul_(_BETAS[0]).add_(g, alpha=1 - _BETAS[0])
            v.mul_(_BETAS[1]).addcmul_(g, g, value=1 - _BETAS[1])
            mhat = m / (1 - _BETAS[0] ** (step + 1))
            vhat = v / (1 - _BETAS[1] ** (step + 1))
            score -= lr * mhat / (vhat.sqrt() + _EPS)
            # Bounded scores can always come back (see masks.NodeMasks.clamp_).
            score.clamp_(-1.0, 1.0)
            if frozen_off is not None:
                score[:, frozen_off] = -1.0
            score.grad = None
        if step % 10 == 9 or step == steps - 1:
            progress("masks", step + 1, steps, {"run": run, "ce": ce.tolist(), "kept": kept.detach().tolist()})
    return score.detach().clone()


def _objective(nodes: int, loss: float, reached: bool, total: int, target: float) -> float:
    # Fewer nodes first; among equal sizes, lower loss. A circuit that misses
    # the target ranks behind every circuit that reaches it.
    if reached:
        return nodes + 0.5 * min(loss / target, 1.0)
    return total + 1 + loss / target


#: Groups per round of the search: asked of the sampler together, so that
#: two workers can train them side by side; results do not depend on how
#: many workers there are.
ROUND = 2

#: The seeded first trial: a setting that worked on the small model, so even a tiny budget is sensible.
SEED_TRIAL = {"lam": 2e-3, "lr": 0.01, "temperature": 0.05}


def search(task: PruneTask, config, progress: Progress, workers) -> tuple[list[Trial], Hyperparameters, Tensor, _Pick]:
    """TPE search over (lambda, lr, temperature) in batched groups; (trials, best hp, its scores, its pick)."""
    import optuna  # imported here: ~0.5 s that only pruning should pay

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    group = min(config.group, config.trials)
    sampler = optuna.samplers.TPESampler(
        seed=config.seed, n_startup_trials=max(1, min(ROUND * group, config.trials // 2)), constant_liar=True
    )
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.enqueue_trial(SEED_TRIAL)
    total = len(all_nodes(task.model.config))
    trials: list[Trial] = []
    scores: dict[int, Tensor] = {}

    def run(worker: PruneTask, job: list[tuple[int, Hyperparameters]]) -> tuple[Tensor, Tensor, float]:
        clock = time.perf_counter()
        found = train_group(worker, [hp for _, hp in job], config, progress, job[0][0])
        losses = worker.evaluate_many(found >= 0, width=len(job))  # each trial's own kept set
        return found, losses, time.perf_counter() - clock

    while len(trials) < config.trials:
        jobs: list[list] = []  # per group: (optuna trial, hyperparameters)
        for _ in range(ROUND):
            size = min(group, config.trials - len(trials) - sum(len(j) for j in jobs))
            if size <= 0:
                break
            asked = [study.ask() for _ in range(size)]
            jobs.append([(t, _suggest(t, config)) for t in asked])
        numbered = [[(t.number, hp) for t, hp in job] for job in jobs]
        for job, (found, losses, seconds) in zip(jobs, workers.map(run, numbered)):
            for (asked, hp), row, loss in zip(job, found, losses.tolist()):
                kept = int(row.ge(0).sum())
                reached = loss <= config.target
                record = Trial(asked.number, hp, kept, loss, reached, seconds / len(job))
                trials.append(record)
                scores[asked.number] = row
                study.tell(asked, _objective(kept, loss, reached, total, config.target))
                progress("search", len(trials), config.trials, {"trial": record})

    # The masks' own kept set is only one point of each trial's score ranking:
    # the finalists are discretised, and the smallest circuit among them wins.
    ranked = sorted(trials, key=lambda t: (_objective(t.nodes, t.loss, t.reached, total, config.target), t.number))
    best: tuple[tuple, Trial, _Pick] | None = None
    for t in ranked[: max(1, config.finalists)]:
        row = scores[t.number]
        pick = discretise(task, row, config.target, config.scan, int(row.ge(0).sum()))
        rank = (not pick.reached, int(pick.keep.sum()), pick.loss, t.number)
        trials[trials.index(t)] = Trial(t.number, t.params, int(pick.keep.sum()), pick.loss, pick.reached, t.seconds, True)
        if best is None or rank < best[0]:
            best = (rank, t, pick)
    _, chosen, pick = best
    return trials, chosen.params, scores[chosen.number], pick


def _suggest(trial, config) -> Hyperparameters:
    return Hyperparameters(
        lam=trial.suggest_float("lam", *config.lam, log=True),
        lr=trial.suggest_float("lr", *config.lr, log=True),
        temperature=trial.suggest_float("temperature", *config.temperature, log=True),
        steps=config.steps,
    )


def train_one(task: PruneTask, hp: Hyperparameters, config, progress: Progress, run: str,
              allowed: Tensor | None = None) -> Tensor:
    """One trial's scores (nodes,): the controls re-run the chosen setting so."""
    return train_group(task, [hp], config, progress, run, allowed)[0]

