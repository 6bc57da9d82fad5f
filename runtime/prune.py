"""Pruning: the smallest set of nodes that still does the task.

The pipeline, in the order ``prune`` runs it::

    identity check      nothing ablated => masked logits == plain logits, exactly
    search              optuna over (lambda, lr, temperature, steps); each trial
                        trains node masks on task CE + lambda * kept nodes,
                        then discretises them
    discretise          rank nodes by score, bisect on the number kept for the
                        smallest circuit at the target loss; also try the
                        masks' own kept set and the sizes just below the boundary
    shrink              drop kept nodes one at a time, lowest score first, while
                        the loss stays at the target (learned method only)
    calibrate           fit a logit scale and shift; report loss before and after
    baseline            attribution scores |grad x (act - ablated)|, same discretisation
    controls            nonsense task, random model, minimality, ablation agreement

Losses are cross-entropy at the answer position only, so the model runs in
answer_pos mode throughout. Every loss that picks or reports a circuit is
measured on a held-out part of the task batch (``PruneConfig.eval_examples``),
never on the examples the masks were trained on.
"""

from __future__ import annotations

import copy
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from .ablation import ABLATIONS, ablation_hooks, ablation_values, mean_activations, resample_activations, resample_donors
from .batch import Batch
from .circuit import Circuit, circuit_edges
from .masks import NodeMasks, gate_hooks
from .model import Hook, SparseGPT
from .nodes import all_nodes, sites
from .sparsity import project_topk_, sparsified_parameters

#: progress(stage, done, total, info). Stages, in order: "identity"; "masks"
#: (steps of one mask training, info["run"] = trial number or control name)
#: interleaved with "search" (trials done, info["trial"] = a Trial);
#: "shrink"; "attribution"; "calibrate"; then the controls "nonsense", "random_model",
#: "minimality" (nodes done) and "ablation".
Progress = Callable[[str, int, int, dict], None]


class IdentityCheckError(RuntimeError):
    """With no node ablated the masked model's logits differ from the plain model's: a bug, not a finding."""


