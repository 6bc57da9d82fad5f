"""Trained models and pruned circuits -> rich tables (from their JSON-ready reports, no torch)."""

from __future__ import annotations

import math

from rich.markup import escape
from rich.table import Table

from circuitdsl.verification.controls import LABELS, OK, judge_controls


def model_table(report: dict) -> Table:
    origin = "from cache" if report["cached"] else f"trained in {report['seconds']:.1f} s"
    table = Table(title=f"model `{report['train']}` ({origin}, key {report['key']})", title_justify="left", caption_justify="left")
    table.add_column("task")
    table.add_column("held-out accuracy", justify="right")
    table.add_column("loss", justify="right")
    table.add_column("examples", justify="right")
    for task, m in report["metrics"].items():
        table.add_row(task, f"{m['accuracy']:.1%}", f"{m['loss']:.4f}", str(m["examples"]))
    densities = sorted(set(round(d, 6) for d in report["density"].values()))
    table.caption = f"weight density of sparsified matrices: {', '.join(f'{d:.4g}' for d in densities)}; saved in {report['path']}"
    if report.get("finished_early"):
        table.caption = f"stopping rule: {report['finished_early']}; {table.caption}"
    return table


#: Verdicts of `circ train --quick`, per task, from how far the held-out metrics have come
#: from chance (guessing uniformly among the task's n answers: loss ln(n), accuracy 1/n)
#: towards perfect: the larger of 1 - loss / chance loss and the accuracy's share of the
#: way from 1/n to 1.
LEARNING, NOT_YET, AT_CHANCE = "learning", "not yet", "at chance"
#: Under this the task is at chance: loss at 0.9x chance's or more is the runtime's own test
#: for a collapsed task, and an accuracy so little above chance says no more.
AT_CHANCE_GAIN = 0.1
#: At or over it the task is being learned: halfway from chance in a tenth of the recipe,
#: so the full run can be expected to finish the job.
LEARNING_GAIN = 0.5


def learning_gain(metrics: dict) -> float:
    """How far one task's ``loss`` and ``accuracy`` have come from chance towards perfect (0 to 1)."""
    chance_loss = metrics["chance_loss"]
    if chance_loss <= 0:  # one possible answer: nothing to learn
        return 1.0
    chance_accuracy = math.exp(-chance_loss)
    by_loss = 1 - metrics["loss"] / chance_loss
    by_accuracy = (metrics["accuracy"] - chance_accuracy) / (1 - chance_accuracy)
    return max(by_loss, by_accuracy)


def learning_verdict(metrics: dict) -> str:
    """``learning``, ``not yet`` or ``at chance``, from one task's held-out metrics."""
    gain = learning_gain(metrics)
    return AT_CHANCE if gain < AT_CHANCE_GAIN else LEARNING if gain >= LEARNING_GAIN else NOT_YET


def quick_table(report: dict) -> Table:
    """`circ train --quick`: per task, held-out accuracy and loss against chance, and a verdict."""
    title = (
        f"quick check of `{report['train']}`: {report['steps']} of {report['recipe_steps']} steps in "
        f"{report['seconds']:.1f} s (not cached)"
    )
    table = Table(title=title, title_justify="left", caption_justify="left")
    for column in ("task", "held-out accuracy", "chance", "loss", "chance loss", "from chance", "verdict"):
        table.add_column(column, justify="left" if column in ("task", "verdict") else "right")
    style = {LEARNING: "green", NOT_YET: "yellow", AT_CHANCE: "red"}
    for task, m in report["tasks"].items():
        table.add_row(
            task, f"{m['accuracy']:.1%}", f"{m['chance_accuracy']:.1%}", f"{m['loss']:.3f}", f"{m['chance_loss']:.3f}",
            f"{max(0.0, learning_gain(m)):.0%}", f"[{style[m['verdict']]}]{m['verdict']}[/]",
        )
    if report.get("stopped"):
        table.caption = f"[red]stopped:[/] {escape(report['stopped'])}"
    else:
        table.caption = f"learning: {LEARNING_GAIN:.0%}+ of the way from chance; at chance: under {AT_CHANCE_GAIN:.0%}"
    return table


def _residual(c: dict) -> str:
    # Reports cached before these counts existed have no such keys.
    if "residual_nodes" not in c:
        return "-"
    return f"{c['residual_nodes']} / {c['residual_channels']}"


def _per_site(c: dict) -> str:
    return ", ".join(f"{site} {count}" for site, count in (c.get("per_site") or {}).items()) or "-"


def circuit_tables(report: dict) -> list:
    circuit, baseline, controls = report["circuit"], report["baseline"], report["controls"]
    origin = "from cache" if report.get("cached") else "pruned now"
    title = f"circuit of `{report['prune']}` on task `{report['task']}` ({origin})"
    summary = Table(title=title, title_justify="left", caption_justify="left")
    summary.add_column("")
    summary.add_column("learned" if circuit["method"] == "learned" else circuit["method"], justify="right")
    if baseline:
        summary.add_column("attribution", justify="right")
    rows = [
        ("nodes", lambda c: f"{c['node_count']} of {c['total_nodes']}"),
        ("edges", lambda c: str(c["edge_count"])),
        ("nodes per layer", lambda c: " / ".join(str(v) for v in c["per_layer"].values())),
        ("residual nodes / distinct channels", _residual),
        ("nodes per site", _per_site),
        (f"loss, circuit only (target {circuit['target']:g})", lambda c: f"{c['loss']:.4f}"),
        ("loss after logit calibration", lambda c: f"{c['calibrated_loss']:.4f}"),
        ("accuracy, circuit only", lambda c: f"{c['accuracy']:.1%}"),
    ]
    options = f"{circuit.get('loss_kind', 'ce')} loss, {circuit.get('norm', 'live')} norms, {circuit['ablation']} ablation"
    rows.insert(3, ("options", lambda c: options))
    for label, cell in rows:
        summary.add_row(label, cell(circuit), *([cell(baseline)] if baseline else []))
    if report.get("cleanup"):
        steps = "; ".join(
            f"{r['start']} -> singles {r['singles']} -> pairs {r['pairs']} -> retrain {r['retrain']}" for r in report["cleanup"]
        )
        summary.add_row("cleanup rounds", steps, *([""] if baseline else []))
    caption = [f"full model loss {report['full_loss']:.4f}; everything ablated {report['empty_loss']:.4f}"]
    if report.get("circuit_ablated_loss") is not None:
        caption.append(f"circuit ablated {report['circuit_ablated_loss']:.4f}")
    if report.get("size_ratio"):
        caption.append(f"learned circuit {report['size_ratio']:.1f}x smaller than attribution's")
    if report.get("files"):
        caption.append(f"written to {report['files']}/circuit.{{json,dot,svg}}")
    summary.caption = "; ".join(caption)
    out = [summary]
    if controls:
        table = Table(title="controls", title_justify="left", caption_justify="left")
        for column in ("control", "result", "verdict"):
            table.add_column(column)
        for name, check in judge_controls(controls, circuit).items():
            verdict = "[green]ok[/]" if check["status"] == OK else f"[yellow]warning:[/] {escape(check['reason'])}"
            table.add_row(LABELS[name], escape(check["result"]), verdict)
        out.append(table)
    return out
