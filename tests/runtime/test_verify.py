"""verify_hypothesis on the planted model, whose circuit is known: every claim kind both holds
and fails where it should, an untrained control makes the easy claims vacuous, and the same
inputs give the same verdicts."""

from __future__ import annotations

import json

import pytest
import torch

from circuitdsl.syntax import ast as n
from circuitdsl.pipeline import check_spec_text
from circuitdsl.verification.arm import Arm, SampleBank
from circuitdsl.verification.arm import VerifyContext
from circuitdsl.verification.engine import verify_hypothesis
from circuitdsl.verification.verdict import FAIL, INCONCLUSIVE, PASS
from runtime.ablation import mean_activations
from runtime.circuit import circuit_edges
from runtime.model import SparseGPT
from runtime.planted import CONFIG, PLANTED, TOKENIZER, planted_batch, planted_model

# The planted task as a spec; the vocabulary is the planted tokenizer's.
SETUP = r'''
vocab { chars = "abcdefgh='\"" }

task quote {
    q      = choice("'", "\"")
    name   = repeat(choice("a", "b", "c", "d", "e", "f", "g", "h"), 1..3)
    text   = repeat(choice("a", "b", "c", "d", "e", "f", "g", "h"), 1..6)
    prompt = "${name}=${q}${text}"
    answer = q
    competitors = if q == "'" then "\"" else "'"
}

model planted { layers = 2  d_model = 8  heads = 2  d_head = 4  d_mlp = 8  context = 16 }
train run { model = planted  tasks = quote }
prune find { train = run  task = quote }
'''

# The planted circuit plus one distractor path (LETTER read by a value channel of head 1),
# so that a role can bind nodes whose ablation does not matter.
CIRCUIT = PLANTED + ("0.attn.resid_in[5]", "0.attn.v[4]")


# Tiny models: see one_thread in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")

HYPOTHESIS = r'''
hypothesis h on find {
    samples = 200

    nodes <= 10
    nodes <= 4
    edges in layer 1 <= 1

    role quote_in  : resid channel in layer 0 where mean(act | token == "'") > 0.5
    role detector  : resid channel in layer 0 where corr(act, q == "'") >= 0.5
    role copier    : attn head where reads(quote_in, as: key)
    role neuron    : mlp neuron where written_by(detector) and sign(act | q == "'") == 1
    role ghost     : mlp neuron where mean(act) < -5
    role reader    : attn head where writes(late)
    role late      : resid channel where written_by(reader) and layer == 0
    role letter_in : resid channel in layer 0 where mean(act | token == "a") > 0.5 and mean(act | token == "b") < -0.5
    role noise_v   : v channel where reads(letter_in, as: value)
    role stream    : resid channel in layer 0
    role any_head  : attn head where reads(stream, as: value)

    ablate circuit -> accuracy <= 0.6
    ablate complement -> accuracy >= 0.95
    ablate noise_v -> accuracy drops by >= 0.2
    ablate neuron with resample -> accuracy drops by >= 0.3
    ablate copier with zero -> margin drops by >= 1
    ablate ghost -> accuracy drops by >= 0.2

    intervene detector = mean(act | q == "'") when q == "\"" -> rate("'") >= 0.9
    intervene detector = mean(act | q == "\"") when q == "\"" -> rate("'") >= 0.5
    intervene detector = 0 -> accuracy drops by >= 0.3

    adversarial inner_quote {
        q = "'"
        prompt = "${name}=${q}${text}\"a"
        expect accuracy drops by >= 0.3
        expect accuracy >= 0.9
    }
    adversarial pad {
        pad = 0..2
        prompt = "${name}=${q}${text}" + repeat("\"", pad)
        expect accuracy >= 0.9 when pad == 0
        expect accuracy <= 0.6 when pad >= 1
        expect accuracy >= 0.9
    }
}
'''


def _context(nodes=CIRCUIT, seed=0) -> VerifyContext:
    model = planted_model()
    program = check_spec_text(SETUP)
    return VerifyContext(
        model=model,
        control_model=SparseGPT(CONFIG, seed=1).eval(),
        tokenizer=TOKENIZER,
        task=program.tasks["quote"],
        circuit_nodes=nodes,
        circuit_edges=tuple((e.src, e.dst, e.weight) for e in circuit_edges(model, nodes)),
        means=mean_activations(model, [planted_batch(400, seed=1)]),
        default_ablation="mean",
        context=CONFIG.context,
        device="cpu",
        seed=seed,
    )


def _hypothesis(text: str):
    return check_spec_text(SETUP + text).hypotheses["h"]


@pytest.fixture(scope="module")
def verdicts():
    found = verify_hypothesis(_hypothesis(HYPOTHESIS), _context())
    return {v.claim.split(" where ")[0].split(" -> ")[0] if v.kind == "role" else v.claim: v for v in found}


def _claim(verdicts, start: str):
    matches = [v for claim, v in verdicts.items() if claim.startswith(start)]
    assert len(matches) == 1, (start, list(verdicts))
    return matches[0]


