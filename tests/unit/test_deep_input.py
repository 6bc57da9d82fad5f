"""Deep and big input: a located error or a result, never a RecursionError, a VisitError or a traceback.

The parser builds nodes bottom-up inside the LALR loop, so it does not recurse
over the input's nesting; everything after it does, so the parser refuses an
expression nested more than ``MAX_DEPTH`` levels (C0110, issue 13). Each case
runs through ``circ check``, ``circ fmt`` and ``circ show --json``: exit 4 with
the error's file:line:col for too deep, 0 for what is within the limit, and
never 3 (an internal error, i.e. a bug).

How fast a big file parses is left to ``benchmarks/parse_bench.py`` (no timed
tests); what is tested here is that the work is linear in the text: no search
of the text from its start per comment or per token.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdsl.cli import app
from circuitdsl.diagnostics import CircError
from circuitdsl.exit_codes import ExitCode
from circuitdsl.pipeline import check_spec_text
from circuitdsl.syntax import parser
from circuitdsl.syntax.formatter import format_source
from circuitdsl.syntax.parser import MAX_DEPTH, load_parser, parse

runner = CliRunner()

N = 500
LIMIT = MAX_DEPTH


def task(*bindings: str, prompt: str = '"a"') -> str:
    """A task whose variables are ``bindings`` (line 3 onward); ``n`` is 1 or 2."""
    body = "".join(f"    {b}\n" for b in bindings)
    return f'vocab {{ chars = printable }}\ntask t {{\n    n = choice(1, 2)\n{body}    prompt = {prompt}\n    answer = "a"\n}}\n'


def chain(op: str, term: str, count: int) -> str:
    return f" {op} ".join([term] * count)


def if_chain(branches: int) -> str:
    return " ".join(f'if n == {i} then "a" else' for i in range(branches)) + ' "b"'


#: (name, expression of depth `depth`, how to use it in the prompt)
def shapes(depth: int) -> list[tuple[str, str, str]]:
    return [
        ("brackets", "[" * (depth - 1) + "1" + "]" * (depth - 1), '"a"'),
        ("unary minus", "- " * (depth - 1) + "1", '"${x}"'),
        ("minus signs", "-" * (depth - 1) + "1", '"${x}"'),
        ("not", "not " * (depth - 1) + "true", 'if x then "a" else "b"'),
        ("sum", chain("+", "n", depth), '"${x}"'),
        ("product", chain("*", "n", depth), '"${x}"'),
        ("and", chain("and", "true", depth), 'if x then "a" else "b"'),
        ("string sum", chain("+", '"a"', depth), "x"),
        # `n == i` is two levels, so an if chain of depth - 2 branches is `depth` deep.
        ("if chain", if_chain(depth - 2), "x"),
        ("calls", "choice(" * (depth - 1) + "1" + ", 2)" * (depth - 1), '"${x}"'),
    ]


def spec_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deep.circ"
    path.write_text(text)
    return path


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code != ExitCode.INTERNAL_ERROR, result.output
    assert "Traceback" not in result.output and "RecursionError" not in result.output, result.output
    assert "VisitError" not in result.output, result.output
    return result


def commands(path: Path) -> list[list[str]]:
    return [["check", str(path)], ["fmt", "--check", str(path)], ["show", "--json", str(path)]]


# ---------------------------------------------------------------- over the limit


@pytest.mark.parametrize(("name", "expr", "use"), shapes(N), ids=[s[0] for s in shapes(N)])
def test_500_levels_is_a_located_error_from_every_command(tmp_path, name, expr, use):
    path = spec_file(tmp_path, task(f"x = {expr}", prompt=use))
    for args in commands(path):
        result = run(*args)
        assert result.exit_code == ExitCode.USAGE, (args, result.output)
        assert "error[C0110]" in result.output, (args, result.output)
        assert re.search(rf"deep\.circ:4:\d+", result.output), result.output
        assert f"the limit is {LIMIT}" in result.output


def test_fmt_does_not_touch_a_file_that_is_too_deep(tmp_path):
    text = task(f"x = {if_chain(300)}", prompt="x")
    path = spec_file(tmp_path, text)
    result = run("fmt", str(path))
    assert result.exit_code == ExitCode.USAGE
    assert "error[C0110]" in result.output
    assert path.read_text() == text


def test_300_branch_if_chain_in_check_and_fmt():
    text = task(f"x = {if_chain(300)}", prompt="x")
    for action in (lambda: check_spec_text(text, "t.circ"), lambda: format_source(text, "t.circ")):
        with pytest.raises(CircError) as caught:
            action()
        (diag,) = caught.value.diagnostics
        assert diag.code == "C0110"
        assert diag.message == f"expression nested 302 levels deep; the limit is {LIMIT}"


def test_error_points_where_the_nesting_first_goes_past_the_limit():
    prefix = "    x = "
    with pytest.raises(CircError) as caught:
        parse(task("x = " + "[" * N + "1" + "]" * N))
    (diag,) = caught.value.diagnostics
    assert diag.message == f"expression nested {N + 1} levels deep; the limit is {LIMIT}"
    assert diag.hint and "variables" in diag.hint
    # `1` is one level, each list around it one more: the list at LIMIT + 1 is
    # the one opened by bracket N - LIMIT (counting from 1), and it ends on its line.
    assert (diag.span.line, diag.span.column) == (4, len(prefix) + N - LIMIT + 1)
    assert diag.span.end_line == 4
    assert diag.span.end_column - diag.span.column == 2 * LIMIT + 1


def test_a_long_sum_is_reported_from_its_first_term():
    with pytest.raises(CircError) as caught:
        parse(task("x = " + chain("+", "n", N)))
    (diag,) = caught.value.diagnostics
    assert diag.message == f"expression nested {N} levels deep; the limit is {LIMIT}"
    assert (diag.span.line, diag.span.column) == (4, 9)
    # The first LIMIT + 1 terms: `n + ` each, less the last ` + `.
    assert diag.span.end_column - diag.span.column == 4 * (LIMIT + 1) - 3


def test_every_too_deep_expression_is_reported_once():
    text = task("x = " + chain("+", "n", N), "y = " + "[" * N + "]" * N, "z = " + chain("*", "n", 2 * N))
    with pytest.raises(CircError) as caught:
        parse(text)
    diags = caught.value.diagnostics
    assert [(d.code, d.span.line) for d in diags] == [("C0110", 4), ("C0110", 5), ("C0110", 6)]


@pytest.mark.parametrize(
    "statement",
    [
        "nodes <= {e}",
        "edges in layer {e} <= 3",
        'role r : resid channel where {e} > 0',
        "ablate circuit -> accuracy <= {e}",
        "ablate circuit -> accuracy <= 0.5 when {e} == 1",
        "ablate circuit -> p({e}) <= 0.5",
        "intervene r = {e} -> accuracy <= 0.5",
        "intervene r = 1 when {e} == 1 -> accuracy <= 0.5",
        "x = {e}",
        "adversarial a {{ expect accuracy drops by >= {e} }}",
    ],
)
def test_too_deep_in_any_place_of_a_hypothesis(statement):
    deep = "(" + chain("+", "1", LIMIT + 1) + ")"
    text = "hypothesis h on p {\n    " + statement.format(e=deep) + "\n}\n"
    with pytest.raises(CircError) as caught:
        parse(text)
    assert [d.code for d in caught.value.diagnostics] == ["C0110"]
    assert caught.value.diagnostics[0].span.line == 2


def test_parentheses_add_no_depth(tmp_path):
    path = spec_file(tmp_path, task("x = " + "(" * N + "n" + ")" * N, prompt='"${x}"'))
    assert run("check", str(path)).exit_code == ExitCode.OK
    assert run("show", "--json", str(path)).exit_code == ExitCode.OK
    assert run("fmt", str(path)).exit_code == ExitCode.OK
    assert re.search(r"^    x\s+= n$", path.read_text(), re.M)


def test_deep_problems_come_with_the_other_token_problems():
    text = task("x = " + chain("+", "n", N), 'y = "\\q"', "z = 1e999")
    with pytest.raises(CircError) as caught:
        parse(text)
    assert [d.code for d in caught.value.diagnostics] == ["C0110", "C0107", "C0108"]


# ---------------------------------------------------------------- at the limit


@pytest.mark.parametrize(("name", "expr", "use"), shapes(LIMIT), ids=[s[0] for s in shapes(LIMIT)])
def test_at_the_limit_every_command_works(tmp_path, name, expr, use):
    """The limit leaves room: every stage after the parser copes with LIMIT levels, under pytest's own frames."""
    if name == "minus signs":
        expr = "- " * (LIMIT - 1) + "1"  # `--1` is formatted `- -1`; the depth is the same
    path = spec_file(tmp_path, task(f"x = {expr}", prompt=use))
    assert parser.MAX_DEPTH == LIMIT
    for args in commands(path):
        result = run(*args)
        assert "C0110" not in result.output, result.output
        assert result.exit_code in (ExitCode.OK, ExitCode.FAILED), (args, result.output)
    assert run("fmt", str(path)).exit_code == ExitCode.OK
    assert run("check", str(path)).exit_code == ExitCode.OK
    assert run("sample", str(path), "-n", "2").exit_code == ExitCode.OK


