"""Verification results -> what people read: rich tables and a self-contained HTML page.

Rendered from :mod:`circuitdsl.verification.results` alone (plain data, no
torch), so a saved ``--json`` document renders the same as a fresh run.

The HTML report embeds everything (circuit picture, curves as inline SVG,
tables) so it opens from a CI artifact with no network and no CDN.
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from circuitdsl.report.bridges import bridge_tables, bridges_html
from circuitdsl.report.explorer import explorer_html
from circuitdsl.report.width import natural_width, print_wide
from circuitdsl.verification.controls import LABELS, WARNING, control_warnings, judge_controls
from circuitdsl.verification.results import ClaimResult, FileResult, HypothesisResult
from circuitdsl.verification.verdict import FAIL, INCONCLUSIVE, PASS, Verdict

STYLE = {PASS: "bold green", FAIL: "bold red", INCONCLUSIVE: "bold yellow"}


def fmt_number(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e6):
        return str(int(value))
    return f"{value:.3f}" if abs(value) >= 1e-3 else f"{value:.2e}"


def fmt_interval(interval) -> str:
    if not interval:
        return ""
    lo, hi = interval
    return f"[{fmt_number(lo)}, {fmt_number(hi)}]"


def status_text(claim: ClaimResult) -> Text:
    text = Text(claim.status, style=STYLE[claim.status])
    if claim.vacuous:
        text.append(" vacuous", style="yellow")
    return text


#: Evidence keys holding the metric without and with the change, per claim kind.
_BEFORE_AFTER = (("unablated", "ablated"), ("unchanged", "intervened"))


def before_after(verdict: Verdict) -> tuple[float, float] | None:
    """The metric before and after the change, for a claim that bounds a change (`drops by`, `rises by`)."""
    if not verdict.threshold.startswith(("drops by", "rises by")):
        return None
    evidence = verdict.evidence or {}
    for before, after in _BEFORE_AFTER:
        if isinstance(evidence.get(before), dict) and isinstance(evidence.get(after), dict):
            return evidence[before]["value"], evidence[after]["value"]
    if isinstance(evidence.get("unchanged_task"), dict) and evidence.get("variant_metric") is not None:
        return evidence["unchanged_task"]["value"], evidence["variant_metric"]
    return None


def measured_text(verdict: Verdict) -> str:
    """The measured value; for a change, with the metric before and after it: ``0.420 (0.980 -> 0.560)``."""
    shown = fmt_number(verdict.measured)
    pair = before_after(verdict) if verdict.measured is not None else None
    if pair is not None:
        shown += f" ({fmt_number(pair[0])} -> {fmt_number(pair[1])})"
    return shown


def _title(run: HypothesisResult) -> str:
    return f"hypothesis `{run.name}` on `{run.prune}` (task `{run.task}`)"


def circuit_sizes(circuit: dict) -> str:
    """``", 40 residual nodes over 21 channels (0.attn.q 3, ...)"``; empty for reports from before these counts."""
    if "residual_nodes" not in circuit:
        return ""
    sites = ", ".join(f"{site} {count}" for site, count in (circuit.get("per_site") or {}).items())
    return f", {circuit['residual_nodes']} residual nodes over {circuit['residual_channels']} channels ({sites})"


def _caption(run: HypothesisResult) -> str:
    first, circuit = run.record["seeds"][0], run.circuit
    return (
        f"circuit: {circuit['node_count']} nodes, {circuit['edge_count']} edges, loss {circuit['loss']:.3f} "
        f"(target {circuit['target']:g}){circuit_sizes(circuit)}; model {first['model_key'][:10]}"
        f"{' (cached)' if first['model_cached'] else ''}, circuit {first['circuit_key'][:10]}"
        f"{' (cached)' if first['circuit_cached'] else ''}"
        f"{'; verdicts read from the cache (--remeasure measures again)' if first.get('verdicts_cached') else ''}"
    )


def hypothesis_table(run: HypothesisResult, *, fold_claims: bool = True) -> Table:
    """Every claim in a row. ``fold_claims=False`` never folds a claim's text (the table is then as wide as it needs)."""
    seeds = len(run.record["seeds"])
    table = Table(title=_title(run), title_justify="left", show_lines=False)
    if fold_claims:
        table.add_column("claim", overflow="fold", max_width=60)
    else:
        table.add_column("claim", no_wrap=True)
    table.add_column("measured", justify="right", no_wrap=True)
    table.add_column("interval", justify="right", no_wrap=True)
    table.add_column("threshold", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    if seeds > 1:
        table.add_column("seeds held", justify="right")
    for claim in run.claims:
        v = claim.verdict
        row = [v.claim, measured_text(v), fmt_interval(v.interval), v.threshold, status_text(claim)]
        if seeds > 1:
            row.append(f"{claim.held}/{claim.seeds}")
        table.add_row(*row)
    table.caption = _caption(run)
    return table


def hypothesis_lines(run: HypothesisResult) -> list[Text]:
    """The compact layout of the same table, for a narrow terminal: a claim per line, its figures below it."""
    seeds = len(run.record["seeds"])
    lines = [Text(_title(run), style="italic")]
    for claim in run.claims:
        v = claim.verdict
        lines.append(Text.assemble("  ", status_text(claim), "  ", v.claim))
        figures = [f"measured {measured_text(v)}"]
        if v.interval:
            figures.append(f"interval {fmt_interval(v.interval)}")
        figures.append(f"threshold {v.threshold}")
        if seeds > 1:
            figures.append(f"seeds held {claim.held}/{claim.seeds}")
        lines.append(Text("      " + "  ".join(figures), style="dim"))
    lines.append(Text(_caption(run), style="dim"))
    return lines


def print_hypothesis(console: Console, run: HypothesisResult) -> None:
    """The table at its natural width when output is not a terminal (a log wraps nothing); on a
    terminal the table when it fits, else the compact layout, never a claim folded over lines."""
    table = hypothesis_table(run, fold_claims=False)
    if not console.is_terminal or natural_width(console, table) <= console.width:
        print_wide(console, table)
    else:
        for line in hypothesis_lines(run):
            console.print(line, soft_wrap=True)
    for bridge in bridge_tables(run.bridges or {}):
        print_wide(console, bridge)


def evidence_lines(run: HypothesisResult) -> list[Text]:
    """The evidence behind each claim that has some: role bindings, curves, failed candidates."""
    lines = []
    for claim in run.claims:
        evidence = claim.verdict.evidence or {}
        note = evidence.get("summary")
        if note:
            lines.append(Text.assemble((f"  {claim.verdict.claim}: ", "dim"), str(note)))
        curve = evidence.get("curve")
        if curve:
            points = ", ".join(
                f"{p['x']}: {fmt_number(p['value'])}" + (" (not claimed)" if p.get("status") == "not claimed" else "")
                for p in curve
            )
            lines.append(Text.assemble(("    curve ", "dim"), points))
        for warning in evidence.get("warnings") or ():
            lines.append(Text.assemble(("    warning: ", "yellow"), str(warning)))
        if claim.vacuous:
            control = evidence.get("control")
            lines.append(Text(f"    also holds on the untrained control model ({control}): says nothing about training", style="yellow"))
    for label, reason in control_warnings(run.controls, run.circuit):
        lines.append(Text.assemble(("  warning: ", "yellow"), (f"pruning control {label}: ", "dim"), reason))
    return lines


# ---------------------------------------------------------------- HTML

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; } td, th { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .claim { font-family: ui-monospace, monospace; font-size: 13px; }
.PASS { color: #0a7d28; font-weight: bold; } .FAIL { color: #c0152b; font-weight: bold; } .INCONCLUSIVE { color: #a66b00; font-weight: bold; }
.vacuous, .warning { color: #a66b00; } .before-after { color: #666; } .picture { overflow-x: auto; border: 1px solid #ddd; padding: 8px; }
.curves { display: flex; flex-wrap: wrap; gap: 16px; }
"""


def to_html(files: Sequence[FileResult]) -> str:
    """One page for every file verified in a run."""
    title = ", ".join(f.file for f in files)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>circ verify: {escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for result in files:
        parts.append(f"<h1>circ verify <code>{escape(result.file)}</code></h1>")
        parts.extend(_hypothesis_html(run, result.strict) for run in result.hypotheses)
    parts.append("</body></html>")
    return "\n".join(parts)


def _hypothesis_html(run: HypothesisResult, strict: bool) -> str:
    failed = run.failed(strict)
    verdict = "refuted" if run.refuted else "fails under --strict" if failed else "holds"
    out = [f"<h2>hypothesis <code>{escape(run.name)}</code>: <span class='{FAIL if failed else PASS}'>{verdict}</span></h2>"]
    out.append("<table><tr><th>id</th><th>claim</th><th>measured</th><th>interval</th><th>threshold</th><th>verdict</th><th>seeds held</th></tr>")
    for claim in run.claims:
        v = claim.verdict
        vac = " <span class='vacuous'>vacuous</span>" if claim.vacuous else ""
        warnings = "".join(f"<div class='warning'>warning: {escape(str(w))}</div>" for w in (v.evidence or {}).get("warnings") or ())
        pair = before_after(v) if v.measured is not None else None
        change = f" <span class='before-after'>({fmt_number(pair[0])} &rarr; {fmt_number(pair[1])})</span>" if pair else ""
        out.append(
            f"<tr id='{escape(run.name)}.{escape(claim.id)}'><td><code>{escape(claim.id)}</code></td>"
            f"<td class='claim'>{escape(v.claim)}{warnings}</td><td class='num'>{fmt_number(v.measured)}{change}</td>"
            f"<td class='num'>{fmt_interval(v.interval)}</td><td class='num'>{escape(v.threshold)}</td>"
            f"<td class='{claim.status}'>{claim.status}{vac}</td><td class='num'>{claim.held}/{claim.seeds}</td></tr>"
        )
    out.append("</table>")
    roles = _roles(run)
    if roles:
        out.append("<h3>role bindings</h3><table><tr><th>role</th><th>nodes</th></tr>")
        for role, nodes in roles.items():
            out.append(f"<tr><td><code>{escape(role)}</code></td><td><code>{escape(', '.join(nodes))}</code></td></tr>")
        out.append("</table>")
    out.append(f"<h3>circuit ({run.circuit['node_count']} nodes, {run.circuit['edge_count']} edges"
               f"{escape(circuit_sizes(run.circuit))})</h3>")
    if run.picture_svg:
        out.append(f"<div class='picture'>{run.picture_svg}</div>")
    curves = [(c.verdict.claim, c.verdict.evidence["curve"]) for c in run.claims if (c.verdict.evidence or {}).get("curve")]
    if curves:
        out.append("<h3>adversarial curves</h3><div class='curves'>")
        out.extend(curve_svg(title, points) for title, points in curves)
        out.append("</div>")
    out.append(explorer_html(run.circuit, run.explorer, roles))
    out.append(bridges_html(run.bridges or {}))
    out.append(_controls_html(run.controls, run.circuit))
    return "\n".join(out)


def _roles(run: HypothesisResult) -> dict[str, list[str]]:
    roles = {}
    for claim in run.claims:
        evidence = claim.verdict.evidence or {}
        if claim.verdict.kind == "role" and evidence.get("role"):
            roles[evidence["role"]] = list(evidence.get("nodes") or [])
    return roles


def _controls_html(controls: dict | None, circuit: dict) -> str:
    checks = judge_controls(controls, circuit)
    if not checks:
        return ""
    rows = ["<h3>pruning controls</h3><table><tr><th>control</th><th>result</th><th>status</th></tr>"]
    for name, check in checks.items():
        status = (
            f"<span class='warning'>warning: {escape(check['reason'])}</span>"
            if check["status"] == WARNING
            else f"<span class='{PASS}'>ok</span>"
        )
        rows.append(f"<tr><td>{escape(LABELS[name])}</td><td>{escape(check['result'])}</td><td>{status}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def curve_svg(title: str, points: list[dict], width: int = 420, height: int = 240) -> str:
    """A line chart of an adversarial curve with its interval band, as inline SVG."""
    xs = [float(p["x"]) for p in points]
    ys = [float(p["value"]) for p in points]
    los = [float(p.get("lo", p["value"])) for p in points]
    his = [float(p.get("hi", p["value"])) for p in points]
    left, right, top, bottom = 48, 12, 28, 36
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(min(los), 0.0), max(max(his), 1.0) if max(his) <= 1 else max(his)
    if math.isclose(y0, y1):
        y1 = y0 + 1

    def px(x):
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def py(y):
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    band = " ".join(f"{px(x):.1f},{py(h):.1f}" for x, h in zip(xs, his))
    band += " " + " ".join(f"{px(x):.1f},{py(lo):.1f}" for x, lo in reversed(list(zip(xs, los))))
    line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
    ticks = "".join(
        f"<text x='{px(x):.1f}' y='{height - bottom + 14}' font-size='10' text-anchor='middle'>{fmt_number(x)}</text>" for x in xs
    )
    yticks = "".join(
        f"<text x='{left - 4}' y='{py(y) + 3:.1f}' font-size='10' text-anchor='end'>{fmt_number(y)}</text>"
        f"<line x1='{left}' x2='{width - right}' y1='{py(y):.1f}' y2='{py(y):.1f}' stroke='#eee'/>"
        for y in (y0, (y0 + y1) / 2, y1)
    )
    # Values outside the claim's `when` are hollow: measured, not claimed.
    dots = "".join(
        f"<circle cx='{px(x):.1f}' cy='{py(y):.1f}' r='3' "
        + ("fill='white' stroke='#1f5fbf'/>" if p.get("status") == "not claimed" else "fill='#1f5fbf'/>")
        for x, y, p in zip(xs, ys, points)
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'>"
        f"<text x='{left}' y='16' font-size='11' font-family='monospace'>{escape(title[:70])}</text>{yticks}"
        f"<polygon points='{band}' fill='#1f5fbf' fill-opacity='0.15'/>"
        f"<polyline points='{line}' fill='none' stroke='#1f5fbf' stroke-width='2'/>{dots}{ticks}"
        f"<line x1='{left}' x2='{left}' y1='{top}' y2='{height - bottom}' stroke='#999'/>"
        f"<line x1='{left}' x2='{width - right}' y1='{height - bottom}' y2='{height - bottom}' stroke='#999'/></svg>"
    )