@dataclass(frozen=True, kw_only=True)
class PruneConfig:
    target: float = 0.15  # task loss (nats) the circuit must keep, as in the paper
    ablation: str = "mean"  # "mean", "zero" or "resample"
    method: str = "learned"  # "learned" masks or "attribution" scores
    baseline: str = "attribution"  # run side by side: "attribution" or "none"
    trials: int = 6  # hyperparameter-search trials
    steps: int = 200  # most mask-training steps per trial (the search picks between half and all)
    batch: int = 256  # examples per mask-training step
    seed: int = 0  # seeds masks, minibatches, the search and the controls
    controls: bool = True
    # Held out from mask training; every loss that decides something is measured here.
    eval_examples: int = 512
    # Rows per forward pass; see length_chunks.
    chunk: int = 64
    # Mask trainings (and the minimality control) run side by side, each on
    # one CPU thread (see Workers); torch's intra-op threads are 1 while they
    # run. Results do not depend on it.
    workers: int = 2
    # Search ranges. lambda is per node, against mean CE in nats. On the
    # 1408-node small model the smallest circuits came from ~2e-3..5e-3;
    # below ~5e-4 the masks keep two to four times too many nodes.
    lam: tuple[float, float] = (3e-4, 1e-2)
    lr: tuple[float, float] = (5e-3, 5e-2)
    temperature: tuple[float, float] = (0.03, 0.5)
    # Share of each trial's steps over which lambda ramps up from 0. Adam
    # moves every score by about lr per step whatever its gradient's size, so
    # with the penalty on from step 0 every node, needed or not, falls at the
    # same speed and they cross zero together; the task's gradient then has
    # to regrow the circuit, and pulls distractors back with it. With the
    # ramp, the first steps sort the nodes by the sign of the task gradient.
    warmup: float = 0.2
    # Just above zero: see masks.NodeMasks.
    init: float = 0.1
    init_noise: float = 0.01
    # Sizes just below the bisection's answer that are also tried: the loss is
    # not monotone in the number kept, so a smaller circuit can hide there.
    scan: int = 6
    calibration_steps: int = 25
    # After discretising, drop kept nodes one at a time while the loss stays
    # at the target (see shrink). The top-k by score can keep nodes the rest
    # no longer need; on the shipped circuits it dropped 0-9 of 70-122.
    shrink: bool = True
    # The nonsense control is flagged when it reaches the target with at most
    # this many times the real circuit's nodes.
    nonsense_ratio: float = 2.0

    def __post_init__(self):
        if self.ablation not in ABLATIONS:
            raise ValueError(f"ablation must be one of {', '.join(ABLATIONS)}, got {self.ablation!r}")
        if self.method not in ("learned", "attribution"):
            raise ValueError(f"method must be 'learned' or 'attribution', got {self.method!r}")
        if self.baseline not in ("attribution", "none"):
            raise ValueError(f"baseline must be 'attribution' or 'none', got {self.baseline!r}")
        for name in ("trials", "steps", "batch", "eval_examples", "chunk", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.target <= 0:
            raise ValueError(f"target must be positive, got {self.target}")


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
    nodes: int  # size of the discretised circuit; of the masks' kept set when pruned
    loss: float  # its eval loss; the running training CE when pruned
    reached: bool
    seconds: float
    pruned_at: int | None = None  # the step the search stopped this trial at, if it did


@dataclass(frozen=True)
class ControlRun:
    """The same pruning on something that should have no small circuit."""

    reached: bool
    nodes: int
    loss: float
    full_loss: float  # loss with nothing ablated


@dataclass(frozen=True)
class Controls:
    identity: bool  # always True in a result: a failure raises IdentityCheckError
    nonsense: ControlRun | None  # answers shuffled across the task's examples
    # True when the nonsense task reached the target with a circuit about as
    # small as the real one (PruneConfig.nonsense_ratio): the real circuit
    # then says more about pruning than about the task.
    nonsense_flag: bool
    random_model: ControlRun | None  # an untrained model of the same architecture
    minimality: dict[str, float]  # kept node -> circuit loss with it ablated too
    removable: tuple[str, ...]  # kept nodes whose removal keeps the loss at the target
    ablation_agreement: dict[str, float]  # "mean"/"zero"/"resample" -> circuit loss


@dataclass(frozen=True)
class PruneResult:
    circuit: Circuit  # by config.method
    baseline: Circuit | None  # attribution, when config.baseline asks and method is learned
    full_loss: float  # task loss with nothing ablated
    empty_loss: float  # task loss with every node ablated
    best: Hyperparameters | None  # of the chosen trial (learned only)
    trials: tuple[Trial, ...]
    controls: Controls | None
    # Per-site node scores, plain tensors for the caller to save: the chosen
    # trial's mask scores and, when computed, the attribution scores.
    mask_scores: dict[str, Tensor] | None
    attribution_scores: dict[str, Tensor] | None
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage

    @property
    def size_ratio(self) -> float | None:
        """Baseline nodes / circuit nodes (how much smaller the learned circuit is)."""
        if self.baseline is None or not self.circuit.nodes:
            return None
        return len(self.baseline.nodes) / len(self.circuit.nodes)

    def to_json(self, roles: Mapping[str, str] | None = None) -> dict:
        """Everything but the score tensors, as JSON-ready values."""
        return {
            "circuit": self.circuit.to_json(roles),
            "baseline": None if self.baseline is None else self.baseline.to_json(),
            "size_ratio": self.size_ratio,
            "full_loss": self.full_loss,
            "empty_loss": self.empty_loss,
            "best": None if self.best is None else asdict(self.best),
            "trials": [asdict(t) for t in self.trials],
            "controls": None if self.controls is None else asdict(self.controls),
            "seconds": dict(self.seconds),
        }


# ---------------------------------------------------------------- evaluation


@contextmanager
def _frozen(model: SparseGPT) -> Iterator[None]:
    # Only the masks learn; weights that want no gradient halve the backward pass.
    saved = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    model.eval()
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)
        model.train(was_training)


def length_chunks(batch: Batch, size: int) -> list[Batch]:
    """``batch``'s rows sorted by length (stably) in chunks of ``size``, each padded only to its own longest.

    Cross-entropy at the answer is per example, so running a batch this way
    gives the same losses and gradients while computing far fewer padding
    positions: on the small model, 4 chunks of 64 made a 256-row mask step
    about a third faster than one batch.
    """
    order = torch.argsort(batch.lengths, stable=True)
    return [batch.select(part) for part in order.split(size)]