def test_one_past_the_limit_is_an_error():
    with pytest.raises(CircError) as caught:
        parse(task("x = " + chain("+", "n", LIMIT + 1)))
    assert caught.value.diagnostics[0].message == f"expression nested {LIMIT + 1} levels deep; the limit is {LIMIT}"
    parse(task("x = " + chain("+", "n", LIMIT)))


# ---------------------------------------------------------------- big input, linear work


class _CountingText(str):
    """A text that adds up how many characters its searches (`count`, `find`, ...) look at."""

    scanned = 0

    def _scan(self, start, end):
        start = 0 if start is None else start
        end = len(self) if end is None else end
        type(self).scanned += max(0, min(end, len(self)) - max(start, 0))

    def count(self, sub, start=None, end=None):
        self._scan(start, end)
        return str.count(self, sub, *(a for a in (start, end) if a is not None))

    def find(self, sub, start=None, end=None):
        self._scan(start, end)
        return str.find(self, sub, *(a for a in (start, end) if a is not None))

    def rfind(self, sub, start=None, end=None):
        self._scan(start, end)
        return str.rfind(self, sub, *(a for a in (start, end) if a is not None))

    def rindex(self, sub, start=None, end=None):
        self._scan(start, end)
        return str.rindex(self, sub, *(a for a in (start, end) if a is not None))

    def index(self, sub, start=None, end=None):
        self._scan(start, end)
        return str.index(self, sub, *(a for a in (start, end) if a is not None))


