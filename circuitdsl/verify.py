"""The verification engine's public face; see :mod:`circuitdsl.verification`."""

from .verification import FAIL, INCONCLUSIVE, PASS, Progress, Verdict, VerifyContext, VerifyError, verify_hypothesis

__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "Progress", "Verdict", "VerifyContext", "VerifyError", "verify_hypothesis"]
