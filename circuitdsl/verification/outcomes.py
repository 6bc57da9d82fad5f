"""Outcomes: what a metric measures per sample, and how a predicted change is decided.

Per sample, a metric is one number; its mean over samples is the outcome:

    accuracy   1 if the argmax is the answer, else 0
    loss       -log p(answer)
    margin     answer logit - best competitor logit (best other token without competitors)
    p("t")     the probability of token t
    rate("t")  1 if the argmax is token t, else 0

Without ``drops by``/``rises by`` the bound is on that mean (a share's interval
is Wilson's, a mean's Student's t). With them, it is on the change from a
reference: ``drops`` is reference - measured, ``rises`` measured - reference.
Ablations and interventions change the model on the *same* samples, so the
change is paired (the t interval of per-sample differences); an adversarial
variant is compared with independent samples of the task (Newcombe for
shares, Welch for means).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from runtime.probe import Readout
from runtime.stats import Estimate, independent_difference, mean_interval, share_or_mean
from runtime.tokenizer import Tokenizer

from circuitdsl.spec.claims import Outcome
from circuitdsl.verification.errors import VerifyError
from circuitdsl.verification.verdict import compare, status_of


def metric_values(outcome: Outcome, readout: Readout, tokenizer: Tokenizer) -> Tensor:
    """(B,) float64: the outcome's metric on each sample."""
    metric = outcome.metric
    if metric == "accuracy":
        return readout.correct.double()
    if metric == "loss":
        return -readout.answer_logprob.double()
    if metric == "margin":
        return readout.margin.double()
    # The checker admits no other metric, and only a one-token string for these two.
    token_id = tokenizer.token_id(outcome.token)
    return readout.prob(token_id).double() if metric == "p" else (readout.argmax == token_id).double()


@dataclass(frozen=True)
class Decision:
    estimate: Estimate
    status: str

    def point(self) -> dict:
        e = self.estimate
        return {"value": e.value, "lo": e.low, "hi": e.high, "n": e.n, "status": self.status}


def decide(outcome: Outcome, estimate: Estimate) -> Decision:
    return Decision(estimate, status_of(compare(estimate.low, estimate.high, outcome.op, outcome.bound)))


def paired(outcome: Outcome, reference: Tensor, measured: Tensor, confidence: float) -> Decision:
    """The outcome on ``measured``; a change is against ``reference`` on the same samples."""
    if measured.numel() == 0:
        raise VerifyError("no sample to measure the outcome on")
    if outcome.change is None:
        return decide(outcome, share_or_mean(measured, confidence))
    diff = reference - measured if outcome.change == "drops" else measured - reference
    return decide(outcome, mean_interval(diff, confidence))


def independent(outcome: Outcome, reference: Tensor | None, measured: Tensor, confidence: float) -> Decision:
    """The outcome on ``measured``; a change is against independent ``reference`` samples."""
    if measured.numel() == 0:
        raise VerifyError("no sample to measure the outcome on")
    if outcome.change is None:
        return decide(outcome, share_or_mean(measured, confidence))
    if reference is None or reference.numel() == 0:
        raise VerifyError("no sample of the unchanged task to compare with")
    if outcome.change == "drops":
        return decide(outcome, independent_difference(reference, measured, confidence))
    return decide(outcome, independent_difference(measured, reference, confidence))


def summary(values: Tensor, confidence: float) -> dict:
    e = share_or_mean(values, confidence)
    return {"value": e.value, "lo": e.low, "hi": e.high, "n": e.n}
