"""The tokenizer's split and its errors (the encoding speed-up must not change either)."""

from __future__ import annotations

import pytest

from runtime.batch import encode_batch
from runtime.tokenizer import TokenizeError, Tokenizer


@pytest.mark.parametrize("multi", [True, False], ids=["with multi-character tokens", "single characters"])
def test_unknown_character_is_reported_at_its_offset(multi):
    tok = Tokenizer(list("ab[] ") + (["]]", "[["] if multi else []))
    assert tok.encode("") == []
    with pytest.raises(TokenizeError) as err:
        tok.encode("a ]][]c")
    assert str(err.value) == "character 'c' at offset 6 of 'a ]][]c' is not in the vocabulary"


def test_longest_match_first_and_regex_characters_are_literal():
    tok = Tokenizer(list("a.*+ ") + [".*", ".*+", " +"])
    assert tok.pieces("a.*+.* +") == ["a", ".*+", ".*", " +"]
    assert tok.decode(tok.encode("a.*+.* +")) == "a.*+.* +"


def test_newlines_are_tokens_like_any_other():
    tok = Tokenizer(list("ab\n") + ["ab"])
    assert tok.pieces("ab\nb\n") == ["ab", "\n", "b", "\n"]


def test_encode_batch_pads_right_and_marks_missing_competitors():
    tok = Tokenizer(list("ab[]") + ["]]"])
    batch = encode_batch(tok, ["a[", "b[[a"], ["]", "]]"], competitors=[["]]"], []], task_ids=[1, 0], task_names=("x", "y"))
    assert batch.tokens.tolist() == [[1, 2, 4, 0, 0], [1, 3, 4, 4, 2]]
    assert batch.lengths.tolist() == [3, 5]
    assert batch.competitors.tolist() == [[6], [-1]]
    assert batch.task_ids.tolist() == [1, 0]
    empty = encode_batch(tok, [], [])
    assert tuple(empty.tokens.shape) == (0, 1) and tuple(empty.competitors.shape) == (0, 1)
