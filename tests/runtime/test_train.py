"""Training: it learns, it is deterministic, it keeps the declared density, it fails loudly."""

from __future__ import annotations

import math
import random

import pytest
import torch

from runtime.batch import encode_batch
from runtime.checkpoint import model_from_bytes, model_to_bytes
from runtime.model import ModelConfig, SparseGPT
from runtime.sparsity import sparsified_parameters
from runtime.tokenizer import Tokenizer
from runtime.train import TaskMetrics, all_positions_loss, TrainConfig, collapsed_tasks, evaluate, train

TOKENIZER = Tokenizer(list("ab'\" =xyz"))
NAMES = ("quote",)


def _quote_batch(rng: random.Random, n: int):
    """Close the string with the quote that opened it: `x = 'ab` -> `'`."""
    prompts, answers = [], []
    for _ in range(n):
        q = rng.choice("'\"")
        prompts.append(f"{rng.choice('xyz')} = {q}" + "".join(rng.choice("ab") for _ in range(rng.randint(1, 5))))
        answers.append(q)
    return encode_batch(TOKENIZER, prompts, answers, task_names=NAMES, context=16)


def _stream(seed: int):
    rng = random.Random(seed)
    while True:
        yield _quote_batch(rng, 32)


def _model(seed=0, density=0.25) -> SparseGPT:
    config = ModelConfig(vocab_size=len(TOKENIZER), context=16, n_layer=1, d_model=16, n_head=2, d_head=8, d_mlp=32, density=density)
    return SparseGPT(config, seed=seed)


EVAL = _quote_batch(random.Random(12345), 200)
FAST = TrainConfig(steps=150, lr=1e-2, eval_every=50, anneal=(0.05, 0.5))


def test_a_tiny_model_learns_quote_closing():
    model = _model()
    before = evaluate(model, EVAL)["quote"]
    result = train(model, FAST, _stream(0), EVAL)
    after = result.final["quote"]
    assert before.accuracy < 0.8 and after.accuracy >= 0.95, (before, after)
    assert result.ok and result.collapsed == []
    assert [c["step"] for c in result.curve] == [50, 100, 150]


def test_training_is_bit_identical_for_a_seed_and_differs_across_seeds():
    runs = []
    for seed in (0, 0, 1):
        model = _model(seed)
        train(model, TrainConfig(steps=20, lr=1e-2), _stream(seed), EVAL)
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_saved_weights_have_exactly_the_declared_density():
    model = _model(density=0.25)
    train(model, TrainConfig(steps=30, lr=1e-2, anneal=(0.0, 0.5)), _stream(0), EVAL)
    loaded, _ = model_from_bytes(model_to_bytes(model, TOKENIZER))
    for name, w in sparsified_parameters(loaded):
        assert torch.count_nonzero(w).item() == max(1, round(0.25 * w.numel())), name


def test_checkpoint_round_trip_gives_identical_logits():
    model = _model()
    train(model, TrainConfig(steps=5), _stream(0), EVAL)
    loaded, tokenizer = model_from_bytes(model_to_bytes(model, TOKENIZER))
    assert tokenizer == TOKENIZER
    model.eval()
    assert torch.equal(model(EVAL.tokens), loaded(EVAL.tokens))


