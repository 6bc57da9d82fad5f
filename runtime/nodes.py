"""Node names: the one scheme by which everything downstream names a unit.

Pruning masks, reports, hypotheses and error messages all refer to units of
the model by these strings, and the model's hooks (``SparseGPT.hooks``) are
keyed by the same site names, so a name printed anywhere can be pasted
anywhere else.

A *site* is a place in the forward pass where an activation vector lives.
Layer ``L`` (0-based) has eight, in forward order::

    site                width            what its units are
    L.attn.resid_in     d_model          residual channels as attention reads them
                                         (after RMSNorm and AbsTopK)
    L.attn.q            n_head * d_head  query channels
    L.attn.k            n_head * d_head  key channels
    L.attn.v            n_head * d_head  value channels
    L.attn.resid_delta  d_model          attention's write to the residual stream
    L.mlp.resid_in      d_model          residual channels as the MLP reads them
    L.mlp.post_act      d_mlp            MLP neurons, after the nonlinearity
    L.mlp.resid_delta   d_model          the MLP's write to the residual stream

Channel ``i`` of a q, k or v site belongs to head ``i // d_head``.

A *node* is one unit of a site, written ``f"{site}[{index}]"``: ``"1.attn.q[5]"``
is query channel 5 of layer 1. Sites are listed layer by layer in the order
above, and nodes in index order within a site; that is the canonical order
for anything that enumerates them.

This module reads only the widths off a model config (``n_layer``, ``d_model``,
``n_head``, ``d_head``, ``d_mlp``), so it works with any object carrying them.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

SITE_KINDS = (
    "attn.resid_in",
    "attn.q",
    "attn.k",
    "attn.v",
    "attn.resid_delta",
    "mlp.resid_in",
    "mlp.post_act",
    "mlp.resid_delta",
)

# The index is optional here only so that a bare site name gets a precise
# error ("add an index") rather than "not a node name".
_NODE_RE = re.compile(r"(\d+)\.([A-Za-z_]+\.[A-Za-z_]+)(?:\[(\d+)\])?")


@dataclass(frozen=True)
class Site:
    name: str  # "1.attn.q"
    layer: int
    kind: str  # "attn.q", one of SITE_KINDS
    width: int


@dataclass(frozen=True)
class NodeRef:
    layer: int
    kind: str
    index: int

    @property
    def site(self) -> str:
        return f"{self.layer}.{self.kind}"

    @property
    def name(self) -> str:
        return node_name(self.site, self.index)

    def __str__(self) -> str:
        return self.name


def site_width(config, kind: str) -> int:
    if kind in ("attn.q", "attn.k", "attn.v"):
        return config.n_head * config.d_head
    if kind == "mlp.post_act":
        return config.d_mlp
    if kind in SITE_KINDS:
        return config.d_model
    raise ValueError(f"unknown site kind {kind!r}{did_you_mean(kind, SITE_KINDS)}")


def sites(config) -> list[Site]:
    """Every site of a model with this config, in canonical order."""
    return [
        Site(f"{layer}.{kind}", layer, kind, site_width(config, kind))
        for layer in range(config.n_layer)
        for kind in SITE_KINDS
    ]


def node_name(site: Site | str, index: int) -> str:
    site_name = site.name if isinstance(site, Site) else site
    if index < 0 or (isinstance(site, Site) and index >= site.width):
        raise ValueError(f"index {index} out of range for site {site_name!r}")
    return f"{site_name}[{index}]"


def parse_node(name: str, config=None) -> NodeRef:
    """Parse ``"1.attn.q[5]"``; with a config, also check layer and index ranges.

    Raises ValueError naming what is wrong, with a did-you-mean for unknown sites.
    """
    m = _NODE_RE.fullmatch(name)
    if m is None:
        raise ValueError(f"{name!r} is not a node name; nodes look like '1.attn.q[5]' (layer.part.kind[index])")
    layer, kind, index = int(m[1]), m[2], m[3]
    if kind not in SITE_KINDS:
        candidates = [s.name for s in sites(config)] if config is not None else [f"{layer}.{k}" for k in SITE_KINDS]
        raise ValueError(f"unknown site '{layer}.{kind}' in {name!r}{did_you_mean(f'{layer}.{kind}', candidates)}")
    if index is None:
        raise ValueError(f"{name!r} is a site, not a node; add the unit's index, e.g. '{name}[0]'")
    ref = NodeRef(layer, kind, int(index))
    if config is not None:
        if layer >= config.n_layer:
            raise ValueError(f"layer {layer} out of range in {name!r}: the model has {config.n_layer} layers")
        width = site_width(config, kind)
        if ref.index >= width:
            raise ValueError(f"index {ref.index} out of range in {name!r}: site '{ref.site}' has width {width}")
    return ref


def all_nodes(config) -> list[str]:
    """Every node name, in canonical order; ``len(all_nodes(config))`` is the node count."""
    return [node_name(site, i) for site in sites(config) for i in range(site.width)]


def did_you_mean(name: str, candidates) -> str:
    """``" (did you mean '...'?)"`` for the closest candidate, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
