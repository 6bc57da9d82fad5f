"""How much memory a model and its training would take, estimated before anything is allocated.

`circ check` refuses a model or a training run whose estimate exceeds
:data:`MEMORY_LIMIT`: trying it would end, minutes later, in an out-of-memory
kill or an "internal error" from PyTorch's allocator, after the rest of the
spec had been checked as fine. The estimate is float32 and deliberately
simple (a lower bound within a small factor): weights, their gradients and
Adam's two moments, plus one batch's activations kept for the backward pass.
"""

from __future__ import annotations

from circuitdsl.spec.checked import ModelSpec

#: The most a run may need. Past the largest machine circ targets (an H200 has 141 GB).
MEMORY_LIMIT = 64 * 2**30
_FLOAT = 4


def parameters(model: ModelSpec, vocab_size: int) -> int:
    """Weights of the model (embeddings, attention, MLP; norms and sinks are negligible)."""
    d, inner = model.d_model, model.heads * model.d_head
    per_layer = 4 * d * inner + 2 * d * model.d_mlp
    count = 2 * vocab_size * d + model.layers * per_layer
    if model.positional:
        count += model.context * d
    if model.bigram:
        count += vocab_size * vocab_size
    return count


def weights_bytes(model: ModelSpec, vocab_size: int) -> int:
    return parameters(model, vocab_size) * _FLOAT


def training_bytes(model: ModelSpec, vocab_size: int, batch: int) -> tuple[int, int]:
    """(optimizer state: weights, gradients, two Adam moments; one batch's saved activations)."""
    state = 4 * weights_bytes(model, vocab_size)
    d, inner, t = model.d_model, model.heads * model.d_head, model.context
    per_position = model.layers * (6 * d + 4 * inner + 3 * model.d_mlp) + 2 * vocab_size
    attention = model.layers * model.heads * t * t * 2  # scores and probabilities, per example
    activations = batch * (t * per_position + attention) * _FLOAT
    return state, activations


def gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"
