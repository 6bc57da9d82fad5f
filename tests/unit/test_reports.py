"""What people read, rendered from plain results (no torch): control statuses, warnings,
before -> after of a change, and tables that stay readable at 80 columns."""

from __future__ import annotations

import io
import json

import attrs

from rich.console import Console

from circuitdsl.report.circuits import circuit_tables
from circuitdsl.report.verdicts import before_after, evidence_lines, measured_text, print_hypothesis, to_html
from circuitdsl.verification.controls import OK, WARNING, control_warnings, judge_controls
from circuitdsl.verification.results import ClaimResult, FileResult, HypothesisResult, from_json, to_json
from circuitdsl.verification.verdict import FAIL, PASS, Verdict

CIRCUIT = {
    "method": "learned", "ablation": "mean", "target": 0.15, "reached": True, "loss": 0.145,
    "calibrated_loss": 0.14, "logit_scale": 1.0, "accuracy": 0.97, "node_count": 40, "edge_count": 60,
    "total_nodes": 1200, "per_layer": {"0": 25, "1": 15}, "per_site": {}, "nodes": [f"0.mlp.post_act[{i}]" for i in range(40)],
    "edges": [], "roles": {},
}


def controls(**changes) -> dict:
    healthy = {
        "identity": True,
        "nonsense": {"reached": False, "nodes": 300, "loss": 0.9, "full_loss": 0.7},
        "nonsense_flag": False,
        "random_model": {"reached": False, "nodes": 1200, "loss": 1.4, "full_loss": 1.4},
        "minimality": {f"0.mlp.post_act[{i}]": 0.3 for i in range(40)},
        "removable": [],
        "ablation_agreement": {"mean": 0.145, "zero": 0.2, "resample": 0.16},
    }
    return {**healthy, **changes}


# ---------------------------------------------------------------- controls


def test_healthy_controls_are_all_ok():
    checks = judge_controls(controls(), CIRCUIT)
    assert list(checks) == ["identity", "nonsense", "random_model", "minimality", "ablation_agreement"]
    assert {c["status"] for c in checks.values()} == {OK}
    assert control_warnings(controls(), CIRCUIT) == []


def test_the_issue_s_controls_warn_each_with_its_reason():
    # Zero ablation 2.18 and resample 1.13 against 0.145 for mean; 10 removable nodes of 40.
    bad = controls(
        ablation_agreement={"mean": 0.145, "zero": 2.18, "resample": 1.13},
        removable=[f"0.mlp.post_act[{i}]" for i in range(10)],
        random_model={"reached": True, "nodes": 50, "loss": 0.14, "full_loss": 1.4},
        nonsense={"reached": True, "nodes": 44, "loss": 0.1, "full_loss": 0.7},
        nonsense_flag=True,
    )
    checks = judge_controls(bad, CIRCUIT)
    assert {name for name, c in checks.items() if c["status"] == WARNING} == {"nonsense", "random_model", "minimality", "ablation_agreement"}
    assert "zero 2.180, resample 1.130" in checks["ablation_agreement"]["reason"]
    assert "0.145 under mean" in checks["ablation_agreement"]["reason"]
    assert "10 of 40 nodes (25%" in checks["minimality"]["reason"]


def test_thresholds_sit_where_they_are_documented():
    # Two removable nodes of 40 is 5%: not over it. Three is.
    two = judge_controls(controls(removable=["a", "b"]), CIRCUIT)["minimality"]
    three = judge_controls(controls(removable=["a", "b", "c"]), CIRCUIT)["minimality"]
    assert (two["status"], three["status"]) == (OK, WARNING)
    # Twice the circuit's own loss is the line; a loss under the target never warns.
    at = judge_controls(controls(ablation_agreement={"mean": 0.145, "zero": 0.29}), CIRCUIT)["ablation_agreement"]
    over = judge_controls(controls(ablation_agreement={"mean": 0.145, "zero": 0.3}), CIRCUIT)["ablation_agreement"]
    low = judge_controls(controls(ablation_agreement={"mean": 0.01, "zero": 0.1}), CIRCUIT)["ablation_agreement"]
    assert (at["status"], over["status"], low["status"]) == (OK, WARNING, OK)


def test_no_controls_judge_nothing():
    assert judge_controls(None, CIRCUIT) == {}


