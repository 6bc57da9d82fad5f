"""Live progress on stderr for long runtime work: training, pruning, verifying.

Each returns a callback of the shape the runtime reports with,
``(done, total, info)``; with ``quiet`` the callback does nothing, so the
runtime never needs to know whether anyone is watching.

On a terminal the callback drives a rich bar. Anywhere else (CI, a log file,
a pipe) a bar would print nothing until it stops, then one line cut to the
console's width, so there it prints plain lines instead: at the first update,
each time another tenth of the work is done or ``every_seconds`` have passed,
when a stage changes, and at the end. Lines are never wrapped, so a log can
be searched and compared line by line.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

Callback = Callable[[int, int, dict], None]
Clock = Callable[[], float]

#: Plain lines are printed at least this often (seconds) while work goes on...
EVERY_SECONDS = 15.0
#: ...and each time this share of the work has been done since the last line.
EVERY_SHARE = 0.1


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


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


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


class PlainLines:
    """Progress as plain lines, for a console that is not a terminal.

    ``clock`` (seconds, monotonic) is injectable so tests need not sleep.
    Like the bar, it prints nothing until the first update.
    """

    def __init__(
        self,
        console: Console,
        label: str,
        *,
        clock: Clock = time.monotonic,
        every_seconds: float = EVERY_SECONDS,
        every_share: float = EVERY_SHARE,
    ):
        self.console, self.label, self.clock = console, label, clock
        self.every_seconds, self.every_share = every_seconds, every_share
        self.description: str | None = None
        self.started = self.last_time = 0.0
        self.first_done = self.last_done = 0
        self.pending: tuple[str, int, int, str] | None = None

    def update(self, description: str, done: int, total: int, info: str) -> None:
        now = self.clock()
        # A new stage, or a stage that starts again (the next pruning trial), restarts the count.
        if description != self.description or done < self.last_done:
            if self.pending is not None and description != self.description:
                self._print(*self.pending, now)
            self.description, self.started, self.first_done, self.last_done = description, now, done, 0
            self._print(description, done, total, info, now)
            return
        finished = bool(total) and done >= total
        share_step = total * self.every_share if total else None
        due = (
            finished
            or (share_step is not None and done - self.last_done >= share_step)
            or now - self.last_time >= self.every_seconds
        )
        if due:
            self._print(description, done, total, info, now)
        else:
            self.pending = (description, done, total, info)

    def _print(self, description: str, done: int, total: int, info: str, now: float) -> None:
        elapsed = now - self.started
        parts = [f"{description}: {done}/{total}" if total else f"{description}: {done}"]
        if total:
            parts[0] += f" ({done / total:.0%})"
        if info:
            parts.append(info)
        parts.append(f"elapsed {_duration(elapsed)}")
        if total and done < total and done > self.first_done and elapsed > 0:
            # Timed from the first update, so the rate leaves out whatever ran before it.
            parts.append(f"eta {_duration(elapsed / (done - self.first_done) * (total - done))}")
        self.console.print(Text("  ".join(parts)), soft_wrap=True, highlight=False)
        self.last_time, self.last_done, self.pending = now, done, None

    def close(self) -> None:
        # The last state is always shown, so a log ends where the work ended.
        if self.pending is not None:
            self._print(*self.pending, self.clock())


def _reporter(console: Console, label: str, clock: Clock | None):
    if console.is_terminal:
        return _LazyBar(console, label)
    return PlainLines(console, label, clock=clock or time.monotonic)


@contextmanager
def training_progress(console: Console, label: str, quiet: bool = False, *, clock: Clock | None = None) -> Iterator[Callback]:
    if quiet:
        yield lambda done, total, info: None
        return
    reporter = _reporter(console, label, clock)
    try:
        yield lambda done, total, info: reporter.update(label, done, total, _training_info(info))
    finally:
        reporter.close()


def _scalars(info: dict) -> str:
    # Stages report whatever they measured; only plain numbers fit on a bar.
    parts = []
    for key, value in info.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


@contextmanager
def stage_progress(
    console: Console, label: str, quiet: bool = False, *, clock: Clock | None = None
) -> Iterator[Callable[[str, int, int, dict], None]]:
    """For work in named stages (pruning: masks, search, bisection, controls)."""
    if quiet:
        yield lambda stage, done, total, info: None
        return
    reporter = _reporter(console, label, clock)
    try:
        yield lambda stage, done, total, info: reporter.update(f"{label}: {stage}", done, total, _scalars(info))
    finally:
        reporter.close()



@contextmanager
def claim_progress(console: Console, label: str, quiet: bool = False, *, clock: Clock | None = None) -> Iterator[Callable[[int, int, str], None]]:
    """For deciding claims: ``(claims done, claims in all, the claim being started)``."""
    if quiet:
        yield lambda done, total, claim: None
        return
    reporter = _reporter(console, label, clock)
    try:
        yield lambda done, total, claim: reporter.update(label, done, total, claim)
    finally:
        reporter.close()
