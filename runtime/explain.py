"""What each node of a circuit does, as plain data: where it fires, what it tracks, what it joins.

For every node, from one recorded forward pass per set of prompts (its
*source*: the task's prompts, the training mixture's)::

    top        the ``top_k`` prompts of each source on which the node's activation is
               largest in magnitude (sign kept), each at the position where it is,
               with the prompt's tokens so a report can highlight that one
    latents    its activation at the answer position split by each latent variable's
               values (n, mean, std per value) and the share of its variance that the
               split explains (eta squared): which variable the node tracks
    in / out   the circuit's edges into and out of it, strongest first

The activations are the full, unablated model's: a node is described by what
it computes in the model the circuit was pruned from. Position 0 (BOS) is
never a top position: every prompt has it, and its activations say nothing
about the prompt.

Nothing here knows the language: the caller passes batches, per-row labels
and latent values (``Source``), and gets back a JSON-ready dict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from .batch import Batch
from .model import SparseGPT
from .nodes import parse_node
from .probe import record
from .tokenizer import Tokenizer

#: A latent variable with more distinct values than this is not split on (an identifier, a
#: free-text body): a table of hundreds of one-example groups says nothing.
MAX_LATENT_VALUES = 12
#: Significant digits kept in the data: enough to read, and last-bit float noise never shows.
DIGITS = 5
ROWS_PER_PASS = 256


@dataclass(frozen=True)
class Source:
    """One set of prompts to look for a node's activations in."""

    batch: Batch
    #: Per row: the task it is an example of.
    tasks: Sequence[str]
    #: Per row: the latent variables' values, or None where the split is not wanted (a mixture
    #: of tasks has no variables in common).
    latents: Sequence[Mapping[str, object]] | None = None


def explain(
    model: SparseGPT,
    tokenizer: Tokenizer,
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str, float, str]],
    sources: Mapping[str, Source],
    *,
    top_k: int = 5,
) -> dict[str, dict]:
    """Per node name (in the order given): its top examples per source, latent split and edges."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    refs = {name: parse_node(name, model.config) for name in nodes}
    recorded = {name: _activations(model, src.batch, refs) for name, src in sources.items()}
    out: dict[str, dict] = {}
    for name, ref in refs.items():
        info = {
            "node": name,
            "layer": ref.layer,
            "kind": ref.kind,
            "index": ref.index,
            "head": ref.index // model.config.d_head if ref.kind in ("attn.q", "attn.k", "attn.v") else None,
            "top": {},
            "stats": {},
            "latents": {},
            "skipped_latents": {},
        }
        for src_name, src in sources.items():
            acts = recorded[src_name][name]  # (B, T)
            info["top"][src_name] = _top(acts, src, tokenizer, top_k)
            info["stats"][src_name] = _stats(acts[_real(src.batch)])
            if src.latents is not None:
                answer = acts[torch.arange(len(src.batch)), src.batch.answer_pos]
                split, skipped = _latent_split(answer.tolist(), src.latents)
                info["latents"].update(split)
                info["skipped_latents"].update(skipped)
        info["in"] = _edges(edges, name, incoming=True)
        info["out"] = _edges(edges, name, incoming=False)
        out[name] = info
    return out


def _round(x: float) -> float:
    if x == 0 or not math.isfinite(x):
        return 0.0 if x == 0 else x
    return round(x, DIGITS - 1 - int(math.floor(math.log10(abs(x)))))


@torch.no_grad()
def _activations(model: SparseGPT, batch: Batch, refs) -> dict[str, torch.Tensor]:
    """``{node: (B, T)}`` activations, every node of a site read in the same pass."""
    by_site: dict[str, list[str]] = {}
    for name, ref in refs.items():
        by_site.setdefault(ref.site, []).append(name)
    columns = {site: torch.tensor([refs[n].index for n in names]) for site, names in by_site.items()}
    parts: dict[str, list[torch.Tensor]] = {site: [] for site in columns}
    device = next(model.parameters()).device
    for start in range(0, len(batch), ROWS_PER_PASS):
        chunk = batch.select(slice(start, start + ROWS_PER_PASS))
        # Every chunk padded to the full width, so the chunks' (B, T) pieces stack.
        width = batch.tokens.size(1) - chunk.tokens.size(1)
        if width:
            chunk = _pad(chunk, width)
        for site, x in record(model, chunk.to(device), columns).items():
            parts[site].append(x)
    acts = {}
    for site, names in by_site.items():
        stacked = torch.cat(parts[site])  # (B, T, k)
        for j, name in enumerate(names):
            acts[name] = stacked[:, :, j]
    return acts


def _pad(batch: Batch, width: int) -> Batch:
    from dataclasses import replace

    pad = torch.zeros(batch.tokens.size(0), width, dtype=batch.tokens.dtype)
    return replace(batch, tokens=torch.cat([batch.tokens, pad], dim=1))


def _real(batch: Batch) -> torch.Tensor:
    """(B, T) bool: the prompt's own positions (BOS and padding left out)."""
    mask = batch.attention_mask.cpu().clone()
    mask[:, 0] = False
    return mask


