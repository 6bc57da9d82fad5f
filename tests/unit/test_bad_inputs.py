"""Hand-written bad inputs and the first diagnostic each must produce.

One shared table (tracr's ``test_cases.py`` style): every :class:`Case` says
which code, which words, which ``line:col`` and, where there is an obvious fix,
which hint. A case that fails here is a message a user would have been misled
by; fix the checker, never the case.
"""

from __future__ import annotations

import dataclasses

import pytest

from circuitdsl.diagnostics import CircError
from circuitdsl.pipeline import check_spec_text

PATH = "bad.circ"

#: A valid program the hypothesis and settings cases build on; ``P`` is its line count,
#: so a case's first own line is ``P + 1``.
PRELUDE = """\
vocab { tokens = ["]]", "[["] }
task bracket_depth {
    depth  = choice(1, 2)
    body   = nested_list(depth: depth, items: 1..4, values: int(0..9))
    prompt = "x = " + body
    answer = if depth == 2 then "]]" else "]"
}
model small { layers = 2 d_model = 64 heads = 4 context = 96 }
train run { model = small tasks = [bracket_depth] }
prune cut { train = run task = bracket_depth }
"""
P = PRELUDE.count("\n")


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    source: str
    code: str
    message: str  # a substring of the first diagnostic's message
    line: int
    col: int
    hint: str | None = None  # a substring of its hint, where the fix is obvious


#: Two one-layer models, one sparse and one dense, and a prune block: what a bridge joins.
BRIDGE_PRELUDE = (
    'task t { q = choice("a", "b")  prompt = "x${q}"  answer = q }\n'
    "model s { layers = 1  context = 8 }\nmodel d { layers = 1  context = 8  density = 1  act_topk = 1 }\n"
    "train ts { model = s  tasks = t }\ntrain td { model = d  tasks = t }\nprune p { train = ts  task = t }\n"
)

