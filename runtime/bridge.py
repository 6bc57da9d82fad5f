"""Bridges: a dense model explained through a weight-sparse one (Gao et al. 2025, "bridges").

Both models read the same tokens and have the same number of layers. At every
sublayer boundary ``i`` (the residual stream before each attention, before
each MLP, and after the last block: ``2 * n_layer + 1`` of them) a bridge has

    an encoder  dense -> sparse   Linear + AbsTopK (the sparse stream is sparse too)
    a decoder   sparse -> dense   Linear

trained with both models frozen, on

    nmse   normalized MSE of each map against the other model's stream
    kl     KL(dense || hybrid) of two hybrid passes per boundary: the dense model
           up to ``i`` then the sparse model from ``i`` through the encoder, and the
           sparse model up to ``i`` then the dense model through the decoder.

An edit of sparse-model channels then reaches the dense model through the
decoder: with ``s = enc(h)`` the dense stream at ``i``, setting channels of
``s`` to values gives ``s'``, and the dense model runs on from
``h + dec(s') - dec(s)``. Read top to bottom: boundaries and streams, the
bridge, its losses, training, measurement, edits.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .batch import Batch
from .model import SparseGPT, abs_topk
from .nodes import parse_node

# ---------------------------------------------------------------- boundaries and streams


def boundary_names(n_layer: int) -> list[str]:
    """``0.attn``, ``0.mlp``, ..., ``final``: the stream *before* each sublayer, then the last."""
    return [f"{layer}.{part}" for layer in range(n_layer) for part in ("attn", "mlp")] + ["final"]


def node_boundary(node: str) -> tuple[int, int]:
    """(boundary index, channel) of a residual-stream node; other nodes have no place in a stream.

    ``L.attn.resid_in[c]`` reads the stream before attention L; ``L.attn.resid_delta[c]``
    is what attention writes, so it lives in the stream after it (before the MLP).
    """
    ref = parse_node(node)
    offsets = {"attn.resid_in": 0, "attn.resid_delta": 1, "mlp.resid_in": 1, "mlp.resid_delta": 2}
    if ref.kind not in offsets:
        raise ValueError(f"{node} is not a residual-stream channel: only those can cross a bridge")
    return 2 * ref.layer + offsets[ref.kind], ref.index


Edit = Callable[[Tensor], Tensor]


def run(model: SparseGPT, tokens: Tensor, edits: Mapping[int, Edit] | None = None, *, start: int = 0,
        stream: Tensor | None = None, answer_pos: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
    """Logits (B, T, V) and every boundary's stream (B, T, C) of a forward pass.

    ``edits[i]`` replaces the stream at boundary ``i`` before the model reads on;
    ``start``/``stream`` begin the pass at boundary ``start`` from a given stream
    (a hybrid pass). Streams before ``start`` are not in the list. With
    ``answer_pos`` (B,) the logits are only those positions' (B, V).
    """
    edits = edits or {}
    if stream is None:
        x = model.wte(tokens)
        if model.wpe is not None:
            x = x + model.wpe.weight[: tokens.size(1)]
    else:
        x = stream
    streams: list[Tensor] = []
    index = start
    parts = [(block, part) for block in model.blocks for part in ("attn", "mlp")]
    for block, part in parts[start:]:
        if index in edits:
            x = edits[index](x)
        streams.append(x)
        x = x + (block.attn(block.ln_1(x)) if part == "attn" else block.mlp(block.ln_2(x)))
        index += 1
    if index in edits:
        x = edits[index](x)
    streams.append(x)
    if answer_pos is not None:
        rows = torch.arange(x.size(0), device=x.device)
        x, tokens = x[rows, answer_pos], tokens[rows, answer_pos]
    logits = model.lm_head(model.ln_f(x))
    if model.bigram is not None:
        logits = logits + model.bigram[tokens]
    return logits, streams


# ---------------------------------------------------------------- the bridge


class Bridge(nn.Module):
    def __init__(self, d_dense: int, d_sparse: int, boundaries: int, k: int, seed: int = 0):
        super().__init__()
        self.encoders = nn.ModuleList(nn.Linear(d_dense, d_sparse) for _ in range(boundaries))
        self.decoders = nn.ModuleList(nn.Linear(d_sparse, d_dense) for _ in range(boundaries))
        # Per boundary: how many channels the encoder's AbsTopK keeps. A buffer, so a
        # cached bridge brings back the k it was fitted with (``fit_least_squares`` sets it).
        self.register_buffer("ks", torch.full((boundaries,), k, dtype=torch.long))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in list(self.encoders) + list(self.decoders):
                bound = 1 / math.sqrt(layer.in_features)
                layer.weight.copy_((torch.rand(layer.weight.shape, generator=gen) * 2 - 1) * bound)
                layer.bias.zero_()

    def encode(self, i: int, h: Tensor) -> Tensor:
        return abs_topk(self.encoders[i](h), int(self.ks[i]))

    def decode(self, i: int, s: Tensor) -> Tensor:
        return self.decoders[i](s)


def make_bridge(dense: SparseGPT, sparse: SparseGPT, seed: int = 0) -> Bridge:
    if dense.config.n_layer != sparse.config.n_layer:
        raise ValueError("a bridge joins models with the same number of layers")
    k = max(1, round(sparse.config.act_topk * sparse.config.d_model))
    return Bridge(dense.config.d_model, sparse.config.d_model, 2 * dense.config.n_layer + 1, k, seed)


#: Ridge of the least-squares start, relative to the inputs' mean square: enough
#: to keep a dead channel's row finite, far too small to bias a live one.
RIDGE = 1e-6


@torch.no_grad()
def fit_least_squares(bridge: Bridge, dense: SparseGPT, sparse: SparseGPT, batches: list[Batch]) -> None:
    """Start every map at its least-squares fit on the streams of ``batches``, and set each k.

    Both streams are tiny (RMS 0.02-0.3 on the shipped models) and of different
    sizes per boundary, so from a random start Adam spends hundreds of steps
    just reaching the right scale: the maps it left were poor (NMSE 0.4-0.9).
    The best linear map is a closed form away. Sums are taken batch by batch in
    float64 and the maps cast to float32, which leaves the fit the same whatever
    the thread count (tests/runtime/test_bridge.py holds it to that).

    The encoder's k is the sparse model's own: the rounded mean number of
    nonzero channels of its stream at that boundary (its residual stream is
    only read through AbsTopK, so it is nearly dense; a smaller k discards
    what the sparse model carries forward).
    """
    n = len(bridge.encoders)
    d_d, d_s = bridge.encoders[0].in_features, bridge.encoders[0].out_features
    gram_d = torch.zeros(n, d_d + 1, d_d + 1, dtype=torch.float64)
    gram_s = torch.zeros(n, d_s + 1, d_s + 1, dtype=torch.float64)
    cross = torch.zeros(n, d_d + 1, d_s + 1, dtype=torch.float64)
    nonzero = torch.zeros(n, dtype=torch.float64)
    count = 0
    for batch in batches:
        mask = batch.attention_mask.bool()
        _, dense_streams = run(dense, batch.tokens)
        _, sparse_streams = run(sparse, batch.tokens)
        for i, (h_d, h_s) in enumerate(zip(dense_streams, sparse_streams)):
            x, y = _with_ones(h_d[mask]), _with_ones(h_s[mask])
            gram_d[i] += x.T @ x
            gram_s[i] += y.T @ y
            cross[i] += x.T @ y
            nonzero[i] += (h_s[mask] != 0).sum(-1).double().sum()
        count += int(mask.sum())
    for i in range(n):
        encoder = _solve(gram_d[i], cross[i])  # (d_d + 1, d_s + 1): last row the bias
        decoder = _solve(gram_s[i], cross[i].T)
        bridge.encoders[i].weight.copy_(encoder[:-1, :-1].T)
        bridge.encoders[i].bias.copy_(encoder[-1, :-1])
        bridge.decoders[i].weight.copy_(decoder[:-1, :-1].T)
        bridge.decoders[i].bias.copy_(decoder[-1, :-1])
        bridge.ks[i] = int(min(d_s, max(1, round(float(nonzero[i]) / max(count, 1)))))


def _with_ones(x: Tensor) -> Tensor:
    x = x.double()
    return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)


def _solve(gram: Tensor, cross: Tensor) -> Tensor:
    """argmin_W |XW - Y|^2 + ridge |W|^2 from X'X and X'Y (the ones column, the bias, unpenalised)."""
    d = gram.shape[0] - 1
    penalty = torch.zeros_like(gram)
    penalty.diagonal()[:d] = RIDGE * float(gram.diagonal()[:d].mean()) + 1e-30
    return torch.linalg.solve(gram + penalty, cross)


# ---------------------------------------------------------------- losses


def _nmse(pred: Tensor, target: Tensor, mask: Tensor, parts: bool = False) -> Tensor:
    """Mean squared error over real positions, relative to the target's mean square.

    With ``parts``, the two sums (error, scale) stacked, to be added up over pieces first.
    """
    m = mask.unsqueeze(-1).to(pred.dtype)
    err = ((pred - target) ** 2 * m).sum()
    scale = (target**2 * m).sum()
    return torch.stack([err, scale]) if parts else err / scale.clamp_min(1e-12)


def _kl(reference: Tensor, other: Tensor) -> Tensor:
    """KL(reference || other) averaged over rows; logits (B, V)."""
    ref = F.log_softmax(reference, dim=-1)
    return (ref.exp() * (ref - F.log_softmax(other, dim=-1))).sum(-1).mean()


@dataclass
class BoundaryLosses:
    nmse_encoder: Tensor
    nmse_decoder: Tensor
    kl_dense_to_sparse: Tensor
    kl_sparse_to_dense: Tensor
    #: Answer-position argmax of each hybrid pass (B,), for accuracy.
    hybrid_argmax: tuple[Tensor, Tensor] = field(default=None)  # type: ignore[assignment]


def boundary_losses(
    dense: SparseGPT, sparse: SparseGPT, bridge: Bridge, batch: Batch, *, parts: bool = False
) -> tuple[list[BoundaryLosses], Tensor]:
    """Every boundary's four losses on ``batch``, and the dense answer logits they are measured against.

    KL is taken at the answer positions only: the models are trained on the
    answers alone, so elsewhere their predictions are untrained noise that a
    bridge fitted to match them would spend its capacity on.
    """
    tokens, mask, at = batch.tokens, batch.attention_mask, batch.answer_pos
    with torch.no_grad():
        dense_logits, dense_streams = run(dense, tokens, answer_pos=at)
        _, sparse_streams = run(sparse, tokens, answer_pos=at)
    out = []
    for i, (h_d, h_s) in enumerate(zip(dense_streams, sparse_streams)):
        s_hat, h_hat = bridge.encode(i, h_d), bridge.decode(i, h_s)
        to_sparse, _ = run(sparse, tokens, start=i, stream=s_hat, answer_pos=at)
        to_dense, _ = run(dense, tokens, start=i, stream=h_hat, answer_pos=at)
        out.append(
            BoundaryLosses(
                _nmse(s_hat, h_s, mask, parts), _nmse(h_hat, h_d, mask, parts),
                _kl(dense_logits, to_sparse), _kl(dense_logits, to_dense), (to_sparse.argmax(-1), to_dense.argmax(-1)),
            )
        )
    return out, dense_logits


# ---------------------------------------------------------------- training


@dataclass(frozen=True, kw_only=True)
class BridgeConfig:
    steps: int = 50
    lr: float = 1e-3
    #: Coefficients of the two kinds of loss, as the paper weighs them.
    nmse: float = 1.0
    kl: float = 1.0
    seed: int = 0
    eval_every: int = 100
    #: Batches of the stream the least-squares start is fitted on, before any step.
    init_batches: int = 16


@dataclass
class BridgeResult:
    bridge: Bridge
    #: Per boundary: NMSE of each map, KL of each hybrid pass, each hybrid pass's answer accuracy.
    metrics: dict[str, dict[str, float]]
    curve: list[dict]
    seconds: float


def train_bridge(
    dense: SparseGPT,
    sparse: SparseGPT,
    batches: Iterator[Batch],
    eval_batch: Batch,
    config: BridgeConfig,
    *,
    progress: Callable[[int, int, dict], None] | None = None,
) -> BridgeResult:
    """Fit a bridge between two frozen models; deterministic for a seed and a batch stream."""
    started = time.perf_counter()
    dense.eval()
    sparse.eval()
    for p in list(dense.parameters()) + list(sparse.parameters()):
        p.requires_grad_(False)
    bridge = make_bridge(dense, sparse, config.seed)
    device = next(dense.parameters()).device
    bridge.to(device)
    curve = []
    try:
        fit_least_squares(bridge, dense, sparse, [next(batches).to(device) for _ in range(config.init_batches)])
        opt = torch.optim.Adam(bridge.parameters(), lr=config.lr)
        for step in range(1, config.steps + 1):
            batch = next(batches).to(device)
            losses, _ = boundary_losses(dense, sparse, bridge, batch)
            nmse = sum(b.nmse_encoder + b.nmse_decoder for b in losses)
            kl = sum(b.kl_dense_to_sparse + b.kl_sparse_to_dense for b in losses)
            loss = config.nmse * nmse + config.kl * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            point = {"step": step, "loss": loss.item(), "nmse": nmse.item(), "kl": kl.item()}
            if progress is not None:
                progress(step, config.steps, point)
            if step % config.eval_every == 0 or step == config.steps:
                curve.append(point)
    finally:
        for p in list(dense.parameters()) + list(sparse.parameters()):
            p.requires_grad_(True)
    bridge.eval()
    metrics = measure_bridge(dense, sparse, bridge, eval_batch.to(device))
    return BridgeResult(bridge, metrics, curve, time.perf_counter() - started)


#: Rows per piece when measuring: one pass over 2048 examples is several times
#: slower than eight passes over 256 (the activations stop fitting in cache).
MEASURE_ROWS = 256


@torch.no_grad()
def measure_bridge(dense: SparseGPT, sparse: SparseGPT, bridge: Bridge, batch: Batch) -> dict[str, dict[str, float]]:
    """NMSE and KL per boundary, and each hybrid pass's accuracy on the answers, over all of ``batch``."""
    names = boundary_names(dense.config.n_layer)
    sums = {name: dict.fromkeys(("enc_err", "enc_scale", "dec_err", "dec_scale", "kl_ds", "kl_sd", "acc_ds", "acc_sd"), 0.0) for name in names}
    for part in batch.split(MEASURE_ROWS):
        losses, _ = boundary_losses(dense, sparse, bridge, part, parts=True)
        n = len(part)
        for name, b in zip(names, losses):
            to_sparse, to_dense = b.hybrid_argmax
            row = sums[name]
            row["enc_err"] += float(b.nmse_encoder[0])
            row["enc_scale"] += float(b.nmse_encoder[1])
            row["dec_err"] += float(b.nmse_decoder[0])
            row["dec_scale"] += float(b.nmse_decoder[1])
            row["kl_ds"] += float(b.kl_dense_to_sparse) * n
            row["kl_sd"] += float(b.kl_sparse_to_dense) * n
            row["acc_ds"] += float((to_sparse == part.answers).double().sum())
            row["acc_sd"] += float((to_dense == part.answers).double().sum())
    total = len(batch)
    return {
        name: {
            "nmse_encoder": row["enc_err"] / max(row["enc_scale"], 1e-12),
            "nmse_decoder": row["dec_err"] / max(row["dec_scale"], 1e-12),
            # KL is never negative; rounding can make a perfect pass's -1e-9.
            "kl_dense_to_sparse": max(0.0, row["kl_ds"] / total),
            "kl_sparse_to_dense": max(0.0, row["kl_sd"] / total),
            "accuracy_dense_to_sparse": row["acc_ds"] / total,
            "accuracy_sparse_to_dense": row["acc_sd"] / total,
        }
        for name, row in sums.items()
    }


