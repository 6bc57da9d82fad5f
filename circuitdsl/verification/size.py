"""Size claims: counted on the circuit, exactly, so they need no samples and no interval.

A node is in layer L when its site is; an edge is in layer L when its source
node is (a residual edge from layer 0 to layer 1 counts in layer 0).
"""

from __future__ import annotations

from runtime.nodes import parse_node

from circuitdsl.spec.claims import SizeClaim
from circuitdsl.verification.arm import VerifyContext
from circuitdsl.verification.verdict import Verdict, compare, status_of

NOT_APPLICABLE = "not applicable: a size claim depends only on the circuit, which the control shares"


def size_verdict(claim: SizeClaim, ctx: VerifyContext) -> Verdict:
    layers = claim.layers
    if claim.metric == "nodes":
        counted = [parse_node(name).layer for name in ctx.circuit_nodes]
    else:
        counted = [parse_node(src).layer for src, _, _ in ctx.circuit_edges]
    per_layer: dict[int, int] = {}
    for layer in counted:
        per_layer[layer] = per_layer.get(layer, 0) + 1
    count = sum(c for layer, c in per_layer.items() if layers is None or layer in layers)
    return Verdict(
        id=claim.id,
        claim=claim.text,
        kind="size",
        measured=float(count),
        threshold=claim.threshold,
        status=status_of(compare(count, count, claim.op, claim.bound)),
        interval=None,
        evidence={
            "count": count,
            "per_layer": {str(layer): per_layer[layer] for layer in sorted(per_layer)},
            "layers": sorted(layers) if layers is not None else "all",
            "control": NOT_APPLICABLE,
            "summary": f"{count} {claim.metric}"
            + (f" in layer(s) {', '.join(map(str, sorted(layers)))}" if layers is not None else "")
            + f" (per layer: {', '.join(f'{k}: {v}' for k, v in sorted(per_layer.items())) or 'none'})",
        },
        vacuous=False,
    )