def _stats(values: torch.Tensor) -> dict:
    values = values.double()
    if values.numel() == 0:
        return {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0, "positions": 0}
    return {
        "mean": _round(float(values.mean())),
        "std": _round(float(values.std(unbiased=False))),
        "min": _round(float(values.min())),
        "max": _round(float(values.max())),
        "positions": int(values.numel()),
    }


def _top(acts: torch.Tensor, src: Source, tokenizer: Tokenizer, k: int) -> list[dict]:
    """The ``k`` rows whose largest-magnitude activation is largest, each at that position.

    Ranked in float64 with the row number breaking ties, so the order never depends on
    how a sort treats equal keys.
    """
    real = _real(src.batch)
    magnitude = acts.double().abs().masked_fill(~real, -1.0)
    best, where = magnitude.max(dim=1)
    order = sorted(range(len(best)), key=lambda row: (-_round(float(best[row])), row))
    rows = []
    for row in order[:k]:
        if float(best[row]) < 0:  # a row with no prompt position at all
            continue
        pos = int(where[row])
        length = int(src.batch.lengths[row])
        ids = src.batch.tokens[row, 1:length].tolist()
        rows.append(
            {
                "row": row,
                "task": src.tasks[row],
                "tokens": [tokenizer.tokens[i] for i in ids],
                # Into ``tokens``, which leaves BOS out.
                "position": pos - 1,
                "answer": tokenizer.tokens[int(src.batch.answers[row])],
                "value": _round(float(acts[row, pos])),
                "at_answer": pos == length - 1,
            }
        )
    return rows


def _value_key(value: object) -> tuple:
    if isinstance(value, bool):
        return (0, int(value), "")
    if isinstance(value, (int, float)):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def _shown(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _latent_split(values: list[float], latents: Sequence[Mapping[str, object]]) -> tuple[dict, dict]:
    """Per latent variable: the answer-position activation's n, mean and std per value, and eta squared."""
    names = sorted({name for row in latents for name in row})
    split, skipped = {}, {}
    for name in names:
        groups: dict[object, list[float]] = {}
        for value, row in zip(values, latents):
            if name in row and isinstance(row[name], (bool, int, float, str)):
                groups.setdefault(row[name], []).append(value)
        if len(groups) < 2:
            skipped[name] = "one value in these samples" if groups else "not a plain value"
            continue
        if len(groups) > MAX_LATENT_VALUES:
            skipped[name] = f"{len(groups)} distinct values; at most {MAX_LATENT_VALUES} are split on"
            continue
        every = [v for group in groups.values() for v in group]
        grand = math.fsum(every) / len(every)
        total = math.fsum((v - grand) ** 2 for v in every)
        rows, between = [], 0.0
        for value in sorted(groups, key=_value_key):
            group = groups[value]
            mean = math.fsum(group) / len(group)
            std = math.sqrt(math.fsum((v - mean) ** 2 for v in group) / len(group))
            between += len(group) * (mean - grand) ** 2
            rows.append({"value": _shown(value), "n": len(group), "mean": _round(mean), "std": _round(std)})
        split[name] = {"eta2": _round(between / total) if total > 0 else 0.0, "values": rows}
    return split, skipped


def _edges(edges, name: str, *, incoming: bool) -> list[dict]:
    mine = [
        {"node": e[0] if incoming else e[1], "weight": _round(float(e[2])), "kind": e[3]}
        for e in edges
        if (e[1] if incoming else e[0]) == name
    ]
    return sorted(mine, key=lambda e: (-abs(e["weight"]), e["node"]))