@dataclass
class _Task:
    """A model, its task split in two, and how nodes are ablated on it."""

    model: SparseGPT
    train: Batch
    eval: Batch
    kind: str
    means: Mapping[str, Tensor] | None
    seed: int
    chunk: int = 64
    generator: torch.Generator = field(init=False)
    eval_chunks: list[tuple[Batch, dict[str, Tensor] | None]] = field(init=False)

    def __post_init__(self):
        if self.kind == "mean" and self.means is None:
            raise ValueError("mean ablation needs mean activations (ablation.mean_activations)")
        self.generator = torch.Generator().manual_seed(self.seed)
        self.eval_chunks = [(part, self.donors(part)) for part in length_chunks(self.eval, self.chunk)]

    def with_kind(self, kind: str) -> _Task:
        return _Task(self.model, self.train, self.eval, kind, self.means, self.seed, self.chunk)

    def on(self, model: SparseGPT) -> _Task:
        """The same task on another model (a worker's copy, or the random control)."""
        return _Task(model, self.train, self.eval, self.kind, self.means, self.seed, self.chunk)

    def donors(self, batch: Batch) -> dict[str, Tensor] | None:
        """Donor activations for resample ablation of ``batch`` (answer_pos mode); None otherwise."""
        if self.kind != "resample":
            return None
        return resample_activations(self.model, batch, resample_donors(batch, self.generator))

    def values(self, batch: Batch) -> dict[str, Tensor]:
        """Ablated values per site for running ``batch`` through mask gates."""
        donors = self.donors(batch)
        return {name: ablation_values(self.kind, name, self.means, donors) for name in self.model.site_names}

    def keep(self, flat: Tensor) -> dict[str, Tensor]:
        """Canonical-order bool vector -> per-site keep masks."""
        return dict(zip(self.model.site_names, flat.split([s.width for s in sites(self.model.config)])))

    def hooks(self, flat_keep: Tensor, donors: dict[str, Tensor] | None) -> dict[str, Hook]:
        return ablation_hooks(self.model, self.keep(flat_keep), self.kind, self.means, donors)

    @torch.no_grad()
    def logits(self, batch: Batch, hooks: Mapping[str, Hook] | None = None) -> Tensor:
        with self.model.hooks(hooks or {}):
            return self.model(batch.tokens, batch.answer_pos)  # (B, V)

    def circuit_logits(self, flat_keep: Tensor, chunks: list[tuple[Batch, dict[str, Tensor] | None]]) -> tuple[Tensor, Tensor]:
        """(logits, answers) of ``chunks`` with the nodes not in ``flat_keep`` ablated."""
        logits = [self.logits(part, self.hooks(flat_keep, donors)) for part, donors in chunks]
        return torch.cat(logits), torch.cat([part.answers for part, _ in chunks])

    def evaluate(self, flat_keep: Tensor) -> tuple[float, float]:
        """(loss, accuracy) on the eval split with the nodes not in ``flat_keep`` ablated."""
        return _loss_acc(*self.circuit_logits(flat_keep, self.eval_chunks))


def _loss_acc(logits: Tensor, answers: Tensor) -> tuple[float, float]:
    loss = F.cross_entropy(logits, answers).item()
    acc = (logits.argmax(-1) == answers).float().mean().item()
    return loss, acc


def check_identity(model: SparseGPT, batch: Batch, hooks: Mapping[str, Hook], what: str = "ablation hooks") -> None:
    """Raise IdentityCheckError unless ``hooks`` leave the logits bit-identical.

    Run with every node kept: any difference means the ablation machinery
    itself changes the model (a wrong broadcast, a NaN in the means, a stray
    hook), and every loss measured through it would be wrong.
    """
    with torch.no_grad():
        plain = model(batch.tokens, batch.answer_pos)
        with model.hooks(hooks):
            hooked = model(batch.tokens, batch.answer_pos)
    if not torch.equal(plain, hooked):
        diff = (plain - hooked).abs().nan_to_num(nan=math.inf).max().item()
        raise IdentityCheckError(
            f"identity check failed for {what}: with no node ablated the logits differ from the "
            f"plain model's by up to {diff:.3g}"
        )


# ---------------------------------------------------------------- learned masks


