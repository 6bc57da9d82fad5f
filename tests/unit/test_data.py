"""Splits, evaluation sets and mixture streams: the cases the property tests do not reach."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from circuitdsl.tasks import data
from circuitdsl.diagnostics import CircError
from circuitdsl.pipeline import check_spec_text
from circuitdsl.spec.checked import VocabSpec

TINY = 'task tiny {\n    c = choice("x", "y")\n    prompt = "${c}="\n    answer = c\n}\n'
WIDE = 'task wide {\n    n = 0..999\n    prompt = "${n}+"\n    answer = "="\n}\n'
TOKENIZER = data.make_tokenizer(VocabSpec())


def test_a_task_too_small_to_split_is_flagged_not_looped_on():
    tiny = check_spec_text(TINY).tasks["tiny"]
    found = data.probe(tiny)
    assert found.distinct == 2 and not found.splittable
    with pytest.warns(data.SplitWarning, match="too few distinct examples"):
        held = data.make_eval_set(tiny, 20, seed=0, tokenizer=TOKENIZER)
    assert len(held) == 20 and "`tiny`" in held.warnings[0]
    with pytest.warns(data.SplitWarning):
        make = data.MixtureBatches([tiny], batch_size=8, seed=0, tokenizer=TOKENIZER)
    assert make.warnings and make(0).tokens.shape == (8, 3)


def test_a_splittable_task_holds_out_about_one_in_eight():
    wide = check_spec_text(WIDE).tasks["wide"]
    found = data.probe(wide)
    assert found.splittable
    assert 0.09 < found.on_eval / found.distinct < 0.16


def test_dataset_gives_the_same_batches_with_and_without_workers():
    wide = check_spec_text(WIDE + TINY.replace("tiny", "other").replace('"${c}="', '"${c}=" + str(0..99)')).tasks
    mixture = {wide["wide"]: 2, wide["other"]: 1}
    reference = data.training_batches(mixture, batch_size=16, seed=5, tokenizer=TOKENIZER)
    expected = [next(reference) for _ in range(6)]
    dataset = data.mixture_dataset(mixture, batch_size=16, seed=5, tokenizer=TOKENIZER, steps=6)
    assert len(dataset) == 6
    for workers in (0, 2):
        got = list(DataLoader(dataset, batch_size=None, num_workers=workers))
        assert len(got) == 6
        for a, b in zip(got, expected):
            assert torch.equal(a.tokens, b.tokens) and torch.equal(a.task_ids, b.task_ids)


def test_an_answer_the_vocab_cannot_encode_is_a_located_error():
    # `word(2)` cannot be enumerated, so `circ check` lets it through; encoding catches it.
    spec = check_spec_text('task t {\n    prompt = "a"\n    answer = word(2)\n}\n').tasks["t"]
    with pytest.raises(CircError) as err:
        data.make_eval_set(spec, 5, seed=0, tokenizer=TOKENIZER)
    (diag,) = err.value.diagnostics
    assert diag.code == "C0404" and "task `t` drew prompt 'a' with the answer" in diag.message
    assert diag.span.line == 1


def test_a_prompt_longer_than_the_context_is_a_located_error():
    spec = check_spec_text(WIDE).tasks["wide"]
    with pytest.raises(CircError) as err:
        data.make_eval_set(spec, 50, seed=0, tokenizer=TOKENIZER, context=3)
    assert err.value.diagnostics[0].code == "C0405"


def test_mixtures_are_validated():
    wide = check_spec_text(WIDE).tasks["wide"]
    with pytest.raises(ValueError, match="one weight per task"):
        data.MixtureBatches([wide], [1, 2], batch_size=4, seed=0, tokenizer=TOKENIZER)
    with pytest.raises(ValueError, match="not all zero"):
        data.MixtureBatches({wide: 0}, batch_size=4, seed=0, tokenizer=TOKENIZER)
    with pytest.raises(ValueError, match="batch_size"):
        data.MixtureBatches([wide], batch_size=0, seed=0, tokenizer=TOKENIZER)


def test_task_batch_returns_examples_row_for_row():
    spec = check_spec_text(WIDE).tasks["wide"]
    batch, examples = data.task_batch(spec, 12, seed=0, tokenizer=TOKENIZER, side="eval")
    assert len(examples) == 12 == len(batch)
    assert all(data.split_of(ex.prompt, ex.answer) == "eval" for ex in examples)
    assert TOKENIZER.decode(batch.tokens[3].tolist()) == examples[3].prompt
