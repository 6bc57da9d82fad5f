"""A hypothesis verified end to end, over seeds: model -> circuit -> every claim decided -> results.

    plan_training / plan_pruning      what would run, and its cache keys
    ensure_model                      trained weights (cached)
    ensure_circuit                    the pruned circuit (cached)
    verify_hypothesis                 each claim measured on fresh samples,
                                      on the trained model and on an untrained control
    aggregate over seeds              a claim holds if it held on enough seeds

What comes out is a :class:`~circuitdsl.verification.results.HypothesisResult`:
plain data, keyed by claim id, that reports render without torch.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import torch

from circuitdsl import __version__
from circuitdsl.store.cache import Cache
from circuitdsl.build.circuits import FoundCircuit, ensure_circuit
from circuitdsl.build.models import TrainedModel, cached_beside_model, ensure_means, ensure_model, mixture_batches
from circuitdsl.spec.plan import plan_pruning, plan_training
from circuitdsl.spec.checked import HypothesisSpec, CheckedSpec
from circuitdsl.store.files import atomic_write_text
from circuitdsl.verification.arm import VerifyContext
from circuitdsl.verification.cached import read_verdicts, verdicts_key, write_verdicts
from circuitdsl.verification.engine import verify_hypothesis
from circuitdsl.verification.explain import ensure_explorer
from circuitdsl.verification.results import HypothesisResult, aggregate


def untrained_control(trained: TrainedModel, seed: int):
    """The control model: the same architecture and density, never trained.

    A claim that also holds here says nothing about what training built.
    """
    from runtime.model import SparseGPT
    from runtime.sparsity import project_topk_, sparsified_parameters

    config = trained.model.config
    control = SparseGPT(config, seed=seed + 7919)
    project_topk_(sparsified_parameters(control), config.density, config.min_live_per_row)
    return control.eval()


#: Names the cached control means; bump when untrained_control builds a different model.
CONTROL_VERSION = 1


def control_means(control, trained: TrainedModel, cache: Cache, seed: int) -> dict[str, torch.Tensor]:
    """The control's mean activations over the training mixture, cached beside the trained model."""
    from runtime.ablation import mean_activations

    def compute() -> dict[str, torch.Tensor]:
        return mean_activations(control, mixture_batches(trained, seed + 17, 4))

    return cached_beside_model(trained, cache, f"control-means-v{CONTROL_VERSION}-{seed}.safetensors", compute)


def verify_hypothesis_over_seeds(
    spec: CheckedSpec,
    hyp: HypothesisSpec,
    cache: Cache,
    *,
    device: torch.device,
    seeds: int = 1,
    out: Path | None = None,
    train_progress: Callable | None = None,
    prune_progress: Callable | None = None,
    claim_progress: Callable | None = None,
    bridge_progress: Callable | None = None,
    explain: bool = True,
    remeasure: bool = False,
) -> HypothesisResult:
    """Train, prune and verify ``hyp`` on ``seeds`` training seeds; write its circuit files to ``out``.

    ``explain``: also gather the circuit explorer's data (first seed), which only
    the HTML report and the JSON document show; no verdict depends on it.
    ``remeasure``: measure every claim even when the cache holds this seed's verdicts.
    """
    prune = hyp.prune
    per_seed, seed_values, records, first, first_bridges, explorer = [], [], [], None, None, {}
    for offset in range(seeds):
        seed = prune.train.seed + offset
        clock = {"start": time.perf_counter()}
        training = plan_training(spec.tasks, spec.vocab, prune.train, seed=seed)
        trained = ensure_model(training, cache, device=device, progress=train_progress)
        trained.model.to("cpu")
        clock["train"] = time.perf_counter()
        found = ensure_circuit(plan_pruning(spec.tasks, spec.vocab, prune, training), trained, cache, progress=prune_progress)
        clock["prune"] = time.perf_counter()
        means = ensure_means(trained, cache, prune.mean_samples, seed=prune.seed)
        control = untrained_control(trained, seed)
        bridges, bridge_reports = _bridges(
            spec, hyp, training, trained, control, cache, offset, device, train_progress, bridge_progress
        )
        context = VerifyContext(
            model=trained.model.to(device),
            control_model=control.to(device),
            control_means=control_means(control, trained, cache, seed),
            tokenizer=trained.tokenizer,
            task=spec.tasks[prune.task],
            circuit_nodes=tuple(found.circuit.nodes),
            circuit_edges=tuple((e.src, e.dst, e.weight) for e in found.circuit.edges),
            means=means,
            default_ablation=prune.ablation,
            context=training.model["context"],
            device=device,
            seed=seed,
            bridges=bridges,
        )
        key = verdicts_key(
            spec, hyp, model_key=trained.plan.key, circuit_key=found.plan.key, seed=seed, device=device.type,
            bridge_keys={name: [r["key"], r["control_key"]] for name, r in bridge_reports.items()},
            torch_version=torch.__version__,
        )
        verdicts = None if remeasure else read_verdicts(cache, key)
        verdicts_cached = verdicts is not None
        if verdicts is None:
            label = f"{hyp.name} on {prune.name}, seed {seed}"
            verdicts = write_verdicts(cache, key, verify_hypothesis(hyp, context, progress=claim_progress), label)
        per_seed.append(verdicts)
        if offset == 0 and explain:
            explorer = ensure_explorer(trained, found, spec.tasks[prune.task], cache, seed=seed)
        clock["verify"] = time.perf_counter()
        seconds = {
            "train": clock["train"] - clock["start"],
            "prune": clock["prune"] - clock["train"],
            "verify": clock["verify"] - clock["prune"],
        }
        seed_values.append(seed)
        records.append(_seed_record(seed, trained, found, seconds, verdicts_cached))
        first = first or found
        first_bridges = first_bridges if first_bridges is not None else bridge_reports
    claims = aggregate(per_seed, seed_values, hyp.seed_share)
    labels = role_labels(claims)
    picture = None
    if out is not None:
        folder = out / prune.name
        write_circuit_files(first, folder, labels)
        picture = str(folder / "circuit.svg")
    return HypothesisResult(
        name=hyp.name,
        prune=prune.name,
        task=prune.task,
        claims=claims,
        circuit=first.report["circuit"],
        controls=first.report.get("controls"),
        record=run_record(spec, records),
        picture=picture,
        picture_svg=first.circuit.to_svg(labels),
        bridges=first_bridges or {},
        explorer=explorer,
    )


