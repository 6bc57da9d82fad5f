"""Bridge reports -> tables and HTML: how well a bridge joins the dense model to the sparse one, per boundary.

A report is the plain dict ``circ verify --json`` carries under a hypothesis's
``bridges`` (and ``circ bridge --json`` prints): ``metrics`` per boundary
(``nmse_encoder``, ``nmse_decoder``, ``kl_dense_to_sparse``, ``kl_sparse_to_dense``,
``accuracy_dense_to_sparse``, ``accuracy_sparse_to_dense``), ``key``, ``cached``,
``seconds``, and when the untrained-model control was fitted, ``control_metrics``
and ``control_key``. No torch: a saved document renders the same as a fresh run.
"""

from __future__ import annotations

from html import escape
from typing import Mapping

from rich.table import Table

#: (column heading, metric key, format) in the order the table shows them.
COLUMNS = (
    ("NMSE enc", "nmse_encoder", "{:.3f}"),
    ("NMSE dec", "nmse_decoder", "{:.3f}"),
    ("KL d->s", "kl_dense_to_sparse", "{:.4f}"),
    ("KL s->d", "kl_sparse_to_dense", "{:.4f}"),
    ("acc d->s", "accuracy_dense_to_sparse", "{:.1%}"),
    ("acc s->d", "accuracy_sparse_to_dense", "{:.1%}"),
)


def mean(metrics: Mapping[str, Mapping[str, float]], key: str) -> float:
    values = [m[key] for m in metrics.values()]
    return sum(values) / len(values) if values else float("nan")


def _cell(fmt: str, value) -> str:
    return "-" if value is None else fmt.format(value)


def _origin(report: Mapping) -> str:
    if report.get("cached"):
        return "from cache"
    seconds = report.get("seconds")
    return "fitted" if seconds is None else f"fitted in {seconds:.1f} s"


def bridge_table(name: str, report: Mapping) -> Table:
    """One row per sublayer boundary: both maps' NMSE, both hybrid passes' KL and answer accuracy."""
    key = str(report.get("key", ""))[:10]
    table = Table(title=f"bridge `{name}` ({_origin(report)}, key {key})", title_justify="left")
    table.add_column("boundary")
    for heading, _, _ in COLUMNS:
        table.add_column(heading, justify="right")
    for boundary, m in report["metrics"].items():
        table.add_row(boundary, *(_cell(fmt, m.get(metric)) for _, metric, fmt in COLUMNS))
    control = report.get("control_metrics")
    if control:
        # The same fit against the untrained sparse model: what a bridge achieves with nothing learned to map.
        table.add_section()
        table.add_row("control, mean", *(_cell(fmt, mean(control, metric)) for _, metric, fmt in COLUMNS), style="dim")
    return table


def bridge_tables(bridges: Mapping[str, Mapping]) -> list[Table]:
    return [bridge_table(name, report) for name, report in bridges.items()]


def bridges_html(bridges: Mapping[str, Mapping]) -> str:
    """The same tables for the HTML report; empty when no claim went through a bridge."""
    out = []
    for name, report in bridges.items():
        out.append(f"<h3>bridge <code>{escape(name)}</code> ({escape(_origin(report))})</h3>")
        out.append("<table><tr><th>boundary</th>" + "".join(f"<th>{escape(h)}</th>" for h, _, _ in COLUMNS) + "</tr>")
        for boundary, m in report["metrics"].items():
            cells = "".join(f"<td class='num'>{escape(_cell(fmt, m.get(metric)))}</td>" for _, metric, fmt in COLUMNS)
            out.append(f"<tr><td><code>{escape(boundary)}</code></td>{cells}</tr>")
        control = report.get("control_metrics")
        if control:
            cells = "".join(f"<td class='num'>{escape(_cell(fmt, mean(control, metric)))}</td>" for _, metric, fmt in COLUMNS)
            out.append(f"<tr class='control'><td>control (untrained sparse model), mean</td>{cells}</tr>")
        out.append("</table>")
    return "\n".join(out)
