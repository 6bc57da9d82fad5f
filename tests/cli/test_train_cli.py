"""`circ train` and `circ cache`: trains once, reuses the cache, rebuilds a corrupt entry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdsl.cli import app
from circuitdsl.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

TINY = f"""
import "{ROOT}/specs/tasks/quote_close.circ"
vocab {{ chars = printable }}
model m {{ layers = 1  d_model = 16  heads = 2  d_head = 8  d_mlp = 32  context = 40  density = 0.25 }}
train t {{ model = m  tasks = quote_close  steps = 120  batch = 32  lr = 0.02  eval_examples = 64 }}
"""


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture()
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.circ"
    path.write_text(TINY)
    return path


def train_json(spec: Path, cache: Path, *extra: str) -> dict:
    result = run("train", str(spec), "--cache-dir", str(cache), "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["models"][0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """One training run shared by the tests; each copies the cache before changing it."""
    folder = tmp_path_factory.mktemp("trained")
    path = folder / "tiny.circ"
    path.write_text(TINY)
    return folder / "cache", train_json(path, folder / "cache")


@pytest.fixture()
def cache(trained, tmp_path) -> Path:
    copy = tmp_path / "cache"
    shutil.copytree(trained[0], copy)
    return copy


def test_train_caches_and_the_second_run_reuses(spec, trained, cache):
    first = trained[1]
    second = train_json(spec, cache)
    assert first["cached"] is False and second["cached"] is True
    assert first["key"] == second["key"] and first["metrics"] == second["metrics"]
    assert set(first["density"].values()) == {0.25}


def test_a_truncated_weights_file_is_detected_and_retrained(spec, trained, cache):
    first = trained[1]
    first = dict(first, path=str(cache / "models" / first["key"]))
    weights = Path(first["path"]) / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    result = run("train", str(spec), "--cache-dir", str(cache), "--json")
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)["models"][0]
    assert again["cached"] is False, "a corrupt entry must be rebuilt, not reused"
    assert "corrupt" in result.stderr and again["metrics"] == first["metrics"]


def test_an_edited_spec_misses_the_cache(spec, tmp_path):
    from circuitdsl.pipeline import check_spec
    from circuitdsl.spec.plan import plan_training

    def key(text: str) -> str:
        spec.write_text(text)
        program = check_spec(spec)
        return plan_training(program.tasks, program.vocab, program.trains["t"]).key

    original = key(TINY)
    assert key(TINY) == original
    assert key(TINY.replace("steps = 120", "steps = 121")) != original


def test_unknown_train_block_and_invalid_spec_exit_4(spec, tmp_path):
    result = run("train", str(spec), "--train", "tt", "--cache-dir", str(tmp_path))
    assert result.exit_code == ExitCode.USAGE and "did you mean `t`" in result.stderr
    bad = tmp_path / "bad.circ"
    bad.write_text(TINY.replace("density = 0.25", "density = 0"))
    result = run("train", str(bad), "--cache-dir", str(tmp_path))
    assert result.exit_code == ExitCode.USAGE and "tiny.circ" not in result.stderr


def test_cuda_without_a_gpu_is_a_usage_error(spec, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run("train", str(spec), "--device", "cuda", "--cache-dir", str(tmp_path))
    assert result.exit_code == ExitCode.USAGE and "no CUDA device" in result.stderr


def test_cache_ls_and_clear(trained, cache):
    key = trained[1]["key"]
    listed = json.loads(run("cache", "ls", "--cache-dir", str(cache), "--json").stdout)
    assert [(e["kind"], e["key"], e["valid"]) for e in listed["entries"]] == [("models", key, True)]
    assert run("cache", "clear", "--cache-dir", str(cache)).exit_code == 0
    assert json.loads(run("cache", "ls", "--cache-dir", str(cache), "--json").stdout)["entries"] == []


QUICK = f"""
import "{ROOT}/specs/tasks/quote_close.circ"
vocab {{ chars = printable }}
model m {{ layers = 1  d_model = 16  heads = 2  d_head = 8  d_mlp = 32  context = 40  density = 0.25 }}
train learns {{ model = m  tasks = quote_close  steps = 600  batch = 32  lr = 0.02  eval_examples = 128 }}
train too_short {{ model = m  tasks = quote_close  steps = 30  batch = 32  lr = 0.02  eval_examples = 128 }}
"""


def test_train_quick_says_per_task_whether_it_is_learned_and_caches_nothing(tmp_path):
    path = tmp_path / "quick.circ"
    path.write_text(QUICK)
    cache = tmp_path / "cache"
    learns = run("train", str(path), "--train", "learns", "--quick", "--cache-dir", str(cache), "--json")
    assert learns.exit_code == 0, learns.output
    [report] = json.loads(learns.stdout)["models"]
    # A tenth of the recipe: 60 of 600 steps.
    assert (report["steps"], report["recipe_steps"]) == (60, 600)
    task = report["tasks"]["quote_close"]
    assert task["verdict"] == "learning" and task["chance_accuracy"] == pytest.approx(0.5), task
    assert not cache.exists() or not any(cache.rglob("*.safetensors"))
    # 30 steps (the whole recipe: never more than it) leave the quote at chance: exit 1.
    short = run("train", str(path), "--train", "too_short", "--quick", "--cache-dir", str(cache))
    assert short.exit_code == ExitCode.FAILED, short.output
    assert "30 of 30 steps" in short.stdout and "at chance" in short.stdout
    # Progress, as plain lines: the runner's stderr is no terminal.
    assert "train too_short (quick): 30/30 (100%)" in short.stderr


def test_learning_verdicts_from_loss_or_accuracy_against_chance():
    from circuitdsl.report.circuits import AT_CHANCE, LEARNING, NOT_YET, learning_verdict

    two = 0.6931471805599453  # ln 2: two possible answers
    assert learning_verdict({"loss": 0.38, "chance_loss": two, "accuracy": 1.0}) == LEARNING  # by accuracy
    assert learning_verdict({"loss": 0.3, "chance_loss": two, "accuracy": 0.6}) == LEARNING  # by loss
    assert learning_verdict({"loss": 0.55, "chance_loss": two, "accuracy": 0.6}) == NOT_YET
    assert learning_verdict({"loss": 0.7, "chance_loss": two, "accuracy": 0.52}) == AT_CHANCE
    assert learning_verdict({"loss": 0.0, "chance_loss": 0.0, "accuracy": 1.0}) == LEARNING  # one answer
