"""An adversarial variant is checked from its task's analysis: what it leaves as the task has it
is not checked again (a third of checking a 1 MB spec). Reusing must change nothing a user
sees: the same types, evaluation order and diagnostics as checking the variant from scratch."""

from __future__ import annotations

from pathlib import Path

import pytest

from circuitdsl.check.sink import DiagnosticSink
from circuitdsl.check.tasks import TaskAnalysis, variant_bindings
from circuitdsl.spec.checked import VocabSpec
from circuitdsl.syntax import ast as n
from circuitdsl.syntax.parser import parse

SPECS = Path(__file__).resolve().parents[2] / "specs"

TASK = """
task t {
    depth  = choice(1, 2)
    n      = 1..4
    body   = nested_list(depth: depth, items: n, values: int(0..9))
    prompt = "x = " + body
    answer = if depth == 2 then "]]" else "]"
}
"""

#: Variants that change something an unchanged binding reads, or break a type: the unchanged
#: text must be checked again wherever what it reads changed.
VARIANTS = {
    "same": "",
    "prompt": 'prompt = "# [[\\n" + prompt',
    "depth": "depth = 1",
    "depth_text": 'depth = "deep"',  # body and answer read it: both must be re-typed
    "n_crossed": "n = 5..2",  # body's draw check must see the crossed range
    "new_var": 'k = 3\n        prompt = repeat("[", k) + prompt',
}


def analyse(bindings, report, base=None):
    analysis = TaskAnalysis(bindings, VocabSpec(chars="printable", tokens=("]]",)), report, "variant", base=base)
    ok = analysis.check()
    return ok, analysis


def task_and_overrides(variant: str):
    module = parse(TASK, "t.circ")
    (task,) = [item for item in module.items if isinstance(item, n.SettingsBlock)]
    bindings = {b.name: b for b in task.body if isinstance(b, n.Binding)}
    overrides = []
    if variant:
        extra = parse("task v {\n    " + variant + "\n}\n", "v.circ")
        (block,) = extra.items
        overrides = [b for b in block.body if isinstance(b, n.Binding)]
    return bindings, overrides


def messages(report: DiagnosticSink) -> list[tuple]:
    return [(d.code, d.message, str(d.span)) for d in report.diagnostics]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_variant_checked_from_its_task_matches_one_checked_from_scratch(variant):
    bindings, overrides = task_and_overrides(VARIANTS[variant])
    base_ok, base = analyse(bindings, DiagnosticSink())
    assert base_ok
    merged = variant_bindings(bindings, overrides)
    fresh_report, reused_report = DiagnosticSink(), DiagnosticSink()
    fresh_ok, fresh = analyse(merged, fresh_report)
    reused_ok, reused = analyse(merged, reused_report, base=base)
    assert reused_ok == fresh_ok
    assert messages(reused_report) == messages(fresh_report)
    if fresh_ok:
        assert reused.typing() == fresh.typing()
    if variant in ("depth_text", "n_crossed"):
        assert not fresh_ok  # the cases that must still be caught are caught


def test_a_broken_task_is_never_reused():
    bindings, _ = task_and_overrides("")
    bindings["answer"] = n.Binding("answer", n.Name("missing", span=None), span=None, name_span=None)
    ok, base = analyse(bindings, DiagnosticSink())
    assert not ok
    reused = TaskAnalysis(bindings, VocabSpec(chars="printable", tokens=("]]",)), DiagnosticSink(), "v", base=base)
    assert reused.base is None


@pytest.mark.parametrize("spec", sorted(p.name for p in SPECS.glob("*.circ")))
def test_shipped_specs_check_alike_with_and_without_reuse(spec, monkeypatch):
    from circuitdsl.check import claims
    from circuitdsl.pipeline import check_spec

    reused = check_spec(SPECS / spec)
    original = claims.TaskAnalysis

    def from_scratch(*args, base=None, **kwargs):
        return original(*args, **kwargs)

    monkeypatch.setattr(claims, "TaskAnalysis", from_scratch)
    fresh = check_spec(SPECS / spec)
    compared = 0
    for name, hypothesis in fresh.hypotheses.items():
        assert reused.hypotheses[name].claims == hypothesis.claims
        for mine, theirs in zip(reused.hypotheses[name].claims, hypothesis.claims):
            variant = getattr(theirs, "variant", None)
            if variant is not None:
                # Typing is left out of claims' equality, so compare it on its own.
                assert mine.variant.typing == variant.typing
                compared += 1
    if "adversarial" in (SPECS / spec).read_text():
        assert compared
