"""Pruning against ground truth: a hand-built model whose circuit is known (runtime.planted)."""

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
import torch

from runtime.ablation import ablation_hooks, keep_masks, mean_activations, resample_activations, resample_donors
from runtime.circuit import circuit_edges
from runtime.masks import NodeMasks, _Gate, straight_through
from runtime.nodes import all_nodes, sites
from runtime.planted import CONFIG, DISTRACTORS, PLANTED, planted_batch
from runtime.prune import IdentityCheckError, PruneConfig, check_identity, discretise, length_chunks, prune

FAST = PruneConfig(trials=3, steps=80, batch=128, eval_examples=256)


# Tiny models: see one_thread in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def result(model, means):
    return prune(model, planted_batch(1024, seed=1), means, FAST)


def loss_with(model, means, names, batch, kind="mean", ablate=False):
    with torch.no_grad(), model.hooks(ablation_hooks(model, keep_masks(CONFIG, names, ablate=ablate), kind, means)):
        logits = model(batch.tokens, batch.answer_pos)
    return torch.nn.functional.cross_entropy(logits, batch.answers).item()


# ---------------------------------------------------------------- the ground truth itself


def test_planted_circuit_is_sufficient_and_each_node_necessary(model, means):
    batch = planted_batch(512, seed=3)
    assert loss_with(model, means, all_nodes(CONFIG), batch) < 0.05
    assert loss_with(model, means, PLANTED, batch) < 0.05
    for name in PLANTED:
        assert loss_with(model, means, [n for n in PLANTED if n != name], batch) > 1.0, name
    # The distractors carry signal (ablating all of them changes the logits) but not the answer.
    assert loss_with(model, means, DISTRACTORS, batch, ablate=True) < 0.05
    assert loss_with(model, means, PLANTED[:1], batch, ablate=True) > 1.0


# ---------------------------------------------------------------- pruning recovers it


def test_learned_pruning_recovers_the_planted_nodes(result):
    found, truth = set(result.circuit.nodes), set(PLANTED)
    precision = len(found & truth) / len(found)
    recall = len(found & truth) / len(truth)
    assert precision >= 0.9 and recall >= 0.9, sorted(found ^ truth)
    assert result.circuit.reached and result.circuit.loss <= FAST.target
    assert result.full_loss <= FAST.target < result.empty_loss
    assert result.circuit.calibrated_loss <= result.circuit.loss + 1e-6
    assert result.circuit.per_layer == {0: 5, 1: 3}
    assert len(result.trials) == FAST.trials and result.best is not None


def test_attribution_baseline_is_run_side_by_side(result):
    assert result.baseline is not None and result.baseline.method == "attribution"
    assert result.baseline.reached
    # Saturated logits leave the planted nodes tiny gradients, so attribution
    # keeps distractors too; it can only be as small as the learned circuit.
    assert len(result.baseline.nodes) >= len(result.circuit.nodes)
    assert result.size_ratio == len(result.baseline.nodes) / len(result.circuit.nodes)
    assert set(result.attribution_scores) == set(result.mask_scores) == {s.name for s in sites(CONFIG)}


def test_result_serialises_to_json(result):
    data = json.loads(json.dumps(result.to_json()))
    assert data["circuit"]["nodes"] == list(result.circuit.nodes)
    assert data["controls"]["random_model"]["reached"] is False
    assert len(data["trials"]) == FAST.trials and data["best"]["lam"] == result.best.lam


def test_controls_fail_where_they_must(result):
    controls = result.controls
    assert controls.identity
    assert not controls.nonsense.reached and not controls.nonsense_flag
    assert controls.nonsense.loss > FAST.target
    assert not controls.random_model.reached
    assert controls.random_model.full_loss > 1.0  # an untrained model cannot do the task at all


def test_minimality_and_ablation_agreement_are_measured(result):
    controls = result.controls
    assert set(controls.minimality) == set(result.circuit.nodes)
    # Every planted node is necessary, so none of them can be removed.
    assert controls.removable == ()
    assert all(loss > FAST.target for loss in controls.minimality.values())
    assert set(controls.ablation_agreement) == {"mean", "zero", "resample"}
    assert controls.ablation_agreement["mean"] == pytest.approx(result.circuit.loss)
    # The query reads the constant ONE channel: free under mean ablation, fatal when zeroed.
    assert controls.ablation_agreement["zero"] > 1.0


