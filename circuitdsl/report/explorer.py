"""The circuit explorer, in HTML: the circuit as a layered graph, and per node what it does.

Rendered from plain data alone (the explorer data of
:mod:`circuitdsl.verification.explain` and the circuit's ``to_json`` dict), so a
saved ``circ verify --json`` document shows the same explorer in ``circ report``.

The graph is inline SVG: a row per layer (layer 0 at the bottom, as the stream
flows up), a column per site (the residual channels attention reads, its q, k
and v channels grouped by head, its write to the stream, then the MLP's),
every edge a curve whose width is its |weight| within its kind of edge and
whose colour is its sign. Clicking a node fills the panel beside it with its
top-activating prompts (the token highlighted), its activation split by the
task's latent variables, and its edges; the script is a few lines of plain JS
in the page, so the report works offline.
"""

from __future__ import annotations

import json
from html import escape



def fmt_number(x: float) -> str:
    """Three decimals, or scientific where that would show nothing (the verify report's style)."""
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{x:.3f}".rstrip("0").rstrip(".") if x != int(x) or abs(x) >= 1e-3 else "0"
    return f"{x:.2e}"

#: Column order and headers: runtime.nodes.SITE_KINDS, in forward order.
COLUMNS = (
    ("attn.resid_in", "resid in"),
    ("attn.q", "q"),
    ("attn.k", "k"),
    ("attn.v", "v"),
    ("attn.resid_delta", "attn out"),
    ("mlp.resid_in", "resid in"),
    ("mlp.post_act", "neurons"),
    ("mlp.resid_delta", "mlp out"),
)
COL_W, NODE_W, NODE_H, ROW_H = 100, 78, 18, 22
LEFT, TOP, BAND_PAD = 64, 44, 14
#: Edges labelled with their weight from the start; the rest show theirs when an end is selected.
LABELLED = 30
POSITIVE, NEGATIVE = "#1f5fbf", "#c0152b"

CSS = """
.explorer { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.explorer .graph { overflow: auto; max-height: 720px; border: 1px solid #ddd; flex: 0 1 auto; }
.explorer .panel { flex: 1 1 380px; min-width: 320px; border: 1px solid #ddd; padding: 8px 12px; font-size: 13px; }
.explorer .node rect { fill: #f6f6f6; stroke: #888; cursor: pointer; }
.explorer .node.role rect { stroke: #a66b00; stroke-width: 2; }
.explorer .node:hover rect { fill: #e8eefb; }
.explorer .node.selected rect { fill: #fff3c4; stroke: #222; stroke-width: 2; }
.explorer .node text { font: 10px ui-monospace, monospace; pointer-events: none; }
.explorer .edge path { fill: none; stroke-opacity: 0.5; }
.explorer .edge.lit path { stroke-opacity: 0.95; }
.explorer .edge.dim path { stroke-opacity: 0.08; }
.explorer .edge text { font: 9px ui-monospace, monospace; fill: #333; }
.explorer .edge text.hidden { display: none; }
.explorer .edge.lit text { display: inline; font-weight: bold; }
.explorer .tokens { font-family: ui-monospace, monospace; white-space: pre; }
.explorer mark.hit { background: #ffd54a; outline: 1px solid #a66b00; }
.explorer .bar { display: inline-block; height: 10px; vertical-align: middle; }
.explorer .panel table { margin: 4px 0 10px; } .explorer .panel td, .explorer .panel th { padding: 2px 8px; }
.explorer .link { color: #1f5fbf; cursor: pointer; text-decoration: underline; }
"""

