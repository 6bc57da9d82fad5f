"""Text -> spec objects: the grammar, syntax errors worth reading, and the tree transformer.

The transformer only builds structure (:mod:`circuitdsl.syntax.ast`); every question
of meaning is left to :mod:`circuitdsl.check.checker`.
"""

from __future__ import annotations

import functools
import hashlib
import marshal
import re
import sys
from pathlib import Path

import lark
from lark import Token, Transformer, v_args

from circuitdsl.syntax import ast as n
from circuitdsl.store.files import atomic_write_bytes, cache_root
from circuitdsl.diagnostics import CircError, Diagnostic, suggest
from circuitdsl.syntax.spans import Span

#: Keywords a user may have misspelt at the start of a block.
BLOCK_KEYWORDS = ("import", "vocab", "task", "model", "train", "prune", "hypothesis")
#: Words that open a statement inside a hypothesis.
CLAIM_KEYWORDS = ("role", "ablate", "intervene", "adversarial", "expect")


def grammar_path() -> Path:
    """The grammar file: packaged beside this module when installed, in ``grammars/`` in a checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "grammars" / "circ.lark", package.parent / "grammars" / "circ.lark"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("circ.lark not found beside the circuitdsl package")


_PARSER_OPTIONS = dict(parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=True)


@functools.lru_cache(maxsize=1)
def load_parser() -> lark.Lark:
    """The one LALR parser, built from the grammar or loaded from its table cache.

    Building the LALR tables takes ~0.3 s, most of ``circ check``'s budget, so the
    tables are kept under the cache directory, keyed by the grammar's text, lark's
    version and Python's. They are plain data in ``marshal`` format, which holds
    no objects and runs no code when read (unlike pickle); an unreadable entry
    is simply rebuilt.
    """
    text = grammar_path().read_text(encoding="utf-8")
    identity = f"{lark.__version__}\0{sys.version}\0{sorted(_PARSER_OPTIONS.items())}\0{text}"
    cached = cache_root() / "grammar" / f"circ-{hashlib.sha256(identity.encode()).hexdigest()[:20]}.marshal"
    try:
        return lark.Lark.__new__(lark.Lark)._load(marshal.loads(cached.read_bytes()))
    except Exception:  # missing, truncated or foreign: rebuild
        pass
    parser = lark.Lark(text, **_PARSER_OPTIONS)
    try:
        data, memo = parser.memo_serialize([lark.lexer.TerminalDef, lark.grammar.Rule])
        atomic_write_bytes(cached, marshal.dumps({"data": data, "memo": memo}))
    except (OSError, ValueError):
        pass  # an unwritable cache only costs speed
    return parser


@functools.lru_cache(maxsize=1)
def terminal_descriptions() -> dict[str, str]:
    """How to name each terminal in a message: `}` for ``_RBRACE``, "a name" for ``NAME``."""
    named = {
        "NAME": "a name",
        "NUMBER": "a number",
        "STRING": "a string",
        "COMPARE": "a comparison (`<=`, `>=`, `==`, `!=`, `<`, `>`)",
        "$END": "end of file",
    }
    described = {}
    for terminal in load_parser().terminals:
        if terminal.name in named:
            continue
        pattern = terminal.pattern
        if isinstance(pattern, lark.lexer.PatternStr):
            described[terminal.name] = f"`{pattern.value}`"
    described.update(named)
    return described


@functools.lru_cache(maxsize=1)
def reserved_words() -> frozenset[str]:
    """Keywords: the grammar's literal terminals that look like names."""
    return frozenset(
        t.pattern.value
        for t in load_parser().terminals
        if isinstance(t.pattern, lark.lexer.PatternStr) and re.fullmatch(r"[A-Za-z_]\w*", t.pattern.value)
    )


# ---------------------------------------------------------------- spans


def token_span(path: str, token: Token) -> Span:
    return Span(path, token.line, token.column, token.end_line, token.end_column, token.start_pos, token.end_pos)


