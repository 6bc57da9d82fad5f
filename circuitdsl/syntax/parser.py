"""Text -> spec objects: the grammar, syntax errors worth reading, and the node builder.

The builder only builds structure (:mod:`circuitdsl.syntax.ast`); every question
of meaning is left to :mod:`circuitdsl.check.checker`. It runs inside lark's LALR
parser (an inline transformer), so parsing is one linear pass with no parse tree
and no recursion, whatever the input's nesting.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import marshal
import re
import sys
import threading
from pathlib import Path

import lark
from lark import Token
from lark.parsers.lalr_analysis import Shift

from circuitdsl.syntax import ast as n
from circuitdsl.store.files import atomic_write_bytes, cache_root
from circuitdsl.diagnostics import CircError, Diagnostic, suggest
from circuitdsl.syntax.spans import Span

#: Keywords a user may have misspelt at the start of a block.
BLOCK_KEYWORDS = ("import", "vocab", "task", "model", "train", "prune", "bridge", "hypothesis")
#: Words that open a statement inside a hypothesis.
CLAIM_KEYWORDS = ("role", "ablate", "intervene", "adversarial", "expect")


def grammar_path() -> Path:
    """The grammar file: packaged beside this module when installed, in ``grammars/`` in a checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "grammars" / "circ.lark", package.parent / "grammars" / "circ.lark"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("circ.lark not found beside the circuitdsl package")


# No propagate_positions: the builder computes spans from tokens, which is most of the speed.
_PARSER_OPTIONS = dict(parser="lalr", lexer="contextual", maybe_placeholders=True)


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
        parser = _with_builder(marshal.loads(cached.read_bytes()))
    except Exception:  # missing, truncated or foreign: rebuild
        parser = None
    if parser is None:
        data, memo = lark.Lark(text, **_PARSER_OPTIONS).memo_serialize([lark.lexer.TerminalDef, lark.grammar.Rule])
        tables = {"data": data, "memo": memo}
        try:
            atomic_write_bytes(cached, marshal.dumps(tables))
        except (OSError, ValueError):
            pass  # an unwritable cache only costs speed
        parser = _with_builder(tables)
    global _DRIVER
    try:
        _DRIVER = _Driver(parser)
    except Exception:  # a lark whose internals differ: its own loop is as correct, only slower
        _DRIVER = None
    _BUILDER.reserved = frozenset(
        t.pattern.value
        for t in parser.terminals
        if isinstance(t.pattern, lark.lexer.PatternStr) and re.fullmatch(r"[A-Za-z_]\w*", t.pattern.value)
    )
    return parser


def _with_builder(tables: dict) -> lark.Lark:
    # The tables are saved without the builder (an object, not data); lark binds its methods on load.
    return lark.Lark.__new__(lark.Lark)._load(tables, transformer=_BUILDER)


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
    load_parser()
    return _BUILDER.reserved


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
        keywords = [k for k in BLOCK_KEYWORDS + CLAIM_KEYWORDS if k.upper() in expected or f"_{k.upper()}" in expected]
        hint = suggest(word, keywords)
        if hint:
            return hint
        if expected & {"IMPORT", "HYPOTHESIS", "MODEL"}:
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


def _accepts(state) -> set[str]:
    """The terminals that the parser could shift next, found by replaying its state stack for each.

    What lark's ``UnexpectedToken.accepts`` computes, on the states alone: no values are
    copied and no builder method runs, so nothing here depends on what was built so far.
    """
    states = state.parse_conf.states
    end_state = state.parse_conf.end_state
    accepted = set()
    for terminal in states[state.state_stack[-1]]:
        if not terminal.isupper():
            continue
        stack = list(state.state_stack)
        while True:
            action = states[stack[-1]].get(terminal)
            if action is None:
                break
            kind, arg = action
            if kind is Shift:
                accepted.add(terminal)
                break
            if arg.expansion:
                del stack[-len(arg.expansion) :]
            stack.append(states[stack[-1]][arg.origin.name][1])
            if terminal == "$END" and stack[-1] == end_state:
                accepted.add(terminal)
                break
    return accepted


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
    # What can really be shifted here, not lark's `expected`: that is the LALR state's merged
    # lookahead, which offers claim keywords inside a task block.
    state = getattr(err, "state", None)
    expected = _accepts(state) if state is not None else set()
    expected = expected or set(getattr(err, "expected", None) or ())
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


