"""The pruning options on the shipped model: circuit sizes, controls and time per combination.

For each task spec and each combination of ablation x loss x norm asked
for, prunes the shipped model exactly as ``circ prune`` would (same data,
means and settings, the spec's prune block with the options overridden),
without reading or writing the circuit cache, and prints one JSON line per
prune plus a markdown table at the end. Run from the repository root under
the heavy-job lock:

    flock /tmp/circ-heavy.lock python benchmarks/prune_grid.py \\
        --tasks quote_close bracket_depth --ablation mean zero --loss ce contrast --norm live frozen

``--trials`` and ``--steps`` override the search budget of every prune;
``--table FILE...`` prints the table of JSON lines saved from earlier runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuitdsl.build.circuits import PRUNE_SEED_OFFSET, prune_config, train_examples  # noqa: E402
from circuitdsl.build.models import ensure_means, ensure_model, mixture_batches  # noqa: E402
from circuitdsl.pipeline import check_spec  # noqa: E402
from circuitdsl.spec.plan import plan_pruning, plan_training  # noqa: E402
from circuitdsl.store.cache import Cache  # noqa: E402
from circuitdsl.tasks import data  # noqa: E402
from runtime.prune import prune  # noqa: E402

SPECS = {
    "quote_close": "specs/quote_close.circ",
    "bracket_depth": "specs/bracket_depth.circ",
    "set_or_string": "specs/set_or_string.circ",
    "while_return_true": "specs/while_return_true.circ",
}


def run_one(spec, block, cache, overrides: dict) -> dict:
    training = plan_training(spec.tasks, spec.vocab, block.train)
    trained = ensure_model(training, cache, device=torch.device("cpu"))
    plan = plan_pruning(spec.tasks, spec.vocab, block, training)
    settings = plan.settings
    means = ensure_means(trained, cache, settings["mean_samples"], seed=settings["seed"])
    config = prune_config(plan)
    config = type(config)(**{**{f: getattr(config, f) for f in config.__dataclass_fields__}, **overrides})
    batch, _ = data.task_batch(
        plan.task, train_examples(config) + config.eval_examples, seed=settings["seed"] + PRUNE_SEED_OFFSET,
        tokenizer=trained.tokenizer, context=trained.plan.model["context"],
    )
    mixture = mixture_batches(trained, settings["seed"] + PRUNE_SEED_OFFSET, 4)
    start = time.perf_counter()

    def progress(stage, done, total, info):
        if stage in ("masks", "minimality") or (stage == "search" and done % 8):
            return
        shown = {k: v for k, v in info.items() if k != "trial"}
        if stage == "search":
            shown = {"best_kept_so_far": min(t.nodes for t in [info["trial"]])}
        print(f"  {time.perf_counter() - start:6.1f} s  {stage} {done}/{total} {shown}", file=sys.stderr, flush=True)

    result = prune(trained.model, batch, means, config, mixture=mixture, progress=progress)
    seconds = time.perf_counter() - start
    c, b, ctl = result.circuit, result.baseline, result.controls
    return {
        "task": plan.task.name, "ablation": config.ablation, "loss": config.loss, "norm": config.norm,
        "trials": config.trials, "steps": config.steps, "nodes": len(c.nodes), "edges": len(c.edges),
        "circuit_loss": round(c.loss, 4), "accuracy": round(c.accuracy, 3),
        "residual_nodes": c.residual["nodes"], "residual_channels": c.residual["channels"], "per_site": c.per_site,
        "attribution_nodes": None if b is None else len(b.nodes),
        "ratio": None if result.size_ratio is None else round(result.size_ratio, 2),
        "cleanup": list(result.cleanup),
        "nonsense": None if ctl is None else [ctl.nonsense.reached, ctl.nonsense.nodes, round(ctl.nonsense.loss, 3)],
        "random_model": None if ctl is None else [ctl.random_model.reached, ctl.random_model.nodes, round(ctl.random_model.loss, 3)],
        "removable": None if ctl is None else len(ctl.removable),
        "seconds": round(seconds, 1), "stages": {k: round(v, 1) for k, v in result.seconds.items()},
        "threads": torch.get_num_threads(), "load": round(os.getloadavg()[0], 1),
    }


def table(rows: list[dict]) -> str:
    """The markdown table of ``rows`` (run_one's dicts), as RESULTS.md shows them."""
    out = [
        "| task | ablation | loss | norm | nodes | accuracy | resid nodes / channels | attribution | ratio | loss | nonsense | untrained | removable | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ns = "-" if r["nonsense"] is None else f"{'reached' if r['nonsense'][0] else 'missed'} {r['nonsense'][1]} ({r['nonsense'][2]})"
        rm = "-" if r["random_model"] is None else f"{'reached' if r['random_model'][0] else 'missed'} ({r['random_model'][2]})"
        out.append(
            f"| {r['task']} | {r['ablation']} | {r['loss']} | {r['norm']} | {r['nodes']} | {r['accuracy']} | {r['residual_nodes']} / "
            f"{r['residual_channels']} | {r['attribution_nodes']} | {r['ratio']} | {r['circuit_loss']} | {ns} | {rm} | "
            f"{r['removable']} | {r['seconds']} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(SPECS), choices=list(SPECS))
    parser.add_argument("--ablation", nargs="+", default=["mean"])
    parser.add_argument("--loss", nargs="+", default=["ce"])
    parser.add_argument("--norm", nargs="+", default=["live"])
    parser.add_argument("--trials", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--no-controls", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--table", nargs="+", metavar="FILE", help="Prune nothing: print the table of the JSON lines in these files.")
    args = parser.parse_args()
    if args.table:
        lines = [line for file in args.table for line in Path(file).read_text().splitlines() if line.startswith("{")]
        print(table([json.loads(line) for line in lines]))
        return
    torch.set_num_threads(args.threads)
    cache = Cache()
    rows = []
    for task in args.tasks:
        spec = check_spec(SPECS[task])
        block = next(iter(spec.prunes.values()))
        for ablation, loss, norm in itertools.product(args.ablation, args.loss, args.norm):
            overrides = {"ablation": ablation, "loss": loss, "norm": norm}
            overrides |= {k: v for k, v in (("trials", args.trials), ("steps", args.steps)) if v is not None}
            if args.no_controls:
                overrides["controls"] = False
            row = run_one(spec, block, cache, overrides)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(table(rows))

if __name__ == "__main__":
    main()
