"""The formatter's promises: what it prints parses back equal, and printing is idempotent.

Random modules come from the strategies below, which build every node class
with only what the grammar can say; real files come from ``specs/`` and
``examples/``, plus a fixture that exercises most of the syntax.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuitdsl.syntax import ast as n
from circuitdsl.syntax.formatter import format_module, format_source
from circuitdsl.syntax.parser import parse, scan_comments

ROOT = Path(__file__).resolve().parents[2]

KEYWORDS = frozenset(
    "import vocab task model train prune hypothesis extends on role where ablate with intervene "
    "adversarial expect when if then else in and or not true false drops rises by".split()
)
BLOCK_KEYS = ("model", "task", "train", "prune", "vocab")
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
BINARY_OPS = COMPARISONS + ("in", "and", "or", "+", "-", "*", "/")

SAMPLE = """\
import "common.circ"
vocab {
    tokens = ["]]", "[[", "+="]
}
task bracket_depth {
    depth  = choice(1, 2)
    body   = nested_list(depth: depth, items: 1..6, values: int(0..9))
    prompt = "x = ${body}" + body  # trailing
    answer = if depth == 2 then "]]" else "]"
}
model small extends base { density = 1/16  anneal = 1% .. 50% tasks = {a: 1, b: 2} }
hypothesis averaging on prune_depth {
    nodes <= 24
    edges in layer 1 <= 10
    role opener  : resid channel where mean(act | token == "[") > 0
    role counter : attn head in layer 1 where reads(opener, as: value)
    role depth_ch: resid channel where writes(counter) and corr(act, depth) >= 0.8
    ablate circuit    -> accuracy <= 0.6
    ablate complement with zero -> loss <= 0.2
    intervene depth_ch = mean(act | depth == 1) when depth == 2 -> p("]]") drops by >= 0.3
    adversarial distractors {
        prompt = repeat("[", 5..20) + " " + prompt
        expect accuracy drops by >= 0.25 when depth == 2
        expect rate("]") >= 40%
    }
}
"""


def examples(count: int) -> settings:
    """At least ``count`` examples; more where the loaded profile asks for more (``fuzz``)."""
    return settings(max_examples=max(count, settings.default.max_examples), deadline=None)


# ---------------------------------------------------------------- strategies

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)
# Words that merely start or end like a keyword (`in_`, `xor`) must stay names.
names = st.one_of(
    identifiers.filter(lambda s: s not in KEYWORDS),
    st.builds(lambda k, s: k + s, st.sampled_from(sorted(KEYWORDS)), st.sampled_from(["_", "1", "s"])),
)
binding_keys = st.one_of(names, st.sampled_from(BLOCK_KEYS))

# Quotes, backslashes, `${` and control characters are where string printing goes wrong.
texts = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
    st.text(st.sampled_from("\"'\\${}\n\t\r\0 #a\u00e9\u2028\x7f\U0001f600\U000e0001"), max_size=8),
)


def _template(parts: list) -> n.Template:
    """Adjacent text parts merged, as the parser would read them back."""
    merged: list = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return n.Template(tuple(merged))


templates = (
    st.lists(st.one_of(texts.filter(bool), identifiers.map(n.Name)), min_size=1, max_size=4)
    .filter(lambda parts: any(isinstance(p, n.Name) for p in parts))
    .map(_template)
)
numbers = st.one_of(
    st.integers(min_value=0),
    st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(abs),
).map(n.Number)
leaves = st.one_of(
    numbers,
    texts.map(n.String),
    templates,
    st.booleans().map(n.Bool),
    names.map(n.Name),
)


def _args(exprs):
    arg = st.one_of(
        st.builds(n.Arg, exprs),
        st.builds(n.Arg, exprs, name=names),
        st.builds(n.Arg, exprs, given=exprs),
    )
    return st.lists(arg, max_size=3).map(tuple)


def _compound(exprs):
    return st.one_of(
        st.lists(exprs, max_size=3).map(lambda items: n.ListExpr(tuple(items))),
        st.lists(st.builds(n.MapEntry, names, exprs), max_size=3).map(lambda es: n.MapExpr(tuple(es))),
        st.builds(n.Call, names, _args(exprs)),
        st.builds(n.Unary, st.sampled_from(["-", "not"]), exprs),
        st.builds(n.Binary, st.sampled_from(BINARY_OPS), exprs, exprs),
        st.builds(n.Range, exprs, exprs),
        st.builds(n.Percent, exprs),
        st.builds(n.IfElse, exprs, exprs, exprs),
    )


exprs = st.recursive(leaves, _compound, max_leaves=10)
optional_exprs = st.none() | exprs

metrics = st.builds(n.Metric, names, st.none() | _args(exprs))
outcomes = st.builds(
    n.Outcome,
    metrics,
    st.sampled_from(COMPARISONS),
    exprs,
    change=st.sampled_from([None, "drops", "rises"]),
    when=optional_exprs,
)
layer_filters = st.none() | st.builds(n.LayerFilter, names, exprs)
bindings = st.builds(n.Binding, binding_keys, exprs)
claims = st.one_of(
    bindings,
    st.builds(n.SizeClaim, names, st.sampled_from(COMPARISONS), exprs, layer=layer_filters),
    st.builds(n.RoleDecl, names, st.tuples(names, names), layer=layer_filters, where=optional_exprs),
    st.builds(n.AblateClaim, st.lists(names, min_size=1, max_size=3).map(tuple), outcomes, ablation=st.none() | names),
    st.builds(n.InterveneClaim, names, exprs, outcomes, when=optional_exprs),
    st.builds(
        n.Adversarial,
        names,
        st.lists(bindings | st.builds(n.Expect, outcomes), max_size=3).map(tuple),
    ),
)
body = st.lists(bindings, max_size=4).map(tuple)
items = st.one_of(
    texts.map(n.Import),
    st.builds(n.SettingsBlock, st.just("vocab"), st.none(), body),
    st.builds(n.SettingsBlock, st.just("task"), names, body),
    st.builds(n.SettingsBlock, st.sampled_from(["model", "train", "prune"]), names, body, extends=st.none() | names),
    st.builds(n.HypothesisBlock, names, names, st.lists(claims, max_size=5).map(tuple)),
)
modules = st.lists(items, max_size=4).map(lambda xs: n.Module(tuple(xs)))


# ---------------------------------------------------------------- properties


@examples(200)
@given(exprs)
def test_expression_round_trip(expr):
    module = n.Module((n.SettingsBlock("vocab", None, (n.Binding("x", expr),)),))
    assert parse(format_module(module)) == module


@examples(200)
@given(modules)
def test_module_round_trip(module):
    text = format_module(module)
    reparsed = parse(text)
    assert reparsed == module
    assert format_module(reparsed) == text


def _sources() -> dict[str, str]:
    files = sorted((ROOT / "specs").glob("**/*.circ")) + sorted((ROOT / "examples").glob("**/*.circ"))
    return {
        "fixture": SAMPLE,
        "fixture-crlf": SAMPLE.replace("\n", "\r\n"),
        **{str(f.relative_to(ROOT)): f.read_text(encoding="utf-8") for f in files},
    }


SOURCES = _sources()


def _comment_texts(text: str) -> Counter:
    # The formatter drops trailing whitespace (a CRLF file's `\r` included), nothing else.
    return Counter(c.text.rstrip() for c in scan_comments(text, "<string>"))


def _check_formatting(text: str) -> str:
    formatted = format_source(text)
    assert parse(formatted) == parse(text)
    assert format_source(formatted) == formatted
    assert _comment_texts(formatted) == _comment_texts(text)
    assert "\n\n\n" not in formatted and not formatted.startswith("\n")
    assert all(line == line.rstrip() for line in formatted.split("\n"))
    return formatted


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_source_files_are_stable(name):
    _check_formatting(SOURCES[name])


# What may be done to a line: nothing, a blank line or an own-line comment before it,
# or a comment after it.
_EDITS = st.sampled_from(["keep", "keep", "blank", "comment above", "comment after"])


@examples(200)
@given(st.sampled_from(sorted(SOURCES.values())), st.data())
def test_comments_and_blank_lines_survive(text, data):
    commented = {c.span.line for c in scan_comments(text, "<string>")}
    lines = text.split("\n")
    edits = data.draw(st.lists(_EDITS, min_size=len(lines), max_size=len(lines)))
    out = []
    for number, (line, edit) in enumerate(zip(lines, edits), start=1):
        if edit == "blank":
            out += ["", ""]
        elif edit == "comment above":
            out.append(f"  # above {number}")
        if edit == "comment after" and number not in commented:
            line += f"  # after {number}"
        out.append(line)
    _check_formatting("\n".join(out))


def test_canonical_layout():
    source = """\
# header comment
import "b.circ"

import "a.circ"   # why a
task t {  # about t
    x = 1   # one
    long_name = [1,
        # inside a list
        2]


    y = 2
    # last word
}
hypothesis h on p { role a : resid channel
    role bee: attn head in layer 1
    nodes <= 1 + 2 * 3
    ablate circuit -> accuracy drops by >= (0.1..0.2) when x == -(1 - 2)
    adversarial adv { } }  # closing
# the end
"""
    assert format_source(source) == """\
# header comment
import "b.circ"
import "a.circ"  # why a

task t {  # about t
    x = 1  # one
    # inside a list
    long_name = [1, 2]

    y = 2
    # last word
}

hypothesis h on p {
    role a   : resid channel
    role bee : attn head in layer 1
    nodes <= 1 + 2 * 3
    ablate circuit -> accuracy drops by >= (0.1..0.2) when x == -(1 - 2)
    adversarial adv {}
}  # closing
# the end
"""
