"""toymodel.circuits: values, both backends, all heads at once, and clear errors on bad input."""

import numpy as np
import pytest
import torch

from toymodel import circuits as C

RNG = np.random.default_rng(0)
D_MODEL, D_HEAD, N_HEADS, D_VOCAB, N_CTX = 6, 3, 2, 9, 5


def weights(n_heads=None):
    lead = () if n_heads is None else (n_heads,)
    return {
        "W_E": RNG.normal(size=(D_VOCAB, D_MODEL)),
        "W_pos": RNG.normal(size=(N_CTX, D_MODEL)),
        "W_Q": RNG.normal(size=lead + (D_MODEL, D_HEAD)),
        "W_K": RNG.normal(size=lead + (D_MODEL, D_HEAD)),
        "W_V": RNG.normal(size=lead + (D_MODEL, D_HEAD)),
        "W_O": RNG.normal(size=lead + (D_HEAD, D_MODEL)),
        "W_U": RNG.normal(size=(D_MODEL, D_VOCAB)),
    }


def to_torch(d):
    return {k: torch.tensor(v) for k, v in d.items()}


# ---------------------------------------------------------------------------- values


def test_qk_and_ov_circuits_are_the_products():
    w = weights()
    np.testing.assert_allclose(C.qk_circuit(w["W_Q"], w["W_K"]), w["W_Q"] @ w["W_K"].T)
    np.testing.assert_allclose(C.ov_circuit(w["W_V"], w["W_O"]), w["W_V"] @ w["W_O"])
    assert np.linalg.matrix_rank(C.qk_circuit(w["W_Q"], w["W_K"])) == D_HEAD
    assert np.linalg.matrix_rank(C.ov_circuit(w["W_V"], w["W_O"])) == D_HEAD


def test_scores_equal_bilinear_form_of_qk_circuit():
    w = weights()
    x = RNG.normal(size=(4, D_MODEL))
    scores = C.attention_scores(x, w["W_Q"], w["W_K"])
    assert scores.shape == (4, 4)
    np.testing.assert_allclose(scores, x @ C.qk_circuit(w["W_Q"], w["W_K"]) @ x.T, atol=1e-10)
    # row i is destination i: its score for source j is q_i . k_j
    assert np.isclose(scores[1, 3], (x[1] @ w["W_Q"]) @ (x[3] @ w["W_K"]))


def test_pattern_softmax_scaling_and_causal_mask():
    scores = np.array([[0.0, 2.0, 4.0], [1.0, 1.0, 1.0], [3.0, 0.0, -3.0]])
    p = C.attention_pattern(scores, d_head=4)
    np.testing.assert_allclose(p[0], np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum())
    np.testing.assert_allclose(p[1], [1 / 3] * 3)
    causal = C.attention_pattern(scores, d_head=4, causal=True)
    np.testing.assert_array_equal(causal[0], [1, 0, 0])
    assert causal[1, 2] == 0 and np.isclose(causal[1, 0], 0.5)
    np.testing.assert_allclose(causal[2], p[2])
    t = C.attention_pattern(torch.tensor(scores), d_head=4, causal=True)
    np.testing.assert_allclose(t.numpy(), causal, atol=1e-12)


def test_attention_output_is_pattern_times_x_w_ov():
    w = weights()
    x = RNG.normal(size=(3, D_MODEL))
    pattern = C.attention_pattern(C.attention_scores(x, w["W_Q"], w["W_K"]), D_HEAD, causal=True)
    out = C.attention_output(pattern, x, w["W_V"], w["W_O"])
    np.testing.assert_allclose(out, pattern @ (x @ C.ov_circuit(w["W_V"], w["W_O"])), atol=1e-10)


def test_full_circuits_row_convention_meaning():
    w = weights()
    full_qk = C.full_qk_circuit(w["W_E"], w["W_Q"], w["W_K"])
    full_ov = C.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    assert full_qk.shape == full_ov.shape == (D_VOCAB, D_VOCAB)
    # QK: row = query token t, column = key token s
    t, s = 2, 7
    q, k = w["W_E"][t] @ w["W_Q"], w["W_E"][s] @ w["W_K"]
    assert np.isclose(full_qk[t, s], q @ k)
    assert not np.isclose(full_qk[t, s], full_qk[s, t])  # so the orientation is tested
    # OV: row = attended token, column = output logit
    logits = w["W_E"][t] @ w["W_V"] @ w["W_O"] @ w["W_U"]
    np.testing.assert_allclose(full_ov[t], logits)
    assert not np.allclose(full_ov[:, t], logits)


