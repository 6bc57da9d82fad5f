"""Bridge plans -> trained bridges: fitted or reused from the cache, like models and circuits.

A bridge needs both of its models trained first (``build.models``); its own
cache entry holds the encoders' and decoders' weights and, in the record, the
NMSE and KL per boundary and the hybrid passes' accuracy. The control bridge
is the same recipe fitted to an untrained sparse model: a claim that holds
through it as well says nothing about what the sparse model learned.
"""

from __future__ import annotations

import time
from typing import Callable

import attrs

from runtime.bridge import Bridge, BridgeConfig, make_bridge, train_bridge
from runtime.checkpoint import tensors_from_bytes, tensors_to_bytes
from runtime.model import SparseGPT

from circuitdsl.build.models import TrainedModel
from circuitdsl.spec.plan import BridgePlan
from circuitdsl.store.cache import Cache
from circuitdsl.tasks import data

BRIDGE = "bridge.safetensors"
#: The bridge's data stream is its own: not training's, evaluation's or pruning's.
BRIDGE_SEED_OFFSET = 2_000_029


@attrs.frozen
class TrainedBridge:
    plan: BridgePlan
    bridge: Bridge
    #: Per boundary: ``nmse_encoder``, ``nmse_decoder``, both KLs, both hybrid accuracies.
    metrics: dict
    record: dict
    cached: bool


def ensure_bridge(
    plan: BridgePlan,
    dense: TrainedModel,
    sparse: SparseGPT,
    cache: Cache,
    *,
    progress: Callable[[int, int, dict], None] | None = None,
) -> TrainedBridge:
    """The bridge of ``plan`` between ``dense`` and ``sparse``: from the cache, or fitted now and cached."""
    with cache.lock("bridges", plan.key):
        entry = cache.read("bridges", plan.key, require=(BRIDGE,))
        if entry is not None:
            bridge = make_bridge(dense.model, sparse, plan.config["seed"])
            bridge.load_state_dict(tensors_from_bytes(entry.files[BRIDGE]))
            return TrainedBridge(plan, bridge.eval(), entry.record["metrics"], entry.record, cached=True)
        seed = plan.config["seed"] + BRIDGE_SEED_OFFSET
        context = min(plan.dense.model["context"], plan.sparse.model["context"])
        weights = tuple(1 / len(plan.tasks) for _ in plan.tasks)
        batches = data.training_batches(plan.tasks, weights, batch_size=plan.batch, seed=seed, tokenizer=dense.tokenizer, context=context)
        eval_set = data.eval_batch(plan.tasks, plan.eval_examples, seed=seed, tokenizer=dense.tokenizer, context=context)
        result = train_bridge(dense.model, sparse, batches, eval_set, BridgeConfig(**plan.config), progress=progress)
        record = {
            "summary": f"{plan.name}{' (control)' if plan.control_seed is not None else ''}: "
            f"mean NMSE {_mean(result.metrics, 'nmse_decoder'):.3f} (decoders), {_mean(result.metrics, 'nmse_encoder'):.3f} (encoders)",
            "metrics": result.metrics,
            "curve": result.curve,
            "seconds": result.seconds,
            "dense": plan.dense.key,
            "sparse": plan.sparse.key,
            "control_seed": plan.control_seed,
            "trained_at": time.time(),
        }
        state = {k: v.detach().contiguous() for k, v in result.bridge.state_dict().items()}
        written = cache.write("bridges", plan.key, {BRIDGE: tensors_to_bytes(state)}, record)
        return TrainedBridge(plan, result.bridge, result.metrics, written.record, cached=False)


def _mean(metrics: dict, key: str) -> float:
    values = [m[key] for m in metrics.values()]
    return sum(values) / len(values)
