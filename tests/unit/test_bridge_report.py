"""Bridge tables (circuitdsl/report/bridges.py) from plain report dicts: no torch, no model."""

from __future__ import annotations

from rich.console import Console

from circuitdsl.report.bridges import bridge_table, bridges_html, mean

METRICS = {
    "0.attn": {"nmse_encoder": 0.0, "nmse_decoder": 0.01, "kl_dense_to_sparse": 0.002, "kl_sparse_to_dense": 0.0,
               "accuracy_dense_to_sparse": 1.0, "accuracy_sparse_to_dense": 0.995},
    "final": {"nmse_encoder": 0.13, "nmse_decoder": 0.25, "kl_dense_to_sparse": 0.004, "kl_sparse_to_dense": 0.05,
              "accuracy_dense_to_sparse": 0.98, "accuracy_sparse_to_dense": 0.9},
}


def render(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_a_row_per_boundary_with_every_figure():
    text = render(bridge_table("b", {"key": "0123456789abcdef", "cached": False, "seconds": 12.34, "metrics": METRICS}))
    assert "bridge `b` (fitted in 12.3 s, key 0123456789)" in text
    rows = [line for line in text.splitlines() if "0.attn" in line or "final" in line]
    assert len(rows) == 2
    assert all(figure in rows[1] for figure in ("0.130", "0.250", "0.0040", "0.0500", "98.0%", "90.0%")), rows[1]
    assert "control" not in text


def test_the_control_bridge_is_a_row_of_means():
    control = {name: dict(m, nmse_decoder=0.5 + i) for i, (name, m) in enumerate(METRICS.items())}
    text = render(bridge_table("b", {"key": "k", "cached": True, "metrics": METRICS, "control_metrics": control}))
    assert "from cache" in text
    row = next(line for line in text.splitlines() if "control, mean" in line)
    assert f"{mean(control, 'nmse_decoder'):.3f}" == "1.000" and "1.000" in row


def test_html_has_the_same_rows_escaped():
    html = bridges_html({"<b>": {"key": "k", "cached": True, "metrics": METRICS}})
    assert "<code>&lt;b&gt;</code>" in html and html.count("<tr>") == 3
    assert bridges_html({}) == ""
