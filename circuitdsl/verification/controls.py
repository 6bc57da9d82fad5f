"""The pruning controls -> a status for each: ``ok``, or ``warning`` with the reason.

Pruning runs four controls beside the circuit (``runtime.prune``): the same
search on a nonsense task and on an untrained model, minimality (each kept
node dropped alone) and the circuit's loss under the other ablations. Their
numbers only help if something reads them, so this judges each, in one
place, from the plain report (no torch): ``circ prune``'s table and JSON and
``circ verify``'s tables, JSON and HTML all show the same statuses, for a
fresh circuit, a cached one, or a saved run.

The thresholds, and why:

* **nonsense task**: the runtime's own flag (it reached the target with a
  circuit about as small as the real one): pruning then finds circuits for
  noise as easily as for the task.
* **untrained model**: reaching the target at all. An untrained model has
  learned nothing, so a target it meets is too loose to say anything about
  what training built.
* **minimality**: more than :data:`REMOVABLE_SHARE` of the circuit's nodes
  removable. Each node is dropped alone, and two removable nodes may not be
  removable together, so a few are expected from a search that bisects on
  the node count; beyond one in twenty the circuit is well short of minimal,
  and claims about its extra nodes rest on nodes it does not need.
* **ablation agreement**: another ablation's loss more than
  :data:`ABLATION_RATIO` times the loss under the circuit's own ablation,
  and over the target. Some spread is normal (zero ablation pushes the
  missing nodes further from anything the model saw), but a loss twice as
  high means what the circuit does depends on what its missing nodes are
  replaced by, so it holds for that ablation rather than for the model.
"""

from __future__ import annotations

OK = "ok"
WARNING = "warning"

#: Removable nodes beyond this share of the circuit make minimality a warning.
REMOVABLE_SHARE = 0.05
#: A control that misses the target by less than this multiple of it is said to come close
#: (in its result; the status stays ok): a slightly looser target would let it through.
CLOSE_RATIO = 2.0
#: Another ablation's circuit loss beyond this multiple of the circuit's own is a warning.
ABLATION_RATIO = 2.0

#: The controls, in the order they are shown, with the label tables use.
LABELS = {
    "identity": "identity (no node ablated = plain model)",
    "nonsense": "nonsense task (shuffled answers)",
    "random_model": "untrained model",
    "minimality": "minimality (drop one node)",
    "ablation_agreement": "ablation agreement",
}


def _check(status: str, result: str, reason: str | None = None) -> dict:
    out = {"status": status, "result": result}
    if reason:
        out["reason"] = reason
    return out


def judge_controls(controls: dict | None, circuit: dict) -> dict[str, dict]:
    """Per control that ran: ``status`` (ok or warning), ``result`` (what was measured, in words)
    and, for a warning, ``reason``. ``circuit`` is ``Circuit.to_json()``; empty without controls."""
    if not controls:
        return {}
    nodes = int(circuit.get("node_count") or len(circuit.get("nodes") or ()))
    target = float(circuit["target"])
    out = {"identity": _check(OK, "logits equal")}

    nonsense = controls.get("nonsense")
    if nonsense:
        result = f"{nonsense['nodes']} nodes, loss {nonsense['loss']:.3f} ({'reached' if nonsense['reached'] else 'not reached'})"
        if nonsense["reached"] and not controls.get("nonsense_flag"):
            result += f"; close: reached with {nonsense['nodes'] / max(1, nodes):.1f}x the circuit's nodes"
        if controls.get("nonsense_flag"):
            out["nonsense"] = _check(
                WARNING, result,
                f"shuffled answers reached the target with {nonsense['nodes']} nodes, about as few as the circuit's "
                f"{nodes}: pruning finds a circuit this small for noise too",
            )
        else:
            out["nonsense"] = _check(OK, result)

    random_run = controls.get("random_model")
    if random_run:
        result = f"{random_run['nodes']} nodes, loss {random_run['loss']:.3f} ({'reached' if random_run['reached'] else 'not reached'})"
        if not random_run["reached"] and random_run["loss"] <= CLOSE_RATIO * target:
            result += f"; close: within {CLOSE_RATIO:g}x the target"
        if random_run["reached"]:
            out["random_model"] = _check(
                WARNING, result,
                f"an untrained model reached the target (loss <= {target:g}) too: the target is too loose "
                "to say anything about what training built",
            )
        else:
            out["random_model"] = _check(OK, result)

    removable = list(controls.get("removable") or ())
    tried = len(controls.get("minimality") or ()) or nodes
    if removable:
        shown = ", ".join(removable[:6]) + (", ..." if len(removable) > 6 else "")
        result = f"{len(removable)} of {tried} nodes removable: {shown}"
    else:
        result = "no node removable"
    if len(removable) > REMOVABLE_SHARE * max(1, tried):
        out["minimality"] = _check(
            WARNING, result,
            f"{len(removable)} of {tried} nodes ({len(removable) / max(1, tried):.0%}, over {REMOVABLE_SHARE:.0%}) can each be "
            "dropped with the loss still at the target: the circuit is not minimal, and claims about those nodes rest on "
            "nodes it does not need",
        )
    else:
        out["minimality"] = _check(OK, result)

    agreement = controls.get("ablation_agreement") or {}
    if agreement:
        own = circuit.get("ablation")
        base = float(agreement.get(own, circuit["loss"]))
        result = ", ".join(f"{kind} {loss:.3f}" for kind, loss in agreement.items())
        worse = {
            kind: loss for kind, loss in agreement.items()
            if kind != own and loss > ABLATION_RATIO * base and loss > target
        }
        if worse:
            said = ", ".join(f"{kind} {loss:.3f}" for kind, loss in worse.items())
            out["ablation_agreement"] = _check(
                WARNING, result,
                f"the circuit's loss under {said} is over {ABLATION_RATIO:g}x its {base:.3f} under {own} ablation "
                f"(and over the target {target:g}): what it does depends on what replaces the missing nodes, so claims "
                f"hold for {own} ablation only",
            )
        else:
            out["ablation_agreement"] = _check(OK, result)
    return out


def control_warnings(controls: dict | None, circuit: dict) -> list[tuple[str, str]]:
    """(label, reason) of each control that warns, in table order."""
    return [(LABELS[name], check["reason"]) for name, check in judge_controls(controls, circuit).items() if check["status"] == WARNING]
