"""Hostile input through the language half of the pipeline (issue 13): mutated shipped specs are
checked, formatted, shown and sampled, and nothing but a located error may come out.

The mutations (benchmarks/fuzz_specs.py) insert the punctuation, keywords and
values that broke the checker before: 500-deep nesting, 400-digit numbers,
`"ab" * 10**9`, `1e308 * 10`, counts of 10^12, imports of /etc/passwd and
/dev/zero. Under the default `ci` profile a hundred mutants are tried; under
`HYPOTHESIS_PROFILE=fuzz`, two thousand. The benchmark script counts outcomes
over thousands more for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import fuzz_specs  # noqa: E402

FILES = fuzz_specs.sources()
TEXTS = {f: f.read_text(encoding="utf-8") for f in FILES}


@pytest.fixture(scope="module")
def workspace():
    space = fuzz_specs.Workspace()
    yield space
    space.close()


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(original=st.sampled_from(FILES), rng=st.randoms(use_true_random=False))
def test_a_mutated_spec_checks_or_fails_with_located_errors(workspace, original, rng: random.Random):
    text = fuzz_specs.mutate(TEXTS[original], rng)
    outcome, detail = fuzz_specs.classify(workspace.mutant(original, text), timeout=20.0)
    assert outcome in ("ok", "located"), f"{outcome}: {detail}\n--- mutant of {original.name} ---\n{text}"


def test_the_mutations_reach_both_outcomes(workspace):
    """A fuzzer whose mutants all fail to parse would test nothing past the parser."""
    rng = random.Random(0)
    seen = set()
    for _ in range(200):
        original = rng.choice(FILES)
        seen.add(fuzz_specs.classify(workspace.mutant(original, fuzz_specs.mutate(TEXTS[original], rng)), 20.0)[0])
    assert {"ok", "located"} <= seen
