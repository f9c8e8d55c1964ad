"""Every identity stated on the notation page and its appendix (book/notation.md,
book/column_convention.md), checked on random matrices.

Shapes follow the page: W_E [d_vocab, d_model], W_pos [n_ctx, d_model], W_Q/W_K/W_V
[(n_heads,) d_model, d_head], W_O [(n_heads,) d_head, d_model], W_U [d_model, d_vocab],
x [n_pos, d_model], pattern [n_dest, n_src]. The column-convention reference forms live in
toymodel.conventions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toymodel import circuits as C
from toymodel import conventions as K

D_VOCAB, D_MODEL, D_HEAD, N_HEADS, N_CTX, N_POS = 11, 8, 3, 4, 6, 5


def _weights(backend: str, seed: int = 0, heads: bool = False):
    rng = np.random.default_rng(seed)
    lead = (N_HEADS,) if heads else ()
    w = {
        "W_E": rng.normal(size=(D_VOCAB, D_MODEL)),
        "W_pos": rng.normal(size=(N_CTX, D_MODEL)),
        "W_Q": rng.normal(size=lead + (D_MODEL, D_HEAD)),
        "W_K": rng.normal(size=lead + (D_MODEL, D_HEAD)),
        "W_V": rng.normal(size=lead + (D_MODEL, D_HEAD)),
        "W_O": rng.normal(size=lead + (D_HEAD, D_MODEL)),
        "W_U": rng.normal(size=(D_MODEL, D_VOCAB)),
        "x": rng.normal(size=(N_POS, D_MODEL)),
    }
    if backend == "torch":
        w = {k: torch.tensor(v, dtype=torch.float64) for k, v in w.items()}
    return w


def _np(a):
    return a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _close(a, b):
    np.testing.assert_allclose(_np(a), _np(b), rtol=1e-10, atol=1e-10)


def _T(a):
    return a.transpose(-1, -2) if isinstance(a, torch.Tensor) else np.swapaxes(a, -1, -2)


BACKENDS = pytest.mark.parametrize("backend", ["numpy", "torch"])


# --- shapes ---------------------------------------------------------------------------------


@BACKENDS
def test_stated_shapes(backend):
    w = _weights(backend)
    assert tuple(C.qk_circuit(w["W_Q"], w["W_K"]).shape) == (D_MODEL, D_MODEL)
    assert tuple(C.ov_circuit(w["W_V"], w["W_O"]).shape) == (D_MODEL, D_MODEL)
    assert tuple(C.attention_scores(w["x"], w["W_Q"], w["W_K"]).shape) == (N_POS, N_POS)
    assert tuple(C.full_qk_circuit(w["W_E"], w["W_Q"], w["W_K"]).shape) == (D_VOCAB, D_VOCAB)
    full_ov = C.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    assert tuple(full_ov.shape) == (D_VOCAB, D_VOCAB)
    assert type(full_ov) is type(w["W_E"])  # numpy in, numpy out; torch in, torch out


# --- W_QK and W_OV --------------------------------------------------------------------------


@BACKENDS
def test_w_qk_is_w_q_times_w_k_transposed(backend):
    w = _weights(backend)
    _close(C.qk_circuit(w["W_Q"], w["W_K"]), w["W_Q"] @ _T(w["W_K"]))


@BACKENDS
def test_w_ov_is_w_v_times_w_o(backend):
    w = _weights(backend)
    _close(C.ov_circuit(w["W_V"], w["W_O"]), w["W_V"] @ w["W_O"])


@BACKENDS
def test_scores_are_the_bilinear_form_of_w_qk(backend):
    """scores = (x W_Q)(x W_K)^T = x W_QK x^T; entry (i, j) = x_i W_QK x_j^T, rows = destination."""
    w = _weights(backend)
    x = w["x"]
    W_QK = C.qk_circuit(w["W_Q"], w["W_K"])
    scores = C.attention_scores(x, w["W_Q"], w["W_K"])
    _close(scores, (x @ w["W_Q"]) @ _T(x @ w["W_K"]))
    _close(scores, x @ W_QK @ _T(x))
    i, j = 1, 3  # an off-diagonal entry, so a transposed answer fails
    _close(scores[i, j], x[i] @ W_QK @ x[j])
    assert not np.allclose(_np(scores)[i, j], _np(scores)[j, i])


@BACKENDS
def test_head_output_is_pattern_times_x_w_ov(backend):
    w = _weights(backend)
    x = w["x"]
    pattern = C.attention_pattern(C.attention_scores(x, w["W_Q"], w["W_K"]), D_HEAD)
    _close(_np(pattern).sum(-1), np.ones(N_POS))  # rows (destinations) sum to 1
    out = C.attention_output(pattern, x, w["W_V"], w["W_O"])
    _close(out, pattern @ (x @ C.ov_circuit(w["W_V"], w["W_O"])))


@BACKENDS
def test_ranks_are_at_most_d_head(backend):
    w = _weights(backend)
    for M in (C.qk_circuit(w["W_Q"], w["W_K"]), C.ov_circuit(w["W_V"], w["W_O"])):
        assert M.shape[-1] == D_MODEL > D_HEAD
        rank = (
            int(torch.linalg.matrix_rank(M))
            if isinstance(M, torch.Tensor)
            else int(np.linalg.matrix_rank(M))
        )
        assert rank <= D_HEAD
        assert rank == D_HEAD  # random factors: the bound is reached


# --- full (end-to-end) circuits -------------------------------------------------------------


@BACKENDS
def test_full_qk_is_w_e_w_qk_w_e_transposed(backend):
    w = _weights(backend)
    W_QK = C.qk_circuit(w["W_Q"], w["W_K"])
    full = C.full_qk_circuit(w["W_E"], w["W_Q"], w["W_K"])
    _close(full, w["W_E"] @ W_QK @ _T(w["W_E"]))
    # row = query token t, column = key token s: the score of embedding rows E[t], E[s]
    t, s = 2, 7
    _close(full[t, s], w["W_E"][t] @ W_QK @ w["W_E"][s])


@BACKENDS
def test_full_ov_is_w_e_w_ov_w_u(backend):
    w = _weights(backend)
    full = C.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    _close(full, w["W_E"] @ C.ov_circuit(w["W_V"], w["W_O"]) @ w["W_U"])
    # row = attended token t, column = logit j: what E[t] written through W_OV does to logit j
    t = 4
    _close(full[t], (w["W_E"][t] @ w["W_V"] @ w["W_O"]) @ w["W_U"])


# --- the column convention ------------------------------------------------------------------


@BACKENDS
def test_column_weights_are_transposes(backend):
    w = _weights(backend)
    col = K.to_column_convention(**{k: v for k, v in w.items() if k != "x"})
    assert tuple(col["W_E_col"].shape) == (D_MODEL, D_VOCAB)
    assert tuple(col["W_pos_col"].shape) == (D_MODEL, N_CTX)
    assert tuple(col["W_Q_col"].shape) == (D_HEAD, D_MODEL)
    assert tuple(col["W_O_col"].shape) == (D_MODEL, D_HEAD)
    assert tuple(col["W_U_col"].shape) == (D_VOCAB, D_MODEL)
    back = K.to_row_convention(**col)
    for name, value in back.items():
        _close(value, w[name])


@BACKENDS
def test_column_w_qk_is_the_same_matrix_and_column_w_ov_the_transpose(backend):
    w = _weights(backend)
    col = K.to_column_convention(W_Q=w["W_Q"], W_K=w["W_K"], W_V=w["W_V"], W_O=w["W_O"])
    _close(K.column_qk_circuit(col["W_Q_col"], col["W_K_col"]), C.qk_circuit(w["W_Q"], w["W_K"]))
    _close(
        K.column_ov_circuit(col["W_V_col"], col["W_O_col"]),
        _T(C.ov_circuit(w["W_V"], w["W_O"])),
    )
    # the head writes W_OV^col x_j (a column) = (x_j W_OV)^T
    x_j = w["x"][2]
    _close(K.column_ov_circuit(col["W_V_col"], col["W_O_col"]) @ x_j, x_j @ w["W_V"] @ w["W_O"])


@BACKENDS
def test_column_scores_are_the_same_matrix(backend):
    w = _weights(backend)
    col = K.to_column_convention(W_Q=w["W_Q"], W_K=w["W_K"])
    _close(
        K.column_attention_scores(_T(w["x"]), col["W_Q_col"], col["W_K_col"]),
        C.attention_scores(w["x"], w["W_Q"], w["W_K"]),
    )


@BACKENDS
@pytest.mark.parametrize("heads", [False, True])
def test_full_qk_equals_column_form(backend, heads):
    w = _weights(backend, heads=heads)
    col = K.to_column_convention(W_E=w["W_E"], W_Q=w["W_Q"], W_K=w["W_K"])
    ours = C.full_qk_circuit(w["W_E"], w["W_Q"], w["W_K"])
    theirs = K.column_full_qk_circuit(col["W_E_col"], col["W_Q_col"], col["W_K_col"])
    _close(ours, theirs)  # the same matrix, not its transpose
    assert not np.allclose(_np(ours), np.swapaxes(_np(ours), -1, -2))  # not trivially symmetric


@BACKENDS
@pytest.mark.parametrize("heads", [False, True])
def test_full_ov_equals_transpose_of_column_form(backend, heads):
    w = _weights(backend, heads=heads)
    col = K.to_column_convention(W_E=w["W_E"], W_V=w["W_V"], W_O=w["W_O"], W_U=w["W_U"])
    ours = C.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    theirs = K.column_full_ov_circuit(
        col["W_E_col"], col["W_V_col"], col["W_O_col"], col["W_U_col"]
    )
    _close(ours, _T(theirs))
    assert not np.allclose(_np(ours), _np(theirs))  # so the orientation really matters
    # ours[i, j]: attending to token i raises logit j;  theirs[j, i]: the same number
    i, j = 1, 9
    ours_ij = _np(ours)[..., i, j]
    _close(ours_ij, _np(theirs)[..., j, i])


# --- all heads at once ----------------------------------------------------------------------


@BACKENDS
def test_multi_head_results_stack_single_heads(backend):
    w = _weights(backend, heads=True)
    stack = torch.stack if backend == "torch" else np.stack
    checks = [
        (C.qk_circuit(w["W_Q"], w["W_K"]), lambda h: C.qk_circuit(w["W_Q"][h], w["W_K"][h])),
        (C.ov_circuit(w["W_V"], w["W_O"]), lambda h: C.ov_circuit(w["W_V"][h], w["W_O"][h])),
        (
            C.full_qk_circuit(w["W_E"], w["W_Q"], w["W_K"]),
            lambda h: C.full_qk_circuit(w["W_E"], w["W_Q"][h], w["W_K"][h]),
        ),
        (
            C.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"]),
            lambda h: C.full_ov_circuit(w["W_E"], w["W_V"][h], w["W_O"][h], w["W_U"]),
        ),
    ]
    for many, one in checks:
        assert many.shape[0] == N_HEADS
        _close(many, stack([one(h) for h in range(N_HEADS)]))
    ranks = np.linalg.matrix_rank(_np(C.qk_circuit(w["W_Q"], w["W_K"])))
    assert ranks.shape == (N_HEADS,) and (ranks <= D_HEAD).all()


# --- bad input ------------------------------------------------------------------------------


def test_column_functions_reject_row_shaped_weights():
    w = _weights("numpy")
    with pytest.raises(ValueError, match=r"W_E_col must have shape \[d_model, d_vocab\]"):
        # a row-convention W_E passed where the column one belongs: d_model mismatch
        K.column_full_qk_circuit(w["W_E"], w["W_Q"].T, w["W_K"].T)
    with pytest.raises(ValueError, match="W_K_col"):
        K.column_qk_circuit(w["W_Q"].T, w["W_K"])


def test_conversion_rejects_unknown_names_and_bad_ranks():
    with pytest.raises(TypeError, match="unknown weight name 'W_X'"):
        K.to_column_convention(W_X=np.zeros((2, 2)))
    with pytest.raises(TypeError, match="unknown weight name 'W_E'"):
        K.to_row_convention(W_E=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="W_E must be a matrix"):
        K.to_column_convention(W_E=np.zeros(3))
    with pytest.raises(ValueError, match="pass both for one head or both"):
        K.column_ov_circuit(np.zeros((2, 3, 4)), np.zeros((4, 3)))