# ---------------------------------------------------------------- tokens -> nodes

#: How deeply expressions may nest. The parser builds nodes without recursion, but
#: everything after it (the checker, the evaluator, the formatter, attrs' own ``==``
#: and ``hash`` on these frozen nodes) walks them recursively, 2 to 6 Python frames
#: per level, under the interpreter's default limit of 1000 frames: measured, the
#: formatter fails first, on about 160 nested calls, the checker and the sampler at
#: about 320. 100 leaves room for whoever calls them (the CLI, pytest, a notebook).
#: A sum ``a + b + c`` is left-deep and an ``if ... else if`` chain right-deep, so
#: both count as deep as they are long: flattening them would need every walker
#: to know n-ary nodes.
MAX_DEPTH = 100

_DEPTH_HINT = "bind parts of it to variables, or write it with less nesting (a sum of n terms is n levels deep)"


def _start_of(item) -> tuple[int, int, int]:
    if isinstance(item, Token):
        return item.line, item.column, item.start_pos
    span = item.span
    return span.line, span.column, span.start


def _end_of(item) -> tuple[int, int, int]:
    if isinstance(item, Token):
        return item.end_line, item.end_column, item.end_pos
    span = item.span
    return span.end_line, span.end_column, span.end


class _Builder:
    """Builds :mod:`circuitdsl.syntax.ast` objects as the LALR parser reduces; knows nothing of what names mean.

    Passed to lark as an inline transformer: each method gets the children of one
    rule (tokens, nodes built before, ``None`` for an absent ``[optional]``) and
    returns its node, bottom-up, so no stage recurses over the input's nesting
    and no intermediate tree is built. Spans are computed here from the first
    and last child. Problems a token has (a keyword as a name, a bad escape, a
    huge number, nesting too deep) are collected, not raised, so one run reports
    them all; :func:`parse` raises them at the end.

    One instance serves every parse (lark binds its methods when the parser is
    loaded), so the per-parse state is reset by :meth:`begin` under :data:`_LOCK`.
    """

    def __init__(self) -> None:
        self.reserved: frozenset[str] = frozenset()
        self.begin("<string>")

    def begin(self, path: str) -> None:
        self.path = path
        self.problems: list[Diagnostic] = []
        #: Depth of every expression node deeper than 1, by id (the nodes are alive until the parse ends).
        self.depth: dict[int, int] = {}
        #: For an expression over the limit: the span of its first sub-expression that went over.
        self.deep: dict[int, Span] = {}
        #: The parentheses around a parenthesized node: a node built from it starts and ends at them.
        self.outer: dict[int, tuple[Token, Token]] = {}

    # -- spans

    def _tok(self, token: Token | None) -> Span | None:
        return None if token is None else token_span(self.path, token)

    def _cover(self, first, last) -> Span:
        """From the start of ``first`` to the end of ``last`` (tokens or nodes)."""
        if self.outer:
            first = self.outer.get(id(first), (first,))[0]
            last = self.outer.get(id(last), (None, last))[1]
        line, column, start = _start_of(first)
        end_line, end_column, end = _end_of(last)
        return Span(self.path, line, column, end_line, end_column, start, end)

    # -- depth

    def _nest(self, node, parts, level: int = 1):
        """Record ``node``'s depth: ``level`` more than its deepest part (0 for an argument or a map entry)."""
        get = self.depth.get
        depth = 0
        for part in parts:
            d = get(id(part), 1)
            if d > depth:
                depth = d
        depth += level
        if depth > 1:
            self.depth[id(node)] = depth
            if depth > MAX_DEPTH:
                first = next((self.deep[id(p)] for p in parts if id(p) in self.deep), None)
                self.deep[id(node)] = first or node.span
        return node

    def _check_depth(self, *exprs) -> None:
        """Where an expression ends (a setting, a bound, a condition): report it if it nests too deeply."""
        for expr in exprs:
            if expr is not None and self.depth.get(id(expr), 1) > MAX_DEPTH:
                self.problems.append(
                    Diagnostic(
                        "C0110",
                        f"expression nested {self.depth[id(expr)]} levels deep; the limit is {MAX_DEPTH}",
                        self.deep[id(expr)],
                        hint=_DEPTH_HINT,
                    )
                )

    # -- names

    def NAME(self, token: Token) -> Token:
        # The contextual lexer reads a keyword as a name wherever the keyword
        # itself cannot stand (`task true {`), so reserved words are refused here.
        if token in self.reserved:
            self.problems.append(
                Diagnostic(
                    "C0109",
                    f"`{token}` is a keyword and cannot be used as a name",
                    token_span(self.path, token),
                    hint=f"rename it, e.g. `{token}_`",
                )
            )
        return token

    def _string(self, token: Token) -> n.String | n.Template:
        try:
            return decode_string(token, self.path)
        except CircError as err:
            self.problems.extend(err.diagnostics)
            return n.String("", span=token_span(self.path, token))

    # -- module

    def start(self, items):
        return items

    def import_stmt(self, children):
        keyword, path_token = children
        decoded = self._string(path_token)
        if isinstance(decoded, n.Template):
            self.problems.append(Diagnostic("C0107", "an import path cannot contain `${...}`", decoded.span))
            decoded = n.String("")
        return n.Import(decoded.value, span=self._cover(keyword, path_token))

    # -- settings blocks

    def _settings(self, kind, keyword, name, extends, body, close):
        return n.SettingsBlock(
            kind,
            None if name is None else str(name),
            tuple(body),
            None if extends is None else str(extends),
            span=self._cover(keyword, close),
            name_span=self._tok(name),
            extends_span=self._tok(extends),
        )

    def vocab_block(self, children):
        keyword, _open, *body, close = children
        return self._settings("vocab", keyword, None, None, body, close)

    def task_block(self, children):
        keyword, name, _open, *body, close = children
        return self._settings("task", keyword, name, None, body, close)

    def model_block(self, children):
        keyword, name, extends, _open, *body, close = children
        return self._settings("model", keyword, name, extends, body, close)

    def train_block(self, children):
        keyword, name, extends, _open, *body, close = children
        return self._settings("train", keyword, name, extends, body, close)

    def prune_block(self, children):
        keyword, name, extends, _open, *body, close = children
        return self._settings("prune", keyword, name, extends, body, close)

    def bridge_block(self, children):
        keyword, name, extends, _open, *body, close = children
        return self._settings("bridge", keyword, name, extends, body, close)

    def binding(self, children):
        key, value = children
        self._check_depth(value)
        return n.Binding(str(key), value, span=self._cover(key, value), name_span=self._tok(key))

    # -- hypotheses

    def hypothesis_block(self, children):
        keyword, name, prune, _open, *body, close = children
        return n.HypothesisBlock(
            str(name),
            str(prune),
            tuple(body),
            span=self._cover(keyword, close),
            name_span=self._tok(name),
            prune_span=self._tok(prune),
        )

    def layer_filter(self, children):
        keyword, word, layers = children
        self._check_depth(layers)
        return n.LayerFilter(str(word), layers, span=self._cover(keyword, layers))

    def size_claim(self, children):
        metric, layer, op, bound = children
        self._check_depth(bound)
        return n.SizeClaim(str(metric), str(op), bound, layer, span=self._cover(metric, bound))

    def role_decl(self, children):
        keyword, name, kind1, kind2, layer, where = children
        self._check_depth(where)
        last = where if where is not None else layer if layer is not None else kind2
        return n.RoleDecl(
            str(name),
            (str(kind1), str(kind2)),
            layer,
            where,
            span=self._cover(keyword, last),
            kind_span=self._tok(kind1).to(self._tok(kind2)),
        )

    def ablate_targets(self, children):
        return children, self._cover(children[0], children[-1])

    def ablate_claim(self, children):
        keyword, (targets, targets_span), ablation, outcome = children
        return n.AblateClaim(
            tuple(str(t) for t in targets),
            outcome,
            None if ablation is None else str(ablation),
            span=self._cover(keyword, outcome),
            targets_span=targets_span,
            ablation_span=self._tok(ablation),
            target_spans=tuple(self._tok(t) for t in targets),
        )

    def bridge_ref(self, children):
        _keyword, name = children
        return name

    def intervene_claim(self, children):
        keyword, role, value, when, bridge, outcome = children
        self._check_depth(value, when)
        return n.InterveneClaim(
            str(role), value, outcome, when, None if bridge is None else str(bridge),
            span=self._cover(keyword, outcome), role_span=self._tok(role), bridge_span=self._tok(bridge),
        )

    def adversarial_block(self, children):
        keyword, name, _open, *body, close = children
        return n.Adversarial(str(name), tuple(body), span=self._cover(keyword, close))

    def expect(self, children):
        keyword, outcome = children
        return n.Expect(outcome, span=self._cover(keyword, outcome))

    def outcome(self, children):
        metric, change, op, bound, when = children
        self._check_depth(bound, when)
        last = when if when is not None else bound
        return n.Outcome(metric, str(op), bound, change, when, span=self._cover(metric, last))

    def metric(self, children):
        (name,) = children
        return n.Metric(str(name), None, span=self._tok(name))

    def metric_call(self, children):
        name, _open, args, close = children
        args = tuple(args or ())
        self._check_depth(*args)
        return n.Metric(str(name), args, span=self._cover(name, close))

    def change(self, children):
        return str(children[0])

    # -- expressions

    def paren(self, children):
        open_, expr, close = children
        # The outermost parentheses win: `((x))` spans both pairs.
        self.outer[id(expr)] = (open_, close)
        return expr

    def if_expr(self, children):
        keyword, cond, then, orelse = children
        return self._nest(n.IfElse(cond, then, orelse, span=self._cover(keyword, orelse)), (cond, then, orelse))

    def binary(self, children):
        left, op, right = children
        return self._nest(n.Binary(str(op), left, right, span=self._cover(left, right)), (left, right))

    def unary(self, children):
        op, operand = children
        return self._nest(n.Unary(str(op), operand, span=self._cover(op, operand)), (operand,))

    def range(self, children):
        low, high = children
        return self._nest(n.Range(low, high, span=self._cover(low, high)), (low, high))

    def percent(self, children):
        value, sign = children
        return self._nest(n.Percent(value, span=self._cover(value, sign)), (value,))

    def number(self, children):
        (token,) = children
        text = str(token)
        try:
            value = int(text) if text.isdigit() else float(text)
        except ValueError:  # int() refuses more than 4300 digits
            value = float("inf")
        if value == float("inf"):
            # `1e999` would otherwise become inf, which no literal prints back as.
            self.problems.append(Diagnostic("C0108", "number too large", self._tok(token)))
            value = 0
        return n.Number(value, span=self._tok(token))

    def string(self, children):
        return self._string(children[0])

    def true(self, children):
        return n.Bool(True, span=self._tok(children[0]))

    def false(self, children):
        return n.Bool(False, span=self._tok(children[0]))

    def name(self, children):
        return n.Name(str(children[0]), span=self._tok(children[0]))

    def call(self, children):
        func, _open, args, close = children
        args = tuple(args or ())
        return self._nest(n.Call(str(func), args, span=self._cover(func, close)), args)

    def list(self, children):
        items = tuple(c for c in children[1:-1] if c is not None)
        return self._nest(n.ListExpr(items, span=self._cover(children[0], children[-1])), items)

    def map(self, children):
        entries = tuple(c for c in children[1:-1] if c is not None)
        return self._nest(n.MapExpr(entries, span=self._cover(children[0], children[-1])), entries)

    def entry(self, children):
        key, value = children
        return self._nest(n.MapEntry(str(key), value, span=self._cover(key, value)), (value,), 0)

    def arguments(self, children):
        return [c for c in children if c is not None]

    def positional(self, children):
        (value,) = children
        return self._nest(n.Arg(value, span=self._cover(value, value)), (value,), 0)

    def keyword(self, children):
        name, value = children
        return self._nest(n.Arg(value, name=str(name), span=self._cover(name, value)), (value,), 0)

    def given(self, children):
        value, cond = children
        return self._nest(n.Arg(value, given=cond, span=self._cover(value, cond)), (value, cond), 0)


