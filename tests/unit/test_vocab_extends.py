"""A vocab in an importing file extends the one it imports; models trained in the shared file keep theirs."""

from __future__ import annotations

from pathlib import Path

import pytest

from circuitdsl.diagnostics import CircError
from circuitdsl.pipeline import check_spec
from circuitdsl.spec.plan import plan_training

SHARED = """
vocab { tokens = ["]]"] }
task nest {
    depth  = choice(1, 2)
    prompt = "x = " + nested_list(depth: depth, items: 1..3, values: int(0..9))
    answer = if depth == 2 then "]]" else "]"
}
model m { layers = 1  d_model = 16  heads = 2  context = 32 }
train shared { model = m  tasks = nest }
prune find_nest { train = shared  task = nest }
"""

EXTENSION = """
import "shared.circ"
vocab { tokens = ["def"] }
task keyword {
    k      = choice("def", "x")
    prompt = "${k} f(a, b)"
    answer = if k == "def" then ":" else "\\n"
}
train extended { model = m  tasks = {nest: 1, keyword: 1} }
"""


def write(folder: Path, **files: str) -> None:
    for name, text in files.items():
        (folder / f"{name}.circ").write_text(text)


def keys(path: Path) -> dict[str, str]:
    spec = check_spec(path)
    return {name: plan_training(spec.tasks, spec.vocab, train).key for name, train in spec.trains.items()}


def test_an_importing_file_s_vocab_extends_the_shared_one(tmp_path):
    write(tmp_path, shared=SHARED, ext=EXTENSION)
    spec = check_spec(tmp_path / "ext.circ")
    assert spec.trains["extended"].vocab.tokens == ("]]", "def")
    assert spec.trains["shared"].vocab.tokens == ("]]",)
    assert spec.vocab.tokens == ("]]", "def")  # the program's: what the root file sees


def test_the_shared_model_s_cache_key_does_not_change_and_the_extended_one_s_does(tmp_path):
    write(tmp_path, shared=SHARED, ext=EXTENSION)
    alone = keys(tmp_path / "shared.circ")
    extended = keys(tmp_path / "ext.circ")
    assert extended["shared"] == alone["shared"]
    # The same recipe in the extending file tokenizes with more tokens: another model.
    write(tmp_path, ext2=EXTENSION.replace("train extended { model = m  tasks = {nest: 1, keyword: 1} }", "train again { model = m  tasks = nest }"))
    assert keys(tmp_path / "ext2.circ")["again"] != alone["shared"]


def test_characters_are_added_and_kept_when_an_extension_names_none(tmp_path):
    write(
        tmp_path,
        base='vocab { chars = "abc" }\ntask t { prompt = "ab"  answer = "c" }\nmodel m { layers = 1  d_model = 16  heads = 2 }\ntrain b { model = m  tasks = t }\n',
        more='import "base.circ"\nvocab { chars = "dc" }\ntrain x { model = m  tasks = t }\n',
        tokens_only='import "base.circ"\nvocab { tokens = ["ab"] }\ntrain y { model = m  tasks = t }\n',
    )
    assert check_spec(tmp_path / "more.circ").trains["x"].vocab.chars == "abcd"
    only = check_spec(tmp_path / "tokens_only.circ").trains["y"].vocab
    assert (only.chars, only.tokens) == ("abc", ("ab",))


def test_sibling_files_do_not_see_each_other_s_vocab(tmp_path):
    write(
        tmp_path,
        common='task t { prompt = "ab"  answer = "c" }\nmodel m { layers = 1  d_model = 16  heads = 2 }\n',
        a='import "common.circ"\nvocab { tokens = ["aa"] }\ntrain ta { model = m  tasks = t }\n',
        b='import "common.circ"\nvocab { tokens = ["bb"] }\ntrain tb { model = m  tasks = t }\n',
        root='import "a.circ"\nimport "b.circ"\n',
    )
    spec = check_spec(tmp_path / "root.circ")
    assert (spec.trains["ta"].vocab.tokens, spec.trains["tb"].vocab.tokens) == (("aa",), ("bb",))
    assert spec.vocab.tokens == ("aa", "bb")


def test_two_vocabs_in_one_file_are_still_an_error(tmp_path):
    write(tmp_path, two='vocab { tokens = ["]]"] }\nvocab { tokens = ["def"] }\n')
    with pytest.raises(CircError) as err:
        check_spec(tmp_path / "two.circ")
    [d] = err.value.diagnostics
    assert d.code == "C0202" and d.message == "a file has one vocab; this is a second"


def test_a_shared_train_block_cannot_use_a_token_only_an_importing_file_adds(tmp_path):
    # The shared file's train block names a task of the extending file: its model would
    # tokenize `def` as three characters, so `def` is no single-token answer there.
    write(
        tmp_path,
        shared=SHARED.replace("train shared { model = m  tasks = nest }", "train shared { model = m  tasks = {nest: 1, kw: 1} }"),
        ext='import "shared.circ"\nvocab { tokens = ["def"] }\ntask kw { prompt = "x"  answer = choice("def", "y") }\n',
    )
    with pytest.raises(CircError) as err:
        check_spec(tmp_path / "ext.circ")
    [d] = err.value.diagnostics
    assert d.code == "C0404" and "'def'" in d.message, d
    assert any("train `shared` tokenizes with the vocab" in note for note in d.notes), d.notes


def test_claims_on_a_shared_model_check_tokens_against_its_vocab(tmp_path):
    hypothesis = 'import "shared.circ"\nvocab { tokens = ["def"] }\nhypothesis h on find_nest {\n    ablate circuit -> rate("def") <= 0.1\n}\n'
    write(tmp_path, shared=SHARED, ext=hypothesis)
    with pytest.raises(CircError) as err:
        check_spec(tmp_path / "ext.circ")
    assert [d.code for d in err.value.diagnostics] == ["C0404"]
    # With the token in the shared vocab, the same claim checks.
    write(tmp_path, shared=SHARED.replace('tokens = ["]]"]', 'tokens = ["]]", "def"]'))
    check_spec(tmp_path / "ext.circ")


def test_a_token_spelled_by_consecutive_characters_is_still_a_token():
    from circuitdsl.spec.checked import PRINTABLE, VocabSpec
    from circuitdsl.tasks.data import make_tokenizer

    vocab = VocabSpec(PRINTABLE, ("def", "]]", "d"))
    assert vocab.all_tokens.count("def") == 1 and vocab.all_tokens.count("d") == 1
    assert len(make_tokenizer(vocab).encode("def f(a)")) == 6
