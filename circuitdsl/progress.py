"""Live progress on stderr for long runtime work: training, pruning, verifying.

Each returns a callback of the shape the runtime reports with,
``(done, total, info)``; with ``quiet`` the callback does nothing, so the
runtime never needs to know whether anyone is watching.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

Callback = Callable[[int, int, dict], None]


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _training_info(info: dict) -> str:
    parts = [f"loss {info['loss']:.3f}", f"density {info['density']:.3f}", f"{info['tokens_per_s']:,.0f} tok/s"]
    accuracies = info.get("tasks") or {}
    if accuracies:
        parts.append(" ".join(f"{name[:10]} {m['accuracy']:.0%}" for name, m in accuracies.items()))
    return "  ".join(parts)


@contextmanager
def training_progress(console: Console, label: str, quiet: bool = False) -> Iterator[Callback]:
    if quiet:
        yield lambda done, total, info: None
        return
    with _bar(console) as bar:
        task = bar.add_task(label, total=None, info="starting")

        def update(done: int, total: int, info: dict) -> None:
            bar.update(task, completed=done, total=total, info=_training_info(info))

        yield update


@contextmanager
def stage_progress(console: Console, label: str, quiet: bool = False) -> Iterator[Callable[[str, int, int, dict], None]]:
    """For work in named stages (pruning: masks, search, bisection, controls)."""
    if quiet:
        yield lambda stage, done, total, info: None
        return
    with _bar(console) as bar:
        task = bar.add_task(label, total=None, info="")

        def update(stage: str, done: int, total: int, info: dict) -> None:
            detail = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
            bar.update(task, description=f"{label}: {stage}", completed=done, total=total, info=detail)

        yield update
