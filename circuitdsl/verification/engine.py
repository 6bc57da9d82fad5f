"""verify_hypothesis: decide every claim of a hypothesis, on the trained model and its control.

    bind roles        on each arm, from one shared set of fresh task samples
    for each claim    size: counted on the circuit (once; the control shares it)
                      role, ablate, intervene, adversarial: run on both arms
                      vacuous = it passes on the trained model *and* the control

Samples are named by the run's seed and the claim's index (``samples.py``),
and both arms see the same ones, so the same inputs give the same verdicts
and trained and control differ only in the model.
"""

from __future__ import annotations

from typing import Callable

import attrs
import torch

from circuitdsl.spec import claims as c
from circuitdsl.spec.checked import HypothesisSpec
from circuitdsl.verification.adversarial import adversarial_verdicts
from circuitdsl.verification.arm import Arm, SampleBank, VerifyContext
from circuitdsl.verification.bridged import bridged_verdict
from circuitdsl.verification.errors import VerifyError
from circuitdsl.verification.patching import ablate_verdict, intervene_verdict
from circuitdsl.verification.roles import RoleBinding, RoleSolver, has_statistics
from circuitdsl.verification.samples import draw
from circuitdsl.verification.size import size_verdict
from circuitdsl.verification.verdict import FAIL, INCONCLUSIVE, PASS, Verdict, finite, interval_of, json_ready

#: progress(claims done, claims in all, the claim being started)
Progress = Callable[[int, int, str], None]


def verify_hypothesis(hyp: HypothesisSpec, ctx: VerifyContext, progress: Progress | None = None) -> list[Verdict]:
    """One verdict per claim, in the order of ``hyp.claims`` and with the same ids."""
    bank = SampleBank(ctx, hyp.samples)
    arms = (Arm.trained(ctx, bank), Arm.control(ctx, bank))
    total = len(hyp.claims)
    role_claims = tuple(claim for claim in hyp.claims if isinstance(claim, c.RoleClaim))
    with torch.no_grad():
        roles = _bind_roles(hyp, role_claims, ctx, arms, progress, total)
        verdicts: list[Verdict] = []
        for group in _groups(hyp.claims):
            if progress is not None:
                progress(len(verdicts), total, group[0].text)
            if isinstance(group[0], c.SizeClaim):
                verdicts.append(size_verdict(group[0], ctx))
                continue
            trained, control = (_run(group, arm, roles[arm.name], hyp) for arm in arms)
            verdicts.extend(_with_control(t, cv) for t, cv in zip(trained, control))
    if progress is not None:
        progress(total, total, "")
    return [_json_ready(v) for v in verdicts]


def _groups(claims: tuple[c.Claim, ...]) -> list[list[c.Claim]]:
    """Claims in order, the expects of one adversarial block together: they share its variant's samples."""
    groups: list[list[c.Claim]] = []
    for claim in claims:
        same_block = (
            groups
            and isinstance(claim, c.ExpectClaim)
            and isinstance(groups[-1][0], c.ExpectClaim)
            and groups[-1][0].position == claim.position
        )
        if same_block:
            groups[-1].append(claim)
        else:
            groups.append([claim])
    return groups


def _bind_roles(hyp, role_claims, ctx, arms, progress, total) -> dict[str, dict[str, RoleBinding]]:
    if not role_claims:
        return {arm.name: {} for arm in arms}
    if progress is not None:
        progress(0, total, "binding roles")
    samples = None
    if any(has_statistics(r.decl.where) for r in role_claims):
        samples = draw(ctx.task, hyp.samples, f"{ctx.seed}:roles", ctx.tokenizer, ctx.context)
    return {arm.name: RoleSolver(role_claims, arm, samples, hyp.confidence).solve() for arm in arms}


def _run(group: list[c.Claim], arm: Arm, roles: dict[str, RoleBinding], hyp: HypothesisSpec) -> list[Verdict]:
    """The group's verdicts on one arm; a claim that cannot be measured is INCONCLUSIVE, with the reason."""
    claim = group[0]
    if isinstance(claim, c.ExpectClaim):
        return adversarial_verdicts(group, arm, hyp)  # one verdict per `expect`, errors included
    try:
        if isinstance(claim, c.RoleClaim):
            return [role_verdict(claim, roles[claim.name])]
        if isinstance(claim, c.AblateClaim):
            return [ablate_verdict(claim, arm, roles, hyp)]
        if isinstance(claim, c.InterveneClaim) and claim.bridge is not None:
            return [bridged_verdict(claim, arm, roles, hyp)]
        if isinstance(claim, c.InterveneClaim):
            return [intervene_verdict(claim, arm, roles, hyp)]
    except VerifyError as err:
        problem = {"problem": str(err)}
        return [Verdict(claim.id, claim.text, claim.kind, None, claim.outcome.threshold, INCONCLUSIVE, None, problem)]
    raise TypeError(f"not a claim: {claim!r}")


def role_verdict(claim: c.RoleClaim, binding: RoleBinding) -> Verdict:
    """A role holds when it binds at least one unit; undecided units make an empty role INCONCLUSIVE."""
    bound, unsure = len(binding.bound), len(binding.unsure)
    status = PASS if bound else INCONCLUSIVE if unsure or binding.problem else FAIL
    return Verdict(
        id=claim.id,
        claim=claim.text,
        kind="role",
        measured=float(bound),
        threshold=">= 1 node",
        status=status,
        interval=interval_of(bound, bound + unsure),
        evidence=binding.evidence(),
    )


def _with_control(trained: Verdict, control: Verdict) -> Verdict:
    summary = {"status": control.status, "measured": finite(control.measured), "interval": control.interval}
    for key in ("nodes", "problem"):
        if key in control.evidence:
            summary[key] = control.evidence[key]
    # Through a bridge there is a second control: a random direction of the same size.
    random = (trained.evidence.get("random_direction") or {}).get("holds", False)
    return attrs.evolve(
        trained,
        evidence=dict(trained.evidence, control=summary),
        vacuous=trained.status == PASS and (control.status == PASS or random),
    )


def _json_ready(v: Verdict) -> Verdict:
    return attrs.evolve(v, measured=finite(v.measured), evidence=json_ready(v.evidence))