CASES = [
    # ------------------------------------------------------------ syntax
    Case(
        "syntax/unclosed_brace_points_at_opener",
        'task t {\n    prompt = "a"\n    answer = "b"\n',
        "C0105", "unclosed `{`", 1, 8, hint="add `}`",
    ),
    Case(
        "syntax/stray_close_brace",
        'task t {\n    prompt = "a"\n    answer = "b"\n}\n}\n',
        "C0106", "unmatched `}`: nothing is open here", 5, 1, hint="remove this `}`",
    ),
    Case(
        "syntax/mismatched_bracket",
        "model m { layers = 2 ]\n",
        "C0106", "mismatched `]`: the `{` opened at line 1 is still open", 1, 22, hint="close the `{` with `}` first",
    ),
    Case(
        "syntax/unterminated_string",
        'task t {\n    prompt = "a\n    answer = "b"\n}\n',
        "C0102", "unterminated string", 2, 14, hint='close the string with "',
    ),
    Case(
        # The brackets inside the open string must not be taken for unbalanced delimiters.
        "syntax/unterminated_string_holding_brackets",
        'task t {\n    prompt = "x = [[\n    answer = "]"\n}\n',
        "C0102", "unterminated string", 2, 14,
    ),
    Case(
        "syntax/unknown_escape",
        'task t {\n    prompt = "a\\q"\n    answer = "b"\n}\n',
        "C0107", "unknown escape `\\q` in string", 2, 16, hint="known escapes",
    ),
    Case(
        "syntax/bad_template_hole",
        'task t { prompt = "a${ x y }" answer = "b" }\n',
        "C0107", "`${` in a string must hold one name", 1, 21, hint="`${name}`",
    ),
    Case(
        "syntax/colon_instead_of_equals",
        "model m {\n    layers: 2\n}\n",
        "C0103", "unexpected `:`, expected `=`", 2, 11, hint="bound with `=`",
    ),
    Case(
        "syntax/equals_instead_of_double_equals",
        'task t {\n    d = choice(1, 2)\n    prompt = "a"\n    answer = if d = 2 then "a" else "b"\n}\n',
        "C0103", "unexpected `=`", 4, 19, hint="use `==` to compare",
    ),
    Case(
        "syntax/misspelt_block_keyword",
        "hypotesis h on cut {\n    nodes <= 3\n}\n",
        "C0103", "unexpected name `hypotesis`", 1, 1, hint="did you mean `hypothesis`?",
    ),
    Case(
        "syntax/ablate_without_arrow",
        PRELUDE + "hypothesis h on cut {\n    ablate circuit accuracy <= 0.5\n}\n",
        "C0103", "unexpected name `accuracy`, expected `,`, `->` or `with`", P + 2, 20, hint="after `->`",
    ),
    Case(
        "syntax/fat_arrow",
        PRELUDE + "hypothesis h on cut {\n    ablate circuit => accuracy <= 0.5\n}\n",
        "C0103", "unexpected `=`", P + 2, 20, hint="names its outcome after `->`",
    ),
    Case(
        # LALR merges lookaheads across contexts; a task block must not be offered `ablate`.
        "syntax/expected_tokens_fit_the_block",
        'task t { answer = "b" prompt = "a" -> }\n',
        "C0103", "unexpected `->`, expected `model`, `prune`, `task`, `train`, `vocab`, `}` or a name", 1, 36,
    ),
    Case(
        "syntax/semicolon",
        "model m { layers = 2; }\n",
        "C0101", "unexpected character `;`", 1, 21, hint="need no `;`",
    ),
    Case(
        "syntax/unexpected_end_of_file",
        "model m { layers = 2 }\nmodel n\n",
        "C0104", "unexpected end of file, expected `extends` or `{`", 2, 7,
    ),
    # ------------------------------------------------------------ names
    Case(
        "names/unknown_task",
        PRELUDE + "train r2 { model = small tasks = [bracket_dept] }\n",
        "C0201", "unknown task `bracket_dept`", P + 1, 35, hint="did you mean `bracket_depth`?",
    ),
    Case(
        "names/unknown_model",
        PRELUDE + "train r2 { model = smal tasks = [bracket_depth] }\n",
        "C0201", "unknown model `smal`", P + 1, 20, hint="did you mean `small`?",
    ),
    Case(
        "names/model_where_task_expected",
        PRELUDE + "train r2 { model = small tasks = [small] }\n",
        "C0205", "`small` is a model, not a task", P + 1, 35,
    ),
    Case(
        "names/duplicate_block",
        PRELUDE + "model small { layers = 1 }\n",
        "C0202", "`small` is defined twice", P + 1, 7, hint="a model, is at bad.circ:8:7",
    ),
    Case(
        "names/duplicate_setting",
        "model m {\n    layers = 1\n    layers = 2\n}\n",
        "C0204", "`layers` is set twice in this block", 3, 5, hint="the first is at line 2",
    ),
    Case(
        "names/unknown_setting",
        "model m { d_modle = 64 }\n",
        "C0301", "unknown model setting `d_modle`", 1, 11, hint="did you mean `d_model`?",
    ),
    Case(
        "names/extends_unknown",
        "model base { layers = 2 }\nmodel m extends bsae { }\n",
        "C0201", "unknown model `bsae`", 2, 17, hint="did you mean `base`?",
    ),
    Case(
        "names/extends_cycle",
        "model a extends b { }\nmodel b extends a { }\n",
        "C0206", "`a` extends itself through a -> b -> a", 1, 17,
    ),
    Case(
        "names/extends_other_kind",
        PRELUDE + "train r2 extends small { }\n",
        "C0205", "`r2` extends `small`, which is a model, not a train", P + 1, 18,
    ),
    Case(
        "names/unknown_prune",
        PRELUDE + "hypothesis h on cutt { nodes <= 3 }\n",
        "C0201", "unknown prune `cutt`", P + 1, 17, hint="did you mean `cut`?",
    ),
    Case(
        "names/hypothesis_on_a_train",
        PRELUDE + "hypothesis h on run { nodes <= 3 }\n",
        "C0205", "`run` is a train, not a prune", P + 1, 17,
    ),
    # ------------------------------------------------------------ values
    Case(
        "values/density_zero",
        "model m { density = 0 }\n",
        "C0401", "`density` must lie in (0, 1], found 0", 1, 21, hint="a density of 0 leaves no weights",
    ),
    Case(
        "values/density_two",
        "model m { density = 2 }\n",
        "C0401", "`density` must lie in (0, 1], found 2", 1, 21, hint="write a fraction such as 1/2",
    ),
    Case(
        "values/density_negative",
        "model m { density = -1/16 }\n",
        "C0401", "`density` must lie in (0, 1], found -0.0625", 1, 21,
    ),
    Case(
        "values/layers_negative",
        "model m { layers = -2 }\n",
        "C0401", "`layers` must be positive, found -2", 1, 20,
    ),
    Case(
        "values/context_below_minimum",
        "model m { context = 1 }\n",
        "C0401", "`context` must be at least 2, found 1", 1, 21,
    ),
    Case(
        "values/steps_not_an_integer",
        PRELUDE + "train r2 { model = small tasks = [bracket_depth] steps = 1.5 }\n",
        "C0302", "`steps` expects positive int: found 1.5", P + 1, 58, hint="write a whole number",
    ),
    Case(
        "values/bool_given_a_number",
        "model m { sinks = 1 }\n",
        "C0302", "`sinks` expects bool: found a number", 1, 19, hint="`true` or `false`",
    ),
    Case(
        "values/heads_do_not_divide_d_model",
        "model m { d_model = 64 heads = 5 }\n",
        "C0406", "d_model 64 does not split into 5 heads", 1, 24, hint="choose heads that divide d_model",
    ),
    Case(
        "values/anneal_reversed",
        PRELUDE + "train r2 { model = small tasks = [bracket_depth] anneal = 50% .. 1% }\n",
        "C0402", "`anneal` is an empty span: 0.5 is after 0.01", P + 1, 59, hint="write the start first",
    ),
    Case(
        "values/target_zero",
        PRELUDE + "prune p2 { train = run task = bracket_depth target = loss <= 0 }\n",
        "C0401", "`target` must be a positive loss, found 0", P + 1, 62,
    ),
    Case(
        "values/target_not_a_loss",
        PRELUDE + "prune p2 { train = run task = bracket_depth target = accuracy >= 0.9 }\n",
        "C0302", "found a comparison that is not `loss <= x`", P + 1, 54, hint="`target = loss <= 0.15`",
    ),
    Case(
        "values/ablation_misspelt",
        PRELUDE + "prune p2 { train = run task = bracket_depth ablation = meen }\n",
        "C0403", "unknown value `meen` for `ablation`", P + 1, 56, hint="did you mean `mean`?",
    ),
    Case(
        "values/empty_chars",
        'vocab { chars = "" }\n',
        "C0302", "`chars` expects string or `printable`: found an empty string", 1, 17,
    ),
    Case(
        "values/mixture_weight_zero",
        PRELUDE + "train r2 { model = small tasks = {bracket_depth: 0} }\n",
        "C0401", "mixture weight of `bracket_depth` must be positive, found 0", P + 1, 50,
    ),
    Case(
        "values/samples_below_minimum",
        PRELUDE + "hypothesis h on cut {\n    samples = 5\n    nodes <= 30\n}\n",
        "C0401", "`samples` must be at least 10, found 5", P + 2, 15,
    ),
    # ------------------------------------------------------------ tasks
    Case(
        "tasks/missing_answer",
        'task t {\n    prompt = "a"\n}\n',
        "C0303", "task `t` has no `answer`", 1, 6, hint="add `answer = ...`",
    ),
    Case(
        "tasks/answer_can_be_several_tokens",
        'vocab { tokens = ["]]"] }\ntask t {\n    d = choice(1, 3)\n    prompt = "a"\n'
        '    answer = if d == 1 then "]" else "]]]"\n}\n',
        "C0404", "an answer can be ']]]', which is not one token of the vocab", 5, 14,
        hint='vocab { tokens = ["]]]"] }',
    ),
    Case(
        "tasks/answer_char_outside_chars",
        'vocab { chars = "ab" }\ntask t { prompt = "a" answer = "c" }\n',
        "C0404", "an answer can be 'c'", 2, 32, hint="add it to the vocab's `chars`",
    ),
    Case(
        "tasks/unknown_generator",
        'task t {\n    d = choise(1, 2)\n    prompt = "a"\n    answer = "b"\n}\n',
        "C0201", "unknown generator `choise`", 2, 9, hint="did you mean `choice`?",
    ),
    Case(
        "tasks/unknown_argument",
        'task t {\n    d = word(lenght: 2)\n    prompt = "a"\n    answer = "b"\n}\n',
        "C0201", "unknown argument `lenght` of `word`", 2, 14, hint="did you mean `length`?",
    ),
    Case(
        "tasks/too_many_arguments",
        'task t {\n    d = int(0..9, 3)\n    prompt = "a"\n    answer = "b"\n}\n',
        "C0306", "`int` takes at most 1 argument(s), found 2", 2, 19, hint="int(0..99)",
    ),
    Case(
        "tasks/missing_argument",
        'task t { d = nested_list(items: 1..3) prompt = "a" answer = "b" }\n',
        "C0306", "`nested_list` needs `depth`", 1, 14, hint="nested_list(depth: 2",
    ),
    Case(
        "tasks/empty_range",
        'task t {\n    d = int(6..1)\n    prompt = "a"\n    answer = "b"\n}\n',
        "C0402", "empty range 6..1: it has no values", 2, 13, hint="did you mean 1..6?",
    ),
    Case(
        "tasks/string_plus_number",
        'task t {\n    n = 1..6\n    prompt = "x" + 1\n    answer = "b"\n}\n',
        "C0305", "`+` cannot combine str and int", 3, 14, hint="`str(...)`",
    ),
    Case(
        "tasks/cyclic_variables",
        'task t {\n    a = b\n    b = a\n    prompt = "x"\n    answer = "b"\n}\n',
        "C0207", "`a` depends on itself in task `t`: a -> b -> a", 2, 5,
    ),
    Case(
        "tasks/unknown_variable",
        'task t {\n    prompt = "x" + bdy\n    answer = "b"\n    body = "y"\n}\n',
        "C0201", "unknown variable `bdy` in task `t`", 2, 20, hint="did you mean `body`?",
    ),
    Case(
        "tasks/context_too_short",
        'task deep {\n    body = nested_list(depth: 9, items: 1..4)\n    prompt = "x = " + body\n    answer = "]"\n}\n'
        "model m { context = 64 }\ntrain r { model = m tasks = deep }\n",
        "C0405", "prompts of task `deep` can reach 130 tokens, more than model `m` reads", 7, 21,
        hint="raise the model's `context` to at least 131",
    ),
    Case(
        # The bounds cross only for some values of `n`: the note says which.
        "tasks/range_empty_for_some_values",
        'task t {\n    n = 1..5\n    m = int(n..3)\n    prompt = "x" + m\n    answer = "b"\n}\n',
        "C0402", "this range can be empty: 4..3 has no values", 3, 13, hint="keep the bounds from crossing",
    ),
    Case(
        "tasks/divisor_can_be_zero",
        'task t {\n    n = 0..2\n    prompt = str(6 / n)\n    answer = "b"\n}\n',
        "C0401", "the divisor can be 0", 3, 22, hint="keep the divisor away from 0",
    ),
    Case(
        "tasks/nested_list_depth_zero",
        'task t {\n    prompt = nested_list(depth: choice(0, 1))\n    answer = "]"\n}\n',
        "C0401", "`depth` of `nested_list` must be at least 1, and can be 0", 2, 33, hint="at least one level deep",
    ),
    Case(
        "tasks/identifier_can_be_empty",
        'task t {\n    prompt = identifier(0..3)\n    answer = "b"\n}\n',
        "C0401", "`length` of `identifier` must be at least 1, and can be 0", 2, 25, hint="at least one character",
    ),
    Case(
        "tasks/choice_weights_all_zero",
        'task t {\n    prompt = choice("a", "b", weights: [0, 0])\n    answer = "b"\n}\n',
        "C0401", "the weights of `choice` are all zero", 2, 40, hint="positive weight",
    ),
    Case(
        "tasks/prompt_char_outside_chars",
        'vocab { chars = "ab =" }\ntask t {\n    prompt = "a = c"\n    answer = "b"\n}\n',
        "C0408", "the prompt can contain 'c', which the vocab lacks", 3, 14, hint="add it to the vocab's `chars`",
    ),
    Case(
        # A generator's characters count too: identifiers have digits and `_`.
        "tasks/generator_writes_chars_outside_chars",
        'vocab { chars = "abcdefghijklmnopqrstuvwxyz =" }\ntask t {\n    prompt = "a = " + word(2) + identifier(1..3)\n    answer = "b"\n}\n',
        "C0408", "(`identifier` writes them)", 3, 33, hint="add them to the vocab's `chars`",
    ),
    Case(
        "tasks/prompt_char_outside_printable",
        'task t {\n    prompt = "caf\\u00e9"\n    answer = "b"\n}\n',
        "C0408", "the prompt can contain 'é'", 2, 14,
    ),
    Case(
        # Too many item counts to enumerate, but the largest is still known.
        "tasks/context_too_short_for_a_wide_range",
        'task deep {\n    body = nested_list(depth: 1, items: 1..10000)\n    prompt = "x = " + body\n    answer = "]"\n}\n'
        "model m { context = 64 }\ntrain r { model = m tasks = deep }\n",
        "C0405", "prompts of task `deep` can reach 30006 tokens", 7, 21,
    ),
    Case(
        "tasks/count_past_the_limit",
        'task t {\n    prompt = repeat("x", 1000000000000)\n    answer = "x"\n}\n',
        "C0401", "`count` of `repeat` can be about 10^12; the most it may be is 10,000", 2, 26,
    ),
    Case(
        "tasks/length_with_hundreds_of_digits",
        "task t {\n    prompt = identifier(" + "9" * 311 + ')\n    answer = "x"\n}\n',
        "C0401", "`length` of `identifier` can be about 10^310", 2, 25,
    ),
    Case(
        "tasks/weight_too_large_for_a_float",
        'task t {\n    v = choice(1, 2, weights: [1' + "0" * 400 + ', 1])\n    prompt = str(v)\n    answer = "x"\n}\n',
        "C0401", "a weight of `choice` can be about 10^400", 2, 32,
    ),
    Case(
        "tasks/text_times_a_number_is_refused_before_it_is_built",
        'task t {\n    prompt = word("ab" * 1000000000)\n    answer = "x"\n}\n',
        "C0305", "`*` cannot combine str and int", 2, 19,
    ),
    Case(
        "settings/eval_examples_past_the_limit",
        'task t { prompt = "a" answer = "b" }\nmodel m { context = 8 }\ntrain r { model = m tasks = t eval_examples = 1e12 }\n',
        "C0401", "`eval_examples` must be at most 1,000,000", 3, 47,
    ),
    Case(
        "settings/infinite_learning_rate",
        'task t { prompt = "a" answer = "b" }\nmodel m { context = 8 }\ntrain r { model = m tasks = t lr = 1e308 * 10 }\n',
        "C0302", "the result is too large", 3, 36,
    ),
    Case(
        "settings/model_too_large_to_allocate",
        'task t { prompt = "a" answer = "b" }\nmodel m { layers = 2 d_model = 65536 heads = 2 context = 1048576 }\n',
        "C0401", "circ refuses models over 64.0 GiB", 2, 7,
    ),
    Case(
        "settings/training_too_large_to_allocate",
        'task t { prompt = "a" answer = "b" }\nmodel m { d_model = 1024 heads = 8 context = 65536 }\ntrain r { model = m tasks = t batch = 1024 }\n',
        "C0401", "circ refuses runs over 64.0 GiB", 3, 31,
    ),
    Case(
        "bridges/dense_side_is_sparse",
        BRIDGE_PRELUDE + "bridge b { dense = ts  sparse = ts }\n",
        "C0406", "the dense side of bridge `b` trains model `s`, which is sparse", 7, 12,
    ),
    Case(
        "bridges/unknown_bridge",
        BRIDGE_PRELUDE + "bridge b { dense = td  sparse = ts }\n"
        "hypothesis h on p {\n    role c : resid channel\n    intervene c = 1 through bridge bb -> accuracy >= 0.5\n}\n",
        "C0201", "unknown bridge `bb`", 10, 36,
    ),
    Case(
        "bridges/only_residual_channels_cross",
        BRIDGE_PRELUDE + "bridge b { dense = td  sparse = ts }\n"
        "hypothesis h on p {\n    role c : mlp neuron\n    intervene c = 1 through bridge b -> accuracy >= 0.5\n}\n",
        "C0305", "only residual-stream channels cross a bridge", 10, 15,
    ),
    Case(
        "bridges/from_another_sparse_model",
        BRIDGE_PRELUDE + "bridge b { dense = td  sparse = td }\n"
        "hypothesis h on p {\n    role c : resid channel\n    intervene c = 1 through bridge b -> accuracy >= 0.5\n}\n",
        "C0407", "whose circuit this hypothesis is about", 10, 36,
    ),
    Case(
        "tasks/negative_count",
        'task t { prompt = repeat("ab", -3) answer = "b" }\n',
        "C0401", "`count` of `repeat` must not be negative, found -3", 1, 32,
    ),
    # ------------------------------------------------------------ hypotheses
    Case(
        "hypotheses/condition_on_a_value_the_variable_never_takes",
        PRELUDE + "hypothesis h on cut {\n    role d : resid channel where corr(act, depth == 3) >= 0.5\n}\n",
        "C0401", "`depth` is never 3: it takes 1 or 2", P + 2, 53, hint="always false",
    ),
    Case(
        "hypotheses/misspelt_string_value_in_a_when",
        'task t { kind = choice("set", "str")  prompt = "x${kind}"  answer = "y" }\n'
        'model m { layers = 1  context = 8 }\ntrain r { model = m  tasks = t }\nprune p { train = r  task = t }\n'
        'hypothesis h on p {\n    ablate circuit -> accuracy >= 0.5 when kind != "string"\n}\n',
        "C0401", '`kind` is never "string": it takes "set" or "str"', 6, 52, hint='did you mean "str"?',
    ),
    Case(
        "hypotheses/unknown_role_in_relation",
        PRELUDE + "hypothesis h on cut {\n    role counter : attn head where reads(opener, as: value)\n}\n",
        "C0201", "unknown role `opener`", P + 2, 42,
    ),
    Case(
        "hypotheses/reads_on_a_resid_channel",
        PRELUDE + "hypothesis h on cut {\n"
        '    role opener : resid channel where mean(act | token == "[") > 0\n'
        "    role r : resid channel where reads(opener)\n}\n",
        "C0305", "only attention heads and their q/k/v channels read; `r` is a resid channel", P + 3, 34,
        hint="`written_by(...)`",
    ),
    Case(
        "hypotheses/reads_channel_not_a_name",
        PRELUDE + "hypothesis h on cut {\n    role a : attn head\n    role b : attn head where reads(a, as: 3)\n}\n",
        "C0305", "`as:` names a channel, not a value", P + 3, 43, hint="`as: key`",
    ),
    Case(
        "hypotheses/unknown_latent_in_condition",
        PRELUDE + "hypothesis h on cut {\n    ablate circuit -> accuracy drops by >= 0.2 when dept == 2\n}\n",
        "C0201", "unknown variable `dept` of task `bracket_depth`", P + 2, 53, hint="did you mean `depth`?",
    ),
    Case(
        "hypotheses/unknown_latent_in_statistic",
        PRELUDE + "hypothesis h on cut {\n    role x : resid channel where mean(act | dept == 1) > 0\n}\n",
        "C0201", "unknown variable `dept` of task `bracket_depth`", P + 2, 45, hint="did you mean `depth`?",
    ),
    Case(
        "hypotheses/token_not_in_vocab",
        PRELUDE + 'hypothesis h on cut {\n    ablate circuit -> p("]]]") <= 0.5\n}\n',
        "C0404", "']]]' is not a token of the vocab", P + 2, 25, hint='tokens = ["]]]"]',
    ),
    Case(
        "hypotheses/accuracy_bound_above_one",
        PRELUDE + "hypothesis h on cut {\n    ablate circuit -> accuracy <= 1.5\n}\n",
        "C0401", "`accuracy` bound must lie in [0, 1], found 1.5", P + 2, 35, hint="25%",
    ),
    Case(
        "hypotheses/layer_out_of_range",
        PRELUDE + "hypothesis h on cut {\n    nodes in layer 5 <= 3\n}\n",
        "C0401", "layer 5 does not exist: model `small` has 2 layer(s)", P + 2, 20, hint="numbered 0 to 1",
    ),
    Case(
        "hypotheses/empty_layer_range",
        PRELUDE + "hypothesis h on cut {\n    role a : attn head in layers 1..0\n}\n",
        "C0402", "empty range 1..0: it has no layers", P + 2, 34, hint="did you mean 0..1?",
    ),
    Case(
        "hypotheses/where_layer_out_of_range",
        PRELUDE + "hypothesis h on cut {\n    role a : attn head where layer == 2\n}\n",
        "C0401", "layer 2 does not exist: model `small` has 2 layer(s)", P + 2, 39, hint="numbered 0 to 1",
    ),
    Case(
        "hypotheses/where_layer_bound_selects_none",
        PRELUDE + "hypothesis h on cut {\n    role a : attn head where mean(act) > 0 and 2 <= layer\n}\n",
        "C0401", "no layer of model `small` is >= 2", P + 2, 48, hint="numbered 0 to 1",
    ),
    Case(
        "hypotheses/where_in_a_number",
        PRELUDE + "hypothesis h on cut {\n    role a : attn head where mean(act) in 3\n}\n",
        "C0305", "`in` in a `where` clause takes a range", P + 2, 43, hint="mean(act) in 0..2",
    ),
    Case(
        "hypotheses/where_layer_range_empty",
        PRELUDE + "hypothesis h on cut {\n    role a : attn head where layer in 1..0\n}\n",
        "C0402", "empty range 1..0: it has no layers", P + 2, 39,
    ),
    Case(
        "hypotheses/adversarial_without_expect",
        PRELUDE + 'hypothesis h on cut {\n    adversarial a {\n        prompt = "[["\n    }\n}\n',
        "C0303", "adversarial `a` predicts nothing", P + 2, 5, hint="add `expect",
    ),
    Case(
        "hypotheses/variant_char_outside_vocab",
        PRELUDE + 'hypothesis h on cut {\n    adversarial a {\n        prompt = "\\u2192" + prompt\n        expect accuracy >= 0.5\n    }\n}\n',
        "C0408", "the prompt of adversarial `a` can contain '→'", P + 3, 18,
    ),
    Case(
        "hypotheses/variant_range_empty_for_some_values",
        PRELUDE + 'hypothesis h on cut {\n    adversarial a {\n        body = nested_list(depth: depth, items: depth..1)\n'
        "        expect accuracy >= 0.5\n    }\n}\n",
        "C0402", "this range can be empty: 2..1 has no values", P + 3, 49,
    ),
    Case(
        "hypotheses/variant_answer_not_a_token",
        PRELUDE + 'hypothesis h on cut {\n    adversarial a {\n        answer = "]]]"\n        expect accuracy >= 0.5\n    }\n}\n',
        "C0404", "an answer of adversarial `a` can be ']]]', which is not one token", P + 3, 18, hint='tokens = ["]]]"]',
    ),
    Case(
        "hypotheses/variant_answer_text_required",
        PRELUDE + 'hypothesis h on cut {\n    adversarial a {\n        answer = depth\n        expect accuracy >= 0.5\n    }\n}\n',
        "C0305", "`answer` of adversarial `a` must be text, found int", P + 3, 18,
    ),
    Case(
        "hypotheses/unknown_node_kind",
        PRELUDE + "hypothesis h on cut {\n    role x : mlp neurons\n}\n",
        "C0209", "unknown node kind `mlp neurons`", P + 2, 14, hint="did you mean `mlp neuron`?",
    ),
    Case(
        "hypotheses/ablate_unknown_second_target",
        PRELUDE + "hypothesis h on cut {\n    role x : attn head\n    ablate x, y -> accuracy <= 0.5\n}\n",
        "C0201", "unknown role or ablation target `y`", P + 3, 15,
    ),
    Case(
        "hypotheses/ablate_same_target_twice",
        PRELUDE + "hypothesis h on cut {\n    role x : attn head\n    ablate x, x -> accuracy <= 0.5\n}\n",
        "C0204", "`x` appears twice in this ablation", P + 3, 15, hint="remove it",
    ),
    Case(
        "hypotheses/ablation_kind_misspelt",
        PRELUDE + "hypothesis h on cut {\n    ablate circuit with meen -> accuracy <= 0.5\n}\n",
        "C0403", "unknown ablation `meen`", P + 2, 25, hint="did you mean `mean`?",
    ),
    Case(
        "hypotheses/no_claims",
        PRELUDE + "hypothesis h on cut {\n}\n",
        "C0303", "hypothesis `h` makes no claim", P + 1, 12,
    ),
    Case(
        "hypotheses/prune_task_not_in_mixture",
        PRELUDE + 'task other { prompt = "a" answer = "b" }\nprune p2 { train = run task = other }\n',
        "C0407", "model of `run` is not trained on task `other`", P + 2, 24, hint="add the task to the train block's `tasks`",
    ),
]


