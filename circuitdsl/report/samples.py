"""`circ sample`: drawn examples as a table a person can read, or as JSON.

The prompt is shown token by token under the spec's own vocabulary, so what
the model will read is what the reader sees: tokens alternate in shade,
multi-character tokens (``]]``, ``.add``) stand out, and whitespace is drawn
(``␣`` space, ``↵`` newline, ``⇥`` tab).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from runtime.tokenizer import Tokenizer

from circuitdsl.tasks.data import split_of
from circuitdsl.tasks.sampler import Example

_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
#: Shown around a multi-character token when the terminal has no colour to mark it.
_MULTI_PLAIN = ("‹", "›")


def visible(text: str) -> str:
    """``text`` with whitespace and control characters drawn as symbols."""
    return "".join(_VISIBLE.get(c, c if c.isprintable() else f"\\x{ord(c):02x}") for c in text)


def token_text(pieces: Sequence[str], color: bool) -> Text:
    """A prompt's tokens, their boundaries marked (shading with colour, ‹› around multi-character tokens without)."""
    text = Text()
    for i, piece in enumerate(pieces):
        shown = visible(piece)
        if len(piece) > 1:
            text.append(shown if color else _MULTI_PLAIN[0] + shown + _MULTI_PLAIN[1], style="bold magenta")
        elif piece in _VISIBLE:
            text.append(shown, style="dim")
        else:
            text.append(shown, style="on grey23" if i % 2 else "")
    return text


def _latent(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def sample_table(examples: Sequence[Example], latents: Sequence[str], tokenizer: Tokenizer, *, title: str, color: bool) -> Table:
    """One row per example; the latent variables share one column, one per line, to leave the prompt room."""
    table = Table(
        title=title,
        title_justify="left",
        caption="tokens alternate in shade; ␣ space, ↵ newline, ⇥ tab" + ("" if color else "; ‹..› one multi-character token"),
        caption_justify="left",
        show_lines=True,
    )
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("prompt", overflow="fold", ratio=3)
    table.add_column("tokens", justify="right", no_wrap=True)
    table.add_column("answer", style="bold green", no_wrap=True)
    table.add_column("vs", style="red", no_wrap=True)
    if latents:
        table.add_column("latent variables", overflow="fold", ratio=2)
    table.add_column("split", style="dim", no_wrap=True)
    for i, ex in enumerate(examples, 1):
        pieces = tokenizer.pieces(ex.prompt)
        row = [
            str(i),
            token_text(pieces, color),
            str(len(pieces)),
            visible(ex.answer),
            " ".join(visible(c) for c in ex.competitors) or "-",
        ]
        if latents:
            row.append("\n".join(f"{name} = {_latent(ex.latents[name])}" for name in latents))
        table.add_row(*row, split_of(ex.prompt, ex.answer))
    return table


def sample_document(task: str, examples: Sequence[Example], tokenizer: Tokenizer, *, seed, variant: str | None = None) -> dict:
    """The examples as plain data (the ``examples`` of ``circ sample --json``)."""
    return {
        "task": task,
        "variant": variant,
        "seed": seed,
        "examples": [
            {
                "prompt": ex.prompt,
                "answer": ex.answer,
                "competitors": list(ex.competitors),
                "latents": ex.latents,
                "tokens": tokenizer.pieces(ex.prompt),
                "split": split_of(ex.prompt, ex.answer),
            }
            for ex in examples
        ],
    }
