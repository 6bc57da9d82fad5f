"""The sampler's semantics, one rule of docs/language.md ("Generators") at a time."""

from __future__ import annotations

import pickle
import random
import subprocess
import sys
from collections import Counter

import attrs
import pytest

from circuitdsl.check import builtins as b
from circuitdsl.diagnostics import CircError
from circuitdsl.pipeline import check_spec_text
from circuitdsl.tasks.sampler import Example, TaskSampler, _Compiler, sample_examples


def task(body: str, vocab: str = ""):
    return check_spec_text(f"{vocab}task t {{\n{body}\n}}\n").tasks["t"]


def draws(body: str, n: int = 400, seed: int = 0, vocab: str = "") -> list[Example]:
    return sample_examples(task(body, vocab), n, seed)


def with_variant(body: str, overrides: str, vocab: str = ""):
    """A task and the checked variant an `adversarial` block with ``overrides`` makes of it."""
    spec = check_spec_text(
        f"{vocab}task t {{\n{body}\n}}\nmodel m {{ layers = 1  d_model = 16  heads = 2  context = 64 }}\n"
        "train r { model = m  tasks = t }\nprune p { train = r  task = t }\n"
        f"hypothesis h on p {{ adversarial a {{ {overrides} expect accuracy >= 0.5 }} }}\n"
    )
    return spec.tasks["t"], spec.hypotheses["h"].variants[0]


def test_every_generator_has_an_implementation():
    for name, func in b.GENERATORS.items():
        assert func.variadic or hasattr(_Compiler, f"_gen_{name}"), name


def test_a_range_as_a_value_includes_both_ends():
    seen = Counter(ex.latents["n"] for ex in draws('n = 1..3\nprompt = str(n)\nanswer = "x"', 600))
    assert set(seen) == {1, 2, 3}
    assert all(150 < count < 250 for count in seen.values())


def test_a_variable_is_drawn_once_but_a_generator_argument_at_each_use():
    once = draws('w = word(4)\nprompt = repeat(w, 3, sep: " ")\nanswer = "x"', 50)
    assert all(len(set(ex.prompt.split(" "))) == 1 for ex in once)
    each = draws('prompt = repeat(word(4), 3, sep: " ")\nanswer = "x"', 50)
    assert sum(len(set(ex.prompt.split(" "))) > 1 for ex in each) > 45


def test_repeat_draws_its_count_per_call():
    counts = {ex.prompt.count("ab") for ex in draws('prompt = repeat("ab", 0..3)\nanswer = "x"', 200)}
    assert counts == {0, 1, 2, 3}


def test_nested_list_gives_each_item_its_own_value_and_is_left_open():
    examples = draws('body = nested_list(depth: 2, items: 3, values: int(0..9))\nprompt = body\nanswer = "x"', 100)
    for ex in examples:
        assert ex.prompt.count("[") == 2 and "]" not in ex.prompt
        assert len(ex.prompt.replace("[", "").split(", ")) == 6
    assert len({ex.prompt for ex in examples}) > 90
    closed = draws('prompt = nested_list(depth: 3, items: 1, values: "a", open: false)\nanswer = "x"', 1)
    assert closed[0].prompt == "[a, [a, [a]]]"


def test_nested_list_with_empty_levels_is_still_a_list():
    (ex,) = draws('prompt = nested_list(depth: 3, items: 0, open: false)\nanswer = "x"', 1)
    assert ex.prompt == "[[[]]]"


def test_choice_weights_and_options():
    seen = Counter(ex.prompt for ex in draws('prompt = choice("a", "b", weights: [3, 1])\nanswer = "x"', 2000))
    assert 0.70 < seen["a"] / 2000 < 0.80
    never = {ex.prompt for ex in draws('prompt = choice("a", "b", "c", weights: [1, 0, 1])\nanswer = "x"', 300)}
    assert never == {"a", "c"}


def test_text_of_values():
    (ex,) = draws(
        'n = 7\nhalf = n / 2\nbig = n > 5\nprompt = "${n} ${half} ${big} " + str(not big) + int(3)\nanswer = "x"', 1
    )
    assert ex.prompt == "7 3.5 true false3"
    assert ex.latents == {"n": 7, "half": 3.5, "big": True}


