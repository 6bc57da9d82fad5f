"""Checked tasks -> examples: an interpreter of a task's expressions.

A task is compiled once into Python closures, one per expression node, and
each :meth:`TaskSampler.draw` runs them in dependency order. For the paper's
bracket-depth task (specs/tasks/bracket_depth.circ)::

    TaskSampler(task).draw(random.Random(0))
    -> Example(task='bracket_depth', prompt='kjso = [3, 4, 5, 9, [2, 7, 6', answer=']]',
               competitors=(']',), latents={'depth': 2, 'name': 'kjso', 'body': '[3, 4, 5, 9, [2, 7, 6'})

Semantics (docs/language.md, "Generators"): every binding is drawn once per
example, after the bindings it uses; an argument that the builtins table marks
``lazy`` (``values:`` of ``nested_list``, the ``value`` of ``repeat``, the
options of ``choice``, lengths and counts) is evaluated again at each use; a
range used as a value is a uniform draw with both ends included.

Pure Python, no torch: ``circ sample`` and the hypothesis strategies use it
without loading the runtime. Randomness comes only from the ``random.Random``
passed to :meth:`TaskSampler.draw`, so a seed fixes every example.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import attrs

from circuitdsl.check import builtins as b
from circuitdsl.evaluate import BINARY, ORDER, UNARY, as_text, in_list, percent
from circuitdsl.check.tasks import variant_bindings
from circuitdsl.check.values import CODE_LINE_MAX
from circuitdsl.diagnostics import CircError, Diagnostic
from circuitdsl.spec.checked import TaskSpec
from circuitdsl.spec.claims import Variant
from circuitdsl.syntax import ast as n

_INTERFACE = ("prompt", "answer", "competitors")


@attrs.frozen
class Example:
    """One drawn example: what the model reads, what it must say, and why."""

    task: str
    prompt: str
    #: The one token that must follow the prompt.
    answer: str
    #: Tokens the answer competes with (empty when the task names none).
    competitors: tuple[str, ...]
    #: Every latent variable's value: ints as int, text as str, bools as bool.
    latents: dict[str, object] = attrs.field(hash=False)


Fn = Callable[[dict, random.Random], object]


class TaskSampler:
    """Draws examples of one checked task, or of a checked variant of it.

    A ``variant`` (an ``adversarial`` block, or one point of its sweep) replaces
    bindings of the same name or adds new ones; an override may use the binding
    it replaces (``prompt = "[" + prompt``). Both come with the checker's types
    and evaluation order (:class:`~circuitdsl.spec.inferred.Typing`): the
    sampler compiles, it never checks again, so an unchecked task is a bug here.
    """

    def __init__(self, task: TaskSpec, variant: Variant | None = None, *, sources: dict[str, str] | None = None):
        self.task = task
        self.variant = variant
        self._sources = sources
        base = {binding.name: binding for binding in task.bindings}
        bindings = variant_bindings(base, variant.bindings) if variant is not None else base
        typing = variant.typing if variant is not None else task.typing
        if typing is None:
            raise TypeError(f"task `{task.name}` has not been checked: sample from a checked spec")
        compiler = _Compiler(typing.types, task.name, sources)
        self._steps = [(name, compiler.compile(bindings[name].value)) for name in typing.order]
        added = [] if variant is None else [b.name for b in variant.bindings if b.name not in base and b.name not in _INTERFACE]
        #: The latent variables every example reports, in source order.
        self.latents: tuple[str, ...] = tuple(task.latents) + tuple(dict.fromkeys(added))
        self._has_competitors = "competitors" in bindings

    def draw(self, rng: random.Random) -> Example:
        return self.example(self.values(rng))

    def values(self, rng: random.Random) -> dict[str, object]:
        """Every binding's value for one example (what :meth:`draw` makes an Example of)."""
        env: dict[str, object] = {}
        for name, fn in self._steps:
            env[name] = fn(env, rng)
        return env

    def example(self, values: dict[str, object]) -> Example:
        if self._has_competitors:
            comp = values["competitors"]
            competitors = tuple(comp) if isinstance(comp, list) else (comp,)
        else:
            competitors = ()
        latents = {name: values[name] for name in self.latents}
        return Example(self.task.name, values["prompt"], values["answer"], competitors, latents)

    # Closures cannot be pickled; a sampler is rebuilt from its spec instead, so a
    # torch DataLoader can hand it to worker processes under any start method.
    def __getstate__(self):
        return {"task": self.task, "variant": self.variant, "sources": self._sources}

    def __setstate__(self, state):
        self.__init__(state["task"], state["variant"], sources=state["sources"])


