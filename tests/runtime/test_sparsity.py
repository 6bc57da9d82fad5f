import dataclasses
import math

import pytest
import torch

from runtime.model import ModelConfig, SparseGPT
from runtime.sparsity import (
    density_schedule,
    measured_density,
    project_topk_,
    sharkfin_lr,
    sparsified_parameters,
)

TINY = ModelConfig(vocab_size=20, n_layer=2, d_model=16, n_head=2, d_head=8, d_mlp=32, context=12,
                   positional=True, bigram=True)
MATRICES = ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.fc", "mlp.proj")
HIDDEN = [f"blocks.{i}.{m}.weight" for i in range(2) for m in MATRICES]


def test_sparsified_parameters_are_the_hidden_matrices_only_by_default():
    names = [name for name, _ in sparsified_parameters(SparseGPT(TINY))]
    assert names == HIDDEN


def test_sparsify_embeddings_adds_embeddings_and_unembedding():
    names = [name for name, _ in sparsified_parameters(SparseGPT(dataclasses.replace(TINY, sparsify_embeddings=True)))]
    assert names == ["wte.weight", "wpe.weight", *HIDDEN, "lm_head.weight"]


@pytest.mark.parametrize("density, min_live", [(0.1, 2), (0.3, 1), (0.05, 0), (0.01, 3)])
def test_projection_keeps_exactly_k_and_min_live_per_row(density, min_live):
    model = SparseGPT(TINY)
    params = sparsified_parameters(model)
    project_topk_(params, density, min_live)
    for name, w in params:
        rows = w.shape[0]
        k = max(1, round(density * w.numel()))
        assert torch.count_nonzero(w) == k, name
        assert (torch.count_nonzero(w, dim=1) >= min(min_live, k // rows)).all(), name
        assert not torch.signbit(w[w == 0]).any()  # exactly +0.0


def test_row_guarantee_rescues_a_row_magnitude_alone_would_kill():
    w = torch.randn(4, 10)
    w[2] *= 1e-3
    weak_row_max = w[2].abs().argmax()
    expected = w.clone()
    alone = w.clone()
    project_topk_([("w", alone)], 0.2, 0)
    assert torch.count_nonzero(alone[2]) == 0
    project_topk_([("w", w)], 0.2, 1)
    assert torch.count_nonzero(w) == 8
    assert torch.count_nonzero(w[2]) == 1 and w[2, weak_row_max] == expected[2, weak_row_max]
    # kept entries are unchanged
    torch.testing.assert_close(w[w != 0], expected[w != 0], rtol=0, atol=0)


def test_projection_is_deterministic_and_a_no_op_at_density_one():
    a, b = SparseGPT(TINY), SparseGPT(TINY)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    project_topk_(sparsified_parameters(a), 1.0, 1)
    assert all(torch.equal(before[k], v) for k, v in a.state_dict().items())
    project_topk_(sparsified_parameters(a), 0.1, 1)
    project_topk_(sparsified_parameters(b), 0.1, 1)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in before)


def test_embeddings_untouched_unless_sparsified():
    model = SparseGPT(TINY)
    kept = {n: p.clone() for n, p in model.named_parameters() if not n.startswith("blocks.") or p.dim() == 1}
    project_topk_(sparsified_parameters(model), 0.05, 1)
    for name, p in model.named_parameters():
        if name in kept:
            assert torch.equal(p, kept[name]), name


def test_measured_density_reports_each_sparsified_matrix():
    model = SparseGPT(TINY)
    assert set(measured_density(model).values()) == {1.0}
    project_topk_(sparsified_parameters(model), 0.25, 1)
    density = measured_density(model)
    assert list(density) == HIDDEN
    assert density["blocks.0.mlp.fc.weight"] == 128 / 512


def test_density_schedule_endpoints_and_monotonicity():
    total, target = 1000, 0.05
    values = [density_schedule(s, total, target) for s in range(total + 1)]
    assert values[0] == values[10] == 1.0
    assert values[500] == values[1000] == target
    assert density_schedule(255, total, target) == pytest.approx(1 + (target - 1) * 245 / 490)
    assert all(a >= b for a, b in zip(values, values[1:]))
    with pytest.raises(ValueError):
        density_schedule(0, total, 0.0)


def test_sharkfin_warms_up_then_decays_times_sqrt_of_final_over_current_density():
    total, base, final = 100, 1e-2, 0.04
    assert sharkfin_lr(0, total, base, 0.1, 1.0, final) == pytest.approx(base * 0.1 * 0.2)
    assert sharkfin_lr(9, total, base, 0.1, 1.0, final) == pytest.approx(base * 0.2)
    assert sharkfin_lr(9, total, base, 0.1, 0.16, final) == pytest.approx(base * 0.5)
    assert sharkfin_lr(50, total, base, 0.1, final, final) == pytest.approx(base * 50 / 90)
    assert sharkfin_lr(100, total, base, 0.1, final, final) == 0.0


def test_sharkfin_with_the_density_schedule_rises_while_annealing():
    total, final = 100, 0.04

    def lr(step):
        return sharkfin_lr(step, total, 1.0, 0.1, density_schedule(step, total, final), final)

    peak = max(range(total + 1), key=lr)
    assert 10 <= peak <= 50 and lr(peak) > 2 * lr(9)
    assert all(lr(s) >= lr(s + 1) for s in range(50, total))
