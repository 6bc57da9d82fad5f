"""Structural relations between units, read off a model's weights and a circuit's edges.

A *unit* is a node (``"1.attn.v[37]"``, see ``runtime.nodes``) or a head,
written ``"L.attn.head[h]"``. A head stands for its q, k and v channels that
are in the circuit (channel ``i`` is in head ``i // d_head``), so a head
reads and writes through the channels pruning kept.

**The residual stream is a wire per channel.** Every unit touches the stream
at *points* ``(site, c)``: residual channel ``c`` as one resid site holds it.

    unit                 writes at                          reads at
    L.mlp.post_act[j]    (L.mlp.resid_delta, c)  W_proj[c,j]!=0   (L.mlp.resid_in, c)  W_fc[j,c]!=0
    L.attn.v[j]          (L.attn.resid_delta, c) W_o[c,j]!=0      (L.attn.resid_in, c) W_v[j,c]!=0
    L.attn.q[j], k[j]    nowhere (they act through the pattern)   (L.attn.resid_in, c) W_q/W_k[j,c]!=0
    L.attn.head[h]       its circuit v channels' points           its circuit channels' points
    a resid node S[c]    (S, c)                                   (S, c)

A point ``(A, c)`` *feeds* ``(B, c)`` (same channel) when A is B, or when A
comes before B in forward order and B is a ``resid_in`` site whose RMSNorm
scale at ``c`` is nonzero: a write reaches every later read of the stream,
never a later module's output.

Then, between a unit ``x`` and a unit ``y`` (never the same unit):

    writes(x, y)         a write point of x feeds a read point of y
    reads(x, y, as)      writes(y, x) through x's channels of kind ``as``
                         (query, key or value; any when not given)
    edge(x, y)           a circuit edge joins a node of x to a node of y
    path(x, y)           a chain of one or more circuit edges does

So ``writes`` is one weight away through the residual stream, whatever
units pruning kept along it (it is about the trained model), while
``edge`` and ``path`` follow only the circuit's own edges.
"""

from __future__ import annotations

import re
from collections import deque
from functools import lru_cache
from typing import Iterable

import torch

from .model import SparseGPT
from .nodes import parse_node

_HEAD_RE = re.compile(r"(\d+)\.attn\.head\[(\d+)\]")
READ_KINDS = {"query": "attn.q", "key": "attn.k", "value": "attn.v"}


def head_name(layer: int, head: int) -> str:
    return f"{layer}.attn.head[{head}]"


def parse_head(name: str) -> tuple[int, int] | None:
    """``(layer, head)`` for a head's name, None for anything else."""
    m = _HEAD_RE.fullmatch(name)
    return (int(m[1]), int(m[2])) if m else None


