"""Diagnostics: what is wrong with a spec, where, and what to do about it.

Rendered the way rustc and Elm do it::

    error[C0201]: unknown task `brackt_depth`
     --> specs/x.circ:4:12
      |
    4 |     task = brackt_depth
      |            ^^^^^^^^^^^^
      = help: did you mean `bracket_depth`?

Library code never prints; it raises :class:`CircError` holding every
diagnostic found, and the CLI renders them. Its two kinds without a place in a
file say which exit code the CLI gives: :class:`UsageError` (nothing ran: an
unknown block, no CUDA device) and :class:`RunFailed` (it ran and the answer
is no: training diverged, ablation hooks changed the model).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import attrs

from circuitdsl.exit_codes import ExitCode
from circuitdsl.syntax.spans import Span

#: The most diagnostics shown for one run; more than this is noise after a bad edit.
MAX_DIAGNOSTICS = 50


@attrs.frozen
class Diagnostic:
    code: str
    message: str
    span: Span | None
    hint: str | None = None
    notes: tuple[str, ...] = ()
    severity: str = "error"

    def sort_key(self):
        if self.span is None:
            return ("", 0, 0)
        return (self.span.path, self.span.line, self.span.column)


class CircError(Exception):
    """Raised with every diagnostic that applies; the one error type of the library."""

    #: What the CLI exits with when this reaches it: an invalid spec runs nothing.
    exit_code = ExitCode.USAGE

    def __init__(self, diagnostics: Iterable[Diagnostic], sources: dict[str, str] | None = None):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        self.sources = dict(sources or {})
        super().__init__(self.render())

    def render(self) -> str:
        return render_all(self.diagnostics, self.sources)


class _Plain(CircError):
    """A message about the run rather than a place in a file: rendered ``error: ...``."""

    def __init__(self, message: str, hint: str | None = None):
        self.message, self.hint = message, hint
        super().__init__([Diagnostic("E0000", message, None, hint)])

    def render(self) -> str:
        return f"error: {self.message}" + (f"\n  = help: {self.hint}" if self.hint else "")


class UsageError(_Plain):
    """The request cannot be served as asked (no CUDA device, an unknown block name)."""


class RunFailed(_Plain):
    """It ran, and did not give a usable answer (training diverged, ablation changed the model)."""

    exit_code = ExitCode.FAILED


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """``did you mean `x`?`` for the closest candidate, if one is close enough."""
    match = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{match[0]}`?" if match else None


def render(diag: Diagnostic, sources: dict[str, str]) -> str:
    lines = [f"{diag.severity}[{diag.code}]: {diag.message}"]
    span = diag.span
    text = sources.get(span.path) if span is not None else None
    if span is not None:
        lines.append(f" --> {span}")
    if span is not None and text is not None:
        source_lines = text.split("\n")
        if 1 <= span.line <= len(source_lines):
            line_text = source_lines[span.line - 1].rstrip("\r")
            gutter = " " * len(str(span.line))
            # Tabs are kept as written, so the caret line copies them to stay aligned.
            prefix = "".join(c if c == "\t" else " " for c in line_text[: span.column - 1])
            if span.end_line == span.line:
                width = max(1, span.end_column - span.column)
            else:
                width = max(1, len(line_text) - span.column + 1)
            lines += [
                f"{gutter} |",
                f"{span.line} | {line_text}",
                f"{gutter} | {prefix}{'^' * width}",
            ]
            for note in diag.notes:
                lines.append(f"{gutter} = note: {note}")
            if diag.hint:
                lines.append(f"{gutter} = help: {diag.hint}")
            return "\n".join(lines)
    lines += [f"  = note: {note}" for note in diag.notes]
    if diag.hint:
        lines.append(f"  = help: {diag.hint}")
    return "\n".join(lines)


def render_all(diagnostics: list[Diagnostic], sources: dict[str, str]) -> str:
    shown = diagnostics[:MAX_DIAGNOSTICS]
    parts = [render(d, sources) for d in shown]
    hidden = len(diagnostics) - len(shown)
    if hidden > 0:
        parts.append(f"... and {hidden} more error(s) not shown")
    errors = sum(1 for d in diagnostics if d.severity == "error")
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''} found")
    return "\n\n".join(parts)