# Builds the panel with textContent only: prompts are data, never markup.
SCRIPT = r"""
(function () {
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in (attrs || {})) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(x) { return Math.abs(x) >= 1000 || (x !== 0 && Math.abs(x) < 0.001) ? x.toExponential(2) : (+x.toFixed(3)).toString(); }
  function shown(tok) { return tok === "\n" ? "\u21b5" : tok; }
  function table(head, rows) {
    var t = el("table"), tr = el("tr");
    head.forEach(function (h) { tr.appendChild(el("th", {}, h)); });
    t.appendChild(tr);
    rows.forEach(function (r) { t.appendChild(r); });
    return t;
  }
  function examples(list, withTask) {
    return table(["activation", withTask ? "task" : null, "prompt (token highlighted) \u2192 answer"].filter(Boolean), list.map(function (ex) {
      var tr = el("tr", {"class": "example"});
      tr.appendChild(el("td", {"class": "num"}, fmt(ex.value)));
      if (withTask) tr.appendChild(el("td", {}, ex.task));
      var td = el("td", {"class": "tokens"});
      ex.tokens.forEach(function (tok, i) {
        td.appendChild(i === ex.position ? el("mark", {"class": "hit"}, shown(tok)) : document.createTextNode(shown(tok)));
      });
      td.appendChild(el("span", {"style": "color:#888"}, "  \u2192 " + shown(ex.answer)));
      tr.appendChild(td);
      return tr;
    }));
  }
  function latents(info) {
    var box = el("div", {"class": "latents"});
    var names = Object.keys(info.latents).sort(function (a, b) { return info.latents[b].eta2 - info.latents[a].eta2 || (a < b ? -1 : 1); });
    if (!names.length) box.appendChild(el("p", {}, "no latent variable with 2 to 12 values in these prompts"));
    names.forEach(function (name) {
      var v = info.latents[name], top = 0;
      v.values.forEach(function (r) { top = Math.max(top, Math.abs(r.mean)); });
      box.appendChild(el("div", {"class": "latent-name"}, name + "  (\u03b7\u00b2 " + fmt(v.eta2) + ": share of the variance the split explains)"));
      box.appendChild(table(["value", "n", "mean \u00b1 std", ""], v.values.map(function (r) {
        var tr = el("tr", {"class": "latent-row"});
        tr.appendChild(el("td", {}, r.value));
        tr.appendChild(el("td", {"class": "num"}, String(r.n)));
        tr.appendChild(el("td", {"class": "num"}, fmt(r.mean) + " \u00b1 " + fmt(r.std)));
        var bar = el("span", {"class": "bar"});
        bar.style.width = (top > 0 ? 2 + 120 * Math.abs(r.mean) / top : 2) + "px";
        bar.style.background = r.mean >= 0 ? "%(pos)s" : "%(neg)s";
        var td = el("td"); td.appendChild(bar); tr.appendChild(td);
        return tr;
      })));
    });
    Object.keys(info.skipped_latents || {}).sort().forEach(function (name) {
      box.appendChild(el("div", {"style": "color:#888"}, name + ": not split (" + info.skipped_latents[name] + ")"));
    });
    return box;
  }
  function edges(list, select) {
    return table(["node", "weight", "kind"], list.map(function (e) {
      var tr = el("tr", {"class": "edge-row"});
      var name = el("td", {"class": "link"}, e.node);
      name.addEventListener("click", function () { select(e.node); });
      tr.appendChild(name);
      tr.appendChild(el("td", {"class": "num", "style": "color:" + (e.weight >= 0 ? "%(pos)s" : "%(neg)s")}, fmt(e.weight)));
      tr.appendChild(el("td", {}, e.kind));
      return tr;
    }));
  }
  function init(root) {
    root.setAttribute("data-ready", "1");
    var data = JSON.parse(root.querySelector("script.explorer-data").textContent);
    var panel = root.querySelector(".panel");
    function select(name) {
      var info = data.nodes[name];
      if (!info) return;
      root.querySelectorAll(".node").forEach(function (n) { n.classList.toggle("selected", n.getAttribute("data-node") === name); });
      root.querySelectorAll(".edge").forEach(function (e) {
        var mine = e.getAttribute("data-src") === name || e.getAttribute("data-dst") === name;
        e.classList.toggle("lit", mine); e.classList.toggle("dim", !mine);
      });
      panel.textContent = "";
      panel.appendChild(el("h4", {"class": "panel-title"}, name + (data.roles[name] ? "  (" + data.roles[name] + ")" : "")));
      var s = info.stats.task;
      if (s) panel.appendChild(el("div", {}, "on task prompts: mean " + fmt(s.mean) + ", std " + fmt(s.std) + ", range [" + fmt(s.min) + ", " + fmt(s.max) + "]"));
      [["task", "top examples: " + data.task + " prompts", false], ["mixture", "top examples: training-mixture prompts", true]].forEach(function (src) {
        if (!info.top[src[0]]) return;
        panel.appendChild(el("h5", {}, src[1]));
        var box = examples(info.top[src[0]], src[2]);
        box.classList.add("top-" + src[0]);
        panel.appendChild(box);
      });
      panel.appendChild(el("h5", {}, "activation at the answer, by latent variable"));
      panel.appendChild(latents(info));
      panel.appendChild(el("h5", {}, "in edges (" + info.in.length + ")"));
      panel.appendChild(edges(info.in, select));
      panel.appendChild(el("h5", {}, "out edges (" + info.out.length + ")"));
      panel.appendChild(edges(info.out, select));
    }
    root.querySelectorAll(".node").forEach(function (n) {
      n.addEventListener("click", function () { select(n.getAttribute("data-node")); });
    });
  }
  document.querySelectorAll(".explorer:not([data-ready])").forEach(init);
})();
""" % {"pos": POSITIVE, "neg": NEGATIVE}


