"""`circ show`: a checked program as tables a person can read."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
from rich.table import Table

from circuitdsl.spec.checked import CheckedSpec


def _source(program: CheckedSpec, span) -> str:
    text = program.sources.get(span.path, "") if span else ""
    return text[span.start : span.end] if span else "?"


def _settings_table(title: str, specs: dict) -> Table | None:
    if not specs:
        return None
    table = Table(title=title, title_justify="left")
    table.add_column("setting", style="bold")
    names = list(specs)
    for name in names:
        table.add_column(name)
    fields = [f.name for f in attrs.fields(type(next(iter(specs.values())))) if f.eq and f.name != "name"]
    for field in fields:
        row = []
        for spec in specs.values():
            value = getattr(spec, field)
            shown = _SHOWN.get(field)
            row.append(shown(value) if shown else getattr(value, "name", None) or _plain(value))
        table.add_row(field, *row)
    return table


#: Settings whose checked value reads better written back as the spec writes it.
_SHOWN = {"stop": lambda share: "never" if share is None else f"accuracy >= {share:.4g}"}


def _plain(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) for v in value):
        return ", ".join(f"{k}: {w:g}" for k, w in value)
    if isinstance(value, tuple):
        return " .. ".join(_plain(v) for v in value)
    return str(value)


def render_program(program: CheckedSpec) -> Iterator:
    vocab = Table(title="vocab", title_justify="left")
    vocab.add_column("single characters")
    vocab.add_column("multi-character tokens")
    vocab.add_row(f"{len(program.vocab.chars)} characters", ", ".join(repr(t) for t in program.vocab.tokens) or "-")
    yield vocab
    for task in program.tasks.values():
        table = Table(title=f"task {task.name}", title_justify="left")
        table.add_column("variable", style="bold")
        table.add_column("definition")
        table.add_column("role")
        for binding in task.bindings:
            role = "latent" if binding.name in task.latents else binding.name
            table.add_row(binding.name, _source(program, binding.value.span), role)
        yield table
    for title, specs in (("models", program.models), ("training", program.trains), ("pruning", program.prunes)):
        table = _settings_table(title, specs)
        if table is not None:
            yield table
    for hypothesis in program.hypotheses.values():
        table = Table(title=f"hypothesis {hypothesis.name} on {hypothesis.prune.name}", title_justify="left")
        table.add_column("line", justify="right")
        table.add_column("claim")
        for claim in hypothesis.claims:
            table.add_row(str(claim.span.line) if claim.span else "", _source(program, claim.span).split("\n")[0])
        yield table
