"""What a task's expressions can be, found without drawing: the values each can take,
the assignments of the random variables behind them, the characters a text can
contain and how many tokens it can take.

Operators mean here what they mean when the sampler draws (:mod:`circuitdsl.evaluate`).
The type checks and the diagnostics built on these answers are in
:mod:`circuitdsl.check.tasks`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from circuitdsl.check import builtins as b
from circuitdsl.evaluate import BINARY, UNARY, NotConstant, as_text, constant_number, in_list, in_range, percent
from circuitdsl.spec.checked import VocabSpec
from circuitdsl.syntax import ast as n

#: The most variable assignments enumerated to decide an answer's possible values.
MAX_ENUMERATION = 4096
#: The longest a `code_line()` may be, in characters; the runtime keeps to it.
CODE_LINE_MAX = 40


def free_names(expr: n.Expr | None) -> list[n.Name]:
    """Every variable reference in an expression, in source order."""
    found: list[n.Name] = []
    # Children are pushed last-first so they pop in source order; no recursion, and no
    # self-referencing closure (the cyclic garbage one per call made was most of a big check's).
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, n.Name):
            found.append(e)
        elif e is not None:
            stack.extend(reversed(n.children(e)))
    return found


def subexpressions(e):
    """``e`` and every expression inside it, generator arguments included."""
    stack = [e]
    while stack:
        e = stack.pop()
        if e is None:
            continue
        yield e
        stack.extend(n.children(e))


class ValueAnalysis:
    """Possible values, characters and length bounds of one task's variables (or a variant's)."""

    def __init__(self, bindings: dict[str, n.Binding], vocab: VocabSpec):
        self.bindings = bindings
        self.vocab = vocab
        self._lengths: dict[str, int | None] = {}
        self._chars_memo: dict[str, dict[str, n.Expr]] = {}

    # ------------------------------------------------------------ possible values

    def values(self, e: n.Expr, env: dict[str, object] | None = None) -> set | None:
        """Every value ``e`` can take given fixed values of some variables; None if unbounded."""
        env = env or {}
        try:
            return self._values(e, env)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
            return None

    def _values(self, e, env) -> set | None:
        if isinstance(e, (n.Number, n.String, n.Bool)):
            return {e.value}
        if isinstance(e, n.Name):
            if e.id in env:
                return {env[e.id]}
            binding = self.bindings.get(e.id)
            return None if binding is None else self._values(binding.value, env)
        if isinstance(e, n.Range):
            lows, highs = self._values(e.low, env), self._values(e.high, env)
            if lows is None or highs is None:
                return None
            out = set()
            for low, high in itertools.product(lows, highs):
                if not isinstance(low, int) or not isinstance(high, int) or high - low > MAX_ENUMERATION:
                    return None
                out.update(range(low, high + 1))
            return out
        if isinstance(e, n.Call) and e.func == "choice":
            out = set()
            for arg in e.args:
                if arg.name is None:
                    options = self._values(arg.value, env)
                    if options is None:
                        return None
                    out |= options
            return out
        if isinstance(e, n.Call) and e.func in ("str", "int") and e.args:
            inner = self._values(e.args[0].value, env)
            return None if inner is None else {as_text(v) for v in inner}
        if isinstance(e, n.Template):
            return self._combine([p if isinstance(p, n.Name) else n.String(p) for p in e.parts], env, lambda xs: "".join(map(as_text, xs)))
        if isinstance(e, n.IfElse):
            conds = self._values(e.cond, env)
            if conds is None:
                return None
            out = set()
            if True in conds:
                then = self._values(e.then, env)
                if then is None:
                    return None
                out |= then
            if False in conds:
                orelse = self._values(e.orelse, env)
                if orelse is None:
                    return None
                out |= orelse
            return out
        if isinstance(e, n.Unary):
            return self._combine([e.operand], env, lambda xs: UNARY[e.op](xs[0]))
        if isinstance(e, n.Percent):
            return self._combine([e.value], env, lambda xs: percent(xs[0]))
        if isinstance(e, n.Binary) and e.op == "in":
            if isinstance(e.right, n.Range):
                parts = [e.left, e.right.low, e.right.high]
                return self._combine(parts, env, lambda xs: in_range(*xs))
            if isinstance(e.right, n.ListExpr):
                return self._combine([e.left, *e.right.items], env, lambda xs: in_list(xs[0], xs[1:]))
            return None
        if isinstance(e, n.Binary):
            return self._combine([e.left, e.right], env, lambda xs: BINARY[e.op](xs[0], xs[1]))
        return None

    def _combine(self, parts, env, fn) -> set | None:
        sets = []
        for part in parts:
            values = self._values(part, env)
            if values is None:
                return None
            sets.append(values)
        total = 1
        for values in sets:
            total *= len(values)
        if total > MAX_ENUMERATION:
            return None
        return {fn(combo) for combo in itertools.product(*sets)}

    def assignments(self, expr: n.Expr) -> list[dict[str, object]] | None:
        """Every assignment of the random variables ``expr`` depends on; None if too many.

        Variables are enumerated at their roots (those bound straight to a
        `choice` or a range) and everything derived from them is recomputed,
        so `answer = if depth == 2 ...` is decided per value of `depth`.
        """
        roots = []
        seen = set()
        # Depth first in source order, with its own stack (a chain of variables can be long).
        pending = [iter(free_names(expr))]
        while pending:
            for ref in pending[-1]:
                if ref.id in seen or ref.id not in self.bindings:
                    continue
                seen.add(ref.id)
                value = self.bindings[ref.id].value
                if isinstance(value, n.Range) or (isinstance(value, n.Call) and value.func == "choice"):
                    roots.append(ref.id)
                    continue
                pending.append(iter(free_names(value)))
                break
            else:
                pending.pop()
        domains = []
        total = 1
        for root in roots:
            domain = self.values(self.bindings[root].value)
            if domain is None:
                return None
            domains.append(sorted(domain, key=repr))
            total *= len(domain)
            if total > MAX_ENUMERATION:
                return None
        return [dict(zip(roots, combo)) for combo in itertools.product(*domains)]

    def answers(self, expr: n.Expr) -> list[tuple[object, dict[str, object]]] | None:
        """Each possible value of ``expr`` with an assignment of the random variables that yields it."""
        out = []
        for env in self.assignments(expr) or [None]:
            if env is None:
                return None
            results = self.values(expr, env)
            if results is None:
                return None
            out.extend((r, env) for r in sorted(results, key=repr))
        return out

    # ------------------------------------------------------------ characters

    def characters(self, e: n.Expr) -> dict[str, n.Expr]:
        """Characters the text of ``e`` can contain, each with the expression that writes it.

        Only characters known to be possible are listed (a value that cannot be
        enumerated adds none), so anything listed can really occur.
        """
        try:
            return self._chars(e)
        except RecursionError:
            return {}

    def _chars(self, e) -> dict[str, n.Expr]:
        if isinstance(e, n.Name):
            if e.id not in self._chars_memo:
                self._chars_memo[e.id] = {}  # guards against cycles
                binding = self.bindings.get(e.id)
                self._chars_memo[e.id] = {} if binding is None else self._chars(binding.value)
            return self._chars_memo[e.id]
        if isinstance(e, n.String):
            return dict.fromkeys(e.value, e)
        if isinstance(e, n.Template):
            out: dict[str, n.Expr] = {}
            for part in e.parts:
                _merge(out, self._chars(part) if isinstance(part, n.Name) else dict.fromkeys(part, e))
            return out
        if isinstance(e, n.Binary) and e.op == "+":
            return _merge(self._chars(e.left), self._chars(e.right))
        if isinstance(e, n.IfElse):
            return _merge(self._chars(e.then), self._chars(e.orelse))
        if isinstance(e, n.Call) and e.func in b.GENERATORS and e.func not in ("str", "int"):
            func = b.GENERATORS[e.func]
            out = dict.fromkeys(func.alphabet, e)
            args = call_args(e)
            if e.func == "choice":
                for arg in e.args:
                    if arg.name is None:
                        _merge(out, self._chars(arg.value))
            elif e.func == "nested_list":
                _merge(out, self._chars(args["values"]) if "values" in args else dict.fromkeys(b.DIGITS, e))
            elif e.func == "repeat":
                for name in ("value", "sep"):
                    if name in args:
                        _merge(out, self._chars(args[name]))
            return out
        values = self.values(e)
        out = {}
        for value in values or ():
            _merge(out, dict.fromkeys(as_text(value), e))
        return out

    # ------------------------------------------------------------ lengths

    def max_tokens(self, e: n.Expr) -> int | None:
        """An upper bound on the tokens ``e`` can produce; None if it has none we can see."""
        try:
            return self._max(e)
        except RecursionError:
            return None

    def _max(self, e) -> int | None:
        if isinstance(e, n.Name):
            if e.id not in self._lengths:
                binding = self.bindings.get(e.id)
                self._lengths[e.id] = None  # guards against cycles
                self._lengths[e.id] = None if binding is None else self._max(binding.value)
            return self._lengths[e.id]
        # Finitely many values (literals, choices, ranges) bound the length exactly.
        if not isinstance(e, n.Call) or e.func in ("choice", "str"):
            values = self.values(e)
            if values is not None:
                return max((_token_count(as_text(v), self.vocab) for v in values), default=0)
        if isinstance(e, n.Template):
            return _sum(self._max(p) if isinstance(p, n.Name) else _token_count(p, self.vocab) for p in e.parts)
        if isinstance(e, n.IfElse):
            return _max_of([self._max(e.then), self._max(e.orelse)])
        if isinstance(e, n.Binary) and e.op == "+":
            return _sum([self._max(e.left), self._max(e.right)])
        if isinstance(e, n.Call):
            return self._max_call(e)
        return None

    def _upper(self, e: n.Expr | None, default) -> int | None:
        if e is None:
            return default[1] if isinstance(default, tuple) else default
        values = self.values(e)
        if values is None and isinstance(e, n.Range):
            # Too many values to list (`1..100000`), but the top is still known.
            try:
                high = constant_number(e.high)
            except NotConstant:
                return None
            return high if isinstance(high, int) else None
        # An empty set is an empty range (`5..2`), reported as such elsewhere.
        if not values or not all(isinstance(v, int) for v in values):
            return None
        return max(values)

    def _max_call(self, e: n.Call) -> int | None:
        func = b.GENERATORS.get(e.func)
        if func is None:
            return None
        args = {}
        params = list(func.params)
        if not func.variadic:
            for param, arg in zip(params, [a for a in e.args if a.name is None]):
                args[param.name] = arg.value
        args.update({a.name: a.value for a in e.args if a.name is not None})
        if e.func == "choice":
            return _max_of([self._max(a.value) for a in e.args if a.name is None])
        if e.func in ("int", "str"):
            values = self.values(next(iter(args.values()), None)) if args else None
            if values is None:
                return None
            return max(len(as_text(v)) for v in values)
        if e.func in ("identifier", "word"):
            return self._upper(args.get("length"), func.param("length").default)
        if e.func == "code_line":
            return CODE_LINE_MAX
        if e.func == "repeat":
            count = self._upper(args.get("count"), 0)
            item = self._max(args["value"]) if "value" in args else None
            sep = _token_count(args["sep"].value, self.vocab) if isinstance(args.get("sep"), n.String) else 0
            if count is None or item is None:
                return None
            return count * item + max(0, count - 1) * sep
        if e.func == "nested_list":
            depth = self._upper(args.get("depth"), None)
            items = self._upper(args.get("items"), func.param("items").default)
            value = self._max(args["values"]) if "values" in args else 1
            if depth is None or items is None or value is None:
                return None
            # Each level: `[`, its items with `, ` between them, `, ` before the next level.
            per_level = 1 + items * value + 2 * items
            return depth * per_level + depth  # closing brackets when the list is closed
        return None


def call_args(e: n.Call) -> dict[str, n.Expr]:
    """A generator call's arguments by parameter name (choice's options are left out)."""
    func = b.GENERATORS.get(e.func)
    if func is None:
        return {}
    args: dict[str, n.Expr] = {}
    if not func.variadic:
        args.update(zip((p.name for p in func.params), (a.value for a in e.args if a.name is None)))
    args.update({a.name: a.value for a in e.args if a.name is not None})
    return args


def _merge(into: dict, more: dict) -> dict:
    for key, value in more.items():
        into.setdefault(key, value)
    return into


def _token_count(text: str, vocab: VocabSpec) -> int:
    """Tokens of a literal under longest-match tokenization (unknown characters count one each)."""
    count = 0
    i = 0
    longest = max((len(t) for t in vocab.tokens), default=1)
    while i < len(text):
        step = 1
        for size in range(min(longest, len(text) - i), 1, -1):
            if text[i : i + size] in vocab.tokens:
                step = size
                break
        i += step
        count += 1
    return count


def _sum(values: Iterable[int | None]) -> int | None:
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def _max_of(values: list[int | None]) -> int | None:
    if any(v is None for v in values):
        return None
    return max(values, default=0)
