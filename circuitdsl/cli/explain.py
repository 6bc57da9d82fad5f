"""`circ explain`: what each node of a pruned circuit does, in the terminal, as JSON, or as an HTML page.

Registered on the app of ``app.py``; torch is imported when the command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from circuitdsl.cli.app import app, boundary, stderr, stdout
from circuitdsl.cli.runtime import CACHE_HELP, DEVICE_HELP, THREADS_HELP, pick, print_warnings, runtime_setup
from circuitdsl.diagnostics import UsageError, suggest
from circuitdsl.exit_codes import ExitCode
from circuitdsl.pipeline import check_spec
from circuitdsl.spec.serialize import SCHEMA_VERSION


@app.command()
def explain(
    file: Path = typer.Argument(..., help="The .circ file whose circuits to explain.", show_default=False),
    prune_name: Optional[str] = typer.Option(None, "--prune", help="Explain only this prune block's circuit (default: all)."),
    nodes: Optional[list[str]] = typer.Option(None, "--node", help="Show this node's examples, latent split and edges (repeatable)."),
    top: int = typer.Option(5, "--top", help="Top-activating prompts per node and per prompt source."),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Write a self-contained HTML page: the layered graph, a panel per node."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout (every node, every example)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output (bars on a terminal, plain lines elsewhere)."),
) -> None:
    """Show what each node of a pruned circuit does: where it fires, what it tracks, what it joins.

    For every node of the circuit (trained and pruned first, or reused from the
    cache): its [bold]top-activating prompts[/], from 256 held-out prompts of the
    prune block's task and 256 of the training mixture, each at the token where
    the activation is largest in magnitude (shown ⟦so⟧); its activation at the
    answer position [bold]split by each latent variable[/] of the task (n, mean and std per
    value, and η², the share of its variance the split explains); and its
    [bold]edges[/] in the circuit, strongest first. Activations are the full model's.

    Without --node, one overview row per node (mean, peak, the variable it
    tracks best, edge counts); --node NODE adds that node's tables. --report
    writes the same as an HTML page: the circuit drawn with layers as rows and
    sites as columns, and a node's panel on a click.

    [bold]Example[/]: circ explain specs/quote_close.circ --node 0.attn.v[3] --report explain.html

    Exit codes: 0 explained, 3 internal error, 4 invalid spec, unknown node or usage.
    """
    with boundary():
        if top < 1:
            raise UsageError(f"--top must be at least 1, got {top}")
        spec = check_spec(file)
        names = pick("prune", prune_name, spec.prunes, file)
        from circuitdsl.build.circuits import ensure_circuit
        from circuitdsl.build.models import ensure_model
        from circuitdsl.cli.progress import stage_progress, training_progress
        from circuitdsl.report.explain import node_tables, overview_table
        from circuitdsl.report.width import print_wide
        from circuitdsl.spec.plan import plan_pruning, plan_training
        from circuitdsl.verification.explain import ensure_explorer

        torch_device, cache = runtime_setup(threads, device, cache_dir)
        documents, sections = [], []
        for name in names:
            block = spec.prunes[name]
            training = plan_training(spec.tasks, spec.vocab, block.train)
            with training_progress(stderr, f"train {block.train.name}", quiet or as_json) as progress:
                trained = ensure_model(training, cache, device=torch_device, progress=progress)
            trained.model.to("cpu")
            with stage_progress(stderr, f"prune {name}", quiet or as_json) as progress:
                found = ensure_circuit(plan_pruning(spec.tasks, spec.vocab, block, training), trained, cache, progress=progress)
            print_warnings(cache)
            _check_nodes(nodes or [], found.circuit.nodes, name)
            trained.model.to(torch_device)
            explorer = ensure_explorer(trained, found, spec.tasks[block.task], cache, seed=block.train.seed, top_k=top)
            trained.model.to("cpu")
            circuit = found.report["circuit"]
            documents.append({"prune": name, "task": block.task, "circuit": circuit, "explorer": explorer})
            if report_path is not None:
                from circuitdsl.report.explorer import explorer_html

                heading = f"circuit of `{name}` (task `{block.task}`): {len(found.circuit.nodes)} nodes, {len(found.circuit.edges)} edges"
                sections.append((heading, explorer_html(circuit, explorer)))
            if not as_json:
                title = f"circuit of `{name}` (task `{block.task}`): {len(found.circuit.nodes)} nodes"
                print_wide(stdout, overview_table(title, explorer, {}))
                for node in nodes or []:
                    for renderable in node_tables(node, explorer["nodes"][node], None, block.task):
                        print_wide(stdout, renderable)
                if not nodes:
                    stdout.print(f"a node's examples, latent split and edges: circ explain {file} --node {found.circuit.nodes[0] if found.circuit.nodes else 'NODE'}")
        if report_path is not None:
            from circuitdsl.report.explorer import explorer_page
            from circuitdsl.store.files import atomic_write_text

            atomic_write_text(report_path, explorer_page(f"circ explain {file}", sections))
            stderr.print(f"report written to {report_path}")
        if as_json:
            sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, "circuits": documents}, indent=2) + "\n")
    raise typer.Exit(ExitCode.OK)


def _check_nodes(asked: list[str], circuit: tuple[str, ...], prune: str) -> None:
    for node in asked:
        if node not in circuit:
            hint = suggest(node, circuit)
            raise UsageError(
                f"`{node}` is not a node of the circuit of `{prune}` ({len(circuit)} nodes)" + (f"; {hint}" if hint else "")
            )