def _layout(circuit: dict, n_layer: int) -> tuple[dict[str, tuple[float, float]], list[tuple[int, float, float]], float]:
    """Node -> (x, y) of its box's top-left; each layer's band (layer, top, bottom); the height."""
    cells: dict[tuple[int, str], list[tuple[int, int, str]]] = {}
    for name in circuit["nodes"]:
        layer, rest = name.split(".", 1)
        kind, index = rest.split("[")
        index = int(index.rstrip("]"))
        cells.setdefault((int(layer), kind), []).append((index, index, name))
    layers = max([n_layer] + [layer + 1 for layer, _ in cells])
    positions, bands, y = {}, [], TOP
    for layer in reversed(range(layers)):
        rows = max([len(v) for (l, _), v in cells.items() if l == layer] or [1])
        top, bottom = y, y + BAND_PAD * 2 + rows * ROW_H
        for col, (kind, _) in enumerate(COLUMNS):
            for row, (_, _, name) in enumerate(sorted(cells.get((layer, kind), []))):
                positions[name] = (LEFT + col * COL_W + (COL_W - NODE_W) / 2, top + BAND_PAD + row * ROW_H)
        bands.append((layer, top, bottom))
        y = bottom
    return positions, bands, y + 10


def _label(name: str, info: dict | None) -> str:
    index = name.rsplit("[", 1)[1].rstrip("]")
    if info and info.get("head") is not None:
        return f"h{info['head']} [{index}]"
    return f"[{index}]"


