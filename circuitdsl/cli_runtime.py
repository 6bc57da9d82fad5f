"""The commands that run models: `circ train` and `circ cache` (and the shared options).

Registered on the app in ``cli.py``. Nothing here imports torch at import
time: each command imports the pipeline when it runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .cli import app, print_error, stderr, stdout, _internal_error
from .diagnostics import CircError, suggest
from .exitcodes import ExitCode
from .serialize import SCHEMA_VERSION

DEVICE_HELP = "cpu, cuda, or auto (CUDA when there is one)."
CACHE_HELP = "Where models and circuits are cached (default: $CIRC_CACHE, else ~/.cache/circuitdsl)."
THREADS_HELP = "CPU threads for PyTorch (default: PyTorch's choice)."


def load_or_exit(file: Path):
    """The checked program, or the diagnostics and exit 4: nothing runs on an invalid spec."""
    from .loader import load_program

    try:
        return load_program(file)
    except CircError as err:
        print_error(err)
        raise typer.Exit(ExitCode.INVALID_SPEC)


def usage_exit(message: str) -> typer.Exit:
    stderr.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(ExitCode.INVALID_SPEC)


def pick(kind: str, name: str | None, available: dict, file: Path) -> list[str]:
    """The block names a command runs on: the one asked for, or all of them."""
    if name is None:
        if not available:
            raise usage_exit(f"{file} defines no {kind} block (its imports included)")
        return list(available)
    if name not in available:
        hint = suggest(name, available)
        known = ", ".join(f"`{n}`" for n in available) or "none"
        raise usage_exit(f"no {kind} block named `{name}` in {file}" + (f"; {hint}" if hint else f" (known: {known})"))
    return [name]


def runtime_setup(threads: Optional[int], device: str, cache_dir: Optional[Path]):
    """What every runtime command starts with: threads, the device, the cache."""
    import torch

    from .cache import Cache
    from .pipeline import UsageError, resolve_device

    if threads is not None:
        if threads < 1:
            raise usage_exit(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        torch_device = resolve_device(device)
    except UsageError as err:
        raise usage_exit(str(err))
    return torch_device, Cache(cache_dir)


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
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout when done."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar (for CI logs)."),
) -> None:
    """Train the weight-sparse model of each `train` block, or reuse it from the cache.

    The cache key is a hash of everything that decides the weights (model,
    recipe, tasks, vocabulary, seed), so a second run returns at once and an
    edited spec trains anew. A cache entry that is truncated or modified is
    detected by its hash and retrained. Training is bit-for-bit deterministic
    on the CPU for a given seed, whatever --threads is.

    [bold]Example[/]: circ train specs/bracket_depth.circ

    Exit codes: 0 trained, 1 training diverged or collapsed, 3 internal error, 4 invalid spec or usage.
    """
    program = load_or_exit(file)
    names = pick("train", train_name, program.trains, file)
    if model_name is not None:
        pick("model", model_name, program.models, file)
        names = [n for n in names if program.trains[n].model.name == model_name]
        if not names:
            raise usage_exit(f"no train block in {file} trains model `{model_name}`")
    try:
        from .pipeline import TrainingFailed, ensure_model
        from .plan import plan_training
        from .progress import training_progress

        torch_device, cache = runtime_setup(threads, device, cache_dir)
        reports, failed = [], False
        for name in names:
            plan = plan_training(program.tasks, program.vocab, program.trains[name], seed=seed)
            try:
                with training_progress(stderr, f"train {name}", quiet or as_json) as progress:
                    trained = ensure_model(plan, cache, device=torch_device, progress=progress, retrain=retrain)
            except TrainingFailed as err:
                stderr.print(f"[bold red]error:[/] {err}")
                failed = True
                reports.append({"train": name, "key": plan.key, "ok": False, "error": str(err)})
                continue
            for warning in cache.warnings:
                stderr.print(f"[yellow]warning:[/] {warning}")
            cache.warnings.clear()
            reports.append(_model_report(name, plan.key, trained, cache))
        if as_json:
            sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, "models": reports}, indent=2) + "\n")
        else:
            for report in reports:
                if report["ok"]:
                    stdout.print(_model_table(report))
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary turns crashes into exit 3
        raise typer.Exit(_internal_error(exc))
    raise typer.Exit(ExitCode.FAILED if failed else ExitCode.OK)


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
    }


def _model_table(report: dict) -> Table:
    origin = "from cache" if report["cached"] else f"trained in {report['seconds']:.1f} s"
    table = Table(title=f"model `{report['train']}` ({origin}, key {report['key']})", title_justify="left")
    table.add_column("task")
    table.add_column("held-out accuracy", justify="right")
    table.add_column("loss", justify="right")
    table.add_column("examples", justify="right")
    for task, m in report["metrics"].items():
        table.add_row(task, f"{m['accuracy']:.1%}", f"{m['loss']:.4f}", str(m["examples"]))
    densities = sorted(set(round(d, 6) for d in report["density"].values()))
    table.caption = f"weight density of sparsified matrices: {', '.join(f'{d:.4g}' for d in densities)}; saved in {report['path']}"
    return table


# ---------------------------------------------------------------- cache

cache_app = typer.Typer(help="List or clear cached models and circuits.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
def cache_ls(
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """List cache entries: kind, key, size, and what each holds."""
    from .cache import Cache

    cache = Cache(cache_dir)
    entries = cache.entries()
    if as_json:
        rows = [
            {"kind": e.kind, "key": e.key, "bytes": e.bytes, "created": e.created, "summary": e.summary, "valid": e.valid}
            for e in entries
        ]
        sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, "root": str(cache.root), "entries": rows}, indent=2) + "\n")
        raise typer.Exit(ExitCode.OK)
    table = Table(title=f"cache at {cache.root}", title_justify="left")
    for column in ("kind", "key", "size", "holds"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for e in entries:
        table.add_row(e.kind, e.key, f"{e.bytes / 1024:.0f} KiB", e.summary if e.valid else f"[red]{e.summary}[/]")
    stdout.print(table if entries else f"cache at {cache.root} is empty")


@cache_app.command("clear")
def cache_clear(
    kind: Optional[str] = typer.Argument(None, help="models or circuits (default: both)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
) -> None:
    """Remove cached entries; they are rebuilt when next needed."""
    from .cache import KINDS, Cache

    if kind is not None and kind not in KINDS:
        raise usage_exit(f"unknown cache kind `{kind}`; use one of: {', '.join(KINDS)}")
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars (for CI logs)."),
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
    program = load_or_exit(file)
    names = pick("prune", prune_name, program.prunes, file)
    try:
        from .pipeline import TrainingFailed, ensure_circuit, ensure_model
        from .plan import plan_pruning, plan_training
        from .progress import stage_progress, training_progress

        torch_device, cache = runtime_setup(threads, device, cache_dir)
        reports, failed = [], False
        for name in names:
            spec = program.prunes[name]
            training = plan_training(program.tasks, program.vocab, spec.train)
            plan = plan_pruning(program.tasks, program.vocab, spec, training)
            try:
                with training_progress(stderr, f"train {spec.train.name}", quiet or as_json) as progress:
                    trained = ensure_model(training, cache, device=torch_device, progress=progress)
            except TrainingFailed as err:
                stderr.print(f"[bold red]error:[/] {err}")
                raise typer.Exit(ExitCode.FAILED)
            trained.model.to("cpu")
            with stage_progress(stderr, f"prune {name}", quiet or as_json) as progress:
                found = ensure_circuit(plan, trained, cache, progress=progress, reprune=reprune)
            folder = out / name
            write_circuit_files(found, folder)
            report = dict(found.report, cached=found.cached, files=str(folder))
            reports.append(report)
            failed |= not found.circuit.reached
        if as_json:
            sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, "circuits": reports}, indent=2) + "\n")
        else:
            for report in reports:
                for renderable in circuit_tables(report):
                    stdout.print(renderable)
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary turns crashes into exit 3
        raise typer.Exit(_internal_error(exc))
    raise typer.Exit(ExitCode.FAILED if failed else ExitCode.OK)


def write_circuit_files(found, folder: Path, roles: dict | None = None) -> None:
    from .cachedir import atomic_write_text

    atomic_write_text(folder / "circuit.json", json.dumps(dict(found.report, roles=roles or {}), indent=2) + "\n")
    atomic_write_text(folder / "circuit.dot", found.circuit.to_dot(roles))
    atomic_write_text(folder / "circuit.svg", found.circuit.to_svg(roles))


def circuit_tables(report: dict) -> list:
    circuit, baseline, controls = report["circuit"], report["baseline"], report["controls"]
    origin = "from cache" if report.get("cached") else "pruned now"
    title = f"circuit of `{report['prune']}` on task `{report['task']}` ({origin})"
    summary = Table(title=title, title_justify="left")
    summary.add_column("")
    summary.add_column("learned" if circuit["method"] == "learned" else circuit["method"], justify="right")
    if baseline:
        summary.add_column("attribution", justify="right")
    rows = [
        ("nodes", lambda c: f"{c['node_count']} of {c['total_nodes']}"),
        ("edges", lambda c: str(c["edge_count"])),
        ("nodes per layer", lambda c: " / ".join(str(v) for v in c["per_layer"].values())),
        (f"loss, circuit only (target {circuit['target']:g})", lambda c: f"{c['loss']:.4f}"),
        ("loss after logit calibration", lambda c: f"{c['calibrated_loss']:.4f}"),
        ("accuracy, circuit only", lambda c: f"{c['accuracy']:.1%}"),
    ]
    for label, cell in rows:
        summary.add_row(label, cell(circuit), *([cell(baseline)] if baseline else []))
    caption = [f"full model loss {report['full_loss']:.4f}; everything ablated {report['empty_loss']:.4f}"]
    if report.get("circuit_ablated_loss") is not None:
        caption.append(f"circuit ablated {report['circuit_ablated_loss']:.4f}")
    if report.get("size_ratio"):
        caption.append(f"learned circuit {report['size_ratio']:.1f}x smaller than attribution's")
    if report.get("files"):
        caption.append(f"written to {report['files']}/circuit.{{json,dot,svg}}")
    summary.caption = "; ".join(caption)
    out = [summary]
    if controls:
        table = Table(title="controls", title_justify="left")
        for column in ("control", "result", "verdict"):
            table.add_column(column)
        table.add_row("identity (no node ablated = plain model)", "logits equal", "[green]ok[/]")
        nonsense = controls["nonsense"]
        if nonsense:
            flag = controls["nonsense_flag"]
            table.add_row(
                "nonsense task (shuffled answers)",
                f"{nonsense['nodes']} nodes, loss {nonsense['loss']:.3f} ({'reached' if nonsense['reached'] else 'not reached'})",
                "[red]flagged: about as small as the real circuit[/]" if flag else "[green]ok[/]",
            )
        random_run = controls["random_model"]
        if random_run:
            table.add_row(
                "untrained model",
                f"{random_run['nodes']} nodes, loss {random_run['loss']:.3f} ({'reached' if random_run['reached'] else 'not reached'})",
                "[red]reached the target[/]" if random_run["reached"] else "[green]ok[/]",
            )
        removable = controls["removable"]
        if removable:
            shown = ", ".join(removable[:6]) + (", ..." if len(removable) > 6 else "")
            result = f"{len(removable)} of {len(controls['minimality'])} nodes removable: {shown}"
        else:
            result = "no node removable"
        table.add_row("minimality (drop one node)", result, "[yellow]not minimal[/]" if removable else "[green]ok[/]")
        table.add_row(
            "ablation agreement",
            ", ".join(f"{k} {v:.3f}" for k, v in controls["ablation_agreement"].items()),
            "",
        )
        out.append(table)
    return out


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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars (for CI logs)."),
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

    [bold]Example[/]: circ verify specs/bracket_depth.circ --report report.html

    Exit codes: 0 every claim holds, 1 some claim refuted (or, with --strict,
    inconclusive or vacuous), 3 internal error, 4 invalid spec or usage.
    """
    if seeds < 1:
        raise usage_exit(f"--seeds must be at least 1, got {seeds}")
    programs = [(file, load_or_exit(file)) for file in files]
    try:
        from .pipeline import TrainingFailed
        from .progress import stage_progress, training_progress
        from .report import evidence_lines, hypothesis_table, to_html, to_json
        from .run_verify import verify_program

        torch_device, cache = runtime_setup(threads, device, cache_dir)
        documents, html_parts, failed = [], [], False
        quiet = quiet or as_json
        for file, program in programs:
            pool = program.hypotheses if hypothesis else own_hypotheses(program, file) or program.hypotheses
            names = pick("hypothesis", hypothesis, pool, file)
            try:
                with training_progress(stderr, "train", quiet) as train_cb, stage_progress(stderr, "prune", quiet) as prune_cb:
                    runs = verify_program(
                        program, names, cache, device=torch_device, seeds=seeds,
                        train_progress=train_cb, prune_progress=prune_cb,
                    )
            except TrainingFailed as err:
                stderr.print(f"[bold red]error:[/] {err}")
                raise typer.Exit(ExitCode.FAILED)
            for warning in cache.warnings:
                stderr.print(f"[yellow]warning:[/] {warning}")
            cache.warnings.clear()
            pictures = {}
            for run in runs:
                folder = out / run.hypothesis.prune.name
                write_circuit_files(run.runs[0].found, folder, _role_labels(run))
                pictures[run.hypothesis.name] = str(folder / "circuit.svg")
                failed |= run.refuted or (strict and run.shaky())
                if not as_json:
                    stdout.print(hypothesis_table(run))
                    for line in evidence_lines(run):
                        stdout.print(line)
                    stdout.print(f"  circuit picture: {pictures[run.hypothesis.name]}\n")
            documents.append(to_json(program, runs, pictures))
            if report_path is not None:
                html_parts.append((program, runs))
        if report_path is not None:
            from .cachedir import atomic_write_text

            atomic_write_text(report_path, "\n".join(to_html(p, r) for p, r in html_parts))
            stderr.print(f"report written to {report_path}")
        if as_json:
            document = documents[0] if len(documents) == 1 else {"schema_version": SCHEMA_VERSION, "files": documents}
            sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    except typer.Exit:
        raise
    except CircError as err:
        print_error(err)
        raise typer.Exit(ExitCode.INVALID_SPEC)
    except Exception as exc:  # noqa: BLE001 - the boundary turns crashes into exit 3
        raise typer.Exit(_internal_error(exc))
    raise typer.Exit(ExitCode.FAILED if failed else ExitCode.OK)


def own_hypotheses(program, file: Path) -> dict:
    """The hypotheses ``file`` itself declares: those of files it imports are verified there."""
    here = file.resolve()
    return {
        name: hyp for name, hyp in program.hypotheses.items() if hyp.span is None or Path(hyp.span.path).resolve() == here
    }


def _role_labels(run) -> dict[str, str]:
    labels: dict[str, str] = {}
    for claim in run.claims:
        evidence = claim.verdict.evidence or {}
        if claim.verdict.kind == "role" and evidence.get("role"):
            for node in evidence.get("nodes") or []:
                labels[node] = f"{labels[node]}, {evidence['role']}" if node in labels else evidence["role"]
    return labels
