"""What ``circ verify`` says about one claim, and the three-valued comparisons behind it.

A measured quantity is an interval, not a number: a claim holds (PASS) when
its whole confidence interval satisfies the bound, fails (FAIL) when the whole
interval violates it, and is INCONCLUSIVE when the bound lies inside. Logic
over such comparisons is Kleene's: True, False or None (unknown).
"""

from __future__ import annotations

import math
from typing import Any

import attrs

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
KINDS = ("size", "role", "ablate", "intervene", "adversarial")


@attrs.frozen
class Verdict:
    #: The claim's stable id (:mod:`circuitdsl.spec.claims`): what reports and pytest items key by.
    id: str
    #: The claim as canonical source text (``circuitdsl.syntax.formatter``).
    claim: str
    #: "size", "role", "ablate", "intervene" or "adversarial".
    kind: str
    #: The measured value (a count, a metric, a change); None when nothing could be measured.
    measured: float | None
    #: What the claim requires of it: "<= 40", "drops by >= 0.25", ">= 1 node".
    threshold: str
    #: "PASS", "FAIL" or "INCONCLUSIVE".
    status: str
    #: The confidence interval of ``measured``; None for exact counts.
    interval: tuple[float, float] | None
    #: JSON-ready detail: role bindings, curves, closest candidates, the control's result.
    evidence: dict
    #: The claim also holds on the untrained control model, so it says little about training.
    vacuous: bool = False

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "claim": self.claim,
            "kind": self.kind,
            "measured": self.measured,
            "threshold": self.threshold,
            "status": self.status,
            "interval": list(self.interval) if self.interval is not None else None,
            "evidence": self.evidence,
            "vacuous": self.vacuous,
        }


def status_of(holds: bool | None) -> str:
    return PASS if holds is True else FAIL if holds is False else INCONCLUSIVE


def compare(low: float, high: float, op: str, bound_low: float, bound_high: float | None = None) -> bool | None:
    """Whether every value in [low, high] stands in ``op`` to every value of the bound's interval.

    True when all pairs satisfy it, False when none does, None when it
    depends on where in the intervals the truth lies. A NaN anywhere is None.
    """
    bound_high = bound_low if bound_high is None else bound_high
    if any(math.isnan(v) for v in (low, high, bound_low, bound_high)):
        return None
    # The difference (value - bound) ranges over [dlo, dhi]; inf - inf only
    # arises for two unbounded intervals, which say nothing.
    with_nan = [low - bound_high, high - bound_low]
    if any(math.isnan(v) for v in with_nan):
        return None
    dlo, dhi = with_nan
    if op == ">=":
        return True if dlo >= 0 else False if dhi < 0 else None
    if op == ">":
        return True if dlo > 0 else False if dhi <= 0 else None
    if op == "<=":
        return True if dhi <= 0 else False if dlo > 0 else None
    if op == "<":
        return True if dhi < 0 else False if dlo >= 0 else None
    if op == "==":
        return True if dlo == dhi == 0 else False if dlo > 0 or dhi < 0 else None
    if op == "!=":
        same = compare(low, high, "==", bound_low, bound_high)
        return None if same is None else not same
    raise ValueError(f"unknown comparison {op!r}")


def kleene_and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def kleene_or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def kleene_not(a: bool | None) -> bool | None:
    return None if a is None else not a


def finite(value: float | None) -> float | None:
    """``value``, or None when it is missing or not finite (JSON has no NaN or infinity)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def interval_of(low: float, high: float) -> tuple[float, float] | None:
    """An interval for a Verdict: None unless both ends are finite."""
    return (float(low), float(high)) if math.isfinite(low) and math.isfinite(high) else None


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float spelled as a string ("inf", "-inf", "nan")."""
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
