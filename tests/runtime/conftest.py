"""Fixtures the runtime tests share: one thread for tiny models, and the planted model."""

import pytest
import torch

from runtime.ablation import mean_activations
from runtime.planted import planted_batch, planted_model


@pytest.fixture(scope="module")
def one_thread():
    # Models this small gain nothing from threads, and on a busy machine the
    # threads' spin-waiting makes each forward pass ~50x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    """The hand-built model with a known circuit (runtime/planted.py)."""
    return planted_model()


@pytest.fixture(scope="module")
def means(model):
    return mean_activations(model, planted_batch(1000, seed=2).split(250))
