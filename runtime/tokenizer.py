"""Text to token ids and back, for the vocabulary a spec declares.

A vocabulary is single characters plus multi-character tokens (``"]]"``,
``".add"``); text is split longest match first, so ``"x]]"`` is ``x``, ``]]``.
Two special tokens come first: PAD (id 0) fills batches on the right and BOS
(id 1) starts every sequence, so a prompt's first character has a position
before it to attend from.

    >>> tok = Tokenizer(list("ab[]") + ["]]"])
    >>> tok.encode("a[]]")
    [2, 4, 6]
    >>> tok.decode(tok.encode("a[]]"))
    'a[]]'

The token list is saved with every model (``to_json``), so a checkpoint
decodes the same way after the spec changes.
"""

from __future__ import annotations

import json
import re
from typing import Iterable, Sequence

PAD, BOS = "<pad>", "<bos>"
PAD_ID, BOS_ID = 0, 1


class TokenizeError(ValueError):
    """Text with a character the vocabulary lacks."""


class Tokenizer:
    def __init__(self, tokens: Iterable[str]):
        self.tokens: tuple[str, ...] = (PAD, BOS) + tuple(dict.fromkeys(tokens))
        for token in self.tokens[2:]:
            if not token:
                raise ValueError("a token cannot be empty")
            if token in (PAD, BOS):
                raise ValueError(f"{token!r} is reserved")
        self.ids: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        # One regex does the longest-match split in C: the alternatives are tried
        # in order, multi-character tokens longest first, then any single character
        # (an unknown one is caught by the id lookup). Several times faster than a
        # Python loop over positions, which made encoding cost as much as sampling.
        multi = sorted((t for t in self.tokens[2:] if len(t) > 1), key=len, reverse=True)
        self._split = re.compile("|".join(map(re.escape, multi)) + "|.", re.DOTALL).findall if multi else None

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.tokens == other.tokens

    def __hash__(self) -> int:
        return hash(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS); raises TokenizeError on an unknown character."""
        ids = self.ids
        pieces = text if self._split is None else self._split(text)
        try:
            return [ids[piece] for piece in pieces]
        except KeyError as err:
            at = 0
            for piece in pieces:
                if piece == err.args[0]:
                    break
                at += len(piece)
            raise TokenizeError(self._unknown(text, at)) from None

    def decode(self, ids: Sequence[int], *, specials: bool = False) -> str:
        """Text of ``ids``; PAD and BOS are dropped unless ``specials``."""
        tokens = self.tokens
        return "".join(tokens[i] for i in ids if specials or i > BOS_ID)

    def token_id(self, token: str) -> int:
        """The id of one whole token (an answer), or TokenizeError."""
        try:
            return self.ids[token]
        except KeyError:
            raise TokenizeError(f"{token!r} is not one token of the vocabulary") from None

    def pieces(self, text: str) -> list[str]:
        """``text`` split into its tokens, for showing where the boundaries fall."""
        return [self.tokens[i] for i in self.encode(text)]

    def _unknown(self, text: str, at: int) -> str:
        return f"character {text[at]!r} at offset {at} of {text!r} is not in the vocabulary"

    def to_json(self) -> str:
        return json.dumps({"tokens": list(self.tokens[2:])})

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        data = json.loads(text)
        return cls(data["tokens"])