def test_qk_terms_add_up_to_the_score_with_positions():
    w = weights()
    terms = C.qk_circuit_terms(w["W_E"], w["W_pos"], w["W_Q"], w["W_K"])
    assert terms["tok_pos"].shape == (D_VOCAB, N_CTX) and terms["pos_tok"].shape == (N_CTX, D_VOCAB)
    t, p, s, q = 3, 4, 5, 1  # query: token t at position p; key: token s at position q
    x_dest, x_src = w["W_E"][t] + w["W_pos"][p], w["W_E"][s] + w["W_pos"][q]
    expected = x_dest @ C.qk_circuit(w["W_Q"], w["W_K"]) @ x_src
    total = terms["tok_tok"][t, s] + terms["tok_pos"][t, q] + terms["pos_tok"][p, s] + terms[
        "pos_pos"][p, q]
    assert np.isclose(total, expected)
    np.testing.assert_allclose(terms["tok_tok"], C.full_qk_circuit(w["W_E"], w["W_Q"], w["W_K"]))


@pytest.mark.parametrize("fn,names", [
    (C.qk_circuit, ["W_Q", "W_K"]),
    (C.ov_circuit, ["W_V", "W_O"]),
    (C.full_qk_circuit, ["W_E", "W_Q", "W_K"]),
    (C.full_ov_circuit, ["W_E", "W_V", "W_O", "W_U"]),
])
def test_all_heads_at_once_equals_each_head(fn, names):
    w = weights(N_HEADS)
    stacked = fn(*[w[n] for n in names])
    assert stacked.shape[0] == N_HEADS
    for h in range(N_HEADS):
        one = fn(*[w[n][h] if w[n].ndim == 3 else w[n] for n in names])
        np.testing.assert_allclose(stacked[h], one, atol=1e-10)


def test_numpy_in_numpy_out_torch_in_torch_out():
    w = weights()
    out_np = C.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    tw = to_torch(w)
    out_t = C.full_ov_circuit(tw["W_E"], tw["W_V"], tw["W_O"], tw["W_U"])
    assert isinstance(out_np, np.ndarray) and isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_t.numpy(), out_np, atol=1e-10)
    # integer and list inputs become floats
    assert C.qk_circuit([[1, 0], [0, 1]], np.eye(2, dtype=int)).dtype == np.float64


# ---------------------------------------------------------------------------- statistics


def _dense_copying(full):
    eig = np.linalg.eigvals(full)
    return eig.sum().real / np.abs(eig).sum()


