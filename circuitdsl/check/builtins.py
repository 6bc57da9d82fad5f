"""The language's built-in vocabulary: generator functions, predicates, metrics, node kinds.

One table per context, each entry with its signature and a one-line doc, so
the checker, the docs and the runtime all read the same source. The runtime
implements every generator listed here (a test holds it to that).
"""

from __future__ import annotations

import attrs

# Value types of task expressions. "gen" arguments are re-drawn each time they
# are used (a `values:` generator gives every list item its own value).
INT, FLOAT, STR, BOOL, LIST, ANY = "int", "float", "str", "bool", "list", "any"

LOWERCASE = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
#: Every character `code_line()` can write (a test holds the sampler to it).
CODE_LINE_ALPHABET = LOWERCASE + DIGITS + "_ =+-*()[]{},.:!'\""


#: The largest length or count a generator takes. No prompt that long fits a model
#: (contexts are at most 2**20 tokens, and every count adds at least a token), so a
#: bigger one is a typo or hostile, and would allocate gigabytes before anything failed.
MAX_COUNT = 10_000
#: The deepest `nested_list`: each level is at least one token, and 100 is past any
#: depth a bracket task means.
MAX_DEPTH = 100
#: The largest `choice` weight: weights are relative, and a float must hold their sum.
MAX_WEIGHT = 10**12


@attrs.frozen
class Param:
    name: str
    type: str
    default: object = attrs.field(default=None)
    required: bool = True
    #: Whether the runtime re-evaluates the argument on each use (generator argument).
    lazy: bool = False
    #: For a length or count: the least and the most it may be.
    least: int | None = None
    most: int | None = None


@attrs.frozen
class Function:
    name: str
    params: tuple[Param, ...]
    returns: str
    doc: str
    example: str
    #: The first parameter takes any number of positional arguments.
    variadic: bool = False
    #: Characters the generator writes itself, besides its arguments' text; the
    #: checker holds them to the vocab's `chars` (C0408).
    alphabet: str = ""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _p(name, type_, default=None, required=True, lazy=False, least=None, most=None) -> Param:
    return Param(name, type_, default, required, lazy, least, most)


GENERATORS: dict[str, Function] = {
    f.name: f
    for f in (
        Function(
            "choice",
            (_p("options", ANY, lazy=True), _p("weights", LIST, required=False)),
            ANY,
            "one of the options, uniformly or with the given weights",
            'q = choice("\'", "\\"")',
            variadic=True,
        ),
        Function(
            "int",
            (_p("range", INT, lazy=True),),
            STR,
            "an integer drawn from a range, as decimal text",
            "value = int(0..99)",
            alphabet=DIGITS,
        ),
        Function(
            "str",
            (_p("value", ANY),),
            STR,
            "a value as text",
            'line = "depth " + str(depth)',
        ),
        Function(
            "identifier",
            (_p("length", INT, default=(1, 6), required=False, lazy=True, least=1, most=MAX_COUNT),),
            STR,
            "a lowercase Python identifier (letters, digits, `_`) that is not a keyword",
            "name = identifier(1..6)",
            alphabet=LOWERCASE + DIGITS + "_",
        ),
        Function(
            "word",
            (_p("length", INT, default=(3, 8), required=False, lazy=True, least=0, most=MAX_COUNT),),
            STR,
            "a lowercase word of letters a-z",
            "text = word(3..8)",
            alphabet=LOWERCASE,
        ),
        Function(
            "nested_list",
            (
                _p("depth", INT, least=1, most=MAX_DEPTH),
                _p("items", INT, default=(1, 4), required=False, lazy=True, least=0, most=MAX_COUNT),
                _p("values", STR, default="int(0..9)", required=False, lazy=True),
                _p("open", BOOL, default=True, required=False),
            ),
            STR,
            "Python list text whose innermost list at the end is `depth` deep;"
            " left open (no closing brackets) unless `open: false`",
            "body = nested_list(depth: 2, items: 1..4, values: int(0..9))",
            alphabet="[], ",
        ),
        Function(
            "repeat",
            (
                _p("value", STR, lazy=True),
                _p("count", INT, lazy=True, least=0, most=MAX_COUNT),
                _p("sep", STR, default="", required=False),
            ),
            STR,
            "`value` drawn `count` times and joined by `sep`",
            'pad = repeat(code_line(), 0..3, sep: "\\n")',
        ),
        Function(
            "code_line",
            (),
            STR,
            "a plausible Python statement (assignment, call or print) to fill space",
            "filler = code_line()",
            alphabet=CODE_LINE_ALPHABET,
        ),
    )
}