def offset_span(path: str, text: str, start: int, end: int) -> Span:
    """A span from character offsets, for errors found before any token exists."""
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    end_line = text.count("\n", 0, end) + 1
    end_column = end - (text.rfind("\n", 0, end) + 1) + 1
    return Span(path, line, column, end_line, end_column, start, end)


# ---------------------------------------------------------------- delimiters

_OPENERS = {"{": "}", "[": "]", "(": ")"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}
# A string left unclosed runs to the end of its line, so brackets in it (`prompt = "x = [[`)
# are skipped here and the parser reports the unterminated string, not a bracket.
_DELIMITER_SCAN = re.compile(r"""#[^\n]*|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[{}\[\]()]""")


def check_delimiters(text: str, path: str) -> list[Diagnostic]:
    """Report unbalanced brackets at the bracket that was opened, not at end of file.

    The LALR parser only notices an unclosed `{` when it runs out of input,
    which would point at the last line; a user needs to see the opener.
    """
    stack: list[tuple[str, int]] = []
    for match in _DELIMITER_SCAN.finditer(text):
        char = match.group()
        if char in _OPENERS:
            stack.append((char, match.start()))
        elif char in _CLOSERS:
            if stack and stack[-1][0] == _CLOSERS[char]:
                stack.pop()
                continue
            span = offset_span(path, text, match.start(), match.end())
            if stack:
                opener, at = stack[-1]
                where = offset_span(path, text, at, at + 1)
                return [
                    Diagnostic(
                        "C0106",
                        f"mismatched `{char}`: the `{opener}` opened at line {where.line} is still open",
                        span,
                        hint=f"close the `{opener}` with `{_OPENERS[opener]}` first",
                    )
                ]
            return [Diagnostic("C0106", f"unmatched `{char}`: nothing is open here", span, hint=f"remove this `{char}`")]
    if stack:
        opener, at = stack[-1]
        return [
            Diagnostic(
                "C0105",
                f"unclosed `{opener}`: end of file reached before its `{_OPENERS[opener]}`",
                offset_span(path, text, at, at + 1),
                hint=f"add `{_OPENERS[opener]}` where this block ends",
            )
        ]
    return []


# ---------------------------------------------------------------- syntax errors


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "NAME":
        return f"name `{token}`"
    if token.type == "STRING":
        return f"string {token}"
    if token.type == "NUMBER":
        return f"number `{token}`"
    return f"`{token}`"


def _expected_phrase(expected: set[str]) -> str:
    names = terminal_descriptions()
    words = sorted({names.get(t, t) for t in expected}, key=lambda w: (not w.startswith("`"), w))
    if len(words) > 8:
        words = words[:8] + ["..."]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _syntax_hint(token: Token, expected: set[str]) -> str | None:
    word = str(token)
    if token.type == "NAME":
        keywords = [k for k in BLOCK_KEYWORDS if k.upper() in expected or f"_{k.upper()}" in expected]
        keywords += [k for k in CLAIM_KEYWORDS if f"_{k.upper()}" in expected]
        hint = suggest(word, keywords)
        if hint:
            return hint
        if expected & {"_IMPORT", "_HYPOTHESIS", "MODEL"}:
            return "a file holds blocks: " + ", ".join(f"`{k}`" for k in BLOCK_KEYWORDS)
    if word == ":" and "_EQUALS" in expected:
        return "settings and variables are bound with `=`, as in `steps = 800`"
    if word == "=" and "COMPARE" in expected:
        return "use `==` to compare, `=` only binds a name"
    if word == "=>" or (word == "=" and "_ARROW" in expected):
        return "an ablation or intervention names its outcome after `->`"
    if "_ARROW" in expected and len(expected) <= 3:
        return "write the expected outcome after `->`, as in `-> accuracy <= 0.6`"
    return None