def test_copying_score_factored_equals_dense_eigenvalues():
    w = weights(N_HEADS)
    full = C.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    per_head = C.copying_score(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    assert per_head.shape == (N_HEADS,)
    for h in range(N_HEADS):
        assert np.isclose(per_head[h], _dense_copying(full[h]), atol=1e-8)
    combined = C.copying_score(w["W_E"], w["W_V"], w["W_O"], w["W_U"], combine_heads=True)
    assert np.isclose(combined, _dense_copying(full.sum(0)), atol=1e-8)
    tw = to_torch(w)
    t_score = C.copying_score(tw["W_E"], tw["W_V"], tw["W_O"], tw["W_U"], combine_heads=True)
    assert isinstance(t_score, float) and np.isclose(t_score, combined, atol=1e-8)


def test_copying_score_extremes_and_eigenvalues():
    d = 5
    W_E, W_U = np.eye(d), np.eye(d)
    W_V, W_O = np.eye(d)[:, :2], np.eye(d)[:2, :]  # copies two tokens
    assert np.isclose(C.copying_score(W_E, W_V, W_O, W_U), 1.0)
    assert np.isclose(C.copying_score(W_E, W_V, -W_O, W_U), -1.0)
    eig = C.ov_eigenvalues(W_E, W_V, W_O, W_U)
    assert eig.shape == (2,) and np.allclose(eig, 1)


def test_ov_top1_accuracy():
    d = 6
    W_E, W_U = np.eye(d), np.eye(d)
    W_V, W_O = np.eye(d), np.eye(d)
    assert C.ov_top1_accuracy(W_E, W_V, W_O, W_U) == 1.0
    shift = np.roll(np.eye(d), 1, axis=1)  # token i raises logit i+1
    assert C.ov_top1_accuracy(W_E, W_V, shift, W_U) == 0.0
    half = np.eye(d)
    half[[0, 1]] = half[[1, 0]]  # tokens 0 and 1 swapped, the rest copied
    assert np.isclose(C.ov_top1_accuracy(W_E, W_V, half, W_U), 4 / 6)
    assert C.ov_top1_accuracy(W_E, W_V, half, W_U, tokens=[2, 3, 4]) == 1.0
    stacked = C.ov_top1_accuracy(W_E, np.stack([W_V, W_V]), np.stack([W_O, shift]), W_U)
    np.testing.assert_allclose(stacked, [1.0, 0.0])


def test_spearman():
    assert np.isclose(C.spearman([1, 2, 3, 4], [10, 20, 30, 400]), 1.0)
    assert np.isclose(C.spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1.0)
    assert np.isclose(C.spearman([1, 2, 2, 3], [1, 2, 2, 3]), 1.0)
    with pytest.raises(ValueError, match="same length"):
        C.spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="constant"):
        C.spearman([1, 1, 1], [1, 2, 3])


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call,exc,message", [
    # wrong rank
    (lambda: C.qk_circuit(np.ones(4), np.ones((4, 2))), ValueError, r"W_Q must have shape \[n_heads, d_model, d_head\]"),
    # mismatched d_head
    (lambda: C.qk_circuit(np.ones((4, 2)), np.ones((4, 3))), ValueError, r"W_K must have shape \[d_model, d_head\] = \[4, 2\], got shape \[4, 3\]"),
    # mismatched d_model between W_V and W_O
    (lambda: C.ov_circuit(np.ones((4, 2)), np.ones((2, 5))), ValueError, r"W_O must have shape \[d_head, d_model\]"),
    # one head against all heads
    (lambda: C.ov_circuit(np.ones((3, 4, 2)), np.ones((2, 4))), ValueError, "both for one head"),
    # x does not match d_model
    (lambda: C.attention_scores(np.ones((2, 5)), np.eye(4), np.eye(4)), ValueError, r"x must have shape \[n_pos, d_model\]"),
    # causal mask on non-square scores
    (lambda: C.attention_pattern(np.ones((2, 3)), 4, causal=True), ValueError, r"square scores"),
    # bad d_head
    (lambda: C.attention_pattern(np.ones((2, 2)), 0), ValueError, "d_head must be a positive integer"),
    (lambda: C.attention_pattern(np.ones((2, 2)), 2.5), ValueError, "d_head must be a positive integer"),
    # NaN and inf
    (lambda: C.qk_circuit(np.full((4, 2), np.nan), np.ones((4, 2))), ValueError, "W_Q contains NaN or infinite"),
    (lambda: C.attention_pattern(torch.tensor([[0.0, float("inf")]]), 4), ValueError, "scores contains NaN or infinite"),
    # non-numeric
    (lambda: C.qk_circuit(np.array([["a", "b"]]), np.ones((1, 2))), TypeError, "W_Q must hold real numbers"),
    (lambda: C.qk_circuit("W_Q", np.ones((1, 2))), TypeError, "W_Q must be a numpy array or a torch tensor"),
    (lambda: C.ov_circuit(None, np.ones((2, 2))), TypeError, "W_V must be a numpy array or a torch tensor"),
    (lambda: C.qk_circuit(torch.ones(2, 2, dtype=torch.complex64), torch.ones(2, 2)), TypeError, "real-valued"),
    # mixing numpy and torch
    (lambda: C.qk_circuit(np.ones((4, 2)), torch.ones(4, 2)), TypeError, "all as torch tensors"),
    # full circuits: W_U with wrong vocabulary size
    (lambda: C.full_ov_circuit(np.ones((9, 4)), np.ones((4, 2)), np.ones((2, 4)), np.ones((4, 8))), ValueError, r"W_U must have shape \[d_model, d_vocab\] = \[4, 9\]"),
    (lambda: C.full_qk_circuit(np.ones((9, 5)), np.ones((4, 2)), np.ones((4, 2))), ValueError, r"W_E must have shape \[d_vocab, d_model\]"),
    # empty dimension, ragged lists, bad token ids
    (lambda: C.qk_circuit(np.ones((4, 0)), np.ones((4, 0))), ValueError, "empty dimension"),
    (lambda: C.qk_circuit([[1, 2], [3]], np.ones((2, 2))), ValueError, "rectangular"),
    (lambda: C.ov_top1_accuracy(np.eye(3), np.eye(3), np.eye(3), np.eye(3), tokens=[0, 3]), ValueError, r"tokens must lie in \[0, 2\]"),
])
def test_bad_input_raises_clear_error(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_ov_top1_accuracy_chunked_equals_materialized():
    w = weights(N_HEADS)
    full = C.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    dense = (full.argmax(-1) == np.arange(D_VOCAB)).mean(-1)
    for chunk in (1, 4, 1000):
        got = C.ov_top1_accuracy(w["W_E"], w["W_V"], w["W_O"], w["W_U"], chunk_size=chunk)
        np.testing.assert_allclose(got, dense)
    combined = C.ov_top1_accuracy(w["W_E"], w["W_V"], w["W_O"], w["W_U"], combine_heads=True,
                                  chunk_size=2)
    assert combined == (full.sum(0).argmax(-1) == np.arange(D_VOCAB)).mean()
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        C.ov_top1_accuracy(w["W_E"], w["W_V"], w["W_O"], w["W_U"], chunk_size=0)
