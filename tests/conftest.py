"""Hypothesis profiles: ``ci`` by default, ``HYPOTHESIS_PROFILE=fuzz`` for a long search."""

import os

import pytest

from hypothesis import settings

settings.register_profile("ci", deadline=None, print_blob=True)
settings.register_profile("fuzz", max_examples=2000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    # tests/ui compares each case's rendered diagnostics with its .stderr file;
    # after a deliberate change to a message, `pytest tests/ui --bless` rewrites them.
    parser.addoption("--bless", action="store_true", default=False, help="rewrite tests/ui/*.stderr from the actual output")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests run tiny models, for which a second thread only adds spin-waiting
    (on a loaded 2-core machine a forward pass took 474 ms with 2 threads, 8 ms with 1)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
