"""Spec objects -> canonical text: the printer behind ``circ fmt``.

Two promises hold for every module the parser can build: the printed text
parses back to an equal module (``parse(format_module(m)) == m``), and printing
is idempotent. Layout is fixed (4-space indent, one statement per line, one
blank line between top-level items); the only things taken from the source
are its comments and where it left blank lines between statements, both read
from spans, so a module built without spans prints with neither.
"""

from __future__ import annotations

import math
from collections import deque

import attrs

from circuitdsl.syntax import ast as n
from circuitdsl.syntax.parser import parse

INDENT = "    "

# ---------------------------------------------------------------- expressions

# Binding strength, loosest first, as the grammar's expression rules nest.
_IF, _OR, _AND, _NOT, _COMPARE, _RANGE, _SUM, _PRODUCT, _NEGATE, _POSTFIX, _ATOM = range(11)

_BINARY = {
    "or": _OR,
    "and": _AND,
    **dict.fromkeys(("==", "!=", "<", "<=", ">", ">=", "in"), _COMPARE),
    **dict.fromkeys(("+", "-"), _SUM),
    **dict.fromkeys(("*", "/"), _PRODUCT),
}

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def _level(expr: n.Expr) -> int:
    if isinstance(expr, n.IfElse):
        return _IF
    if isinstance(expr, n.Binary):
        return _BINARY[expr.op]
    if isinstance(expr, n.Unary):
        return _NOT if expr.op == "not" else _NEGATE
    if isinstance(expr, n.Range):
        return _RANGE
    if isinstance(expr, n.Percent):
        return _POSTFIX
    return _ATOM


def format_expr(expr: n.Expr, needs: int = _IF) -> str:
    """``expr`` as source text, in parentheses if it binds looser than its context ``needs``."""
    text = _bare(expr)
    return f"({text})" if _level(expr) < needs else text


def _bare(expr: n.Expr) -> str:
    if isinstance(expr, n.IfElse):
        return f"if {format_expr(expr.cond)} then {format_expr(expr.then)} else {format_expr(expr.orelse)}"
    if isinstance(expr, n.Binary):
        level = _BINARY[expr.op]
        # Left-associative: an equal-strength right operand needs parentheses.
        # Comparisons do not chain, so neither of their operands may be one.
        left = _RANGE if level == _COMPARE else level
        return f"{format_expr(expr.left, left)} {expr.op} {format_expr(expr.right, level + 1)}"
    if isinstance(expr, n.Unary):
        if expr.op == "not":
            return f"not {format_expr(expr.operand, _NOT)}"
        operand = format_expr(expr.operand, _NEGATE)
        # `- -x` reads better than `--x`; both lex as two minus signs.
        return f"- {operand}" if operand.startswith("-") else f"-{operand}"
    if isinstance(expr, n.Range):
        return f"{format_expr(expr.low, _SUM)}..{format_expr(expr.high, _SUM)}"
    if isinstance(expr, n.Percent):
        return f"{format_expr(expr.value, _POSTFIX)}%"
    if isinstance(expr, n.Number):
        return _number(expr.value)
    if isinstance(expr, n.String):
        return _quote([expr.value])
    if isinstance(expr, n.Template):
        return _quote(list(expr.parts))
    if isinstance(expr, n.Bool):
        return "true" if expr.value else "false"
    if isinstance(expr, n.Name):
        return expr.id
    if isinstance(expr, n.ListExpr):
        return "[" + ", ".join(format_expr(item) for item in expr.items) + "]"
    if isinstance(expr, n.MapExpr):
        return "{" + ", ".join(f"{e.key}: {format_expr(e.value)}" for e in expr.entries) + "}"
    if isinstance(expr, n.Call):
        return f"{expr.func}({_args(expr.args)})"
    raise TypeError(f"not an expression: {expr!r}")


