"""`circ bridge`: fit (or reuse) the bridges of a spec and show how well each joins its two models.

Registered on the app of ``app.py`` like ``runtime.py``'s commands; torch is
imported inside the command, so ``circ --help`` and ``circ check`` stay instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from circuitdsl.cli.app import app, boundary, stderr, stdout
from circuitdsl.cli.runtime import CACHE_HELP, DEVICE_HELP, THREADS_HELP, pick, print_warnings, runtime_setup
from circuitdsl.exit_codes import ExitCode
from circuitdsl.pipeline import check_spec
from circuitdsl.spec.serialize import SCHEMA_VERSION


@app.command()
def bridge(
    file: Path = typer.Argument(..., help="The .circ file whose bridge blocks to fit.", show_default=False),
    bridge_name: Optional[str] = typer.Option(None, "--bridge", help="Fit only this bridge block (default: all)."),
    control: bool = typer.Option(
        False, "--control", help="Also fit the control bridge (the same recipe, to an untrained sparse model) that `circ verify` measures claims against."
    ),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout when done."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output (bars on a terminal, plain lines elsewhere)."),
) -> None:
    """Fit the encoders and decoders of each `bridge` block, or reuse them from the cache, and report them.

    Trains (or reuses) both models first. Per sublayer boundary the table shows
    the NMSE of the encoder (dense -> sparse) and of the decoder (sparse ->
    dense), the KL to the dense model of both hybrid passes (dense layers up to
    the boundary then the sparse model through the encoder, d->s, and the
    reverse through the decoder, s->d) and their answer accuracy, on held-out
    examples of the tasks both models share. Cached by content, like models:
    `circ verify` reuses what this fits.

    [bold]Example[/]: circ bridge specs/bridges.circ --control

    Exit codes: 0 fitted, 3 internal error, 4 invalid spec or usage.
    """
    with boundary():
        spec = check_spec(file)
        names = pick("bridge", bridge_name, spec.bridges, file)
        from circuitdsl.build.bridges import ensure_bridge
        from circuitdsl.build.models import ensure_model
        from circuitdsl.cli.progress import stage_progress, training_progress
        from circuitdsl.report.bridges import bridge_table
        from circuitdsl.report.width import print_wide
        from circuitdsl.spec.plan import plan_bridge, plan_training
        from circuitdsl.verification.run import untrained_control

        torch_device, cache = runtime_setup(threads, device, cache_dir)
        quiet = quiet or as_json
        reports = {}
        for name in names:
            block = spec.bridges[name]
            models = {}
            for side in ("dense", "sparse"):
                train = getattr(block, side)
                plan = plan_training(spec.tasks, spec.vocab, train)
                with training_progress(stderr, f"train {train.name}", quiet) as progress:
                    models[side] = (plan, ensure_model(plan, cache, device=torch_device, progress=progress))
                models[side][1].model.to("cpu")
            (dense_plan, dense), (sparse_plan, sparse) = models["dense"], models["sparse"]
            with stage_progress(stderr, f"bridge {name}", quiet) as progress:
                fitted = ensure_bridge(
                    plan_bridge(block, dense_plan, sparse_plan), dense, sparse.model, cache,
                    progress=lambda done, total, info: progress("fit", done, total, info),
                )
            report = {
                "bridge": name, "dense": block.dense.name, "sparse": block.sparse.name, "key": fitted.plan.key,
                "cached": fitted.cached, "seconds": fitted.record.get("seconds"), "metrics": fitted.metrics,
            }
            if control:
                untrained = untrained_control(sparse, sparse_plan.seed)
                with stage_progress(stderr, f"bridge {name} (control)", quiet) as progress:
                    against = ensure_bridge(
                        plan_bridge(block, dense_plan, sparse_plan, control_seed=sparse_plan.seed), dense, untrained, cache,
                        progress=lambda done, total, info: progress("fit", done, total, info),
                    )
                report.update(control_key=against.plan.key, control_cached=against.cached, control_metrics=against.metrics)
            print_warnings(cache)
            reports[name] = report
        if as_json:
            sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, "bridges": reports}, indent=2) + "\n")
        else:
            for name, report in reports.items():
                print_wide(stdout, bridge_table(name, report))
    raise typer.Exit(ExitCode.OK)