def test_pruning_is_deterministic_whatever_the_workers_and_leaves_the_model_as_it_was(model, means):
    config = replace(FAST, trials=3, steps=20, controls=False, baseline="none")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    threads = torch.get_num_threads()
    a = prune(model, planted_batch(300, seed=4), means, replace(config, workers=1))
    b = prune(model, planted_batch(300, seed=4), means, replace(config, workers=2))
    assert [replace(t, seconds=0) for t in a.trials] == [replace(t, seconds=0) for t in b.trials]
    assert a.circuit.nodes == b.circuit.nodes and a.circuit.loss == b.circuit.loss
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters()) and not model.training
    assert torch.get_num_threads() == threads


def test_attribution_method_and_resample_ablation(model, means):
    config = replace(FAST, method="attribution", ablation="resample", controls=False)
    result = prune(model, planted_batch(512, seed=5), means, config)
    assert result.trials == () and result.best is None and result.baseline is None
    assert result.circuit.method == "attribution" and result.circuit.ablation == "resample"
    assert result.circuit.reached and set(PLANTED) <= set(result.circuit.nodes)


def test_an_unreachable_target_is_reported_unreached(model, means):
    config = replace(FAST, trials=1, steps=20, target=1e-9, controls=False, baseline="none")
    result = prune(model, planted_batch(300, seed=6), means, config)
    assert not result.circuit.reached
    assert not result.trials[0].reached


# ---------------------------------------------------------------- identity check


def test_identity_check_raises_when_a_hook_perturbs_the_logits(model):
    batch = planted_batch(64, seed=7)
    check_identity(model, batch, {"0.attn.v": lambda x: x})
    with pytest.raises(IdentityCheckError, match="differ"):
        check_identity(model, batch, {"0.attn.v": lambda x: x + 1e-4})


def test_corrupted_means_fail_the_identity_check(model, means):
    corrupted = dict(means)
    corrupted["1.mlp.post_act"] = torch.full_like(means["1.mlp.post_act"], math.nan)
    with pytest.raises(IdentityCheckError, match="mask hooks"):
        prune(model, planted_batch(64, seed=8), corrupted, replace(FAST, trials=1, steps=1))


# ---------------------------------------------------------------- edges


def test_edges_of_the_planted_circuit_match_a_hand_count(model):
    edges = {(e.src, e.dst): e for e in circuit_edges(model, PLANTED)}
    assert set(edges) == {
        ("0.attn.resid_in[0]", "0.attn.k[0]"),
        ("0.attn.resid_in[1]", "0.attn.v[0]"),
        ("0.attn.v[0]", "0.attn.resid_delta[4]"),
        ("0.attn.resid_delta[4]", "1.mlp.resid_in[4]"),  # the residual stream
        ("1.mlp.resid_in[4]", "1.mlp.post_act[0]"),
        ("1.mlp.post_act[0]", "1.mlp.resid_delta[2]"),
    }
    assert edges[("0.attn.resid_in[0]", "0.attn.k[0]")].weight == 3.0
    assert edges[("0.attn.resid_delta[4]", "1.mlp.resid_in[4]")].kind == "residual"
    # The query (with its input), an empty key channel and a channel the
    # planted head never reads add exactly one edge: ONE -> q[0].
    extra = ("0.attn.q[0]", "0.attn.resid_in[3]", "0.attn.k[1]", "0.attn.resid_in[5]")
    assert len(circuit_edges(model, PLANTED + extra)) == 7


def test_residual_edges_join_a_write_to_every_later_read(model):
    nodes = ("0.attn.resid_delta[6]", "0.mlp.resid_in[6]", "1.attn.resid_in[6]", "1.mlp.resid_in[6]", "0.attn.resid_in[6]")
    pairs = [(e.src, e.dst) for e in circuit_edges(model, nodes)]
    assert pairs == [("0.attn.resid_delta[6]", r) for r in ("0.mlp.resid_in[6]", "1.attn.resid_in[6]", "1.mlp.resid_in[6]")]


# ---------------------------------------------------------------- ablation and masks


def test_ablation_keeps_kept_nodes_bit_for_bit_and_replaces_the_rest(model, means):
    batch = planted_batch(16, seed=9)
    seen = {}
    keep = torch.tensor([True, False] * 4)
    hooks = ablation_hooks(model, {"0.attn.resid_in": keep}, "mean", means)
    record = {"0.attn.resid_in": lambda x: seen.__setitem__("x", x)}
    with torch.no_grad():
        with model.hooks(record):
            model(batch.tokens)
        plain = seen["x"]
        with model.hooks(hooks), model.hooks(record):
            model(batch.tokens)
    assert torch.equal(seen["x"][..., keep], plain[..., keep])
    assert torch.equal(seen["x"][..., ~keep], means["0.attn.resid_in"][~keep].expand_as(seen["x"][..., ~keep]))