# ---------------------------------------------------------------- edits through the decoder


def channel_values(bridge: Bridge, dense: SparseGPT, batch: Batch, nodes: tuple[str, ...], rows: Tensor) -> dict[str, float]:
    """Each node's mean in the bridge's sparse space, over the (N, T) positions ``rows`` selects."""
    with torch.no_grad():
        _, streams = run(dense, batch.tokens)
    out = {}
    for node in nodes:
        i, c = node_boundary(node)
        encoded = bridge.encode(i, streams[i])[..., c]  # (N, T)
        out[node] = float(encoded[rows].double().mean()) if rows.any() else float("nan")
    return out


def edited_logits(
    dense: SparseGPT,
    bridge: Bridge,
    batch: Batch,
    values: Mapping[str, float],
    positions: Tensor,
    *,
    random_direction: torch.Generator | None = None,
) -> Tensor:
    """Answer-position logits (B, V) of the dense model with sparse channels set through the bridge.

    ``positions`` (B, T) bool: where the channels are set. With ``random_direction``
    the decoded change is replaced by a random vector of the same norm at each
    position: the control that says whether the direction, not just the size, matters.
    """
    by_boundary: dict[int, list[tuple[int, float]]] = {}
    for node, value in values.items():
        i, c = node_boundary(node)
        by_boundary.setdefault(i, []).append((c, value))

    def edit_at(i: int, channels: list[tuple[int, float]]) -> Edit:
        index = torch.tensor([c for c, _ in channels], device=batch.tokens.device)
        target = torch.tensor([v for _, v in channels], device=batch.tokens.device)

        def edit(h: Tensor) -> Tensor:
            s = bridge.encode(i, h)
            s_new = s.clone()
            s_new[..., index] = target.to(s.dtype)
            delta = bridge.decode(i, s_new) - bridge.decode(i, s)  # (B, T, C)
            if random_direction is not None:
                noise = torch.randn(delta.shape, generator=random_direction).to(delta)
                norm = delta.norm(dim=-1, keepdim=True)
                delta = noise / noise.norm(dim=-1, keepdim=True).clamp_min(1e-12) * norm
            return h + delta * positions.unsqueeze(-1).to(h.dtype)

        return edit

    edits = {i: edit_at(i, channels) for i, channels in by_boundary.items()}
    with torch.no_grad():
        logits, _ = run(dense, batch.tokens, edits)
    rows = torch.arange(len(batch), device=batch.tokens.device)
    return logits[rows, batch.answer_pos]
