"""Roles: which circuit units each role picks out.

A role's *candidates* are the circuit's units of its kind in its layers (a
head is a candidate when any of its q/k/v channels is in the circuit). A
candidate is *bound* when its ``where`` predicate is true, *unsure* when it
may be (some comparison has its bound inside a confidence interval), and out
otherwise. Predicates are evaluated in Kleene's three-valued logic:

* a comparison is true when it holds over the whole confidence interval of
  each statistic, false when it fails over all of it, unknown in between;
* a relation to role R is true when it holds for a unit bound to R, unknown
  when only for an unsure one, false otherwise (``runtime.relations``).

Roles that relate to each other in a cycle are solved together as the
greatest fixpoint: every role starts with all its candidates and loses those
whose predicate fails, until nothing changes. If negation makes the
iteration oscillate, those roles bind nothing and say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from runtime.nodes import parse_node
from runtime.relations import head_channels, heads_of, parse_head

from circuitdsl.check import builtins as b
from circuitdsl.spec.claims import RoleClaim
from circuitdsl.syntax import ast as n
from circuitdsl.syntax.formatter import format_expr
from circuitdsl.verification.arm import Arm
from circuitdsl.verification.errors import CheckerGap, VerifyError
from circuitdsl.verification.samples import Samples
from circuitdsl.verification.statistics import Statistics, unit_activations
from circuitdsl.verification.verdict import compare, kleene_and, kleene_not, kleene_or

#: Sites each role kind binds nodes of (heads are built from q/k/v).
KIND_SITES = {
    ("resid", "channel"): ("attn.resid_in", "attn.resid_delta", "mlp.resid_in", "mlp.resid_delta"),
    ("mlp", "neuron"): ("mlp.post_act",),
    ("q", "channel"): ("attn.q",),
    ("k", "channel"): ("attn.k",),
    ("v", "channel"): ("attn.v",),
}
#: Roles in a cycle get this many rounds to settle.
MAX_ROUNDS = 32
#: A role whose nodes outnumber those of it in the circuit by more than this, and the whole
#: circuit too, gets a warning. A head is all its q, k and v channels (3 x d_head), of which
#: a circuit keeps a few, so a head role always reaches past the circuit somewhat; one that
#: changes more nodes than the circuit has, most of them outside it, makes its claims about
#: the model around the circuit (ablating four whole heads breaks most tasks), not about it.
SPREAD_RATIO = 4
_COMPARISONS = ("<", "<=", ">", ">=", "==", "!=", "in")


@dataclass
class RoleBinding:
    decl: n.RoleDecl
    candidates: tuple[str, ...]
    bound: tuple[str, ...] = ()
    unsure: tuple[str, ...] = ()
    #: unit -> the result of each part of the predicate for it.
    parts: dict[str, list[dict]] = field(default_factory=dict)
    #: Why the role could not be decided, when it could not (a measurement error, an unsettled cycle).
    problem: str | None = None
    #: Set once solved: the nodes an ablation or intervention of the role changes, and how many are in the circuit.
    changes: int = 0
    changes_in_circuit: int = 0
    circuit_size: int = 0

    def nodes(self, config) -> tuple[str, ...]:
        """The nodes to ablate or patch for the bound units: a head is all its q/k/v channels."""
        out: list[str] = []
        for unit in self.bound:
            out.extend(head_channels(unit, config) if parse_head(unit) else (unit,))
        return tuple(dict.fromkeys(out))

    def evidence(self, closest: int = 5) -> dict:
        out: dict = {
            "role": self.decl.name,
            "nodes": list(self.bound),
            "unsure": list(self.unsure),
            "candidates": len(self.candidates),
            "bound": [{"node": u, "parts": self.parts.get(u, [])} for u in self.bound],
        }
        if self.problem:
            out["problem"] = self.problem
        warnings = self.warnings()
        if warnings:
            out["warnings"] = warnings
        if self.bound:
            out["summary"] = f"binds {', '.join(self.bound)}"
            out["changes"] = {"nodes": self.changes, "in_circuit": self.changes_in_circuit}
        else:
            out["closest"] = self.closest(closest)
            near = out["closest"][0] if out["closest"] else None
            out["summary"] = "binds nothing" + (
                f" of {len(self.candidates)} candidate(s); closest {near['node']} fails {'; '.join(near['failed'])}"
                if near
                else ": the circuit has no unit of this kind in these layers"
            )
            if self.unsure:
                out["summary"] += f"; unsure: {', '.join(self.unsure)}"
        return out

    def warnings(self) -> list[str]:
        """What makes the role say less than it seems to: a predicate that rules nothing out,
        and nodes that reach far beyond the circuit."""
        out = []
        if self.decl.where is not None and len(self.candidates) > 1 and len(self.bound) == len(self.candidates):
            kind = " ".join(self.decl.kind)
            out.append(
                f"binds every one of its {len(self.candidates)} candidates ({kind}s of the circuit in its layers): "
                "its `where` rules none out"
            )
        spread = spread_warning(self.changes, self.changes_in_circuit, self.circuit_size)
        if self.bound and spread:
            out.append(f"ablating or setting it {spread}")
        return out

    def closest(self, k: int) -> list[dict]:
        """The candidates that come nearest: most predicate parts satisfied, then fewest failed."""

        def score(unit: str):
            parts = self.parts.get(unit, [])
            held = sum(p["result"] == "holds" for p in parts)
            failed = sum(p["result"] == "fails" for p in parts)
            return (-held, failed)

        ranked = sorted(self.candidates, key=score)[:k]
        return [
            {
                "node": unit,
                "satisfied": sum(p["result"] == "holds" for p in self.parts.get(unit, [])),
                "of": len(self.parts.get(unit, [])),
                "failed": [p["part"] for p in self.parts.get(unit, []) if p["result"] != "holds"],
                "parts": self.parts.get(unit, []),
            }
            for unit in ranked
        ]


def spread_warning(changed: int, in_circuit: int, circuit_size: int) -> str | None:
    """``changes N nodes, only M of them in the circuit ...`` when N is over SPREAD_RATIO times M
    and over the circuit's size."""
    if changed <= SPREAD_RATIO * in_circuit or changed <= circuit_size:
        return None
    return (
        f"changes {changed} nodes, only {in_circuit} of them in the circuit of {circuit_size} (a head is all its "
        "q, k and v channels), so the claim is mostly about nodes the circuit does not need"
    )


