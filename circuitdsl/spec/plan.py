"""Checked specs -> plans: the plain settings the runtime is called with, and their cache keys.

A plan is the last stage that knows the language. It holds no tensors and
imports no torch, so ``circ check``-speed code can compute what a run would
do (and which cache entry it would reuse) without starting the runtime.
"""

from __future__ import annotations

import attrs

from circuitdsl import __version__
from circuitdsl.store.cache import content_key
from circuitdsl.spec.checked import BridgeSpec, ModelSpec, PruneSpec, TaskSpec, TrainSpec, VocabSpec
from circuitdsl.spec.serialize import to_data

#: Bump when training code changes which weights a spec yields, so old cache entries miss.
TRAINING_CODE_VERSION = 3
#: Likewise for pruning.
PRUNING_CODE_VERSION = 3


@attrs.frozen
class TrainPlan:
    name: str
    #: Keyword arguments of ``runtime.model.ModelConfig``, except ``vocab_size``.
    model: dict
    #: Keyword arguments of ``runtime.train.TrainConfig``.
    train: dict
    tasks: tuple[TaskSpec, ...]
    weights: tuple[float, ...]
    vocab: VocabSpec
    batch: int
    seed: int
    eval_examples: int
    key: str

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def describe(self) -> dict:
        """What the record of a model trained from this plan says about its origin."""
        return {
            "train": self.name,
            "model": self.model,
            "train_config": self.train,
            "mixture": dict(zip(self.task_names, self.weights)),
            "batch": self.batch,
            "seed": self.seed,
            "eval_examples": self.eval_examples,
            "vocab": to_data(self.vocab),
            "tasks": {t.name: to_data(t) for t in self.tasks},
            "circuitdsl_version": __version__,
        }


def model_kwargs(spec: ModelSpec) -> dict:
    return {
        "n_layer": spec.layers,
        "d_model": spec.d_model,
        "n_head": spec.heads,
        "d_head": spec.d_head,
        "d_mlp": spec.d_mlp,
        "context": spec.context,
        "density": spec.density,
        "act_topk": spec.act_topk,
        "sinks": spec.sinks,
        "positional": spec.positional,
        "bigram": spec.bigram,
        "sparsify_embeddings": spec.sparsify_embeddings,
        "min_live_per_row": spec.min_live,
    }


def plan_training(tasks: dict[str, TaskSpec], vocab: VocabSpec, spec: TrainSpec, *, steps: int | None = None, seed: int | None = None) -> TrainPlan:
    """The plan for one ``train`` block; ``steps``/``seed`` override the spec's (``--seeds``, tests).

    The model tokenizes with the train block's own vocab (what its file sees), and ``vocab``
    (the program's) only when the block carries none: a vocab extended in an importing file
    leaves the key of a model trained in the shared file as it was.
    """
    vocab = spec.vocab if spec.vocab is not None else vocab
    train = {
        "steps": steps if steps is not None else spec.steps,
        "lr": spec.lr,
        "warmup": spec.warmup,
        "anneal": tuple(spec.anneal),
        "grad_clip": spec.grad_clip,
        "weight_decay": spec.weight_decay,
        "betas": (spec.beta1, spec.beta2),
        "eps": spec.eps,
        "loss_on": spec.loss_on,
        "eval_every": spec.eval_every,
    }
    # The rule's settings are part of the key only when there is a rule, so the keys of
    # models trained without one stay as they were: only then do evaluations decide anything.
    identity_train = {k: v for k, v in train.items() if k != "eval_every"}
    if spec.stop is not None:
        train |= {"stop_accuracy": spec.stop, "cooldown": round(spec.cooldown * spec.steps)}
        identity_train = train
    chosen = tuple(tasks[name] for name, _ in spec.mixture)
    weights = tuple(w for _, w in spec.mixture)
    seed = spec.seed if seed is None else seed
    model = model_kwargs(spec.model)
    identity = {
        "code": TRAINING_CODE_VERSION,
        "model": model,
        "train": identity_train,
        "mixture": [[t.name, w] for t, w in zip(chosen, weights)],
        "tasks": [to_data(t) for t in chosen],
        "vocab": to_data(vocab),
        "batch": spec.batch,
        "seed": seed,
        "eval_examples": spec.eval_examples,
    }
    return TrainPlan(
        name=spec.name,
        model=model,
        train=train,
        tasks=chosen,
        weights=weights,
        vocab=vocab,
        batch=spec.batch,
        seed=seed,
        eval_examples=spec.eval_examples,
        key=content_key(identity),
    )


@attrs.frozen
class PrunePlan:
    name: str
    training: TrainPlan
    task: TaskSpec
    #: Keyword arguments of the runtime's prune config.
    settings: dict
    key: str


def plan_pruning(tasks: dict[str, TaskSpec], vocab: VocabSpec, spec: PruneSpec, training: TrainPlan) -> PrunePlan:
    settings = {
        "target": spec.target,
        "ablation": spec.ablation,
        "loss": spec.loss,
        "norm": spec.norm,
        "method": spec.method,
        "baseline": spec.baseline,
        "trials": spec.trials,
        "steps": spec.steps,
        "batch": spec.batch,
        "mean_samples": spec.mean_samples,
        "seed": spec.seed,
        "controls": spec.controls,
    }
    task = tasks[spec.task]
    key = content_key({"code": PRUNING_CODE_VERSION, "model": training.key, "task": to_data(task), "settings": settings})
    return PrunePlan(name=spec.name, training=training, task=task, settings=settings, key=key)


#: Likewise for bridges.
BRIDGE_CODE_VERSION = 2


@attrs.frozen
class BridgePlan:
    name: str
    dense: TrainPlan
    sparse: TrainPlan
    #: Keyword arguments of ``runtime.bridge.BridgeConfig``.
    config: dict
    #: The tasks both models are trained on: the bridge is fitted on their mixture.
    tasks: tuple[TaskSpec, ...]
    batch: int
    eval_examples: int
    #: A control bridge is fitted to an untrained sparse model of the same shape (seeded so).
    control_seed: int | None
    key: str


def plan_bridge(spec: BridgeSpec, dense: TrainPlan, sparse: TrainPlan, *, control_seed: int | None = None) -> BridgePlan:
    """The plan for one ``bridge`` block, or with ``control_seed`` for its untrained-model control."""
    config = {"steps": spec.steps, "lr": spec.lr, "nmse": spec.nmse, "kl": spec.kl, "seed": spec.seed}
    shared = tuple(t for t in sparse.tasks if t.name in dense.task_names)
    identity = {
        "code": BRIDGE_CODE_VERSION,
        "dense": dense.key,
        "sparse": sparse.key,
        "config": config,
        "tasks": [t.name for t in shared],
        "batch": spec.batch,
        "eval_examples": spec.eval_examples,
        "control_seed": control_seed,
    }
    return BridgePlan(
        name=spec.name, dense=dense, sparse=sparse, config=config, tasks=shared, batch=spec.batch,
        eval_examples=spec.eval_examples, control_seed=control_seed, key=content_key(identity),
    )
