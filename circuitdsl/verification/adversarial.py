"""Adversarial variants: sample the changed task, run the full (unpruned) model on it.

A block's bindings override the task's (``runtime`` never sees them: the
sampler draws the variant). Each ``expect`` is one verdict.

**Sweeps.** A binding whose value is a range (``pad = 0..8``) is swept: the
variant is sampled once per whole number of the range with the variable
fixed to it (several swept variables: every combination), and each
expectation is measured at each value. An expectation's ``when`` selects
samples at each value; a value where no sample satisfies it is not covered
(``depth = 1..2`` with ``when depth == 1`` decides at 1 only; on the trained
model the other values are still measured for the curve, marked "not
claimed"). The expectation holds when it holds at every covered value: FAIL if it fails at
any, INCONCLUSIVE if undecided at any (or no value is covered), else PASS.
The verdict reports the deciding value (the first failure, else the first
undecided, else the one closest to its bound) and the whole curve.

**Changes.** ``drops by``/``rises by`` compare with fresh samples of the
unchanged task, restricted by the same ``when`` when the task has every
variable it names (otherwise the whole task is the reference).
"""

from __future__ import annotations

import itertools

from torch import Tensor

from runtime.probe import Readout

from circuitdsl.spec.checked import HypothesisSpec
from circuitdsl.spec.claims import ExpectClaim, Outcome, Variant
from circuitdsl.syntax import ast as n
from circuitdsl.syntax.formatter import format_expr
from circuitdsl.verification.arm import Arm
from circuitdsl.verification.conditions import draw_when, evaluate, names_in
from circuitdsl.verification.errors import NoSamples, VerifyError
from circuitdsl.verification.outcomes import Decision, independent, metric_values, summary
from circuitdsl.verification.verdict import FAIL, INCONCLUSIVE, PASS, Verdict, interval_of


def sweep_points(variant: Variant) -> tuple[list[str], list[Variant], list[dict]]:
    """The swept variables, then for each point its variant and its coordinates."""
    axes = [[(name, v) for v in values] for name, values in variant.axes]
    points, coords = [], []
    for combo in itertools.product(*axes):
        points.append(variant.at(variant.fixed + tuple(n.Binding(name, n.Number(v)) for name, v in combo)))
        coords.append(dict(combo))
    return [name for name, _ in variant.axes], points, coords


def adversarial_verdicts(expects: list[ExpectClaim], arm: Arm, hyp: HypothesisSpec) -> list[Verdict]:
    """The verdicts of one adversarial block's expects, whose variant is sampled once for all of them."""
    first = expects[0]
    try:
        variant: _Variant | VerifyError = _Variant(arm, hyp, f"{arm.ctx.seed}:claim{first.position}", first.variant)
    except VerifyError as err:
        variant = err  # every expect reports it, so both arms give one verdict per expect
    verdicts = []
    for expect in expects:
        try:
            if isinstance(variant, VerifyError):
                raise variant
            verdicts.append(variant.verdict(expect))
        except VerifyError as err:
            verdicts.append(
                Verdict(expect.id, expect.text, "adversarial", None, expect.outcome.threshold, INCONCLUSIVE, None, {"problem": str(err)})
            )
    return verdicts