#: The builder the loaded parser calls; one parse at a time uses it.
_BUILDER = _Builder()
_LOCK = threading.Lock()


# ---------------------------------------------------------------- the LALR loop


class _Driver:
    """lark's LALR tables, contextual lexers and callbacks, run by one loop of our own.

    lark's loop spends most of its time on bookkeeping per token (a generator, a
    lexer state, a line counter, an exception path per lookup) and calls a
    wrapper for each of the ten unit reductions (``expr -> or_expr -> ... ->
    atom``) every operand passes through. This loop does the same shifts and
    reductions with lark's own tables, lexers and callbacks, skips the unit
    reductions' calls (their result is their one child), and is about twice as
    fast. It only handles valid input: at the first token it cannot use it
    returns ``None`` and :func:`parse` runs lark's own parser, whose exception
    carries what a syntax error needs.
    """

    def __init__(self, parser: lark.Lark):
        lalr = parser.parser.parser.parser
        table = lalr.parse_table
        callbacks = lalr.callbacks
        self.start = table.start_states["start"]
        self.end = table.end_states["start"]
        # Whose result is their one child: what lark's ExpandSingleChild returns for them.
        unit = {
            rule
            for rule in parser.rules
            if rule.options.expand1 and not rule.alias and len(rule.expansion) == 1
            and not rule.expansion[0].name.startswith("_")
        }
        shift_callbacks = {name: f for name, f in callbacks.items() if isinstance(name, str)}
        #: state -> terminal -> (True, next state, callback on the token) or (False, size, rule name, callback)
        self.actions: dict[int, dict[str, tuple]] = {}
        #: state -> rule name -> state after reducing to it
        self.goto: dict[int, dict[str, int]] = {}
        for state, row in table.states.items():
            actions, goto = {}, {}
            for symbol, (action, arg) in row.items():
                if action is Shift and not symbol.isupper():
                    goto[symbol] = arg
                elif action is Shift:
                    actions[symbol] = (True, arg, shift_callbacks.get(symbol))
                else:
                    actions[symbol] = (False, len(arg.expansion), arg.origin.name, None if arg in unit else callbacks[arg])
            self.actions[state], self.goto[state] = actions, goto
        #: state -> (patterns, callbacks on a match (a keyword read as a name), ignored and newline terminals)
        self.lexers = {}
        for state, lexer in parser.parser.lexer.lexers.items():
            scanner = lexer.scanner  # built on first use; sets lexer.callback
            if lexer.callback.keys() & lexer.ignore_types:
                raise ValueError("a callback on an ignored terminal")  # this loop never calls those
            self.lexers[state] = (tuple(scanner._mres), dict(lexer.callback), lexer.ignore_types, lexer.newline_types)
        #: (state below, top state, lookahead) -> top state after the unit reductions; filled as met
        self.units: dict[tuple[int, int, str], int] = {}
        if set(self.lexers) != set(self.actions):
            raise ValueError("lexer states do not match parser states")

    def _units(self, below: int, state: int, terminal: str) -> int:
        """The top state after every unit reduction that ``terminal`` causes in ``state`` over ``below``."""
        while True:
            action = self.actions[state].get(terminal)
            if action is None or action[0] or action[3] is not None:
                return state
            state = self.goto[below][action[2]]

    def parse(self, text: str):
        """The builder's result for ``text``, or ``None`` if ``text`` has any syntax error."""
        actions, goto, lexers, units = self.actions, self.goto, self.lexers, self.units
        new_token = Token._future_new if hasattr(Token, "_future_new") else Token
        states = [self.start]
        values: list = []
        pos, line, line_start, size = 0, 1, 0, len(text)
        type_ = None
        while pos < size:
            state = states[-1]
            patterns, on_match, ignored, newlines = lexers[state]
            for pattern in patterns:
                match = pattern.match(text, pos)
                if match:
                    break
            else:
                return None
            value, type_ = match.group(), match.lastgroup
            end = match.end()
            end_line, end_line_start = line, line_start
            if type_ in newlines and "\n" in value:
                end_line += value.count("\n")
                end_line_start = pos + value.rindex("\n") + 1
            if type_ in ignored:
                pos, line, line_start = end, end_line, end_line_start
                continue
            token = new_token(type_, value, pos, line, pos - line_start + 1, end_line, end - end_line_start + 1, end)
            pos, line, line_start = end, end_line, end_line_start
            if type_ in on_match:
                token = on_match[type_](token)
                type_ = token.type
            while True:
                action = actions[state].get(type_)
                if action is None:
                    return None
                if action[0]:
                    states.append(action[1])
                    values.append(token if action[2] is None else action[2](token))
                    break
                _, count, origin, callback = action
                if callback is None:
                    # A run of unit reductions only replaces the top state, so where it
                    # ends depends on the state below, the top and the lookahead alone.
                    key = (states[-2], state, type_)
                    state = units.get(key)
                    if state is None:
                        state = units[key] = self._units(*key)
                    states[-1] = state
                    continue
                children = values[-count:] if count else []
                if count:
                    del states[-count:]
                    del values[-count:]
                values.append(callback(children))
                state = goto[states[-1]][origin]
                states.append(state)
        while True:
            action = actions[states[-1]].get("$END")
            if action is None or action[0]:
                return None
            _, count, origin, callback = action
            if callback is None:
                states.pop()
            else:
                children = values[-count:] if count else []
                if count:
                    del states[-count:]
                    del values[-count:]
                values.append(callback(children))
            state = goto[states[-1]][origin]
            if state == self.end:
                return values[-1]
            states.append(state)


