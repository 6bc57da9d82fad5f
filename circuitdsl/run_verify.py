"""`circ verify` end to end: for each hypothesis, model -> circuit -> every claim decided.

The stages, in order::

    plan_training / plan_pruning      what would run, and its cache keys
    ensure_model                      trained weights (cached)
    ensure_circuit                    the pruned circuit (cached)
    verify_hypothesis                 each claim measured on fresh samples,
                                      on the trained model and on an untrained control
    aggregate over seeds              a claim holds if it held on enough seeds

and the result is one ``HypothesisRun`` per hypothesis and seed, which
``report`` renders as tables, JSON or HTML.
"""

from __future__ import annotations

import hashlib
import time
from typing import Callable, Sequence

import attrs
import torch

from . import __version__
from .cache import Cache
from .pipeline import FoundCircuit, TrainedModel, cached_beside_model, ensure_circuit, ensure_means, ensure_model, mixture_batches
from .plan import plan_pruning, plan_training
from .program import HypothesisSpec, Program
from .verify import VerifyContext, Verdict, verify_hypothesis

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


@attrs.frozen
class SeedRun:
    seed: int
    trained: TrainedModel
    found: FoundCircuit
    verdicts: tuple[Verdict, ...]
    seconds: dict


@attrs.frozen
class ClaimResult:
    """One claim over all seeds: the first seed's measurement, and how many seeds it held on."""

    verdict: Verdict
    held: int
    seeds: int
    status: str
    vacuous: bool


@attrs.frozen
class HypothesisRun:
    hypothesis: HypothesisSpec
    runs: tuple[SeedRun, ...]
    claims: tuple[ClaimResult, ...]

    @property
    def refuted(self) -> bool:
        return any(c.status == FAIL for c in self.claims)

    def shaky(self) -> bool:
        """Inconclusive or vacuous claims: failures only under ``--strict``."""
        return any(c.status == INCONCLUSIVE or c.vacuous for c in self.claims)


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


def verify_program(
    program: Program,
    hypotheses: Sequence[str],
    cache: Cache,
    *,
    device: torch.device,
    seeds: int = 1,
    train_progress: Callable | None = None,
    prune_progress: Callable | None = None,
    claim_progress: Callable | None = None,
) -> list[HypothesisRun]:
    out = []
    for name in hypotheses:
        hyp = program.hypotheses[name]
        spec = hyp.prune
        runs = []
        for offset in range(seeds):
            seed = spec.train.seed + offset
            clock = {"start": time.perf_counter()}
            training = plan_training(program.tasks, program.vocab, spec.train, seed=seed)
            trained = ensure_model(training, cache, device=device, progress=train_progress)
            trained.model.to("cpu")
            clock["train"] = time.perf_counter()
            found = ensure_circuit(plan_pruning(program.tasks, program.vocab, spec, training), trained, cache, progress=prune_progress)
            clock["prune"] = time.perf_counter()
            means = ensure_means(trained, cache, spec.mean_samples, seed=spec.seed)
            control = untrained_control(trained, seed)
            context = VerifyContext(
                model=trained.model.to(device),
                control_model=control.to(device),
                control_means=control_means(control, trained, cache, seed),
                tokenizer=trained.tokenizer,
                task=program.tasks[spec.task],
                circuit_nodes=tuple(found.circuit.nodes),
                circuit_edges=tuple((e.src, e.dst, e.weight) for e in found.circuit.edges),
                means=means,
                default_ablation=spec.ablation,
                context=training.model["context"],
                device=device,
                seed=seed,
            )
            verdicts = tuple(verify_hypothesis(hyp, context, progress=claim_progress))
            clock["verify"] = time.perf_counter()
            seconds = {
                "train": clock["train"] - clock["start"],
                "prune": clock["prune"] - clock["train"],
                "verify": clock["verify"] - clock["prune"],
            }
            runs.append(SeedRun(seed, trained, found, verdicts, seconds))
        out.append(HypothesisRun(hyp, tuple(runs), aggregate(runs, hyp.seed_share)))
    return out


def aggregate(runs: Sequence[SeedRun], share: float) -> tuple[ClaimResult, ...]:
    """Per claim: PASS when it passed on at least ``share`` of the seeds, FAIL when it
    failed on more than the rest allow, INCONCLUSIVE otherwise."""
    results = []
    for i, verdict in enumerate(runs[0].verdicts):
        statuses = [run.verdicts[i].status for run in runs]
        held = statuses.count(PASS)
        needed = max(1, -(-int(round(share * len(runs) * 1000)) // 1000))  # ceil, without float fuzz
        if held >= needed:
            status = PASS
        elif statuses.count(FAIL) > len(runs) - needed:
            status = FAIL
        else:
            status = INCONCLUSIVE
        vacuous = any(run.verdicts[i].vacuous for run in runs)
        results.append(ClaimResult(verdict, held, len(runs), status, vacuous))
    return tuple(results)


def run_record(program: Program, run: HypothesisRun) -> dict:
    """What a verdict needs to be reproduced: hashes of the spec, the weights and the seeds."""
    sources = {path: hashlib.sha256(text.encode("utf-8")).hexdigest() for path, text in sorted(program.sources.items())}
    return {
        "circuitdsl_version": __version__,
        "torch_version": torch.__version__,
        "spec_sha256": sources,
        "seeds": [
            {
                "seed": r.seed,
                "model_key": r.trained.plan.key,
                "weights_sha256": r.trained.record.get("files", {}).get("weights.safetensors"),
                "circuit_key": r.found.plan.key,
                "seconds": r.seconds,
                "model_cached": r.trained.cached,
                "circuit_cached": r.found.cached,
            }
            for r in run.runs
        ],
    }
