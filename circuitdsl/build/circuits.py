"""Pruning plans -> circuits: prune or reuse from the cache, and the circuit's report.

Like :mod:`circuitdsl.build.models`, cached by the plan's content key under
the entry's lock. A failure of the ablation machinery itself (the runtime's
identity check) is a :class:`~circuitdsl.diagnostics.RunFailed`, not a crash.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable

import attrs

from runtime.checkpoint import tensors_to_bytes

from circuitdsl.build.models import TrainedModel, ensure_means, mixture_batches
from circuitdsl.diagnostics import RunFailed
from circuitdsl.spec.plan import PrunePlan
from circuitdsl.store.cache import Cache
from circuitdsl.tasks import data

CIRCUIT = "circuit.json"
SCORES = "scores.safetensors"


@attrs.frozen
class FoundCircuit:
    plan: PrunePlan
    #: ``runtime.circuit.Circuit`` of the chosen method.
    circuit: object
    #: Everything the prune found, JSON-ready: baseline, controls, trials, losses, times.
    report: dict
    cached: bool


def prune_config(plan: PrunePlan):
    from runtime.prune import PruneConfig

    # The plan's settings are PruneConfig's fields, plus the one the pipeline
    # uses itself (how many samples the cached means are taken over).
    return PruneConfig(**{k: v for k, v in plan.settings.items() if k != "mean_samples"})


def ensure_circuit(
    plan: PrunePlan,
    trained: TrainedModel,
    cache: Cache,
    *,
    progress: Callable[[str, int, int, dict], None] | None = None,
    reprune: bool = False,
) -> FoundCircuit:
    """The circuit of ``plan``: from the cache, or pruned now and cached."""
    from runtime.prune import IdentityCheckError, prune

    with cache.lock("circuits", plan.key):
        entry = None if reprune else cache.read("circuits", plan.key, require=(CIRCUIT,))
        if entry is not None:
            report = json.loads(entry.files[CIRCUIT])
            return FoundCircuit(plan, circuit_from_json(report["circuit"]), report, cached=True)
        settings = plan.settings
        means = ensure_means(trained, cache, settings["mean_samples"], seed=settings["seed"])
        config = prune_config(plan)
        context = trained.plan.model["context"]
        batch, _ = data.task_batch(
            plan.task, train_examples(config) + config.eval_examples, seed=settings["seed"] + PRUNE_SEED_OFFSET,
            tokenizer=trained.tokenizer, context=context,
        )
        mixture = mixture_batches(trained, settings["seed"] + PRUNE_SEED_OFFSET, 4)
        try:
            result = prune(trained.model, batch, means, config, mixture=mixture, progress=progress)
        except IdentityCheckError as err:
            raise RunFailed(f"pruning `{plan.name}` stopped: {err}", hint="this is the ablation machinery failing its own check; please report it") from None
        report = prune_report(plan, trained, result)
        files = {CIRCUIT: json.dumps(report, indent=2).encode("utf-8")}
        if result.mask_scores is not None:
            files[SCORES] = tensors_to_bytes({f"mask/{k}": v for k, v in result.mask_scores.items()})
        cache.write("circuits", plan.key, files, {"summary": _circuit_summary(plan, result), "model": trained.plan.key})
        return FoundCircuit(plan, result.circuit, report, cached=False)


def train_examples(config) -> int:
    """Rows masks are trained on: at least 2048, so small per-trial batches still see varied rows."""
    return max(config.batch * 8, 2048)


#: Pruning draws its examples from a stream apart from training's and evaluation's.
PRUNE_SEED_OFFSET = 1_000_003


def _circuit_summary(plan: PrunePlan, result) -> str:
    c = result.circuit
    return f"{plan.name} ({plan.task.name}): {len(c.nodes)} nodes, {len(c.edges)} edges, loss {c.loss:.3f}"


def prune_report(plan: PrunePlan, trained: TrainedModel, result) -> dict:
    controls = result.controls
    return {
        "prune": plan.name,
        "task": plan.task.name,
        "key": plan.key,
        "model_key": trained.plan.key,
        "settings": plan.settings,
        "circuit": result.circuit.to_json(),
        "baseline": result.baseline.to_json() if result.baseline is not None else None,
        "size_ratio": result.size_ratio,
        "full_loss": result.full_loss,
        "empty_loss": result.empty_loss,
        "best": dataclasses.asdict(result.best) if result.best is not None else None,
        "trials": [dataclasses.asdict(t) for t in result.trials],
        "controls": dataclasses.asdict(controls) if controls is not None else None,
        "cleanup": list(result.cleanup),
        "seconds": result.seconds,
    }


def circuit_from_json(data: dict):
    """The inverse of ``Circuit.to_json`` for the fields a Circuit holds (the rest is derived)."""
    from runtime.circuit import Circuit, Edge

    return Circuit(
        nodes=tuple(data["nodes"]),
        edges=tuple(Edge(e["src"], e["dst"], e["weight"], e["kind"]) for e in data["edges"]),
        total_nodes=data["total_nodes"],
        n_layer=len(data["per_layer"]),
        method=data["method"],
        ablation=data["ablation"],
        target=data["target"],
        loss=data["loss"],
        accuracy=data["accuracy"],
        calibrated_loss=data["calibrated_loss"],
        scale=data["logit_scale"],
        # Reports from before the loss and norm options were all full-vocabulary CE under live norms.
        loss_kind=data.get("loss_kind", "ce"),
        norm=data.get("norm", "live"),
    )