def test_means_are_over_real_positions_only(model):
    batch = planted_batch(8, seed=10)
    seen = {}
    with torch.no_grad(), model.hooks({"0.mlp.resid_in": lambda x: seen.__setitem__("x", x)}):
        model(batch.tokens)
    expected = seen["x"][batch.attention_mask].mean(0)
    torch.testing.assert_close(mean_activations(model, [batch])["0.mlp.resid_in"], expected)


def test_resample_takes_a_longer_donor_aligned_at_the_answer(model):
    batch = planted_batch(12, seed=11)
    donors = resample_donors(batch, torch.Generator().manual_seed(0))
    longest = batch.lengths.max()
    for i, j in enumerate(donors.tolist()):
        assert j != i
        assert batch.lengths[j] >= batch.lengths[i] or batch.lengths[i] == longest
    acts = resample_activations(model, batch, donors)
    seen = {}
    with torch.no_grad(), model.hooks({"0.attn.v": lambda x: seen.__setitem__("x", x)}):
        model(batch.tokens, batch.answer_pos)
    for i, j in enumerate(donors.tolist()):
        if batch.lengths[j] >= batch.lengths[i]:
            torch.testing.assert_close(acts["0.attn.v"][i, batch.answer_pos[i]], seen["x"][j, batch.answer_pos[j]])
    assert acts["1.mlp.post_act"].shape == (12, 1, CONFIG.d_mlp)


def test_straight_through_is_a_hard_step_with_a_sigmoid_gradient():
    score = torch.tensor([-0.5, -1e-6, 0.0, 0.3], requires_grad=True)
    gate = straight_through(score, 0.2)
    assert gate.tolist() == [0.0, 0.0, 1.0, 1.0]
    gate.sum().backward()
    s = torch.sigmoid(score.detach() / 0.2)
    torch.testing.assert_close(score.grad, s * (1 - s) / 0.2)


def test_gate_is_hard_forward_and_soft_backward():
    x = torch.tensor([[2.0, 3.0, -1.0]], requires_grad=True)
    hard = torch.tensor([1.0, 0.0, 0.0])
    soft = torch.tensor([0.7, 0.2, 0.0], requires_grad=True)
    value = torch.tensor([0.5, 0.5, 0.5])
    y = _Gate.apply(x, hard, soft, value)
    assert y.tolist() == [[2.0, 0.5, 0.5]]
    y.sum().backward()
    # An ablated node still passes gradient to what feeds it, scaled by its
    # soft gate, so two pruned nodes in series can come back.
    torch.testing.assert_close(x.grad, torch.tensor([[0.7, 0.2, 0.0]]))
    torch.testing.assert_close(soft.grad, torch.tensor([1.5, 2.5, -1.5]))  # x - value


def test_node_masks_start_kept_and_stay_clamped():
    masks = NodeMasks(CONFIG, generator=torch.Generator().manual_seed(0))
    assert masks.flat().ge(0).all() and len(masks.kept_names()) == len(all_nodes(CONFIG))
    with torch.no_grad():
        masks.scores["0.attn.q"] += 5
    masks.clamp_()
    assert masks.flat().abs().max() == 1.0


def test_length_chunks_give_the_same_answers_as_one_batch(model):
    batch = planted_batch(50, seed=12)
    chunks = length_chunks(batch, 16)
    assert [len(c) for c in chunks] == [16, 16, 16, 2]
    assert all(c.tokens.size(1) == int(c.lengths.max()) for c in chunks)
    with torch.no_grad():
        whole = model(batch.tokens, batch.answer_pos)
        parts = torch.cat([model(c.tokens, c.answer_pos) for c in chunks])
    order = torch.argsort(batch.lengths, stable=True)
    torch.testing.assert_close(parts, whole[order])


# ---------------------------------------------------------------- discretisation


class _Lookup:
    """Stands in for a task whose loss depends only on how many nodes are kept."""

    def __init__(self, passing):
        self.passing, self.calls = passing, 0

    def evaluate(self, keep):
        self.calls += 1
        k = int(keep.sum())
        return (0.1 if k in self.passing else 1.0), 1.0


