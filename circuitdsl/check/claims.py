"""Static checks of hypothesis claims: roles, predicates, ablations, interventions, variants.

What can be decided without running anything is decided here: every name a
claim uses exists (roles, latent variables, tokens), every statistic and
relation is called correctly, every bound is a number in its metric's range.
Whether a claim *holds* is for ``circ verify``.
"""

from __future__ import annotations

import difflib

from circuitdsl.check import builtins as b
from circuitdsl.syntax import ast as n
from circuitdsl.check.tasks import TaskAnalysis, check_characters, check_outputs, variant_bindings
from circuitdsl.check.values import free_names
from circuitdsl.spec.checked import BridgeSpec, ModelSpec, PruneSpec, TaskSpec, VocabSpec
from circuitdsl.check.sink import DiagnosticSink
from circuitdsl.spec.inferred import Typing
from circuitdsl.check.settings import NotConstant, constant_number
from circuitdsl.evaluate import ORDER as _ORDER
from circuitdsl.syntax.formatter import format_expr
from circuitdsl.syntax.spans import Span

_HEAD_KINDS = {("attn", "head"), ("q", "channel"), ("k", "channel"), ("v", "channel")}
#: A comparison with `layer` on its right, turned around: `1 < layer` is `layer > 1`.
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _is_layer(e: n.Expr) -> bool:
    return isinstance(e, n.Name) and e.id == "layer"


def _constant(e: n.Expr) -> float | None:
    try:
        return float(constant_number(e))
    except NotConstant:
        return None


def _shown(value: object) -> str:
    """A value as the spec would write it (the formatter's quoting and escapes)."""
    literal = n.Bool(value) if isinstance(value, bool) else n.String(value) if isinstance(value, str) else n.Number(value)
    return format_expr(literal)


