"""The circuit explorer in a terminal: an overview of every node, and per node its examples, latent split and edges.

Every table fits 80 columns: a prompt is shown as a window around its
highlighted token (``…[1, ["⟦2⟧, 3]  → ]]``), so nothing folds.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

#: Characters of a prompt shown before and after the highlighted token.
BEFORE, AFTER = 26, 8
#: Edges listed per direction before "and N more".
EDGES_SHOWN = 6


def _num(x: float) -> str:
    return f"{x:.3f}" if x == 0 or 1e-3 <= abs(x) < 1e5 else f"{x:.2e}"


def _shown(token: str) -> str:
    return token.replace("\n", "↵").replace("\t", "⇥")


def snippet(example: dict) -> Text:
    """The prompt around the highlighted token, the token marked ⟦so⟧ (and in reverse video), then the answer."""
    tokens, pos = example["tokens"], example["position"]
    left = "".join(_shown(t) for t in tokens[:pos])
    right = "".join(_shown(t) for t in tokens[pos + 1 :])
    if len(left) > BEFORE:
        left = "…" + left[-(BEFORE - 1) :]
    if len(right) > AFTER:
        right = right[: AFTER - 1] + "…"
    text = Text(left)
    text.append("⟦" + _shown(tokens[pos]) + "⟧", style="reverse bold")
    text.append(right)
    text.append(f"  → {_shown(example['answer'])}", style="dim")
    return text


def tracked(info: dict) -> str:
    """The latent variable that explains most of the node's variance, with its eta squared."""
    if not info["latents"]:
        return "-"
    name, split = max(sorted(info["latents"].items()), key=lambda item: item[1]["eta2"])
    return f"{name} η² {split['eta2']:.2f}"


def overview_table(title: str, explorer: dict, roles: dict[str, str]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("node", no_wrap=True)
    table.add_column("role", max_width=12, overflow="ellipsis", no_wrap=True)
    table.add_column("mean", justify="right", no_wrap=True)
    table.add_column("peak", justify="right", no_wrap=True)
    table.add_column("tracks", no_wrap=True, max_width=20, overflow="ellipsis")
    table.add_column("in", justify="right")
    table.add_column("out", justify="right")
    for name, info in explorer["nodes"].items():
        top = info["top"].get("task") or []
        stats = info["stats"].get("task", {})
        table.add_row(
            name, roles.get(name, ""), _num(stats.get("mean", 0.0)), _num(top[0]["value"]) if top else "-",
            tracked(info), str(len(info["in"])), str(len(info["out"])),
        )
    samples = explorer.get("samples", {})
    table.caption = (
        f"on {samples.get('task')} held-out task prompts; peak: the largest-magnitude activation; "
        "tracks: the latent variable explaining most of the activation at the answer"
    )
    return table


def node_tables(name: str, info: dict, role: str | None, task: str) -> list:
    """What ``circ explain --node`` prints for one node."""
    out: list = [Text(f"\n{name}" + (f"  ({role})" if role else ""), style="bold")]
    for source, label in (("task", f"{task} prompts"), ("mixture", "training-mixture prompts")):
        examples = info["top"].get(source)
        if not examples:
            continue
        table = Table(title=f"top examples: {label}", title_justify="left")
        table.add_column("act", justify="right", no_wrap=True)
        if source == "mixture":
            table.add_column("task", no_wrap=True, max_width=14, overflow="ellipsis")
        table.add_column("prompt (token ⟦highlighted⟧) → answer", no_wrap=True)
        for ex in examples:
            row = [_num(ex["value"])] + ([ex["task"]] if source == "mixture" else []) + [snippet(ex)]
            table.add_row(*row)
        out.append(table)
    if info["latents"]:
        table = Table(title="activation at the answer, by latent variable", title_justify="left")
        for column, justify in (("variable", "left"), ("η²", "right"), ("value", "left"), ("n", "right"), ("mean", "right"), ("std", "right")):
            table.add_column(column, justify=justify, no_wrap=True, max_width=16 if column in ("variable", "value") else None, overflow="ellipsis")
        for variable, split in sorted(info["latents"].items(), key=lambda item: (-item[1]["eta2"], item[0])):
            for i, row in enumerate(split["values"]):
                first = i == 0
                table.add_row(
                    variable if first else "", f"{split['eta2']:.2f}" if first else "", row["value"], str(row["n"]),
                    _num(row["mean"]), _num(row["std"]), end_section=i == len(split["values"]) - 1,
                )
        out.append(table)
    for variable, why in sorted(info.get("skipped_latents", {}).items()):
        out.append(Text(f"  {variable}: not split ({why})", style="dim"))
    table = Table(title="edges", title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("node", no_wrap=True)
    table.add_column("weight", justify="right", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    for direction, edges in (("in", info["in"]), ("out", info["out"])):
        for e in edges[:EDGES_SHOWN]:
            table.add_row("from" if direction == "in" else "to", e["node"], _num(e["weight"]), e["kind"])
        if len(edges) > EDGES_SHOWN:
            table.add_row("", f"and {len(edges) - EDGES_SHOWN} more", "", "")
        if not edges:
            table.add_row("from" if direction == "in" else "to", "none in the circuit", "", "")
    out.append(table)
    return out
