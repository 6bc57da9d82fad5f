"""Parsed modules -> a checked :class:`~circuitdsl.spec.checked.CheckedSpec`, or every error at once.

Passes, in order: collect definitions across imports; vocab; tasks; models;
training; pruning; hypotheses; then the cross-block checks (prompts fit the
context of every model trained on them). Each pass keeps going after an
error so one run reports all it can.
"""

from __future__ import annotations

from typing import Any

import attrs

from circuitdsl.syntax import ast as n
from circuitdsl.check import budget, schema
from circuitdsl.check.builtins import TASK_FIELDS
from circuitdsl.check.claims import ClaimChecker
from circuitdsl.check.lower import lower_claims
from circuitdsl.check.tasks import TaskAnalysis, check_characters, check_outputs
from circuitdsl.diagnostics import CircError
from circuitdsl.spec.checked import PRINTABLE, BridgeSpec, HypothesisSpec, ModelSpec, CheckedSpec, PruneSpec, TaskSpec, TrainSpec, VocabSpec
from circuitdsl.check.sink import DiagnosticSink
from circuitdsl.check.settings import INVALID, SettingsChecker

_KINDS = ("task", "model", "train", "prune", "hypothesis")


def merge_vocabs(parts: list[tuple[str | None, tuple[str, ...]]]) -> VocabSpec:
    """Vocab blocks, shared first, as one: each adds the characters and tokens it names.

    Characters no block names are the default, ``printable``. Order is kept (the
    shared vocab's tokens keep their ids), and a repeat is no conflict.
    """
    chars: str | None = None
    tokens: list[str] = []
    for part_chars, part_tokens in parts:
        if part_chars is not None:
            chars = "".join(dict.fromkeys((chars or "") + part_chars))
        tokens.extend(part_tokens)
    return VocabSpec(PRINTABLE if chars is None else chars, tuple(dict.fromkeys(tokens)))


def check_modules(modules: list[n.Module], sources: dict[str, str], root: str) -> CheckedSpec:
    """Check the modules of one program (the root file and everything it imports)."""
    return _Checker(sources).run(modules, root)


