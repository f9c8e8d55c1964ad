"""Edits of the OV side: what holds by construction for any model, and what the story predicts."""

import pytest
import torch

import toymodel
from toymodel import circuits, experiments
from toymodel.model import AttentionOnlyTransformer, ModelConfig
from toymodel.tasks import get_task
from toymodel.train import held_out

CFG = ModelConfig(d_vocab=12, d_model=16, d_head=6, n_heads=2, n_ctx=5, seed=3)


@pytest.fixture(scope="module")
def small():
    return AttentionOnlyTransformer(CFG).eval()


def _tokens(seed=0, batch=64):
    return torch.randint(0, CFG.d_vocab, (batch, CFG.n_ctx), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("rank", [0, 1, 3, 6])
def test_truncate_ov_is_the_best_rank_r_approximation(small, rank):
    cut = experiments.truncate_ov(small, rank)
    for h in range(CFG.n_heads):
        old = circuits.ov_circuit(small.W_V[h], small.W_O[h]).detach().double()
        new = circuits.ov_circuit(cut.W_V[h], cut.W_O[h]).detach().double()
        assert torch.linalg.matrix_rank(new, atol=1e-5) == rank
        S = torch.linalg.svdvals(old)
        # Eckart-Young: the error of the best rank-r approximation is the norm of the dropped part
        err = torch.linalg.norm(new - old)
        assert float(err) == pytest.approx(float(torch.linalg.norm(S[rank:])), rel=1e-4, abs=1e-5)
    for name in ("W_E", "W_pos", "W_Q", "W_K", "W_U"):
        assert torch.equal(getattr(cut, name), getattr(small, name)), name


def test_truncate_ov_keeps_patterns_and_direct_path(small):
    cut = experiments.truncate_ov(small, 2)
    tokens = _tokens(1)
    with torch.no_grad():
        _, old_pattern = small.run_with_pattern(tokens)
        _, new_pattern = cut.run_with_pattern(tokens)
        old, new = small.decompose(tokens), cut.decompose(tokens)
    assert torch.equal(old_pattern, new_pattern)
    assert torch.equal(old.direct_logits, new.direct_logits)
    assert not torch.allclose(old.logits, new.logits)  # the head's term did change


def test_full_rank_truncation_changes_nothing_but_rounding(small):
    cut = experiments.truncate_ov(small, CFG.d_head)
    tokens = _tokens(2)
    with torch.no_grad():
        torch.testing.assert_close(cut(tokens), small(tokens), rtol=1e-4, atol=1e-5)


def test_truncate_ov_errors(small):
    for bad in (-1, CFG.d_head + 1, 2.0, True):
        with pytest.raises(ValueError, match="rank must be an int from 0 to d_head = 6"):
            experiments.truncate_ov(small, bad)
    with pytest.raises(TypeError, match="must be an AttentionOnlyTransformer"):
        experiments.truncate_ov(torch.nn.Linear(2, 2), 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relabelling_w_u_moves_every_prediction_of_any_model(seed):
    """By construction: an untrained model follows the permutation exactly as a trained one does."""
    model = AttentionOnlyTransformer(ModelConfig(d_vocab=12, d_model=16, d_head=6, n_ctx=5, seed=seed))
    perm = experiments.random_permutation(11, seed=seed)
    tokens = _tokens(seed, batch=200)
    with torch.no_grad():
        before, old_pattern = model.run_with_pattern(tokens)
        after, new_pattern = experiments.permute_outputs(model, perm).run_with_pattern(tokens)
    full = torch.cat([perm, torch.tensor([11])])  # the last token's column is not permuted
    assert torch.equal(after[:, -1].argmax(-1), full[before[:, -1].argmax(-1)])
    assert torch.equal(old_pattern, new_pattern)


def test_rank_sweep_on_the_shipped_model():
    """The story's prediction: accuracy follows the OV table's top-1, rank by rank."""
    model, task = toymodel.load_pretrained("max"), get_task("max")
    data = held_out(task, n=2000)
    points = experiments.ov_rank_sweep(model, task, data.tokens, data.targets, ranks=[1, 3, 5, 8, 16])
    assert [p.rank for p in points] == [1, 3, 5, 8, 16]
    for p in points:
        assert abs(p.accuracy - p.ov_top1) < 0.1, p
        if p.ov_top1 == 1.0:
            assert p.accuracy >= 0.99, p
    assert points[0].accuracy < 0.2 and points[-1].accuracy >= 0.99
    accs = [p.accuracy for p in points]
    assert accs == sorted(accs)
