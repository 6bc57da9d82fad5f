"""`circ sample`: exit codes, the JSON document, the table, and the errors a user can make."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from circuitdsl.cli import app

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "specs" / "bracket_depth.circ")
EXAMPLE = str(ROOT / "examples" / "paren_close.circ")
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_json_is_one_document_with_the_examples():
    result = run("sample", SPEC, "--task", "bracket_depth", "-n", "4", "--seed", "3", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1
    assert document["task"] == "bracket_depth" and document["seed"] == 3 and document["variant"] is None
    assert len(document["examples"]) == 4
    for ex in document["examples"]:
        assert "".join(ex["tokens"]) == ex["prompt"]
        assert ex["answer"] == ("]]" if ex["latents"]["depth"] == 2 else "]")
        assert set(ex["latents"]) == {"depth", "name", "body"}
        assert ex["split"] in ("train", "eval")


def test_same_seed_same_examples_and_another_seed_others():
    def prompts(seed: str):
        result = run("sample", SPEC, "-t", "quote_close", "-n", "5", "--seed", seed, "--json")
        return [ex["prompt"] for ex in json.loads(result.stdout)["examples"]]

    assert prompts("1") == prompts("1") != prompts("2")


def test_table_shows_tokens_answers_and_latents():
    result = run("sample", SPEC, "--task", "set_or_string", "-n", "3")
    assert result.exit_code == 0, result.output
    assert "task set_or_string: 3 examples, seed 0" in result.output
    assert "␣" in result.output and "↵" in result.output
    assert "kind = " in result.output and "filler = " in result.output
    assert ".add" in result.output and "␣+=" in result.output


def test_an_adversarial_variant_can_be_sampled():
    result = run("sample", SPEC, "--adversarial", "bracket_in_string", "-n", "3", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["task"] == "bracket_depth" and document["variant"] == "averaging.bracket_in_string"
    assert all(ex["prompt"].startswith('s = "[[[["\n') for ex in document["examples"])


def test_the_example_spec_samples():
    result = run("sample", EXAMPLE, "--task", "paren_close", "-n", "5")
    assert result.exit_code == 0, result.output
    assert "depth = " in result.output


def test_unknown_task_suggests_the_closest_and_exits_4():
    result = run("sample", SPEC, "--task", "brackt_depth")
    assert result.exit_code == 4
    assert "no task named `brackt_depth`" in result.output and "did you mean `bracket_depth`?" in result.output
    assert "Traceback" not in result.output


def test_several_tasks_and_no_choice_is_a_usage_error():
    result = run("sample", SPEC)
    assert result.exit_code == 4
    assert "choose one with --task" in result.output


def test_unknown_adversarial_and_bad_count():
    assert run("sample", SPEC, "--adversarial", "bracket_in_strng").exit_code == 4
    assert run("sample", SPEC, "-t", "bracket_depth", "-n", "0").exit_code == 4


def test_an_invalid_spec_is_reported_and_exits_4(tmp_path):
    bad = tmp_path / "bad.circ"
    bad.write_text('task t {\n    prompt = "a" + 1\n    answer = "b"\n}\n')
    result = run("sample", str(bad))
    assert result.exit_code == 4
    assert "error[C0305]" in result.output


def test_a_failure_found_while_drawing_is_a_located_error(tmp_path):
    # 0..5000 is too many values for `circ check` to enumerate; drawing finds n = 0.
    spec = tmp_path / "div.circ"
    spec.write_text('task t {\n    n      = 0..5000\n    prompt = str(1 / n)\n    answer = "b"\n}\n')
    assert run("check", str(spec)).exit_code == 0
    result = run("sample", str(spec), "-n", "100000")
    assert result.exit_code == 4
    assert "error[C0401]: division by zero" in result.output and "div.circ:3:22" in result.output
