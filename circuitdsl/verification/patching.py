"""Ablation and intervention claims: change some nodes, run the same samples again.

**ablate** replaces activations at every position, by ``runtime.ablation``:

    circuit      the circuit's nodes; everything else runs as trained
    complement   every node of every site that is not in the circuit
    ROLE, ...    the nodes bound to the roles (a head: all its q, k and v channels)

with the claim's kind (``with``), else the prune block's ``ablation``.

**intervene** sets a role's nodes to a value at one position: the ``at:``
position of ``mean(act | condition, at: ...)`` (the answer position by
default, and for a number). The mean is each node's own, over fresh task
samples and the positions where the condition holds, measured on the model
being intervened on. The intervention is run only on samples where its
``when`` holds.

Both are measured on ``samples`` fresh task samples on which the outcome's
``when`` (and the intervention's) holds; ``drops by``/``rises by`` compare
with the unchanged model on the same samples.
"""

from __future__ import annotations

import torch

from runtime.ablation import ablation_hooks
from runtime.nodes import parse_node, sites
from runtime.probe import positions

from circuitdsl.spec.checked import HypothesisSpec
from circuitdsl.spec.claims import AblateClaim, InterveneClaim
from circuitdsl.syntax import ast as n
from circuitdsl.verification.arm import Arm
from circuitdsl.verification.conditions import position_mask, uses_token
from circuitdsl.verification.errors import VerifyError
from circuitdsl.verification.outcomes import metric_values, paired, summary
from circuitdsl.verification.roles import RoleBinding, spread_warning
from circuitdsl.verification.samples import Samples, draw
from circuitdsl.verification.verdict import Verdict, interval_of


