"""A sink the checker's passes write diagnostics into, so one run reports them all."""

from __future__ import annotations

from collections.abc import Iterable

from .diagnostics import Diagnostic, suggest
from .spans import Span


class Reporter:
    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def error(self, code: str, message: str, span: Span | None, hint: str | None = None, notes: Iterable[str] = ()) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, hint, tuple(notes)))

    def unknown(self, what: str, name: str, span: Span | None, candidates: Iterable[str], code: str = "C0201") -> None:
        """``unknown task `x``` with a did-you-mean over the names that would have been valid."""
        candidates = list(candidates)
        hint = suggest(name, candidates)
        if hint is None and 0 < len(candidates) <= 8:
            hint = "expected one of " + ", ".join(f"`{c}`" for c in sorted(candidates))
        self.error(code, f"unknown {what} `{name}`", span, hint)

    @property
    def failed(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)
