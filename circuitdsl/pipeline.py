"""The whole of circuitdsl on one screen: the stages, in order, and the two functions that run them.

    text ─parse─▶ modules ─check─▶ checked spec ─plan─▶ plans     compile_spec (no torch)
    plans ─train─▶ model ─prune─▶ circuit ─verify─▶ results        verify_spec  (torch)
    results ─render─▶ tables, JSON, HTML                           circuitdsl.report

Each arrow is one module: ``syntax.files`` and ``syntax.parser`` (text to
modules), ``check.checker`` (names, types, values; claims lowered to typed
objects with ids), ``spec.plan`` (settings and cache keys), ``build`` (train
and prune, cached by content), ``verification`` (every claim decided on the
model and on an untrained control), ``verification.results`` (plain data that
needs no torch to read, render or save).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import attrs

from circuitdsl.check.checker import check_modules
from circuitdsl.diagnostics import CircError, Diagnostic, UsageError, suggest
from circuitdsl.spec.checked import CheckedSpec, HypothesisSpec
from circuitdsl.spec.plan import PrunePlan, TrainPlan, plan_pruning, plan_training
from circuitdsl.syntax import ast as n
from circuitdsl.syntax.files import display_path, load_modules
from circuitdsl.syntax.parser import parse
from circuitdsl.verification.results import FileResult

if TYPE_CHECKING:
    import torch

    from circuitdsl.store.cache import Cache


@attrs.frozen
class HypothesisPlan:
    hypothesis: HypothesisSpec
    #: What the first seed trains and prunes, with the cache keys it would reuse.
    training: TrainPlan
    pruning: PrunePlan


@attrs.frozen
class VerifyPlan:
    """Everything `circ verify` will do for one file, decided before any model exists."""

    file: str
    spec: CheckedSpec
    hypotheses: tuple[HypothesisPlan, ...]
    seeds: int


def compile_spec(path: str | Path, *, hypothesis: str | None = None, seeds: int = 1) -> VerifyPlan:
    """text -> modules -> checked spec -> plans. Imports no torch; raises CircError on any problem."""
    if seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {seeds}")
    spec = check_spec(path)
    chosen = []
    for hyp in _hypotheses(spec, Path(path), hypothesis):
        training = plan_training(spec.tasks, spec.vocab, hyp.prune.train)
        chosen.append(HypothesisPlan(hyp, training, plan_pruning(spec.tasks, spec.vocab, hyp.prune, training)))
    return VerifyPlan(display_path(Path(path)), spec, tuple(chosen), seeds)


def verify_spec(
    plan: VerifyPlan,
    cache: Cache,
    *,
    device: torch.device,
    strict: bool = False,
    out: Path | None = None,
    train_progress: Callable | None = None,
    prune_progress: Callable | None = None,
    bridge_progress: Callable | None = None,
    claim_progress: Callable | None = None,
    explain: bool = True,
    remeasure: bool = False,
) -> FileResult:
    """plans -> model -> circuit -> verdicts -> results, each hypothesis on every seed
    (``explain``: with the circuit explorer's data, for reports; ``remeasure``: even where
    the cache holds the verdicts)."""
    from circuitdsl.verification.run import verify_hypothesis_over_seeds

    results = tuple(
        verify_hypothesis_over_seeds(
            plan.spec, h.hypothesis, cache, device=device, seeds=plan.seeds, out=out,
            train_progress=train_progress, prune_progress=prune_progress, bridge_progress=bridge_progress,
            claim_progress=claim_progress, explain=explain, remeasure=remeasure,
        )
        for h in plan.hypotheses
    )
    return FileResult(plan.file, results, strict=strict)


def _hypotheses(spec: CheckedSpec, path: Path, name: str | None) -> list[HypothesisSpec]:
    """The one asked for, else those ``path`` itself declares (an imported file's are verified there)."""
    if name is not None:
        if name not in spec.hypotheses:
            hint = suggest(name, spec.hypotheses)
            known = ", ".join(f"`{k}`" for k in spec.hypotheses) or "none"
            raise UsageError(f"no hypothesis block named `{name}` in {path}" + (f"; {hint}" if hint else f" (known: {known})"))
        return [spec.hypotheses[name]]
    here = path.resolve()
    own = [h for h in spec.hypotheses.values() if h.span is None or Path(h.span.path).resolve() == here]
    chosen = own or list(spec.hypotheses.values())
    if not chosen:
        raise UsageError(f"{path} defines no hypothesis block (its imports included)")
    return chosen


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The front end builds millions of small objects that all stay alive until it
    returns, so the cyclic collector's passes over them find nothing; they were a
    third of checking a 1 MB spec (benchmarks/RESULTS.md). Nothing it builds is
    cyclic garbage, so pausing it frees the same memory."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def check_spec(path: str | Path) -> CheckedSpec:
    """Read, parse and check one ``.circ`` file with its imports."""
    with _collector_paused():
        modules, sources = load_modules(path)
        return check_modules(modules, sources, display_path(Path(path)))


def check_spec_text(text: str, path: str = "<string>") -> CheckedSpec:
    """Parse and check a spec given as text (it may not import other files)."""
    with _collector_paused():
        module = parse(text, path)
        sources = {path: text}
        imports = [item for item in module.items if isinstance(item, n.Import)]
        if imports:
            raise CircError([Diagnostic("C0501", "a spec given as text cannot import files", imports[0].span)], sources)
        return check_modules([module], sources, path)