def sample_examples(task: TaskSpec, n: int, seed: int | str, variant: Variant | None = None) -> list[Example]:
    """``n`` examples of ``task`` (or of a ``variant`` of it); the same seed gives the same list."""
    sampler = TaskSampler(task, variant)
    rng = random.Random(f"sample:{task.name}:{seed}")
    return [sampler.draw(rng) for _ in range(n)]


# ---------------------------------------------------------------- the compiler
# Operators mean what circuitdsl.evaluate says; this decides when each part is drawn (as ever: seeds keep their data).

#: Defaults the builtins table writes as source text (`values = int(0..9)`).
_DEFAULT_EXPRS: dict[tuple[str, str], n.Expr] = {
    ("nested_list", "values"): n.Call("int", (n.Arg(n.Range(n.Number(0), n.Number(9))),)),
}


class _Const:
    """A compiled expression whose value is known now; parents fold it in."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __call__(self, env, rng):
        return self.value


def _const(fn) -> bool:
    return isinstance(fn, _Const)


class _Compiler:
    def __init__(self, types: dict[str, str], task: str, sources):
        self.types = types
        self.task = task
        self.sources = sources

    def fail(self, code: str, message: str, e, env: dict, hint: str | None = None):
        """A value the checker could not rule out, found while drawing: a located error, not a crash."""
        shown = ", ".join(f"{k} = {v!r}" for k, v in env.items() if "'" not in k)
        notes = [f"while drawing an example of task `{self.task}`" + (f" with {shown}" if shown else "")]
        raise CircError([Diagnostic(code, message, getattr(e, "span", None), hint, tuple(notes))], self.sources)

    def compile(self, e: n.Expr) -> Fn:
        method = getattr(self, "_" + type(e).__name__.lower(), None)
        if method is None:
            raise TypeError(f"cannot draw a {type(e).__name__} in a task")
        return method(e)

    # ------------------------------------------------------------ literals and names

    def _number(self, e: n.Number) -> Fn:
        return _Const(e.value)

    def _string(self, e: n.String) -> Fn:
        return _Const(e.value)

    def _bool(self, e: n.Bool) -> Fn:
        return _Const(e.value)

    def _name(self, e: n.Name) -> Fn:
        key = e.id
        return lambda env, rng: env[key]

    def _template(self, e: n.Template) -> Fn:
        parts: list[tuple[bool, str]] = []
        for part in e.parts:
            if isinstance(part, str):
                if parts and parts[-1][0]:
                    parts[-1] = (True, parts[-1][1] + part)
                else:
                    parts.append((True, part))
            else:
                parts.append((False, part.id))
        if all(literal for literal, _ in parts):
            return _Const("".join(text for _, text in parts))
        # Most holes are text already; only the others pay for a conversion.
        getters = []
        for literal, text in parts:
            if literal:
                getters.append(_Const(text))
            elif self.types.get(text) == b.STR:
                getters.append(lambda env, rng, k=text: env[k])
            else:
                getters.append(lambda env, rng, k=text: as_text(env[k]))
        if len(getters) == 3:
            g0, g1, g2 = getters
            return lambda env, rng: g0(env, rng) + g1(env, rng) + g2(env, rng)
        return lambda env, rng: "".join([g(env, rng) for g in getters])

    def _listexpr(self, e: n.ListExpr) -> Fn:
        items = [self.compile(item) for item in e.items]
        if all(map(_const, items)):
            values = [item.value for item in items]
            return lambda env, rng: list(values)
        return lambda env, rng: [item(env, rng) for item in items]

    def _mapexpr(self, e: n.MapExpr) -> Fn:
        raise TypeError("a map has no value in a task")  # the checker rejects it (C0304)

    def _percent(self, e: n.Percent) -> Fn:
        inner = self.compile(e.value)
        if _const(inner):
            return _Const(percent(inner.value))
        return lambda env, rng: percent(inner(env, rng))

    # ------------------------------------------------------------ operators

    def _unary(self, e: n.Unary) -> Fn:
        inner = self.compile(e.operand)
        op = UNARY[e.op]
        if _const(inner):
            return _Const(op(inner.value))
        return lambda env, rng: op(inner(env, rng))

    def _ifelse(self, e: n.IfElse) -> Fn:
        cond, then, orelse = self.compile(e.cond), self.compile(e.then), self.compile(e.orelse)
        if _const(cond):
            return then if cond.value else orelse
        return lambda env, rng: then(env, rng) if cond(env, rng) else orelse(env, rng)

    def _binary(self, e: n.Binary) -> Fn:
        if e.op == "in":
            return self._membership(e)
        left, right = self.compile(e.left), self.compile(e.right)
        # BINARY's `and`/`or`, but the right side is drawn only when the left does not decide.
        if e.op == "and":
            return lambda env, rng: bool(left(env, rng) and right(env, rng))
        if e.op == "or":
            return lambda env, rng: bool(left(env, rng) or right(env, rng))
        op = BINARY[e.op]
        if e.op == "/":
            fail = self.fail

            def divide(env, rng):
                divisor = right(env, rng)  # drawn before the dividend, as it always was
                try:
                    return op(left(env, rng), divisor)
                except ZeroDivisionError:
                    fail("C0401", "division by zero", e.right, env, hint="keep the divisor away from 0")

            return divide
        if _const(left) and _const(right):
            return _Const(op(left.value, right.value))
        if _const(right):
            value = right.value
            return lambda env, rng: op(left(env, rng), value)
        return lambda env, rng: op(left(env, rng), right(env, rng))

    def _membership(self, e: n.Binary) -> Fn:
        item = self.compile(e.left)
        if isinstance(e.right, n.Range):
            low, high = self.compile(e.right.low), self.compile(e.right.high)
            at_most = ORDER["<="]

            def inside(env, rng):  # in_range, drawing `high` only when `low <= item`, as it always did
                lo = low(env, rng)
                x = item(env, rng)
                return at_most(lo, x) and at_most(x, high(env, rng))

            return inside
        items = [self.compile(x) for x in e.right.items]  # the checker allows only a range or a list
        if all(map(_const, items)):
            members = [x.value for x in items]
            return lambda env, rng: in_list(item(env, rng), members)
        return lambda env, rng: in_list(item(env, rng), [x(env, rng) for x in items])

    def _range(self, e: n.Range) -> Fn:
        """A range used as a value: a uniform draw, both ends included."""
        low, high = self.compile(e.low), self.compile(e.high)
        if _const(low) and _const(high):
            lo, count = low.value, high.value - low.value + 1
            if count == 1:
                return _Const(lo)
            # random() is several times faster than randrange(); 53 bits keep it uniform.
            if count < 1 << 31:
                return lambda env, rng: lo + int(rng.random() * count)
            return lambda env, rng: rng.randint(lo, lo + count - 1)
        fail = self.fail

        def draw(env, rng):
            lo, hi = low(env, rng), high(env, rng)
            if lo > hi:
                fail("C0402", f"this range can be empty: {lo}..{hi} has no values", e, env)
            return rng.randint(lo, hi)

        return draw

    # ------------------------------------------------------------ generators

    def _call(self, e: n.Call) -> Fn:
        func = b.GENERATORS[e.func]
        args: dict[str, n.Expr] = {}
        positional = [a.value for a in e.args if a.name is None]
        if not func.variadic:
            args.update(zip((p.name for p in func.params), positional))
        args.update({a.name: a.value for a in e.args if a.name is not None})
        compiled: dict[str, Fn] = {}
        for param in func.params:
            if param.name in args:
                compiled[param.name] = self.compile(args[param.name])
            elif (e.func, param.name) in _DEFAULT_EXPRS:
                compiled[param.name] = self.compile(_DEFAULT_EXPRS[e.func, param.name])
            elif isinstance(param.default, tuple):
                compiled[param.name] = self._range(n.Range(n.Number(param.default[0]), n.Number(param.default[1])))
            elif param.default is not None:
                compiled[param.name] = _Const(param.default)
        if func.variadic:
            return self._choice(e, [self.compile(v) for v in positional], compiled.get("weights"))
        return getattr(self, "_gen_" + e.func)(e, **compiled)

    def _choice(self, e: n.Call, options: list[Fn], weights: Fn | None) -> Fn:
        count = len(options)
        if weights is None:
            if all(map(_const, options)):
                values = [o.value for o in options]
                if count == 1:
                    return _Const(values[0])
                return lambda env, rng: values[int(rng.random() * count)]
            return lambda env, rng: options[int(rng.random() * count)](env, rng)
        fail = self.fail

        def pick(env, rng):
            ws = weights(env, rng)
            total = sum(ws)
            if total <= 0:
                fail("C0401", "the weights of `choice` are all zero", e, env, hint="give some option a positive weight")
            x = rng.random() * total
            for option, w in zip(options, ws):
                x -= w
                if x < 0 and w > 0:
                    return option(env, rng)
            # Rounding can leave x a hair above 0: the last option with weight takes it.
            return next(o for o, w in zip(reversed(options), reversed(ws)) if w > 0)(env, rng)

        return pick

    def _gen_int(self, e, range: Fn) -> Fn:
        if _const(range):
            return _Const(str(range.value))
        return lambda env, rng: str(range(env, rng))

    def _gen_str(self, e, value: Fn) -> Fn:
        if _const(value):
            return _Const(as_text(value.value))
        return lambda env, rng: as_text(value(env, rng))

    def _bounded(self, e, name: str, size: Fn) -> Fn:
        """A length or count as drawn, held to the builtins table's limits: a value the
        checker could not bound (a variable's arithmetic) fails here, before it allocates."""
        param = b.GENERATORS[e.func].param(name)
        least, most, fail = param.least or 0, param.most, self.fail

        def checked(env, rng):
            value = size(env, rng)
            if value < least:
                fail("C0401", f"`{name}` of `{e.func}` must be at least {least}, drew {value}", e, env)
            if value > most:
                fail("C0401", f"`{name}` of `{e.func}` may be at most {most:,}, drew {value}", e, env)
            return value

        return checked

    def _gen_identifier(self, e, length: Fn) -> Fn:
        length = self._bounded(e, "length", length)
        return lambda env, rng: draw_identifier(rng, length(env, rng))

    def _gen_word(self, e, length: Fn) -> Fn:
        length = self._bounded(e, "length", length)
        return lambda env, rng: draw_letters(rng, LOWER, length(env, rng))

    def _gen_nested_list(self, e, depth: Fn, items: Fn, values: Fn, open: Fn) -> Fn:
        depth, items = self._bounded(e, "depth", depth), self._bounded(e, "items", items)

        def build(env, rng):
            levels = depth(env, rng)
            parts = []
            for level in range(levels):
                count = items(env, rng)
                text = "[" + ", ".join([values(env, rng) for _ in range(count)])
                # The next level is one more item of this list.
                if count and level < levels - 1:
                    text += ", "
                parts.append(text)
            body = "".join(parts)
            return body if open(env, rng) else body + "]" * levels

        return build

    def _gen_repeat(self, e, value: Fn, count: Fn, sep: Fn) -> Fn:
        count = self._bounded(e, "count", count)
        if _const(value):
            text = value.value
            return lambda env, rng: sep(env, rng).join([text] * count(env, rng))

        def repeat(env, rng):
            times = count(env, rng)
            return sep(env, rng).join([value(env, rng) for _ in range(times)])

        return repeat

    def _gen_code_line(self, e) -> Fn:
        return lambda env, rng: draw_code_line(rng)


# ---------------------------------------------------------------- identifier and word

LOWER = b.LOWERCASE
_IDENT_REST = b.LOWERCASE + b.DIGITS + "_"

# ---------------------------------------------------------------- code_line
#
# A line of filler must be valid Python that *runs*, so a test can execute a
# task's whole prompt (set_or_string: does `x.add` work after the filler?).
# So code_line only assigns names from its own pool, reads them only where any
# type will do (`print(n)`, `n == 3`, `[n, 1]`), and calls only the builtins
# and function names listed here; `identifier()` never draws any of these
# names, so filler never rebinds a task's variable or shadows a call it makes.

#: Variables code_line assigns and reads.
CODE_LINE_NAMES = (
    "total", "count", "result", "items", "value", "index", "data", "line", "text", "size",
    "score", "limit", "offset", "width", "height", "step", "node", "path", "key", "row",
    "col", "flag", "label", "parts", "queue", "stack", "buf", "acc", "tmp", "out", "pos",
    "left", "right", "start", "end", "max_len", "num_rows", "is_done", "last_key", "prev",
)  # fmt: skip
#: Python builtins code_line calls (a test namespace must provide them).
CODE_LINE_BUILTINS = ("print", "len", "max", "min", "abs", "sum", "sorted", "str", "int", "list", "range", "round")
#: Function names code_line calls as if the program defined them.
CODE_LINE_FUNCTIONS = (
    "update", "process", "render", "reset", "emit", "flush", "save", "load", "parse", "send",
    "handle", "draw_box", "log_event", "run_step",
)  # fmt: skip
_KEYWORD_ARGS = ("size", "limit", "step", "key", "mode", "depth", "retries", "verbose")

#: Python's keywords, written out rather than read from `keyword.kwlist`, so the
#: same seed draws the same identifiers under every Python version.
PYTHON_KEYWORDS = frozenset(
    "False None True and as assert async await break class continue def del elif else except "
    "finally for from global if import in is lambda nonlocal not or pass raise return try while "
    "with yield".split()
)
#: Names `identifier()` never returns: keywords, and every name code_line uses.
RESERVED_IDENTIFIERS = PYTHON_KEYWORDS | frozenset(CODE_LINE_NAMES + CODE_LINE_BUILTINS + CODE_LINE_FUNCTIONS)


def draw_letters(rng: random.Random, alphabet: str, length: int) -> str:
    """``length`` characters of ``alphabet``, uniformly: what ``rng.choices`` draws, without its overhead."""
    random_, size = rng.random, len(alphabet)
    return "".join([alphabet[int(random_() * size)] for _ in range(length)])


def draw_identifier(rng: random.Random, length: int) -> str:
    """A lowercase identifier of ``length`` characters: a letter, then letters, digits or ``_``."""
    while True:
        name = LOWER[int(rng.random() * 26)] + draw_letters(rng, _IDENT_REST, length - 1)
        if name not in RESERVED_IDENTIFIERS:
            return name


def _int_text(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.6:
        return str(int(rng.random() * 10))
    if r < 0.9:
        return str(int(rng.random() * 100))
    return str(int(rng.random() * 1000))


def _word(rng: random.Random, low: int = 2, high: int = 7) -> str:
    return draw_letters(rng, LOWER, low + int(rng.random() * (high - low + 1)))


def _str_text(rng: random.Random) -> str:
    quote = "'" if rng.random() < 0.6 else '"'
    words = " ".join(_word(rng) for _ in range(1 + (rng.random() < 0.3)))
    return quote + words + quote


def _pick(rng: random.Random, pool: Sequence[str]) -> str:
    return pool[int(rng.random() * len(pool))]


def _atom(rng: random.Random) -> str:
    """An argument any function accepts: a name, a number or a string."""
    r = rng.random()
    if r < 0.4:
        return _pick(rng, CODE_LINE_NAMES)
    if r < 0.75:
        return _int_text(rng)
    return _str_text(rng)


def _ints(rng: random.Random, most: int = 4, least: int = 1) -> str:
    return ", ".join(_int_text(rng) for _ in range(least + int(rng.random() * (most - least + 1))))


def _args(rng: random.Random, keywords: bool = True, least: int = 0) -> str:
    args = [_atom(rng) for _ in range(least + int(rng.random() * (3 - least)))]
    # Only the program's own functions take keywords: `print(size=3)` would not run.
    if keywords and rng.random() < 0.2:
        args.append(f"{_pick(rng, _KEYWORD_ARGS)}={_int_text(rng)}")
    return ", ".join(args)


def _builtin_call(rng: random.Random) -> str:
    r = int(rng.random() * 10)
    if r == 0:
        return f"len({_str_text(rng)})"
    if r == 1:
        return f"len([{_ints(rng)}])"
    if r == 2:
        return f"max({_int_text(rng)}, {_int_text(rng)})"
    if r == 3:
        # `min(3)` would not run: given numbers, min wants two at least.
        return f"min({_ints(rng, 3, least=2)})" if rng.random() < 0.5 else f"min([{_ints(rng)}])"
    if r == 4:
        return f"abs(-{_int_text(rng)})"
    if r == 5:
        return f"sum([{_ints(rng)}])"
    if r == 6:
        return f"sorted([{_ints(rng)}])"
    if r == 7:
        return f"str({_pick(rng, CODE_LINE_NAMES)})"
    if r == 8:
        return f"int('{_int_text(rng)}')"
    return f"list(range({_int_text(rng)}))" if rng.random() < 0.5 else f"round({_int_text(rng)}.{int(rng.random() * 10)})"


def _expression(rng: random.Random) -> str:
    """The right side of an assignment."""
    r = int(rng.random() * 12)
    name = _pick(rng, CODE_LINE_NAMES)
    if r <= 1:
        return _int_text(rng)
    if r == 2:
        return _str_text(rng)
    if r == 3:
        return f"[{_ints(rng)}]"
    if r == 4:
        return f"{_int_text(rng)} {_pick(rng, '+-*')} {_int_text(rng)}"
    if r == 5:
        return name
    if r == 6:
        return _builtin_call(rng)
    if r == 7:
        return f"{_pick(rng, CODE_LINE_FUNCTIONS)}({_args(rng)})"
    if r == 8:
        return f"{name} {_pick(rng, ('==', '!='))} {_atom(rng)}"
    if r == 9:
        return f"{name} if {_pick(rng, CODE_LINE_NAMES)} else {_int_text(rng)}"
    if r == 10:
        return f"not {name}" if rng.random() < 0.5 else f"[{name}, {_atom(rng)}]"
    return "{" + f"'{_word(rng, 2, 5)}': {_atom(rng)}" + "}"


def _statement(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.6:
        return f"{_pick(rng, CODE_LINE_NAMES)} = {_expression(rng)}"
    if r < 0.7:
        return f"{_pick(rng, CODE_LINE_NAMES)}, {_pick(rng, CODE_LINE_NAMES)} = {_int_text(rng)}, {_atom(rng)}"
    if r < 0.85:
        return f"print({_args(rng, keywords=False, least=1)})"
    return f"{_pick(rng, CODE_LINE_FUNCTIONS)}({_args(rng)})"


def draw_code_line(rng: random.Random) -> str:
    """A Python statement of at most CODE_LINE_MAX characters that parses and runs (see above)."""
    while True:
        line = _statement(rng)
        if len(line) <= CODE_LINE_MAX:
            return line
