import dataclasses

import pytest
import torch

import runtime.model as model_module
from runtime.model import ModelConfig, SparseGPT, abs_topk, softmax
from runtime.nodes import SITE_KINDS, NodeRef, Site, all_nodes, node_name, parse_node, sites

TINY = ModelConfig(vocab_size=20, n_layer=2, d_model=16, n_head=2, d_head=8, d_mlp=32, context=12)
# Every optional path on, so equivalence tests cover them too.
FULL = dataclasses.replace(TINY, positional=True, bigram=True)


def tokens(batch=3, seed=0):
    return torch.randint(0, TINY.vocab_size, (batch, TINY.context), generator=torch.Generator().manual_seed(seed))


def model(config=TINY, seed=0):
    m = SparseGPT(config, seed=seed)
    if config.bigram:  # zero at init; make it matter
        with torch.no_grad():
            m.bigram.normal_(generator=torch.Generator().manual_seed(1))
    return m.eval()


# ---------------------------------------------------------------- forward


@pytest.mark.parametrize("config", [TINY, FULL], ids=["tiny", "full"])
def test_shapes_and_answer_pos_matches_full_mode(config):
    m, x = model(config), tokens()
    pos = torch.tensor([0, 5, 11])
    full = m(x)
    answer = m(x, answer_pos=pos)
    assert full.shape == (3, 12, 20)
    assert answer.shape == (3, 20)
    torch.testing.assert_close(answer, full[torch.arange(3), pos])


def _answer_mode_both_ways(m, x, pos, monkeypatch):
    """Logits and gradients in answer_pos mode with the answer queries alone, then with every query."""
    results = []
    for rows_from in (model_module._ANSWER_ROWS_FROM, 10**9):
        monkeypatch.setattr(model_module, "_ANSWER_ROWS_FROM", rows_from)
        m.zero_grad(set_to_none=True)
        logits = m(x, pos)
        logits.logsumexp(-1).sum().backward()
        results.append((logits.detach(), [p.grad.clone() for p in m.parameters()]))
    return results


@pytest.mark.parametrize("batch", [1, 3, 40])
def test_answer_queries_alone_match_every_query_attending(batch, monkeypatch):
    m = SparseGPT(dataclasses.replace(FULL, context=40), seed=3)
    gen = torch.Generator().manual_seed(batch)
    for T in (7, 8, 13, 40):
        x = torch.randint(0, FULL.vocab_size, (batch, T), generator=gen)
        pos = torch.randint(0, T, (batch,), generator=gen)
        (answer, answer_grads), (full, full_grads) = _answer_mode_both_ways(m, x, pos, monkeypatch)
        torch.testing.assert_close(answer, full)
        torch.testing.assert_close(answer_grads, full_grads)


def test_answer_queries_alone_keep_the_shipped_models_bits(monkeypatch):
    # At the shipped model's shape the two ways round alike, values and
    # gradients, so that model trains to the weights its claims were derived on.
    shipped = ModelConfig(vocab_size=102, n_layer=2, d_model=64, n_head=4, d_head=16, d_mlp=256, context=64,
                          density=1 / 16, act_topk=1 / 32)
    m = SparseGPT(shipped, seed=0)
    gen = torch.Generator().manual_seed(0)
    for T in (8, 45, 64):
        x = torch.randint(0, shipped.vocab_size, (128, T), generator=gen)
        pos = torch.randint(0, T, (128,), generator=gen)
        (answer, answer_grads), (full, full_grads) = _answer_mode_both_ways(m, x, pos, monkeypatch)
        assert torch.equal(answer, full), T
        assert all(torch.equal(a, b) for a, b in zip(answer_grads, full_grads)), T


@pytest.mark.parametrize("config", [TINY, FULL], ids=["tiny", "full"])
def test_right_padding_never_reaches_real_positions(config):
    m, x = model(config), tokens()
    lengths = [5, 12, 8]
    other = x.clone()
    for row, n in enumerate(lengths):
        other[row, n:] = (x[row, n:] + 7) % config.vocab_size
    a, b = m(x), m(other)
    for row, n in enumerate(lengths):
        torch.testing.assert_close(a[row, :n], b[row, :n])
    pos = torch.tensor(lengths) - 1
    torch.testing.assert_close(m(x, pos), m(other, pos))


