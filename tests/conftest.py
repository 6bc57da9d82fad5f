"""Hypothesis profiles: ``ci`` by default, ``HYPOTHESIS_PROFILE=fuzz`` for a long search."""

import os

from hypothesis import settings

settings.register_profile("ci", deadline=None, print_blob=True)
settings.register_profile("fuzz", max_examples=2000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    # tests/ui compares each case's rendered diagnostics with its .stderr file;
    # after a deliberate change to a message, `pytest tests/ui --bless` rewrites them.
    parser.addoption("--bless", action="store_true", default=False, help="rewrite tests/ui/*.stderr from the actual output")
