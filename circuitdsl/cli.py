"""`circ`: the command line. A thin boundary: parse arguments, call the library, render, exit.

Library code raises :class:`~circuitdsl.diagnostics.CircError`; this module turns
it into a readable message on stderr and an exit code, never a traceback.
Commands that need the PyTorch runtime import it inside the command, so
`circ check` stays instant.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import __version__
from .diagnostics import CircError
from .exitcodes import ExitCode

app = typer.Typer(
    name="circ",
    help="Declare circuit hypotheses about weight-sparse transformers in .circ files, and check them.\n\n"
    "Exit codes: 0 ok, 1 invalid/refuted/unformatted, 2 usage or interrupted, 3 internal error, 4 invalid spec (runtime commands).",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)


def _version(value: bool) -> None:
    if value:
        stdout.print(f"circ {__version__}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _main(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """circuitdsl: checkable claims about the circuits of weight-sparse transformers."""


def print_error(err: CircError) -> None:
    for line in err.render().split("\n"):
        text = Text(line)
        if line.startswith("error["):
            text.stylize("bold red", 0, line.index("]") + 1)
        elif line.lstrip().startswith("= help:"):
            text.stylize("cyan")
        elif set(line.split("|")[-1].strip()) == {"^"}:
            text.stylize("bold red")
        stderr.print(text)


def _internal_error(exc: BaseException) -> ExitCode:
    if os.environ.get("CIRC_DEBUG"):
        raise exc
    stderr.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}")
    stderr.print("this is a bug in circ, not in your spec; rerun with CIRC_DEBUG=1 for the traceback")
    return ExitCode.INTERNAL_ERROR


# ---------------------------------------------------------------- check


@app.command()
def check(files: List[Path] = typer.Argument(..., help="The .circ files to check.", show_default=False)) -> None:
    """Check .circ files for every error that can be found without running anything.

    Syntax, names across imports, types, value ranges, answers that are not one
    token, prompts longer than a model's context: all reported in one run, each
    with its file:line:col. Never imports PyTorch.

    [bold]Example[/]: circ check specs/*.circ

    Exit codes: 0 all valid, 1 some file invalid, 2 usage.
    """
    from .loader import load_program

    failed = False
    for file in files:
        try:
            program = load_program(file)
        except CircError as err:
            print_error(err)
            failed = True
            continue
        except Exception as exc:  # noqa: BLE001 - the boundary turns crashes into exit 3
            raise typer.Exit(_internal_error(exc))
        counts = ", ".join(
            f"{len(group)} {label}"
            for label, group in (
                ("tasks", program.tasks),
                ("models", program.models),
                ("train", program.trains),
                ("prune", program.prunes),
                ("hypotheses", program.hypotheses),
            )
            if group
        )
        stderr.print(f"[green]ok[/] {file} ({counts or 'empty'})")
    raise typer.Exit(ExitCode.FAILED if failed else ExitCode.OK)


# ---------------------------------------------------------------- fmt


@app.command()
def fmt(
    files: List[Path] = typer.Argument(..., help="The .circ files to format in place.", show_default=False),
    check_only: bool = typer.Option(False, "--check", help="Change nothing; exit 1 if a file is not formatted."),
) -> None:
    """Rewrite .circ files in the canonical layout, keeping every comment.

    Formatting is idempotent: running it twice changes nothing the second time.

    [bold]Example[/]: circ fmt --check specs/*.circ
    """
    from .formatter import format_source

    failed = False
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
            formatted = format_source(text, str(file))
        except CircError as err:
            print_error(err)
            failed = True
            continue
        except OSError as err:
            stderr.print(f"[bold red]error:[/] cannot read {file}: {err.strerror}")
            failed = True
            continue
        if formatted == text:
            continue
        if check_only:
            stderr.print(f"would reformat {file}")
            failed = True
        else:
            file.write_text(formatted, encoding="utf-8")
            stderr.print(f"reformatted {file}")
    raise typer.Exit(ExitCode.FAILED if failed else ExitCode.OK)


# ---------------------------------------------------------------- show


@app.command()
def show(
    file: Path = typer.Argument(..., help="The .circ file to show.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout instead of tables."),
) -> None:
    """Show what a spec means once imports, `extends` and defaults are resolved.

    [bold]Example[/]: circ show specs/bracket_depth.circ --json
    """
    from .loader import load_program
    from .serialize import SCHEMA_VERSION, to_data

    try:
        program = load_program(file)
    except CircError as err:
        print_error(err)
        raise typer.Exit(ExitCode.FAILED)
    if as_json:
        document = {"schema_version": SCHEMA_VERSION, "program": to_data(program)}
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        raise typer.Exit(ExitCode.OK)
    from .show import render_program

    for renderable in render_program(program):
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
    from . import nodes as n
    from .data import check_encodable, make_tokenizer
    from .diagnostics import suggest
    from .loader import load_program
    from .sample_view import sample_document, sample_table
    from .sampler import TaskSampler

    def usage(message: str) -> typer.Exit:
        # Not wrapped, so the line can be searched for as a whole.
        stderr.print(f"[bold red]error:[/] {message}", soft_wrap=True)
        return typer.Exit(ExitCode.INVALID_SPEC)

    try:
        program = load_program(file)
    except CircError as err:
        print_error(err)
        raise typer.Exit(ExitCode.INVALID_SPEC)
    overrides, variant = (), None
    if adversarial is not None:
        variants = [
            (hypothesis, claim)
            for hypothesis in program.hypotheses.values()
            for claim in hypothesis.claims
            if isinstance(claim, n.Adversarial)
        ]
        found = [(h, c) for h, c in variants if c.name == adversarial]
        if not found:
            known = sorted({c.name for _, c in variants})
            hint = suggest(adversarial, known) or ("known: " + ", ".join(f"`{k}`" for k in known) if known else f"{file} has no adversarial blocks")
            raise usage(f"no adversarial block named `{adversarial}` in {file}; {hint}")
        hypothesis, claim = found[0]
        if task_name is not None and task_name != hypothesis.prune.task:
            raise usage(f"adversarial `{adversarial}` is a variant of task `{hypothesis.prune.task}`, not `{task_name}`")
        task_name = hypothesis.prune.task
        overrides = tuple(b for b in claim.body if isinstance(b, n.Binding))
        variant = f"{hypothesis.name}.{claim.name}"
    if task_name is None:
        if len(program.tasks) != 1:
            known = ", ".join(f"`{t}`" for t in program.tasks) or "none"
            raise usage(f"{file} defines {len(program.tasks)} tasks; choose one with --task ({known})")
        task_name = next(iter(program.tasks))
    if task_name not in program.tasks:
        hint = suggest(task_name, program.tasks) or "known: " + (", ".join(f"`{t}`" for t in program.tasks) or "none")
        raise usage(f"no task named `{task_name}` in {file}; {hint}")
    try:
        task = program.tasks[task_name]
        sampler = TaskSampler(task, overrides, sources=program.sources)
        rng = random.Random(f"sample:{task_name}:{seed}")
        examples = [sampler.draw(rng) for _ in range(count)]
        tokenizer = make_tokenizer(program.vocab)
        check_encodable(examples, tokenizer, tasks=[task])
    except CircError as err:
        print_error(err)
        raise typer.Exit(ExitCode.INVALID_SPEC)
    except Exception as exc:  # noqa: BLE001 - the boundary turns crashes into exit 3
        raise typer.Exit(_internal_error(exc))
    if as_json:
        from .serialize import SCHEMA_VERSION

        document = {"schema_version": SCHEMA_VERSION, **sample_document(task_name, examples, tokenizer, seed=seed, variant=variant)}
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        raise typer.Exit(ExitCode.OK)
    color = stdout.color_system is not None and not stdout.no_color
    title = f"task {task_name}" + (f", variant {variant}" if variant else "") + f": {count} examples, seed {seed}"
    stdout.print(sample_table(examples, sampler.latents, tokenizer, title=title, color=color))


# The commands that run models live apart; importing them registers them on `app`.
from . import cli_runtime  # noqa: E402,F401


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(ExitCode.USAGE)
