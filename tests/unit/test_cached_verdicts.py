"""The verdict cache's key: what it holds, and that a broken entry is measured again."""

from __future__ import annotations

import json

import pytest

from circuitdsl.pipeline import check_spec_text
from circuitdsl.store.cache import Cache
from circuitdsl.verification import cached
from circuitdsl.verification.cached import read_verdicts, source_digest, verdicts_key, write_verdicts
from circuitdsl.verification.verdict import Verdict

SPEC = """
vocab { chars = printable }
task t { q = choice("'", "\\"")  prompt = "x=${q}a"  answer = q }
model m { layers = 1  d_model = 16  heads = 2  d_head = 8  d_mlp = 32  context = 16 }
train r { model = m  tasks = t  steps = 10 }
prune p { train = r  task = t }
hypothesis h on p { nodes <= THRESHOLD }
"""


def _key(threshold="40", **changes):
    spec = check_spec_text(SPEC.replace("THRESHOLD", threshold))
    settings = dict(model_key="m" * 20, circuit_key="c" * 20, bridge_keys={}, seed=0, device="cpu", torch_version="2.13.0")
    settings.update(changes)
    return verdicts_key(spec, spec.hypotheses["h"], **settings)


def test_the_key_changes_with_everything_the_verdicts_depend_on(monkeypatch):
    base = _key()
    assert _key() == base
    others = [
        _key("41"),
        _key(model_key="n" * 20),
        _key(circuit_key="d" * 20),
        # A bridge's dense model can change with tasks the hypothesis only names.
        _key(bridge_keys={"b": ["x" * 20, "y" * 20]}),
        _key(seed=1),
        _key(device="cuda"),
        _key(torch_version="2.14.0"),
    ]
    assert len({base, *others}) == 1 + len(others)
    monkeypatch.setattr(cached, "source_digest", lambda: "another program")
    assert _key() != base


def test_the_code_digest_covers_the_runtime_and_the_language():
    names = {name for name, _ in cached.source_files()}
    for needed in ("grammar", "runtime/model.py", "runtime/probe.py", "circuitdsl/verification/engine.py", "circuitdsl/tasks/sampler.py"):
        assert needed in names
    digest = source_digest()
    assert len(digest) == 64 and digest == source_digest()


VERDICT = Verdict("c0", "nodes <= 40", "size", 12.0, "<= 40", "PASS", None, {"nodes": ["0.attn.q[1]"]}, False)


def test_verdicts_round_trip_and_a_broken_entry_is_measured_again(tmp_path):
    store = Cache(tmp_path)
    [back] = write_verdicts(store, "k" * 20, [VERDICT], "h on p, seed 0")
    assert back == VERDICT and read_verdicts(store, "k" * 20) == [VERDICT]
    [listed] = store.entries()
    assert listed.kind == "verdicts" and listed.summary == "h on p, seed 0: 1 of 1 claim pass"
    # Bytes that pass the manifest's check but are not verdicts: measured again, not a crash.
    store.write(cached.KIND, "k" * 20, {cached.FILE: json.dumps([{"id": "c0"}]).encode()}, {})
    assert read_verdicts(store, "k" * 20) is None
    # A file changed behind the manifest's back: the entry is discarded.
    write_verdicts(store, "k" * 20, [VERDICT], "again")
    (tmp_path / cached.KIND / ("k" * 20) / cached.FILE).write_text("[]")
    assert read_verdicts(store, "k" * 20) is None
    assert any("corrupt" in w for w in store.warnings)


@pytest.mark.parametrize("interval", [None, (0.25, 0.5)])
def test_intervals_come_back_as_tuples(tmp_path, interval):
    verdict = Verdict("c1", "ablate circuit -> accuracy <= 0.6", "ablate", 0.4, "<= 0.6", "PASS", interval, {}, True)
    assert write_verdicts(Cache(tmp_path), "v" * 20, [verdict], "") == [verdict]
