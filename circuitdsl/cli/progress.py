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


class _LazyBar:
    """A bar that appears on the first update: work answered from the cache shows nothing."""

    def __init__(self, console: Console, label: str):
        self.console, self.label = console, label
        self.bar: Progress | None = None
        self.task = None

    def update(self, description: str, done: int, total: int, info: str) -> None:
        if self.bar is None:
            self.bar = _bar(self.console)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=None, info="")
        self.bar.update(self.task, description=description, completed=done, total=total, info=info)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@contextmanager
def training_progress(console: Console, label: str, quiet: bool = False) -> Iterator[Callback]:
    if quiet:
        yield lambda done, total, info: None
        return
    lazy = _LazyBar(console, label)
    try:
        yield lambda done, total, info: lazy.update(label, done, total, _training_info(info))
    finally:
        lazy.close()


def _scalars(info: dict) -> str:
    # Stages report whatever they measured; only plain numbers fit on a bar.
    parts = []
    for key, value in info.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


@contextmanager
def stage_progress(console: Console, label: str, quiet: bool = False) -> Iterator[Callable[[str, int, int, dict], None]]:
    """For work in named stages (pruning: masks, search, bisection, controls)."""
    if quiet:
        yield lambda stage, done, total, info: None
        return
    lazy = _LazyBar(console, label)
    try:
        yield lambda stage, done, total, info: lazy.update(f"{label}: {stage}", done, total, _scalars(info))
    finally:
        lazy.close()