def prune_report(ctrl: dict) -> dict:
    return {"prune": "p", "task": "t", "circuit": CIRCUIT, "baseline": None, "controls": ctrl, "full_loss": 0.05, "empty_loss": 2.0}


def render(renderables, width: int = 80, terminal: bool = False) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None)
    for r in renderables:
        console.print(r)
    return out.getvalue()


def test_prune_table_shows_each_control_s_status():
    text = render(circuit_tables(prune_report(controls(removable=[f"n{i}" for i in range(10)]))), width=400)
    assert "minimality (drop one node)" in text and "warning: 10 of 40 nodes (25%" in text
    assert "ablation agreement" in text and "mean 0.145, zero 0.200, resample 0.160" in text


def test_control_warnings_show_in_evidence_lines_json_and_html():
    v = Verdict("size.nodes", "nodes <= 40", "size", 40, "<= 40", PASS, None, {})
    seed = {"seed": 0, "model_key": "a" * 20, "circuit_key": "b" * 20, "model_cached": True, "circuit_cached": False, "seconds": {}}
    bad = controls(ablation_agreement={"mean": 0.145, "zero": 2.18, "resample": 1.13})
    run = HypothesisResult("h", "p", "t", (ClaimResult(v, 1, 1, PASS, False),), CIRCUIT, bad, {"seeds": [seed]})
    lines = [line.plain for line in evidence_lines(run)]
    assert any(line.startswith("  warning: pruning control ablation agreement: the circuit's loss under zero 2.180") for line in lines)
    document = to_json(FileResult("x.circ", (run,)))
    checks = document["hypotheses"][0]["control_checks"]
    assert checks["ablation_agreement"]["status"] == WARNING and checks["minimality"]["status"] == OK
    [again] = from_json(json.loads(json.dumps(document)))
    html = to_html([again])
    assert "<td>ablation agreement</td>" in html and "warning: the circuit&#x27;s loss under zero 2.180" in html
    healthy = to_html([FileResult("x.circ", (attrs.evolve(run, controls=controls()),))])
    assert "warning: the circuit" not in healthy and "<span class='PASS'>ok</span>" in healthy


# ---------------------------------------------------------------- verify results


def verdict(claim: str, measured, threshold: str, status=PASS, evidence=None, kind="ablate") -> ClaimResult:
    v = Verdict(claim.split()[0] + "." + str(abs(hash(claim)) % 1000), claim, kind, measured, threshold, status, (0.4, 0.44), evidence or {})
    return ClaimResult(v, 1 if status == PASS else 0, 1, status, False)


ABLATE = {"unablated": {"value": 0.98, "lo": 0.97, "hi": 0.99, "n": 300}, "ablated": {"value": 0.56, "lo": 0.5, "hi": 0.6, "n": 300}}
SEED = {"seed": 0, "model_key": "a" * 20, "circuit_key": "b" * 20, "model_cached": True, "circuit_cached": False, "seconds": {}}


def run_result(claims, ctrl=None) -> HypothesisResult:
    return HypothesisResult("h", "p", "def_or_call", tuple(claims), CIRCUIT, ctrl, {"seeds": [SEED]})


def test_a_change_shows_the_metric_before_and_after():
    drop = verdict("ablate mover -> accuracy drops by >= 0.3", 0.42, "drops by >= 0.3", evidence=ABLATE)
    assert before_after(drop.verdict) == (0.98, 0.56)
    assert measured_text(drop.verdict) == "0.420 (0.980 -> 0.560)"
    moved = {"unchanged": {"value": 0.9}, "intervened": {"value": 0.3}}
    assert before_after(verdict("intervene x = 0 -> accuracy drops by >= 0.5", 0.6, "drops by >= 0.5", evidence=moved).verdict) == (0.9, 0.3)
    adversarial = {"unchanged_task": {"value": 0.95}, "variant_metric": 0.4}
    assert before_after(verdict("expect accuracy drops by >= 0.25", 0.55, "drops by >= 0.25", evidence=adversarial).verdict) == (0.95, 0.4)


def test_a_bound_on_the_metric_itself_shows_the_value_alone():
    bound = verdict("ablate circuit -> accuracy <= 0.6", 0.56, "<= 0.6", evidence=ABLATE)
    assert before_after(bound.verdict) is None and measured_text(bound.verdict) == "0.560"
    unmeasured = verdict("ablate mover -> accuracy drops by >= 0.3", None, "drops by >= 0.3", status=FAIL, evidence=ABLATE)
    assert measured_text(unmeasured.verdict) == "-"


