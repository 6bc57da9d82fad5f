"""Hypothesis profiles: ``ci`` by default, ``HYPOTHESIS_PROFILE=fuzz`` for a long search."""

import os
from pathlib import Path

import pytest

from hypothesis import settings

# `pytester` runs pytest on .circ files to test the plugin (tests/cli).
pytest_plugins = ["pytester"]

settings.register_profile("ci", deadline=None, print_blob=True)
settings.register_profile("fuzz", max_examples=2000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    # tests/ui compares each case's rendered diagnostics with its .stderr file;
    # after a deliberate change to a message, `pytest tests/ui --bless` rewrites them.
    parser.addoption("--bless", action="store_true", default=False, help="rewrite tests/ui/*.stderr from the actual output")


@pytest.fixture(autouse=True, scope="session")
def _shipped_specs_importable():
    """Tests write specs into temporary folders that import the shipped tasks by absolute path:
    a declared import path, as a user's CI would declare its shared specs."""
    specs = str(Path(__file__).resolve().parents[1] / "specs")
    before = os.environ.get("CIRC_IMPORT_PATH")
    os.environ["CIRC_IMPORT_PATH"] = specs if not before else before + os.pathsep + specs
    yield
    if before is None:
        os.environ.pop("CIRC_IMPORT_PATH", None)
    else:
        os.environ["CIRC_IMPORT_PATH"] = before


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
