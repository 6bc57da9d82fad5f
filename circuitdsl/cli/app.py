"""`circ`'s boundary: the typer app, the two consoles, and the one error ladder every command runs under.

Library code raises :class:`~circuitdsl.diagnostics.CircError` (or one of its
kinds); :func:`boundary` turns it into a readable message on stderr and the
error's exit code, never a traceback. The commands live in ``language.py``
(no torch) and ``runtime.py`` (torch, imported inside each command), both of
which import this module and never each other.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

import click
import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from circuitdsl import __version__
from circuitdsl.diagnostics import CircError
from circuitdsl.exit_codes import EXIT_CODES_HELP, ExitCode


class _Group(TyperGroup):
    """Click exits 2 on a bad command line; circ gives usage errors the code invalid specs get."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as err:
            err.exit_code = ExitCode.USAGE
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            err.exit_code = ExitCode.USAGE
            raise


app = typer.Typer(
    name="circ",
    cls=_Group,
    help="Declare circuit hypotheses about weight-sparse transformers in .circ files, and check them.\n\n"
    f"Exit codes (every command): {EXIT_CODES_HELP}",
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
        elif line.startswith("error:"):
            text.stylize("bold red", 0, len("error:"))
        elif line.lstrip().startswith("= help:"):
            text.stylize("cyan")
        elif set(line.split("|")[-1].strip()) == {"^"}:
            text.stylize("bold red")
        # Not wrapped, so a message can be searched for as a whole.
        stderr.print(text, soft_wrap=True)


def internal_error(exc: BaseException) -> ExitCode:
    if os.environ.get("CIRC_DEBUG"):
        raise exc
    stderr.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}", soft_wrap=True)
    stderr.print("this is a bug in circ, not in your spec; rerun with CIRC_DEBUG=1 for the traceback")
    return ExitCode.INTERNAL_ERROR


@contextmanager
def boundary() -> Iterator[None]:
    """The error ladder: every command's body runs inside it, so every command exits alike."""
    try:
        yield
    except typer.Exit:
        raise
    except CircError as err:
        print_error(err)
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        stderr.print("interrupted")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except BrokenPipeError:
        # The reader went away (`circ fmt --check specs/*.circ | head`): nothing is wrong with
        # circ, so no "internal error"; stdout is pointed at /dev/null so that flushing it at
        # exit cannot fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except Exception as exc:  # noqa: BLE001 - the boundary turns crashes into exit 3
        raise typer.Exit(internal_error(exc)) from None


def main() -> None:
    app()
