"""`circ verify` through a bridge on tiny models: the verdict path must FAIL where the claim is false,
mark a claim vacuous when it holds through the control bridge too, and report the bridge's quality."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdsl.cli import app
from circuitdsl.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

SPEC = f"""
import "{ROOT}/specs/tasks/quote_close.circ"
vocab {{ chars = printable }}
model m {{ layers = 1  d_model = 16  heads = 2  d_head = 8  d_mlp = 32  context = 40  density = 0.25 }}
model dm extends m {{ density = 1  act_topk = 1 }}
train t {{ model = m  tasks = quote_close  steps = 120  batch = 32  lr = 0.02  eval_examples = 64 }}
train dt {{ model = dm  tasks = quote_close  steps = 120  batch = 32  lr = 0.02  eval_examples = 64 }}
prune p {{ train = t  task = quote_close  trials = 1  steps = 30  batch = 64  mean_samples = 128  controls = false }}
bridge b {{ dense = dt  sparse = t  steps = 30  batch = 32  eval_examples = 32 }}
hypothesis via on p {{
    samples = 200
    role ch : resid channel in layer 0
    # Wrong way round: the channels set to the double-quote mean on double-quote strings.
    intervene ch = mean(act | q == '"') when q == '"' through bridge b -> p("'") rises by >= 0.05
    # True of any change at all, so it must come out vacuous.
    intervene ch = mean(act | q == "'") when q == '"' through bridge b -> accuracy drops by <= 1
}}
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bridge")
    (folder / "tiny_bridge.circ").write_text(SPEC)
    return folder


@pytest.fixture(scope="module")
def runs(folder):
    args = ["verify", str(folder / "tiny_bridge.circ"), "--cache-dir", str(folder / "cache"), "--out", str(folder / "out"), "--json", "-q"]
    return runner.invoke(app, args), runner.invoke(app, args)


def claims(result) -> dict[str, dict]:
    return {c["id"]: c for c in json.loads(result.stdout)["hypotheses"][0]["claims"]}


def test_a_false_claim_through_a_bridge_is_refuted(runs):
    first, _ = runs
    assert first.exit_code == ExitCode.FAILED, first.output
    inverted = claims(first)["intervene.ch@b"]
    assert inverted["status"] == "FAIL", inverted
    assert inverted["evidence"]["bridge"] == "b" and "random_direction" in inverted["evidence"]


def test_a_claim_that_holds_through_the_control_bridge_is_vacuous(runs):
    first, _ = runs
    trivial = claims(first)["intervene.ch@b#2"]
    assert trivial["status"] == "PASS" and trivial["vacuous"], trivial


def test_the_bridge_is_reported_per_boundary_and_reused(runs):
    first, second = runs
    bridges = json.loads(first.stdout)["hypotheses"][0]["bridges"]
    report = bridges["b"]
    assert set(report["metrics"]) == {"0.attn", "0.mlp", "final"} == set(report["control_metrics"])
    for boundary in report["metrics"].values():
        assert set(boundary) == {
            "nmse_encoder", "nmse_decoder", "kl_dense_to_sparse", "kl_sparse_to_dense",
            "accuracy_dense_to_sparse", "accuracy_sparse_to_dense",
        }
    assert not report["cached"] and json.loads(second.stdout)["hypotheses"][0]["bridges"]["b"]["cached"]
    assert {k: (v["status"], v["measured"]) for k, v in claims(first).items()} == {
        k: (v["status"], v["measured"]) for k, v in claims(second).items()
    }


def test_circ_bridge_reuses_what_verify_fitted_and_reports_the_same(folder, runs):
    first, _ = runs
    verified = json.loads(first.stdout)["hypotheses"][0]["bridges"]["b"]
    args = ["bridge", str(folder / "tiny_bridge.circ"), "--cache-dir", str(folder / "cache"), "--control", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == ExitCode.OK, result.output
    report = json.loads(result.stdout)["bridges"]["b"]
    assert report["cached"] and report["control_cached"]
    assert report["key"] == verified["key"] and report["control_key"] == verified["control_key"]
    assert report["metrics"] == verified["metrics"] and report["control_metrics"] == verified["control_metrics"]


def test_circ_bridge_prints_a_row_per_boundary_and_the_control(folder, runs):
    result = runner.invoke(app, ["bridge", str(folder / "tiny_bridge.circ"), "--cache-dir", str(folder / "cache"), "--control"])
    assert result.exit_code == ExitCode.OK, result.output
    for text in ("bridge `b` (from cache", "NMSE dec", "KL s->d", "0.attn", "0.mlp", "final", "control, mean"):
        assert text in result.stdout, text


def test_verify_and_report_show_the_bridge_table(folder, runs):
    first, _ = runs
    saved = folder / "run.json"
    saved.write_text(first.stdout)
    page = folder / "run.html"
    result = runner.invoke(app, ["report", str(saved), "--report", str(page)])
    assert "bridge `b`" in result.stdout and "control, mean" in result.stdout, result.stdout
    html = page.read_text()
    assert "bridge <code>b</code>" in html and html.count("<td><code>0.mlp</code></td>") == 1


def test_circ_bridge_errors_are_located_and_exit_4(folder):
    spec = str(folder / "tiny_bridge.circ")
    unknown = runner.invoke(app, ["bridge", spec, "--bridge", "c", "--cache-dir", str(folder / "cache")])
    assert unknown.exit_code == ExitCode.USAGE and "no bridge block named `c`" in unknown.output
    none = runner.invoke(app, ["bridge", str(ROOT / "specs/quote_close.circ")])
    assert none.exit_code == ExitCode.USAGE and "defines no bridge block" in none.output