class _Checker:
    def __init__(self, sources: dict[str, str]):
        self.sources = sources
        self.report = DiagnosticSink()
        self.definitions: dict[str, tuple[str, Any]] = {}
        self.settings = SettingsChecker(self.report, self.definitions)
        self.task_analyses: dict[str, TaskAnalysis] = {}
        #: Task -> whether it checked without error (a smaller vocab then checks it again).
        self.task_clean: dict[str, bool] = {}

    def fail_if_errors(self) -> None:
        if self.report.failed:
            raise CircError(self.report.diagnostics, self.sources)

    def run(self, modules: list[n.Module], root: str) -> CheckedSpec:
        vocab_blocks = self.collect(modules)
        # Built once: each hypothesis's claim checker looks bridges up in it.
        self.kinds = {name: kind for name, (kind, _) in self.definitions.items()}
        vocab = self.vocabs(modules, vocab_blocks)
        self.vocab_spec = vocab
        tasks = {name: self.task(block, vocab) for name, block in self.blocks("task").items()}
        models = self.resolve_all("model", self.model)
        trains = self.resolve_all("train", lambda name, values, block: self.train(name, values, block, models, tasks))
        prunes = self.resolve_all("prune", lambda name, values, block: self.prune(name, values, block, trains))
        bridges = self.resolve_all("bridge", lambda name, values, block: self.bridge(name, values, block, trains))
        hypotheses = {}
        for name, block in self.blocks("hypothesis").items():
            hypothesis = self.hypothesis(block, prunes, tasks, vocab, bridges)
            if hypothesis is not None:
                hypotheses[name] = hypothesis
        self.fail_if_errors()
        return CheckedSpec(root, vocab, tasks, models, trains, prunes, hypotheses, bridges, sources=self.sources)

    # ------------------------------------------------------------ definitions

    def collect(self, modules: list[n.Module]) -> dict[str, list[n.SettingsBlock]]:
        """Every definition into the one namespace; the vocab blocks by file, which the namespace does not hold."""
        vocabs: dict[str, list[n.SettingsBlock]] = {}
        for module in modules:
            for item in module.items:
                if isinstance(item, n.Import):
                    continue
                if isinstance(item, n.SettingsBlock) and item.kind == "vocab":
                    vocabs.setdefault(module.path, []).append(item)
                    continue
                kind = "hypothesis" if isinstance(item, n.HypothesisBlock) else item.kind
                previous = self.definitions.get(item.name)
                if previous is not None:
                    first = previous[1].name_span
                    self.report.error(
                        "C0202",
                        f"`{item.name}` is defined twice",
                        item.name_span,
                        hint=f"the first definition, a {previous[0]}, is at {first}" if first else None,
                    )
                    continue
                self.definitions[item.name] = (kind, item)
        return vocabs

    def blocks(self, kind: str) -> dict[str, Any]:
        return {name: block for name, (k, block) in self.definitions.items() if k == kind}

    def resolve_all(self, kind: str, build) -> dict[str, Any]:
        out = {}
        blocks = self.blocks(kind)
        for name, block in blocks.items():
            bindings, complete = self.settings.merged(block, blocks)
            values = self.settings.resolve(kind, bindings, block.name_span, owner=name, complete=complete)
            built = build(name, values, block)
            if built is not None:
                out[name] = built
        return out

    # ------------------------------------------------------------ blocks

    def vocabs(self, modules: list[n.Module], blocks: dict[str, list[n.SettingsBlock]]) -> VocabSpec:
        """The program's vocab, and the vocab each file sees (``self.file_vocabs``).

        A file sees its own vocab block merged into those of the files it imports,
        directly or not: a vocab in an importing file extends the shared one (its
        chars and tokens added after the shared ones), while the shared file, and
        every model trained by a train block there, keeps its own. The program's
        vocab is what the root file sees: every block, in import order.
        """
        parts: dict[str, tuple[str | None, tuple[str, ...]]] = {}
        for path, found in blocks.items():
            for extra in found[1:]:
                self.report.error(
                    "C0202",
                    "a file has one vocab; this is a second",
                    extra.span,
                    hint=f"merge it into the vocab at {found[0].span}; a vocab in a file that imports this one extends it",
                )
            parts[path] = self.vocab_part(found[0])
        order = [m.path for m in modules]
        imports = {m.path: m.imports for m in modules}
        #: File -> the vocab it sees; None for a file that sees no vocab block (it uses the program's).
        self.file_vocabs: dict[str, VocabSpec | None] = {}
        for path in order:
            seen, stack = set(), [path]
            while stack:
                here = stack.pop()
                if here not in seen:
                    seen.add(here)
                    stack.extend(imports.get(here, ()))
            visible = [parts[p] for p in order if p in seen and p in parts]
            self.file_vocabs[path] = merge_vocabs(visible) if visible else None
        return merge_vocabs([parts[p] for p in order if p in parts])

    def vocab_part(self, block: n.SettingsBlock) -> tuple[str | None, tuple[str, ...]]:
        """One vocab block's characters (None when it leaves them to the vocab it extends, or to the default) and tokens."""
        bindings = self.settings.bindings(block)
        values = self.settings.resolve("vocab", bindings, block.span, owner="vocab")
        chars, tokens = values["chars"], values["tokens"]
        if "chars" not in bindings or chars is INVALID:
            chars = None
        elif chars == "printable":
            chars = PRINTABLE
        return chars, (() if tokens is INVALID else tuple(tokens))

    def vocab_of(self, block) -> VocabSpec:
        """The vocab the file declaring ``block`` sees, else the program's."""
        path = block.span.path if block.span is not None else None
        return self.file_vocabs.get(path) or self.vocab_spec

    def task(self, block: n.SettingsBlock, vocab: VocabSpec) -> TaskSpec:
        bindings = self.settings.bindings(block)
        for required in ("prompt", "answer"):
            if required not in bindings:
                self.report.error(
                    "C0303",
                    f"task `{block.name}` has no `{required}`",
                    block.name_span,
                    hint=f"add `{required} = ...`: {TASK_FIELDS[required]}",
                )
        task = TaskSpec(block.name, tuple(bindings.values()), span=block.span)
        analysis = TaskAnalysis(bindings, vocab, self.report, f"task `{block.name}`")
        before = self.report.raised
        if analysis.check():
            task = attrs.evolve(task, typing=analysis.typing())
            self.task_values(task, analysis, vocab)
        self.task_analyses[block.name] = analysis
        self.task_clean[block.name] = self.report.raised == before
        return task

    def task_values(self, task: TaskSpec, analysis: TaskAnalysis, vocab: VocabSpec) -> None:
        if not check_outputs(analysis, vocab, self.report):
            return
        prompt = task.binding("prompt")
        if prompt is not None:
            check_characters(analysis, prompt.value, vocab, self.report, "the prompt")

    def model(self, name: str, values: dict[str, Any], block: n.SettingsBlock) -> ModelSpec | None:
        if INVALID in values.values():
            return None
        d_head = values["d_head"]
        if d_head == schema.DERIVED:
            if values["d_model"] % values["heads"]:
                self.report.error(
                    "C0406",
                    f"d_model {values['d_model']} does not split into {values['heads']} heads",
                    self._binding_span(block, "heads") or block.name_span,
                    hint="choose heads that divide d_model, or set `d_head` explicitly",
                )
                return None
            d_head = values["d_model"] // values["heads"]
        d_mlp = 4 * values["d_model"] if values["d_mlp"] == schema.DERIVED else values["d_mlp"]
        plain = {k: values[k] for k in schema.MODEL if k not in ("d_head", "d_mlp")}
        model = ModelSpec(name=name, d_head=d_head, d_mlp=d_mlp, span=block.span, **plain)
        weights = budget.weights_bytes(model, len(self.vocab_spec.all_tokens))
        if weights > budget.MEMORY_LIMIT:
            self.report.error(
                "C0401",
                f"model `{name}` would have {budget.parameters(model, len(self.vocab_spec.all_tokens)):,} weights "
                f"({budget.gib(weights)}); circ refuses models over {budget.gib(budget.MEMORY_LIMIT)}",
                block.name_span,
                hint="a smaller d_model, d_mlp, heads or layers",
            )
            return None
        return model

    def train(self, name, values, block, models, tasks) -> TrainSpec | None:
        model = models.get(values["model"]) if values["model"] is not INVALID else None
        if model is None or INVALID in values.values():
            return None
        for task_name, _ in values["tasks"]:
            self.check_fits(task_name, model, block)
        state, activations = budget.training_bytes(model, len(self.vocab_spec.all_tokens), values["batch"])
        if state + activations > budget.MEMORY_LIMIT:
            self.report.error(
                "C0401",
                f"training `{name}` would need about {budget.gib(state + activations)} (weights, gradients and "
                f"Adam's moments {budget.gib(state)}, one batch of {values['batch']} {budget.gib(activations)}); "
                f"circ refuses runs over {budget.gib(budget.MEMORY_LIMIT)}",
                self._binding_span(block, "batch") or block.name_span,
                hint=f"a smaller batch, or a smaller model than `{model.name}` (its context and width)",
            )
            return None
        vocab = self.vocab_of(block)
        if vocab != self.vocab_spec:
            for task_name, _ in values["tasks"]:
                self.check_in_vocab(task_name, vocab, name, block)
        plain = {k: values[k] for k in schema.TRAIN if k not in ("model", "tasks")}
        return TrainSpec(name=name, model=model, mixture=values["tasks"], span=block.span, vocab=vocab, **plain)

    def check_in_vocab(self, task_name: str, vocab: VocabSpec, train: str, block: n.SettingsBlock) -> None:
        """A task was checked with the program's vocab; a train block whose file sees a smaller one
        must tokenize its answers as single tokens and its prompts' characters all the same."""
        analysis = self.task_analyses.get(task_name)
        if analysis is None or not self.task_clean.get(task_name):
            return  # its own errors are reported already
        scratch = DiagnosticSink()
        again = TaskAnalysis(analysis.bindings, vocab, scratch, analysis.scope)
        if not again.check() or not check_outputs(again, vocab, scratch):
            pass
        elif (prompt := again.bindings.get("prompt")) is not None:
            check_characters(again, prompt.value, vocab, scratch, "the prompt")
        where = block.span.path if block.span is not None else "its file"
        note = (
            f"train `{train}` tokenizes with the vocab {where} sees (its own vocab block and those it imports), "
            "not with vocab blocks of the files that import it"
        )
        for d in scratch.diagnostics:
            self.report.error(d.code, d.message, d.span, d.hint, notes=(*d.notes, note))

    def check_fits(self, task_name: str, model: ModelSpec, block: n.SettingsBlock) -> None:
        analysis = self.task_analyses.get(task_name)
        if analysis is None or not analysis.ok:
            return
        prompt = analysis.bindings.get("prompt")
        longest = None if prompt is None else analysis.max_tokens(prompt.value)
        if longest is not None and longest + 1 > model.context:
            self.report.error(
                "C0405",
                f"prompts of task `{task_name}` can reach {longest} tokens, more than model `{model.name}` "
                f"reads (context {model.context}, one taken by the start token)",
                self._binding_span(block, "tasks") or block.name_span,
                hint=f"raise the model's `context` to at least {longest + 1}, or shorten the task's prompts",
            )

    def prune(self, name, values, block, trains) -> PruneSpec | None:
        train = trains.get(values["train"]) if values["train"] is not INVALID else None
        if train is None or INVALID in values.values():
            return None
        if values["task"] not in dict(train.mixture):
            self.report.error(
                "C0407",
                f"model of `{train.name}` is not trained on task `{values['task']}`",
                self._binding_span(block, "task") or block.name_span,
                hint="add the task to the train block's `tasks`, or prune another task",
            )
            return None
        return PruneSpec(name=name, train=train, span=block.span, **{k: values[k] for k in schema.PRUNE if k != "train"})

    def bridge(self, name, values, block, trains) -> BridgeSpec | None:
        dense = trains.get(values["dense"]) if values["dense"] is not INVALID else None
        sparse = trains.get(values["sparse"]) if values["sparse"] is not INVALID else None
        if dense is None or sparse is None or INVALID in values.values():
            return None
        span = self._binding_span(block, "dense") or block.name_span
        if dense.model.layers != sparse.model.layers:
            self.report.error(
                "C0406",
                f"bridge `{name}` joins models of {dense.model.layers} and {sparse.model.layers} layers",
                span,
                hint="a bridge maps every sublayer boundary of one model to the same boundary of the other",
            )
            return None
        if dense.model.density != 1 or dense.model.act_topk != 1:
            self.report.error(
                "C0406",
                f"the dense side of bridge `{name}` trains model `{dense.model.name}`, which is sparse",
                span,
                hint="give the dense model `density = 1` and `act_topk = 1`",
            )
            return None
        if not set(dict(dense.mixture)) & set(dict(sparse.mixture)):
            self.report.error("C0407", f"the two models of bridge `{name}` share no task", span, hint="train both on the tasks to explain")
            return None
        plain = {k: values[k] for k in schema.BRIDGE if k not in ("dense", "sparse")}
        return BridgeSpec(name=name, dense=dense, sparse=sparse, span=block.span, **plain)

    def hypothesis(self, block: n.HypothesisBlock, prunes, tasks, vocab, bridges) -> HypothesisSpec | None:
        kind = self.definitions.get(block.prune, (None,))[0]
        if kind is None:
            self.report.unknown("prune", block.prune, block.prune_span, [k for k, (v, _) in self.definitions.items() if v == "prune"])
            return None
        if kind != "prune":
            self.report.error("C0205", f"`{block.prune}` is a {kind}, not a prune", block.prune_span, hint="a hypothesis is about the circuit a prune block finds")
            return None
        values = self.settings.resolve("hypothesis", self.settings.bindings(block), block.name_span, owner=block.name)
        prune = prunes.get(block.prune)
        if prune is None:
            return None
        statements = [c for c in block.body if not isinstance(c, n.Binding)]
        errors_before = self.report.raised
        # Token literals and adversarial variants go to the model the prune block's train block trains.
        claim_checker = ClaimChecker(
            self.report, prune.train.vocab or vocab, tasks[prune.task], prune.train.model, block.name, bridges=bridges, prune=prune,
            defined=self.kinds, task_analysis=self.task_analyses.get(prune.task),
        )
        claim_checker.check(statements)
        if not statements:
            self.report.error("C0303", f"hypothesis `{block.name}` makes no claim", block.name_span, hint="add a claim such as `nodes <= 30`")
        if INVALID in values.values() or self.report.raised != errors_before:
            return None
        return HypothesisSpec(
            name=block.name,
            prune=prune,
            claims=lower_claims(statements, claim_checker.variant_typing),
            samples=values["samples"],
            seed_share=values["seed_share"],
            confidence=values["confidence"],
            span=block.span,
            bridges={name: bridges[name] for name in claim_checker.bridges_used},
        )

    @staticmethod
    def _binding_span(block, name: str):
        for binding in block.body:
            if isinstance(binding, n.Binding) and binding.name == name:
                return binding.span
        return None
