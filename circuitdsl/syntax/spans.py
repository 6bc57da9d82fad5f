"""Source locations: where in which file a piece of a spec was written."""

from __future__ import annotations

import attrs


@attrs.frozen
class Span:
    """A half-open region of one source file.

    Lines and columns are 1-based, as editors show them; ``start``/``end`` are
    0-based character offsets into the file's text, which is what slicing needs.
    """

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    start: int
    end: int

    def to(self, other: Span | None) -> Span:
        """The smallest span covering ``self`` and ``other`` (same file)."""
        if other is None:
            return self
        first, last = (self, other) if self.start <= other.start else (other, self)
        return Span(
            self.path,
            first.line,
            first.column,
            last.end_line,
            last.end_column,
            first.start,
            max(self.end, other.end),
        )

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


def span_field():
    """An attrs field for a node's source span.

    Excluded from equality and hashing so that two specs that mean the same thing
    compare equal wherever they were written: ``parse(fmt(spec)) == spec``.
    """
    return attrs.field(default=None, eq=False, repr=False, kw_only=True)
