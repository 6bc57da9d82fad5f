"""Broken input must fail the way a user can act on: a located ``CircError``, never a crash.

Valid sources are mangled by random insertions (of the tokens and characters
most likely to confuse the parser) and deletions, then parsed. A mangled text
that still parses is odd layout the formatter must handle too: stray `#`s make
comments in unusual places.
"""

from __future__ import annotations

from pathlib import Path

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from circuitdsl.diagnostics import CircError
from circuitdsl.syntax.formatter import format_module
from circuitdsl.syntax.parser import parse, scan_comments

ROOT = Path(__file__).resolve().parents[2]
PATH = "fuzz.circ"

# Seeds reach every statement, both quote styles, escapes, holes and comments.
SEED = """\
import "common.circ"  # shared vocab
import 'other\\tfile.circ'

vocab { tokens = ["]]", '"', "\\u00e9", "\\$5"] }

task t {
    n      = choice(1, 2, 3)
    prompt = "depth ${n}: " + repeat("[", n) + '\\n'
    answer = if n >= 2 and not (n in [4, 5]) then -n * 2 % else {a: 1, b: 1e-3}
}

model m extends base {
    density = 1/16
}
train tr { model = m  steps = 800 }
prune p extends q {}

hypothesis h on p {
    nodes <= 24
    edges in layer 1 <= 10 + 2
    role opener : resid channel in layers 0..1 where mean(act | token == "[") > 0
    ablate circuit, opener with zero -> accuracy <= 60%
    intervene opener = mean(act | n == 1) when n == 2 -> p("]]") rises by >= 0.3 when n > 1
    adversarial deep {
        n = 5
        expect accuracy drops by >= 0.25
    }
}
"""

INSERTIONS = st.sampled_from(
    [
        "{", "}", "(", ")", "[", "]", "=", ":", ",", '"', "'", "#", "->", "..", "0", "x", "role", "ablate",
        "\n", " ", "\\", "${", "$", "%", "|", "-", "==", "in", "if", "1e999", "9" * 5000, ";", "@", "\t",
        "\r", "\u00e9", "\U0001f600", "\x00",
    ]
)


def _sources() -> list[str]:
    files = sorted((ROOT / "specs").glob("**/*.circ")) + sorted((ROOT / "examples").glob("**/*.circ"))
    return [SEED] + [f.read_text(encoding="utf-8") for f in files]


@st.composite
def mangled(draw) -> str:
    text = draw(st.sampled_from(_sources()))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + draw(INSERTIONS) + text[at:]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 12)) :]
    return text


@settings(max_examples=max(300, settings.default.max_examples), deadline=None)
@given(mangled())
def test_bad_syntax_is_reported_where_it_is(text):
    try:
        module = parse(text, PATH)
    except CircError as err:
        rendered = err.render()
        lines = text.count("\n") + 1
        assert err.diagnostics
        for diag in err.diagnostics:
            span = diag.span
            assert span is not None, diag
            assert span.path == PATH
            assert 1 <= span.line <= lines + 1, diag
            assert span.column >= 1, diag
            assert 0 <= span.start <= span.end <= len(text), diag
            assert f"{PATH}:{span.line}:{span.column}" in rendered
    else:
        formatted = format_module(module)
        assert parse(formatted) == module
        assert format_module(parse(formatted)) == formatted
        comments = Counter(c.text.rstrip() for c in module.comments)
        assert Counter(c.text for c in scan_comments(formatted, PATH)) == comments