def train_masks(
    task: _Task,
    hp: Hyperparameters,
    config: PruneConfig,
    progress: Progress,
    run: int | str = 0,
    checkpoint: Callable[[int, int, float], None] | None = None,
) -> NodeMasks:
    """Train node masks on task CE + lambda * (kept nodes); returns the masks.

    ``run`` labels the "masks" progress reports: the trial number, or the
    control's name.

    ``checkpoint(step, kept, ce)`` is called every quarter of config.steps
    with the kept-node count and a running mean of the training CE. The
    forward pass runs the hard mask, so these describe the masks' own kept
    set at no extra cost; the search uses them to stop hopeless trials early
    (by raising from the callback).
    """
    model = task.model
    gen = torch.Generator().manual_seed(config.seed)  # every trial sees the same data: only hp differ
    masks = NodeMasks(model.config, config.init, config.init_noise, gen)
    opt = torch.optim.AdamW(masks.parameters(), lr=hp.lr, weight_decay=0.0)
    static = None if task.kind == "resample" else task.values(task.train)
    interval = max(1, config.steps // 4)
    warm_steps = max(1.0, config.warmup * hp.steps)
    running = None
    for step in range(hp.steps):
        rows = torch.randint(len(task.train), (config.batch,), generator=gen)
        ce = torch.zeros(())
        opt.zero_grad(set_to_none=True)
        for batch in length_chunks(task.train.select(rows), config.chunk):  # see length_chunks
            values = static if static is not None else task.values(batch)
            hard, soft = masks.gates(hp.temperature)
            with model.hooks(masks.hooks(hard, soft, values)):
                logits = model(batch.tokens, batch.answer_pos)
            part = F.cross_entropy(logits, batch.answers, reduction="sum") / config.batch
            part.backward()  # gradients add up over the chunks to those of the step's mean CE
            ce += part.detach()
        kept = masks.count(hp.temperature)
        (hp.lam * min(1.0, step / warm_steps) * kept).backward()
        opt.step()
        masks.clamp_()
        running = ce.item() if running is None else 0.9 * running + 0.1 * ce.item()
        if step % 10 == 9 or step == hp.steps - 1:
            progress("masks", step + 1, hp.steps, {"run": run, "ce": ce.item(), "kept": int(kept.item())})
        if checkpoint is not None and (step + 1) % interval == 0 and step + 1 < hp.steps:
            checkpoint(step + 1, int(kept.item()), running)
    return masks


@dataclass(frozen=True)
class _Pick:
    keep: Tensor  # canonical-order bool
    loss: float
    accuracy: float
    reached: bool
    evaluated: int  # losses measured to find it


def discretise(task: _Task, scores: Tensor, target: float, scan: int, raw_k: int | None = None) -> _Pick:
    """Smallest top-k of ``scores`` (canonical order) whose eval loss is <= target.

    Bisects on k. The loss is not monotone in k, so also tried: ``raw_k``
    (the masks' own kept set, when given) and the ``scan`` sizes just below
    the bisection's answer; the smallest passing k among everything measured
    wins. When even k = all nodes misses the target the pick is the raw set
    (or everything) and ``reached`` is False.
    """
    n = scores.numel()
    order = torch.argsort(scores, descending=True, stable=True)
    measured: dict[int, tuple[float, float]] = {}

    def keep_top(k: int) -> Tensor:
        keep = torch.zeros(n, dtype=torch.bool)
        keep[order[:k]] = True
        return keep

    def passes(k: int) -> bool:
        if k not in measured:
            measured[k] = task.evaluate(keep_top(k))
        return measured[k][0] <= target

    if not passes(n):
        k = n if raw_k is None else raw_k
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


def shrink(task: _Task, pick: _Pick, scores: Tensor, target: float) -> _Pick:
    """``pick`` with kept nodes dropped greedily, lowest score first, while the loss stays <= target.

    Each removal is decided on a part of the *train* split, so the eval
    loss reported for the result is not the loss the choices were fitted
    to. When the shrunk circuit misses the target on the eval split (a
    choice that overfitted), the unshrunk pick is returned. A pick that
    never reached the target is returned as it is.
    """
    if not pick.reached:
        return pick
    fit = [(part, task.donors(part)) for part in length_chunks(task.train.select(slice(0, len(task.eval))), task.chunk)]
    keep = pick.keep.clone()
    kept = keep.nonzero().flatten()
    evaluated = pick.evaluated
    for index in kept[torch.argsort(scores[kept], stable=True)].tolist():
        keep[index] = False
        evaluated += 1
        if _loss_acc(*task.circuit_logits(keep, fit))[0] > target:
            keep[index] = True
    loss, accuracy = task.evaluate(keep)
    if loss > target:
        return pick
    return _Pick(keep, loss, accuracy, True, evaluated + 1)


def _objective(nodes: int, loss: float, reached: bool, total: int, target: float) -> float:
    # Fewer nodes first; among equal sizes, lower loss. A circuit that misses
    # the target ranks behind every circuit that reaches it.
    if reached:
        return nodes + 0.5 * min(loss / target, 1.0)
    return total + 1 + loss / target


class _Stopped(Exception):
    def __init__(self, step: int, kept: int, ce: float):
        self.step, self.kept, self.ce = step, kept, ce


@contextmanager
def _one_thread_each() -> Iterator[None]:
    # Jobs side by side each get one intra-op thread; the stages that run
    # alone (bisection, shrink, calibration) keep the caller's threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Workers:
    """Runs up to ``n`` jobs at once in threads, each on its own copy of the model.

    Hooks live on the model, so two jobs cannot share one. Each job is one
    single-threaded torch computation: on the small model two such jobs
    finished in the time of one, while one job given two intra-op threads
    ran only ~1.1x faster. Jobs call ``progress`` from their threads.
    """

    def __init__(self, task: _Task, n: int):
        self.task, self.n = task, n
        self.tasks: list[_Task] = []  # the task on each worker's model, made on first use
        self.pool = ThreadPoolExecutor(n) if n > 1 else None

    def map(self, fn: Callable, items: list) -> list:
        """``[fn(task, item) for item in items]``, with at most one job per task at a time."""
        if self.pool is None:
            return [fn(self.task, item) for item in items]
        if not self.tasks:
            self.tasks = [self.task] + [self.task.on(copy.deepcopy(self.task.model)) for _ in range(self.n - 1)]
        results = []
        with _one_thread_each():
            for start in range(0, len(items), len(self.tasks)):
                futures = [self.pool.submit(fn, task, item) for task, item in zip(self.tasks, items[start:])]
                results += [f.result() for f in futures]
        return results

    def run(self, jobs: list[Callable[[], object]]) -> list:
        """Run zero-argument jobs side by side; the caller makes sure they use different models."""
        if self.pool is None:
            return [job() for job in jobs]
        with _one_thread_each():
            futures = [self.pool.submit(job) for job in jobs]
            return [f.result() for f in futures]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


#: Trials are asked of the sampler, run and told back this many at a time, so
#: that two workers can run a round together; the results do not depend on
#: how many workers there are.
ROUND = 2


def search(task: _Task, config: PruneConfig, progress: Progress, workers: Workers) -> tuple[list[Trial], Hyperparameters, NodeMasks, _Pick]:
    """Optuna TPE search (seeded, so repeatable) over the mask hyperparameters.

    A trial whose masks, at a checkpoint past half of config.steps, keep
    more nodes (or miss the target by more) than the median of the finished
    trials of earlier rounds at the same step is stopped there, so most of
    the search's time goes to promising settings.
    """
    import optuna  # imported here: ~0.5 s that only pruning should pay

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=max(1, min(4, config.trials // 2)))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    # A setting that worked on the small model goes first, so even one trial is sensible.
    study.enqueue_trial({"lam": 2e-3, "lr": 0.01, "temperature": 0.05, "steps": config.steps})
    step_choices = sorted({max(1, config.steps // 2), max(1, (3 * config.steps) // 4), config.steps})
    total = len(all_nodes(task.model.config))
    trials: list[Trial] = []
    found: dict[int, tuple[NodeMasks, _Pick]] = {}
    curves: list[dict[int, float]] = []  # checkpoint scores of the finished trials

    def run(task: _Task, job: tuple[int, Hyperparameters, list[dict[int, float]]]) -> tuple[Trial, NodeMasks | None, _Pick | None, dict]:
        number, hp, earlier = job
        start, curve = time.perf_counter(), {}

        def checkpoint(step: int, kept: int, ce: float) -> None:
            curve[step] = score = _objective(kept, ce, ce <= config.target, total, config.target)
            others = sorted(c[step] for c in earlier if step in c)
            if step >= config.steps // 2 and len(others) >= 2 and score > others[(len(others) - 1) // 2]:
                raise _Stopped(step, kept, ce)

        try:
            masks = train_masks(task, hp, config, progress, number, checkpoint)
        except _Stopped as stop:
            record = Trial(number, hp, stop.kept, stop.ce, False, time.perf_counter() - start, pruned_at=stop.step)
            return record, None, None, curve
        pick = discretise(task, masks.flat(), config.target, config.scan, int(masks.flat().ge(0).sum()))
        nodes = int(pick.keep.sum())
        return Trial(number, hp, nodes, pick.loss, pick.reached, time.perf_counter() - start), masks, pick, curve

    while len(trials) < config.trials:
        asked = [study.ask() for _ in range(min(ROUND, config.trials - len(trials)))]
        jobs = []
        for trial in asked:
            hp = Hyperparameters(
                lam=trial.suggest_float("lam", *config.lam, log=True),
                lr=trial.suggest_float("lr", *config.lr, log=True),
                temperature=trial.suggest_float("temperature", *config.temperature, log=True),
                steps=trial.suggest_categorical("steps", step_choices),
            )
            jobs.append((trial.number, hp, list(curves)))
        for trial, (record, masks, pick, curve) in zip(asked, workers.map(run, jobs)):
            trials.append(record)
            if record.pruned_at is None:
                found[record.number] = (masks, pick)
                curves.append(curve)
                study.tell(trial, _objective(record.nodes, record.loss, record.reached, total, config.target))
            else:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            progress("search", len(trials), config.trials, {"trial": record})
    best = study.best_trial.number
    masks, pick = found[best]
    return trials, next(t.params for t in trials if t.number == best), masks, pick


# ---------------------------------------------------------------- attribution


def attribution_scores(task: _Task, batch: Batch) -> Tensor:
    """Per node, |d loss / d gate| summed over examples, in canonical order.

    With a gate g at each node (x' = g x + (1 - g) a, g = 1), d loss / d g is
    grad x (activation - ablated value) summed over the example's positions:
    the first-order estimate of what ablating that node does to that
    example's loss. Its absolute value is summed over examples.
    """
    model = task.model
    total = torch.zeros(sum(s.width for s in sites(model.config)), dtype=torch.float64)
    for part in length_chunks(batch, task.chunk):
        values = task.values(part)
        gates = {s.name: torch.ones(len(part), 1, s.width, requires_grad=True) for s in sites(model.config)}
        with model.hooks(gate_hooks(gates, values)):
            logits = model(part.tokens, part.answer_pos)
        loss = F.cross_entropy(logits, part.answers, reduction="sum")  # per-example gradients stay separate
        grads = torch.autograd.grad(loss, list(gates.values()))
        total += torch.cat([g.abs().sum((0, 1)) for g in grads]).double()
    return total.float()


# ---------------------------------------------------------------- circuits


def calibrate(task: _Task, keep: Tensor, steps: int) -> tuple[float, float]:
    """Fit logits' scale and per-token shift on the train split; (scale, calibrated eval loss).

    The circuit's own loss can be high only because its logits are too
    small or offset (ablated nodes shift every logit by a constant); the
    calibrated loss says how much of the task information it keeps.
    """
    fit_chunks = [(part, task.donors(part)) for part in length_chunks(task.train.select(slice(0, 2048)), task.chunk)]
    fit_logits, fit_answers = task.circuit_logits(keep, fit_chunks)
    eval_logits, eval_answers = task.circuit_logits(keep, task.eval_chunks)
    scale = torch.ones((), requires_grad=True)
    shift = torch.zeros(fit_logits.size(-1), requires_grad=True)
    opt = torch.optim.LBFGS([scale, shift], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(fit_logits * scale + shift, fit_answers)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        calibrated = F.cross_entropy(eval_logits * scale + shift, eval_answers).item()
    if not math.isfinite(calibrated):  # a degenerate fit must not report a better loss than none
        return 1.0, F.cross_entropy(eval_logits, eval_answers).item()
    return scale.item(), calibrated


def make_circuit(task: _Task, pick: _Pick, method: str, config: PruneConfig) -> Circuit:
    names = all_nodes(task.model.config)
    nodes = tuple(names[i] for i in pick.keep.nonzero().flatten().tolist())
    scale, calibrated = calibrate(task, pick.keep, config.calibration_steps)
    return Circuit(
        nodes=nodes,
        edges=tuple(circuit_edges(task.model, nodes)),
        total_nodes=len(names),
        n_layer=task.model.config.n_layer,
        method=method,
        ablation=task.kind,
        target=config.target,
        loss=pick.loss,
        accuracy=pick.accuracy,
        calibrated_loss=calibrated,
        scale=scale,
    )


def _by_site(model: SparseGPT, flat: Tensor) -> dict[str, Tensor]:
    return {name: t.clone() for name, t in zip(model.site_names, flat.split([s.width for s in sites(model.config)]))}


# ---------------------------------------------------------------- the pipeline


def split_task(batch: Batch, eval_examples: int) -> tuple[Batch, Batch]:
    """(train, eval): the last min(eval_examples, len // 4) rows are held out.

    A batch of fewer than 4 rows is used whole for both.
    """
    held = min(eval_examples, len(batch) // 4)
    if held == 0:
        return batch, batch
    return batch.select(slice(0, len(batch) - held)), batch.select(slice(len(batch) - held, len(batch)))


def _find(task: _Task, config: PruneConfig, hp: Hyperparameters | None, progress: Progress, run: str) -> _Pick:
    """One pruning run with fixed hyperparameters (controls): masks or attribution, then discretise."""
    if config.method == "learned":
        masks = train_masks(task, hp, config, progress, run)
        pick = discretise(task, masks.flat(), config.target, config.scan, int(masks.flat().ge(0).sum()))
        return shrink(task, pick, masks.flat(), config.target) if config.shrink else pick
    return discretise(task, attribution_scores(task, task.train), config.target, config.scan)


def prune(
    model: SparseGPT,
    task_batch: Batch,
    means: Mapping[str, Tensor] | None,
    config: PruneConfig = PruneConfig(),
    *,
    mixture: list[Batch] | None = None,
    progress: Progress | None = None,
) -> PruneResult:
    """Find the smallest circuit of ``model`` for the task in ``task_batch``.

    ``means`` are ``ablation.mean_activations`` over the model's training
    mixture (needed for mean ablation and the ablation-agreement control).
    ``mixture``, batches of that mixture, gives the random-model control its
    own means; without it they are taken over the task batch. The model is
    left as it was (weights, requires_grad, train/eval mode). Raises
    IdentityCheckError when the ablation machinery itself changes the model.
    """
    run = _Run(config, task_batch, mixture, progress or (lambda stage, done, total, info: None))
    try:
        with _frozen(model):
            train, held = split_task(task_batch, config.eval_examples)
            task = _Task(model, train, held, config.ablation, means, config.seed, config.chunk)
            run.workers = Workers(task, config.workers)
            return _prune(task, run)
    finally:
        if run.workers is not None:
            run.workers.close()


@dataclass
class _Run:
    """What one call of ``prune`` carries from stage to stage."""

    config: PruneConfig
    task_batch: Batch
    mixture: list[Batch] | None
    report: Progress
    workers: Workers | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    clock: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.clock
        self.clock = now


def _prune(task: _Task, run: _Run) -> PruneResult:
    model, config = task.model, run.config
    n = len(all_nodes(model.config))
    everything, nothing = torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)

    # Both paths a loss goes through: the masks' gates and the discrete keep sets.
    for part, donors in task.eval_chunks:
        values = {name: ablation_values(task.kind, name, task.means, donors) for name in model.site_names}
        gates = everything.float()
        check_identity(model, part, NodeMasks(model.config).hooks(gates, gates, values), "the mask hooks")
        check_identity(model, part, task.hooks(everything, donors), "the ablation hooks")
    full_loss, _ = task.evaluate(everything)
    empty_loss, _ = task.evaluate(nothing)
    run.report("identity", 1, 1, {"full_loss": full_loss, "empty_loss": empty_loss})
    run.lap("identity")

    trials: list[Trial] = []
    best = mask_scores = attribution = learned = by_attribution = None
    if config.method == "learned":
        trials, best, masks, learned = search(task, config, run.report, run.workers)
        mask_scores = _by_site(model, masks.flat())
        run.lap("search")
        if config.shrink:
            before = int(learned.keep.sum())
            learned = shrink(task, learned, masks.flat(), config.target)
            run.report("shrink", 1, 1, {"before": before, "nodes": int(learned.keep.sum()), "loss": learned.loss})
            run.lap("shrink")
    if config.method == "attribution" or config.baseline == "attribution":
        scores = attribution_scores(task, task.train)
        attribution = _by_site(model, scores)
        by_attribution = discretise(task, scores, config.target, config.scan)
        run.report("attribution", 1, 1, {"nodes": int(by_attribution.keep.sum()), "loss": by_attribution.loss})
        run.lap("attribution")

    pick = learned if config.method == "learned" else by_attribution
    circuit = make_circuit(task, pick, config.method, config)
    baseline = None
    if config.method == "learned" and by_attribution is not None:
        baseline = make_circuit(task, by_attribution, "attribution", config)
    run.report("calibrate", 1, 1, {"loss": circuit.loss, "calibrated_loss": circuit.calibrated_loss})
    run.lap("calibrate")

    controls = _controls(task, pick, circuit, best, run) if config.controls else None
    return PruneResult(
        circuit=circuit,
        baseline=baseline,
        full_loss=full_loss,
        empty_loss=empty_loss,
        best=best,
        trials=tuple(trials),
        controls=controls,
        mask_scores=mask_scores,
        attribution_scores=attribution,
        seconds=run.seconds,
    )


# ---------------------------------------------------------------- controls


def _controls(task: _Task, pick: _Pick, circuit: Circuit, hp: Hyperparameters | None, run: _Run) -> Controls:
    model, config = task.model, run.config
    everything = torch.ones(pick.keep.numel(), dtype=torch.bool)

    # Nonsense task: the same prompts with answers shuffled among the task's
    # own answer tokens. No real circuit predicts them; if pruning still finds
    # a small one that "does" this task, it is fitting noise.
    gen = torch.Generator().manual_seed(config.seed + 1)
    batch = run.task_batch
    shuffled = replace(batch, answers=batch.answers[torch.randperm(len(batch), generator=gen)])
    train, held = split_task(shuffled, config.eval_examples)
    nonsense_task = _Task(model, train, held, task.kind, task.means, config.seed, config.chunk)

    # Random model: same architecture and sparsity, never trained. Whatever
    # pruning finds there comes from the pruning, not from learned structure.
    random_model = SparseGPT(model.config, seed=config.seed + 1)
    project_topk_(sparsified_parameters(random_model), model.config.density, model.config.min_live_per_row)

    def control(name: str, control_task: _Task) -> ControlRun:
        found = _find(control_task, config, hp, run.report, name)
        result = ControlRun(found.reached, int(found.keep.sum()), found.loss, control_task.evaluate(everything)[0])
        run.report(name, 1, 1, {"control": result})
        return result

    with _frozen(random_model):
        random_means = mean_activations(random_model, run.mixture or [batch])
        random_task = _Task(random_model, task.train, task.eval, task.kind, random_means, config.seed, config.chunk)
        # Different models, so the two can run side by side.
        nonsense, random_run = run.workers.run(
            [lambda: control("nonsense", nonsense_task), lambda: control("random_model", random_task)]
        )
    flag = nonsense.reached and nonsense.nodes <= config.nonsense_ratio * max(1, len(circuit.nodes))
    run.lap("nonsense_and_random_model")

    # Minimality: a node whose removal keeps the loss at the target was not needed.
    names = all_nodes(model.config)
    kept = pick.keep.nonzero().flatten().tolist()
    done = []

    def without_each(worker_task: _Task, indices: list[int]) -> list[float]:
        losses = []
        for index in indices:
            without = pick.keep.clone()
            without[index] = False
            losses.append(worker_task.evaluate(without)[0])
            done.append(index)
            run.report("minimality", len(done), len(kept), {})
        return losses

    share = max(1, -(-len(kept) // config.workers))
    groups = [kept[i : i + share] for i in range(0, len(kept), share)]
    losses = [loss for part in run.workers.map(without_each, groups) for loss in part]
    minimality = {names[index]: loss for index, loss in zip(kept, losses)}
    removable = tuple(name for name, loss in minimality.items() if loss <= config.target)
    run.lap("minimality")

    agreement = {
        kind: task.with_kind(kind).evaluate(pick.keep)[0] for kind in ABLATIONS if kind != "mean" or task.means is not None
    }
    run.report("ablation", 1, 1, {"losses": agreement})
    run.lap("ablation")
    return Controls(True, nonsense, flag, random_run, minimality, removable, agreement)
