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
        # Longest first, grouped by first character: the match loop tries only
        # the tokens that can start at each position.
        self._by_first: dict[str, list[str]] = {}
        for token in sorted(self.tokens[2:], key=len, reverse=True):
            self._by_first.setdefault(token[0], []).append(token)
        self._multi = any(len(t) > 1 for t in self.tokens[2:])

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.tokens == other.tokens

    def __hash__(self) -> int:
        return hash(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS); raises TokenizeError on an unknown character."""
        ids = self.ids
        if not self._multi:
            try:
                return [ids[c] for c in text]
            except KeyError as err:
                raise TokenizeError(self._unknown(text, text.index(err.args[0]))) from None
        out: list[int] = []
        i, n = 0, len(text)
        while i < n:
            for token in self._by_first.get(text[i], ()):
                if text.startswith(token, i):
                    out.append(ids[token])
                    i += len(token)
                    break
            else:
                raise TokenizeError(self._unknown(text, i))
        return out

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
