"""Pruning: the smallest set of nodes that still does the task.

The pipeline, in the order ``prune`` runs it::

    identity check      nothing ablated => masked logits == plain logits, exactly,
                        on every path (batched trials, many-set evaluation, keep sets)
    search              optuna TPE over (lambda, lr, temperature); trials are
                        trained in groups, a group's trials as a batch
                        dimension of one forward pass (trials.py), on the
                        task loss + lambda * kept nodes
    discretise          for the best few trials: rank nodes by score, bisect on
                        the number kept for the smallest circuit at the target
    cleanup             single removals, pair removals, re-training within the
                        kept set, until nothing can go (cleanup.py)
    calibrate           fit a logit scale and shift; report loss before and after
    baseline            attribution scores |grad x (act - ablated)|, same discretisation
    controls            nonsense task, random model, minimality, ablation agreement

Options (``PruneConfig``): ``ablation`` mean | zero | resample (ablation.py),
``loss`` ce | contrast (losses.py), ``norm`` live | frozen (norms.py), and
the search budget (``trials``, ``steps``). Losses are taken at the answer
position only, so the model runs in answer_pos mode throughout. Every loss
that picks or reports a circuit is measured on a held-out part of the task
batch (``PruneConfig.eval_examples``), never on the examples the masks were
trained on.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Iterator, Mapping

import torch
from torch import Tensor

from .ablation import ABLATIONS, mean_activations
from .batch import Batch
from .circuit import Circuit, circuit_edges
from .cleanup import cleanup
from .losses import LOSSES
from .masks import gate_hooks
from .model import SparseGPT
from .nodes import all_nodes, sites
from .norms import NORMS
from .pruning_task import (  # noqa: F401  (re-exported: the pipeline's public pieces)
    IdentityCheckError,
    Progress,
    PruneTask,
    _Pick,
    _rebuilt,
    _Task,
    check_identity,
    discretise,
    evaluate_sets,
    length_chunks,
    shrink,
    split_task,
)
from .sparsity import project_topk_, sparsified_parameters
from .trials import Hyperparameters, Trial, _group_hooks, search, train_one
from .workers import Workers


@dataclass(frozen=True, kw_only=True)
class PruneConfig:
    target: float = 0.15  # task loss (nats) the circuit must keep, as in the paper
    ablation: str = "mean"  # "mean", "zero" or "resample"
    method: str = "learned"  # "learned" masks or "attribution" scores
    baseline: str = "attribution"  # run side by side: "attribution" or "none"
    loss: str = "ce"  # "ce" (full vocabulary) or "contrast" (answer vs competitor, see losses.py)
    norm: str = "live"  # "live" or "frozen" (norm factors from the unpruned pass, see norms.py)
    # The search budget: trials in all, and mask-training steps of each.
    trials: int = 16
    steps: int = 150
    batch: int = 64  # examples per mask-training step of each trial
    seed: int = 0  # seeds masks, minibatches, the search and the controls
    controls: bool = True
    # Held out from mask training; every loss that decides something is measured here.
    eval_examples: int = 512
    # Rows per forward pass; see length_chunks.
    chunk: int = 64
    # Trials trained together, as a batch dimension of one forward pass
    # (trials.py). Results depend on it (a group's trials share its data
    # stream), so it is fixed, not tuned to the machine.
    group: int = 4
    # Groups (and the controls) run side by side, each on one CPU thread
    # (see Workers). Results do not depend on it.
    workers: int = 2
    # Trials whose masks' own kept sets rank best are discretised; the
    # smallest circuit among them wins.
    finalists: int = 3
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
    # After discretising, clean up (cleanup.py): the top-k by score can keep
    # nodes the rest no longer need. One-at-a-time removal alone dropped 0-9
    # of 70-122 nodes on the earlier shipped circuits and left up to 10 more
    # removable on held-out rows.
    shrink: bool = True
    cleanup_rounds: int = 2  # rounds of singles, pairs, re-training; stops early when nothing goes
    cleanup_steps: int = 100  # steps of each re-training within the kept set (0: no re-training)
    pair_candidates: int = 10  # pairs are tried among this many cheapest single removals
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
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        for name in ("trials", "steps", "batch", "eval_examples", "chunk", "workers", "group", "finalists"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.target <= 0:
            raise ValueError(f"target must be positive, got {self.target}")


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
    cleanup: tuple[dict, ...] = ()  # per cleanup round: nodes at its start and after each pass
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
            "cleanup": list(self.cleanup),
            "seconds": dict(self.seconds),
        }


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


# ---------------------------------------------------------------- attribution


def attribution_scores(task: PruneTask, batch: Batch) -> Tensor:
    """Per node, |d loss / d gate| summed over examples, in canonical order.

    With a gate g at each node (x' = g x + (1 - g) a, g = 1), d loss / d g is
    grad x (activation - ablated value) summed over the example's positions:
    the first-order estimate of what ablating that node does to that
    example's loss (the task's loss, under its norms). Its absolute value is
    summed over examples.
    """
    model = task.model
    total = torch.zeros(sum(s.width for s in sites(model.config)), dtype=torch.float64)
    for part in length_chunks(batch, task.chunk):
        chunk = task.prepare(part)
        gates = {s.name: torch.ones(len(part), 1, s.width, requires_grad=True) for s in sites(model.config)}
        logits = task.forward(chunk, gate_hooks(gates, task.values(chunk)))
        loss = task.row_losses(logits, part).sum()  # per-example gradients stay separate
        grads = torch.autograd.grad(loss, list(gates.values()))
        total += torch.cat([g.abs().sum((0, 1)) for g in grads]).double()
    return total.float()


# ---------------------------------------------------------------- circuits


def calibrate(task: PruneTask, keep: Tensor, steps: int) -> tuple[float, float]:
    """Fit logits' scale and per-token shift on the train split; (scale, calibrated eval loss).

    The circuit's own loss can be high only because its logits are too
    small or offset (ablated nodes shift every logit by a constant); the
    calibrated loss says how much of the task information it keeps.
    """
    fit = [task.prepare(part) for part in length_chunks(task.train.select(slice(0, 2048)), task.chunk)]
    fit_logits, fit_batches = task.circuit_logits(keep, fit)
    eval_logits, eval_batches = task.circuit_logits(keep, task.eval_chunks)
    fit_rows, eval_rows = _joined(fit_batches), _joined(eval_batches)
    scale = torch.ones((), requires_grad=True)
    shift = torch.zeros(fit_logits.size(-1), requires_grad=True)
    opt = torch.optim.LBFGS([scale, shift], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = task.row_losses(fit_logits * scale + shift, fit_rows).mean()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        calibrated = task.row_losses(eval_logits * scale + shift, eval_rows).mean().item()
    if not math.isfinite(calibrated):  # a degenerate fit must not report a better loss than none
        return 1.0, task.row_losses(eval_logits, eval_rows).mean().item()
    return scale.item(), calibrated


def _joined(batches: list[Batch]) -> Batch:
    # Only answers and competitors are read by the losses: pad-free views suffice.
    answers = torch.cat([b.answers for b in batches])
    comp = torch.cat([b.competitors[:, :1] for b in batches])
    return Batch(tokens=answers[:, None], lengths=torch.ones_like(answers), answers=answers, competitors=comp,
                 task_ids=torch.zeros_like(answers))


def make_circuit(task: PruneTask, pick: _Pick, method: str, config: PruneConfig) -> Circuit:
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
        loss_kind=task.loss,
        norm=task.norm,
    )


def _by_site(model: SparseGPT, flat: Tensor) -> dict[str, Tensor]:
    return {name: t.clone() for name, t in zip(model.site_names, flat.split([s.width for s in sites(model.config)]))}


# ---------------------------------------------------------------- the pipeline


def _find(task: PruneTask, config: PruneConfig, hp: Hyperparameters | None, progress: Progress, run: str) -> _Pick:
    """One pruning run with fixed hyperparameters (controls): masks or attribution, discretise, clean up."""
    if config.method == "learned":
        scores = train_one(task, hp, config, progress, run)
        pick = discretise(task, scores, config.target, config.scan, int(scores.ge(0).sum()))
        return cleanup(task, pick, scores, hp, config, progress, run)[0] if config.shrink else pick
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
            task = PruneTask(model, train, held, config.ablation, means, config.seed, config.chunk, config.loss, config.norm)
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


def _identity(task: PruneTask) -> None:
    """Every path a loss goes through, with nothing ablated: the batched trials' gates, the many-set
    evaluation and the discrete keep sets, each under the task's norms."""
    model = task.model
    n = len(all_nodes(model.config))
    for chunk in task.eval_chunks:
        values = task.values(chunk)
        ones = torch.ones(2, n)
        check_identity(model, chunk.batch, _group_hooks(task, ones, ones, values), "the batched mask hooks",
                       chunk.norms, repeat=2)
        check_identity(model, chunk.batch, task.many_hooks(ones.bool(), chunk), "the batched ablation hooks",
                       chunk.norms, repeat=2)
        check_identity(model, chunk.batch, task.hooks(torch.ones(n, dtype=torch.bool), chunk), "the ablation hooks",
                       chunk.norms)


