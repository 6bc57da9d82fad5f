"""Golden diagnostics, in the manner of rustc's UI tests.

Each ``tests/ui/NAME.circ`` is checked with :func:`check_spec` from the
repository root, and what :meth:`CircError.render` prints must equal
``tests/ui/NAME.stderr`` byte for byte (an empty file for a case that checks
fine). After a deliberate change to a message, run ``pytest tests/ui --bless``
and review the diff of the ``.stderr`` files.

Files under ``tests/ui/imports/`` are imported by the cases, never cases themselves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from circuitdsl.diagnostics import CircError
from circuitdsl.pipeline import check_spec

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CASES = sorted(HERE.glob("*.circ"))


def render(case: Path) -> str:
    """The diagnostics for ``case`` as ``circ check`` shows them, paths relative to the repository root."""
    try:
        check_spec(case.relative_to(ROOT))
    except CircError as err:
        return err.render() + "\n"
    return ""


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_ui(case: Path, at_root, request):
    actual = render(case)
    expected_file = case.with_suffix(".stderr")
    if request.config.getoption("--bless"):
        expected_file.write_text(actual, encoding="utf-8")
        return
    assert expected_file.exists(), f"{expected_file.name} is missing; run `pytest tests/ui --bless` to create it"
    assert actual == expected_file.read_text(encoding="utf-8")


def test_every_stderr_has_a_case():
    orphans = [p.name for p in HERE.glob("*.stderr") if not p.with_suffix(".circ").exists()]
    assert not orphans


def test_diamond_import_reads_the_shared_file_once(at_root):
    program = check_spec("tests/ui/imports/diamond.circ")
    assert set(program.tasks) == {"bracket_depth"}
    assert set(program.models) == {"small", "wide"}
    assert program.trains["run"].model.name == "small"
    assert sorted(program.sources) == [
        f"tests/ui/imports/{name}.circ" for name in ("base", "diamond", "left", "right")
    ]