def many_blocks(count: int) -> str:
    blocks = [
        f"# block {i}\ntask t{i} {{  # opened\n    a = 1..4  # a range\n    prompt = \"${{a}}\"\n    answer = \"1\"\n}}\n"
        for i in range(count)
    ]
    return "vocab { chars = printable }\n" + "".join(blocks)


@pytest.mark.parametrize("count", [10, 200])
def test_parsing_searches_the_text_a_bounded_number_of_times(count):
    """Spans of comments and tokens come from one pass, not a count of newlines from the start each time."""
    _CountingText.scanned = 0
    text = _CountingText(many_blocks(count))
    module = parse(text, "big.circ")
    assert len(module.comments) == 3 * count
    assert _CountingText.scanned <= 2 * len(text)
    # And the spans are right: the last comment is on the file's last block's third line.
    last = module.comments[-1]
    assert text.splitlines()[last.span.line - 1][last.span.column - 1 :] == last.text


def test_a_big_spec_with_one_huge_task_parses_and_formats():
    bindings = [f"v{i} = v{i - 1} + {i}  # c{i}" for i in range(1, 3000)]
    text = task("v0 = 1", *bindings, prompt='"${v2999}"')
    module = parse(text, "big.circ")
    assert len(module.items[1].body) == 3003
    assert format_source(text, "big.circ").count("# c") == 2999


