"""A sink the checker's passes write diagnostics into, so one run reports them all."""

from __future__ import annotations

from collections.abc import Iterable

from circuitdsl.diagnostics import Diagnostic, suggest
from circuitdsl.syntax.spans import Span


class DiagnosticSink:
    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        #: Errors raised, repeats included, so a pass can tell whether it found any itself.
        self.raised = 0

    def error(self, code: str, message: str, span: Span | None, hint: str | None = None, notes: Iterable[str] = ()) -> None:
        self.raised += 1
        diagnostic = Diagnostic(code, message, span, hint, tuple(notes))
        # A parent block is merged into every block that extends it, so its faults come up once per child.
        if diagnostic not in self.diagnostics:
            self.diagnostics.append(diagnostic)

    def unknown(
        self, what: str, name: str, span: Span | None, candidates: Iterable[str], code: str = "C0201", where: str = ""
    ) -> None:
        """``unknown task `x``` with a did-you-mean over the names that would have been valid.

        ``where`` follows the name (``of `word```), so the name stays next to its kind.
        """
        candidates = list(candidates)
        hint = suggest(name, candidates)
        if hint is None and 0 < len(candidates) <= 8:
            hint = "expected one of " + ", ".join(f"`{c}`" for c in sorted(candidates))
        self.error(code, f"unknown {what} `{name}`" + (f" {where}" if where else ""), span, hint)

    @property
    def failed(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)