def _bridges(spec, hyp, training, trained, control, cache, offset, device, train_progress, progress):
    """The dense models and bridges the hypothesis's claims go through, for the trained and the control arm."""
    if not hyp.bridges:
        return {}, {}
    from circuitdsl.build.bridges import ensure_bridge
    from circuitdsl.spec.plan import plan_bridge
    from circuitdsl.verification.arm import BridgeSides

    sides, reports = {}, {}
    for name, bridge in hyp.bridges.items():
        dense_plan = plan_training(spec.tasks, spec.vocab, bridge.dense, seed=bridge.dense.seed + offset)
        dense = ensure_model(dense_plan, cache, device=device, progress=train_progress)
        dense.model.to("cpu")
        fitted = ensure_bridge(plan_bridge(bridge, dense_plan, training), dense, trained.model.to("cpu"), cache, progress=progress)
        against_control = ensure_bridge(
            plan_bridge(bridge, dense_plan, training, control_seed=training.seed), dense, control.to("cpu"), cache, progress=progress
        )
        sides[name] = BridgeSides(dense.model.to(device), fitted.bridge.to(device), against_control.bridge.to(device))
        reports[name] = {
            "dense_model_key": dense_plan.key,
            "dense_metrics": dense.record.get("metrics"),
            "key": fitted.plan.key,
            "cached": fitted.cached,
            "seconds": fitted.record.get("seconds"),
            "metrics": fitted.metrics,
            "control_key": against_control.plan.key,
            "control_metrics": against_control.metrics,
        }
    return sides, reports


def role_labels(claims) -> dict[str, str]:
    """Node -> the roles it is bound to, for the circuit's picture."""
    labels: dict[str, str] = {}
    for claim in claims:
        evidence = claim.verdict.evidence or {}
        if claim.verdict.kind == "role" and evidence.get("role"):
            for node in evidence.get("nodes") or []:
                labels[node] = f"{labels[node]}, {evidence['role']}" if node in labels else evidence["role"]
    return labels


def write_circuit_files(found: FoundCircuit, folder: Path, roles: dict | None = None) -> None:
    atomic_write_text(folder / "circuit.json", json.dumps(dict(found.report, roles=roles or {}), indent=2) + "\n")
    atomic_write_text(folder / "circuit.dot", found.circuit.to_dot(roles))
    atomic_write_text(folder / "circuit.svg", found.circuit.to_svg(roles))


def _seed_record(seed: int, trained: TrainedModel, found: FoundCircuit, seconds: dict, verdicts_cached: bool) -> dict:
    return {
        "seed": seed,
        "model_key": trained.plan.key,
        "weights_sha256": trained.record.get("files", {}).get("weights.safetensors"),
        "circuit_key": found.plan.key,
        "seconds": seconds,
        "model_cached": trained.cached,
        "circuit_cached": found.cached,
        "verdicts_cached": verdicts_cached,
    }


def run_record(spec: CheckedSpec, seeds: list[dict]) -> dict:
    """What a verdict needs to be reproduced: hashes of the spec, the weights and the seeds."""
    sources = {path: hashlib.sha256(text.encode("utf-8")).hexdigest() for path, text in sorted(spec.sources.items())}
    return {
        "circuitdsl_version": __version__,
        "torch_version": torch.__version__,
        "spec_sha256": sources,
        "seeds": seeds,
    }