_DRIVER: _Driver | None = None


# ---------------------------------------------------------------- entry point


def scan_comments(text: str, path: str) -> tuple[n.Comment, ...]:
    """Every ``#`` comment outside strings; the formatter puts them back."""
    comments = []
    line, line_start, counted = 1, 0, 0
    for match in _DELIMITER_SCAN.finditer(text):
        if not match.group().startswith("#"):
            continue
        start, end = match.span()
        # Lines are counted on from the last comment, so the whole scan is linear.
        newlines = text.count("\n", counted, start)
        if newlines:
            line += newlines
            line_start = text.rindex("\n", counted, start) + 1
        counted = start
        column = start - line_start + 1
        comments.append(n.Comment(match.group(), Span(path, line, column, line, column + end - start, start, end)))
    return tuple(comments)


def parse(text: str, path: str = "<string>") -> n.Module:
    """Parse one file's text; raises :class:`CircError` with every located problem found.

    Linear in the text's length, and never recursive in its nesting: an
    expression nested more than :data:`MAX_DEPTH` levels is an error (C0110).
    """
    sources = {path: text}
    problems = check_delimiters(text, path)
    if problems:
        raise CircError(problems, sources)
    parser = load_parser()
    collecting = gc.isenabled()
    with _LOCK:
        # Parsing allocates a million small objects per MB and makes no cycles; the cyclic
        # collector would walk the growing tree again and again (a third of the time).
        gc.disable()
        try:
            _BUILDER.begin(path)
            items = None if _DRIVER is None else _DRIVER.parse(text)
            if items is None:  # a syntax error: lark's own loop finds it and says what was expected
                _BUILDER.begin(path)
                items = parser.parse(text)
            comments = scan_comments(text, path)
        except lark.exceptions.UnexpectedInput as err:
            problems = [syntax_error(err, text, path)]
        finally:
            if collecting:
                gc.enable()
        # Problems found in tokens before a syntax error are as real as it is.
        problems = _BUILDER.problems + problems
        _BUILDER.begin("<string>")  # drop the per-parse tables
    if problems:
        raise CircError(problems, sources)
    return n.Module(tuple(items), path=path, comments=comments)
