"""Static analysis of task blocks: names, types, answers, and how long prompts can get.

Everything here runs at ``circ check`` time, before any data is generated:
an answer that is not one token, an empty range, or a prompt that cannot fit
the model's context is an error here, never a crash in the middle of training.
What an expression can be (values, characters, lengths) is found by
:mod:`circuitdsl.check.values`; this module types it and reports what is wrong.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import attrs

from circuitdsl.check import builtins as b
from circuitdsl.check.sink import DiagnosticSink
from circuitdsl.check.values import MAX_ENUMERATION, ValueAnalysis, call_args, free_names, subexpressions
from circuitdsl.evaluate import NotConstant, constant_number
from circuitdsl.spec.inferred import Typing
from circuitdsl.spec.checked import PRINTABLE, VocabSpec
from circuitdsl.syntax import ast as n
from circuitdsl.syntax.parser import MAX_DEPTH

#: How deeply a variable may nest counting what it reads (C0110). The walkers that follow
#: variables into their bindings (possible values, characters, lengths) stay exact up to
#: about 300 levels, measured; past that they would give up on a bound, and the
#: dependency walks would exhaust the stack. Twice one expression's limit, so an
#: expression at its limit can still be read by others.
MAX_CHAIN_DEPTH = 2 * MAX_DEPTH

_NUMERIC = (b.INT, b.FLOAT)
#: Generator arguments with a floor above 0: (argument, least value, why).
_AT_LEAST = {
    "nested_list": ("depth", 1, "a list is at least one level deep"),
    "identifier": ("length", 1, "an identifier has at least one character"),
}


def evaluation_order(
    bindings: dict[str, n.Binding], report: DiagnosticSink, scope: str, refs=None
) -> list[str] | None:
    """Bindings sorted so each comes after what it uses; ``None`` (and an error) on a cycle.

    ``refs(name)`` gives a binding's variable references when the caller has them already.
    A depth-first search with its own stack: a chain of thousands of variables, each
    reading the one before, is a hostile input, not a reason to exhaust Python's stack.
    """
    if refs is None:
        refs = lambda name: free_names(bindings[name].value)  # noqa: E731
    order: list[str] = []
    state: dict[str, str] = {}
    for root in bindings:
        if state.get(root) == "done":
            continue
        state[root] = "active"
        path = [root]
        pending = [iter(refs(root))]
        while pending:
            for ref in pending[-1]:
                name = ref.id
                if name not in bindings or state.get(name) == "done":
                    continue
                if state.get(name) == "active":
                    cycle = path[path.index(name) :] + [name]
                    report.error(
                        "C0207",
                        f"`{name}` depends on itself in {scope}: " + " -> ".join(cycle),
                        bindings[name].name_span,
                        hint="a variable may use any other, but not in a circle",
                    )
                    return None
                state[name] = "active"
                path.append(name)
                pending.append(iter(refs(name)))
                break
            else:
                done = path.pop()
                pending.pop()
                state[done] = "done"
                order.append(done)
    return order


def nesting(e, depth_of_name) -> int:
    """How many levels ``e`` nests, reading through each variable it names (``depth_of_name``).

    Counted like the parser's limit (one level per operator), because every walker that
    follows a variable into its binding recurses through both alike; a name adds no
    level of its own, so an expression at the limit may still be read through a variable.
    """
    deepest = 0
    stack = [(e, 1)]
    while stack:
        e, level = stack.pop()
        if e is None or isinstance(e, str):
            continue
        if isinstance(e, n.Name):
            depth = level - 1 + max(1, depth_of_name(e.id))
        elif isinstance(e, n.Template):
            names = [depth_of_name(p.id) for p in e.parts if isinstance(p, n.Name)]
            depth = level - 1 + max(1, *names) if names else level
        else:
            depth = level
            stack.extend((child, level + 1) for child in n.children(e))
        if depth > deepest:
            deepest = depth
    return deepest


def variant_bindings(base: dict[str, n.Binding], overrides: Iterable[n.Binding]) -> dict[str, n.Binding]:
    """A task's bindings with a variant's replacing (or adding to) them, as `adversarial` means it.

    A variant's binding may use the variable it replaces: `prompt = "[" + prompt`
    reads the task's own prompt, so the base binding lives on under a hidden
    name (``prompt'base``, which no source text can spell).
    """
    merged = dict(base)
    for binding in overrides:
        name = binding.name
        if name in base and any(ref.id == name for ref in free_names(binding.value)):
            hidden = f"{name}'base"
            merged[hidden] = base[name]
            binding = n.Binding(name, _rename(binding.value, name, hidden), span=binding.span, name_span=binding.name_span)
        merged[name] = binding
    return merged


def _rename(e, old: str, new: str):
    """``e`` with every reference to ``old`` pointing at ``new``."""
    if isinstance(e, n.Name):
        return n.Name(new, span=e.span) if e.id == old else e
    if isinstance(e, n.Template):
        return n.Template(tuple(_rename(p, old, new) if isinstance(p, n.Name) else p for p in e.parts), span=e.span)
    if isinstance(e, tuple):
        return tuple(_rename(x, old, new) for x in e)
    if attrs.has(type(e)):
        changes = {}
        for field in attrs.fields(type(e)):
            if field.name in ("span",) or not field.eq:
                continue
            value = getattr(e, field.name)
            if attrs.has(type(value)) or isinstance(value, tuple):
                changes[field.name] = _rename(value, old, new)
        return attrs.evolve(e, **changes) if changes else e
    return e


class TaskAnalysis(ValueAnalysis):
    """Types, possible values and length bounds for one task's variables (or a variant of it)."""

    def __init__(
        self, bindings: dict[str, n.Binding], vocab: VocabSpec, report: DiagnosticSink, scope: str,
        *, base: TaskAnalysis | None = None,
    ):
        super().__init__(bindings, vocab)
        self.report = report
        self.scope = scope
        #: The sound analysis of the task this is a variant of: what a variant leaves as the task
        #: has it (a binding, and everything it reads) is typed and checked there already, and
        #: re-checking it once per adversarial block was most of checking a big spec.
        self.base = base if base is not None and base.ok and base.vocab == vocab else None
        self._refs: dict[str, list[n.Name]] = {}
        #: How deep each variable nests, counting what it reads (see ``nesting``).
        self.depths: dict[str, int] = {}
        self.types: dict[str, str] = {}
        #: The variables in an order that evaluates each after what it uses (None on a cycle).
        self.order: list[str] | None = None
        #: Whether :meth:`check` found this task sound, so its lengths and answers can be trusted.
        self.ok = False

    # ------------------------------------------------------------ names and types

    def check(self) -> bool:
        # Only this task's own errors count: a mistake in another block must not hide
        # the checks that follow (answers, context), or one run would not report them all.
        before = self.report.raised
        ok = True
        for name in self.bindings:
            for ref in self.refs(name):
                if ref.id not in self.bindings:
                    self.report.unknown("variable", ref.id, ref.span, self.bindings, where=f"in {self.scope}")
                    ok = False
        if not ok:
            return False
        order = evaluation_order(self.bindings, self.report, self.scope, self.refs)
        self.order = order
        if order is None:
            return False
        inherited = self._inherited(order)
        if not self._shallow_enough(order, inherited):
            return False
        for name in order:
            self.types[name] = self.base.types[name] if name in inherited else self.infer(self.bindings[name].value)
        if self.report.raised == before:
            for name in order:
                if name not in inherited:
                    self._check_draws(self.bindings[name].value)
        self.ok = self.report.raised == before
        return self.ok

    def _shallow_enough(self, order: list[str], inherited: set[str]) -> bool:
        """Whether every variable nests at most MAX_CHAIN_DEPTH levels, counted through what it reads.

        Each expression is held to the limit by the parser, but the walkers here follow
        a variable into its binding, so a chain of variables nests as deep as its links
        together (C0110, as for one expression).
        """
        depth = self.depths
        for name in order:
            binding = self.bindings[name]
            if name in inherited:
                depth[name] = self.base.depths[name]
                continue
            depth[name] = nesting(binding.value, lambda ref: depth.get(ref, 0))
            if depth[name] > MAX_CHAIN_DEPTH:
                self.report.error(
                    "C0110",
                    f"`{name}` nests {depth[name]} levels deep in {self.scope}, counting the variables it reads "
                    f"and theirs; the most is {MAX_CHAIN_DEPTH}",
                    binding.name_span,
                    hint="a variable that reads a variable counts as deep as both: compute the chain in fewer steps",
                )
                return False
        return True

    def refs(self, name: str) -> list[n.Name]:
        """The variable references in ``name``'s binding (found once)."""
        found = self._refs.get(name)
        if found is None:
            binding = self.bindings[name]
            if self.base is not None and self.base.bindings.get(name) is binding:
                found = self.base.refs(name)
            else:
                found = free_names(binding.value)
            self._refs[name] = found
        return found

    def _inherited(self, order: list[str]) -> set[str]:
        """The variables whose binding, and every binding they read, are the base task's own."""
        same: set[str] = set()
        if self.base is None:
            return same
        for name in order:
            if self.base.bindings.get(name) is self.bindings[name] and all(ref.id in same for ref in self.refs(name)):
                same.add(name)
        return same

    def typing(self) -> Typing:
        """What the sampler needs of this analysis; only for a task that :meth:`check` passed."""
        assert self.ok and self.order is not None
        return Typing(dict(self.types), tuple(self.order))

    # ------------------------------------------------------------ values that fail when drawn

    def _check_draws(self, expr: n.Expr) -> None:
        """Values a draw can reach that have no meaning: a range whose bounds cross, a zero
        divisor, a list of depth 0, an empty identifier, weights that are all zero.

        Decided like answers: per assignment of the choices and ranges involved,
        so `n..3` with `n = 1..5` is reported with the value of `n` that empties it.
        """
        for e in subexpressions(expr):
            if isinstance(e, n.Range) and not _constant(e):
                self._never(
                    e, lambda env, e=e: self._pairs(e.low, e.high, env), lambda lh: lh[0] > lh[1], "C0402",
                    lambda lh: f"this range can be empty: {lh[0]}..{lh[1]} has no values",
                    "ranges include both ends and need the start first; keep the bounds from crossing",
                )
            elif isinstance(e, n.Binary) and e.op == "/":
                self._never(e.right, None, lambda v: v == 0, "C0401", lambda v: "the divisor can be 0", "keep the divisor away from 0")
            elif isinstance(e, n.Call) and e.func in b.GENERATORS:
                args = call_args(e)
                least = _AT_LEAST.get(e.func)
                if least and least[0] in args:
                    name, low, why = least
                    self._never(
                        args[name], None, lambda v, low=low: isinstance(v, int) and v < low, "C0401",
                        lambda v, name=name, low=low: f"`{name}` of `{e.func}` must be at least {low}, and can be {v}",
                        why,
                    )
                weights = args.get("weights") if e.func == "choice" else None
                if isinstance(weights, n.ListExpr) and weights.items:
                    values = [self.values(item) for item in weights.items]
                    if all(v is not None and v <= {0} for v in values):
                        self.report.error("C0401", "the weights of `choice` are all zero", weights.span, hint="give some option a positive weight")

    def _pairs(self, low: n.Expr, high: n.Expr, env) -> set | None:
        lows, highs = self.values(low, env), self.values(high, env)
        if lows is None or highs is None or len(lows) * len(highs) > MAX_ENUMERATION:
            return None
        return set(itertools.product(lows, highs))

    def _never(self, e: n.Expr, values, bad, code: str, message, hint: str | None) -> None:
        """Report ``e`` (with the assignment that does it) if some draw makes ``bad(value)`` true."""
        if values is None:
            values = lambda env: self.values(e, env)  # noqa: E731
        for env in self.assignments(e) or ():
            for value in values(env) or ():
                if bad(value):
                    when = ", ".join(f"{k} = {v!r}" for k, v in env.items())
                    self.report.error(code, message(value), e.span, hint=hint, notes=[f"when {when}"] if when else [])
                    return

    def infer(self, e: n.Expr) -> str:
        """The type of an expression; reports and returns ANY when it has none."""
        if isinstance(e, n.Number):
            return b.INT if isinstance(e.value, int) else b.FLOAT
        if isinstance(e, (n.String, n.Template)):
            return b.STR
        if isinstance(e, n.Bool):
            return b.BOOL
        if isinstance(e, n.Name):
            return self.types.get(e.id, b.ANY)
        if isinstance(e, n.ListExpr):
            for item in e.items:
                self.infer(item)
            return b.LIST
        if isinstance(e, n.MapExpr):
            self.report.error("C0304", f"a map has no meaning in {self.scope}", e.span, hint="maps are for mixture weights in train blocks")
            return b.ANY
        if isinstance(e, n.Percent):
            self._expect(e.value, _NUMERIC, "`%`")
            return b.FLOAT
        if isinstance(e, n.Range):
            self._expect(e.low, (b.INT,), "a range's bounds")
            self._expect(e.high, (b.INT,), "a range's bounds")
            self._check_range(e)
            return b.INT
        if isinstance(e, n.Unary):
            if e.op == "not":
                self._expect(e.operand, (b.BOOL,), "`not`")
                return b.BOOL
            return self._expect(e.operand, _NUMERIC, "unary `-`")
        if isinstance(e, n.IfElse):
            self._expect(e.cond, (b.BOOL,), "the condition of `if`")
            then, orelse = self.infer(e.then), self.infer(e.orelse)
            if b.ANY not in (then, orelse) and then != orelse and {then, orelse} != set(_NUMERIC):
                self.report.error("C0305", f"the branches of `if` differ in type: {then} and {orelse}", e.span)
            return then
        if isinstance(e, n.Binary):
            return self._binary(e)
        if isinstance(e, n.Call):
            return self._call(e)
        return b.ANY

    def _expect(self, e: n.Expr, allowed: tuple[str, ...], where: str) -> str:
        found = self.infer(e)
        if found != b.ANY and found not in allowed:
            self.report.error("C0305", f"{where} needs {' or '.join(allowed)}, found {found}", e.span)
            return b.ANY
        return found

    def _binary(self, e: n.Binary) -> str:
        if e.op in ("and", "or"):
            self._expect(e.left, (b.BOOL,), f"`{e.op}`")
            self._expect(e.right, (b.BOOL,), f"`{e.op}`")
            return b.BOOL
        if e.op == "in":
            self.infer(e.left)
            if not isinstance(e.right, (n.Range, n.ListExpr)):
                self.report.error("C0305", "`in` needs a range or a list on its right", e.right.span)
            else:
                self.infer(e.right)
            return b.BOOL
        left, right = self.infer(e.left), self.infer(e.right)
        if b.ANY in (left, right):
            return b.BOOL if e.op in ("==", "!=", "<", "<=", ">", ">=") else b.ANY
        if e.op in ("==", "!="):
            if left != right and {left, right} != set(_NUMERIC):
                self.report.error("C0305", f"`{e.op}` compares {left} with {right}; they are never equal", e.span)
            return b.BOOL
        if e.op in ("<", "<=", ">", ">="):
            if left not in _NUMERIC or right not in _NUMERIC:
                self.report.error("C0305", f"`{e.op}` needs numbers, found {left} and {right}", e.span)
            return b.BOOL
        if e.op == "+" and left == right == b.STR:
            return b.STR
        if left in _NUMERIC and right in _NUMERIC:
            return b.FLOAT if b.FLOAT in (left, right) or e.op == "/" else b.INT
        hint = "turn the number into text with `str(...)`" if e.op == "+" and b.STR in (left, right) else None
        self.report.error("C0305", f"`{e.op}` cannot combine {left} and {right}", e.span, hint)
        return b.ANY

    def _call(self, e: n.Call) -> str:
        func = b.GENERATORS.get(e.func)
        if func is None:
            self.report.unknown("generator", e.func, e.span, b.GENERATORS)
            for arg in e.args:
                self.infer(arg.value)
            return b.ANY
        positional = [a for a in e.args if a.name is None]
        keywords: dict[str, n.Arg] = {}
        for arg in e.args:
            if arg.given is not None:
                self.report.error(
                    "C0306", "`|` conditions belong to hypothesis statistics such as `mean(act | ...)`", arg.span
                )
            if arg.name is not None:
                if arg.name in keywords:
                    self.report.error("C0306", f"`{arg.name}:` is given twice to `{e.func}`", arg.span)
                keywords[arg.name] = arg
        bound: dict[str, n.Expr] = {}
        params = list(func.params)
        if func.variadic:
            if not positional:
                self.report.error("C0306", f"`{e.func}` needs at least one option", e.span, hint=f"for example `{func.example}`")
            option_types = {self.infer(a.value) for a in positional} - {b.ANY}
            if len(option_types) > 1 and option_types != set(_NUMERIC):
                self.report.error("C0305", f"the options of `{e.func}` differ in type: {', '.join(sorted(option_types))}", e.span)
            result = option_types.pop() if len(option_types) == 1 else b.ANY
            params = params[1:]
        else:
            if len(positional) > len(params):
                self.report.error(
                    "C0306",
                    f"`{e.func}` takes at most {len(params)} argument(s), found {len(positional)}",
                    positional[len(params)].span,
                    hint=f"for example `{func.example}`",
                )
            for param, arg in zip(params, positional):
                bound[param.name] = arg.value
            result = func.returns
        for name, arg in keywords.items():
            param = func.param(name)
            if param is None or (func.variadic and param is func.params[0]):
                self.report.unknown("argument", name, arg.span, [p.name for p in params], where=f"of `{e.func}`")
                continue
            if name in bound:
                self.report.error("C0306", f"`{name}` is given twice to `{e.func}`", arg.span)
            bound[name] = arg.value
        for param in params:
            if param.name not in bound:
                if param.required:
                    self.report.error(
                        "C0306", f"`{e.func}` needs `{param.name}`", e.span, hint=f"for example `{func.example}`"
                    )
                continue
            value = bound[param.name]
            if param.type == b.LIST:
                if not isinstance(value, n.ListExpr):
                    self.report.error("C0305", f"`{param.name}` of `{e.func}` needs a list", value.span)
                    continue
                for item in value.items:
                    self._expect(item, _NUMERIC, f"`{param.name}` of `{e.func}`")
                    self._nonnegative(item, f"`{param.name}` of `{e.func}`")
                    self._at_most(item, b.MAX_WEIGHT, f"a weight of `{e.func}`", "weights are relative: scale them down")
                if e.func == "choice" and len(value.items) != len(positional):
                    self.report.error(
                        "C0306",
                        f"`choice` has {len(positional)} option(s) but {len(value.items)} weight(s)",
                        value.span,
                    )
                continue
            if param.type != b.ANY:
                allowed = (param.type,) + ((b.INT,) if param.type == b.FLOAT else ())
                self._expect(value, allowed, f"`{param.name}` of `{e.func}`")
            if param.type == b.INT:
                self._nonnegative(value, f"`{param.name}` of `{e.func}`")
            if param.most is not None:
                self._at_most(
                    value, param.most, f"`{param.name}` of `{e.func}`",
                    "no model reads a prompt that long; the limits are in docs/language.md (Limits)",
                )
        return result

    def _at_most(self, e: n.Expr, most: int, where: str, hint: str) -> None:
        """A bound on what a draw can make, decided before anything is drawn (or allocated)."""
        top = self._upper(e, None)
        if top is None:
            values = self.values(e)
            numbers = [v for v in values or () if isinstance(v, (int, float)) and not isinstance(v, bool)]
            top = max(numbers, default=None)
        if top is not None and top > most:
            shown = str(top) if top < 10**9 else f"about 10^{len(str(int(top))) - 1}"
            self.report.error("C0401", f"{where} can be {shown}; the most it may be is {most:,}", e.span, hint=hint)

    def _nonnegative(self, e: n.Expr, where: str) -> None:
        for value in self.values(e) or ():
            if isinstance(value, (int, float)) and value < 0:
                self.report.error("C0401", f"{where} must not be negative, found {value}", e.span)
                return

    def _check_range(self, e: n.Range) -> None:
        try:
            low, high = constant_number(e.low), constant_number(e.high)
        except NotConstant:
            return
        if low > high:
            self.report.error(
                "C0402", f"empty range {low}..{high}: it has no values", e.span, hint=f"ranges include both ends; did you mean {high}..{low}?"
            )


def check_characters(
    analysis: TaskAnalysis, prompt: n.Expr, vocab: VocabSpec, report: DiagnosticSink, what: str, within: Iterable[n.Expr] | None = None
) -> None:
    """Report the characters a prompt can contain that no token of the vocab covers (C0408).

    With ``within`` (a variant's own bindings), only characters written inside
    those are reported: the task's check has reported the rest already.
    """
    covered = set(vocab.chars).union(*vocab.tokens)
    inside = None if within is None else {id(e) for expr in within for e in subexpressions(expr)}
    by_origin: dict[int, tuple[n.Expr, list[str]]] = {}
    for char, origin in analysis.characters(prompt).items():
        if char not in covered and (inside is None or id(origin) in inside):
            by_origin.setdefault(id(origin), (origin, []))[1].append(char)
    for origin, chars in by_origin.values():
        shown = ", ".join(repr(c) for c in chars[:8]) + (f" and {len(chars) - 8} more" if len(chars) > 8 else "")
        generated = isinstance(origin, n.Call)
        report.error(
            "C0408",
            f"{what} can contain {shown}, which the vocab lacks"
            + (f" (`{origin.func}` writes {'it' if len(chars) == 1 else 'them'})" if generated else ""),
            origin.span,
            hint="add "
            + ("it" if len(chars) == 1 else "them")
            + " to the vocab's `chars`"
            + (", or use `chars = printable`" if set(chars) <= set(PRINTABLE) else ""),
        )


#: The fields a task's examples are scored on, and the types each may have.
_TEXT_FIELDS = {"prompt": (b.STR,), "answer": (b.STR,), "competitors": (b.LIST, b.STR)}


def check_outputs(
    analysis: TaskAnalysis, vocab: VocabSpec, report: DiagnosticSink, of: str = "", own: dict[str, n.Binding] | None = None
) -> bool:
    """Report a prompt, answer or competitor of the wrong type (C0305), and an answer or
    competitor that can be anything but one token of the vocab (C0404); False after a
    type error, when the prompt's characters are not worth checking either.

    With ``own`` (a variant's own bindings), only the fields those bindings change are
    checked, each reported where the variant changes it: the task's check has
    reported what the variant inherits unchanged.
    """
    origins = {name: _changed_by(analysis.bindings, name, own) for name in _TEXT_FIELDS}
    for name, allowed in _TEXT_FIELDS.items():
        origin = origins[name]
        binding = analysis.bindings.get(name)
        # A field of the wrong type has no values worth enumerating.
        if origin is not None and binding is not None and analysis.types.get(name) not in allowed + (b.ANY,):
            report.error("C0305", f"`{name}`{of} must be text, found {analysis.types[name]}", binding.value.span)
            return False
    for name in ("answer", "competitors"):
        if origins[name] is not None:
            _check_tokens(analysis, analysis.bindings[name], origins[name], vocab, report, of)
    return True


def _changed_by(bindings: dict[str, n.Binding], name: str, own: dict[str, n.Binding] | None) -> n.Binding | None:
    """The binding to blame for the values of ``name``: its own, or with ``own`` the first
    of the variant's bindings it reads (None if the variant leaves it as the task has it)."""
    if name not in bindings:
        return None
    if own is None or name in own:
        return bindings[name]
    seen: set[str] = set()
    stack = [name]
    while stack:
        current = stack.pop()
        for ref in free_names(bindings[current].value):
            if ref.id in own:
                return own[ref.id]
            if ref.id in bindings and ref.id not in seen:
                seen.add(ref.id)
                stack.append(ref.id)
    return None


def _check_tokens(
    analysis: TaskAnalysis, binding: n.Binding, origin: n.Binding, vocab: VocabSpec, report: DiagnosticSink, of: str
) -> None:
    """The first value of each answer (or listed competitor) that is not one token, with the draw that gives it."""
    what = "an answer" if binding.name == "answer" else "a competitor"
    exprs = binding.value.items if isinstance(binding.value, n.ListExpr) else (binding.value,)
    for expr in exprs:
        # A field rebound through another variable is shown where the variant rebinds that one.
        span = expr.span if origin is binding else origin.value.span
        for value, env in analysis.answers(expr) or ():
            if isinstance(value, str) and vocab.is_token(value):
                continue
            when = ", ".join(f"{k} = {v!r}" for k, v in env.items())
            report.error(
                "C0404",
                f"{what}{of} can be {value!r}, which is not one token of the vocab",
                span,
                hint=_token_hint(value),
                notes=[f"when {when}"] if when else [],
            )
            break


def _token_hint(value: object) -> str:
    if isinstance(value, str) and len(value) > 1:
        return f'declare it in the vocab: vocab {{ tokens = ["{value}"] }}'
    if isinstance(value, str) and value:
        return "add it to the vocab's `chars`"
    return "an answer is exactly one token"


def _constant(e: n.Range) -> bool:
    try:
        constant_number(e.low), constant_number(e.high)
    except NotConstant:
        return False
    return True