# ---------------------------------------------------------------- the fast loop


def _corpus() -> dict[str, str]:
    root = Path(__file__).resolve().parents[2]
    files = [*root.glob("specs/**/*.circ"), *root.glob("examples/*.circ"), *root.glob("tests/ui/*.circ")]
    texts = {str(f): f.read_text(encoding="utf-8") for f in files}
    texts["many"] = many_blocks(20)
    texts["empty"] = ""
    texts["comment only"] = "# nothing\n"
    return texts


def _spans(node) -> list:
    """Every span in ``node``, in order (span fields are left out of ``==``)."""
    import attrs

    out = []
    stack = [node]
    while stack:
        item = stack.pop()
        if attrs.has(type(item)):
            for field in reversed(attrs.fields(type(item))):
                value = getattr(item, field.name)
                if field.name.endswith("span") or field.name.endswith("spans"):
                    out.append(value)
                else:
                    stack.append(value)
        elif isinstance(item, (tuple, list)):
            stack.extend(reversed(item))
    return out


def test_the_fast_loop_is_used_and_builds_what_larks_own_loop_builds():
    lark_parser = load_parser()
    assert parser._DRIVER is not None, "the fast LALR loop could not be set up for this lark"
    valid = 0
    for name, text in _corpus().items():
        parser._BUILDER.begin(name)
        fast = parser._DRIVER.parse(text)
        fast_problems = parser._BUILDER.problems
        parser._BUILDER.begin(name)
        try:
            slow = lark_parser.parse(text)
        except Exception:  # a syntax error: the fast loop must hand it to lark
            assert fast is None, name
            continue
        assert fast is not None, name
        assert fast == slow, name
        assert _spans(fast) == _spans(slow), name
        assert [d.message for d in fast_problems] == [d.message for d in parser._BUILDER.problems]
        valid += 1
    parser._BUILDER.begin("<string>")
    assert valid >= 10


# ---------------------------------------------------------------- chains of variables


def variable_chain(links: int, *, reverse: bool = False) -> str:
    """A task whose variables each read the one before: ``v0 = n``, ``v1 = v0 + 1``, ...

    Each link is one level (``+``), so ``v{k}`` nests k + 1 levels counting what it reads.
    Reversed, the bindings come before what they read, which a recursive search of
    the dependencies would follow all the way down.
    """
    lines = ["v0 = n"] + [f"v{i} = v{i - 1} + 1" for i in range(1, links)]
    if reverse:
        lines.reverse()
    return task(*lines, prompt=f'"${{v{links - 1}}}"')


@pytest.mark.parametrize("reverse", [False, True], ids=["in order", "reversed"])
def test_a_chain_of_3000_variables_is_a_located_error_from_every_command(tmp_path, reverse):
    path = spec_file(tmp_path, variable_chain(3000, reverse=reverse))
    for args in [*commands(path), ["sample", "-n", "2", str(path)]]:
        result = run(*args)
        if args[0] == "fmt":
            continue  # formatting reads no variable
        assert result.exit_code == ExitCode.USAGE, (args, result.output)
        assert "error[C0110]" in result.output, (args, result.output)
        assert "nests 201 levels deep" in result.output
        assert re.search(r"deep\.circ:\d+:5", result.output), result.output


def test_a_chain_at_the_limit_checks_and_samples(tmp_path):
    from circuitdsl.check.tasks import MAX_CHAIN_DEPTH

    # `prompt` reads v{k} through a template (no level of its own): k + 1 levels.
    path = spec_file(tmp_path, variable_chain(MAX_CHAIN_DEPTH - 1, reverse=True))
    for args in [*commands(path), ["sample", "-n", "2", str(path)]]:
        result = run(*args)
        assert "C0110" not in result.output, (args, result.output)
    assert run("check", str(path)).exit_code == ExitCode.OK
    deeper = spec_file(tmp_path, variable_chain(MAX_CHAIN_DEPTH, reverse=True))
    assert run("check", str(deeper)).exit_code == ExitCode.USAGE