def _first_diagnostic(source: str):
    with pytest.raises(CircError) as info:
        check_spec_text(source, PATH)
    return info.value.diagnostics[0]


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 35


def test_prelude_is_valid():
    program = check_spec_text(PRELUDE, PATH)
    assert set(program.prunes) == {"cut"}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case):
    diag = _first_diagnostic(case.source)
    rendered = f"{diag.code} {diag.span.line}:{diag.span.column} {diag.message} (hint: {diag.hint})"
    assert diag.code == case.code, rendered
    assert case.message in diag.message, rendered
    assert (diag.span.line, diag.span.column) == (case.line, case.col), rendered
    if case.hint is not None:
        assert diag.hint is not None and case.hint in diag.hint, rendered


VALID_HYPOTHESES = {
    # The checks on `where layer`, variant answers and ablation targets must not reject what is valid.
    "layers_and_variants_that_exist": (
        "hypothesis h on cut {\n"
        "    role a : attn head where layer == 1 or layer != 0\n"
        "    role b : mlp neuron where layer in 0..1 and layer < 2 and 1 <= layer and layer > -1\n"
        "    ablate a, b -> accuracy <= 0.5\n"
        '    adversarial shallow {\n        depth = 1\n        answer = "]"\n        expect accuracy >= 0.5\n    }\n'
        '    adversarial swapped {\n        answer = if depth == 2 then "]" else "]]"\n        expect accuracy <= 0.5\n    }\n'
        "}\n"
    ),
    # The never-takes check must leave alone what can hold: values of the task, `token`, and
    # variables an adversarial variant sets anew (which take the variant's values, not the task's).
    "conditions_on_values_a_variable_takes": (
        "hypothesis h on cut {\n"
        '    role a : resid channel where corr(act, depth == 2) >= 0.5 and mean(act | token == "[") > 0\n'
        "    role b : resid channel where selectivity(act, depth == 1, depth != 1) >= 1\n"
        "    ablate circuit -> accuracy >= 0.5 when depth == 1\n"
        '    adversarial deeper {\n        depth = 3\n        answer = "]]"\n        expect accuracy <= 0.5 when depth == 3\n    }\n'
        "}\n"
    ),
}


