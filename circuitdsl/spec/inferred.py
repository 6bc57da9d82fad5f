"""What the checker inferred about a task's variables, handed on so no later stage infers it again."""

from __future__ import annotations

import attrs


@attrs.frozen
class Typing:
    """Each variable's type (``int``, ``str``, ``list[int]``...), and an order in which
    every variable comes after the ones it uses: all the sampler needs to compile a task."""

    types: dict[str, str] = attrs.field(hash=False)
    order: tuple[str, ...]