def heads_of(nodes: Iterable[str], config) -> dict[str, tuple[str, ...]]:
    """Every head with a q, k or v channel among ``nodes``, with those channels, in node order."""
    heads: dict[str, list[str]] = {}
    for name in nodes:
        ref = parse_node(name)
        if ref.kind in ("attn.q", "attn.k", "attn.v"):
            heads.setdefault(head_name(ref.layer, ref.index // config.d_head), []).append(name)
    return {head: tuple(channels) for head, channels in heads.items()}


def head_channels(name: str, config) -> tuple[str, ...]:
    """Every q, k and v channel of a head, in or out of any circuit."""
    layer, head = parse_head(name)
    span = range(head * config.d_head, (head + 1) * config.d_head)
    return tuple(f"{layer}.attn.{kind}[{i}]" for kind in ("q", "k", "v") for i in span)


class Wiring:
    """The relations above for one model and one circuit; answers are cached."""

    def __init__(self, model: SparseGPT, circuit_nodes: Iterable[str], circuit_edges: Iterable[tuple[str, str, float]]):
        self.config = model.config
        self.circuit = tuple(circuit_nodes)
        self.heads = heads_of(self.circuit, self.config)
        self.order = {name: i for i, name in enumerate(model.site_names)}
        # Nonzero patterns only: a relation is about whether a weight exists.
        self._w: dict[str, torch.Tensor] = {}
        self._norm: dict[str, torch.Tensor] = {}
        for layer, block in enumerate(model.blocks):
            a, m = f"{layer}.attn", f"{layer}.mlp"
            for kind in ("q", "k", "v"):
                self._w[f"{a}.{kind}"] = getattr(block.attn, kind).weight.detach().cpu() != 0  # (width, C)
            self._w[f"{a}.o"] = block.attn.o.weight.detach().cpu() != 0  # (C, width)
            self._w[f"{m}.fc"] = block.mlp.fc.weight.detach().cpu() != 0  # (d_mlp, C)
            self._w[f"{m}.proj"] = block.mlp.proj.weight.detach().cpu() != 0  # (C, d_mlp)
            self._norm[f"{a}.resid_in"] = block.ln_1.weight.detach().cpu() != 0
            self._norm[f"{m}.resid_in"] = block.ln_2.weight.detach().cpu() != 0
        self._succ: dict[str, set[str]] = {}
        for src, dst, _ in circuit_edges:
            self._succ.setdefault(src, set()).add(dst)
        self.writes = lru_cache(maxsize=None)(self._writes)
        self.reads = lru_cache(maxsize=None)(self._reads)
        self.edge = lru_cache(maxsize=None)(self._edge)
        self.path = lru_cache(maxsize=None)(self._path)
        self._reach = lru_cache(maxsize=None)(self._reachable)

    # ------------------------------------------------------------ units

    def nodes(self, unit: str) -> tuple[str, ...]:
        """The circuit nodes a unit stands for: a head's kept channels, or the node itself."""
        return self.heads.get(unit, ()) if parse_head(unit) else (unit,)

    def _out_points(self, unit: str) -> dict[int, list[str]]:
        """channel -> sites where ``unit`` writes that channel."""
        points: dict[int, list[str]] = {}
        for node in self.nodes(unit):
            ref = parse_node(node)
            if ref.kind == "mlp.post_act":
                cols, site = self._w[f"{ref.layer}.mlp.proj"][:, ref.index], f"{ref.layer}.mlp.resid_delta"
            elif ref.kind == "attn.v":
                cols, site = self._w[f"{ref.layer}.attn.o"][:, ref.index], f"{ref.layer}.attn.resid_delta"
            elif ref.kind in ("attn.q", "attn.k"):
                continue
            else:
                points.setdefault(ref.index, []).append(ref.site)
                continue
            for c in cols.nonzero().flatten().tolist():
                points.setdefault(c, []).append(site)
        return points

    def _in_points(self, unit: str, kinds: tuple[str, ...] = ("attn.q", "attn.k", "attn.v")) -> dict[int, list[str]]:
        """channel -> sites where ``unit`` reads that channel; heads only through channels of ``kinds``."""
        points: dict[int, list[str]] = {}
        is_head = parse_head(unit) is not None
        for node in self.nodes(unit):
            ref = parse_node(node)
            if ref.kind in ("attn.q", "attn.k", "attn.v"):
                if is_head and ref.kind not in kinds:
                    continue
                rows, site = self._w[f"{ref.layer}.{ref.kind}"][ref.index], f"{ref.layer}.attn.resid_in"
            elif ref.kind == "mlp.post_act":
                rows, site = self._w[f"{ref.layer}.mlp.fc"][ref.index], f"{ref.layer}.mlp.resid_in"
            else:
                points.setdefault(ref.index, []).append(ref.site)
                continue
            for c in rows.nonzero().flatten().tolist():
                points.setdefault(c, []).append(site)
        return points

    def _feeds(self, c: int, src: str, dst: str) -> bool:
        if src == dst:
            return True
        return (
            self.order[src] < self.order[dst]
            and dst.endswith("resid_in")
            and bool(self._norm[dst][c])
        )

    def _connects(self, out: dict[int, list[str]], into: dict[int, list[str]]) -> bool:
        for c, srcs in out.items():
            for dst in into.get(c, ()):
                if any(self._feeds(c, src, dst) for src in srcs):
                    return True
        return False

    # ------------------------------------------------------------ relations

    def _writes(self, x: str, y: str) -> bool:
        if x == y:
            return False
        return self._connects(self._out_points(x), self._in_points(y))

    def _reads(self, x: str, y: str, as_: str | None = None) -> bool:
        """x reads y through its queries, keys or values (``as_`` names which; None: any)."""
        if x == y:
            return False
        kinds = tuple(READ_KINDS.values()) if as_ is None else (READ_KINDS[as_],)
        if parse_head(x) is None:
            ref = parse_node(x)
            if ref.kind not in kinds:
                return False
        return self._connects(self._out_points(y), self._in_points(x, kinds))

    def _edge(self, x: str, y: str) -> bool:
        if x == y:
            return False
        targets = set(self.nodes(y))
        return any(self._succ.get(src, set()) & targets for src in self.nodes(x))

    def _reachable(self, node: str) -> frozenset[str]:
        """Nodes reached from ``node`` by one or more circuit edges."""
        seen: set[str] = set()
        queue = deque(self._succ.get(node, ()))
        while queue:
            nxt = queue.popleft()
            if nxt in seen:
                continue
            seen.add(nxt)
            queue.extend(self._succ.get(nxt, ()))
        return frozenset(seen)

    def _path(self, x: str, y: str) -> bool:
        if x == y:
            return False
        targets = set(self.nodes(y))
        return any(self._reach(src) & targets for src in self.nodes(x))
