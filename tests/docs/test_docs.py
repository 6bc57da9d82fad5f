"""The documentation is checked like code.

* Every fenced block tagged ``circ`` in ``docs/*.md`` and ``README.md`` is a
  complete program that the checker accepts.
* Every block tagged ``circ-error`` is rejected, with the code named in its
  first line (``# error: C0404``) among the diagnostics.
* Every built-in word (generators, statistics, relations, metrics, node kinds,
  ablation kinds), every setting of every block and every diagnostic code is
  documented, and the settings tables of ``docs/language.md`` agree with
  ``circuitdsl/schema.py`` on type, default and limits; so the docs cannot
  silently fall behind the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from circuitdsl.check import builtins as b
from circuitdsl.check import schema
from circuitdsl.diagnostics import CircError
from circuitdsl.pipeline import check_spec_text

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LANGUAGE = DOCS / "language.md"
ERRORS = DOCS / "errors.md"
SOURCES = ROOT / "circuitdsl"

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)")
_ERROR_LINE = re.compile(r"^\s*#\s*error:\s*(C0\d{3})\b")
_CODE = re.compile(r'"(C0\d{3})"')

#: Codes that only a file on disk can produce (a missing, unreadable or
#: cyclic import): ``check_spec_text`` takes no imports, so no example can show them.
FILE_ONLY_CODES = {"C0501", "C0502", "C0503"}


def doc_files() -> list[Path]:
    files = sorted(DOCS.glob("*.md"))
    readme = ROOT / "README.md"
    if readme.is_file():
        files.append(readme)
    return files


def fenced_blocks(path: Path) -> list[tuple[str, int, str]]:
    """``(tag, line, text)`` for every fenced block; ``line`` is that of its first content line."""
    blocks = []
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, tag = match.group(2), match.group(3)
        start = i + 1
        j = start
        while j < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]):
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.name}:{i + 1}: a fenced block is never closed")
        blocks.append((tag, start + 1, "\n".join(lines[start:j]) + "\n"))
        i = j + 1
    return blocks


def _examples(tag: str) -> list:
    params = []
    for path in doc_files():
        for block_tag, line, text in fenced_blocks(path):
            if block_tag == tag:
                params.append(pytest.param(path, line, text, id=f"{path.name}:{line}"))
    return params


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


# ---------------------------------------------------------------- examples


@pytest.mark.parametrize(("path", "line", "text"), _examples("circ"))
def test_circ_example_passes_the_checker(path: Path, line: int, text: str) -> None:
    assert not re.search(r"^\s*import\b", text, re.M), (
        f"{_where(path, line)}: a `circ` example cannot import files; show imports in a `text` block"
    )
    try:
        check_spec_text(text, _where(path, line))
    except CircError as err:
        pytest.fail(f"{_where(path, line)}: this `circ` example should pass the checker:\n{err.render()}")


@pytest.mark.parametrize(("path", "line", "text"), _examples("circ-error"))
def test_circ_error_example_fails_with_its_code(path: Path, line: int, text: str) -> None:
    first = text.split("\n", 1)[0]
    match = _ERROR_LINE.match(first)
    assert match, f"{_where(path, line)}: a `circ-error` block starts with `# error: C0xxx`, found {first!r}"
    expected = match.group(1)
    with pytest.raises(CircError) as caught:
        check_spec_text(text, _where(path, line))
    codes = [d.code for d in caught.value.diagnostics]
    # Only the mistake the example is about: a second, accidental error would
    # teach the reader something else.
    assert set(codes) == {expected}, (
        f"{_where(path, line)}: expected only {expected}, the checker reported {codes}:\n{caught.value.render()}"
    )


def test_there_are_examples() -> None:
    assert len(_examples("circ")) >= 20
    assert len(_examples("circ-error")) >= 10


def test_fences_are_known_languages() -> None:
    """A typo such as ```cric would silently skip an example."""
    known = {"", "circ", "circ-error", "text", "bash", "console", "python", "json"}
    for path in doc_files():
        for tag, line, _ in fenced_blocks(path):
            assert tag in known, f"{_where(path, line - 1)}: unknown fence tag {tag!r}"


# ---------------------------------------------------------------- coverage


def source_codes() -> set[str]:
    codes = set()
    for file in SOURCES.rglob("*.py"):
        codes |= set(_CODE.findall(file.read_text(encoding="utf-8")))
    return codes


def _mentioned(word: str, text: str) -> bool:
    """``word`` appears in code: right after a backtick (`` `mean` ``, `` `mean(act) ``)."""
    return re.search(r"`" + re.escape(word) + r"(?![A-Za-z0-9_])", text) is not None


def _required_words() -> dict[str, list[str]]:
    return {
        "generator": list(b.GENERATORS),
        "task field": list(b.TASK_FIELDS),
        "node kind": [" ".join(kind) for kind in b.ROLE_KINDS],
        "predicate name": list(b.PREDICATE_NAMES),
        "statistic": list(b.STATISTICS),
        "relation": list(b.RELATIONS),
        "read channel": list(b.READ_CHANNELS),
        "size metric": list(b.SIZE_METRICS),
        "outcome metric": list(b.OUTCOME_METRICS),
        "ablation kind": list(b.ABLATION_KINDS),
        "ablation target": list(b.ABLATE_TARGETS),
        "setting": sorted({name for table in schema.BLOCKS.values() for name in table}),
        "keyword": sorted(_keywords()),
    }


def _keywords() -> set[str]:
    from circuitdsl.syntax import parser

    reserved = getattr(parser, "reserved_words", None)
    return set(reserved()) if reserved is not None else set()


@pytest.mark.parametrize("kind", list(_required_words()))
def test_every_builtin_is_documented(kind: str) -> None:
    text = LANGUAGE.read_text(encoding="utf-8") + ERRORS.read_text(encoding="utf-8")
    missing = [word for word in _required_words()[kind] if not _mentioned(word, text)]
    assert not missing, f"undocumented {kind}(s) in docs/language.md: {missing}"


def test_every_generator_has_a_section_and_a_passing_example() -> None:
    text = LANGUAGE.read_text(encoding="utf-8")
    examples = [t for tag, _, t in fenced_blocks(LANGUAGE) if tag == "circ"]
    for name in b.GENERATORS:
        assert f"### `{name}`" in text, f"docs/language.md has no section for generator `{name}`"
        assert any(re.search(rf"\b{name}\(", t) for t in examples), f"no `circ` example calls `{name}`"


def test_every_diagnostic_code_is_documented() -> None:
    codes = source_codes()
    assert codes, "no diagnostic codes found in circuitdsl/"
    errors = ERRORS.read_text(encoding="utf-8")
    table = set(re.findall(r"^\|\s*(C0\d{3})\s*\|", errors, re.M))
    assert not codes - table, f"codes missing from the table in docs/errors.md: {sorted(codes - table)}"
    assert not table - codes, f"docs/errors.md lists codes the code never reports: {sorted(table - codes)}"


def test_every_diagnostic_code_has_a_failing_example() -> None:
    shown = set()
    for path in doc_files():
        for tag, _, text in fenced_blocks(path):
            match = _ERROR_LINE.match(text.split("\n", 1)[0])
            if tag == "circ-error" and match:
                shown.add(match.group(1))
    missing = source_codes() - FILE_ONLY_CODES - shown
    assert not missing, f"no `circ-error` example shows {sorted(missing)}"
    stale = shown - source_codes()
    assert not stale, f"`circ-error` examples expect codes the code never reports: {sorted(stale)}"


# ---------------------------------------------------------------- settings tables


def settings_tables() -> dict[str, dict[str, list[str]]]:
    """``<!-- settings: KIND -->`` followed by a table: ``{kind: {setting: [cells...]}}``."""
    lines = LANGUAGE.read_text(encoding="utf-8").split("\n")
    tables: dict[str, dict[str, list[str]]] = {}
    for i, line in enumerate(lines):
        marker = re.fullmatch(r"<!-- settings: (\w+) -->", line.strip())
        if not marker:
            continue
        rows: dict[str, list[str]] = {}
        j = i + 3  # the header and the |---| line
        while j < len(lines) and lines[j].startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", lines[j].strip())[1:-1]]
            name = re.fullmatch(r"`(\w+)`", cells[0])
            assert name, f"docs/language.md:{j + 1}: a settings row starts with `name`"
            rows[name.group(1)] = cells[1:]
            j += 1
        tables[marker.group(1)] = rows
    return tables


def _default_value(cell: str, setting: schema.Setting, name: str):
    """The value a default cell stands for, evaluated the way the checker evaluates a setting."""
    from circuitdsl.syntax.parser import parse
    from circuitdsl.check.sink import DiagnosticSink
    from circuitdsl.check.settings import SettingsChecker

    if cell == "required":
        return schema.REQUIRED
    if cell.startswith("derived"):
        return schema.DERIVED
    literal = re.fullmatch(r"`([^`]+)`", cell)
    assert literal, f"default of `{name}` should be `literal`, `required` or `derived: ...`, found {cell!r}"
    expr = parse(f"model m {{ x = {literal.group(1)} }}").items[0].body[0].value
    report = DiagnosticSink()
    value = SettingsChecker(report, {}).value(setting, expr, name)
    assert not report.diagnostics, f"default of `{name}` ({cell}) is not a valid value: {report.diagnostics}"
    return value


def _limits(setting: schema.Setting) -> list[float]:
    """The bounds a reader must be told about: those not already implied by the type."""
    implied = {schema.POSITIVE_INT: 1, schema.NONNEG_INT: 0}.get(setting.type, 0)
    if setting.high is not None:
        return [setting.low, setting.high]
    if setting.low is not None and setting.low > implied:
        return [setting.low]
    return []


@pytest.mark.parametrize("kind", list(schema.BLOCKS))
def test_settings_table_matches_schema(kind: str) -> None:
    tables = settings_tables()
    assert kind in tables, f"docs/language.md has no `<!-- settings: {kind} -->` table"
    rows, table = tables[kind], schema.BLOCKS[kind]
    assert list(rows) == list(table), f"{kind} settings: docs list {list(rows)}, schema.py has {list(table)}"
    for name, setting in table.items():
        type_, default, limits, doc = rows[name]
        assert type_ == setting.type, f"{kind}.{name}: type {type_!r} in the docs, {setting.type!r} in schema.py"
        assert doc == setting.doc.replace("|", "\\|"), f"{kind}.{name}: doc {doc!r} in the docs, {setting.doc!r} in schema.py"
        value = _default_value(default, setting, name)
        assert value == setting.default, f"{kind}.{name}: default {default} means {value!r}, schema.py has {setting.default!r}"
        for bound in _limits(setting):
            shown = str(int(bound)) if bound == int(bound) else f"{bound:g}"
            assert re.search(rf"(?<![\d.]){re.escape(shown)}(?![\d.])", limits), (
                f"{kind}.{name}: limits {limits!r} do not mention {shown}"
            )
        if not _limits(setting):
            assert limits == "", f"{kind}.{name}: limits {limits!r} in the docs, none in schema.py"
