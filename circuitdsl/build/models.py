"""Training plans -> trained models: train or reuse from the cache, and what is derived from a model.

Every build first looks in the cache under its plan's content key, and builds
only on a miss, under the entry's lock (a second run of the same spec waits,
then reuses). This module imports the runtime and so torch: the CLI imports
it only inside the commands that run models.
"""

from __future__ import annotations

import time
from typing import Callable

import attrs
import torch

from runtime.checkpoint import model_from_bytes, model_to_bytes, tensors_from_bytes, tensors_to_bytes
from runtime.model import ModelConfig, SparseGPT
from runtime.sparsity import measured_density
from runtime.tokenizer import Tokenizer
from runtime.train import TrainConfig, TrainResult, train

from circuitdsl.diagnostics import RunFailed, UsageError
from circuitdsl.tasks import data
from circuitdsl.store.cache import Cache
from circuitdsl.spec.plan import TrainPlan

WEIGHTS = "weights.safetensors"
MEANS = "means.safetensors"

Progress = Callable[[int, int, dict], None]


class TrainingFailed(RunFailed):
    """Training ran but did not give a usable model (diverged or collapsed)."""

    def __init__(self, message: str, result: TrainResult):
        super().__init__(message)
        self.result = result


@attrs.frozen
class TrainedModel:
    plan: TrainPlan
    model: SparseGPT
    tokenizer: Tokenizer
    record: dict
    #: True when the weights came from the cache.
    cached: bool


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when there is one; asking for CUDA without one is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but PyTorch sees no CUDA device here")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {name!r}; use cpu, cuda or auto")
    return torch.device(name)


def tokenizer_for(plan: TrainPlan) -> Tokenizer:
    return Tokenizer(plan.vocab.all_tokens)


def build_model(plan: TrainPlan, tokenizer: Tokenizer, seed: int | None = None) -> SparseGPT:
    config = ModelConfig(vocab_size=len(tokenizer), **plan.model)
    return SparseGPT(config, seed=plan.seed if seed is None else seed)


def ensure_model(
    plan: TrainPlan,
    cache: Cache,
    *,
    device: torch.device = torch.device("cpu"),
    progress: Progress | None = None,
    retrain: bool = False,
) -> TrainedModel:
    """The trained model of ``plan``: from the cache, or trained now and cached."""
    with cache.lock("models", plan.key):
        entry = None if retrain else cache.read("models", plan.key, require=(WEIGHTS,))
        if entry is not None:
            model, tokenizer = model_from_bytes(entry.files[WEIGHTS], device)
            return TrainedModel(plan, model, tokenizer, entry.record, cached=True)
        trained = _train(plan, device, progress)
        written = cache.write("models", plan.key, {WEIGHTS: model_to_bytes(trained[0], trained[1])}, _record(plan, trained))
        return TrainedModel(plan, trained[0], trained[1], written.record, cached=False)


def run_training(plan: TrainPlan, device: torch.device, progress: Progress | None = None, *, stop_after: int | None = None):
    """Train ``plan`` as it says, with no cache and no judgement: (model, tokenizer, TrainResult).
    ``stop_after`` stops after that many steps of the plan's schedule (``circ train --quick``)."""
    tokenizer = tokenizer_for(plan)
    context = plan.model["context"]
    model = build_model(plan, tokenizer)
    eval_set = data.eval_batch(plan.tasks, plan.eval_examples, seed=plan.seed, tokenizer=tokenizer, context=context)
    batches = data.training_batches(
        plan.tasks, plan.weights, batch_size=plan.batch, seed=plan.seed, tokenizer=tokenizer, context=context
    )
    config = TrainConfig(**plan.train)
    result = train(model, config, batches, eval_set, device=device, progress=progress, stop_after=stop_after)
    model.to("cpu").eval()
    return model, tokenizer, result


#: `circ train --quick` runs this share of the recipe's steps: the start of the full run,
#: on its own schedule (a recipe squeezed into fewer steps would sparsify ten times as fast,
#: and a task the full run learns by step 100 looked unlearned after 80 squeezed ones)...
QUICK_SHARE = 0.1
#: ...but at least this many (fewer says little even about a tiny task), and never more than the recipe.
QUICK_MIN_STEPS = 50


def quick_steps(steps: int) -> int:
    return min(steps, max(QUICK_MIN_STEPS, round(steps * QUICK_SHARE)))


def _train(plan: TrainPlan, device: torch.device, progress: Progress | None):
    model, tokenizer, result = run_training(plan, device, progress)
    if result.stopped is not None:
        raise TrainingFailed(f"training of `{plan.name}` stopped: {result.stopped}", result)
    if result.collapsed:
        names = ", ".join(f"`{t}` (loss {result.final[t].loss:.3f} ≈ chance {result.final[t].chance_loss:.3f})" for t in result.collapsed)
        raise TrainingFailed(
            f"training of `{plan.name}` collapsed to chance on {names}; a tiny model whose embeddings are "
            "sparsified can do this: try sparsify_embeddings = false, a larger min_live, or more steps",
            result,
        )
    return model, tokenizer, result


def _record(plan: TrainPlan, trained) -> dict:
    model, _, result = trained
    metrics = {name: attrs.asdict(m) if attrs.has(type(m)) else vars(m) for name, m in result.final.items()}
    densities = measured_density(model)
    summary = ", ".join(f"{name} {m['accuracy']:.1%}" for name, m in metrics.items())
    if result.finished_early:
        summary += f" (stopped at step {result.steps_done} of {plan.train['steps']})"
    return {
        "summary": f"{plan.name}: {summary}",
        "plan": plan.describe(),
        "metrics": metrics,
        "curve": result.curve,
        "steps_done": result.steps_done,
        "finished_early": result.finished_early,
        "seconds": result.seconds,
        "tokens": result.tokens,
        "density": densities,
        "trained_at": time.time(),
    }


def ensure_means(trained: TrainedModel, cache: Cache, samples: int, seed: int) -> dict[str, torch.Tensor]:
    """Mean activations over the training mixture, cached beside the model's weights."""
    from runtime.ablation import mean_activations

    def compute() -> dict[str, torch.Tensor]:
        return mean_activations(trained.model, mixture_batches(trained, seed, max(1, -(-samples // 256))))

    return cached_beside_model(trained, cache, f"means-{samples}-{seed}.safetensors", compute)


def mixture_batches(trained: TrainedModel, seed: int, count: int) -> list:
    """The first ``count`` batches of 256 of ``trained``'s training mixture, drawn with ``seed``."""
    plan = trained.plan
    stream = data.training_batches(
        plan.tasks, plan.weights, batch_size=256, seed=seed, tokenizer=trained.tokenizer, context=plan.model["context"]
    )
    return [next(stream) for _ in range(count)]


def cached_beside_model(
    trained: TrainedModel, cache: Cache, name: str, compute: Callable[[], dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """Tensors derived from a trained model, kept as one more file of its cache entry (``name``)."""
    with cache.lock("models", trained.plan.key):
        entry = cache.read("models", trained.plan.key)
        if entry is not None and name in entry.files:
            return tensors_from_bytes(entry.files[name])
        tensors = compute()
        if entry is not None:
            cache.add_files(entry, {name: tensors_to_bytes(tensors)})
        return tensors
