"""The command line: exact exit codes, JSON that parses, no torch on the check path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdsl import __version__
from circuitdsl.cli import app
from circuitdsl.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "specs").glob("*.circ"))
runner = CliRunner()

BROKEN = """model m {
    layers  = 2
    d_model = 64
    density = 0
}
"""


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_check_accepts_every_shipped_spec(spec):
    result = run("check", str(spec))
    assert result.exit_code == 0, result.output


def test_check_reports_located_error_and_exits_4(tmp_path):
    bad = tmp_path / "bad.circ"
    bad.write_text(BROKEN)
    result = run("check", str(bad))
    assert result.exit_code == ExitCode.USAGE
    assert "error[C0401]" in result.output
    assert f"{bad}:4:15" in result.output or "bad.circ:4:15" in result.output
    assert "Traceback" not in result.output


def test_check_keeps_going_after_an_invalid_file(tmp_path):
    bad = tmp_path / "bad.circ"
    bad.write_text(BROKEN)
    result = run("check", str(bad), str(SPECS[0]))
    assert result.exit_code == ExitCode.USAGE
    assert "ok" in result.output and SPECS[0].name in result.output


def test_missing_file_is_an_error_not_a_crash(tmp_path):
    result = run("check", str(tmp_path / "nope.circ"))
    assert result.exit_code == ExitCode.USAGE
    assert "no such file" in result.output


def test_usage_errors_exit_4_as_invalid_specs_do():
    assert run("check").exit_code == ExitCode.USAGE
    assert run("check", "--no-such-option", "x.circ").exit_code == ExitCode.USAGE


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_teaches_with_an_example():
    result = run("check", "--help")
    assert result.exit_code == 0
    assert "Example" in result.output


def test_show_json_is_one_document_with_schema_version():
    result = runner.invoke(app, ["show", str(ROOT / "specs" / "bracket_depth.circ"), "--json"])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1
    program = document["program"]
    assert set(program["tasks"]) >= {"bracket_depth", "quote_close", "set_or_string", "while_return_true"}
    assert program["prunes"]["prune_depth"]["target"] == 0.15
    assert program["trains"]["recipe"]["model"]["density"] == 1 / 16


def test_show_tables():
    result = run("show", str(ROOT / "specs" / "bracket_depth.circ"))
    assert result.exit_code == 0
    assert "task bracket_depth" in result.output
    assert "hypothesis averaging" in result.output


def test_fmt_check_flags_unformatted_files_and_fmt_fixes_them(tmp_path):
    messy = tmp_path / "messy.circ"
    messy.write_text("model m {layers=2   d_model = 64} # trailing\n")
    checked = run("fmt", "--check", str(messy))
    assert checked.exit_code == ExitCode.FAILED
    assert messy.read_text() == "model m {layers=2   d_model = 64} # trailing\n"
    # What would change, as a unified diff on stdout.
    assert checked.stdout.startswith(f"--- {messy}\n+++ {messy} (formatted)\n@@ ")
    assert "\n-model m {layers=2   d_model = 64} # trailing\n" in checked.stdout
    assert "\n+    layers  = 2\n" in checked.stdout
    assert run("fmt", str(messy)).exit_code == 0
    formatted = messy.read_text()
    assert "# trailing" in formatted
    again = run("fmt", "--check", str(messy))
    assert again.exit_code == 0 and again.stdout == ""


def test_fmt_check_diff_marks_a_missing_final_newline(tmp_path):
    messy = tmp_path / "messy.circ"
    messy.write_text("model m {layers=2}")
    checked = run("fmt", "--check", str(messy))
    assert checked.exit_code == ExitCode.FAILED
    assert "-model m {layers=2}\n\\ No newline at end of file\n" in checked.stdout


def test_check_never_imports_torch():
    code = (
        "import sys\n"
        "from circuitdsl.cli import app\n"
        "from circuitdsl.pipeline import check_spec\n"
        f"check_spec({str(ROOT / 'specs' / 'bracket_depth.circ')!r})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shipped_specs_are_in_canonical_format():
    shipped = sorted((ROOT / "specs").rglob("*.circ")) + sorted((ROOT / "examples").rglob("*.circ"))
    result = run("fmt", "--check", *map(str, shipped))
    assert result.exit_code == 0, result.output
