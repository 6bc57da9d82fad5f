"""Relations read off weights: the planted model's known wiring, and where it must break."""

from __future__ import annotations

import torch

from runtime.circuit import circuit_edges
from runtime.planted import CONFIG, PLANTED, planted_model
from runtime.relations import Wiring, head_channels, heads_of

HEAD0 = "0.attn.head[0]"


def _wiring(model=None, nodes=PLANTED) -> Wiring:
    model = model or planted_model()
    edges = [(e.src, e.dst, e.weight) for e in circuit_edges(model, nodes)]
    return Wiring(model, nodes, edges)


def test_a_head_is_its_circuit_channels():
    assert heads_of(PLANTED, CONFIG) == {HEAD0: ("0.attn.k[0]", "0.attn.v[0]")}
    assert len(head_channels("1.attn.head[1]", CONFIG)) == 3 * CONFIG.d_head
    assert head_channels("1.attn.head[1]", CONFIG)[0] == "1.attn.q[4]"


def test_reads_follows_the_matrix_the_channel_comes_from():
    w = _wiring()
    assert w.reads(HEAD0, "0.attn.resid_in[0]", "key")  # the key reads QUOTE
    assert not w.reads(HEAD0, "0.attn.resid_in[0]", "value")
    assert w.reads(HEAD0, "0.attn.resid_in[1]", "value")  # the value reads TYPE
    assert w.reads(HEAD0, "0.attn.resid_in[1]", None)
    assert not w.reads(HEAD0, "0.attn.resid_in[1]", "query")  # its query channel is not in the circuit
    assert w.reads("0.attn.k[0]", "0.attn.resid_in[0]", "key")
    assert not w.reads("0.attn.k[0]", "0.attn.resid_in[0]", "value")  # a key channel reads as a key only


def test_writes_goes_through_the_residual_stream_forward_only():
    w = _wiring()
    assert w.writes(HEAD0, "0.attn.resid_delta[4]")
    assert w.writes(HEAD0, "1.mlp.resid_in[4]")  # COPY travels the stream to layer 1
    assert w.writes("0.attn.resid_delta[4]", "1.mlp.post_act[0]")
    assert w.writes(HEAD0, "1.mlp.post_act[0]")  # one write into the stream, one read from it
    assert not w.writes(HEAD0, "1.mlp.resid_delta[2]")  # the neuron stands in between
    assert not w.writes("1.mlp.post_act[0]", "0.attn.resid_delta[4]")  # backwards
    assert not w.writes(HEAD0, "0.attn.resid_delta[2]")  # a channel the head does not write
    assert not w.writes("0.attn.k[0]", "0.attn.resid_delta[4]")  # keys act through the pattern
    assert not w.writes(HEAD0, HEAD0)


def test_a_zero_norm_scale_cuts_the_stream():
    model = planted_model()
    with torch.no_grad():
        model.blocks[1].ln_2.weight[4] = 0.0
    assert not _wiring(model).writes("0.attn.resid_delta[4]", "1.mlp.post_act[0]")


def test_edges_and_paths_follow_the_circuit_only():
    w = _wiring()
    assert w.edge("0.attn.v[0]", "0.attn.resid_delta[4]")
    assert w.edge(HEAD0, "0.attn.resid_delta[4]")
    assert not w.edge("0.attn.resid_in[1]", "0.attn.resid_delta[4]")  # two edges
    assert w.path("0.attn.resid_in[1]", "1.mlp.resid_delta[2]")
    assert not w.path("1.mlp.resid_delta[2]", "0.attn.resid_in[1]")
    assert not w.path("0.attn.k[0]", "1.mlp.resid_delta[2]")  # keys have no outgoing edges
    # Without the layer-1 read of COPY in the circuit the chain is broken, though the weight is there.
    cut = tuple(node for node in PLANTED if node != "1.mlp.resid_in[4]")
    broken = _wiring(nodes=cut)
    assert not broken.path("0.attn.resid_in[1]", "1.mlp.resid_delta[2]")
    assert broken.writes("0.attn.resid_delta[4]", "1.mlp.post_act[0]")