def unit_layer(unit: str) -> int:
    head = parse_head(unit)
    return head[0] if head else parse_node(unit).layer


def candidates(decl: n.RoleDecl, layers: frozenset[int] | None, circuit_nodes: tuple[str, ...], config) -> tuple[str, ...]:
    if decl.kind == ("attn", "head"):
        units = sorted(heads_of(circuit_nodes, config), key=lambda h: parse_head(h))
    elif decl.kind in KIND_SITES:
        sites = KIND_SITES[decl.kind]
        units = [name for name in circuit_nodes if parse_node(name).kind in sites]
    else:
        raise CheckerGap(f"unknown node kind `{' '.join(decl.kind)}`")
    return tuple(u for u in units if layers is None or unit_layer(u) in layers)


def relation_targets(expr: n.Expr | None) -> set[str]:
    """The roles a predicate relates to."""
    found: set[str] = set()

    def walk(e):
        if isinstance(e, n.Call) and e.func in b.RELATIONS:
            positional = [a.value for a in e.args if a.name is None]
            if positional and isinstance(positional[0], n.Name):
                found.add(positional[0].id)
        elif isinstance(e, n.Binary):
            walk(e.left)
            walk(e.right)
        elif isinstance(e, n.Unary):
            walk(e.operand)

    walk(expr)
    return found