def test_sequence_longer_than_context_is_refused():
    with pytest.raises(ValueError, match="context"):
        model()(torch.zeros(1, 13, dtype=torch.long))


def test_abs_topk_keeps_exactly_k_largest_magnitudes():
    x = torch.randn(4, 7, 32)
    y = abs_topk(x, 8)
    assert ((y != 0).sum(-1) == 8).all()
    kept = y != 0
    # every kept |x| is at least every dropped |x| in the same vector
    assert (x.abs().masked_fill(~kept, float("inf")).amin(-1) >= x.abs().masked_fill(kept, 0).amax(-1)).all()
    torch.testing.assert_close(y[kept], x[kept], rtol=0, atol=0)


def test_sites_in_topk_sites_keep_k_units_and_others_stay_dense():
    config = dataclasses.replace(TINY, topk_sites=("attn.q", "mlp.post_act"))
    m, seen = model(config), {}
    record = {name: (lambda n: lambda x: seen.__setitem__(n, x))(name) for name in m.site_names}
    with m.hooks(record):
        m(tokens())
    for site in sites(config):
        live = (seen[site.name] != 0).sum(-1)
        if site.kind in config.topk_sites:
            assert (live == round(0.25 * site.width)).all(), site.name
        else:
            assert (live == site.width).all(), site.name


def test_same_seed_same_weights_whatever_the_global_rng():
    torch.manual_seed(123)
    a = SparseGPT(FULL, seed=7).state_dict()
    torch.manual_seed(456)
    b = SparseGPT(FULL, seed=7).state_dict()
    c = SparseGPT(FULL, seed=8).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["wte.weight"], c["wte.weight"])


@pytest.mark.parametrize("sinks", [True, False])
def test_sinks_take_attention_mass_off_the_real_keys(sinks):
    # With d_model == n_head * d_head, an identity output projection and all-ones
    # values, attention's write is each head's total weight on real keys.
    config = dataclasses.replace(TINY, act_topk=1.0, sinks=sinks)
    m, seen = model(config), {}
    with torch.no_grad():
        m.blocks[0].attn.o.weight.copy_(torch.eye(16))
    hooks = {"0.attn.v": torch.ones_like, "0.attn.resid_delta": lambda x: seen.__setitem__("w", x)}
    with m.hooks(hooks):
        m(tokens())
    mass = seen["w"]
    if sinks:
        assert ((mass > 0) & (mass < 1)).all()
    else:
        torch.testing.assert_close(mass, torch.ones_like(mass))


def test_config_validation():
    with pytest.raises(ValueError, match="density"):
        dataclasses.replace(TINY, density=0)
    with pytest.raises(ValueError, match="did you mean 'attn.q'"):
        dataclasses.replace(TINY, topk_sites=("attn.qq",))


# ---------------------------------------------------------------- hooks


def test_recording_hooks_see_every_site_at_its_width():
    m, seen = model(), {}
    record = {name: (lambda n: lambda x: seen.__setitem__(n, x.shape))(name) for name in m.site_names}
    with m.hooks(record):
        m(tokens())
    assert seen == {s.name: (3, 12, s.width) for s in sites(TINY)}

    seen.clear()
    with m.hooks(record):
        m(tokens(), answer_pos=torch.tensor([1, 2, 3]))
    # In answer_pos mode the last layer's MLP runs at the answer positions only.
    assert seen == {s.name: (3, 1 if s.name.startswith("1.mlp") else 12, s.width) for s in sites(TINY)}


def test_answer_pos_mode_leaves_the_last_attention_zero_away_from_the_answers():
    m, seen = model(), {}
    with m.hooks({"1.attn.resid_delta": lambda x: seen.__setitem__("delta", x)}):
        m(tokens(), answer_pos=torch.tensor([1, 9, 11]))
    delta = seen["delta"]
    for row, at in enumerate([1, 9, 11]):
        assert delta[row, at].abs().sum() > 0
        assert (delta[row, :at] == 0).all() and (delta[row, at + 1:] == 0).all()


