"""The commands that run models: `circ train`, `prune`, `verify`, and `report` and `cache` beside them.

Registered on the app of ``app.py``. Nothing here imports torch at import
time: each command imports the runtime when it runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import attrs
import typer
from rich.table import Table

from circuitdsl.cli.app import app, boundary, print_error, stderr, stdout
from circuitdsl.diagnostics import UsageError, suggest
from circuitdsl.pipeline import check_spec, compile_spec, verify_spec
from circuitdsl.exit_codes import ExitCode
from circuitdsl.spec.serialize import SCHEMA_VERSION

DEVICE_HELP = "cpu, cuda, or auto (CUDA when there is one)."
CACHE_HELP = "Where models and circuits are cached (default: $CIRC_CACHE, else ~/.cache/circuitdsl)."
THREADS_HELP = "CPU threads for PyTorch (default: PyTorch's choice)."


def pick(kind: str, name: str | None, available: dict, file: Path) -> list[str]:
    """The block names a command runs on: the one asked for, or all of them."""
    if name is None:
        if not available:
            raise UsageError(f"{file} defines no {kind} block (its imports included)")
        return list(available)
    if name not in available:
        hint = suggest(name, available)
        known = ", ".join(f"`{n}`" for n in available) or "none"
        raise UsageError(f"no {kind} block named `{name}` in {file}" + (f"; {hint}" if hint else f" (known: {known})"))
    return [name]


def runtime_setup(threads: Optional[int], device: str, cache_dir: Optional[Path]):
    """What every runtime command starts with: threads, the device, the cache."""
    import torch

    from circuitdsl.build.models import resolve_device
    from circuitdsl.store.cache import Cache

    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    return resolve_device(device), Cache(cache_dir)


def print_warnings(cache) -> None:
    for warning in cache.warnings:
        stderr.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    cache.warnings.clear()


# ---------------------------------------------------------------- train


@app.command()
def train(
    file: Path = typer.Argument(..., help="The .circ file whose train blocks to run.", show_default=False),
    train_name: Optional[str] = typer.Option(None, "--train", help="Run only this train block (default: all)."),
    model_name: Optional[str] = typer.Option(None, "--model", help="Run only the train blocks of this model."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the train block's seed."),
    retrain: bool = typer.Option(False, "--retrain", help="Train even when the cache has the model."),
    quick: bool = typer.Option(
        False, "--quick", help="Train the first tenth of the recipe (at least 50 steps), cache nothing, and say per task whether it is being learned."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout when done."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output (bars on a terminal, plain lines elsewhere)."),
) -> None:
    """Train the weight-sparse model of each `train` block, or reuse it from the cache.

    With --quick, a preview before a full run: the first tenth of the recipe's
    steps (at least 50) on the full run's schedule, nothing read from or
    written to the cache, and per task the
    held-out accuracy and loss against chance with a verdict: [green]learning[/]
    (loss at most half of chance's), [yellow]not yet[/], or [red]at chance[/].

    The cache key is a hash of everything that decides the weights (model,
    recipe, tasks, vocabulary, seed), so a second run returns at once and an
    edited spec trains anew. A cache entry that is truncated or modified is
    detected by its hash and retrained. Training is bit-for-bit deterministic
    on the CPU for a given seed, whatever --threads is.

    [bold]Example[/]: circ train specs/bracket_depth.circ

    Exit codes: 0 trained, 1 training diverged or collapsed (with --quick: some task
    at chance), 3 internal error, 4 invalid spec or usage.
    """
    with boundary():
        spec = check_spec(file)
        names = pick("train", train_name, spec.trains, file)
        if model_name is not None:
            pick("model", model_name, spec.models, file)
            names = [n for n in names if spec.trains[n].model.name == model_name]
            if not names:
                raise UsageError(f"no train block in {file} trains model `{model_name}`")
        from circuitdsl.build.models import TrainingFailed, ensure_model
        from circuitdsl.cli.progress import training_progress
        from circuitdsl.report.circuits import model_table
        from circuitdsl.report.width import print_wide
        from circuitdsl.spec.plan import plan_training

        torch_device, cache = runtime_setup(threads, device, cache_dir)
        if quick:
            raise typer.Exit(_quick(spec, names, seed, torch_device, as_json, quiet))
        reports, failed = [], False
        for name in names:
            plan = plan_training(spec.tasks, spec.vocab, spec.trains[name], seed=seed)
            try:
                with training_progress(stderr, f"train {name}", quiet or as_json) as progress:
                    trained = ensure_model(plan, cache, device=torch_device, progress=progress, retrain=retrain)
            except TrainingFailed as err:
                # The other blocks still train: one diverged recipe should not hide the rest.
                print_error(err)
                failed = True
                reports.append({"train": name, "key": plan.key, "ok": False, "error": err.message})
                continue
            print_warnings(cache)
            reports.append(_model_report(name, plan.key, trained, cache))
        if as_json:
            sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, "models": reports}, indent=2) + "\n")
        else:
            for report in reports:
                if report["ok"]:
                    print_wide(stdout, model_table(report))
    raise typer.Exit(ExitCode.FAILED if failed else ExitCode.OK)


def _quick(spec, names: list[str], seed: Optional[int], torch_device, as_json: bool, quiet: bool) -> ExitCode:
    """`circ train --quick`: a short run of each block, judged per task; nothing is cached."""
    import math

    from circuitdsl.build.models import quick_steps, run_training
    from circuitdsl.cli.progress import training_progress
    from circuitdsl.report.circuits import AT_CHANCE, learning_gain, learning_verdict, quick_table
    from circuitdsl.report.width import print_wide
    from circuitdsl.spec.plan import plan_training

    reports, failed = [], False
    for name in names:
        block = spec.trains[name]
        plan = plan_training(spec.tasks, spec.vocab, block, seed=seed)
        with training_progress(stderr, f"train {name} (quick)", quiet or as_json) as progress:
            _, _, result = run_training(plan, torch_device, progress, stop_after=quick_steps(block.steps))
        tasks = {}
        for task, m in result.final.items():
            metrics = {"accuracy": m.accuracy, "loss": m.loss, "chance_loss": m.chance_loss, "examples": m.examples}
            metrics["chance_accuracy"] = math.exp(-m.chance_loss)
            metrics["from_chance"] = learning_gain(metrics)
            metrics["verdict"] = learning_verdict(metrics)
            tasks[task] = metrics
        report = {
            "train": name, "steps": result.steps_done, "recipe_steps": block.steps, "seconds": result.seconds,
            "stopped": result.stopped, "tasks": tasks,
        }
        report["ok"] = result.stopped is None and all(t["verdict"] != AT_CHANCE for t in tasks.values())
        failed |= not report["ok"]
        reports.append(report)
        if not as_json:
            print_wide(stdout, quick_table(report))
    if as_json:
        sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, "quick": True, "models": reports}, indent=2) + "\n")
    return ExitCode.FAILED if failed else ExitCode.OK


def _model_report(name: str, key: str, trained, cache) -> dict:
    record = trained.record
    return {
        "train": name,
        "key": key,
        "ok": True,
        "cached": trained.cached,
        "path": str(cache.path("models", key)),
        "metrics": record["metrics"],
        "density": record["density"],
        "seconds": record["seconds"],
        "tokens": record["tokens"],
        "steps": record.get("steps_done"),
        "finished_early": record.get("finished_early"),
    }


# ---------------------------------------------------------------- cache

cache_app = typer.Typer(help="List or clear cached models and circuits.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
def cache_ls(
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    quick: bool = typer.Option(False, "--quick", help="Check each file's size against the record, not its hash (reads no data)."),
) -> None:
    """List cache entries: kind, key, size, health, and what each holds.

    Health is `ok`, `incomplete` (a write that never finished) or `corrupt: why`,
    found by checking every file against its record; a bad entry is rebuilt
    the next time it is needed.
    """
    from rich.markup import escape

    from circuitdsl.store.cache import Cache

    cache = Cache(cache_dir)
    entries = cache.entries(verify=not quick)
    if as_json:
        rows = [
            {
                "kind": e.kind,
                "key": e.key,
                "bytes": e.bytes,
                "created": e.created,
                "summary": e.summary,
                "valid": e.valid,
                "health": e.health,
            }
            for e in entries
        ]
        sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, "root": str(cache.root), "entries": rows}, indent=2) + "\n")
        raise typer.Exit(ExitCode.OK)
    table = Table(title=f"cache at {cache.root}", title_justify="left")
    for column in ("kind", "key", "size", "health", "holds"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for e in entries:
        health = e.health if e.valid else f"[red]{escape(e.health)}[/]"
        table.add_row(e.kind, e.key, f"{e.bytes / 1024:.0f} KiB", health, escape(e.summary))
    stdout.print(table if entries else f"cache at {cache.root} is empty")


@cache_app.command("clear")
def cache_clear(
    kind: Optional[str] = typer.Argument(None, help="models, circuits, bridges or verdicts (default: all)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
) -> None:
    """Remove cached entries; they are rebuilt when next needed."""
    from circuitdsl.store.cache import KINDS, Cache

    with boundary():
        if kind is not None and kind not in KINDS:
            raise UsageError(f"unknown cache kind `{kind}`; use one of: {', '.join(KINDS)}")
        removed = Cache(cache_dir).clear(kind)
    stderr.print(f"removed {removed} cache entr{'y' if removed == 1 else 'ies'}")


# ---------------------------------------------------------------- prune


@app.command()
def prune(
    file: Path = typer.Argument(..., help="The .circ file whose prune blocks to run.", show_default=False),
    prune_name: Optional[str] = typer.Option(None, "--prune", help="Run only this prune block (default: all)."),
    out: Path = typer.Option(Path("circ-out"), "--out", help="Folder for circuit.json, circuit.dot and circuit.svg, one subfolder per prune block."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    reprune: bool = typer.Option(False, "--reprune", help="Prune even when the cache has the circuit."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout when done."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output (bars on a terminal, plain lines elsewhere)."),
) -> None:
    """Find the smallest circuit that keeps each `prune` block's task loss under its target.

    Trains (or reuses) the model, learns one mask per node with everything
    outside the circuit mean-ablated, searches the mask hyperparameters, and
    bisects on the number of nodes kept. Attribution pruning runs beside it,
    and the controls (a nonsense task, an untrained model, minimality, other
    ablations) say how much the circuit can be trusted.

    [bold]Example[/]: circ prune specs/bracket_depth.circ --out circuits/

    Exit codes: 0 every circuit reached its target, 1 some did not, 3 internal error, 4 invalid spec or usage.
    """
    with boundary():
        spec = check_spec(file)
        names = pick("prune", prune_name, spec.prunes, file)
        from circuitdsl.build.circuits import ensure_circuit
        from circuitdsl.build.models import ensure_model
        from circuitdsl.cli.progress import stage_progress, training_progress
        from circuitdsl.report.circuits import circuit_tables
        from circuitdsl.report.width import print_wide
        from circuitdsl.spec.plan import plan_pruning, plan_training
        from circuitdsl.verification.controls import judge_controls
        from circuitdsl.verification.run import write_circuit_files

        torch_device, cache = runtime_setup(threads, device, cache_dir)
        reports, failed = [], False
        for name in names:
            block = spec.prunes[name]
            training = plan_training(spec.tasks, spec.vocab, block.train)
            plan = plan_pruning(spec.tasks, spec.vocab, block, training)
            with training_progress(stderr, f"train {block.train.name}", quiet or as_json) as progress:
                trained = ensure_model(training, cache, device=torch_device, progress=progress)
            trained.model.to("cpu")
            with stage_progress(stderr, f"prune {name}", quiet or as_json) as progress:
                found = ensure_circuit(plan, trained, cache, progress=progress, reprune=reprune)
            print_warnings(cache)
            folder = out / name
            write_circuit_files(found, folder)
            checks = judge_controls(found.report.get("controls"), found.report["circuit"])
            reports.append(dict(found.report, cached=found.cached, files=str(folder), control_checks=checks))
            failed |= not found.circuit.reached
        if as_json:
            sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, "circuits": reports}, indent=2) + "\n")
        else:
            for report in reports:
                for renderable in circuit_tables(report):
                    print_wide(stdout, renderable)
    raise typer.Exit(ExitCode.FAILED if failed else ExitCode.OK)


# ---------------------------------------------------------------- verify


@app.command()
def verify(
    files: list[Path] = typer.Argument(..., help="The .circ files whose hypotheses to verify.", show_default=False),
    hypothesis: Optional[str] = typer.Option(None, "--hypothesis", help="Verify only this hypothesis."),
    seeds: int = typer.Option(1, "--seeds", help="Rerun the whole pipeline on this many training seeds; a claim holds if it held on the hypothesis's `seed_share` of them."),
    strict: bool = typer.Option(False, "--strict", help="Also fail on inconclusive and vacuous claims."),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Write a self-contained HTML report here."),
    out: Path = typer.Option(Path("circ-out"), "--out", help="Folder for each circuit's JSON, DOT and SVG picture."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout (schema_version, every verdict, the run record)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output (bars on a terminal, plain lines elsewhere)."),
    remeasure: bool = typer.Option(False, "--remeasure", help="Measure every claim again, even when the cache holds this run's verdicts."),
) -> None:
    """Decide every claim of every hypothesis: train (or reuse) the model, prune (or reuse) the circuit, measure.

    Each claim gets its measured value, a confidence interval where it is a
    rate or a mean, the threshold, and a verdict: PASS, FAIL, or INCONCLUSIVE
    when the threshold lies inside the interval. Every claim is also run on an
    untrained model of the same architecture; one that passes there too is
    marked [yellow]vacuous[/].

    Only running decides: size claims (the pruned circuit), roles (which nodes
    satisfy the predicates and relations), ablations, interventions and
    adversarial predictions (on the full, unpruned model). `circ check`
    decides everything else, instantly.

    Models, circuits and verdicts are cached by content; a verdict's key
    holds the model, the circuit, the hypothesis, the seed and a digest of
    this program's code, so a rerun that changes none of them reads the
    verdicts back (the record says `verdicts_cached`).

    [bold]Example[/]: circ verify specs/bracket_depth.circ --report report.html

    Exit codes: 0 every claim holds, 1 some claim refuted (or, with --strict,
    inconclusive or vacuous), 3 internal error, 4 invalid spec or usage.
    """
    with boundary():
        # Every file is checked and planned before anything trains: a typo in the last
        # file must not surface after minutes of training on the first.
        plans = [compile_spec(file, hypothesis=hypothesis, seeds=seeds) for file in files]
        from circuitdsl.cli.progress import claim_progress, stage_progress, training_progress

        torch_device, cache = runtime_setup(threads, device, cache_dir)
        results = []
        quiet = quiet or as_json
        for plan in plans:
            with training_progress(stderr, "train", quiet) as train_cb, stage_progress(stderr, "prune", quiet) as prune_cb, \
                    stage_progress(stderr, "bridge", quiet) as bridge_cb, claim_progress(stderr, "verify", quiet) as claim_cb:
                result = verify_spec(
                    plan, cache, device=torch_device, strict=strict, out=out, train_progress=train_cb, prune_progress=prune_cb,
                    bridge_progress=lambda done, total, info: bridge_cb("fit", done, total, info), claim_progress=claim_cb,
                    # The terminal shows no explorer; the report and the JSON document (which
                    # `circ report` renders later) do.
                    explain=report_path is not None or as_json, remeasure=remeasure,
                )
            print_warnings(cache)
            results.append(result)
            if not as_json:
                render_results(result)
        _finish(results, report_path, as_json)
    raise typer.Exit(ExitCode.OK if all(r.ok for r in results) else ExitCode.FAILED)


def render_results(result) -> None:
    from circuitdsl.report.verdicts import evidence_lines, print_hypothesis

    for run in result.hypotheses:
        print_hypothesis(stdout, run)
        for line in evidence_lines(run):
            stdout.print(line, soft_wrap=True)
        if run.picture:
            stdout.print(f"  circuit picture: {run.picture}\n")


def _finish(results: list, report_path: Optional[Path], as_json: bool) -> None:
    """The HTML report and the one JSON document, from the results alone."""
    from circuitdsl.verification.results import to_json

    if report_path is not None:
        from circuitdsl.report.verdicts import to_html
        from circuitdsl.store.files import atomic_write_text

        atomic_write_text(report_path, to_html(results))
        stderr.print(f"report written to {report_path}")
    if as_json:
        documents = [to_json(r) for r in results]
        document = documents[0] if len(documents) == 1 else {"schema_version": SCHEMA_VERSION, "files": documents}
        sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


# ---------------------------------------------------------------- report


@app.command()
def report(
    saved: Path = typer.Argument(..., help="A document written by `circ verify --json`.", show_default=False),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Write a self-contained HTML report here."),
    strict: Optional[bool] = typer.Option(None, "--strict/--no-strict", help="Judge inconclusive and vacuous claims as failures (default: as the run did)."),
    as_json: bool = typer.Option(False, "--json", help="Print the document again (with `ok` judged anew under --strict)."),
) -> None:
    """Render a saved `circ verify --json` document again: tables, HTML, or JSON. Needs no PyTorch.

    [bold]Example[/]: circ verify specs/bracket_depth.circ --json > run.json; circ report run.json --report run.html

    Exit codes: 0 every claim holds, 1 some claim fails, 4 the file is not such a document.
    """
    from circuitdsl.verification.results import from_json

    with boundary():
        try:
            results = from_json(json.loads(saved.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
            raise UsageError(f"{saved} is not a document of `circ verify --json`: {err}") from None
        if strict is not None:
            results = [attrs.evolve(r, strict=strict) for r in results]
        if not as_json:
            for result in results:
                render_results(result)
        _finish(results, report_path, as_json)
    raise typer.Exit(ExitCode.OK if all(r.ok for r in results) else ExitCode.FAILED)