def _columns(nodes: tuple[str, ...]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for node in nodes:
        ref = parse_node(node)
        out.setdefault(ref.site, []).append(ref.index)
    return out


def _role_nodes(names: tuple[str, ...], roles: dict[str, RoleBinding], config) -> tuple[str, ...]:
    nodes: list[str] = []
    for name in names:
        binding = roles[name]
        if not binding.bound:
            raise VerifyError(f"role `{name}` picks out no node, so there is nothing to change")
        nodes.extend(binding.nodes(config))
    return tuple(dict.fromkeys(nodes))


def _widths(config) -> dict[str, int]:
    return {site.name: site.width for site in sites(config)}


def _both(a: n.Expr | None, b: n.Expr | None) -> n.Expr | None:
    if a is None or b is None:
        return a if b is None else b
    return n.Binary("and", a, b)


def _keep_masks(targets: tuple[str, ...], arm: Arm, roles: dict[str, RoleBinding]) -> tuple[dict[str, torch.Tensor], int]:
    """Per-site keep masks for an ablation's targets (False = ablated), and how many nodes they ablate."""
    widths = _widths(arm.model.config)
    circuit = _columns(arm.ctx.circuit_nodes)
    if targets == ("complement",):
        keep = {site: torch.zeros(width, dtype=torch.bool) for site, width in widths.items()}
        for site, idx in circuit.items():
            keep[site][idx] = True
        return keep, sum(widths.values()) - len(arm.ctx.circuit_nodes)
    nodes = arm.ctx.circuit_nodes if targets == ("circuit",) else _role_nodes(targets, roles, arm.model.config)
    keep = {}
    for site, idx in _columns(nodes).items():
        keep[site] = torch.ones(widths[site], dtype=torch.bool)
        keep[site][idx] = False
    return keep, len(nodes)


def ablate_verdict(claim: AblateClaim, arm: Arm, roles: dict[str, RoleBinding], hyp: HypothesisSpec) -> Verdict:
    ctx = arm.ctx
    kind = claim.ablation or ctx.default_ablation
    keep, changed = _keep_masks(claim.targets, arm, roles)
    seed = f"{ctx.seed}:claim{claim.position}"
    samples = arm.bank.task(claim.outcome.when)
    base = arm.readout(samples)
    ablated = arm.readout(samples, arm.ablation(keep, kind, hyp.samples, seed))
    ref = metric_values(claim.outcome, base, ctx.tokenizer)
    new = metric_values(claim.outcome, ablated, ctx.tokenizer)
    decision = paired(claim.outcome, ref, new, hyp.confidence)
    return paired_verdict(
        claim,
        decision,
        {
            "ablation": kind,
            "targets": list(claim.targets),
            "nodes_ablated": changed,
            "samples": len(samples),
            "unablated": summary(ref, hyp.confidence),
            "ablated": summary(new, hyp.confidence),
            "summary": f"{claim.outcome.metric_text} {float(ref.mean()):.3f} -> {float(new.mean()):.3f} "
            f"with {changed} node(s) {kind}-ablated, on {len(samples)} samples",
            **_spread(claim.targets, roles, arm),
        },
    )


def _spread(targets: tuple[str, ...], roles: dict[str, RoleBinding], arm: Arm) -> dict:
    """A warning, for a claim on roles, when the nodes it changes reach far beyond the circuit."""
    if targets in (("circuit",), ("complement",)):
        return {}
    nodes = _role_nodes(targets, roles, arm.model.config)
    circuit = set(arm.ctx.circuit_nodes)
    warning = spread_warning(len(nodes), len(circuit.intersection(nodes)), len(circuit))
    return {"warnings": [warning]} if warning else {}


def intervene_verdict(claim: InterveneClaim, arm: Arm, roles: dict[str, RoleBinding], hyp: HypothesisSpec) -> Verdict:
    ctx, config = arm.ctx, arm.model.config
    nodes = _role_nodes((claim.role,), roles, config)
    seed = f"{ctx.seed}:claim{claim.position}"
    values, offset = _target_values(claim, nodes, arm, hyp, seed)
    samples = arm.bank.task(_both(claim.when, claim.outcome.when))
    widths = _widths(config)
    patch, columns = {}, {}
    for site, idx in _columns(nodes).items():
        vector = torch.zeros(widths[site])
        vector[idx] = torch.tensor([values[f"{site}[{i}]"] for i in idx])
        patch[site] = vector.to(arm.device)
        columns[site] = torch.zeros(widths[site], dtype=torch.bool)
        columns[site][idx] = True

    def hooks(chunk, rows):
        at = positions(chunk, offset)[:, :, None]  # (B, T, 1): where the nodes are set
        keep = {site: ~(at & cols).to(arm.device) for site, cols in columns.items()}
        return ablation_hooks(arm.model, keep, "mean", patch)

    base = arm.readout(samples)
    patched = arm.readout(samples, hooks)
    ref = metric_values(claim.outcome, base, ctx.tokenizer)
    new = metric_values(claim.outcome, patched, ctx.tokenizer)
    decision = paired(claim.outcome, ref, new, hyp.confidence)
    shown = dict(list(values.items())[:16])
    return paired_verdict(
        claim,
        decision,
        {
            "nodes": list(nodes),
            "values": shown,
            "position": "answer" if offset == 0 else f"answer{offset}",
            "samples": len(samples),
            "unchanged": summary(ref, hyp.confidence),
            "intervened": summary(new, hyp.confidence),
            "summary": f"{claim.outcome.metric_text} {float(ref.mean()):.3f} -> {float(new.mean()):.3f} "
            f"with {len(nodes)} node(s) set, on {len(samples)} samples",
            **_spread((claim.role,), roles, arm),
        },
    )


def value_pool(claim: InterveneClaim, arm: Arm, hyp: HypothesisSpec, seed: str) -> tuple[Samples, torch.Tensor, int | None]:
    """For ``mean(act | condition, at: k)``: fresh samples, the (N, T) positions where the condition
    holds, and the offset from the answer those positions are taken at (None: wherever a token is)."""
    ctx = arm.ctx
    pool: Samples = draw(ctx.task, hyp.samples, f"{seed}:value", ctx.tokenizer, ctx.context)
    given = claim.mean_of
    offset = claim.at if claim.at is not None else (None if uses_token(given) else 0)
    rows = position_mask(given, pool, positions(pool.batch, offset))
    if not rows.any():
        raise VerifyError(f"`{claim.value_text}`: the condition holds at no position of {len(pool)} samples")
    return pool, rows, offset


def paired_verdict(claim, decision, evidence: dict) -> Verdict:
    """The verdict of an ablation or intervention, decided on paired samples."""
    est = decision.estimate
    return Verdict(
        id=claim.id,
        claim=claim.text,
        kind=claim.kind,
        measured=est.value,
        threshold=claim.outcome.threshold,
        status=decision.status,
        interval=interval_of(est.low, est.high),
        evidence=evidence,
    )


def _target_values(claim: InterveneClaim, nodes: tuple[str, ...], arm: Arm, hyp: HypothesisSpec, seed: str) -> tuple[dict[str, float], int]:
    """Each node's value to set, and the position (an offset from the answer) to set it at."""
    if claim.number is not None:
        return {node: claim.number for node in nodes}, 0
    pool, rows, offset = value_pool(claim, arm, hyp, seed)
    columns = _columns(nodes)
    acts = arm.record(pool, {site: torch.tensor(idx) for site, idx in columns.items()})
    values = {}
    for site, idx in columns.items():
        means = acts[site][rows].double().mean(0)  # (N, T, k)[rows] -> (k,)
        for k, i in enumerate(idx):
            values[f"{site}[{i}]"] = float(means[k])
    # A token-conditioned mean has no one position; the patch then goes where the answer is read.
    return values, 0 if offset is None else offset