def test_identity_hooks_are_bit_identical_and_zeroing_changes_output():
    m, x = model(), tokens()
    base = m(x)
    with m.hooks({name: (lambda t: t) for name in m.site_names}):
        assert torch.equal(m(x), base)
    with m.hooks({name: (lambda t: None) for name in m.site_names}):
        assert torch.equal(m(x), base)
    with m.hooks({"0.mlp.post_act": torch.zeros_like}):
        assert not torch.allclose(m(x), base)
    assert torch.equal(m(x), base)  # uninstalled on exit


def test_nested_hooks_chain_and_restore():
    m, x, order = model(), tokens(), []
    with m.hooks({"0.attn.q": lambda t: order.append("outer") or t * 2}):
        with m.hooks({"0.attn.q": lambda t: order.append("inner")}):
            m(x)
        m(x)
    assert order == ["outer", "inner", "outer"]
    assert not m._hooks


def test_unknown_site_raises_key_error_with_suggestion():
    m = model()
    with pytest.raises(KeyError, match=r"did you mean '1\.attn\.q'"):
        with m.hooks({"1.attn.query": lambda t: t}):
            pass
    assert not m._hooks


# ---------------------------------------------------------------- node names


def test_sites_and_nodes_follow_the_scheme():
    listed = sites(TINY)
    assert [s.name for s in listed[:8]] == [f"0.{k}" for k in SITE_KINDS]
    assert listed[1] == Site("0.attn.q", 0, "attn.q", 16)
    assert {s.kind: s.width for s in listed}["mlp.post_act"] == 32
    names = all_nodes(TINY)
    assert len(names) == len(set(names)) == sum(s.width for s in listed) == 2 * (5 * 16 + 16 + 32 + 16)
    assert all(str(parse_node(n, TINY)) == n for n in names)


def test_parse_and_format_round_trip():
    ref = parse_node("1.attn.q[5]")
    assert ref == NodeRef(1, "attn.q", 5)
    assert (ref.site, ref.name) == ("1.attn.q", "1.attn.q[5]")
    assert node_name("1.mlp.post_act", 31) == "1.mlp.post_act[31]"
    assert node_name(sites(TINY)[6], 31) == "0.mlp.post_act[31]"


@pytest.mark.parametrize(
    "name, config, message",
    [
        ("1.attn.qq[5]", None, r"unknown site '1\.attn\.qq'.*did you mean '1\.attn\.q'"),
        ("0.mlp.postact[2]", TINY, r"did you mean '0\.mlp\.post_act'"),
        ("attn.q[5]", None, "not a node name"),
        ("1.attn.q[-1]", None, "not a node name"),
        ("1.attn.q", None, "is a site, not a node"),
        ("2.attn.q[0]", TINY, "layer 2 out of range"),
        ("1.attn.q[16]", TINY, "width 16"),
    ],
)
def test_bad_node_names(name, config, message):
    with pytest.raises(ValueError, match=message):
        parse_node(name, config)


def test_node_name_checks_index_against_width():
    with pytest.raises(ValueError, match="out of range"):
        node_name(sites(TINY)[0], 16)


def test_softmax_gradient_is_the_same_for_one_and_two_threads():
    # At the shipped model's attention shape PyTorch's own softmax backward
    # differs in the last bits between 1 and 2 threads, which made the same
    # seed train a different model on another machine.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, 46, 47, generator=gen)
    grad = torch.randn(128, 4, 46, 47, generator=gen)
    threads = torch.get_num_threads()
    grads = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            leaf = x.clone().requires_grad_(True)
            softmax(leaf).backward(grad)
            grads.append(leaf.grad)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(grads[0], grads[1])
    reference = x.clone().requires_grad_(True)
    reference.softmax(-1).backward(grad)
    assert torch.allclose(grads[0], reference.grad, atol=1e-6)
    assert torch.equal(softmax(x), x.softmax(-1))