def has_statistics(expr: n.Expr | None) -> bool:
    if isinstance(expr, n.Call):
        return expr.func in b.STATISTICS
    if isinstance(expr, n.Binary):
        return has_statistics(expr.left) or has_statistics(expr.right) or (
            isinstance(expr.right, n.Range) and (has_statistics(expr.right.low) or has_statistics(expr.right.high))
        )
    if isinstance(expr, n.Unary):
        return has_statistics(expr.operand)
    return False


class RoleSolver:
    """Binds every role of a hypothesis on one arm."""

    def __init__(self, roles: tuple[RoleClaim, ...], arm: Arm, samples: Samples | None, confidence: float):
        self.arm = arm
        self.config = arm.model.config
        self.decls = {r.name: r.decl for r in roles}
        self.bindings = {
            r.name: RoleBinding(r.decl, candidates(r.decl, r.layers, arm.ctx.circuit_nodes, self.config)) for r in roles
        }
        self.stats = self._statistics(samples, confidence)

    def _statistics(self, samples: Samples | None, confidence: float) -> Statistics | None:
        wanted = [b_ for b_ in self.bindings.values() if has_statistics(b_.decl.where)]
        if not wanted or samples is None:
            return None
        units = {u for b_ in wanted for u in b_.candidates}
        nodes = set()
        for unit in units:
            nodes.update(self.arm.wiring.nodes(unit))
        columns: dict[str, list[int]] = {}
        for node in sorted(nodes):
            ref = parse_node(node)
            columns.setdefault(ref.site, []).append(ref.index)
        recorded_sites = self.arm.record(samples, {s: torch.tensor(i) for s, i in columns.items()})
        recorded = {}
        for site, idx in columns.items():
            for k, i in enumerate(idx):
                recorded[f"{site}[{i}]"] = recorded_sites[site][..., k]
        acts = {u: unit_activations(u, recorded, self.arm.wiring.heads) for u in units}
        return Statistics(samples, acts, confidence)

    # ------------------------------------------------------------ solving

    def solve(self) -> dict[str, RoleBinding]:
        done: set[str] = set()
        pending = list(self.bindings)
        while pending:
            ready = [r for r in pending if relation_targets(self.decls[r].where) - {r} <= done]
            if not ready:
                self._fixpoint(pending)
                break
            for name in ready:
                self._bind(name)
                done.add(name)
            pending = [r for r in pending if r not in done]
        circuit = set(self.arm.ctx.circuit_nodes)
        for binding in self.bindings.values():
            changed = binding.nodes(self.config)
            binding.changes, binding.changes_in_circuit = len(changed), len(circuit.intersection(changed))
            binding.circuit_size = len(circuit)
        return self.bindings

    def _fixpoint(self, names: list[str]) -> None:
        for name in names:
            b_ = self.bindings[name]
            b_.bound, b_.unsure = b_.candidates, ()
        for _ in range(MAX_ROUNDS):
            before = {name: (self.bindings[name].bound, self.bindings[name].unsure) for name in names}
            for name in names:
                self._bind(name)
            if all((self.bindings[name].bound, self.bindings[name].unsure) == before[name] for name in names):
                return
        for name in names:
            b_ = self.bindings[name]
            b_.unsure, b_.bound = tuple(dict.fromkeys(b_.bound + b_.unsure)), ()
            b_.problem = f"roles {', '.join(names)} relate to each other in a cycle that does not settle"

    def _bind(self, name: str) -> None:
        binding = self.bindings[name]
        where = binding.decl.where
        bound, unsure = [], []
        for unit in binding.candidates:
            parts: list[dict] = []
            try:
                result = True if where is None else self._eval(where, unit, parts)
            except VerifyError as err:
                binding.problem = str(err)
                result = None
            binding.parts[unit] = parts
            if result is True:
                bound.append(unit)
            elif result is None:
                unsure.append(unit)
        binding.bound, binding.unsure = tuple(bound), tuple(unsure)

    # ------------------------------------------------------------ predicates

    def _eval(self, e: n.Expr, unit: str, parts: list[dict]) -> bool | None:
        if isinstance(e, n.Binary) and e.op == "and":
            # Both sides are always evaluated, so every part is reported for the closest candidates.
            left, right = self._eval(e.left, unit, parts), self._eval(e.right, unit, parts)
            return kleene_and(left, right)
        if isinstance(e, n.Binary) and e.op == "or":
            left, right = self._eval(e.left, unit, parts), self._eval(e.right, unit, parts)
            return kleene_or(left, right)
        if isinstance(e, n.Unary) and e.op == "not":
            return kleene_not(self._eval(e.operand, unit, parts))
        if isinstance(e, n.Binary) and e.op in _COMPARISONS:
            return self._comparison(e, unit, parts)
        if isinstance(e, n.Call) and e.func in b.RELATIONS:
            return self._relation(e, unit, parts)
        raise CheckerGap(f"`{format_expr(e)}` is not a predicate")

    def _measure(self, e: n.Expr, unit: str, values: dict) -> tuple[float, float]:
        if isinstance(e, n.Call) and e.func in b.STATISTICS:
            if self.stats is None:
                raise VerifyError("no samples were drawn to measure statistics on")
            est = self.stats.estimate(e, unit)
            values[format_expr(e)] = {"value": est.value, "lo": est.low, "hi": est.high, "n": est.n}
            return est.low, est.high
        if isinstance(e, n.Name) and e.id == "layer":
            layer = float(unit_layer(unit))
            return layer, layer
        if isinstance(e, n.Number):  # lowered: the checker folded every constant to one
            return float(e.value), float(e.value)
        raise CheckerGap(f"`{format_expr(e)}` cannot be measured")

    def _comparison(self, e: n.Binary, unit: str, parts: list[dict]) -> bool | None:
        values: dict = {}
        low, high = self._measure(e.left, unit, values)
        if e.op == "in":
            if not isinstance(e.right, n.Range):
                raise CheckerGap("`in` in a predicate takes a range: `mean(act) in 0..2`")
            lo_low, lo_high = self._measure(e.right.low, unit, values)
            hi_low, hi_high = self._measure(e.right.high, unit, values)
            result = kleene_and(compare(low, high, ">=", lo_low, lo_high), compare(low, high, "<=", hi_low, hi_high))
        else:
            b_low, b_high = self._measure(e.right, unit, values)
            result = compare(low, high, e.op, b_low, b_high)
        parts.append({"part": format_expr(e), "result": _word(result), "values": values})
        return result

    def _relation(self, e: n.Call, unit: str, parts: list[dict]) -> bool | None:
        target = next(a.value.id for a in e.args if a.name is None)
        as_arg = e.keyword("as")
        as_ = as_arg.id if isinstance(as_arg, n.Name) else None
        other = self.bindings.get(target)
        if other is None:
            raise CheckerGap(f"no role `{target}`")
        wiring = self.arm.wiring
        test = {
            "reads": lambda x, y: wiring.reads(x, y, as_),
            "writes": wiring.writes,
            "written_by": lambda x, y: wiring.writes(y, x),
            "edge_to": wiring.edge,
            "edge_from": lambda x, y: wiring.edge(y, x),
            "path_to": wiring.path,
            "path_from": lambda x, y: wiring.path(y, x),
        }[e.func]
        witness = next((y for y in other.bound if test(unit, y)), None)
        if witness is not None:
            result: bool | None = True
        else:
            witness = next((y for y in other.unsure if test(unit, y)), None)
            result = None if witness is not None else False
        part = {"part": format_expr(e), "result": _word(result)}
        if witness is not None:
            part["with"] = witness
        parts.append(part)
        return result


def _word(result: bool | None) -> str:
    return "holds" if result is True else "fails" if result is False else "unsure"
