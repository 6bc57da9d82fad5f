"""The errors of deciding a claim: one the user can act on, and one that is a bug in circ."""


class VerifyError(Exception):
    """A claim that cannot be measured (no samples satisfy its condition, a text variable
    in ``corr``...): its verdict is INCONCLUSIVE with this message as the reason."""


class NoSamples(VerifyError):
    """No fresh sample satisfies a claim's condition (even after drawing many rounds)."""


class CheckerGap(TypeError):
    """A claim the checker should have rejected reached the verifier: a bug in circ, so it is an
    internal error (exit 3) rather than an INCONCLUSIVE verdict that would hide it."""
