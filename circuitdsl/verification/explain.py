"""The explorer's data for a circuit: fresh held-out prompts of its task and of the training mixture,
and what each node does on them (``runtime.explain``), as plain data for reports.

Both prompt sets are drawn from the evaluation side of the split with seeds
named by the run's seed, so the same model, circuit and seed give the same
data, and no prompt the model was trained on is shown as evidence.
"""

from __future__ import annotations

import json
from typing import Sequence

from circuitdsl.build.circuits import FoundCircuit
from circuitdsl.build.models import TrainedModel
from circuitdsl.spec.checked import TaskSpec
from circuitdsl.store.cache import Cache
from circuitdsl.tasks import data

#: Bump when the data :func:`explain_circuit` returns changes shape or meaning.
EXPLORER_VERSION = 1
#: Prompts per source: enough for a latent value seen one time in ten to have ~25 examples,
#: and two forward passes of this many rows take well under a second on a CPU.
SAMPLES = 256


def explain_circuit(
    trained: TrainedModel,
    found: FoundCircuit,
    task: TaskSpec,
    *,
    seed: int,
    top_k: int = 5,
    samples: int = SAMPLES,
    nodes: Sequence[str] | None = None,
) -> dict:
    """``{"version", "task", "top_k", "samples", "position", "nodes": {node: ...}}`` for ``nodes``
    (default: every node of the circuit)."""
    import torch

    from runtime.explain import Source, explain

    plan, tokenizer, context = trained.plan, trained.tokenizer, trained.plan.model["context"]
    task_batch, task_examples = data.task_batch(
        task, samples, seed=f"explain:{seed}", tokenizer=tokenizer, context=context, side="eval"
    )
    mixture = data.MixtureBatches(
        plan.tasks, plan.weights, batch_size=samples, seed=f"explain:{seed}", tokenizer=tokenizer, context=context, side="eval"
    )
    mix_examples = mixture.examples(0)
    mix_batch = data.encode_examples(mix_examples, tokenizer, mixture.task_names, context=context, tasks=mixture.tasks)
    sources = {
        "task": Source(task_batch, [e.task for e in task_examples], [e.latents for e in task_examples]),
        "mixture": Source(mix_batch, [e.task for e in mix_examples]),
    }
    circuit = found.circuit
    edges = [(e.src, e.dst, e.weight, e.kind) for e in circuit.edges]
    model = trained.model
    with torch.no_grad():
        per_node = explain(model, tokenizer, list(nodes if nodes is not None else circuit.nodes), edges, sources, top_k=top_k)
    return {
        "version": EXPLORER_VERSION,
        "task": task.name,
        "top_k": top_k,
        "samples": {"task": len(task_examples), "mixture": len(mix_examples)},
        "mixture": dict(zip(mixture.task_names, mixture.weights)),
        "position": "answer",
        "model": {k: model.config.__dict__[k] for k in ("n_layer", "d_model", "n_head", "d_head", "d_mlp")},
        "nodes": per_node,
    }


def ensure_explorer(
    trained: TrainedModel, found: FoundCircuit, task: TaskSpec, cache: Cache, *, seed: int, top_k: int = 5
) -> dict:
    """:func:`explain_circuit` for every node, kept as one more file of the circuit's cache entry.

    The data is a function of the model, the circuit (whose key names its task),
    the seed, ``top_k`` and this module's version, which the file's name and the
    entry's key hold, so a warm run reads it instead of two forward passes and
    the per-node statistics.
    """
    name = f"explorer-v{EXPLORER_VERSION}-seed{seed}-top{top_k}-n{SAMPLES}.json"
    with cache.lock("circuits", found.plan.key):
        entry = cache.read("circuits", found.plan.key)
        if entry is not None and name in entry.files:
            return json.loads(entry.files[name])
        # Through JSON either way, so a first run and a warm one hand reports the same data
        # (lists, not tuples; string keys), in the same order.
        text = json.dumps(explain_circuit(trained, found, task, seed=seed, top_k=top_k))
        if entry is not None:
            cache.add_files(entry, {name: text.encode("utf-8")})
        return json.loads(text)