def test_a_corrupt_checkpoint_is_refused_not_loaded():
    data = model_to_bytes(_model(), TOKENIZER)
    with pytest.raises(ValueError, match="not a circuitdsl checkpoint"):
        model_from_bytes(data[: len(data) // 2])


def test_a_diverging_run_stops_and_rolls_back_to_finite_weights():
    model = _model()
    result = train(model, TrainConfig(steps=40, lr=1e30, snapshot_every=5, warmup=0.0), _stream(0), EVAL)
    assert result.stopped is not None and "rolled back" in result.stopped
    assert not result.ok
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_an_untrained_model_counts_as_collapsed_and_a_good_one_does_not():
    assert collapsed_tasks(evaluate(_model(), EVAL)) == ["quote"]
    good = {"quote": TaskMetrics(accuracy=1.0, loss=0.01, examples=10, chance_loss=math.log(2))}
    stuck = {"quote": TaskMetrics(accuracy=0.5, loss=0.69, examples=10, chance_loss=math.log(2))}
    assert collapsed_tasks(good) == [] and collapsed_tasks(stuck) == ["quote"]


def test_loss_on_all_positions_trains_the_prompt_positions_too():
    # Accuracy at the answer is no measure here: with every position in the
    # loss, the model learns that a string may go on, so it hedges there.
    model = _model()
    before = all_positions_loss(model, EVAL).item()
    train(model, TrainConfig(steps=100, lr=1e-2, loss_on="all"), _stream(0), EVAL)
    after = all_positions_loss(model, EVAL).item()
    assert after < 0.6 * before, (before, after)


def test_stop_after_runs_the_start_of_the_full_schedule_then_evaluates():
    def losses(stop_after=None):
        seen = []
        result = train(_model(), FAST, _stream(0), EVAL, stop_after=stop_after, progress=lambda done, total, info: seen.append((done, total, info["loss"], info["density"])))
        return result, seen

    full, full_steps = losses()
    start, start_steps = losses(stop_after=30)
    # The same steps as the full run's first 30 (learning rate and density on the 150-step
    # schedule, not a schedule squeezed into 30), reported out of 30.
    assert [s[2:] for s in start_steps] == [s[2:] for s in full_steps[:30]]
    assert start_steps[-1][:2] == (30, 30) and start.steps_done == 30
    assert [c["step"] for c in start.curve] == [30] and start.final["quote"].examples == 200
    assert full.steps_done == 150


def test_the_stopping_rule_ends_the_run_after_the_anneal_with_the_full_runs_weights():
    full_model, stopped_model = _model(), _model()
    full = train(full_model, FAST, _stream(0), EVAL)
    rule = TrainConfig(steps=150, lr=1e-2, eval_every=50, anneal=(0.05, 0.5), stop_accuracy=0.9)
    stopped = train(stopped_model, rule, _stream(0), EVAL)
    # The anneal ends at step 75: the rule is checked right after it, then at every evaluation.
    assert stopped.finished_early is not None and stopped.steps_done < 150, stopped.curve
    assert stopped.steps_done >= 76 and stopped.final["quote"].accuracy >= 0.9
    assert stopped.ok
    # Bit for bit the first steps of the run without the rule: the same schedule, cut short.
    again = _model()
    train(again, FAST, _stream(0), EVAL, stop_after=stopped.steps_done)
    for a, b in zip(again.state_dict().values(), stopped_model.state_dict().values()):
        assert torch.equal(a, b)
    assert full.steps_done == 150 and full.finished_early is None
    for name, w in sparsified_parameters(stopped_model):
        assert torch.count_nonzero(w).item() == max(1, round(0.25 * w.numel())), name


def test_the_stopping_rule_never_fires_before_the_anneal_is_done_or_when_accuracy_falls_short():
    early = train(_model(), TrainConfig(steps=150, lr=1e-2, eval_every=10, anneal=(0.05, 0.9), stop_accuracy=0.0), _stream(0), EVAL)
    assert early.finished_early is not None and early.steps_done == math.ceil(0.9 * 150) + 1
    # At a rate this small the quotes are not learned, so the run goes to its last step.
    short = train(_model(), TrainConfig(steps=40, lr=1e-5, eval_every=10, anneal=(0.05, 0.5), stop_accuracy=0.9), _stream(1), EVAL)
    assert short.final["quote"].accuracy < 0.9 and short.steps_done == 40 and short.finished_early is None


def test_a_stop_accuracy_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="stop_accuracy"):
        TrainConfig(steps=10, stop_accuracy=1.5)


def test_after_the_rule_fires_the_cooldown_brings_the_rate_down_to_zero():
    seen = []
    config = TrainConfig(steps=150, lr=1e-2, eval_every=50, anneal=(0.05, 0.5), stop_accuracy=0.9, cooldown=20)
    result = train(_model(), config, _stream(0), EVAL, progress=lambda done, total, info: seen.append((done, total, info["lr"])))
    plain = train(_model(), TrainConfig(steps=150, lr=1e-2, eval_every=50, anneal=(0.05, 0.5), stop_accuracy=0.9), _stream(0), EVAL)
    fired = plain.steps_done
    assert result.steps_done == fired + 20 and "20 steps of cooldown" in result.finished_early
    rates = [lr for done, _, lr in seen[fired:]]
    assert all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] < 0.06 * seen[fired - 1][2]
    assert seen[-1][:2] == (fired + 20, fired + 20)  # the bar's total follows the new end
    assert result.final["quote"].accuracy >= 0.9 and result.ok


def test_a_cooldown_longer_than_what_is_left_runs_the_schedule_to_its_end():
    config = TrainConfig(steps=150, lr=1e-2, eval_every=50, anneal=(0.05, 0.5), stop_accuracy=0.9, cooldown=140)
    result = train(_model(), config, _stream(0), EVAL)
    assert result.steps_done == 150 and result.finished_early is None
