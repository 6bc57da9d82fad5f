"""The `stop` setting of a train block: what it accepts, what it refuses, and the plan it gives."""

from __future__ import annotations

import pytest

from circuitdsl.diagnostics import CircError
from circuitdsl.pipeline import check_spec_text
from circuitdsl.spec.plan import plan_training

BASE = """
task t {
    c      = choice("x", "y")
    prompt = "${c}="
    answer = c
}
model m { layers = 1 }
train r {
    model = m
    tasks = t
    %s
}
"""


def _train(setting: str):
    spec = check_spec_text(BASE % setting)
    return spec, spec.trains["r"]


@pytest.mark.parametrize(("written", "share"), [("", None), ("stop = never", None), ("stop = accuracy >= 98%", 0.98), ("stop = accuracy > 0.5", 0.5), ("stop = 90%", 0.9)])
def test_stop_reads_as_the_accuracy_share_or_none(written: str, share) -> None:
    _, train = _train(written)
    assert train.stop == share


@pytest.mark.parametrize(("written", "code"), [("stop = accuracy >= 1.5", "C0401"), ("stop = loss <= 0.1", "C0302"), ("stop = always", "C0302"), ('stop = "98%"', "C0302")])
def test_a_bad_stopping_rule_is_located_and_refused(written: str, code: str) -> None:
    with pytest.raises(CircError) as caught:
        _train(written)
    diagnostics = caught.value.diagnostics
    assert [d.code for d in diagnostics] == [code]
    assert diagnostics[0].span.line == BASE.count("\n", 0, BASE.index("%s")) + 1


def test_the_rule_enters_the_models_key_only_when_set() -> None:
    spec, never = _train("")
    _, also_never = _train("stop = never")
    _, rule = _train("stop = accuracy >= 98%")
    keys = [plan_training(spec.tasks, spec.vocab, t).key for t in (never, also_never, rule)]
    assert keys[0] == keys[1] != keys[2]
    assert "stop_accuracy" not in plan_training(spec.tasks, spec.vocab, never).train
    assert plan_training(spec.tasks, spec.vocab, rule).train["stop_accuracy"] == 0.98


def test_eval_every_changes_the_key_only_under_a_rule() -> None:
    spec, plain = _train("")
    _, finer = _train("eval_every = 50")
    _, rule = _train("stop = accuracy >= 98%")
    _, finer_rule = _train("stop = accuracy >= 98%\n    eval_every = 50")
    key = lambda t: plan_training(spec.tasks, spec.vocab, t).key  # noqa: E731
    assert key(plain) == key(finer) and key(rule) != key(finer_rule)
    assert plan_training(spec.tasks, spec.vocab, finer).train["eval_every"] == 50
