"""Training a weight-sparse model: the recipe of Gao et al. (2025), step by step.

One step is::

    loss on the answer position (or every position)
    -> gradient rescaled to RMS <= grad_clip          (stability at high sparsity)
    -> AdamW (betas 0.9/0.95, decay on matrices only)  at the sharkfin rate
    -> every sparsified matrix projected to its top-k  (density annealed 1 -> target)

Data arrives as an iterator of ``Batch`` (``runtime.batch``), so this module
knows nothing of tasks or specs. Everything is deterministic on the CPU: the
same model, config and batches give bit-identical weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from .batch import Batch
from .model import SparseGPT
from .sparsity import density_schedule, project_topk_, sharkfin_lr, sparsified_parameters


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    steps: int
    lr: float = 1e-3
    # Shares of training; anneal is when density falls from 1 to the target.
    warmup: float = 0.01
    anneal: tuple[float, float] = (0.01, 0.5)
    grad_clip: float = 1.0  # the gradient's RMS over all parameters is capped here
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    loss_on: str = "answer"  # or "all": every prompt position too
    eval_every: int = 100  # steps between held-out evaluations (and the final one)
    # The stopping rule: once density has reached its target, training ends at the first
    # evaluation where every task's held-out accuracy is at least this. None runs every step.
    stop_accuracy: float | None = None
    # Steps over which the learning rate then falls linearly to 0, as the full run's does at
    # its end: without it the weights stop mid-schedule, at a high rate, and prune into
    # circuits half as large again (measured on bracket_depth).
    cooldown: int = 0
    # A snapshot of the weights is kept this often, so a NaN can roll back to it.
    snapshot_every: int = 50

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.loss_on not in ("answer", "all"):
            raise ValueError(f"loss_on must be 'answer' or 'all', got {self.loss_on!r}")
        if self.lr <= 0 or self.grad_clip <= 0 or self.eps <= 0:
            raise ValueError("lr, grad_clip and eps must be positive")
        if self.stop_accuracy is not None and not 0 <= self.stop_accuracy <= 1:
            raise ValueError(f"stop_accuracy must be in [0, 1], got {self.stop_accuracy}")
        if self.cooldown < 0:
            raise ValueError(f"cooldown must be >= 0, got {self.cooldown}")


@dataclass
class TaskMetrics:
    accuracy: float
    loss: float
    examples: int
    #: Loss of guessing uniformly among the task's distinct answers, ln(n).
    chance_loss: float


@dataclass
class TrainResult:
    steps_done: int
    final: dict[str, TaskMetrics]
    #: One entry per evaluation: step, train loss, density, lr, per-task accuracy and loss.
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0
    #: Why training stopped early (a non-finite loss), or None when it ran to the end.
    stopped: str | None = None
    #: Why the stopping rule ended training before its last step, or None when it did not.
    finished_early: str | None = None
    #: Tasks whose held-out loss ended at chance although training finished.
    collapsed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.stopped is None and not self.collapsed


Progress = Callable[[int, int, dict], None]


class NonFiniteLoss(RuntimeError):
    pass


def answer_loss(model: SparseGPT, batch: Batch) -> Tensor:
    """Mean cross-entropy of the answer; runs the last MLP only at answer positions."""
    logits = model(batch.tokens, answer_pos=batch.answer_pos)  # (B, V)
    return F.cross_entropy(logits, batch.answers)


def all_positions_loss(model: SparseGPT, batch: Batch) -> Tensor:
    logits = model(batch.tokens)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), batch.next_token_targets().flatten())


@torch.no_grad()
def evaluate(model: SparseGPT, batch: Batch, chunk: int = 512) -> dict[str, TaskMetrics]:
    """Held-out accuracy and answer loss per task."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses, hits = [], []
    for part in batch.split(chunk):
        part = part.to(device)
        logits = model(part.tokens, answer_pos=part.answer_pos)  # (b, V)
        losses.append(F.cross_entropy(logits, part.answers, reduction="none").cpu())
        hits.append((logits.argmax(-1) == part.answers).cpu())
    model.train(was_training)
    loss, hit = torch.cat(losses), torch.cat(hits)
    out = {}
    for task_id, name in enumerate(batch.task_names):
        rows = batch.task_ids == task_id
        if rows.any():
            distinct = batch.answers[rows].unique().numel()
            out[name] = TaskMetrics(
                accuracy=hit[rows].float().mean().item(),
                loss=loss[rows].mean().item(),
                examples=int(rows.sum()),
                chance_loss=math.log(max(distinct, 2)),
            )
    return out


def _param_groups(model: SparseGPT, weight_decay: float) -> list[dict]:
    # Decay shrinks matrices toward sparse solutions; on norm scales, sinks and
    # the bigram table it would only bias them toward zero for no benefit.
    matrices = {id(p) for _, p in sparsified_parameters(model)}
    matrices |= {id(model.wte.weight), id(model.lm_head.weight)}
    decay = [p for p in model.parameters() if id(p) in matrices]
    rest = [p for p in model.parameters() if id(p) not in matrices]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def _clip_grad_rms_(params: list[Tensor], max_rms: float) -> float:
    """Rescale all gradients together so their RMS is at most ``max_rms``; returns the RMS before."""
    grads = [p.grad for p in params if p.grad is not None]
    total = sum(g.pow(2).sum() for g in grads)
    count = sum(g.numel() for g in grads)
    rms = math.sqrt(float(total) / max(count, 1))
    if rms > max_rms:
        scale = max_rms / rms
        for g in grads:
            g.mul_(scale)
    return rms