def test_every_verdict_is_json_and_in_source_order(verdicts):
    kinds = [v.kind for v in verdicts.values()]
    assert kinds[:3] == ["size"] * 3 and kinds[-5:] == ["adversarial"] * 5
    for v in verdicts.values():
        json.dumps(v.to_json(), allow_nan=False)
        assert v.status in (PASS, FAIL, INCONCLUSIVE)


def test_size_claims_count_the_circuit(verdicts):
    assert _claim(verdicts, "nodes <= 10").status == PASS
    false = _claim(verdicts, "nodes <= 4")
    assert (false.status, false.measured) == (FAIL, 10.0)
    per_layer = _claim(verdicts, "edges in layer 1")
    assert per_layer.status == FAIL and per_layer.measured == 2.0  # resid_in -> neuron -> resid_delta
    assert "not applicable" in false.evidence["control"] and not false.vacuous


def test_roles_bind_the_planted_units(verdicts):
    def nodes(name):
        v = _claim(verdicts, f"role {name} ")
        assert v.status == PASS, v.evidence
        return v.evidence["nodes"]

    assert nodes("quote_in") == ["0.attn.resid_in[0]", "0.attn.resid_in[1]", "0.attn.resid_delta[4]"]
    assert nodes("detector") == ["0.attn.resid_delta[4]"]
    assert nodes("copier") == ["0.attn.head[0]"]
    assert nodes("neuron") == ["1.mlp.post_act[0]"]
    assert nodes("letter_in") == ["0.attn.resid_in[5]"]
    assert nodes("noise_v") == ["0.attn.v[4]"]
    # A role used before its declaration, in a cycle: solved together.
    # (head 1's circuit channel writes NOISE, which no circuit node of layer 0 carries)
    assert nodes("reader") == ["0.attn.head[0]"]
    assert nodes("late") == ["0.attn.resid_delta[4]"]


def test_a_role_no_node_satisfies_fails_and_names_its_closest_candidates(verdicts):
    ghost = _claim(verdicts, "role ghost ")
    assert ghost.status == FAIL and ghost.measured == 0
    (closest,) = ghost.evidence["closest"]
    assert closest["node"] == "1.mlp.post_act[0]"
    assert closest["failed"] == ["mean(act) < -5"]
    assert closest["parts"][0]["values"]["mean(act)"]["value"] > 0


def test_ablations_hurt_where_the_circuit_is_and_not_elsewhere(verdicts):
    assert _claim(verdicts, "ablate circuit").status == PASS
    assert _claim(verdicts, "ablate complement").status == PASS
    harmless = _claim(verdicts, "ablate noise_v")
    assert harmless.status == FAIL and harmless.measured == 0.0
    assert _claim(verdicts, "ablate neuron with resample").status == PASS
    zeroed = _claim(verdicts, "ablate copier with zero")
    assert zeroed.status == PASS and zeroed.evidence["nodes_ablated"] == 3 * CONFIG.d_head
    empty = _claim(verdicts, "ablate ghost")
    assert empty.status == INCONCLUSIVE and "picks out no node" in empty.evidence["problem"]


def test_interventions_flip_the_answer_only_when_the_value_carries_the_other_quote(verdicts):
    flipped = _claim(verdicts, "intervene detector = mean(act | q == \"'\")")
    assert flipped.status == PASS and flipped.evidence["unchanged"]["value"] == 0.0
    own_mean = _claim(verdicts, "intervene detector = mean(act | q == '\"')")
    assert own_mean.status == FAIL
    assert _claim(verdicts, "intervene detector = 0").status == PASS


def test_adversarial_expectations_and_sweeps(verdicts):
    assert _claim(verdicts, "adversarial inner_quote: expect accuracy drops").status == PASS
    wrong = _claim(verdicts, "adversarial inner_quote: expect accuracy >= 0.9")
    assert wrong.status == FAIL and wrong.measured == 0.0
    at_zero = _claim(verdicts, "adversarial pad: expect accuracy >= 0.9 when pad == 0")
    assert at_zero.status == PASS
    assert at_zero.evidence["not_covered"] == [1, 2]
    # The values outside `when` are still on the curve, measured but not claimed: they
    # fail the bound, and the claim still holds.
    beyond = at_zero.evidence["curve"]
    assert [p["x"] for p in beyond] == [0, 1, 2]
    assert [p["status"] for p in beyond] == [PASS, "not claimed", "not claimed"]
    assert all(p["value"] <= 0.6 for p in beyond[1:])
    assert _claim(verdicts, "adversarial pad: expect accuracy <= 0.6 when pad >= 1").status == PASS
    everywhere = verdicts["adversarial pad: expect accuracy >= 0.9"]
    curve = everywhere.evidence["curve"]
    assert everywhere.status == FAIL and [p["x"] for p in curve] == [0, 1, 2]
    assert [p["status"] for p in curve] == [PASS, FAIL, FAIL]


