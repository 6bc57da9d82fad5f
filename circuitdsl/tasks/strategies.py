"""Hypothesis strategies that draw a task's examples, for property tests of tasks.

    from hypothesis import given
    from circuitdsl.tasks.strategies import task_examples

    @given(task_examples("specs/bracket_depth.circ", "bracket_depth"))
    def test_the_answer_closes_the_list(example):
        ...

Hypothesis chooses the ``random.Random`` each example is drawn with, so a
failing example shrinks toward simpler random streams and replays from the
database like any other. Hypothesis is a test dependency: it is imported
when a strategy is made, never by the rest of the package.
"""

from __future__ import annotations

from pathlib import Path

from circuitdsl.spec.claims import Variant
from circuitdsl.spec.checked import CheckedSpec, TaskSpec
from circuitdsl.tasks.sampler import TaskSampler


def task_examples(
    source: TaskSpec | CheckedSpec | str | Path, name: str | None = None, variant: Variant | None = None
):
    """A strategy of :class:`~circuitdsl.tasks.sampler.Example` for one task.

    ``source`` is the task itself, a checked program, or the path of a
    ``.circ`` file; ``name`` picks the task from a program or file (it may be
    left out when there is only one). A ``variant`` (``spec.hypotheses[h].variants``)
    draws from an adversarial block's changed task instead.
    """
    from hypothesis import strategies as st

    sampler = TaskSampler(_task(source, name), variant)
    return st.randoms(use_true_random=False).map(sampler.draw)


def _task(source, name: str | None) -> TaskSpec:
    if isinstance(source, TaskSpec):
        if name is not None and name != source.name:
            raise ValueError(f"the task given is `{source.name}`, not `{name}`")
        return source
    if isinstance(source, (str, Path)):
        from circuitdsl.pipeline import check_spec

        source = check_spec(source)
    if not isinstance(source, CheckedSpec):
        raise TypeError(f"expected a TaskSpec, a CheckedSpec or a path, not {type(source).__name__}")
    if name is None:
        if len(source.tasks) != 1:
            raise ValueError(f"{source.path} defines {len(source.tasks)} tasks; name one of {sorted(source.tasks)}")
        return next(iter(source.tasks.values()))
    if name not in source.tasks:
        raise KeyError(f"no task `{name}` in {source.path}; it has {sorted(source.tasks)}")
    return source.tasks[name]