def train(
    model: SparseGPT,
    config: TrainConfig,
    batches: Iterable[Batch],
    eval_set: Batch,
    *,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``config.steps`` steps drawn from ``batches``.

    With ``stop_after``, only the first ``stop_after`` steps of that schedule run
    (learning rate and density as in the full run), then the held-out evaluation:
    the start of the full run, bit for bit, to preview whether a task is learned.

    With ``config.stop_accuracy``, the run ends once the anneal is done and
    every task's held-out accuracy has reached it (``finished_early`` says
    when): the first steps of the run without the rule, bit for bit, so the
    circuits are still pruned from a model at its target density.

    On a non-finite loss, training stops, the weights roll back to the last
    snapshot, and the result's ``stopped`` says where; the caller decides
    whether to keep that model.
    """
    model.to(device).train()
    mc = model.config
    params = list(model.parameters())
    sparse = sparsified_parameters(model)
    optimizer = torch.optim.AdamW(
        _param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas, eps=config.eps
    )
    loss_fn = answer_loss if config.loss_on == "answer" else all_positions_loss
    result = TrainResult(steps_done=0, final={})
    snapshot = _snapshot(model)
    started = time.perf_counter()
    stream: Iterator[Batch] = iter(batches)
    recent: list[float] = []
    last: dict = {}
    final_step = config.steps if stop_after is None else max(1, min(stop_after, config.steps))
    # The rule is first checked right after the first step taken at the target density
    # (density_schedule's own test), then at every evaluation.
    annealed_from = math.ceil(config.anneal[1] * config.steps)
    cooling: tuple[int, float] | None = None  # (first step of the cooldown, the rate it starts from)
    step = 0
    while step < final_step:
        density = density_schedule(step, config.steps, mc.density, *config.anneal)
        if cooling is None:
            lr = sharkfin_lr(step, config.steps, config.lr, config.warmup, density, mc.density)
        else:
            lr = cooling[1] * (final_step - step) / (final_step - cooling[0] + 1)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = next(stream).to(device)
        loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            model.load_state_dict(snapshot)
            result.stopped = (
                f"the loss became {loss.item()} at step {step}; the weights were rolled back to step "
                f"{result.steps_done - result.steps_done % config.snapshot_every} (try a lower lr or grad_clip)"
            )
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_rms = _clip_grad_rms_(params, config.grad_clip)
        optimizer.step()
        if density < 1:
            project_topk_(sparse, density, mc.min_live_per_row)
        result.steps_done = step + 1
        result.tokens += int(batch.lengths.sum())
        recent.append(loss.item())
        if result.steps_done % config.snapshot_every == 0:
            snapshot = _snapshot(model)
        done = result.steps_done
        check_rule = config.stop_accuracy is not None and cooling is None and step >= annealed_from
        if done % config.eval_every == 0 or done == final_step or (check_rule and step == annealed_from):
            metrics = evaluate(model, eval_set)
            last = {
                "step": done,
                "train_loss": sum(recent) / len(recent),
                "density": density,
                "lr": lr,
                "grad_rms": grad_rms,
                "tasks": {name: {"accuracy": m.accuracy, "loss": m.loss} for name, m in metrics.items()},
            }
            result.curve.append(last)
            result.final = metrics
            recent = []
            if check_rule and done < final_step and all(m.accuracy >= config.stop_accuracy for m in metrics.values()):
                result.finished_early = (
                    f"every task reached {config.stop_accuracy:.1%} held-out accuracy at step {done} of "
                    f"{config.steps}, after the anneal"
                )
                if config.cooldown > 0 and done + config.cooldown < final_step:
                    cooling = (done, lr)
                    final_step = done + config.cooldown
                    result.finished_early += f"; then {config.cooldown} steps of cooldown"
                elif config.cooldown > 0:
                    result.finished_early = None  # the schedule's own decay ends sooner
        if progress is not None:
            elapsed = time.perf_counter() - started
            progress(
                result.steps_done,
                final_step,
                {
                    "loss": loss.item(),
                    "density": density,
                    "lr": lr,
                    "tokens_per_s": result.tokens / max(elapsed, 1e-9),
                    "tasks": last.get("tasks", {}),
                },
            )
        if result.finished_early is not None and cooling is None:
            break
        step += 1
    result.seconds = time.perf_counter() - started
    if result.stopped is not None or not result.final:
        result.final = evaluate(model, eval_set)
    result.collapsed = collapsed_tasks(result.final)
    return result


def collapsed_tasks(metrics: dict[str, TaskMetrics]) -> list[str]:
    """Tasks whose held-out loss sits at (or above) guessing among their answers.

    This is the collapse a sparsified unembedding shows: the answer tokens'
    weights are pruned away, the loss parks at ln(#answers) and never recovers,
    because a pruned weight regrows too slowly to re-enter the top-k.
    """
    return [name for name, m in metrics.items() if m.loss >= 0.9 * m.chance_loss]


def _snapshot(model: SparseGPT) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