def syntax_error(err: lark.exceptions.UnexpectedInput, text: str, path: str) -> Diagnostic:
    if isinstance(err, lark.exceptions.UnexpectedCharacters):
        char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        span = offset_span(path, text, err.pos_in_stream, err.pos_in_stream + 1)
        if char in "\"'":
            end = text.find("\n", err.pos_in_stream)
            end = len(text) if end < 0 else end
            return Diagnostic(
                "C0102",
                "unterminated string",
                offset_span(path, text, err.pos_in_stream, max(end, err.pos_in_stream + 1)),
                hint=f"close the string with {char} on the same line",
            )
        hint = None
        if char == ";":
            hint = "statements need no `;`: put each on its own line"
        elif char == "@":
            hint = "`@` has no meaning in .circ files"
        shown = repr(char)[1:-1] if not char.isprintable() else char
        return Diagnostic("C0101", f"unexpected character `{shown}`", span, hint=hint)
    token = err.token
    # `accepts` replays the parser on each candidate; `expected` is the LALR state's merged
    # lookahead, which offers claim keywords inside a task block.
    expected = set(getattr(err, "accepts", None) or getattr(err, "expected", None) or ())
    if token.type == "$END":
        end = len(text.rstrip())
        span = offset_span(path, text, max(0, end - 1), max(1, end))
        return Diagnostic("C0104", f"unexpected end of file, expected {_expected_phrase(expected)}", span)
    span = token_span(path, token)
    message = f"unexpected {_describe_token(token)}, expected {_expected_phrase(expected)}"
    return Diagnostic("C0103", message, span, hint=_syntax_hint(token, expected))


