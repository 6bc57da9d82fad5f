"""The pruning options (loss, norms, ablation), batched trials and cleanup, on the planted model."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from runtime.cleanup import _pairs
from runtime.losses import rivals, row_losses
from runtime.nodes import all_nodes
from runtime.norms import frozen_norms, norm_scales
from runtime.planted import CONFIG, PLANTED, planted_batch
from runtime.prune import IdentityCheckError, PruneConfig, PruneTask, _Pick, check_identity, prune, split_task
from runtime.trials import Hyperparameters, train_group

FAST = PruneConfig(trials=3, steps=80, batch=128, eval_examples=256)


# Tiny models: see one_thread in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


def task_of(model, means, **settings):
    train, held = split_task(planted_batch(768, seed=4), 256)
    return PruneTask(model, train, held, settings.pop("kind", "mean"), means, 0, **settings)


# ---------------------------------------------------------------- losses


def test_rival_is_the_listed_competitor_else_the_likeliest_wrong_task_answer():
    batch = planted_batch(6, seed=1)
    logits = torch.zeros(6, 40)
    answers, listed = batch.answers, batch.competitors[:, 0]
    assert torch.equal(rivals(logits, batch), listed)
    # Without listed competitors, or with only the row's own answer listed (shuffled answers), the
    # other answer the batch contains wins over any token that is no answer, however likely.
    none = replace(batch, competitors=torch.full((6, 1), -1))
    logits[:, 0] = 50.0  # token 0 is no answer of this task
    assert torch.equal(rivals(logits, none), listed)
    own = replace(batch, competitors=answers[:, None])
    assert torch.equal(rivals(logits, own), listed)


def test_contrast_loss_is_the_two_way_softmax_cross_entropy():
    logits = torch.randn(5, 7)
    answers, rival = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([1, 2, 3, 4, 5])
    pair = torch.stack([logits[torch.arange(5), answers], logits[torch.arange(5), rival]], 1)
    expected = F.cross_entropy(pair, torch.zeros(5, dtype=torch.long), reduction="none")
    torch.testing.assert_close(row_losses("contrast", logits, answers, rival), expected)
    assert (row_losses("contrast", logits, answers, rival) <= row_losses("ce", logits, answers, None) + 1e-6).all()
    with pytest.raises(ValueError, match="unknown loss"):
        row_losses("mse", logits, answers, rival)


# ---------------------------------------------------------------- frozen norms


def test_frozen_norms_are_the_live_ones_unablated_and_differ_once_a_write_is_ablated(model):
    batch = planted_batch(32, seed=5)
    factors = norm_scales(model, batch)
    assert len(factors) == 2 * CONFIG.n_layer + 1
    with torch.no_grad():
        plain = model(batch.tokens, batch.answer_pos)
        with frozen_norms(model, factors):
            frozen = model(batch.tokens, batch.answer_pos)
        assert torch.equal(plain, frozen)
        # Tiled as the batched trainer tiles rows.
        with frozen_norms(model, factors, repeat=3):
            tiled = model(batch.tokens.repeat(3, 1), batch.answer_pos.repeat(3))
        assert torch.equal(tiled, plain.repeat(3, 1))
        # Zero a layer-0 write: live norms rescale every later read, frozen ones do not.
        hook = {"0.attn.resid_delta": lambda x: x * 0}
        with model.hooks(hook):
            live = model(batch.tokens, batch.answer_pos)
            with frozen_norms(model, factors):
                kept_scale = model(batch.tokens, batch.answer_pos)
    assert not torch.equal(live, kept_scale)


@pytest.mark.parametrize("kind", ["mean", "zero", "resample"])
@pytest.mark.parametrize("norm", ["live", "frozen"])
@pytest.mark.parametrize("loss", ["ce", "contrast"])
def test_every_option_passes_the_identity_check_and_many_set_losses_match_one_at_a_time(model, means, kind, norm, loss):
    task = task_of(model, means, kind=kind, norm=norm, loss=loss)
    n = len(all_nodes(CONFIG))
    gen = torch.Generator().manual_seed(0)
    keeps = torch.rand(3, n, generator=gen) < 0.7
    keeps[0] = True
    many = task.evaluate_many(keeps)
    one = torch.tensor([task.evaluate(k)[0] for k in keeps])
    torch.testing.assert_close(many, one, rtol=1e-5, atol=1e-6)
    assert many[0].item() == pytest.approx(task.evaluate(torch.ones(n, dtype=torch.bool))[0], abs=1e-6)
    chunk = task.eval_chunks[0]
    check_identity(model, chunk.batch, task.many_hooks(keeps[:1].repeat(2, 1), chunk), "many", chunk.norms, repeat=2)


def test_identity_check_catches_a_wrong_frozen_factor(model):
    batch = planted_batch(16, seed=6)
    factors = [f * 1.001 for f in norm_scales(model, batch)]
    with pytest.raises(IdentityCheckError, match="identity check failed"):
        check_identity(model, batch, {}, "frozen norms", factors)


# ---------------------------------------------------------------- batched trials


def test_trials_in_a_group_learn_their_own_settings(model, means):
    task = task_of(model, means)
    config = replace(FAST, steps=60)
    weak, strong = Hyperparameters(1e-4, 0.02, 0.05, 60), Hyperparameters(3e-2, 0.02, 0.05, 60)
    scores = train_group(task, [weak, strong], config, lambda *a: None)
    kept = scores.ge(0).sum(1).tolist()
    assert kept[0] > kept[1], kept  # the larger penalty keeps fewer nodes
    # A trial's scores do not depend on its neighbours beyond float noise: trained alone, the same.
    alone = train_group(task, [strong], config, lambda *a: None)[0]
    assert torch.equal(alone.ge(0), scores[1].ge(0))
    # Held-out nodes stay ablated.
    allowed = torch.zeros(scores.size(1), dtype=torch.bool)
    allowed[:10] = True
    within = train_group(task, [weak], replace(config, steps=5), lambda *a: None, allowed=allowed)[0]
    assert not within[10:].ge(0).any()


@pytest.mark.parametrize("settings", [{"loss": "contrast"}, {"norm": "frozen"}, {"ablation": "zero"}])
def test_each_option_still_recovers_the_planted_circuit(model, means, settings):
    result = prune(model, planted_batch(1024, seed=1), means, replace(FAST, controls=False, **settings))
    found, truth = set(result.circuit.nodes), set(PLANTED)
    assert len(found & truth) / len(truth) >= 0.9, sorted(truth - found)
    # The planted circuit is exact under mean ablation; zero ablation also needs the
    # nodes whose mean is far from zero (the query, a residual channel it reads).
    assert len(found & truth) / len(found) >= (0.75 if "ablation" in settings else 0.9), sorted(found - truth)
    assert result.circuit.reached and result.circuit.loss_kind == result.circuit.to_json()["loss_kind"]
    assert result.circuit.to_json()["norm"] == settings.get("norm", "live")


def test_contrast_loss_circuit_is_measured_under_contrast(model, means):
    result = prune(model, planted_batch(1024, seed=1), means, replace(FAST, loss="contrast", controls=False, baseline="none"))
    assert result.circuit.loss_kind == "contrast"
    assert result.circuit.loss <= FAST.target


# ---------------------------------------------------------------- cleanup


class _Cancelling:
    """Nodes 0 and 1 cancel each other: either alone is needed, the two together are not."""

    def __init__(self, n):
        self.n = n

    def _loss(self, keep):
        return 0.0 if bool(keep[0]) == bool(keep[1]) and keep[2] else 1.0

    def evaluate(self, keep):
        return self._loss(keep), 1.0

    def chunks_loss(self, keep, chunks):
        return self.evaluate(keep)

    def evaluate_many(self, keeps, chunks=None, width=16):
        return torch.tensor([self._loss(k) for k in keeps])


def test_pair_pass_removes_two_nodes_that_only_go_together():
    task, n = _Cancelling(6), 6
    keep = torch.tensor([True, True, True, False, False, False])
    config = replace(FAST, pair_candidates=4)
    pick = _pairs(task, _Pick(keep, 0.0, 1.0, True, 1), config, fit=[])
    assert pick.keep.tolist() == [False, False, True, False, False, False]
    # With no pair candidates the pass does nothing.
    same = _pairs(task, _Pick(keep, 0.0, 1.0, True, 1), replace(config, pair_candidates=0), fit=[])
    assert same.keep.tolist() == keep.tolist()


def test_cleanup_is_reported_and_leaves_no_node_removable(model, means):
    result = prune(model, planted_batch(1024, seed=1), means, replace(FAST, baseline="none"))
    assert result.cleanup and all(r["retrain"] <= r["pairs"] <= r["singles"] <= r["start"] for r in result.cleanup)
    assert result.controls.removable == ()
    data = result.to_json()
    assert data["cleanup"] == list(result.cleanup)
    assert data["circuit"]["residual_channels"] <= data["circuit"]["residual_nodes"]


def test_a_control_that_comes_close_says_so():
    from circuitdsl.verification.controls import judge_controls

    circuit = {"node_count": 20, "target": 0.15, "loss": 0.1, "ablation": "mean"}
    run = lambda reached, nodes, loss: {"reached": reached, "nodes": nodes, "loss": loss, "full_loss": 0.0}  # noqa: E731
    controls = {"nonsense": run(True, 90, 0.14), "nonsense_flag": False, "random_model": run(False, 1400, 0.25)}
    checks = judge_controls(controls, circuit)
    assert "close: reached with 4.5x" in checks["nonsense"]["result"]
    assert "close: within 2x the target" in checks["random_model"]["result"]
    far = judge_controls(controls | {"random_model": run(False, 1400, 0.9), "nonsense": run(False, 1400, 1.0)}, circuit)
    assert "close" not in far["random_model"]["result"] and "close" not in far["nonsense"]["result"]


def test_resample_and_frozen_norms_are_deterministic_whatever_the_workers(model, means):
    config = replace(FAST, trials=4, group=2, steps=20, controls=False, baseline="none", ablation="resample",
                     norm="frozen", loss="contrast", cleanup_steps=10)
    a = prune(model, planted_batch(400, seed=4), means, replace(config, workers=1))
    b = prune(model, planted_batch(400, seed=4), means, replace(config, workers=2))
    assert [replace(t, seconds=0) for t in a.trials] == [replace(t, seconds=0) for t in b.trials]
    assert a.circuit.nodes == b.circuit.nodes and a.circuit.loss == b.circuit.loss and a.cleanup == b.cleanup
