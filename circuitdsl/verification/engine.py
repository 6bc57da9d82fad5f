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

import torch

from .. import nodes as n
from ..formatter import format_statement
from ..program import HypothesisSpec
from .adversarial import adversarial_verdicts
from .arm import Arm, SampleBank, VerifyContext
from .errors import VerifyError
from .outcomes import threshold_text
from .patching import ablate_verdict, intervene_verdict
from .roles import RoleBinding, RoleSolver, has_statistics
from .samples import draw
from .size import size_verdict
from .verdict import FAIL, INCONCLUSIVE, PASS, Verdict, finite, interval_of, json_ready

#: progress(claims done, claims in all, the claim being started)
Progress = Callable[[int, int, str], None]


def verify_hypothesis(hyp: HypothesisSpec, ctx: VerifyContext, progress: Progress | None = None) -> list[Verdict]:
    """One verdict per claim in source order; an adversarial block gives one per ``expect``."""
    bank = SampleBank(ctx, hyp.samples)
    arms = (Arm.trained(ctx, bank), Arm.control(ctx, bank))
    total = len(hyp.claims)
    with torch.no_grad():
        roles = _bind_roles(hyp, ctx, arms, progress, total)
        verdicts: list[Verdict] = []
        for index, claim in enumerate(hyp.claims):
            if progress is not None:
                progress(index, total, format_statement(claim))
            if isinstance(claim, n.SizeClaim):
                verdicts.append(size_verdict(claim, ctx))
                continue
            trained, control = (_run(claim, arm, roles[arm.name], hyp, index) for arm in arms)
            verdicts.extend(_with_control(t, c) for t, c in zip(trained, control))
    if progress is not None:
        progress(total, total, "")
    return [_json_ready(v) for v in verdicts]


def _bind_roles(hyp, ctx, arms, progress, total) -> dict[str, dict[str, RoleBinding]]:
    if not hyp.roles:
        return {arm.name: {} for arm in arms}
    if progress is not None:
        progress(0, total, "binding roles")
    samples = None
    if any(has_statistics(r.where) for r in hyp.roles):
        samples = draw(ctx.task, hyp.samples, f"{ctx.seed}:roles", ctx.tokenizer, ctx.context)
    return {arm.name: RoleSolver(hyp.roles, arm, samples, hyp.confidence).solve() for arm in arms}


def _run(claim, arm: Arm, roles: dict[str, RoleBinding], hyp: HypothesisSpec, index: int) -> list[Verdict]:
    """The claim's verdicts on one arm; a claim that cannot be measured is INCONCLUSIVE, with the reason."""
    if isinstance(claim, n.Adversarial):
        return adversarial_verdicts(claim, arm, hyp, index)  # one verdict per `expect`, errors included
    try:
        if isinstance(claim, n.RoleDecl):
            return [role_verdict(roles[claim.name])]
        if isinstance(claim, n.AblateClaim):
            return [ablate_verdict(claim, arm, roles, hyp, index)]
        if isinstance(claim, n.InterveneClaim):
            return [intervene_verdict(claim, arm, roles, hyp, index)]
    except VerifyError as err:
        kind = "ablate" if isinstance(claim, n.AblateClaim) else "intervene"
        problem = {"problem": str(err)}
        return [Verdict(format_statement(claim), kind, None, threshold_text(claim.outcome), INCONCLUSIVE, None, problem)]
    raise TypeError(f"not a claim: {claim!r}")


def role_verdict(binding: RoleBinding) -> Verdict:
    """A role holds when it binds at least one unit; undecided units make an empty role INCONCLUSIVE."""
    bound, unsure = len(binding.bound), len(binding.unsure)
    status = PASS if bound else INCONCLUSIVE if unsure or binding.problem else FAIL
    return Verdict(
        claim=format_statement(binding.decl),
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
    evidence = dict(trained.evidence, control=summary)
    return Verdict(
        claim=trained.claim,
        kind=trained.kind,
        measured=trained.measured,
        threshold=trained.threshold,
        status=trained.status,
        interval=trained.interval,
        evidence=evidence,
        vacuous=trained.status == PASS and control.status == PASS,
    )


def _json_ready(v: Verdict) -> Verdict:
    return Verdict(v.claim, v.kind, finite(v.measured), v.threshold, v.status, v.interval, json_ready(v.evidence), v.vacuous)
