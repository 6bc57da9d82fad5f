"""One exit-code table for every command (issue 12): the same failure gives the same code everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdsl.build import models
from circuitdsl.cli import app
from circuitdsl.exit_codes import EXIT_CODES_HELP, ExitCode
from circuitdsl.verification.results import ClaimResult, FileResult, HypothesisResult, SeedOutcome, to_json
from circuitdsl.verification.verdict import PASS, Verdict

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
BROKEN = 'task t {\n    prompt = "a"\n    answer = "b"\n    oops = \n}\n'
SPEC_COMMANDS = ["check", "show", "sample", "train", "prune", "verify"]


@pytest.fixture
def broken(tmp_path) -> Path:
    path = tmp_path / "broken.circ"
    path.write_text(BROKEN)
    return path


@pytest.mark.parametrize("command", SPEC_COMMANDS)
def test_an_invalid_spec_exits_4_from_every_command(command, broken, tmp_path):
    result = runner.invoke(app, [command, str(broken), *(["--cache-dir", str(tmp_path)] if command in ("train", "prune", "verify") else [])])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "broken.circ:5:1" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", [*SPEC_COMMANDS, "fmt", "report"])
def test_a_bad_command_line_exits_4_from_every_command(command):
    result = runner.invoke(app, [command, "--no-such-option", "x.circ"])
    assert result.exit_code == ExitCode.USAGE, result.output


def test_unknown_names_on_the_command_line_are_usage_errors(tmp_path):
    spec = str(ROOT / "specs" / "bracket_depth.circ")
    for args in (
        ["sample", spec, "--task", "nope"],
        ["verify", spec, "--hypothesis", "nope", "--cache-dir", str(tmp_path)],
        ["verify", spec, "--seeds", "0", "--cache-dir", str(tmp_path)],
        ["train", spec, "--threads", "0", "--cache-dir", str(tmp_path)],
        ["cache", "clear", "nope", "--cache-dir", str(tmp_path)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == ExitCode.USAGE, (args, result.output)
        assert result.output.startswith("error:"), result.output


def test_the_table_is_in_help_and_in_the_readme():
    assert EXIT_CODES_HELP in " ".join(runner.invoke(app, ["--help"]).output.split()) or all(
        word in runner.invoke(app, ["--help"]).output for word in ("interrupted", "internal error", "invalid spec")
    )
    readme = (ROOT / "README.md").read_text()
    for code in ExitCode:
        assert f"| {code.value} |" in readme, f"README's exit-code table lacks {code.value}"


# ---------------------------------------------------------------- results as data, --strict


def _result(vacuous: bool, strict: bool) -> FileResult:
    verdict = Verdict("size.nodes", "nodes <= 40", "size", 12.0, "<= 40", PASS, None, {"summary": "12 nodes"}, vacuous)
    claim = ClaimResult(verdict, 1, 1, PASS, vacuous, (SeedOutcome(0, PASS, 12.0),))
    circuit = {"node_count": 12, "edge_count": 9, "loss": 0.1, "target": 0.15}
    record = {"seeds": [{"seed": 0, "model_key": "m" * 12, "circuit_key": "c" * 12, "model_cached": True, "circuit_cached": True}]}
    hypothesis = HypothesisResult("h", "p", "t", (claim,), circuit, None, record, None, "<svg></svg>")
    return FileResult("x.circ", (hypothesis,), strict=strict)


def test_strict_json_says_not_ok_when_a_claim_is_vacuous():
    assert to_json(_result(vacuous=True, strict=False))["ok"] is True
    assert to_json(_result(vacuous=True, strict=True))["ok"] is False
    assert to_json(_result(vacuous=False, strict=True))["ok"] is True


def test_a_saved_document_renders_without_torch_and_strict_decides_the_exit(tmp_path):
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(to_json(_result(vacuous=True, strict=False))))
    # torch made unimportable: rendering a saved run must not need it.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from circuitdsl.cli import main\n"
        f"sys.argv = ['circ', 'report', {str(saved)!r}] + sys.argv[1:]\n"
        "main()\n"
    )
    for extra, expected in (([], ExitCode.OK), (["--strict"], ExitCode.FAILED)):
        done = subprocess.run([sys.executable, "-c", code, *extra, "--report", str(tmp_path / "r.html")], capture_output=True, text=True, timeout=60)
        assert done.returncode == expected, done.stderr
        assert "size.nodes" in (tmp_path / "r.html").read_text()
        assert "nodes <= 40" in done.stdout and "vacuous" in done.stdout


def test_a_file_that_is_not_a_verify_document_is_a_usage_error(tmp_path):
    saved = tmp_path / "run.json"
    saved.write_text('{"schema_version": 1}')
    result = runner.invoke(app, ["report", str(saved)])
    assert result.exit_code == ExitCode.USAGE and "not a document" in result.output


# ---------------------------------------------------------------- errors that cross the boundary


TINY = f"""
import "{ROOT}/specs/tasks/quote_close.circ"
vocab {{ chars = printable }}
model m {{ layers = 1  d_model = 16  heads = 2  d_head = 8  d_mlp = 32  context = 40  density = 0.25 }}
train t {{ model = m  tasks = quote_close  steps = 10  batch = 8  lr = 0.02  eval_examples = 16 }}
prune p {{ train = t  task = quote_close  trials = 1  steps = 5  batch = 16  mean_samples = 32 }}
hypothesis h on p {{
    nodes <= 40
    edges <= 40
    ablate circuit -> accuracy drops by >= 0.3
}}
"""


@pytest.fixture
def failing_training(monkeypatch):
    """Training that fails as a diverged run does, counting how often it is attempted."""
    calls = []

    def diverge(plan, device, progress):
        calls.append(plan.key)
        raise models.TrainingFailed(f"training of `{plan.name}` stopped: loss is nan at step 3", result=None)

    monkeypatch.setattr(models, "_train", diverge)
    return calls


def test_training_that_fails_exits_1_with_a_message_not_a_traceback(failing_training, tmp_path):
    spec = tmp_path / "tiny.circ"
    spec.write_text(TINY)
    for command in ("train", "prune", "verify"):
        result = runner.invoke(app, [command, str(spec), "--cache-dir", str(tmp_path / "cache"), "-q"])
        assert result.exit_code == ExitCode.FAILED, result.output
        assert "error: training of `t` stopped" in result.output and "Traceback" not in result.output


def test_the_pytest_plugin_reports_a_failed_training_once_per_item_and_trains_once(failing_training, tmp_path, pytester):
    spec = pytester.path / "tiny.circ"
    spec.write_text(TINY)
    result = pytester.runpytest_inprocess(str(spec), "--circ-cache-dir", str(tmp_path / "cache"), "-p", "no:cacheprovider")
    result.assert_outcomes(failed=3)
    # Counted per report: with CI set, pytest's summary repeats every message once more.
    failures = [r for r in result.reprec.getreports("pytest_runtest_logreport") if r.failed]
    assert len(failures) == 3 and all("training of `t` stopped" in str(r.longrepr) for r in failures)
    assert "Traceback" not in result.stdout.str() and "TrainingFailed" not in result.stdout.str()
    assert len(failing_training) == 1


def test_a_reader_that_goes_away_is_not_an_internal_error(tmp_path):
    # `circ fmt --check specs/*.circ | head`: once head exits, writing the diff fails with
    # EPIPE. The read end is closed before circ starts, so the first write fails every time.
    spec = tmp_path / "messy.circ"
    spec.write_text('task t {\n  prompt   =   "a"\n  answer = "b"\n}\n')
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "circuitdsl", "fmt", "--check", str(spec)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert done.returncode == ExitCode.INTERRUPTED, done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
