"""Progress where stderr is not a terminal (CI, a log file): plain periodic lines, never wrapped."""

from __future__ import annotations

import io

from rich.console import Console

from circuitdsl.cli.progress import stage_progress, training_progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _console(terminal: bool = False) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80, force_terminal=terminal, color_system=None), out


def _info(loss: float) -> dict:
    tasks = {"def_or_call": {"accuracy": 0.5}, "quote_close": {"accuracy": 0.75}, "bracket_depth": {"accuracy": 0.9}}
    return {"loss": loss, "density": 0.25, "tokens_per_s": 12345.0, "tasks": tasks}


def test_training_prints_a_line_every_tenth_with_step_loss_speed_and_eta():
    console, out = _console()
    clock = Clock()
    with training_progress(console, "train recipe", clock=clock) as progress:
        for step in range(1, 201):
            clock.now += 0.5
            progress(step, 200, _info(2.0 / step))
    lines = out.getvalue().splitlines()
    # The first update, then each tenth (20 steps of 200), the last included.
    assert len(lines) == 11, lines
    assert lines[0].startswith("train recipe: 1/200 (0%)  loss 2.000")
    assert "12,345 tok/s" in lines[0]
    assert "eta 1m30s" in lines[1]  # 20 steps in 10 s, 180 to go
    assert lines[1].startswith("train recipe: 21/200 (10%)")
    assert lines[-1].startswith("train recipe: 200/200 (100%)") and "eta" not in lines[-1]
    # Longer than the console's 80 columns, and still one line each.
    assert max(len(line) for line in lines) > 80


def test_a_slow_run_prints_every_fifteen_seconds_between_tenths():
    console, out = _console()
    clock = Clock()
    with training_progress(console, "train t", clock=clock) as progress:
        for step in range(1, 8):
            clock.now += 10  # 70 s for 7 steps of 1000: no tenth is reached
            progress(step, 1000, _info(1.0))
    lines = out.getvalue().splitlines()
    steps = [line.split(":")[1].split("/")[0].strip() for line in lines]
    # The first update; then one whenever 15 s have passed (20 s later, at 10 s a step);
    # and on closing, the last state reached.
    assert steps == ["1", "3", "5", "7"], lines
    assert "elapsed 1m00s" in lines[-1]


def test_quick_work_prints_its_start_and_its_end_only():
    console, out = _console()
    clock = Clock()
    with training_progress(console, "train t", clock=clock) as progress:
        progress(1, 1000, _info(1.0))
        clock.now += 1
        progress(2, 1000, _info(0.9))
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["train t: 1/1000", "train t: 2/1000"]


def test_cached_work_prints_nothing():
    console, out = _console()
    with training_progress(console, "train t", clock=Clock()):
        pass
    with stage_progress(console, "prune p", clock=Clock()):
        pass
    assert out.getvalue() == ""


def test_stages_print_when_they_change_and_a_restarted_stage_counts_again():
    console, out = _console()
    clock = Clock()
    with stage_progress(console, "prune p", clock=clock) as progress:
        progress("identity", 1, 1, {"full_loss": 0.1})
        for trial in range(2):
            for step in range(1, 11):
                clock.now += 1
                progress("masks", step, 10, {"run": f"trial {trial}", "ce": 0.5})
        progress("controls", 1, 1, {})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("prune p: identity: 1/1 (100%)  full_loss 0.1")
    masks = [line for line in lines if line.startswith("prune p: masks: 1/10")]
    assert len(masks) == 2, lines  # each trial starts its own count
    assert lines[-1].startswith("prune p: controls: 1/1")


def test_quiet_prints_nothing_and_a_terminal_gets_the_bar():
    console, out = _console()
    with training_progress(console, "train t", quiet=True, clock=Clock()) as progress:
        progress(1, 10, _info(1.0))
    assert out.getvalue() == ""
    console, out = _console(terminal=True)
    with training_progress(console, "train t") as progress:
        progress(5, 10, _info(1.0))
    assert "━" in out.getvalue() and "(50%)" not in out.getvalue()


def test_claims_print_one_line_each_with_the_claim_being_decided():
    from circuitdsl.cli.progress import claim_progress

    console, out = _console()
    clock = Clock()
    claims = ["nodes <= 40", "role opener : resid channel in layer 0", "ablate circuit -> accuracy <= 0.6"]
    with claim_progress(console, "verify", clock=clock) as progress:
        progress(0, 3, "binding roles")
        for done, claim in enumerate(claims):
            clock.now += 1
            progress(done, 3, claim)
        progress(3, 3, "")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("verify: 0/3 (0%)  binding roles")
    assert any(line.startswith("verify: 2/3 (67%)  ablate circuit -> accuracy <= 0.6") for line in lines), lines
    assert lines[-1].startswith("verify: 3/3 (100%)")
