"""Probing: readouts at the answer, recorded activations, the positions a statistic reads."""

from __future__ import annotations

import pytest
import torch

from runtime.batch import encode_batch
from runtime.planted import PLANTED, TOKENIZER, planted_batch, planted_model
from runtime.probe import positions, readout, record

MODEL = planted_model()
BATCH = planted_batch(64, seed=3)


# Tiny models: see one_thread in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


def test_readout_matches_answer_pos_mode_and_the_planted_model_is_right():
    out = readout(MODEL, BATCH)
    with torch.no_grad():
        direct = MODEL(BATCH.tokens, answer_pos=BATCH.answer_pos)
    torch.testing.assert_close(out.logits, direct)
    assert out.correct.all()
    assert (out.answer_logprob > -0.1).all()


def test_margin_is_answer_minus_best_competitor_and_falls_back_to_best_other_token():
    out = readout(MODEL, BATCH)
    rows = torch.arange(len(BATCH))
    expected = out.logits[rows, BATCH.answers] - out.logits[rows, BATCH.competitors[:, 0]]
    torch.testing.assert_close(out.margin, expected)
    assert (out.margin > 0).all()
    # Without competitors the margin is over every other token: never larger.
    bare = encode_batch(TOKENIZER, ["ab='cd"], ["'"])
    plain = readout(MODEL, bare)
    others = plain.logits[0].clone()
    others[TOKENIZER.ids["'"]] = float("-inf")
    assert plain.margin[0] == plain.logits[0, TOKENIZER.ids["'"]] - others.max()


def test_a_hook_changes_the_readout():
    # Zeroing the layer-1 neuron that writes OUT leaves the unembedding to ONE: `"` always wins.
    out = readout(MODEL, BATCH, {"1.mlp.post_act": lambda x: torch.zeros_like(x)})
    assert (out.argmax == TOKENIZER.ids['"']).all()
    assert not out.correct.all()


def test_record_gives_the_chosen_columns_at_every_position_and_sees_hooks_first():
    seen = {}
    with MODEL.hooks({"0.attn.resid_delta": lambda x: seen.setdefault("x", x.clone())}):
        MODEL(BATCH.tokens)
    got = record(MODEL, BATCH, {"0.attn.resid_delta": torch.tensor([4, 6])})
    assert got["0.attn.resid_delta"].shape == (len(BATCH), BATCH.tokens.size(1), 2)
    torch.testing.assert_close(got["0.attn.resid_delta"], seen["x"][..., [4, 6]])
    patched = record(MODEL, BATCH, {"1.mlp.post_act": torch.tensor([0])}, {"1.mlp.post_act": lambda x: x + 5})
    plain = record(MODEL, BATCH, {"1.mlp.post_act": torch.tensor([0])})
    torch.testing.assert_close(patched["1.mlp.post_act"], plain["1.mlp.post_act"] + 5)
    assert "0.attn.resid_in[0]" in PLANTED  # the sites recorded above are the planted circuit's


def test_positions_count_back_from_the_answer_and_skip_rows_too_short():
    batch = encode_batch(TOKENIZER, ["a='b", "abc='defg"], ["'", "'"])
    at_answer = positions(batch, 0)
    assert at_answer.sum(1).tolist() == [1, 1]
    assert at_answer[0, 4] and at_answer[1, 9]
    assert positions(batch, -4)[0, 0] and positions(batch, -4)[1, 5]
    assert positions(batch, -5)[0].sum() == 0 and positions(batch, -5)[1, 4]
    assert torch.equal(positions(batch, None), batch.attention_mask)
