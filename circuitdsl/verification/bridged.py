"""Interventions through a bridge: change sparse-model channels, measure the dense model.

``intervene ROLE = VALUE through bridge B -> OUTCOME`` sets the role's
residual channels in the bridge's sparse space (``mean(act | condition)`` is
each channel's mean there, over the dense model's encoded stream where the
condition holds) at the answer position (or ``at:``), maps the change into
the dense model through the decoder, and measures the outcome on the dense
model against its unchanged run on the same samples.

Each arm goes through its own bridge: the trained arm through the bridge fitted
to the trained sparse model, the control arm through one fitted to the
untrained control (with the roles that arm binds). A third measurement, on the
trained arm, replaces the decoded change by a random direction of the same
norm; a claim that holds there too is about the size of the change, not its
direction, and is marked vacuous as well.
"""

from __future__ import annotations

import torch

from runtime.bridge import channel_values, edited_logits, run
from runtime.probe import Readout, positions

from circuitdsl.spec.checked import HypothesisSpec
from circuitdsl.spec.claims import InterveneClaim
from circuitdsl.verification.arm import Arm, seed_for
from circuitdsl.verification.outcomes import metric_values, paired, summary
from circuitdsl.verification.patching import _both, _role_nodes, paired_verdict, value_pool
from circuitdsl.verification.roles import RoleBinding
from circuitdsl.verification.samples import Samples
from circuitdsl.verification.verdict import PASS, Verdict


def bridged_verdict(claim: InterveneClaim, arm: Arm, roles: dict[str, RoleBinding], hyp: HypothesisSpec) -> Verdict:
    ctx = arm.ctx
    sides = ctx.bridges[claim.bridge]
    bridge = sides.trained if arm.name == "trained" else sides.control
    nodes = _role_nodes((claim.role,), roles, arm.model.config)
    seed = f"{ctx.seed}:claim{claim.position}"
    values, offset = _target_values(claim, nodes, arm, sides.dense, bridge, hyp, seed)
    samples = arm.bank.task(_both(claim.when, claim.outcome.when))
    base = _readout(sides.dense, samples, ctx.batch_size)
    moved = _readout(sides.dense, samples, ctx.batch_size, bridge, values, offset)
    ref = metric_values(claim.outcome, base, ctx.tokenizer)
    new = metric_values(claim.outcome, moved, ctx.tokenizer)
    decision = paired(claim.outcome, ref, new, hyp.confidence)
    evidence = {
        "bridge": claim.bridge,
        "nodes": list(nodes),
        "values": dict(list(values.items())[:16]),
        "position": "answer" if offset == 0 else f"answer{offset}",
        "samples": len(samples),
        "unchanged": summary(ref, hyp.confidence),
        "intervened": summary(new, hyp.confidence),
        "summary": f"dense {claim.outcome.metric_text} {float(ref.mean()):.3f} -> {float(new.mean()):.3f} with "
        f"{len(nodes)} sparse channel(s) set through bridge `{claim.bridge}`, on {len(samples)} samples",
    }
    if arm.name == "trained":
        generator = torch.Generator().manual_seed(seed_for(seed, "random-direction"))
        random = _readout(sides.dense, samples, ctx.batch_size, bridge, values, offset, generator)
        shuffled = paired(claim.outcome, ref, metric_values(claim.outcome, random, ctx.tokenizer), hyp.confidence)
        evidence["random_direction"] = {**shuffled.point(), "holds": shuffled.status == PASS}
    return paired_verdict(claim, decision, evidence)


def _readout(dense, samples: Samples, size: int, bridge=None, values=None, offset: int = 0, generator=None) -> Readout:
    """The dense model's prediction on every sample, with the bridge's edit when one is given."""
    parts = []
    for chunk in samples.chunks(size):
        chunk = chunk.to(next(dense.parameters()).device)
        if bridge is None:
            logits, _ = run(dense, chunk.tokens)
            logits = logits[torch.arange(len(chunk), device=logits.device), chunk.answer_pos]
        else:
            logits = edited_logits(dense, bridge, chunk, values, positions(chunk, offset), random_direction=generator)
        parts.append(logits.detach().cpu())
    batch = samples.batch
    return Readout(torch.cat(parts), batch.answers, batch.competitors)


def _target_values(claim: InterveneClaim, nodes, arm: Arm, dense, bridge, hyp: HypothesisSpec, seed: str):
    """Each node's value in the bridge's sparse space, and the position offset to set it at."""
    if claim.number is not None:
        return {node: claim.number for node in nodes}, 0
    pool, rows, offset = value_pool(claim, arm, hyp, seed)
    with torch.no_grad():
        values = channel_values(bridge, dense, pool.batch, tuple(nodes), rows)
    return values, 0 if offset is None else offset