#: Bindings of a task that are not latent variables but its interface.
TASK_FIELDS = {
    "prompt": "the text the model reads",
    "answer": "the one token it must predict next",
    "competitors": "the token(s) the answer competes with (a string or a list of strings)",
}

# ---------------------------------------------------------------- hypotheses

#: `role NAME : A B` -- the node kinds a role may bind to.
ROLE_KINDS: dict[tuple[str, str], str] = {
    ("resid", "channel"): "a residual-stream channel read or written by a layer",
    ("mlp", "neuron"): "an MLP neuron (post-activation)",
    ("attn", "head"): "an attention head (any of its q/k/v channels in the circuit)",
    ("q", "channel"): "a query channel of an attention head",
    ("k", "channel"): "a key channel of an attention head",
    ("v", "channel"): "a value channel of an attention head",
}

#: Names a predicate can read besides the task's latent variables.
PREDICATE_NAMES = {
    "act": "the role's activation",
    "token": "the token at the position (in a condition after `|`)",
    "layer": "the layer the node is in",
    "answer": "the position at which the answer is predicted (for `at:`)",
}

#: Activation statistics, evaluated on fresh task samples.
STATISTICS: dict[str, str] = {
    "mean": "mean(act | condition, at: position): mean activation over the samples or positions where condition holds",
    "sign": "sign(act | condition): -1, 0 or 1, the sign of that mean",
    "corr": "corr(act, variable): Pearson correlation of the activation with a latent variable (or a condition, as 0/1)",
    "selectivity": "selectivity(act, condition_a, condition_b): (mean_a - mean_b) / pooled std",
}

#: Structural relations between roles, decided from weights and attention.
RELATIONS: dict[str, str] = {
    "reads": "reads(role, as: key|query|value): this head reads the role through its keys, queries or values",
    "writes": "writes(role): this node writes directly into the role",
    "written_by": "written_by(role): the role writes directly into this node",
    "edge_to": "edge_to(role): a nonzero weight joins this node to the role",
    "edge_from": "edge_from(role): a nonzero weight joins the role to this node",
    "path_to": "path_to(role): a chain of circuit edges leads from this node to the role",
    "path_from": "path_from(role): a chain of circuit edges leads from the role to this node",
}
READ_CHANNELS = ("key", "query", "value")

SIZE_METRICS = {"nodes": "nodes in the circuit", "edges": "edges between circuit nodes"}

#: What an outcome measures on a set of task samples.
OUTCOME_METRICS: dict[str, str] = {
    "accuracy": "share of samples whose top prediction is the answer",
    "loss": "mean cross-entropy (nats) of the answer",
    "margin": "mean logit of the answer minus the best competitor",
    "p": 'p("tok"): mean probability of a token',
    "rate": 'rate("tok"): share of samples whose top prediction is the token',
}
TOKEN_METRICS = ("p", "rate")

ABLATION_KINDS = {
    "mean": "replace by the mean activation over the training distribution",
    "zero": "replace by zero",
    "resample": "replace by the activation on another sample",
}
ABLATE_TARGETS = {"circuit": "every node of the circuit", "complement": "every node outside the circuit"}