@pytest.mark.parametrize("hypothesis", VALID_HYPOTHESES.values(), ids=VALID_HYPOTHESES.keys())
def test_valid_hypotheses_check_fine(hypothesis):
    program = check_spec_text(PRELUDE + hypothesis, PATH)
    assert set(program.hypotheses) == {"h"}


def test_all_errors_at_once_sorted_by_position():
    # Three independent errors, written in the opposite order to the checker's passes
    # (tasks, then models, then training), so the sort is what puts them in order.
    source = (
        "train run { model = small tasks = [t] steps = 0 }\n"
        "model small { d_modle = 64 }\n"
        'task t { prompt = "a" + 1 answer = "b" }\n'
    )
    with pytest.raises(CircError) as info:
        check_spec_text(source, PATH)
    found = [(d.code, d.span.line, d.span.column) for d in info.value.diagnostics]
    assert found == [("C0401", 1, 47), ("C0301", 2, 15), ("C0305", 3, 19)]
    assert info.value.render().endswith("3 errors found")


UNICODE_VOCAB = 'vocab { chars = "abcx é→" }\n'


def test_unicode_in_strings_checks_fine():
    program = check_spec_text(UNICODE_VOCAB + 'task arrow { prompt = "é → a" answer = "→" competitors = "é" }\n', PATH)
    assert "é" in program.vocab.chars and "→" in program.vocab.chars