def graph_svg(circuit: dict, explorer: dict, roles: dict[str, str]) -> str:
    """The circuit as a layered graph: nodes as boxes, edges as curves drawn and labelled by weight."""
    infos = explorer.get("nodes", {})
    n_layer = int(explorer.get("model", {}).get("n_layer", 0))
    positions, bands, height = _layout(circuit, n_layer)
    width = LEFT + len(COLUMNS) * COL_W + 10
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' class='circuit-graph' width='{width}' height='{height:.0f}'>"]
    for col, (kind, header) in enumerate(COLUMNS):
        x = LEFT + col * COL_W + COL_W / 2
        parts.append(f"<text x='{x:.0f}' y='{TOP - 8}' font-size='11' text-anchor='middle'>{escape(header)}</text>")
    parts.append(f"<text x='{LEFT + 2.5 * COL_W:.0f}' y='14' font-size='11' text-anchor='middle' fill='#666'>attention</text>")
    parts.append(f"<text x='{LEFT + 6.5 * COL_W:.0f}' y='14' font-size='11' text-anchor='middle' fill='#666'>MLP</text>")
    for i, (layer, top, bottom) in enumerate(bands):
        fill = "#fafafa" if i % 2 else "#f2f5fa"
        parts.append(f"<rect x='0' y='{top:.0f}' width='{width}' height='{bottom - top:.0f}' fill='{fill}'/>")
        parts.append(f"<text x='8' y='{(top + bottom) / 2 + 4:.0f}' font-size='11'>layer {layer}</text>")
    edges = [e for e in circuit.get("edges", []) if e["src"] in positions and e["dst"] in positions]
    strongest: dict[str, float] = {}
    for e in edges:
        strongest[e["kind"]] = max(strongest.get(e["kind"], 0.0), abs(e["weight"]))
    labelled = {id(e) for e in sorted(edges, key=lambda e: (-abs(e["weight"]), e["src"], e["dst"]))[:LABELLED]}
    for e in edges:
        (sx, sy), (dx, dy) = positions[e["src"]], positions[e["dst"]]
        x0, y0, x1, y1 = sx + NODE_W, sy + NODE_H / 2, dx, dy + NODE_H / 2
        bend = max(30.0, abs(x1 - x0) / 3)
        c0, c1 = x0 + bend, x1 - bend
        mx, my = (x0 + 3 * c0 + 3 * c1 + x1) / 8, (y0 + y1) / 2
        top = strongest.get(e["kind"]) or 1.0
        stroke = 0.6 + 3.4 * abs(e["weight"]) / top
        colour = POSITIVE if e["weight"] >= 0 else NEGATIVE
        weight = fmt_number(e["weight"])
        hidden = "" if id(e) in labelled else " class='hidden'"
        parts.append(
            f"<g class='edge' data-src='{escape(e['src'])}' data-dst='{escape(e['dst'])}'>"
            f"<title>{escape(e['src'])} &#8594; {escape(e['dst'])}: {weight} ({escape(e['kind'])})</title>"
            f"<path d='M{x0:.1f},{y0:.1f} C{c0:.1f},{y0:.1f} {c1:.1f},{y1:.1f} {x1:.1f},{y1:.1f}' stroke='{colour}' stroke-width='{stroke:.2f}'/>"
            f"<text x='{mx:.1f}' y='{my - 2:.1f}' text-anchor='middle'{hidden}>{weight}</text></g>"
        )
    for name, (x, y) in positions.items():
        info = infos.get(name)
        role = roles.get(name)
        tip = name + (f" ({role})" if role else "")
        if info and "task" in info.get("stats", {}):
            s = info["stats"]["task"]
            tip += f"; on task prompts mean {fmt_number(s['mean'])}, range [{fmt_number(s['min'])}, {fmt_number(s['max'])}]"
        classes = "node role" if role else "node"
        parts.append(
            f"<g class='{classes}' data-node='{escape(name)}'><title>{escape(tip)}</title>"
            f"<rect x='{x:.1f}' y='{y:.1f}' width='{NODE_W}' height='{NODE_H}' rx='3'/>"
            f"<text x='{x + NODE_W / 2:.1f}' y='{y + 13:.1f}' text-anchor='middle'>{escape(_label(name, info))}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def explorer_html(circuit: dict, explorer: dict | None, bound: dict[str, list[str]] | None = None) -> str:
    """The explorer section of a hypothesis's report (``bound``: role -> its nodes); empty when the run
    carried no explorer data."""
    if not explorer or not explorer.get("nodes"):
        return ""
    roles: dict[str, str] = {}
    for role, nodes in (bound or {}).items():
        for node in nodes:
            roles[node] = f"{roles[node]}, {role}" if node in roles else role
    payload = {"task": explorer.get("task", "task"), "roles": roles, "nodes": explorer["nodes"]}
    # `<` escaped so no prompt can close the script element.
    data = json.dumps(payload, sort_keys=True).replace("<", "\\u003c")
    samples = explorer.get("samples", {})
    note = (
        f"Activations of the full model on {samples.get('task', '?')} held-out {escape(str(explorer.get('task')))} prompts "
        f"and {samples.get('mixture', '?')} training-mixture prompts; a node's top examples are those where its activation is "
        "largest in magnitude (sign kept), the latent split is at the answer position. Click a node."
    )
    return (
        f"<h3>circuit explorer</h3><style>{CSS}</style><p class='explorer-note'>{note}</p>"
        f"<div class='explorer'><div class='graph'>{graph_svg(circuit, explorer, roles)}</div>"
        "<div class='panel'><p class='panel-hint'>Click a node of the graph to see its top-activating prompts, "
        "its activation by latent variable, and its edges.</p></div>"
        f"<script type='application/json' class='explorer-data'>{data}</script></div>"
        f"<script>{SCRIPT}</script>"
    )


def explorer_page(title: str, sections: list[tuple[str, str]]) -> str:
    """A page of its own (``circ explain --report``): one explorer per circuit, under its heading."""
    body = "".join(f"<h2>{escape(heading)}</h2>{html}" for heading, html in sections)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #222; }}"
        " td.num { text-align: right; font-variant-numeric: tabular-nums; } table { border-collapse: collapse; }"
        f" td, th {{ border-bottom: 1px solid #eee; text-align: left; }}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