def test_operators_and_conditions():
    body = """
    n      = 1..9
    small  = n in 1..3
    listed = n in [2, 4, 8]
    both   = small and listed or n == 9
    word   = if both then "yes" else "no"
    prompt = word + str(n * 2 - 1) + str(-n) + str(50% * 2)
    answer = "x"
    """
    for ex in draws(body, 200):
        n = ex.latents["n"]
        both = (n <= 3 and n in (2, 4, 8)) or n == 9
        assert ex.prompt == ("yes" if both else "no") + str(n * 2 - 1) + str(-n) + "1.0"


def test_competitors_are_a_tuple_of_tokens():
    (ex,) = draws('prompt = "a"\nanswer = "x"\ncompetitors = ["y", "z"]', 1)
    assert ex.competitors == ("y", "z")
    (ex,) = draws('prompt = "a"\nanswer = "x"', 1)
    assert ex.competitors == ()


def test_same_seed_same_examples_and_the_global_random_is_untouched():
    spec = task('n = 0..1000\nprompt = word(3..8) + str(n)\nanswer = "x"')
    random.seed(123)
    before = random.random()
    random.seed(123)
    first = sample_examples(spec, 50, seed=4)
    assert random.random() == before
    assert sample_examples(spec, 50, seed=4) == first
    assert sample_examples(spec, 50, seed=5) != first


def test_overrides_replace_add_and_may_use_what_they_replace():
    spec, variant = with_variant(
        'depth = choice(1, 2)\nbody = nested_list(depth: depth)\nprompt = "x = " + body\nanswer = if depth == 2 then "]]" else "]"',
        'depth = 1 stray = choice("[", "([") prompt = stray + prompt',
        vocab='vocab { tokens = ["]]"] }\n',
    )
    sampler = TaskSampler(spec, variant)
    assert sampler.latents == ("depth", "body", "stray")
    for ex in (sampler.draw(random.Random(i)) for i in range(50)):
        assert ex.latents["depth"] == 1 and ex.answer == "]"
        assert ex.prompt == ex.latents["stray"] + "x = " + ex.latents["body"]


def test_overrides_are_checked_by_the_checker_and_the_sampler_takes_its_types():
    with pytest.raises(CircError) as err:
        with_variant('n = 1..3\nprompt = str(n)\nanswer = "x"', "prompt = str(m)")
    assert [d.code for d in err.value.diagnostics] == ["C0201"]
    with pytest.raises(CircError) as err:
        with_variant('n = 1..3\nprompt = str(n)\nanswer = "x"', 'prompt = "a" + n')
    assert [d.code for d in err.value.diagnostics] == ["C0305"]
    spec, variant = with_variant('n = 1..3\nprompt = str(n)\nanswer = "x"', 'prompt = "a" + str(n)')
    assert variant.typing.types["prompt"] == "str" and variant.typing.order.index("n") < variant.typing.order.index("prompt")


def test_an_unchecked_task_is_refused_not_checked_again():
    spec = task('n = 1..3\nprompt = str(n)\nanswer = "x"')
    with pytest.raises(TypeError, match="not been checked"):
        TaskSampler(attrs.evolve(spec, typing=None))


def test_a_failure_the_checker_cannot_enumerate_is_a_located_error_when_drawn():
    # 0..5000 has more values than the checker enumerates, so only drawing finds n = 0.
    spec = task('n = 0..5000\nr = 10 / n\nprompt = str(r)\nanswer = "x"')
    sampler = TaskSampler(spec)
    rng = random.Random(0)
    with pytest.raises(CircError) as err:
        for _ in range(10**7):
            sampler.draw(rng)
    (diag,) = err.value.diagnostics
    assert diag.code == "C0401" and diag.message == "division by zero"
    assert (diag.span.line, diag.span.column) == (3, 10)
    assert "with n = 0" in diag.notes[0]


def test_a_sampler_survives_pickling():
    sampler = TaskSampler(task('prompt = word(3..8) + code_line()\nanswer = "x"'))
    copy = pickle.loads(pickle.dumps(sampler))
    assert copy.draw(random.Random(1)) == sampler.draw(random.Random(1))


def test_check_and_sample_never_import_torch():
    code = (
        "import sys\n"
        "from circuitdsl.cli import app\n"
        "from circuitdsl.tasks import data, sampler, strategies\nfrom circuitdsl.report import samples\n"
        "from circuitdsl.pipeline import check_spec_text\n"
        "t = check_spec_text('task t { prompt = code_line() answer = \"x\" }').tasks['t']\n"
        "sampler.sample_examples(t, 10, 0)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
