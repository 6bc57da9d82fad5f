"""Claims reach the verifier typed, lowered and with stable ids (issue 12)."""

from __future__ import annotations

import re
from pathlib import Path

from circuitdsl.pipeline import check_spec_text
from circuitdsl.spec import claims as c

ROOT = Path(__file__).resolve().parents[2]

BASE = """
vocab { chars = printable  tokens = ["]]"] }
task nest {
    depth  = choice(1, 2)
    pad    = 0
    prompt = "x = " + nested_list(depth: depth, items: 1..3, values: int(0..9))
    answer = if depth == 2 then "]]" else "]"
}
model m { layers = 2  d_model = 32  heads = 2  context = 48 }
train t { model = m  tasks = nest }
prune p { train = t  task = nest }
hypothesis h on p {
%s
}
"""


def claims(body: str) -> tuple:
    return check_spec_text(BASE % body).hypotheses["h"].claims


def test_an_adversarial_block_is_one_claim_per_expect_sharing_one_variant():
    found = claims("adversarial a {\n depth = 1\n expect accuracy >= 0\n expect accuracy drops by >= 0.99\n}\nnodes <= 100000")
    assert [x.id for x in found] == ["adversarial.a.1", "adversarial.a.2", "size.nodes"]
    first, second, size = found
    assert first.variant is second.variant and first.position == second.position == 0 and size.position == 1
    assert second.text == "adversarial a: expect accuracy drops by >= 0.99"


def test_ids_do_not_move_when_another_claim_is_added():
    before = {x.id: x.text for x in claims("nodes <= 40\nablate circuit -> loss <= 0.3")}
    after = {x.id: x.text for x in claims("edges <= 9\nnodes <= 40\nadversarial z { depth = 2  expect loss <= 1 }\nablate circuit -> loss <= 0.3")}
    assert before.items() <= after.items()


def test_repeated_ids_are_numbered():
    assert [x.id for x in claims("nodes <= 40\nnodes in layer 0 <= 9\nnodes in layer 1 <= 9")] == ["size.nodes", "size.nodes#2", "size.nodes#3"]


def test_constants_are_folded_by_the_checker():
    size, ablate, adversarial = claims(
        "nodes in layers 0..2 - 1 <= 2 * 20\nablate circuit -> accuracy drops by >= 50% - 20%\n"
        "adversarial deep { pad = 0..3  expect accuracy >= 1/4 when pad > 1 }"
    )
    assert isinstance(size, c.SizeClaim) and size.bound == 40.0 and size.layers == frozenset({0, 1})
    assert isinstance(ablate, c.AblateClaim) and abs(ablate.outcome.bound - 0.3) < 1e-12 and ablate.outcome.threshold == "drops by >= 50% - 20%"
    assert adversarial.variant.axes == (("pad", (0, 1, 2, 3)),) and adversarial.outcome.bound == 0.25


def test_the_docs_list_the_ids_of_their_example():
    text = (ROOT / "docs" / "language.md").read_text()
    section = text.split("### Claim ids", 1)[1].split("\n## ", 1)[0]
    example = section.split("```circ\n", 1)[1].split("```", 1)[0]
    ids = [x.id for x in check_spec_text(example).hypotheses["ids"].claims]
    said = re.search(r"the ids are\s+(.*?):\n", section, re.S).group(1)
    assert re.findall(r"`([^`]+)`", said) == ids