def test_carets_align_after_unicode():
    source = UNICODE_VOCAB + 'task arrow { prompt = "é → a" answer = 1 + "x" }\n'
    with pytest.raises(CircError) as info:
        check_spec_text(source, PATH)
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.span.line, diag.span.column) == ("C0305", 2, 40)
    lines = info.value.render().split("\n")
    source_line = next(line for line in lines if line.startswith("2 | "))
    caret_line = lines[lines.index(source_line) + 1]
    # Columns count characters, so the carets sit under `1 + "x"` however many bytes `é` and `→` take.
    assert caret_line.index("^") == source_line.index('1 + "x"')
    assert caret_line.count("^") == len('1 + "x"')


def _all_diagnostics(source: str) -> list[tuple[str, int, int]]:
    with pytest.raises(CircError) as info:
        check_spec_text(source, PATH)
    return [(d.code, d.span.line, d.span.column) for d in info.value.diagnostics]


def test_an_unrelated_error_does_not_hide_a_context_check():
    source = (
        "model broken { density = 0 }\n"
        'task deep { prompt = "x = " + nested_list(depth: 9, items: 1..4) answer = "]" }\n'
        "model small { context = 64 }\n"
        "train run { model = small tasks = deep }\n"
    )
    assert _all_diagnostics(source) == [("C0401", 1, 26), ("C0405", 4, 27)]