def test_discretise_bisects_then_takes_the_raw_set_or_a_smaller_size_near_the_boundary():
    scores = torch.linspace(1, -1, 100)  # already ranked
    high = set(range(78, 101))
    pick = discretise(_Lookup(high), scores, 0.15, scan=0)
    assert int(pick.keep.sum()) == 78 and pick.reached
    # The loss is not monotone: the masks' own 40 nodes pass although 50 and 75 fail.
    pick = discretise(_Lookup(high | {40}), scores, 0.15, scan=0, raw_k=40)
    assert int(pick.keep.sum()) == 40
    assert pick.keep[:40].all() and not pick.keep[40:].any()
    # A passing size that bisection steps over (50 and 75 fail), found by the scan below 78.
    assert int(discretise(_Lookup(high | {72}), scores, 0.15, scan=6).keep.sum()) == 72
    assert int(discretise(_Lookup(high | {72}), scores, 0.15, scan=4).keep.sum()) == 78
    # Nothing passes: the raw set is reported, unreached.
    pick = discretise(_Lookup(set()), scores, 0.15, scan=4, raw_k=30)
    assert not pick.reached and int(pick.keep.sum()) == 30


# ---------------------------------------------------------------- reports


def test_circuit_renders_to_json_dot_and_svg(result):
    circuit = result.circuit
    roles = {"0.attn.v[0]": "copier"}
    data = circuit.to_json(roles)
    assert data["node_count"] == len(circuit.nodes) and data["edge_count"] == len(circuit.edges)
    assert data["roles"] == roles and data["per_layer"] == {"0": 5, "1": 3}
    dot = circuit.to_dot(roles)
    assert dot.startswith("digraph") and '"0.attn.v[0]" -> "0.attn.resid_delta[4]"' in dot
    svg = circuit.to_svg(roles)
    root = ET.fromstring(svg)  # well-formed and self-contained
    assert root.tag.endswith("svg")
    text = " ".join(el.text or "" for el in root.iter())
    assert all(name in text for name in circuit.nodes) and "copier" in text
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_shrink_drops_every_node_the_loss_does_not_need(model, means):
    from runtime.prune import _Pick, _Task, shrink, split_task

    train, held = split_task(planted_batch(1024, seed=4), 256)
    task = _Task(model, train, held, "mean", means, 0)
    names = all_nodes(CONFIG)
    keep = torch.tensor([name in PLANTED or name in DISTRACTORS for name in names])
    # The distractors rank below the planted nodes, so they are tried first.
    scores = torch.tensor([1.0 if name in PLANTED else 0.5 if name in DISTRACTORS else -1.0 for name in names])
    loss, accuracy = task.evaluate(keep)
    assert loss <= FAST.target
    shrunk = shrink(task, _Pick(keep, loss, accuracy, True, 1), scores, FAST.target)
    assert {names[i] for i in shrunk.keep.nonzero().flatten().tolist()} == set(PLANTED)
    assert shrunk.reached and shrunk.loss <= FAST.target
    # A pick that missed the target is left alone.
    missed = _Pick(keep, 9.0, 0.0, False, 1)
    assert shrink(task, missed, scores, FAST.target) is missed



@pytest.mark.parametrize("window", [2, 3])
def test_shrink_side_by_side_makes_the_same_choices_as_one_at_a_time(model, means, window):
    from runtime.prune import _Pick, _Task, evaluate_sets, shrink, split_task
    from runtime.workers import Workers

    train, held = split_task(planted_batch(1024, seed=4), 256)
    task = _Task(model, train, held, "mean", means, 0)
    names = all_nodes(CONFIG)
    # Planted, distractors and a few random nodes, in a scrambled order: removals pass and
    # fail interleaved, so windows are cut short both at their start and in their middle.
    keep = torch.tensor([name in PLANTED or name in DISTRACTORS for name in names])
    keep[torch.randperm(len(names), generator=torch.Generator().manual_seed(3))[:12]] = True
    scores = torch.rand(len(names), generator=torch.Generator().manual_seed(5))
    loss, accuracy = task.evaluate(keep)
    alone = shrink(task, _Pick(keep, loss, accuracy, True, 1), scores, 2 * loss)
    workers = Workers(task, window)
    try:
        together = shrink(task, _Pick(keep, loss, accuracy, True, 1), scores, 2 * loss, workers=workers)
        sets = keep.repeat(40, 1)
        sets[torch.arange(40), torch.arange(40)] = False
        assert torch.equal(evaluate_sets(task, sets, workers=workers, width=8), task.evaluate_many(sets, width=8))
    finally:
        workers.close()
    assert torch.equal(alone.keep, together.keep) and alone.loss == together.loss
    assert alone.evaluated == together.evaluated
    assert 0 < int(alone.keep.sum()) < int(keep.sum())
