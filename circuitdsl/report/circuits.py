"""Trained models and pruned circuits -> rich tables (from their JSON-ready reports, no torch)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from circuitdsl.verification.controls import LABELS, OK, judge_controls


def model_table(report: dict) -> Table:
    origin = "from cache" if report["cached"] else f"trained in {report['seconds']:.1f} s"
    table = Table(title=f"model `{report['train']}` ({origin}, key {report['key']})", title_justify="left")
    table.add_column("task")
    table.add_column("held-out accuracy", justify="right")
    table.add_column("loss", justify="right")
    table.add_column("examples", justify="right")
    for task, m in report["metrics"].items():
        table.add_row(task, f"{m['accuracy']:.1%}", f"{m['loss']:.4f}", str(m["examples"]))
    densities = sorted(set(round(d, 6) for d in report["density"].values()))
    table.caption = f"weight density of sparsified matrices: {', '.join(f'{d:.4g}' for d in densities)}; saved in {report['path']}"
    return table


def circuit_tables(report: dict) -> list:
    circuit, baseline, controls = report["circuit"], report["baseline"], report["controls"]
    origin = "from cache" if report.get("cached") else "pruned now"
    title = f"circuit of `{report['prune']}` on task `{report['task']}` ({origin})"
    summary = Table(title=title, title_justify="left")
    summary.add_column("")
    summary.add_column("learned" if circuit["method"] == "learned" else circuit["method"], justify="right")
    if baseline:
        summary.add_column("attribution", justify="right")
    rows = [
        ("nodes", lambda c: f"{c['node_count']} of {c['total_nodes']}"),
        ("edges", lambda c: str(c["edge_count"])),
        ("nodes per layer", lambda c: " / ".join(str(v) for v in c["per_layer"].values())),
        (f"loss, circuit only (target {circuit['target']:g})", lambda c: f"{c['loss']:.4f}"),
        ("loss after logit calibration", lambda c: f"{c['calibrated_loss']:.4f}"),
        ("accuracy, circuit only", lambda c: f"{c['accuracy']:.1%}"),
    ]
    for label, cell in rows:
        summary.add_row(label, cell(circuit), *([cell(baseline)] if baseline else []))
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
        table = Table(title="controls", title_justify="left")
        for column in ("control", "result", "verdict"):
            table.add_column(column)
        for name, check in judge_controls(controls, circuit).items():
            verdict = "[green]ok[/]" if check["status"] == OK else f"[yellow]warning:[/] {escape(check['reason'])}"
            table.add_row(LABELS[name], escape(check["result"]), verdict)
        out.append(table)
    return out