class _Variant:
    """One adversarial block on one arm: its sweep points, and their samples (drawn once, shared by expects)."""

    def __init__(self, arm: Arm, hyp: HypothesisSpec, seed: str, variant: Variant):
        self.arm, self.hyp, self.seed, self.bindings = arm, hyp, seed, variant.bindings
        self.swept, self.points, self.coords = sweep_points(variant)
        self.latents = set(arm.ctx.task.latents)
        self._readouts: dict[tuple[str, str], Readout] = {}

    def values(self, which: str, point: Variant | None, when: n.Expr | None, outcome: Outcome) -> Tensor:
        """Per-sample metric values on the task (``which`` = "base") or one sweep point, where ``when`` holds."""
        ctx = self.arm.ctx
        key = (which, format_expr(when) if when is not None else "")
        if key not in self._readouts:
            if which == "base":  # the unchanged task: the bank's samples, shared with other claims
                samples = self.arm.bank.task(when)
            else:
                seed = f"{self.seed}:{which}:{key[1]}"
                samples = draw_when(when, ctx.task, self.hyp.samples, seed, ctx.tokenizer, ctx.context, point)
            self._readouts[key] = self.arm.readout(samples)
        return metric_values(outcome, self._readouts[key], ctx.tokenizer)

    def verdict(self, expect: ExpectClaim) -> Verdict:
        outcome = expect.outcome
        confidence = self.hyp.confidence
        reference = None
        if outcome.change is not None:
            task_has_all = outcome.when is not None and names_in(outcome.when) - {"token"} <= self.latents
            reference = self.values("base", None, outcome.when if task_has_all else None, outcome)
        curve: list[dict] = []
        not_covered: list = []
        decisions: list[Decision] = []
        decided_at: list[int] = []  # the curve index of each decision
        for point, (at, coord) in enumerate(zip(self.points, self.coords)):
            x = _x(coord, self.swept)
            when = self._when_at(outcome.when, coord)
            if when is False:
                not_covered.append(x)
                # Outside the claim, but part of the curve the sweep asked for:
                # measured on the trained model, so the report shows how far
                # the prediction holds beyond what was claimed.
                if self.arm.name == "trained":
                    values = self.values(f"variant{point}", at, None, outcome)
                    beyond = independent(outcome, reference, values, confidence).point()
                    curve.append({"x": x, **beyond, "status": "not claimed", "metric": summary(values, confidence)["value"]})
                continue
            try:
                values = self.values(f"variant{point}", at, when, outcome)
            except NoSamples:
                if when is None:
                    raise
                not_covered.append(x)
                continue
            decision = independent(outcome, reference, values, confidence)
            decisions.append(decision)
            decided_at.append(len(curve))
            metric = summary(values, confidence)
            curve.append({"x": x, **decision.point(), "metric": metric["value"]})
        if not decisions:
            raise NoSamples(f"`when {format_expr(outcome.when)}` holds on no sample of any swept value")
        statuses = [d.status for d in decisions]
        status = FAIL if FAIL in statuses else INCONCLUSIVE if INCONCLUSIVE in statuses else PASS
        deciding = _deciding(decisions, status, outcome.bound)
        est, point = decisions[deciding].estimate, curve[decided_at[deciding]]
        evidence: dict = {"variant": {b.name: format_expr(b.value) for b in self.bindings}, "samples": est.n}
        said = f"{outcome.metric_text} {point['metric']:.3f} on the variant"
        if reference is not None:
            evidence["unchanged_task"] = summary(reference, confidence)
            said += f", {evidence['unchanged_task']['value']:.3f} on the task"
        if self.swept:
            evidence["swept"] = self.swept
            evidence["curve"] = curve
            if not_covered:
                evidence["not_covered"] = not_covered
            said += f" (at {', '.join(self.swept)} = {point['x']}, of {len(decisions)} value(s) claimed)"
        # Swept or not, the metric at the point that decided, beside the task's (the report's before -> after).
        evidence["variant_metric"] = point["metric"]
        evidence["summary"] = said
        return Verdict(
            id=expect.id,
            claim=expect.text,
            kind="adversarial",
            measured=est.value,
            threshold=outcome.threshold,
            status=status,
            interval=interval_of(est.low, est.high),
            evidence=evidence,
        )

    def _when_at(self, when: n.Expr | None, coord: dict) -> n.Expr | None | bool:
        """``when`` at one sweep point: decided already (False: skip the point; None: no filter) when it
        names only swept variables, else the condition to draw by."""
        if when is None or not coord or not names_in(when) <= set(coord):
            return when
        return None if evaluate(when, coord) else False


def _x(coord: dict, swept: list[str]):
    return coord[swept[0]] if len(swept) == 1 else (dict(coord) if coord else None)


def _deciding(decisions: list[Decision], status: str, bound: float) -> int:
    """The index of the point that decides: the first with the verdict's status, or for a PASS the closest call."""
    if status != PASS:
        return next(i for i, d in enumerate(decisions) if d.status == status)
    return min(range(len(decisions)), key=lambda i: abs(decisions[i].estimate.value - bound))
