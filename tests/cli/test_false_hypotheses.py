"""Every hypothesis in examples/false_hypotheses.circ is refuted, on the shipped model; the main job's all hold.

The slowest test of the suite (it trains the shipped recipe and prunes the
bracket-depth circuit, a few minutes on 2 cores), and the one that matters
most: a verifier that passes a false hypothesis is worse than none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdsl.cli import app
from circuitdsl.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parents[2]

# Which claim of each hypothesis must fail.
REFUTED = {
    "paper_sized": "nodes <= 12",
    "settled_in_layer0": "nodes in layer 1 <= 5",
    "written_backwards": "role depth_ch",
    "tracks_strings": "adversarial bracket_in_string",
    "long_lists_fool_it": "adversarial long_lists",
    "circuit_insufficient": "ablate complement -> accuracy <= 0.6",
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    # CIRC_TEST_CACHE reuses a warm cache while working on these tests; CI starts cold.
    return os.environ.get("CIRC_TEST_CACHE", str(tmp_path_factory.mktemp("cache")))


def verify(path: Path, cache: str, out: Path, *extra: str):
    return CliRunner().invoke(app, ["verify", str(path), "--json", "--quiet", "--out", str(out), "--cache-dir", cache, *extra])


@pytest.mark.slow
def test_every_false_hypothesis_is_refuted(tmp_path, cache):
    result = verify(ROOT / "examples" / "false_hypotheses.circ", cache, tmp_path / "out")
    assert result.exit_code == ExitCode.FAILED, result.output
    document = json.loads(result.stdout)
    verdicts = {h["name"]: h for h in document["hypotheses"]}
    assert set(verdicts) == set(REFUTED), "only the example's own hypotheses are verified, not the imported spec's"
    for name, claim_prefix in REFUTED.items():
        hypothesis = verdicts[name]
        assert hypothesis["refuted"], name
        failed = [c["claim"] for c in hypothesis["claims"] if c["status"] == "FAIL"]
        assert any(claim.startswith(claim_prefix) for claim in failed), (name, hypothesis["claims"])


@pytest.mark.slow
def test_the_main_job_holds_strictly_on_the_shipped_model(tmp_path, cache):
    # README's main job, on the model and circuit the test above made: every
    # claim holds, none is inconclusive, and none also holds on the untrained
    # control (--strict fails on any of those).
    result = verify(ROOT / "specs" / "bracket_depth.circ", cache, tmp_path / "out", "--strict")
    assert result.exit_code == ExitCode.OK, result.output
    claims = json.loads(result.stdout)["hypotheses"][0]["claims"]
    assert claims and all(c["status"] == "PASS" and not c["vacuous"] for c in claims)