def test_claims_with_the_same_condition_share_one_sample_set_and_one_readout_per_arm():
    ctx = _context()
    bank = SampleBank(ctx, 64)
    trained, control = Arm.trained(ctx, bank), Arm.control(ctx, bank)
    task = bank.task(None)
    assert bank.task(None) is task
    assert trained.readout(task) is trained.readout(task)  # the plain readout is computed once
    assert control.readout(task) is not trained.readout(task)  # each arm has its own
    single = bank.task(n.Binary("==", n.Name("q"), n.String("'")))
    assert single is not task and all(e.latents["q"] == "'" for e in single.examples)
    # A readout with hooks is never taken from the plain one.
    hooked = trained.readout(task, lambda chunk, rows: {})
    assert hooked is not trained.readout(task) and torch.equal(hooked.logits, trained.readout(task).logits)


def test_the_untrained_control_makes_easy_claims_vacuous(verdicts):
    # Any model fails the task once the circuit is gone; a dense untrained one reads everything.
    broken = _claim(verdicts, "ablate circuit")
    assert broken.vacuous and broken.evidence["control"]["status"] == PASS
    assert _claim(verdicts, "role any_head ").vacuous
    assert not _claim(verdicts, "ablate complement").vacuous
    assert not _claim(verdicts, "role detector ").vacuous
    assert not _claim(verdicts, "adversarial inner_quote: expect accuracy drops").vacuous


def test_a_threshold_inside_the_interval_is_inconclusive_not_a_coin_flip():
    ctx = _context()
    probe = _hypothesis("hypothesis h on find { samples = 60  role n : mlp neuron where mean(act) > -100 }")
    (v,) = verify_hypothesis(probe, ctx)
    mean = v.evidence["bound"][0]["parts"][0]["values"]["mean(act)"]["value"]
    exact = _hypothesis(f"hypothesis h on find {{ samples = 60  role n : mlp neuron where mean(act) > {mean!r} }}")
    (v,) = verify_hypothesis(exact, ctx)
    assert v.status == INCONCLUSIVE and v.evidence["unsure"] == ["1.mlp.post_act[0]"]


def test_the_same_inputs_give_the_same_verdicts_and_another_seed_other_samples():
    text = r'''
    hypothesis h on find {
        samples = 40
        role detector : resid channel where corr(act, q == "'") >= 0.5
        ablate detector with resample -> margin drops by >= 1
        adversarial pad { pad = 0..1  prompt = "${name}=${q}${text}" + repeat("\"", pad)  expect margin >= 0 }
    }
    '''
    hyp = _hypothesis(text)
    first = [v.to_json() for v in verify_hypothesis(hyp, _context())]
    again = [v.to_json() for v in verify_hypothesis(hyp, _context())]
    other = [v.to_json() for v in verify_hypothesis(hyp, _context(seed=1))]
    assert first == again
    assert first != other


def test_a_role_whose_where_rules_out_no_candidate_warns_and_one_without_where_does_not(verdicts):
    every = _claim(verdicts, "role any_head ")  # both heads of the circuit read the stream
    assert any(w.startswith("binds every one of its 2 candidates") for w in every.evidence["warnings"])
    # `stream` binds every candidate too, but by declaration: it has no `where`.
    assert "warnings" not in _claim(verdicts, "role stream ").evidence
    assert "warnings" not in _claim(verdicts, "role quote_in ").evidence  # three of four
    # A role that binds says so, warned or not, and names no closest candidate.
    for role in ("any_head", "stream", "copier"):
        evidence = _claim(verdicts, f"role {role} ").evidence
        assert evidence["summary"].startswith("binds 0.") and "closest" not in evidence, evidence


def test_a_role_reaching_far_past_the_circuit_warns_on_the_role_and_its_ablation(verdicts):
    # copier is head 0: 12 q/k/v channels, 2 in a circuit of 10.
    copier = _claim(verdicts, "role copier ")
    assert copier.evidence["changes"] == {"nodes": 12, "in_circuit": 2}
    assert any("changes 12 nodes, only 2 of them in the circuit of 10" in w for w in copier.evidence["warnings"])
    ablation = _claim(verdicts, "ablate copier")
    assert any("changes 12 nodes" in w for w in ablation.evidence["warnings"])
    # One value channel, in the circuit: nothing to say.
    assert "warnings" not in _claim(verdicts, "role noise_v ").evidence
    assert "warnings" not in _claim(verdicts, "ablate noise_v").evidence
    assert "warnings" not in _claim(verdicts, "ablate circuit").evidence


def test_spread_warning_thresholds():
    from circuitdsl.verification.roles import spread_warning

    assert spread_warning(192, 9, 40) is not None  # the four layer-0 heads
    assert spread_warning(36, 9, 40) is None  # 4x its circuit nodes, no more
    assert spread_warning(48, 3, 60) is None  # a head, in a circuit larger than it