def test_a_parent_block_fault_is_reported_once():
    # Every child merges the parent's bindings, but its duplicate is one mistake.
    source = "model base { layers = 1 layers = 2 }\nmodel a extends base { }\nmodel b extends base { }\n"
    assert _all_diagnostics(source) == [("C0204", 1, 25)]


def test_a_broken_extends_hides_no_settings():
    # The missing parent may have set `model` and `tasks`; asking for them would mislead.
    assert _all_diagnostics("train r extends nothing { steps = 10 }\n") == [("C0201", 1, 17)]



def test_a_whole_decimal_is_an_integer_setting():
    program = check_spec_text(PRELUDE + "train r2 { model = small tasks = [bracket_depth] steps = 1e3 }\n")
    assert program.trains["r2"].steps == 1000


def test_a_margin_bound_may_be_negative_but_a_drop_may_not():
    ok = PRELUDE + "hypothesis neg on cut { ablate circuit -> margin <= -1 }\n"
    assert check_spec_text(ok).hypotheses["neg"]
    bad = PRELUDE + "hypothesis neg on cut { ablate circuit -> margin drops by >= -1 }\n"
    with pytest.raises(CircError) as err:
        check_spec_text(bad)
    assert [d.code for d in err.value.diagnostics] == ["C0401"]
