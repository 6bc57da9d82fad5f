"""Task data against references that do not share the sampler's code.

Each shipped task is held to what Python itself says about its examples:
``ast`` parses the completed statement, ``ast.literal_eval`` closes the
string, ``exec`` runs the set-or-string program. The data plumbing is held to
its promises: the tokenizer inverts exactly, a seed fixes the batches, and
training and evaluation never share an example.
"""

from __future__ import annotations

import ast
import builtins
import io
import random
import tokenize
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuitdsl.check import builtins as b
from circuitdsl.tasks import data
from circuitdsl.check.values import CODE_LINE_MAX
from circuitdsl.pipeline import check_spec, check_spec_text
from circuitdsl.tasks.sampler import (
    CODE_LINE_BUILTINS,
    CODE_LINE_FUNCTIONS,
    CODE_LINE_NAMES,
    RESERVED_IDENTIFIERS,
    TaskSampler,
    draw_code_line,
    sample_examples,
)
from circuitdsl.tasks.strategies import task_examples

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = check_spec(ROOT / "specs" / "bracket_depth.circ")
PAREN = check_spec(ROOT / "examples" / "paren_close.circ")
TOKENIZER = data.make_tokenizer(PROGRAM.vocab)


def examples(count: int) -> settings:
    """At least ``count`` examples; more where the loaded profile asks for more (``fuzz``)."""
    return settings(
        max_examples=max(count, settings.default.max_examples),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def adversarial(hypothesis: str, name: str):
    spec = PROGRAM.hypotheses[hypothesis]
    return next(v for v in spec.variants if v.name == name)


# ---------------------------------------------------------------- independent references


def open_brackets(text: str, opener: str, closer: str) -> int:
    """Brackets left open, counted with Python's own tokenizer (so brackets in strings do not count)."""
    depth = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.OP and tok.string == opener:
                depth += 1
            elif tok.type == tokenize.OP and tok.string == closer:
                depth -= 1
    except tokenize.TokenError:
        pass  # an unfinished statement ends the stream early: what was counted stands
    return depth


def list_depth_at_end(statement: str) -> int:
    """How deep the last element chain of the assigned list goes: `[1, [2]]` is 2."""
    value = ast.parse(statement).body[-1].value
    depth = 0
    while isinstance(value, ast.List):
        depth += 1
        value = value.elts[-1] if value.elts else None
    return depth


def call_depth_at_end(statement: str) -> int:
    value = ast.parse(statement).body[-1].value
    depth = 0
    while isinstance(value, ast.Call):
        depth += 1
        value = value.args[-1] if value.args else None
    return depth


def parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def namespace() -> dict:
    """What a task's code may use: the set and str of the task, and what code_line calls and reads."""
    allowed = {"set": set, "str": str, "print": lambda *a: None}
    allowed.update({name: getattr(builtins, name) for name in CODE_LINE_BUILTINS if name != "print"})
    ns = {"__builtins__": allowed}
    ns.update({name: (lambda *a, **k: None) for name in CODE_LINE_FUNCTIONS})
    ns.update(dict.fromkeys(CODE_LINE_NAMES, 0))
    return ns


# ---------------------------------------------------------------- the shipped tasks


@examples(150)
@given(task_examples(PROGRAM, "bracket_depth"))
def test_bracket_depth_answer_completes_the_list_at_its_depth(ex):
    depth = ex.latents["depth"]
    assert open_brackets(ex.prompt, "[", "]") == depth
    completed = ex.prompt + ex.answer
    assert parses(completed), completed
    assert list_depth_at_end(completed) == depth
    (competitor,) = ex.competitors
    assert not parses(ex.prompt + competitor)


@examples(60)
@given(task_examples(PROGRAM, "bracket_depth", adversarial("averaging", "bracket_in_string")))
def test_bracket_in_string_variant_still_has_the_right_answer(ex):
    # The brackets in the string must not change what the right answer is.
    assert '"[[[["' in ex.prompt
    assert open_brackets(ex.prompt, "[", "]") == 1 == ex.latents["depth"]
    assert parses(ex.prompt + ex.answer)
    assert not parses(ex.prompt + ex.competitors[0])


@examples(150)
@given(task_examples(PROGRAM, "quote_close"))
def test_quote_close_answer_closes_the_string(ex):
    name, opened = ex.prompt.split(" = ", 1)
    assert name.isidentifier()
    assert ast.literal_eval(opened + ex.answer) == opened[1:]
    (competitor,) = ex.competitors
    with pytest.raises(SyntaxError):
        ast.literal_eval(opened + competitor)


@examples(150)
@given(task_examples(PROGRAM, "set_or_string"))
def test_set_or_string_answer_is_the_operation_that_runs(ex):
    def complete(op: str) -> str:
        return ex.prompt + op + ('("x")' if op == ".add" else ' "x"')

    exec(compile(complete(ex.answer), "<prompt>", "exec"), namespace())
    (competitor,) = ex.competitors
    with pytest.raises((AttributeError, TypeError)):
        exec(compile(complete(competitor), "<prompt>", "exec"), namespace())


@examples(150)
@given(task_examples(PROGRAM, "while_return_true"))
def test_while_return_true_completion_parses(ex):
    last_line = ex.prompt.rsplit("\n", 1)[-1]
    indent = last_line[: len(last_line) - len(last_line.lstrip())]
    body = "\n" + indent + "    pass\n" if ex.answer == ":" else ""
    assert last_line.strip() == f"{ex.latents['keyword']} True"
    assert parses(ex.prompt + ex.answer + body)
    assert not parses(ex.prompt + ex.competitors[0] + body)


@examples(150)
@given(task_examples(PAREN, "paren_close"))
def test_paren_close_example_answer_completes_the_call(ex):
    depth = ex.latents["depth"]
    assert open_brackets(ex.prompt, "(", ")") == depth
    assert parses(ex.prompt + ex.answer)
    assert call_depth_at_end(ex.prompt + ex.answer) == depth
    assert not parses(ex.prompt + ex.competitors[0])


def test_every_shipped_prompt_fits_the_context_it_is_checked_against():
    context = PROGRAM.models["sparse_small"].context
    for task in PROGRAM.tasks.values():
        for ex in sample_examples(task, 2000, seed=1):
            assert len(TOKENIZER.encode(ex.prompt)) + 1 <= context, ex


# ---------------------------------------------------------------- generators


@examples(300)
@given(st.randoms(use_true_random=False))
def test_code_line_parses_runs_and_keeps_to_its_bound_and_alphabet(rng):
    lines = [draw_code_line(rng) for _ in range(3)]
    ns = namespace()
    for line in lines:
        assert len(line) <= CODE_LINE_MAX and "\n" not in line
        assert set(line) <= set(b.CODE_LINE_ALPHABET), line
        exec(compile(line, "<code_line>", "exec"), ns)


def test_code_line_is_varied():
    rng = random.Random(0)
    lines = [draw_code_line(rng) for _ in range(2000)]
    kinds = {type(ast.parse(line).body[0]).__name__ for line in lines}
    assert kinds == {"Assign", "Expr"}
    assert len(set(lines)) > 1750
    assert {line.split("(")[0] for line in lines if line.startswith(CODE_LINE_FUNCTIONS)} >= set(CODE_LINE_FUNCTIONS)


@examples(100)
@given(
    depth=st.integers(1, 5),
    low=st.integers(0, 3),
    extra=st.integers(0, 3),
    values=st.sampled_from(["int(0..9)", "identifier(1..3)", "str(7)"]),
    opened=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_nested_list_has_its_depth_and_item_counts(depth, low, extra, values, opened, seed):
    source = f"""task t {{
        body   = nested_list(depth: {depth}, items: {low}..{low + extra}, values: {values}, open: {str(opened).lower()})
        prompt = "x = " + body
        answer = "]"
    }}"""
    task = check_spec_text(source).tasks["t"]
    ex = TaskSampler(task).draw(random.Random(seed))
    completed = ex.prompt + ("]" * depth if opened else "")
    assert open_brackets(ex.prompt, "[", "]") == (depth if opened else 0)
    value = ast.parse(completed).body[0].value
    for level in range(depth):
        assert isinstance(value, ast.List)
        items = value.elts if level == depth - 1 else value.elts[:-1]
        assert low <= len(items) <= low + extra
        assert not any(isinstance(item, ast.List) for item in items)
        value = value.elts[-1] if level < depth - 1 else None


@examples(200)
@given(length=st.integers(1, 8), seed=st.integers(0, 2**32))
def test_identifier_is_a_plain_name_of_its_length(length, seed):
    task = check_spec_text(f'task t {{ prompt = identifier({length}) answer = "x" }}').tasks["t"]
    name = TaskSampler(task).draw(random.Random(seed)).prompt
    assert len(name) == length and name.isidentifier() and name == name.lower()
    assert not name[0].isdigit() and name not in RESERVED_IDENTIFIERS


def test_identifier_never_draws_a_keyword_even_when_short():
    task = check_spec_text('task t { prompt = identifier(2) answer = "x" }').tasks["t"]
    drawn = {ex.prompt for ex in sample_examples(task, 20000, seed=0)}
    assert not drawn & {"if", "in", "is", "or", "as"}
    assert len(drawn) > 500


# ---------------------------------------------------------------- tokenizer and batches


def longest_match(text: str, tokens: list[str]) -> list[str]:
    """The reference split: at each position, the longest token that matches."""
    out, i = [], 0
    while i < len(text):
        piece = max((t for t in tokens if text.startswith(t, i)), key=len)
        out.append(piece)
        i += len(piece)
    return out


@examples(200)
@given(
    st.one_of(
        *(task_examples(PROGRAM, name) for name in sorted(PROGRAM.tasks)),
        task_examples(PAREN, "paren_close"),
    )
)
def test_tokenizer_inverts_exactly_and_splits_longest_first(ex):
    vocab = PAREN.vocab if ex.task == "paren_close" else PROGRAM.vocab
    tok = data.make_tokenizer(vocab)
    ids = tok.encode(ex.prompt)
    assert tok.decode(ids) == ex.prompt
    assert [tok.tokens[i] for i in ids] == longest_match(ex.prompt, list(vocab.all_tokens))
    assert tok.decode([tok.token_id(ex.answer)]) == ex.answer


def _mixture():
    return data.mixture_of(PROGRAM, "recipe")


def test_same_seed_same_batches_and_another_seed_others():
    def batches(seed):
        stream = data.training_batches(_mixture(), batch_size=32, seed=seed, tokenizer=TOKENIZER, context=64)
        return [next(stream) for _ in range(3)]

    first, again, other = batches(7), batches(7), batches(8)
    for a, b_ in zip(first, again):
        for field in ("tokens", "lengths", "answers", "competitors", "task_ids"):
            assert torch.equal(getattr(a, field), getattr(b_, field))
        assert a.task_names == b_.task_names
    assert not torch.equal(first[0].tokens[:, :8], other[0].tokens[:, :8])
    assert not torch.equal(first[0].tokens[:, :8], first[1].tokens[:, :8])


def test_batches_are_a_function_of_their_index():
    make = data.MixtureBatches(_mixture(), batch_size=16, seed=3, tokenizer=TOKENIZER, context=64)
    stream = data.training_batches(_mixture(), batch_size=16, seed=3, tokenizer=TOKENIZER, context=64, start=5)
    assert torch.equal(next(stream).tokens, make(5).tokens)


def test_batch_layout_matches_the_examples():
    make = data.MixtureBatches(_mixture(), batch_size=64, seed=0, tokenizer=TOKENIZER, context=64)
    examples_, batch = make.examples(2), make(2)
    assert batch.task_names == tuple(t.name for t in _mixture())
    for row, ex in enumerate(examples_):
        length = int(batch.lengths[row])
        assert TOKENIZER.decode(batch.tokens[row, :length].tolist(), specials=True) == "<bos>" + ex.prompt
        assert (batch.tokens[row, length:] == 0).all()
        assert TOKENIZER.tokens[int(batch.answers[row])] == ex.answer
        assert batch.task_names[int(batch.task_ids[row])] == ex.task
        assert [TOKENIZER.tokens[int(i)] for i in batch.competitors[row] if i >= 0] == list(ex.competitors)


def test_mixture_weights_are_respected():
    tasks = list(PROGRAM.tasks.values())[:2]
    make = data.MixtureBatches({tasks[0]: 3, tasks[1]: 1}, batch_size=256, seed=0, tokenizer=TOKENIZER)
    ids = torch.cat([make(i).task_ids for i in range(8)])
    share = (ids == 0).float().mean().item()
    assert 0.70 < share < 0.80


def test_train_and_eval_never_share_an_example():
    mixture = _mixture()
    make = data.MixtureBatches(mixture, batch_size=256, seed=0, tokenizer=TOKENIZER, context=64)
    train = {(ex.prompt, ex.answer) for i in range(16) for ex in make.examples(i)}
    held = data.make_eval_sets(list(mixture), 500, seed=0, tokenizer=TOKENIZER, context=64)
    evaluation = {(ex.prompt, ex.answer) for ex in held.examples}
    assert not train & evaluation
    assert all(data.split_of(p, a) == "train" for p, a in train)
    assert all(data.split_of(p, a) == "eval" for p, a in evaluation)
    assert held.warnings == () and make.warnings == ()
    assert held.batch.tokens.size(0) == len(held.examples) == 500 * len(mixture)


def test_eval_sets_are_deterministic_and_keep_latents():
    task = PROGRAM.tasks["bracket_depth"]
    one = data.make_eval_set(task, 50, seed=1, tokenizer=TOKENIZER, context=64)
    two = data.make_eval_set(task, 50, seed=1, tokenizer=TOKENIZER, context=64)
    assert one.examples == two.examples and torch.equal(one.batch.tokens, two.batch.tokens)
    answers = {"]": 1, "]]": 2}
    assert all(answers[ex.answer] == ex.latents["depth"] for ex in one.examples)


def test_split_is_stable_across_processes():
    # Fixed values: a change here moves examples between train and eval and so
    # invalidates every held-out measurement made before it.
    assert data.split_of("x = [1, [2", "]]") == "train"
    assert [data.split_of(f"x = {i}", "\n") for i in range(16)].count("eval") == 2