# ---------------------------------------------------------------- strings

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'", "$": "$"}
_TEMPLATE_HOLE = re.compile(r"\$\{([^}]*)\}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def decode_string(token: Token, path: str) -> n.String | n.Template:
    """Decode escapes and split ``${name}`` holes; errors point at the offending characters."""
    raw = str(token)[1:-1]
    base = token.start_pos + 1
    parts: list[str | n.Name] = []
    buf: list[str] = []
    i = 0

    def span_at(start: int, end: int) -> Span:
        # Strings never span lines, so columns follow from offsets.
        return Span(path, token.line, token.column + 1 + start, token.line, token.column + 1 + end, base + start, base + end)

    while i < len(raw):
        char = raw[i]
        if char == "\\":
            nxt = raw[i + 1] if i + 1 < len(raw) else ""
            if nxt in _ESCAPES:
                buf.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", raw[i + 2 : i + 6]):
                buf.append(chr(int(raw[i + 2 : i + 6], 16)))
                i += 6
                continue
            raise CircError(
                [
                    Diagnostic(
                        "C0107",
                        f"unknown escape `\\{nxt}` in string",
                        span_at(i, i + 2),
                        hint="known escapes: \\n \\t \\r \\0 \\\\ \\\" \\' \\$ \\uXXXX",
                    )
                ]
            )
        if char == "$" and raw.startswith("${", i):
            hole = _TEMPLATE_HOLE.match(raw, i)
            name = hole.group(1).strip() if hole else ""
            if not hole or not _IDENT.match(name):
                end = hole.end() if hole else i + 2
                raise CircError(
                    [
                        Diagnostic(
                            "C0107",
                            "`${` in a string must hold one name and be closed by `}`",
                            span_at(i, end),
                            hint="write `${name}` to insert a variable, or `\\$` for a literal `$`",
                        )
                    ]
                )
            if buf:
                parts.append("".join(buf))
                buf = []
            start = hole.start(1) + (len(hole.group(1)) - len(hole.group(1).lstrip()))
            parts.append(n.Name(name, span=span_at(start, start + len(name))))
            i = hole.end()
            continue
        buf.append(char)
        i += 1
    if buf:
        parts.append("".join(buf))
    span = token_span(path, token)
    if any(isinstance(p, n.Name) for p in parts):
        return n.Template(tuple(parts), span=span)
    return n.String("".join(p for p in parts if isinstance(p, str)), span=span)


# ---------------------------------------------------------------- tree -> nodes


@v_args(meta=True)
class _Builder(Transformer):
    """Builds :mod:`circuitdsl.syntax.ast` objects; knows nothing of what names mean."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _span(self, meta) -> Span | None:
        if getattr(meta, "empty", True):
            return None
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column, meta.start_pos, meta.end_pos)

    def _tok(self, token: Token | None) -> Span | None:
        return None if token is None else token_span(self.path, token)

    # -- names
    @v_args(inline=False)
    def NAME(self, token: Token) -> Token:
        # The contextual lexer reads a keyword as a name wherever the keyword
        # itself cannot stand (`task true {`), so reserved words are refused here.
        if str(token) in reserved_words():
            raise CircError(
                [
                    Diagnostic(
                        "C0109",
                        f"`{token}` is a keyword and cannot be used as a name",
                        token_span(self.path, token),
                        hint=f"rename it, e.g. `{token}_`",
                    )
                ]
            )
        return token

    # -- module
    def start(self, meta, items):
        return list(items)

    def import_stmt(self, meta, children):
        (path_token,) = children
        decoded = decode_string(path_token, self.path)
        if isinstance(decoded, n.Template):
            raise CircError([Diagnostic("C0107", "an import path cannot contain `${...}`", decoded.span)])
        return n.Import(decoded.value, span=self._span(meta))

    # -- settings blocks
    def _settings(self, kind, meta, name, extends, body):
        return n.SettingsBlock(
            kind,
            None if name is None else str(name),
            tuple(body),
            None if extends is None else str(extends),
            span=self._span(meta),
            name_span=self._tok(name),
            extends_span=self._tok(extends),
        )

    def vocab_block(self, meta, children):
        return self._settings("vocab", meta, None, None, children[1:])

    def task_block(self, meta, children):
        return self._settings("task", meta, children[1], None, children[2:])

    def model_block(self, meta, children):
        return self._settings("model", meta, children[1], children[2], children[3:])

    def train_block(self, meta, children):
        return self._settings("train", meta, children[1], children[2], children[3:])

    def prune_block(self, meta, children):
        return self._settings("prune", meta, children[1], children[2], children[3:])

    def binding(self, meta, children):
        key, value = children
        return n.Binding(str(key), value, span=self._span(meta), name_span=self._tok(key))

    # -- hypotheses
    def hypothesis_block(self, meta, children):
        name, prune, *body = children
        return n.HypothesisBlock(
            str(name), str(prune), tuple(body), span=self._span(meta), name_span=self._tok(name), prune_span=self._tok(prune)
        )

    def layer_filter(self, meta, children):
        _in, word, layers = children
        return n.LayerFilter(str(word), layers, span=self._span(meta))

    def size_claim(self, meta, children):
        metric, layer, op, bound = children
        return n.SizeClaim(str(metric), str(op), bound, layer, span=self._span(meta))

    def role_decl(self, meta, children):
        name, kind1, kind2, layer, where = children
        return n.RoleDecl(
            str(name),
            (str(kind1), str(kind2)),
            layer,
            where,
            span=self._span(meta),
            kind_span=self._tok(kind1).to(self._tok(kind2)),
        )

    def ablate_targets(self, meta, children):
        return children, self._span(meta)

    def ablate_claim(self, meta, children):
        (targets, targets_span), ablation, outcome = children
        return n.AblateClaim(
            tuple(str(t) for t in targets),
            outcome,
            None if ablation is None else str(ablation),
            span=self._span(meta),
            targets_span=targets_span,
            ablation_span=self._tok(ablation),
            target_spans=tuple(self._tok(t) for t in targets),
        )

    def intervene_claim(self, meta, children):
        role, value, when, outcome = children
        return n.InterveneClaim(str(role), value, outcome, when, span=self._span(meta), role_span=self._tok(role))

    def adversarial_block(self, meta, children):
        name, *body = children
        return n.Adversarial(str(name), tuple(body), span=self._span(meta))

    def expect(self, meta, children):
        (outcome,) = children
        return n.Expect(outcome, span=self._span(meta))

    def outcome(self, meta, children):
        metric, change, op, bound, when = children
        return n.Outcome(metric, str(op), bound, change, when, span=self._span(meta))

    def metric(self, meta, children):
        return n.Metric(str(children[0]), None, span=self._span(meta))

    def metric_call(self, meta, children):
        name, args = children
        return n.Metric(str(name), tuple(args or ()), span=self._span(meta))

    def change(self, meta, children):
        return str(children[0])

    # -- expressions
    def if_expr(self, meta, children):
        cond, then, orelse = children
        return n.IfElse(cond, then, orelse, span=self._span(meta))

    def binary(self, meta, children):
        left, op, right = children
        return n.Binary(str(op), left, right, span=self._span(meta))

    def unary(self, meta, children):
        op, operand = children
        return n.Unary(str(op), operand, span=self._span(meta))

    def range(self, meta, children):
        low, high = children
        return n.Range(low, high, span=self._span(meta))

    def percent(self, meta, children):
        value, _ = children
        return n.Percent(value, span=self._span(meta))

    def number(self, meta, children):
        (token,) = children
        text = str(token)
        try:
            value = int(text) if text.isdigit() else float(text)
        except ValueError:  # int() refuses more than 4300 digits
            value = float("inf")
        if value == float("inf"):
            # `1e999` would otherwise become inf, which no literal prints back as.
            raise CircError([Diagnostic("C0108", "number too large", self._tok(token))])
        return n.Number(value, span=self._tok(token))

    def string(self, meta, children):
        return decode_string(children[0], self.path)

    def true(self, meta, children):
        return n.Bool(True, span=self._tok(children[0]))

    def false(self, meta, children):
        return n.Bool(False, span=self._tok(children[0]))

    def name(self, meta, children):
        return n.Name(str(children[0]), span=self._tok(children[0]))

    def call(self, meta, children):
        func, args = children
        return n.Call(str(func), tuple(args or ()), span=self._span(meta))

    def list(self, meta, children):
        items = [c for c in children if c is not None]
        return n.ListExpr(tuple(items), span=self._span(meta))

    def map(self, meta, children):
        entries = [c for c in children if c is not None]
        return n.MapExpr(tuple(entries), span=self._span(meta))

    def entry(self, meta, children):
        key, value = children
        return n.MapEntry(str(key), value, span=self._span(meta))

    def arguments(self, meta, children):
        return [c for c in children if c is not None]

    def positional(self, meta, children):
        return n.Arg(children[0], span=self._span(meta))

    def keyword(self, meta, children):
        name, value = children
        return n.Arg(value, name=str(name), span=self._span(meta))

    def given(self, meta, children):
        value, cond = children
        return n.Arg(value, given=cond, span=self._span(meta))



# ---------------------------------------------------------------- entry point


def scan_comments(text: str, path: str) -> tuple[n.Comment, ...]:
    """Every ``#`` comment outside strings; the formatter puts them back."""
    return tuple(
        n.Comment(m.group(), offset_span(path, text, m.start(), m.end()))
        for m in _DELIMITER_SCAN.finditer(text)
        if m.group().startswith("#")
    )


def parse(text: str, path: str = "<string>") -> n.Module:
    """Parse one file's text; raises :class:`CircError` with a located message on bad syntax."""
    sources = {path: text}
    problems = check_delimiters(text, path)
    if problems:
        raise CircError(problems, sources)
    try:
        tree = load_parser().parse(text)
        items = _Builder(path).transform(tree)
    except lark.exceptions.UnexpectedInput as err:
        raise CircError([syntax_error(err, text, path)], sources) from None
    except lark.exceptions.VisitError as err:
        if isinstance(err.orig_exc, CircError):
            raise CircError(err.orig_exc.diagnostics, sources) from None
        raise
    return n.Module(tuple(items), path=path, comments=scan_comments(text, path))
