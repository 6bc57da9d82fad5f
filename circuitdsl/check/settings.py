"""Settings blocks: merge ``extends`` chains, then turn each expression into a typed value."""

from __future__ import annotations

from typing import Any

from circuitdsl.syntax import ast as n
from circuitdsl.check import schema as s
from circuitdsl.check.sink import DiagnosticSink
from circuitdsl.evaluate import NotConstant, constant_number  # noqa: F401 - re-exported for the checker
from circuitdsl.syntax.spans import Span

_INVALID = object()


def _describe(expr: n.Expr) -> str:
    if isinstance(expr, n.String) and not expr.value:
        return "an empty string"  # where a string is wanted, "found a string" would read as no error
    return {
        n.Number: "a number",
        n.Percent: "a number",
        n.String: "a string",
        n.Template: "a string",
        n.Bool: "a bool",
        n.Name: "a name",
        n.ListExpr: "a list",
        n.MapExpr: "a map",
        n.Range: "a range",
        n.IfElse: "an if expression",
        n.Call: "a call",
    }.get(type(expr), "an expression")


class SettingsChecker:
    """Validates one kind of settings block against its table in :mod:`circuitdsl.check.schema`."""

    def __init__(self, reporter: DiagnosticSink, definitions: dict[str, tuple[str, Any]]):
        self.report = reporter
        #: name -> (kind, block) for every named block in the program.
        self.definitions = definitions

    # ------------------------------------------------------------ merging

    def merged(self, block: n.SettingsBlock, blocks_of_kind: dict[str, n.SettingsBlock]) -> tuple[dict[str, n.Binding], bool]:
        """The block's bindings with those of its ``extends`` chain underneath, and whether that chain is whole."""
        chain = [block]
        seen = {block.name}
        current = block
        complete = True
        while current.extends is not None:
            parent = blocks_of_kind.get(current.extends)
            if parent is None:
                kind = self.definitions.get(current.extends, (None,))[0]
                if kind is not None:
                    self.report.error(
                        "C0205",
                        f"`{current.name}` extends `{current.extends}`, which is a {kind}, not a {block.kind}",
                        current.extends_span,
                    )
                else:
                    self.report.unknown(block.kind, current.extends, current.extends_span, blocks_of_kind)
                complete = False
                break
            if parent.name in seen:
                self.report.error(
                    "C0206",
                    f"`{block.name}` extends itself through " + " -> ".join(b.name for b in chain + [parent]),
                    block.extends_span,
                )
                complete = False
                break
            seen.add(parent.name)
            chain.append(parent)
            current = parent
        merged: dict[str, n.Binding] = {}
        for link in reversed(chain):
            merged.update(self.bindings(link))
        return merged, complete

    def bindings(self, block: n.SettingsBlock | n.HypothesisBlock) -> dict[str, n.Binding]:
        found: dict[str, n.Binding] = {}
        for binding in block.body:
            if not isinstance(binding, n.Binding):
                continue
            if binding.name in found:
                first = found[binding.name].span
                self.report.error(
                    "C0204",
                    f"`{binding.name}` is set twice in this block",
                    binding.name_span,
                    hint=f"the first is at line {first.line}" if first else None,
                )
            found[binding.name] = binding
        return found

    # ------------------------------------------------------------ values

    def resolve(
        self, kind: str, bindings: dict[str, n.Binding], span: Span | None, *, owner: str, complete: bool = True
    ) -> dict[str, Any]:
        """Every setting of ``kind`` as a typed value; ``_INVALID`` where an error was reported.

        ``complete`` is false when a broken ``extends`` hid settings the parent may have
        given; a missing required setting is then not reported, only marked invalid.
        """
        table = s.BLOCKS[kind]
        values: dict[str, Any] = {}
        for name, binding in bindings.items():
            if name not in table:
                self.report.unknown(f"{kind} setting", name, binding.name_span, table, code="C0301")
                continue
            values[name] = self.value(table[name], binding.value, name)
        for name, setting in table.items():
            if name in values:
                continue
            if setting.required:
                if complete:
                    self.report.error(
                        "C0303",
                        f"{kind} `{owner}` needs a `{name}` setting",
                        span,
                        hint=f"add `{name} = ...` ({setting.doc})",
                    )
                values[name] = _INVALID
            else:
                values[name] = setting.default
        return values

    def value(self, setting: s.Setting, expr: n.Expr, name: str) -> Any:
        try:
            return self._value(setting, expr, name)
        except NotConstant as problem:
            self.report.error("C0302", f"`{name}` expects {setting.type}: {problem.message}", problem.span or expr.span, problem.hint)
            return _INVALID

    def _number(self, setting: s.Setting, expr: n.Expr, name: str, *, integer: bool) -> int | float:
        if not isinstance(expr, (n.Number, n.Percent, n.Unary, n.Binary)):
            raise NotConstant(f"found {_describe(expr)}", expr.span)
        value = constant_number(expr)
        if integer and isinstance(value, float) and value.is_integer():
            value = int(value)  # `steps = 1e3` means 1000
        if integer and not isinstance(value, int):
            raise NotConstant(f"found {value!r}", expr.span, hint="write a whole number")
        return value

    def _check_bounds(self, setting: s.Setting, value: float, expr: n.Expr, name: str) -> Any:
        kind = setting.type
        problem = None
        if kind in (s.POSITIVE_INT, s.POSITIVE_NUMBER) and value <= 0:
            problem = "must be positive"
        elif kind in (s.NONNEG_INT, s.NONNEG_NUMBER) and value < 0:
            problem = "must not be negative"
        elif kind == s.FRACTION and not 0 < value <= 1:
            problem = "must lie in (0, 1]"
        elif kind == s.SHARE and not 0 <= value <= 1:
            problem = "must lie in [0, 1]"
        elif kind == s.PROBABILITY and not 0 < value < 1:
            problem = "must lie strictly between 0 and 1"
        elif setting.low is not None and value < setting.low:
            problem = f"must be at least {_shown(setting.low)}"
        elif setting.high is not None and value > setting.high:
            problem = f"must be at most {_shown(setting.high)}"
        if problem:
            hint = None
            if kind == s.FRACTION and value > 1:
                hint = f"write a fraction such as 1/{round(value)}" if value >= 2 else "1 means dense"
            elif kind == s.FRACTION and value == 0:
                hint = "a density of 0 leaves no weights; use a small fraction like 1/64"
            elif kind == s.PROBABILITY:
                hint = "a confidence level of 1 makes every interval infinitely wide; use 0.95 or 0.99"
            self.report.error("C0401", f"`{name}` {problem}, found {_shown(value)}", expr.span, hint)
            return _INVALID
        return value

    def _value(self, setting: s.Setting, expr: n.Expr, name: str) -> Any:
        kind = setting.type
        if kind in (s.POSITIVE_INT, s.NONNEG_INT):
            return self._check_bounds(setting, self._number(setting, expr, name, integer=True), expr, name)
        if kind in (s.POSITIVE_NUMBER, s.NONNEG_NUMBER, s.FRACTION, s.SHARE, s.PROBABILITY):
            return self._check_bounds(setting, float(self._number(setting, expr, name, integer=False)), expr, name)
        if kind == s.BOOL:
            if not isinstance(expr, n.Bool):
                raise NotConstant(f"found {_describe(expr)}", expr.span, hint="write `true` or `false`")
            return expr.value
        if kind == s.SPAN:
            if not isinstance(expr, n.Range):
                raise NotConstant(f"found {_describe(expr)}", expr.span, hint="write a span such as `1% .. 50%`")
            low = self._check_bounds(s.Setting(s.SHARE, 0, ""), float(constant_number(expr.low)), expr.low, name)
            high = self._check_bounds(s.Setting(s.SHARE, 0, ""), float(constant_number(expr.high)), expr.high, name)
            if low is _INVALID or high is _INVALID:
                return _INVALID
            if low > high:
                self.report.error(
                    "C0402",
                    f"`{name}` is an empty span: {low:g} is after {high:g}",
                    expr.span,
                    hint="write the start first, as in `1% .. 50%`",
                )
                return _INVALID
            return (low, high)
        if kind == s.CHARS:
            if isinstance(expr, n.Name) and expr.id == "printable":
                return "printable"
            if isinstance(expr, n.String) and expr.value:
                return expr.value
            raise NotConstant(f"found {_describe(expr)}", expr.span, hint='write `printable` or a string of characters like "abc[]"')
        if kind == s.TOKENS:
            items = expr.items if isinstance(expr, n.ListExpr) else (expr,)
            tokens = []
            for item in items:
                if not isinstance(item, n.String) or not item.value:
                    raise NotConstant(f"found {_describe(item)}", item.span, hint='write tokens as non-empty strings: ["]]", "+="]')
                tokens.append(item.value)
            return tuple(tokens)
        if kind == s.TARGET:
            bound = expr
            if isinstance(expr, n.Binary) and isinstance(expr.left, n.Name):
                if expr.left.id != "loss" or expr.op not in ("<=", "<"):
                    raise NotConstant("found a comparison that is not `loss <= x`", expr.span, hint="write `target = loss <= 0.15`")
                bound = expr.right
            value = float(constant_number(bound))
            if value <= 0:
                self.report.error("C0401", f"`{name}` must be a positive loss, found {value:g}", bound.span, hint="the paper prunes to 0.15 nats")
                return _INVALID
            return value
        if kind == s.STOP:
            return self._stop(expr, name)
        if setting.choices:
            if isinstance(expr, n.Name):
                if expr.id in setting.choices:
                    return expr.id
                self.report.unknown("value", expr.id, expr.span, setting.choices, code="C0403", where=f"for `{name}`")
                return _INVALID
            raise NotConstant(f"found {_describe(expr)}", expr.span, hint="expected one of " + ", ".join(f"`{c}`" for c in setting.choices))
        if kind == s.MIXTURE:
            return self._mixture(expr, name)
        if setting.ref is not None:
            return self.reference(expr, setting.ref)
        raise AssertionError(f"unhandled setting type {kind}")

    def _stop(self, expr: n.Expr, name: str) -> float | None | object:
        """`never`, or `accuracy >= x` with x a share: None, or x."""
        if isinstance(expr, n.Name) and expr.id == "never":
            return None
        bound = expr
        if isinstance(expr, n.Binary) and isinstance(expr.left, n.Name):
            if expr.left.id != "accuracy" or expr.op not in (">=", ">"):
                raise NotConstant("found a comparison that is not `accuracy >= x`", expr.span, hint="write `stop = accuracy >= 98%`")
            bound = expr.right
        elif not isinstance(expr, (n.Number, n.Percent)):
            raise NotConstant(f"found {_describe(expr)}", expr.span, hint="write `stop = accuracy >= 98%`, or `stop = never`")
        return self._check_bounds(s.Setting(s.SHARE, 0, ""), float(self._number(s.Setting(s.SHARE, 0, ""), bound, name, integer=False)), bound, name)

    def reference(self, expr: n.Expr, kind: str) -> str | object:
        if not isinstance(expr, n.Name):
            raise NotConstant(f"found {_describe(expr)}", expr.span, hint=f"name a {kind} block")
        found = self.definitions.get(expr.id)
        if found is None:
            candidates = [name for name, (k, _) in self.definitions.items() if k == kind]
            self.report.unknown(kind, expr.id, expr.span, candidates)
            return _INVALID
        if found[0] != kind:
            self.report.error("C0205", f"`{expr.id}` is a {found[0]}, not a {kind}", expr.span)
            return _INVALID
        return expr.id

    def _mixture(self, expr: n.Expr, name: str):
        if isinstance(expr, n.MapExpr):
            pairs = [(e.key, e.value, e.span) for e in expr.entries]
        elif isinstance(expr, n.ListExpr):
            pairs = [(item.id if isinstance(item, n.Name) else None, None, item.span) for item in expr.items]
        else:
            pairs = [(expr.id if isinstance(expr, n.Name) else None, None, expr.span)]
        if not pairs:
            raise NotConstant("the mixture is empty", expr.span, hint="name at least one task")
        mixture = []
        ok = True
        seen = set()
        for task, weight_expr, span in pairs:
            if task is None:
                raise NotConstant("found something that is not a task name", span)
            if task in seen:
                self.report.error("C0204", f"task `{task}` appears twice in the mixture", span)
                ok = False
            seen.add(task)
            if self.reference(n.Name(task, span=span), "task") is _INVALID:
                ok = False
            weight = 1.0
            if weight_expr is not None:
                weight = float(constant_number(weight_expr))
                if weight <= 0:
                    self.report.error("C0401", f"mixture weight of `{task}` must be positive, found {weight:g}", weight_expr.span)
                    ok = False
            mixture.append((task, weight))
        if not ok:
            return _INVALID
        total = sum(w for _, w in mixture)
        return tuple((task, w / total) for task, w in mixture)


INVALID = _INVALID


def _shown(value: float) -> str:
    """A bound as a reader checks it: 1,048,576 rather than 1.04858e+06."""
    if float(value).is_integer() and abs(value) < 10**21:
        return f"{int(value):,}"
    return f"{value:g}"
