"""``circ verify``'s engine: decide every claim of a hypothesis on a trained model and its circuit.

Reading order: ``verdict`` (what a decision is), ``arm`` (what is given, and
one model to run on), ``samples`` and ``conditions`` (fresh task samples and
the conditions that select them), ``statistics`` and ``roles`` (which units
each role binds), ``outcomes`` (metrics and their intervals), then one
module per claim kind (``size``, ``patching`` for ablate/intervene,
``adversarial``), ``engine``, which runs them all, ``run``, which runs a
hypothesis over seeds, and ``results``, what comes out.

Most of this package runs models and imports torch, so this file imports
nothing: ``verdict`` and ``results`` stay readable without torch.
"""