class ClaimChecker:
    def __init__(
        self,
        report: DiagnosticSink,
        vocab: VocabSpec,
        task: TaskSpec,
        model: ModelSpec | None,
        hypothesis: str,
        *,
        bridges: dict[str, BridgeSpec] | None = None,
        prune: PruneSpec | None = None,
        defined: dict[str, str] | None = None,
        task_analysis: TaskAnalysis | None = None,
    ):
        self.report = report
        #: The task's own analysis, which each adversarial variant's starts from.
        self.task_analysis = task_analysis
        self.vocab = vocab
        self.task = task
        self.model = model
        self.prune = prune
        self.bridges = bridges or {}
        #: Every block name and its kind, so `through bridge x` can say what `x` is instead.
        self.defined = defined or {}
        #: The bridges the claims go through (for the hypothesis's spec).
        self.bridges_used: list[str] = []
        self.where = f"hypothesis `{hypothesis}`"
        self.roles: dict[str, n.RoleDecl] = {}
        #: Each sound adversarial block's types and order, for its lowered Variant.
        self.variant_typing: dict[str, Typing] = {}
        self.latents = set(task.latents)

    def check(self, claims: list) -> None:
        for claim in claims:
            if isinstance(claim, n.RoleDecl):
                if claim.name in self.roles:
                    self.report.error("C0204", f"role `{claim.name}` is declared twice", claim.span)
                elif claim.name in b.ABLATE_TARGETS:
                    self.report.error("C0208", f"`{claim.name}` is reserved for `ablate {claim.name}`", claim.span, hint="choose another role name")
                self.roles.setdefault(claim.name, claim)
        for claim in claims:
            if isinstance(claim, n.SizeClaim):
                self.size(claim)
            elif isinstance(claim, n.RoleDecl):
                self.role(claim)
            elif isinstance(claim, n.AblateClaim):
                self.ablate(claim)
            elif isinstance(claim, n.InterveneClaim):
                self.intervene(claim)
            elif isinstance(claim, n.Adversarial):
                self.adversarial(claim)

    # ------------------------------------------------------------ pieces

    def _number(self, e: n.Expr, what: str) -> float | None:
        try:
            return float(constant_number(e))
        except NotConstant as problem:
            self.report.error("C0302", f"{what} must be a number: {problem.message}", problem.span or e.span)
            return None

    def layers(self, f: n.LayerFilter | None) -> None:
        if f is None:
            return
        if f.word not in ("layer", "layers"):
            self.report.error("C0103", f"expected `layer` after `in`, found `{f.word}`", f.span)
            return
        bounds = [f.layers.low, f.layers.high] if isinstance(f.layers, n.Range) else [f.layers]
        self._layer_set(f.layers, [(e, self._number(e, "a layer")) for e in bounds])

    def _layer_set(self, written: n.Expr, bounds: list[tuple[n.Expr, float | None]]) -> None:
        """One layer or a range of them, each bound with its value (None where it is not a number)."""
        for e, value in bounds:
            if value is not None:
                self._layer(value, e.span)
        values = [value for _, value in bounds if value is not None]
        # `layers 1..0` would select no layer at all, so the claim could never be about anything.
        if len(values) == 2 and values[0] > values[1]:
            low, high = values
            self.report.error(
                "C0402",
                f"empty range {low:g}..{high:g}: it has no layers",
                written.span,
                hint=f"ranges include both ends; did you mean {high:g}..{low:g}?",
            )

    def _layer(self, value: float, span: Span | None) -> None:
        if value != int(value) or value < 0:
            self.report.error("C0401", f"a layer is a whole number from 0, found {value:g}", span)
        elif self.model is not None and value >= self.model.layers:
            self.report.error(
                "C0401",
                f"layer {int(value)} does not exist: model `{self.model.name}` has {self.model.layers} layer(s)",
                span,
                hint=f"layers are numbered 0 to {self.model.layers - 1}",
            )

    def layer_comparison(self, e: n.Binary) -> None:
        """`layer == 7` in a `where` clause names a layer as surely as `in layer 7` does, so it
        must exist too; `layer >= 7` must hold for some layer, or the role could bind nothing."""
        if _is_layer(e.left):
            op, other = e.op, e.right
        elif _is_layer(e.right) and e.op in _FLIPPED:
            op, other = _FLIPPED[e.op], e.left
        else:
            return
        if op == "in" and isinstance(other, n.Range):
            self._layer_set(other, [(bound, _constant(bound)) for bound in (other.low, other.high)])
            return
        value = _constant(other)
        if value is None:
            return  # not a number: `measure` reports it
        if op in ("==", "!="):
            self._layer(value, other.span)
        elif op in _ORDER and self.model is not None:
            self._some_layer(op, value, e)

    def _some_layer(self, op: str, value: float, e: n.Binary) -> None:
        count = self.model.layers
        if not any(_ORDER[op](layer, value) for layer in range(count)):
            self.report.error(
                "C0401",
                f"no layer of model `{self.model.name}` is {op} {value:g}: it has {count} layer(s)",
                e.span,
                hint=f"layers are numbered 0 to {count - 1}",
            )

    def size(self, claim: n.SizeClaim) -> None:
        if claim.metric not in b.SIZE_METRICS:
            self.report.unknown("size measure", claim.metric, claim.span, b.SIZE_METRICS, code="C0209")
        self.layers(claim.layer)
        value = self._number(claim.bound, f"the bound on `{claim.metric}`")
        if value is not None and (value < 0 or value != int(value)):
            self.report.error("C0401", f"a count bound is a whole number >= 0, found {value:g}", claim.bound.span)

    def role(self, claim: n.RoleDecl) -> None:
        if claim.kind not in b.ROLE_KINDS:
            kinds = [" ".join(k) for k in b.ROLE_KINDS]
            self.report.unknown("node kind", " ".join(claim.kind), claim.kind_span, kinds, code="C0209")
        self.layers(claim.layer)
        if claim.where is not None:
            self.predicate(claim.where, claim)

    def predicate(self, e: n.Expr, role: n.RoleDecl) -> None:
        """A role's `where` clause: boolean logic over comparisons, statistics and relations."""
        if isinstance(e, n.Binary) and e.op in ("and", "or"):
            self.predicate(e.left, role)
            self.predicate(e.right, role)
        elif isinstance(e, n.Unary) and e.op == "not":
            self.predicate(e.operand, role)
        elif isinstance(e, n.Binary) and e.op in ("<", "<=", ">", ">=", "==", "!=", "in"):
            if e.op == "in" and not isinstance(e.right, n.Range):
                # A measured value is a number with an interval: `in` can only ask for a range.
                self.report.error(
                    "C0305", "`in` in a `where` clause takes a range", e.right.span, hint="for example `mean(act) in 0..2`"
                )
                return
            for side in (e.left, e.right):
                self.measure(side, role)
            self.layer_comparison(e)
        elif isinstance(e, n.Call) and e.func in b.RELATIONS:
            self.relation(e, role)
        elif isinstance(e, n.Call) and e.func in b.STATISTICS:
            self.report.error(
                "C0305", f"`{e.func}(...)` is a number: compare it", e.span, hint=f"for example `{e.func}(act) > 0`"
            )
        elif isinstance(e, n.Call):
            self.report.unknown("relation", e.func, e.span, b.RELATIONS, code="C0209")
        else:
            self.report.error(
                "C0305",
                "a `where` clause needs a comparison or a relation",
                e.span,
                hint="for example `mean(act | depth == 2) > 0` or `reads(opener, as: value)`",
            )

    def measure(self, e: n.Expr, role: n.RoleDecl) -> None:
        if isinstance(e, n.Call):
            if e.func in b.STATISTICS:
                self.statistic(e)
            else:
                self.report.unknown("statistic", e.func, e.span, b.STATISTICS, code="C0209")
        elif isinstance(e, n.Name):
            if e.id not in ("layer",):
                self.report.error(
                    "C0201",
                    f"`{e.id}` cannot be compared in a `where` clause",
                    e.span,
                    hint="compare a statistic such as `mean(act)` or `corr(act, depth)`, or `layer`",
                )
        elif isinstance(e, n.Range):
            self.measure(e.low, role)
            self.measure(e.high, role)
        else:
            self._number(e, "a bound")

    def statistic(self, e: n.Call) -> None:
        positional = [a for a in e.args if a.name is None]
        if not positional or not (isinstance(positional[0].value, n.Name) and positional[0].value.id == "act"):
            self.report.error("C0306", f"`{e.func}` measures `act`: write `{e.func}(act ...)`", e.span, hint=b.STATISTICS[e.func])
        for arg in e.args:
            if arg.name is not None and arg.name != "at":
                self.report.unknown("argument", arg.name, arg.span, ["at"], where=f"of `{e.func}`")
            if arg.given is not None:
                self.condition(arg.given)
            if arg.name == "at":
                self.position(arg.value)
        rest = positional[1:]
        if e.func == "corr":
            if len(rest) != 1:
                self.report.error(
                    "C0306", "`corr` correlates `act` with one latent variable or condition: `corr(act, depth)`", e.span
                )
            elif isinstance(rest[0].value, n.Name):
                self.variable(rest[0].value)
            else:
                self.condition(rest[0].value)  # correlation with the condition's indicator
        elif e.func == "selectivity":
            if len(rest) != 2:
                self.report.error("C0306", "`selectivity` compares two conditions: `selectivity(act, q == \"'\", q == '\"')`", e.span)
            for arg in rest:
                self.condition(arg.value)
        elif rest:
            self.report.error("C0306", f"`{e.func}` takes `act`, an optional `| condition` and `at:`", rest[0].span, hint=b.STATISTICS[e.func])

    def position(self, e: n.Expr) -> None:
        if isinstance(e, n.Name) and e.id == "answer":
            return
        value = self._number(e, "a position")
        if value is not None and (value != int(value) or value > 0):
            self.report.error(
                "C0401",
                f"a position is `answer` or a whole number <= 0 counted back from it, found {value:g}",
                e.span,
            )

    def variable(self, name: n.Name) -> None:
        if name.id not in self.latents:
            self.report.unknown("variable", name.id, name.span, self.latents, where=f"of task `{self.task.name}`")

    def condition(self, e: n.Expr, extra: set[str] = frozenset()) -> None:
        """A condition over latent variables and `token`: names must exist, tokens must be tokens."""
        if isinstance(e, n.Binary) and e.op in ("and", "or"):
            self.condition(e.left, extra)
            self.condition(e.right, extra)
            return
        if isinstance(e, n.Unary) and e.op == "not":
            self.condition(e.operand, extra)
            return
        if not (isinstance(e, n.Binary) and e.op in ("==", "!=", "<", "<=", ">", ">=", "in")):
            self.report.error(
                "C0305", "a condition compares a variable with a value", e.span, hint='for example `depth == 2` or `token == "["`'
            )
            return
        for side in (e.left, e.right):
            for name in free_names(side):
                if name.id == "token":
                    continue
                if name.id not in self.latents and name.id not in extra:
                    self.report.unknown(
                        "variable", name.id, name.span, self.latents | {"token"} | set(extra), where=f"of task `{self.task.name}`"
                    )
        if any(isinstance(side, n.Name) and side.id == "token" for side in (e.left, e.right)):
            for side in (e.left, e.right):
                if isinstance(side, n.String):
                    self.token(side)
        elif e.op in ("==", "!="):
            self._possible(e, extra)

    def _possible(self, e: n.Binary, extra: set[str]) -> None:
        """`kind == "string"` where `kind` is `choice("set", "str")`: a condition that is always
        false (or, with `!=`, always true), which measures on no sample (or on every one)
        without a word; almost always a misspelt value."""
        analysis = self.task_analysis
        if analysis is None or not analysis.ok:
            return
        for name, literal in ((e.left, e.right), (e.right, e.left)):
            # A variable the variant sets anew takes the variant's values, not the task's.
            if not (isinstance(name, n.Name) and isinstance(literal, (n.String, n.Number, n.Bool))) or name.id in extra:
                continue
            values = analysis.values(name)
            if values is None or literal.value in values or not values:
                return
            shown = sorted(map(_shown, values))
            taken = (
                f"{', '.join(shown[:8])} and {len(shown) - 8} more" if len(shown) > 8
                else shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
            )
            close = difflib.get_close_matches(_shown(literal.value), shown, n=1, cutoff=0.6)
            self.report.error(
                "C0401",
                f"`{name.id}` is never {_shown(literal.value)}: it takes {taken}",
                literal.span,
                hint=f"did you mean {close[0]}?" if close else f"so `{e.op}` here is always {'false' if e.op == '==' else 'true'}",
            )
            return

    def token(self, e: n.Expr) -> None:
        if not isinstance(e, n.String):
            self.report.error("C0305", "a token is written as a string", e.span)
        elif not self.vocab.is_token(e.value):
            hint = f'declare it: vocab {{ tokens = ["{e.value}"] }}' if len(e.value) > 1 else "add it to the vocab's `chars`"
            self.report.error("C0404", f"{e.value!r} is not a token of the vocab", e.span, hint=hint)

    def relation(self, e: n.Call, role: n.RoleDecl) -> None:
        positional = [a for a in e.args if a.name is None]
        if len(positional) != 1 or not isinstance(positional[0].value, n.Name):
            self.report.error("C0306", f"`{e.func}` takes one role: `{e.func}(other_role)`", e.span, hint=b.RELATIONS[e.func])
        else:
            target = positional[0].value
            if target.id not in self.roles:
                self.report.unknown("role", target.id, target.span, self.roles)
            elif target.id == role.name:
                self.report.error("C0306", f"role `{role.name}` cannot relate to itself", target.span)
        for arg in e.args:
            if arg.name is None:
                continue
            if e.func == "reads" and arg.name == "as":
                if not isinstance(arg.value, n.Name):
                    self.report.error(
                        "C0305", "`as:` names a channel, not a value", arg.value.span, hint="write `as: key`, `as: query` or `as: value`"
                    )
                elif arg.value.id not in b.READ_CHANNELS:
                    self.report.unknown("channel", arg.value.id, arg.value.span, b.READ_CHANNELS, code="C0403", where="for `reads`")
            else:
                self.report.unknown("argument", arg.name, arg.span, ["as"] if e.func == "reads" else [], where=f"of `{e.func}`")
        if e.func == "reads" and role.kind not in _HEAD_KINDS and role.kind in b.ROLE_KINDS:
            self.report.error(
                "C0305",
                f"only attention heads and their q/k/v channels read; `{role.name}` is a {' '.join(role.kind)}",
                e.span,
                hint="use `written_by(...)` or `edge_from(...)` for other nodes",
            )

    def outcome(self, o: n.Outcome, extra: set[str] = frozenset()) -> None:
        metric = o.metric
        if metric.name not in b.OUTCOME_METRICS:
            self.report.unknown("metric", metric.name, metric.span, b.OUTCOME_METRICS, code="C0209")
        elif metric.name in b.TOKEN_METRICS:
            args = metric.args or ()
            if len(args) != 1 or args[0].name is not None or args[0].given is not None:
                self.report.error("C0306", f'`{metric.name}` takes one token: `{metric.name}("]")`', metric.span)
            else:
                self.token(args[0].value)
        elif metric.args is not None:
            self.report.error("C0306", f"`{metric.name}` takes no arguments", metric.span)
        value = self._number(o.bound, f"the bound on `{metric.name}`")
        if value is not None:
            if metric.name in ("accuracy", "p", "rate") and not 0 <= value <= 1:
                hint = "write a share such as 0.25 or 25%" if value > 1 else None
                self.report.error("C0401", f"`{metric.name}` bound must lie in [0, 1], found {value:g}", o.bound.span, hint)
            # A margin may go negative (the competitor wins); a loss or a change may not.
            elif value < 0 and (metric.name == "loss" or o.change):
                what = f"`{o.change} by`" if o.change else "`loss`"
                self.report.error("C0401", f"the bound of {what} must not be negative, found {value:g}", o.bound.span)
        if o.when is not None:
            self.condition(o.when, extra)

    def ablate(self, claim: n.AblateClaim) -> None:
        special = [t for t in claim.targets if t in b.ABLATE_TARGETS]
        if special and len(set(claim.targets)) > 1:
            self.report.error("C0306", f"`{special[0]}` cannot be combined with other targets", claim.targets_span)
        spans = claim.target_spans or (claim.targets_span,) * len(claim.targets)
        seen: set[str] = set()
        for target, span in zip(claim.targets, spans):
            # `ablate r, r` ablates `r` once, so the second `r` is a slip, likely for another role.
            if target in seen:
                self.report.error(
                    "C0204", f"`{target}` appears twice in this ablation", span, hint="remove it, or name the role you meant"
                )
            elif target not in b.ABLATE_TARGETS and target not in self.roles:
                self.report.unknown("role or ablation target", target, span, list(self.roles) + list(b.ABLATE_TARGETS))
            seen.add(target)
        if claim.ablation is not None and claim.ablation not in b.ABLATION_KINDS:
            self.report.unknown("ablation", claim.ablation, claim.ablation_span, b.ABLATION_KINDS, code="C0403")
        self.outcome(claim.outcome)

    def intervene(self, claim: n.InterveneClaim) -> None:
        if claim.role not in self.roles:
            self.report.unknown("role", claim.role, claim.role_span, self.roles)
        value = claim.value
        if isinstance(value, n.Call) and value.func in ("mean",):
            self.statistic(value)
        else:
            try:
                constant_number(value)
            except NotConstant:
                self.report.error(
                    "C0305",
                    "an intervention sets the role to `mean(act | condition)` or a number",
                    value.span,
                    hint="for example `intervene q_ch = mean(act | q == \"'\") when q == '\"' -> ...`",
                )
        if claim.when is not None:
            self.condition(claim.when)
        self.outcome(claim.outcome)
        if claim.bridge is not None:
            self.through_bridge(claim)

    def through_bridge(self, claim: n.InterveneClaim) -> None:
        """A change that crosses a bridge must start in the bridge's sparse model, at channels
        of the residual stream (the only units a boundary map carries), on a task both models know."""
        bridge = self.bridges.get(claim.bridge)
        if bridge is None:
            kind = self.defined.get(claim.bridge)
            if kind is not None and kind != "bridge":
                self.report.error("C0205", f"`{claim.bridge}` is a {kind}, not a bridge", claim.bridge_span)
            elif kind is None:
                known = [name for name, k in self.defined.items() if k == "bridge"]
                self.report.unknown("bridge", claim.bridge, claim.bridge_span, known)
            return  # a bridge block with errors of its own has reported them
        if claim.bridge not in self.bridges_used:
            self.bridges_used.append(claim.bridge)
        if self.prune is not None and bridge.sparse.name != self.prune.train.name:
            self.report.error(
                "C0407",
                f"bridge `{bridge.name}` starts from the model of `{bridge.sparse.name}`, not from "
                f"`{self.prune.train.name}`, whose circuit this hypothesis is about",
                claim.bridge_span,
                hint=f"set `sparse = {self.prune.train.name}` in bridge `{bridge.name}`",
            )
        if self.task.name not in dict(bridge.dense.mixture):
            self.report.error(
                "C0407",
                f"the dense model of bridge `{bridge.name}` is not trained on task `{self.task.name}`",
                claim.bridge_span,
                hint=f"add `{self.task.name}` to the tasks of `{bridge.dense.name}`",
            )
        role = self.roles.get(claim.role)
        if role is not None and role.kind != ("resid", "channel"):
            self.report.error(
                "C0305",
                f"role `{claim.role}` is {' '.join(role.kind)}s; only residual-stream channels cross a bridge",
                claim.role_span,
                hint="declare the role as `resid channel`",
            )

    def adversarial(self, block: n.Adversarial) -> None:
        base = {binding.name: binding for binding in self.task.bindings}
        overrides: dict[str, n.Binding] = {}
        expects = []
        for item in block.body:
            if isinstance(item, n.Binding):
                if item.name in overrides:
                    self.report.error("C0204", f"`{item.name}` is set twice in this variant", item.name_span)
                overrides[item.name] = item
            else:
                expects.append(item)
        if not expects:
            self.report.error(
                "C0303", f"adversarial `{block.name}` predicts nothing", block.span, hint="add `expect accuracy drops by >= 0.2` or similar"
            )
        merged = variant_bindings(base, overrides.values())
        self._unused_new_variables(block, base, overrides, merged, expects)
        analysis = TaskAnalysis(merged, self.vocab, self.report, f"adversarial `{block.name}`", base=self.task_analysis)
        if analysis.check():
            self.variant_typing[block.name] = analysis.typing()
            self._check_fits(analysis, merged, block)
            # The variant is scored like the task, so what it changes must be as scorable.
            texts_ok = check_outputs(analysis, self.vocab, self.report, f" of adversarial `{block.name}`", overrides)
            if texts_ok and "prompt" in merged:
                own = [binding.value for binding in overrides.values()]
                check_characters(analysis, merged["prompt"].value, self.vocab, self.report, f"the prompt of adversarial `{block.name}`", own)
        extra = set(overrides)
        for expect in expects:
            self.outcome(expect.outcome, extra)

    def _unused_new_variables(self, block: n.Adversarial, base: dict, overrides: dict, merged: dict, expects: list) -> None:
        """A variant may add a variable only for its own use: one that nothing reads is almost
        always a misspelt override (`dpeth = 2`), which would silently leave the task unchanged."""
        new = [name for name in overrides if name not in base]
        if not new:
            return
        used = {name.id for binding in merged.values() for name in free_names(binding.value)}
        for expect in expects:
            used.update(name.id for name in free_names(expect.outcome.when))
        latents = [name for name in self.task.latents]
        for name in new:
            if name in used:
                continue
            self.report.unknown(
                "variable", name, overrides[name].name_span, latents,
                where=f"of task `{self.task.name}`: adversarial `{block.name}` sets it, and nothing in the variant reads it",
            )

    def _check_fits(self, analysis: TaskAnalysis, merged: dict[str, n.Binding], block: n.Adversarial) -> None:
        if self.model is None or "prompt" not in merged:
            return
        longest = analysis.max_tokens(merged["prompt"].value)
        if longest is not None and longest + 1 > self.model.context:
            self.report.error(
                "C0405",
                f"prompts of adversarial `{block.name}` can reach {longest} tokens, more than model "
                f"`{self.model.name}` reads (context {self.model.context}, one taken by the start token)",
                block.span,
                hint="shorten the variant or raise the model's `context`",
            )

