"""Ablation: what a node carries once it is cut out of the model.

A circuit is tested by running the model with every node outside it
*ablated*: its activation replaced by a value that carries no information
about the example at hand. Three replacements are offered:

    mean      the node's mean activation over the model's training
              distribution (the mixture it was trained on, not one task),
              computed once per model by ``mean_activations``
    zero      0.0; harsh for units whose typical value is far from zero
    resample  the node's activation on another example of the same batch
              (``resample_activations``), so the value is realistic but
              unrelated to this example's answer

``ablation_hooks`` turns per-site keep masks into model hooks; it knows
nothing about pruning, so hypotheses and interventions use it as well.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import Tensor

from .batch import Batch
from .model import Hook, SparseGPT
from .nodes import parse_node, sites

ABLATIONS = ("mean", "zero", "resample")


@torch.no_grad()
def mean_activations(model: SparseGPT, batches: Iterable[Batch]) -> dict[str, Tensor]:
    """Mean activation of every site over the real (non-pad) positions of ``batches``.

    Returns ``{site_name: (width,) float32}``: plain tensors, so the caller
    can cache them per model (e.g. with safetensors). Sums are kept in
    float64 so that thousands of samples do not lose the small means.
    """
    sums: dict[str, Tensor] = {}
    real: list[Tensor] = []  # the (B, T, 1) mask of the batch being run

    def recorder(name: str) -> Hook:
        def hook(x: Tensor) -> None:
            total = (x.double() * real[0]).sum((0, 1))
            sums[name] = sums[name] + total if name in sums else total

        return hook

    count = 0
    with model.hooks({name: recorder(name) for name in model.site_names}):
        for batch in batches:
            real[:] = [batch.attention_mask.unsqueeze(-1).double()]
            model(batch.tokens)  # full mode: the means are over every real position
            count += int(batch.lengths.sum())
    if count == 0:
        raise ValueError("no real positions to average over: every batch was empty")
    return {name: (sums[name] / count).float() for name in model.site_names}


def resample_donors(batch: Batch, generator: torch.Generator) -> Tensor:
    """For each row, another row of the batch to take ablated activations from.

    A donor is at least as long as its recipient where the batch allows, so
    that, aligned at the answer position (``resample_activations``), every
    real position of the recipient has a real position of the donor.
    Returns (B,) row indices.
    """
    lengths = batch.lengths.tolist()
    donors = []
    for i, n in enumerate(lengths):
        candidates = [j for j, m in enumerate(lengths) if j != i and m >= n]
        if not candidates:  # i is the one longest row
            candidates = [j for j in range(len(lengths)) if j != i] or [i]
        donors.append(candidates[int(torch.randint(len(candidates), (), generator=generator))])
    return torch.tensor(donors, dtype=torch.long)


@torch.no_grad()
def resample_activations(model: SparseGPT, batch: Batch, donors: Tensor, *, answer_only: bool = True) -> dict[str, Tensor]:
    """Each site's activations on the donor rows, aligned with their recipients.

    Run plain (nothing ablated) in the same mode the ablated model will run
    in (``answer_only`` = the answer_pos mode), so each tensor has the shape
    the site's hook will see. Rows are aligned at the answer position:
    recipient position t reads donor position t + len(donor) - len(recipient),
    clamped to the batch; that keeps "the token before the answer" meaning
    the same thing for both rows.
    """
    acts: dict[str, Tensor] = {}
    record = {name: (lambda n: lambda x: acts.__setitem__(n, x))(name) for name in model.site_names}
    with model.hooks(record):
        model(batch.tokens, batch.answer_pos if answer_only else None)
    B, T = batch.tokens.shape
    device = batch.tokens.device
    shift = (batch.lengths[donors.to(batch.lengths.device)] - batch.lengths).to(device)  # (B,)
    index = (torch.arange(T, device=device)[None, :] + shift[:, None]).clamp(0, T - 1)  # (B, T)
    out = {}
    for name, x in acts.items():
        x = x[donors.to(x.device)]  # (B, T or 1, width), row i now holds its donor's activations
        if x.size(1) == T:
            x = x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.size(-1)))
        out[name] = x
    return out


def ablation_values(
    kind: str, site: str, means: Mapping[str, Tensor] | None, resample_from: Mapping[str, Tensor] | None
) -> Tensor:
    """What ablated nodes of ``site`` become: (width,) means, a scalar 0, or (B, T, width) donor activations."""
    if kind == "mean":
        if means is None or site not in means:
            raise ValueError(f"mean ablation needs the mean activations of site {site!r}")
        return means[site]
    if kind == "zero":
        return torch.zeros(())
    if kind == "resample":
        if resample_from is None or site not in resample_from:
            raise ValueError(f"resample ablation needs donor activations for site {site!r} (resample_activations)")
        return resample_from[site]
    raise ValueError(f"unknown ablation {kind!r}; expected one of {', '.join(ABLATIONS)}")


def keep_masks(config, nodes: Iterable[str], *, ablate: bool = False) -> dict[str, Tensor]:
    """Per-site bool keep masks from node names (``"1.attn.q[5]"``), for ``ablation_hooks``.

    By default the named nodes are kept and every other node is ablated (the
    circuit alone); with ``ablate=True`` the named nodes are ablated and the
    rest kept (the circuit's complement, or one role knocked out). Raises
    ValueError on a name that is not a node of this config.
    """
    keep = {site.name: torch.full((site.width,), ablate) for site in sites(config)}
    for name in nodes:
        ref = parse_node(name, config)
        keep[ref.site][ref.index] = not ablate
    return keep


def ablation_hooks(
    model: SparseGPT,
    keep: Mapping[str, Tensor],
    kind: str = "mean",
    means: Mapping[str, Tensor] | None = None,
    resample_from: Mapping[str, Tensor] | None = None,
) -> dict[str, Hook]:
    """Hooks that replace the nodes ``keep`` marks False by their ablated value.

    ``keep`` maps site names to bool tensors broadcastable to the site's
    activation: (width,) for a node set, or (B, T, width) to ablate at some
    positions only. Sites missing from ``keep`` are left alone. A kept node's
    activation passes through bit for bit.
    """
    hooks = {}
    for site, mask in keep.items():
        if site not in model.site_names:
            raise KeyError(f"unknown site {site!r}")
        value = ablation_values(kind, site, means, resample_from)
        hooks[site] = _replace(mask.to(torch.bool), value)
    return hooks


def _replace(keep: Tensor, value: Tensor) -> Hook:
    def hook(x: Tensor) -> Tensor:
        if value.dim() == 3 and value.shape != x.shape:
            raise ValueError(
                f"donor activations of shape {tuple(value.shape)} for a site of shape {tuple(x.shape)}: "
                "resample from the same batch, in the same forward mode"
            )
        return torch.where(keep, x, value.to(x.dtype))

    return hook
