"""``circ verify``'s engine: decide every claim of a hypothesis on a trained model and its circuit.

Reading order: ``verdict`` (what a decision is), ``arm`` (what is given, and
one model to run on), ``samples`` and ``conditions`` (fresh task samples and
the conditions that select them), ``statistics`` and ``roles`` (which units
each role binds), ``outcomes`` (metrics and their intervals), then one
module per claim kind (``size``, ``patching`` for ablate/intervene,
``adversarial``), and ``engine``, which runs them all.

This package runs models, so it imports torch; ``circ check`` never imports it.
"""

from .arm import VerifyContext
from .engine import Progress, verify_hypothesis
from .errors import VerifyError
from .verdict import FAIL, INCONCLUSIVE, PASS, Verdict

__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "Progress", "Verdict", "VerifyContext", "VerifyError", "verify_hypothesis"]
