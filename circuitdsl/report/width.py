"""How wide to print a table: a terminal's own width, and for anything else the table's.

Output that is not a terminal (a log file, a pipe, CI) gets rich's default of
80 columns, which folds every claim and reason over several lines; nobody
reads such output at a fixed width, so there a table is printed as wide as
its content needs, each row on one line.
"""

from __future__ import annotations

from rich.console import Console, RenderableType

#: Wide enough that no table of ours is measured short.
UNBOUNDED = 100_000


def natural_width(console: Console, renderable: RenderableType) -> int:
    return console.measure(renderable, options=console.options.update_width(UNBOUNDED)).maximum


def print_wide(console: Console, renderable: RenderableType) -> None:
    """On a terminal as usual; elsewhere at the renderable's natural width (never narrower than the console)."""
    if console.is_terminal:
        console.print(renderable)
        return
    # print(width=...) cannot go past the console's width, so the console widens for this one print.
    before = console.width
    console.width = max(natural_width(console, renderable), before)
    try:
        console.print(renderable)
    finally:
        console.width = before
