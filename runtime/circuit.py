"""A circuit: the nodes pruning kept, the weights joining them, and how well it does.

Edges are nonzero weights between two kept nodes, one rule per pair of
sites (``docs/nodes.md`` lists them)::

    L.attn.resid_in[i] -> L.attn.q[j]          W_q[j, i]
    L.attn.resid_in[i] -> L.attn.k[j]          W_k[j, i]
    L.attn.resid_in[i] -> L.attn.v[j]          W_v[j, i]
    L.attn.v[j]        -> L.attn.resid_delta[c] W_o[c, j]
    L.mlp.resid_in[i]  -> L.mlp.post_act[j]    W_fc[j, i]
    L.mlp.post_act[j]  -> L.mlp.resid_delta[c] W_proj[c, j]
    X.resid_delta[c]   -> Y.resid_in[c]        the RMSNorm scale of Y at c,
                                               for every site Y after X in
                                               forward order (the residual stream)

q and k channels have no outgoing edges: they act through the attention
pattern, deciding where a head reads rather than what it writes.

``to_svg`` draws the graph by hand (no Graphviz needed): one row per site,
inputs at the bottom, stroke width proportional to |weight| within each kind
of edge, blue for positive and red for negative weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Iterable, Mapping

import torch

from .model import SparseGPT
from .nodes import all_nodes, parse_node, sites


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    weight: float
    kind: str  # "weight" (a matrix entry) or "residual" (a norm scale along the stream)


@dataclass(frozen=True)
class Circuit:
    nodes: tuple[str, ...]  # canonical order (nodes.all_nodes)
    edges: tuple[Edge, ...]
    total_nodes: int  # nodes in the whole model
    n_layer: int
    method: str  # "learned" or "attribution"
    ablation: str  # how the nodes outside were replaced: "mean", "zero" or "resample"
    target: float  # task loss the circuit had to reach, in nats
    loss: float  # task loss at the answer (``loss_kind``), everything outside ablated
    accuracy: float  # share of answers that are the argmax
    calibrated_loss: float  # loss after fitting a logit scale and per-token shift
    scale: float = 1.0  # the fitted logit scale
    loss_kind: str = "ce"  # "ce" or "contrast" (runtime.losses)
    norm: str = "live"  # "live" or "frozen" norms while ablating (runtime.norms)

    @property
    def reached(self) -> bool:
        return self.loss <= self.target

    @property
    def per_layer(self) -> dict[int, int]:
        counts = {layer: 0 for layer in range(self.n_layer)}
        for name in self.nodes:
            counts[parse_node(name).layer] += 1
        return counts

    @property
    def per_site(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name in self.nodes:
            site = parse_node(name).site
            counts[site] = counts.get(site, 0) + 1
        return counts

    @property
    def residual(self) -> dict[str, int]:
        """Residual read/write nodes, and the distinct residual channels they cover.

        Every resid_in and resid_delta site indexes the same d_model channels
        of the stream, so a channel read by two layers and written by one is
        three nodes but one channel.
        """
        refs = [parse_node(name) for name in self.nodes]
        resid = [r for r in refs if r.kind.endswith(("resid_in", "resid_delta"))]
        return {"nodes": len(resid), "channels": len({r.index for r in resid})}

    def to_json(self, roles: Mapping[str, str] | None = None) -> dict:
        """A JSON-ready dict; ``roles`` maps node names to role labels."""
        return {
            "method": self.method,
            "ablation": self.ablation,
            "target": self.target,
            "reached": self.reached,
            "loss": self.loss,
            "calibrated_loss": self.calibrated_loss,
            "logit_scale": self.scale,
            "accuracy": self.accuracy,
            "node_count": len(self.nodes),
            "edge_count": len(self.edges),
            "total_nodes": self.total_nodes,
            "per_layer": {str(k): v for k, v in self.per_layer.items()},
            "per_site": self.per_site,
            "residual_nodes": self.residual["nodes"],
            "residual_channels": self.residual["channels"],
            "loss_kind": self.loss_kind,
            "norm": self.norm,
            "nodes": list(self.nodes),
            "edges": [{"src": e.src, "dst": e.dst, "weight": e.weight, "kind": e.kind} for e in self.edges],
            "roles": dict(roles or {}),
        }

    def to_dot(self, roles: Mapping[str, str] | None = None) -> str:
        """Graphviz DOT text: one rank per site, inputs at the bottom."""
        roles = roles or {}
        widths = _stroke_widths(self.edges)
        lines = ["digraph circuit {", "  rankdir=BT;", '  node [shape=box, fontname="monospace", fontsize=10];']
        for site, names in _rows(self.nodes):
            lines.append(f'  subgraph "cluster_{site}" {{ label="{site}"; style=dotted; rank=same;')
            for name in names:
                label = f"{name}\\n{roles[name]}" if name in roles else name
                lines.append(f'    "{name}" [label="{_dot_escape(label)}"];')
            lines.append("  }")
        for edge, width in zip(self.edges, widths):
            style = ", style=dashed" if edge.kind == "residual" else ""
            lines.append(
                f'  "{edge.src}" -> "{edge.dst}" [penwidth={width:.2f}, color="{_colour(edge.weight)}"{style}, '
                f'tooltip="{edge.weight:+.3g}"];'
            )
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_svg(self, roles: Mapping[str, str] | None = None) -> str:
        """A self-contained SVG, laid out by layer: one row per site, inputs at the bottom.

        A layer's q, k and v channels share a row, so that every weight edge
        joins adjacent rows; residual edges (dashed) skip rows and bow out to
        the side rather than run under the boxes between.
        """
        roles = roles or {}
        rows = _rows(self.nodes, merge_qkv=True)
        char, pad, gap, row_gap, left = 7.2, 10, 16, 64, 170
        box_h = 34 if roles else 22
        box_w = {name: max(len(name), len(roles.get(name, ""))) * char + 2 * pad for name in self.nodes}
        row_w = [sum(box_w[n] for n in names) + gap * (len(names) - 1) for _, names in rows]
        caption = (
            f"{len(self.nodes)} nodes, {len(self.edges)} edges; {self.method} circuit, {self.ablation} ablation; "
            f"loss {self.loss:.3f} (target {self.target:g}), accuracy {self.accuracy:.3f}"
        )
        width = max(left + max(row_w, default=200) + 80, 20 + len(caption) * char)
        height = 50 + len(rows) * (box_h + row_gap)
        pos: dict[str, tuple[float, float]] = {}  # node -> (centre x, top y)
        row_of: dict[str, int] = {}
        boxes = []
        for r, (label, names) in enumerate(rows):
            y = height - 30 - box_h - r * (box_h + row_gap)
            boxes.append(f'<text x="10" y="{y + box_h / 2 + 4:.1f}" class="site">{escape(label)}</text>')
            x = left + (width - left - 80 - row_w[r]) / 2
            for name in names:
                w = box_w[name]
                pos[name], row_of[name] = (x + w / 2, y), r
                role = roles.get(name)
                boxes.append(
                    f'<g><title>{escape(name)}{" (" + escape(role) + ")" if role else ""}</title>'
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{box_h}" rx="4" class="node"/>'
                    f'<text x="{x + w / 2:.1f}" y="{y + 15:.1f}" class="name">{escape(name)}</text>'
                    + (f'<text x="{x + w / 2:.1f}" y="{y + 29:.1f}" class="role">{escape(role)}</text>' if role else "")
                    + "</g>"
                )
                x += w + gap
        paths = []
        for edge, stroke in zip(self.edges, _stroke_widths(self.edges)):
            (x1, y1), (x2, y2) = pos[edge.src], pos[edge.dst]
            y2 += box_h  # from the top of the source box to the bottom of the destination box
            span = row_of[edge.dst] - row_of[edge.src]
            if span > 1:  # bow out to the right, further for longer jumps
                bow = max(x1, x2) + 60 + 25 * span
                d = f"M{x1:.1f},{y1:.1f} C{bow:.1f},{y1 - 20:.1f} {bow:.1f},{y2 + 20:.1f} {x2:.1f},{y2:.1f}"
            else:
                mid = (y1 + y2) / 2
                d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
            dash = ' stroke-dasharray="5 4"' if edge.kind == "residual" else ""
            paths.append(
                f'<path d="{d}" stroke="{_colour(edge.weight)}" stroke-width="{stroke:.2f}"{dash} fill="none" '
                f'opacity="0.75"><title>{escape(edge.src)} -> {escape(edge.dst)}: {edge.weight:+.3g}</title></path>'
            )
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="monospace" font-size="12">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n'
            "<style>.node{fill:#f6f6f0;stroke:#444;stroke-width:1}.name{text-anchor:middle;fill:#111}"
            ".role{text-anchor:middle;fill:#555;font-style:italic;font-size:11px}.site{fill:#666}</style>\n"
            f'<text x="10" y="18" fill="#333">{escape(caption)}</text>\n'
            + "\n".join(paths + boxes)
            + "\n</svg>\n"
        )


def circuit_edges(model: SparseGPT, nodes: Iterable[str]) -> list[Edge]:
    """Every edge between two of ``nodes``, by the rules in the module docstring."""
    kept: dict[str, list[int]] = {}
    for name in nodes:
        ref = parse_node(name, model.config)
        kept.setdefault(ref.site, []).append(ref.index)
    kept = {site: sorted(set(idx)) for site, idx in kept.items()}
    edges: list[Edge] = []

    def matrix(src: str, dst: str, weight: torch.Tensor) -> None:
        # weight is nn.Linear's (out, in): row = destination unit, column = source unit.
        src_idx, dst_idx = kept.get(src, []), kept.get(dst, [])
        if not src_idx or not dst_idx:
            return
        sub = weight.detach()[dst_idx][:, src_idx]  # (dst, src)
        for d, s in sub.nonzero().tolist():
            edges.append(Edge(f"{src}[{src_idx[s]}]", f"{dst}[{dst_idx[d]}]", float(sub[d, s]), "weight"))

    for layer, block in enumerate(model.blocks):
        a, m = f"{layer}.attn", f"{layer}.mlp"
        for kind, linear in (("q", block.attn.q), ("k", block.attn.k), ("v", block.attn.v)):
            matrix(f"{a}.resid_in", f"{a}.{kind}", linear.weight)
        matrix(f"{a}.v", f"{a}.resid_delta", block.attn.o.weight)
        matrix(f"{m}.resid_in", f"{m}.post_act", block.mlp.fc.weight)
        matrix(f"{m}.post_act", f"{m}.resid_delta", block.mlp.proj.weight)

    # The residual stream: a write reaches every later read of the same channel.
    order = [site.name for site in sites(model.config)]
    norms = {}
    for layer, block in enumerate(model.blocks):
        norms[f"{layer}.attn.resid_in"] = block.ln_1.weight.detach()
        norms[f"{layer}.mlp.resid_in"] = block.ln_2.weight.detach()
    for i, writer in enumerate(order):
        if not writer.endswith("resid_delta") or writer not in kept:
            continue
        for reader in order[i + 1:]:
            if not reader.endswith("resid_in") or reader not in kept:
                continue
            for c in sorted(set(kept[writer]) & set(kept[reader])):
                scale = float(norms[reader][c])
                if scale != 0.0:
                    edges.append(Edge(f"{writer}[{c}]", f"{reader}[{c}]", scale, "residual"))
    rank = {name: i for i, name in enumerate(all_nodes(model.config))}
    edges.sort(key=lambda e: (rank[e.src], rank[e.dst]))
    return edges


def canonical(nodes: Iterable[str], config) -> tuple[str, ...]:
    """``nodes`` without duplicates, in canonical order; raises ValueError on a bad name."""
    refs = {parse_node(name, config) for name in nodes}
    order = {site.name: i for i, site in enumerate(sites(config))}
    return tuple(ref.name for ref in sorted(refs, key=lambda r: (order[r.site], r.index)))


def _rows(nodes: Iterable[str], merge_qkv: bool = False) -> list[tuple[str, list[str]]]:
    """(label, nodes) per site in the (canonical) order given; q, k, v as one row if merge_qkv."""
    rows: dict[str, list[str]] = {}
    for name in nodes:
        ref = parse_node(name)
        label = ref.site
        if merge_qkv and ref.kind in ("attn.q", "attn.k", "attn.v"):
            label = f"{ref.layer}.attn.q/k/v"
        rows.setdefault(label, []).append(name)
    return list(rows.items())


def _stroke_widths(edges: Iterable[Edge]) -> list[float]:
    # Matrix weights and norm scales live on different scales, so each kind
    # is normalised by its own largest magnitude.
    edges = list(edges)
    top = {kind: max((abs(e.weight) for e in edges if e.kind == kind), default=1.0) or 1.0 for kind in ("weight", "residual")}
    return [0.6 + 3.4 * abs(e.weight) / top[e.kind] for e in edges]


def _colour(weight: float) -> str:
    return "#2b6cb0" if weight >= 0 else "#c53030"


def _dot_escape(text: str) -> str:
    return text.replace('"', '\\"')