def _number(value: int | float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        # `inf` would print as a name and silently read back as one.
        raise ValueError(f"{value} has no .circ literal")
    # repr() round-trips floats and always has the `.`/`e` that keeps them floats.
    return repr(value)


def _args(args: tuple[n.Arg, ...]) -> str:
    return ", ".join(_arg(arg) for arg in args)


def _arg(arg: n.Arg) -> str:
    if arg.name is not None:
        return f"{arg.name}: {format_expr(arg.value)}"
    if arg.given is not None:
        return f"{format_expr(arg.value)} | {format_expr(arg.given)}"
    return format_expr(arg.value)


def _quote(parts: list[str | n.Name]) -> str:
    """A string literal; ``Name`` parts become ``${name}`` holes."""
    literal = "".join(p for p in parts if isinstance(p, str))
    quote = "'" if '"' in literal and "'" not in literal else '"'
    body = []
    for part in parts:
        if isinstance(part, n.Name):
            body.append("${" + part.id + "}")
            continue
        for i, char in enumerate(part):
            if char in _ESCAPES:
                body.append(_ESCAPES[char])
            elif char == quote:
                body.append("\\" + char)
            elif char == "$" and part.startswith("{", i + 1):
                # Only `${` opens a hole; a part never ends in a `{` that a later hole could follow.
                body.append("\\$")
            elif not char.isprintable() and ord(char) <= 0xFFFF:
                # `\u` takes exactly four digits, so unprintable astral characters stay raw:
                # the string terminal accepts anything but a quote, backslash or newline.
                body.append(f"\\u{ord(char):04x}")
            else:
                body.append(char)
    return quote + "".join(body) + quote


# ---------------------------------------------------------------- statements


def _outcome(outcome: n.Outcome) -> str:
    metric = outcome.metric.name
    if outcome.metric.args is not None:
        metric += f"({_args(outcome.metric.args)})"
    change = f" {outcome.change} by" if outcome.change else ""
    text = f"{metric}{change} {outcome.op} {format_expr(outcome.bound, _SUM)}"
    if outcome.when is not None:
        text += f" when {format_expr(outcome.when)}"
    return text


def _layer(layer: n.LayerFilter | None) -> str:
    return "" if layer is None else f" in {layer.word} {format_expr(layer.layers, _RANGE)}"


@attrs.define
class _Line:
    """One output line. ``name`` is padded to its run's widest so that ``=`` or ``:`` line up."""

    text: str
    indent: int = 0
    #: Where the code on this line ended in the source, (line, offset): a comment after it on that line stays here.
    end: tuple[int, int] | None = None
    align: str | None = None
    head: str = ""
    name: str = ""
    comment: str | None = None
    blank_before: bool = False


def _statement(stmt) -> _Line:
    if isinstance(stmt, n.Binding):
        return _Line(f" = {format_expr(stmt.value)}", align="=", name=stmt.name)
    if isinstance(stmt, n.RoleDecl):
        text = f" : {stmt.kind[0]} {stmt.kind[1]}{_layer(stmt.layer)}"
        if stmt.where is not None:
            text += f" where {format_expr(stmt.where)}"
        return _Line(text, align=":", head="role ", name=stmt.name)
    if isinstance(stmt, n.SizeClaim):
        return _Line(f"{stmt.metric}{_layer(stmt.layer)} {stmt.op} {format_expr(stmt.bound, _SUM)}")
    if isinstance(stmt, n.AblateClaim):
        ablation = "" if stmt.ablation is None else f" with {stmt.ablation}"
        return _Line(f"ablate {', '.join(stmt.targets)}{ablation} -> {_outcome(stmt.outcome)}")
    if isinstance(stmt, n.InterveneClaim):
        when = "" if stmt.when is None else f" when {format_expr(stmt.when)}"
        bridge = "" if stmt.bridge is None else f" through bridge {stmt.bridge}"
        return _Line(f"intervene {stmt.role} = {format_expr(stmt.value)}{when}{bridge} -> {_outcome(stmt.outcome)}")
    if isinstance(stmt, n.Expect):
        return _Line(f"expect {_outcome(stmt.outcome)}")
    if isinstance(stmt, n.Import):
        return _Line(f"import {_quote([stmt.path])}")
    raise TypeError(f"not a statement: {stmt!r}")


def _header(block) -> str:
    if isinstance(block, n.HypothesisBlock):
        return f"hypothesis {block.name} on {block.prune}"
    if isinstance(block, n.Adversarial):
        return f"adversarial {block.name}"
    words = [block.kind] + ([block.name] if block.name is not None else [])
    if block.extends is not None:
        words += ["extends", block.extends]
    return " ".join(words)


# ---------------------------------------------------------------- layout


class _Writer:
    """Lays out lines in order, putting each source comment back as it is passed."""

    def __init__(self, comments: tuple[n.Comment, ...]):
        self.lines: list[_Line] = []
        self.comments = deque(sorted(comments, key=lambda c: c.span.start))
        #: The source line the last written line ended on, to see blank lines in the source.
        self.last_source_line: int | None = None
        #: Overrides the source's blank line before the next line: set by block structure.
        self.next_blank: bool | None = None

    def write(self, line: _Line, indent: int, first: int | None, last: int | None) -> None:
        """Add ``line``, which came from source lines ``first``..``last`` (``None`` if built, not parsed)."""
        blank = self.next_blank
        if blank is None:
            blank = first is not None and self.last_source_line is not None and first - self.last_source_line > 1
        line.indent = indent
        line.blank_before = blank and bool(self.lines)
        self.lines.append(line)
        self.next_blank = None
        self.last_source_line = last

    def comments_before(self, offset: int | None, indent: int, line: int | None = None) -> None:
        """Write every comment that starts before ``offset`` (all that are left, for ``None``).

        A comment after code on that code's last line stays at the end of its line;
        any other, including one inside a multi-line statement that starts on source
        ``line``, gets a line of its own (there counted as on ``line``, so that
        moving it out opens no blank line).
        """
        while self.comments and (offset is None or self.comments[0].span.start < offset):
            comment = self.comments.popleft()
            text = comment.text.rstrip()
            last = self.lines[-1] if self.lines else None
            if (
                last is not None
                and last.end is not None
                and last.comment is None
                and comment.span.line == last.end[0]
                and comment.span.start >= last.end[1]
            ):
                last.comment = text
            else:
                at = comment.span.line if line is None else min(line, comment.span.line)
                self.write(_Line(text), indent, at, at)

    def statement(self, stmt, depth: int) -> None:
        if isinstance(stmt, (n.SettingsBlock, n.HypothesisBlock, n.Adversarial)):
            self.block(stmt, depth)
            return
        span = stmt.span
        if span is not None:
            # Comments inside a multi-line statement come out before it.
            self.comments_before(span.end, depth, span.line)
        line = _statement(stmt)
        line.end = None if span is None else (span.end_line, span.end)
        self.write(line, depth, span and span.line, span and span.end_line)

    def block(self, block, depth: int) -> None:
        span = block.span
        if span is not None:
            self.comments_before(span.start, depth)
        header = _Line(_header(block) + " {", end=None if span is None else (span.line, span.start))
        self.write(header, depth, span and span.line, span and span.line)
        self.next_blank = False
        for stmt in block.body:
            self.statement(stmt, depth + 1)
        if span is not None:
            self.comments_before(span.end, depth + 1)
        close_end = None if span is None else (span.end_line, span.end)
        if self.lines[-1] is header and header.comment is None:
            header.text += "}"
            header.end = close_end
            self.next_blank = None
            self.last_source_line = span and span.end_line
        else:
            self.next_blank = False
            self.write(_Line("}", end=close_end), depth, span and span.end_line, span and span.end_line)

    def render(self) -> str:
        out = []
        widths = _run_widths(self.lines)
        for line, width in zip(self.lines, widths):
            if line.blank_before:
                out.append("")
            text = INDENT * line.indent + line.head + line.name.ljust(width) + line.text
            out.append(text + (f"  {line.comment}" if line.comment else ""))
        return "".join(f"{line}\n" for line in out)


def _run_widths(lines: list[_Line]) -> list[int]:
    """The width each line's ``name`` is padded to: the widest of its run of like, adjacent lines."""
    widths = [0] * len(lines)
    start = 0
    for i in range(1, len(lines) + 1):
        if i < len(lines):
            prev, line = lines[i - 1], lines[i]
            if line.align is not None and line.align == prev.align and line.indent == prev.indent and not line.blank_before:
                continue
        run = lines[start:i]
        widths[start:i] = [max(len(line.name) for line in run)] * len(run)
        start = i
    return widths


def format_statement(stmt) -> str:
    """One statement as a single line of canonical text, as reports quote a claim.

    A block (an ``adversarial`` variant) is shown by its header only.
    """
    if isinstance(stmt, (n.SettingsBlock, n.HypothesisBlock, n.Adversarial)):
        return _header(stmt) + " { ... }"
    line = _statement(stmt)
    return line.head + line.name + line.text


def format_module(module: n.Module) -> str:
    """The canonical text of ``module``, comments included."""
    writer = _Writer(module.comments)
    previous = None
    for item in module.items:
        if previous is not None:
            # Imports stay together; every other item is set off by one blank line.
            writer.next_blank = not (isinstance(previous, n.Import) and isinstance(item, n.Import))
        writer.statement(item, 0)
        previous = item
    writer.comments_before(None, 0)
    return writer.render()


def format_source(text: str, path: str = "<string>") -> str:
    """Parse and print ``text``; raises :class:`~circuitdsl.diagnostics.CircError` on bad syntax."""
    return format_module(parse(text, path))
