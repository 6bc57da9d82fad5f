"""What the README and examples/README.md tell a new user to run shows what they say it shows."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdsl.cli import app
from circuitdsl.pipeline import check_spec

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples" / "README.md"
runner = CliRunner()


def sample_command(doc: Path, spec: str) -> list[str]:
    """The arguments of the first `circ sample SPEC ...` line of ``doc`` (its comment left off)."""
    line = next(line for line in doc.read_text(encoding="utf-8").splitlines() if line.startswith(f"circ sample {spec} "))
    return shlex.split(line.split("#")[0])[1:]


def sampled(args: list[str]) -> list[dict]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["examples"]


def test_the_tour_s_sample_shows_both_depths(monkeypatch):
    monkeypatch.chdir(ROOT)
    examples = sampled(sample_command(README, "specs/bracket_depth.circ"))
    assert {e["latents"]["depth"] for e in examples} == {1, 2}


def test_the_example_s_sample_shows_both_kinds_and_def_as_one_token(monkeypatch):
    monkeypatch.chdir(ROOT)
    examples = sampled(sample_command(EXAMPLES, "examples/def_or_call.circ"))
    assert {e["latents"]["kind"] for e in examples} == {"def", "call"}
    assert all(e["tokens"][0] == "def" for e in examples if e["latents"]["kind"] == "def")


@pytest.mark.parametrize("doc", [README, ROOT / "docs" / "language.md"], ids=lambda p: p.name)
def test_no_command_is_said_to_be_still_being_built(doc):
    assert "being built" not in doc.read_text(encoding="utf-8")


def test_the_plugin_s_item_names_in_the_readme_are_real_claim_ids():
    section = README.read_text(encoding="utf-8").split("## The pytest plugin", 1)[1].split("\n## ", 1)[0]
    items = re.findall(r"^(specs/\S+\.circ)::(\w+)::(\S+) PASSED$", section, re.MULTILINE)
    assert items
    for path, hypothesis, claim_id in items:
        ids = [c.id for c in check_spec(ROOT / path).hypotheses[hypothesis].claims]
        assert claim_id in ids, (claim_id, ids)


def test_the_example_s_shipped_model_is_the_shared_one_and_its_own_is_another():
    from circuitdsl.spec.plan import plan_training

    shared = check_spec(ROOT / "specs" / "common.circ")
    example = check_spec(ROOT / "examples" / "def_or_call.circ")
    key = lambda spec, name: plan_training(spec.tasks, spec.vocab, spec.trains[name]).key  # noqa: E731
    # `def` added in the example leaves the shipped model's cache entry as it is.
    assert key(example, "recipe") == key(shared, "recipe")
    assert key(example, "def_recipe") != key(shared, "recipe")
    assert "def" in example.trains["def_recipe"].vocab.tokens and "def" not in example.trains["recipe"].vocab.tokens
