"""The circuits of toymodel.circuits applied to the model, and the shipped checkpoint's targets."""

import numpy as np
import pytest
import torch

import toymodel
from toymodel import circuits, experiments
from toymodel.model import AttentionOnlyTransformer, ModelConfig
from toymodel.tasks import get_task

CFG = ModelConfig(d_vocab=12, d_model=10, d_head=3, n_heads=2, n_ctx=5, seed=7)


@pytest.fixture(scope="module")
def small():
    return AttentionOnlyTransformer(CFG)


def _weights(model):
    return {
        k: getattr(model, k).detach().double()
        for k in ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_U")
    }


def _score_from_full(full):
    eig = np.linalg.eigvals(full.numpy())  # [d_vocab] with d_vocab - rank zeros
    return eig.sum().real / np.abs(eig).sum()


def test_factored_copying_score_equals_materialized(small):
    w = _weights(small)
    per_head = circuits.copying_score(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    full = circuits.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"])  # [head, vocab, vocab]
    for h in range(CFG.n_heads):
        assert float(per_head[h]) == pytest.approx(_score_from_full(full[h]), abs=1e-6)  # float32
    combined = circuits.copying_score(w["W_E"], w["W_V"], w["W_O"], w["W_U"], combine_heads=True)
    assert combined == pytest.approx(_score_from_full(full.sum(0)), abs=1e-8)
    assert not np.isclose(combined, float(per_head[0]))  # combining heads is not one head


def test_full_ov_row_convention_is_transpose_of_column_convention(small):
    w = _weights(small)
    W_OV = w["W_V"] @ w["W_O"]  # [head, d_model, d_model]
    column = w["W_U"].T @ W_OV.transpose(-1, -2) @ w["W_E"].T  # Elhage et al.: W_U W_OV W_E
    row = circuits.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    torch.testing.assert_close(row, column.transpose(-1, -2))
    assert not torch.allclose(row, column)  # the transpose matters


def test_model_circuits_match_circuits_module(small):
    torch.testing.assert_close(small.W_QK, circuits.qk_circuit(small.W_Q, small.W_K))
    torch.testing.assert_close(small.W_OV, circuits.ov_circuit(small.W_V, small.W_O))


def test_qk_terms_add_up_to_model_scores(small):
    w = _weights(small)
    terms = circuits.qk_circuit_terms(w["W_E"], w["W_pos"], w["W_Q"], w["W_K"])
    tokens = torch.tensor([[3, 0, 11, 7, 5]])
    captured = {}

    def keep(scores):
        captured["scores"] = scores
        return scores

    small.run_with_pattern(tokens, score_hook=keep)
    scores = captured["scores"][0].double()  # [head, dest, src]
    p, s = 4, 2  # query at position 4 (token 5), key at position 2 (token 11)
    total = (
        terms["tok_tok"][:, 5, 11]
        + terms["tok_pos"][:, 5, s]
        + terms["pos_tok"][:, p, 11]
        + terms["pos_pos"][:, p, s]
    )
    torch.testing.assert_close(scores[:, p, s], total, rtol=1e-5, atol=1e-5)


def test_permute_outputs_keeps_patterns_and_moves_logits(small):
    perm = experiments.random_permutation(8, seed=1)
    assert not torch.any(perm == torch.arange(8))
    new = experiments.permute_outputs(small, perm)
    tokens = torch.randint(0, 12, (4, 5), generator=torch.Generator().manual_seed(2))
    old_logits, old_pattern = small.run_with_pattern(tokens)
    new_logits, new_pattern = new.run_with_pattern(tokens)
    assert torch.equal(old_pattern, new_pattern)
    assert torch.equal(new_logits[..., perm], old_logits[..., :8])
    assert torch.equal(new_logits[..., 8:], old_logits[..., 8:])
    assert not torch.equal(small.W_U, new.W_U)  # the original is untouched, the copy changed


def test_negate_qk_negates_scores(small):
    captured = []
    tokens = torch.randint(0, 12, (2, 5), generator=torch.Generator().manual_seed(3))
    for m in (small, experiments.negate_qk(small)):
        m(tokens, score_hook=lambda s: captured.append(s) or s)
    torch.testing.assert_close(captured[1], -captured[0])
    blocked = experiments.block_query_self(captured[0])
    assert torch.all(blocked[..., -1, -1] == float("-inf"))
    assert torch.equal(blocked[..., :-1, :], captured[0][..., :-1, :])


def test_experiment_errors(small):
    with pytest.raises(ValueError, match="perm must be a permutation of 0 .. 2"):
        experiments.permute_outputs(small, [0, 0, 1])
    with pytest.raises(ValueError, match="at most d_vocab = 12"):
        experiments.permute_outputs(small, torch.arange(13))
    with pytest.raises(TypeError, match="must be an AttentionOnlyTransformer"):
        experiments.negate_qk(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------------------------------
# the shipped checkpoint meets the lesson's targets
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    task = get_task("max")
    tokens, targets = task.make_batch(5000, 2024)
    return toymodel.load_pretrained("max"), task, tokens, targets


def test_shipped_accuracy_and_circuits(shipped):
    model, task, tokens, targets = shipped
    assert experiments.agreement(model, tokens, targets) >= 0.99
    stats = experiments.circuit_stats(model, task)
    assert stats.qk_spearman >= 0.95
    assert stats.copying_score >= 0.9 and stats.ov_top1 >= 0.9
    assert experiments.direct_path_accuracy(model, tokens, targets) < 0.1


def test_shipped_permutation_follows(shipped):
    model, task, tokens, targets = shipped
    perm = experiments.random_permutation(task.n_numbers, seed=0)
    new = experiments.permute_outputs(model, perm)
    assert experiments.agreement(new, tokens, perm[targets]) >= 0.95
    assert torch.equal(new.run_with_pattern(tokens)[1], model.run_with_pattern(tokens)[1])


def test_shipped_negated_qk_finds_min(shipped):
    model, task, tokens, _ = shipped
    mins = tokens[:, :-1].min(1).values
    neg = experiments.negate_qk(model)
    assert experiments.agreement(neg, tokens, mins, experiments.block_query_self) >= 0.95


def test_lesson_plots_draw_and_check_shapes(shipped):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from toymodel.views import figures

    model, task, tokens, _ = shipped
    _, pattern = model.run_with_pattern(tokens[:2])
    axes = figures.attention_patterns(pattern[:, 0], tokens[:2], task.query_token)
    assert len(axes) == 2 and axes[0].get_xticklabels()[-1].get_text() == "q"
    row = experiments.query_qk_row(model, task)[0]
    assert len(figures.qk_row(row).lines[0].get_xdata()) == task.d_vocab
    figures.qk_parts(row, experiments.query_position_row(model, task)[0])
    eig = circuits.ov_eigenvalues(model.W_E, model.W_V, model.W_O, model.W_U)[0]
    assert figures.eigenvalues(eig).collections[0].get_offsets().shape == (16, 2)
    with pytest.raises(ValueError, match=r"pattern must be \[n, dest, src\]"):
        figures.attention_patterns(pattern[0, 0], tokens[:2])
    plt.close("all")
