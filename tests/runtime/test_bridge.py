"""Bridges between a dense and a sparse model (runtime/bridge.py), on tiny untrained models."""

from __future__ import annotations

import itertools

import pytest
import torch

from runtime.batch import encode_batch
from runtime.bridge import (
    BridgeConfig, boundary_names, edited_logits, fit_least_squares, make_bridge, measure_bridge, node_boundary, run, train_bridge,
)
from runtime.model import ModelConfig, SparseGPT
from runtime.tokenizer import Tokenizer

TOKENIZER = Tokenizer(tuple("abcdxyz'\" =[]"))


def model(dense: bool, seed: int = 0, d_model: int = 16) -> SparseGPT:
    config = ModelConfig(
        vocab_size=len(TOKENIZER), n_layer=2, d_model=d_model, n_head=2, d_head=8, d_mlp=32, context=16,
        density=1.0 if dense else 0.25, act_topk=1.0 if dense else 0.25,
    )
    return SparseGPT(config, seed=seed).eval()


def batch(seed: int = 0, n: int = 32):
    rng = torch.Generator().manual_seed(seed)
    letters = "abcd"
    prompts = ["".join(letters[int(i)] for i in torch.randint(0, 4, (6,), generator=rng)) for _ in range(n)]
    return encode_batch(TOKENIZER, prompts, [p[0] for p in prompts], context=16)


def test_run_is_the_models_forward_and_streams_sit_at_every_boundary():
    m = model(dense=False)
    b = batch()
    logits, streams = run(m, b.tokens)
    assert torch.allclose(logits, m(b.tokens), atol=1e-6)
    assert len(streams) == len(boundary_names(2)) == 5
    # Starting a pass at a boundary from that boundary's stream gives the same logits.
    again, _ = run(m, b.tokens, start=3, stream=streams[3])
    assert torch.allclose(again, logits, atol=1e-6)


def test_node_boundaries():
    assert node_boundary("0.attn.resid_in[3]") == (0, 3)
    assert node_boundary("0.attn.resid_delta[3]") == (1, 3)
    assert node_boundary("1.mlp.resid_in[2]") == (3, 2)
    assert node_boundary("1.mlp.resid_delta[2]") == (4, 2)
    with pytest.raises(ValueError, match="not a residual-stream channel"):
        node_boundary("0.attn.q[1]")


def test_training_lowers_both_losses_and_is_deterministic():
    dense, sparse = model(dense=True, seed=1, d_model=24), model(dense=False, seed=2)
    stream = (batch(seed) for seed in itertools.count())
    untrained = measure_bridge(dense, sparse, make_bridge(dense, sparse, 0), batch(99))
    first = train_bridge(dense, sparse, stream, batch(99), BridgeConfig(steps=40, lr=1e-2))
    second = train_bridge(dense, sparse, (batch(seed) for seed in itertools.count()), batch(99), BridgeConfig(steps=40, lr=1e-2))
    for name in boundary_names(2):
        assert first.metrics[name]["nmse_decoder"] < untrained[name]["nmse_decoder"], name
        assert first.metrics[name]["kl_sparse_to_dense"] < untrained[name]["kl_sparse_to_dense"], name
    assert first.metrics == second.metrics
    assert all(p.requires_grad for p in dense.parameters()), "training a bridge must leave the models as they were"


def test_an_edit_to_the_values_already_there_changes_nothing_and_a_real_one_does():
    dense, sparse = model(dense=True, seed=1, d_model=24), model(dense=False, seed=2)
    bridge = make_bridge(dense, sparse, 0)
    b = batch()
    everywhere = b.attention_mask
    rows = torch.arange(len(b))
    plain = run(dense, b.tokens)[0][rows, b.answer_pos]
    _, streams = run(dense, b.tokens)
    encoded = bridge.encode(0, streams[0])
    # Channel 0 set to what it already is, at positions where it is what it is: no change at all.
    same = {"0.attn.resid_in[0]": 0.0}
    zero_rows = everywhere & (encoded[..., 0] == 0)
    assert torch.allclose(edited_logits(dense, bridge, b, same, zero_rows), plain, atol=1e-6)
    moved = edited_logits(dense, bridge, b, {"0.attn.resid_in[0]": 5.0}, everywhere)
    assert not torch.allclose(moved, plain, atol=1e-3)
    gen = torch.Generator().manual_seed(0)
    random = edited_logits(dense, bridge, b, {"0.attn.resid_in[0]": 5.0}, everywhere, random_direction=gen)
    assert not torch.allclose(random, moved, atol=1e-3)


def test_the_least_squares_start_is_exact_where_a_linear_map_exists():
    # A model bridged to itself: the identity is a linear map at every boundary, so
    # the closed-form start must find it; a random start is nowhere near.
    m = model(dense=True, seed=3, d_model=16)
    bridge = make_bridge(m, m, 0)
    before = measure_bridge(m, m, bridge, batch(99))
    fit_least_squares(bridge, m, m, [batch(seed) for seed in range(4)])
    after = measure_bridge(m, m, bridge, batch(99))
    for name in boundary_names(2):
        assert after[name]["nmse_decoder"] < 1e-4 < before[name]["nmse_decoder"], name
        assert after[name]["nmse_encoder"] < 1e-4, name
        assert after[name]["kl_sparse_to_dense"] < 1e-4, name
    assert bridge.ks.tolist() == [16] * 5, "a dense stream keeps all its channels"


def test_the_encoders_k_is_the_sparse_streams_own():
    dense, sparse = model(dense=True, seed=1, d_model=24), model(dense=False, seed=2)
    b = batch()
    with torch.no_grad():
        _, streams = run(sparse, b.tokens)
    mask = b.attention_mask.bool()
    expected = [max(1, round(float((s[mask] != 0).sum(-1).double().mean()))) for s in streams]
    bridge = make_bridge(dense, sparse, 0)
    fit_least_squares(bridge, dense, sparse, [b])
    assert bridge.ks.tolist() == expected


def test_a_fitted_bridge_is_the_same_whatever_the_thread_count():
    dense, sparse = model(dense=True, seed=1, d_model=24), model(dense=False, seed=2)
    threads = torch.get_num_threads()
    states = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            fitted = train_bridge(dense, sparse, (batch(s) for s in itertools.count()), batch(99), BridgeConfig(steps=5, init_batches=3))
            states.append(fitted.bridge.state_dict())
    finally:
        torch.set_num_threads(threads)
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key


def test_measuring_in_pieces_is_measuring_at_once(monkeypatch):
    import runtime.bridge as bridge_module

    dense, sparse = model(dense=True, seed=1, d_model=24), model(dense=False, seed=2)
    bridge = make_bridge(dense, sparse, 0)
    whole = measure_bridge(dense, sparse, bridge, batch(5, n=40))
    monkeypatch.setattr(bridge_module, "MEASURE_ROWS", 7)
    pieces = measure_bridge(dense, sparse, bridge, batch(5, n=40))
    for name in whole:
        assert whole[name] == pytest.approx(pieces[name], rel=1e-4, abs=1e-6), name
