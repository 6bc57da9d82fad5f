"""The commands that need no model: `circ check`, `fmt`, `show` and `sample`. None imports torch."""

from __future__ import annotations

import difflib
import json
import random
import sys
from pathlib import Path
from typing import List, Optional

import typer

from circuitdsl.cli.app import app, boundary, print_error, stderr, stdout
from circuitdsl.diagnostics import CircError, UsageError, suggest
from circuitdsl.exit_codes import ExitCode

# ---------------------------------------------------------------- check


@app.command()
def check(files: List[Path] = typer.Argument(..., help="The .circ files to check.", show_default=False)) -> None:
    """Check .circ files for every error that can be found without running anything.

    Syntax, names across imports, types, value ranges, answers that are not one
    token, prompts longer than a model's context: all reported in one run, each
    with its file:line:col. Never imports PyTorch.

    [bold]Example[/]: circ check specs/*.circ

    Exit codes: 0 every file valid, 4 some file invalid.
    """
    from circuitdsl.pipeline import check_spec

    invalid = False
    with boundary():
        for file in files:
            try:
                spec = check_spec(file)
            except CircError as err:
                print_error(err)
                invalid = True
                continue
            counts = ", ".join(
                f"{len(group)} {label}"
                for label, group in (
                    ("tasks", spec.tasks),
                    ("models", spec.models),
                    ("train", spec.trains),
                    ("prune", spec.prunes),
                    ("hypotheses", spec.hypotheses),
                )
                if group
            )
            stderr.print(f"[green]ok[/] {file} ({counts or 'empty'})")
    raise typer.Exit(ExitCode.USAGE if invalid else ExitCode.OK)


# ---------------------------------------------------------------- fmt


@app.command()
def fmt(
    files: List[Path] = typer.Argument(..., help="The .circ files to format in place.", show_default=False),
    check_only: bool = typer.Option(False, "--check", help="Change nothing; print what would change as a unified diff, and exit 1 if a file is not formatted."),
) -> None:
    """Rewrite .circ files in the canonical layout, keeping every comment.

    Formatting is idempotent: running it twice changes nothing the second time.
    With --check, the diff of each file that would change goes to stdout.

    [bold]Example[/]: circ fmt --check specs/*.circ

    Exit codes: 0 formatted, 1 (with --check) some file would be reformatted, 4 some file does not parse.
    """
    from circuitdsl.syntax.files import read_source
    from circuitdsl.syntax.formatter import format_source

    invalid = unformatted = False
    with boundary():
        for file in files:
            try:
                text = read_source(file)
                formatted = format_source(text, str(file))
            except CircError as err:
                print_error(err)
                invalid = True
                continue
            if formatted == text:
                continue
            if check_only:
                stderr.print(f"would reformat {file}")
                # Plain text: a diff of a spec is full of brackets that rich would read as markup.
                sys.stdout.write(format_diff(text, formatted, str(file)))
                unformatted = True
            else:
                file.write_text(formatted, encoding="utf-8")
                stderr.print(f"reformatted {file}")
    raise typer.Exit(ExitCode.USAGE if invalid else ExitCode.FAILED if unformatted else ExitCode.OK)


def format_diff(before: str, after: str, name: str) -> str:
    """What ``circ fmt`` would change, as a unified diff (``patch -p0`` applies it)."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=name, tofile=f"{name} (formatted)"
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


# ---------------------------------------------------------------- show


@app.command()
def show(
    file: Path = typer.Argument(..., help="The .circ file to show.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout instead of tables."),
) -> None:
    """Show what a spec means once imports, `extends` and defaults are resolved.

    [bold]Example[/]: circ show specs/bracket_depth.circ --json

    Exit codes: 0 shown, 4 invalid spec.
    """
    from circuitdsl.pipeline import check_spec
    from circuitdsl.spec.serialize import SCHEMA_VERSION, to_data

    with boundary():
        spec = check_spec(file)
        if as_json:
            document = {"schema_version": SCHEMA_VERSION, "program": to_data(spec)}
            sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
            return
        from circuitdsl.report.show import render_program

        for renderable in render_program(spec):
            stdout.print(renderable)


# ---------------------------------------------------------------- sample


@app.command()
def sample(
    file: Path = typer.Argument(..., help="The .circ file that defines the task.", show_default=False),
    task_name: Optional[str] = typer.Option(None, "--task", "-t", help="The task to draw from (may be left out when the file has one)."),
    adversarial: Optional[str] = typer.Option(None, "--adversarial", "-a", help="Draw from this adversarial variant of a hypothesis instead."),
    count: int = typer.Option(10, "-n", "--count", min=1, help="How many examples."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same examples."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout instead of a table."),
) -> None:
    """Draw examples of a task, to see what a model will be trained on.

    Each row shows the prompt split into the spec's tokens (whitespace drawn
    as ␣ ↵ ⇥), the answer and its competitors, every latent variable, and the
    side of the train/eval split the example falls on. Needs no PyTorch.

    [bold]Example[/]: circ sample specs/bracket_depth.circ --task bracket_depth -n 5

    Exit codes: 0 ok, 3 internal error, 4 invalid spec or usage (an unknown task).
    """
    from circuitdsl.pipeline import check_spec
    from circuitdsl.report.samples import sample_document, sample_table
    from circuitdsl.tasks.data import check_encodable, make_tokenizer
    from circuitdsl.tasks.sampler import TaskSampler

    with boundary():
        spec = check_spec(file)
        found, variant = None, None
        if adversarial is not None:
            variants = {v.name: (h, v) for h in spec.hypotheses.values() for v in h.variants}
            if adversarial not in variants:
                hint = suggest(adversarial, variants) or (
                    "known: " + ", ".join(f"`{k}`" for k in sorted(variants)) if variants else f"{file} has no adversarial blocks"
                )
                raise UsageError(f"no adversarial block named `{adversarial}` in {file}; {hint}")
            hypothesis, found = variants[adversarial]
            if task_name is not None and task_name != hypothesis.prune.task:
                raise UsageError(f"adversarial `{adversarial}` is a variant of task `{hypothesis.prune.task}`, not `{task_name}`")
            task_name = hypothesis.prune.task
            variant = f"{hypothesis.name}.{found.name}"
        if task_name is None:
            if len(spec.tasks) != 1:
                known = ", ".join(f"`{t}`" for t in spec.tasks) or "none"
                raise UsageError(f"{file} defines {len(spec.tasks)} tasks; choose one with --task ({known})")
            task_name = next(iter(spec.tasks))
        if task_name not in spec.tasks:
            hint = suggest(task_name, spec.tasks) or "known: " + (", ".join(f"`{t}`" for t in spec.tasks) or "none")
            raise UsageError(f"no task named `{task_name}` in {file}; {hint}")
        task = spec.tasks[task_name]
        sampler = TaskSampler(task, found, sources=spec.sources)
        rng = random.Random(f"sample:{task_name}:{seed}")
        examples = [sampler.draw(rng) for _ in range(count)]
        tokenizer = make_tokenizer(spec.vocab)
        check_encodable(examples, tokenizer, tasks=[task])
        if as_json:
            from circuitdsl.spec.serialize import SCHEMA_VERSION

            document = {"schema_version": SCHEMA_VERSION, **sample_document(task_name, examples, tokenizer, seed=seed, variant=variant)}
            sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
            return
        color = stdout.color_system is not None and not stdout.no_color
        title = f"task {task_name}" + (f", variant {variant}" if variant else "") + f": {count} examples, seed {seed}"
        stdout.print(sample_table(examples, sampler.latents, tokenizer, title=title, color=color))