def _prune(task: PruneTask, run: _Run) -> PruneResult:
    model, config = task.model, run.config
    n = len(all_nodes(model.config))
    everything, nothing = torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)

    _identity(task)
    full_loss, _ = task.evaluate(everything)
    empty_loss, _ = task.evaluate(nothing)
    run.report("identity", 1, 1, {"full_loss": full_loss, "empty_loss": empty_loss})
    run.lap("identity")

    trials: list[Trial] = []
    best = mask_scores = attribution = learned = by_attribution = None
    cleanup_rounds: list[dict] = []
    if config.method == "learned":
        trials, best, scores, learned = search(task, config, run.report, run.workers)
        mask_scores = _by_site(model, scores)
        run.lap("search")
        if config.shrink:
            learned, cleanup_rounds = cleanup(task, learned, scores, best, config, run.report, workers=run.workers)
            run.lap("cleanup")
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
        cleanup=tuple(cleanup_rounds),
        seconds=run.seconds,
    )


# ---------------------------------------------------------------- controls


def _controls(task: PruneTask, pick: _Pick, circuit: Circuit, hp: Hyperparameters | None, run: _Run) -> Controls:
    model, config = task.model, run.config
    everything = torch.ones(pick.keep.numel(), dtype=torch.bool)

    # Nonsense task: the same prompts with answers shuffled among the task's
    # own answer tokens. No real circuit predicts them; if pruning still finds
    # a small one that "does" this task, it is fitting noise.
    gen = torch.Generator().manual_seed(config.seed + 1)
    batch = run.task_batch
    shuffled = replace(batch, answers=batch.answers[torch.randperm(len(batch), generator=gen)])
    train, held = split_task(shuffled, config.eval_examples)
    nonsense_task = PruneTask(model, train, held, **task.settings())

    # Random model: same architecture and sparsity, never trained. Whatever
    # pruning finds there comes from the pruning, not from learned structure.
    random_model = SparseGPT(model.config, seed=config.seed + 1)
    project_topk_(sparsified_parameters(random_model), model.config.density, model.config.min_live_per_row)

    def control(name: str, control_task: PruneTask) -> ControlRun:
        found = _find(control_task, config, hp, run.report, name)
        result = ControlRun(found.reached, int(found.keep.sum()), found.loss, control_task.evaluate(everything)[0])
        run.report(name, 1, 1, {"control": result})
        return result

    with _frozen(random_model):
        random_means = mean_activations(random_model, run.mixture or [batch])
        random_task = _rebuilt(task, random_model, means=random_means)
        # Different models, so the two can run side by side.
        nonsense, random_run = run.workers.run(
            [lambda: control("nonsense", nonsense_task), lambda: control("random_model", random_task)]
        )
    flag = nonsense.reached and nonsense.nodes <= config.nonsense_ratio * max(1, len(circuit.nodes))
    run.lap("nonsense_and_random_model")

    # Minimality: a node whose removal keeps the loss at the target was not needed.
    names = all_nodes(model.config)
    kept = pick.keep.nonzero().flatten()
    without = pick.keep.repeat(len(kept), 1)
    without[torch.arange(len(kept)), kept] = False
    losses = evaluate_sets(task, without, workers=run.workers).tolist() if len(kept) else []
    run.report("minimality", len(kept), len(kept), {})
    minimality = {names[index]: loss for index, loss in zip(kept.tolist(), losses)}
    removable = tuple(name for name, loss in minimality.items() if loss <= config.target)
    run.lap("minimality")

    agreement = {
        kind: task.with_kind(kind).evaluate(pick.keep)[0] for kind in ABLATIONS if kind != "mean" or task.means is not None
    }
    run.report("ablation", 1, 1, {"losses": agreement})
    run.lap("ablation")
    return Controls(True, nonsense, flag, random_run, minimality, removable, agreement)