LONG = [
    verdict("ablate mover -> accuracy drops by >= 0.3 when kind == \"def\" and depth == 2", 0.42, "drops by >= 0.3", evidence=ABLATE),
    verdict("role mover : attn head in layer 0 where attends(to: token == \"(\", at: answer) > 0.5", 3, ">= 1 node", kind="role"),
]


def printed(run: HypothesisResult, width: int, terminal: bool) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None)
    print_hypothesis(console, run)
    return out.getvalue().splitlines()


def test_redirected_output_prints_each_claim_on_one_line_at_the_table_s_width():
    lines = printed(run_result(LONG), width=80, terminal=False)
    for claim in LONG:
        [row] = [line for line in lines if claim.verdict.claim in line]
        assert "PASS" in row
    assert any("0.420 (0.980 -> 0.560)" in line for line in lines)
    assert max(map(len, lines)) > 80


def test_a_narrow_terminal_gets_a_compact_layout_with_nothing_folded():
    lines = printed(run_result(LONG), width=80, terminal=True)
    assert not any(line.startswith(("┏", "┃")) for line in lines), lines
    claim_lines = [line for line in lines if line.strip().startswith("PASS")]
    assert [line.split("PASS", 1)[1].strip() for line in claim_lines] == [c.verdict.claim for c in LONG]
    assert any(line.strip().startswith("measured 0.420 (0.980 -> 0.560)") for line in lines)


def test_a_wide_terminal_gets_the_table():
    lines = printed(run_result(LONG), width=220, terminal=True)
    assert any(line.startswith("┏") for line in lines)
    assert sum(LONG[0].verdict.claim in line for line in lines) == 1


def test_diagnostics_are_not_wrapped_at_80_columns(monkeypatch, tmp_path):
    import importlib

    cli = importlib.import_module("circuitdsl.cli.app")  # the module; `circuitdsl.cli.app` the attribute is the typer app
    from circuitdsl.diagnostics import CircError
    from circuitdsl.pipeline import check_spec

    spec = tmp_path / "long.circ"
    spec.write_text('task t { a = choice(1, 2)  prompt = "a prompt long enough to pass eighty columns ${a}"  answer = zzz_unknown }\n')
    out = io.StringIO()
    monkeypatch.setattr(cli, "stderr", Console(file=out, width=80, color_system=None))
    try:
        check_spec(spec)
    except CircError as err:
        cli.print_error(err)
    lines = out.getvalue().splitlines()
    source = next(line for line in lines if line.startswith("1 | "))
    carets = next(line for line in lines if line.strip().endswith("^"))
    assert len(source) > 80 and carets.index("^") == source.index("zzz_unknown")
def test_warnings_show_in_evidence_lines_json_and_html():
    warned = verdict(
        "role mover : attn head in layer 0 where reads(x)", 4, ">= 1 node", kind="role",
        evidence={"summary": "binds 0.attn.h0, 0.attn.h1", "warnings": ["binds every one of its 4 candidates"]},
    )
    bad = controls(ablation_agreement={"mean": 0.145, "zero": 2.18, "resample": 1.13})
    run = run_result([warned], bad)
    lines = [line.plain for line in evidence_lines(run)]
    assert "    warning: binds every one of its 4 candidates" in lines
    assert any(line.startswith("  warning: pruning control ablation agreement: the circuit's loss under zero 2.180") for line in lines)
    document = to_json(FileResult("x.circ", (run,)))
    checks = document["hypotheses"][0]["control_checks"]
    assert checks["ablation_agreement"]["status"] == WARNING and checks["minimality"]["status"] == OK
    # A saved document reads back and renders the same.
    [again] = from_json(json.loads(json.dumps(document)))
    html = to_html([again])
    assert "warning: binds every one of its 4 candidates" in html
    assert "<td>ablation agreement</td>" in html and "warning: the circuit&#x27;s loss under zero 2.180" in html
    healthy = to_html([FileResult("x.circ", (run_result([warned], controls()),))])
    assert "warning: the circuit" not in healthy and "<span class='PASS'>ok</span>" in healthy


