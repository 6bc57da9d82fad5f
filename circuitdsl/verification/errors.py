"""The one error a claim's evaluation raises when it cannot be measured as written."""


class VerifyError(Exception):
    """A claim that cannot be measured (no samples satisfy its condition, a text variable
    in ``corr``...): its verdict is INCONCLUSIVE with this message as the reason."""


class NoSamples(VerifyError):
    """No fresh sample satisfies a claim's condition (even after drawing many rounds)."""
