"""A new task from first draft to verdict, as a user runs it where stderr is no terminal
(CI, a log): check, a quick training preview, then verify, with progress lines throughout."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdsl.cli import app
from circuitdsl.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

pytestmark = pytest.mark.slow

# The example's task (examples/tasks/def_or_call.circ) on a tiny model and a cheap prune;
# `def` added to the vocab here, as examples/def_or_call.circ adds it to the shared one.
SPEC = f"""
import "{ROOT}/examples/tasks/def_or_call.circ"
vocab {{ tokens = ["def"] }}
model m {{ layers = 1  d_model = 16  heads = 2  d_head = 8  d_mlp = 32  context = 40  density = 0.25 }}
train t {{ model = m  tasks = def_or_call  steps = 500  batch = 32  lr = 0.02  eval_examples = 128 }}
prune p {{ train = t  task = def_or_call  trials = 2  steps = 40  batch = 128  mean_samples = 256 }}
hypothesis h on p {{
    samples = 300
    nodes <= 400
    ablate complement -> loss <= 1
    adversarial call_after_def {{
        kind   = "call"
        prompt = "def g():\\n    ${{target}} = ${{name}}(${{args}})"
        expect accuracy drops by >= 0.2
    }}
}}
"""


@pytest.fixture()
def spec(tmp_path, monkeypatch) -> Path:
    # The shared tasks of examples/ are importable, as a user's CI would declare its own.
    monkeypatch.setenv("CIRC_IMPORT_PATH", os.environ.get("CIRC_IMPORT_PATH", "") + os.pathsep + str(ROOT / "examples"))
    path = tmp_path / "def_or_call.circ"
    path.write_text(SPEC)
    return path


def progress_lines(stderr: str, label: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"{label}: ")]


def test_a_new_task_goes_from_draft_to_verdict_with_progress_throughout(spec, tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache")]

    checked = runner.invoke(app, ["check", str(spec)])
    assert checked.exit_code == ExitCode.OK, checked.output

    quick = runner.invoke(app, ["train", str(spec), "--quick", *cache])
    assert quick.exit_code == ExitCode.OK, quick.output
    lines = progress_lines(quick.stderr, "train t (quick)")
    assert len(lines) >= 3 and lines[-1].startswith("train t (quick): 50/50 (100%)"), quick.stderr
    assert "tok/s" in lines[0] and "quick check of `t`: 50 of 500 steps" in quick.stdout
    assert "learning" in quick.stdout, quick.stdout
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())

    verified = runner.invoke(app, ["verify", str(spec), *cache, "--out", str(tmp_path / "out")])
    assert verified.exit_code in (ExitCode.OK, ExitCode.FAILED), verified.output
    for label in ("train", "prune", "verify"):
        assert progress_lines(verified.stderr, label), (label, verified.stderr)
    assert progress_lines(verified.stderr, "train")[-1].startswith("train: 500/500 (100%)")
    assert progress_lines(verified.stderr, "verify")[-1].startswith("verify: 3/3 (100%)")
    # Every claim on a line of its own, though the runner's console is 80 columns wide.
    for claim in ("nodes <= 400", "ablate complement -> loss <= 1", "adversarial call_after_def: expect accuracy drops by >= 0.2"):
        assert any(claim in line for line in verified.stdout.splitlines()), verified.stdout

    # Cached now: the same verdicts as a document, with the controls judged.
    document = json.loads(runner.invoke(app, ["verify", str(spec), *cache, "--out", str(tmp_path / "out"), "--json"]).stdout)
    [run] = document["hypotheses"]
    assert {c["status"] for c in run["claims"]} <= {"PASS", "FAIL", "INCONCLUSIVE"}
    assert set(run["control_checks"]) >= {"identity", "minimality", "ablation_agreement"}
    assert all(check["status"] in ("ok", "warning") for check in run["control_checks"].values())
