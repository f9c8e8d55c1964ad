"""Circuit statistics for every head of every layer at once, equal to the dense matrices."""

import sys

import numpy as np
import pytest
import torch

from toymodel import circuits as C
from toymodel._validate import to_array

RNG = np.random.default_rng(3)
L, H, D_MODEL, D_HEAD, D_VOCAB = 2, 3, 8, 2, 30


def model(dtype=np.float64):
    return {
        "W_E": RNG.normal(size=(D_VOCAB, D_MODEL)).astype(dtype),
        "W_Q": RNG.normal(size=(L, H, D_MODEL, D_HEAD)).astype(dtype),
        "W_K": RNG.normal(size=(L, H, D_MODEL, D_HEAD)).astype(dtype),
        "W_V": RNG.normal(size=(L, H, D_MODEL, D_HEAD)).astype(dtype),
        "W_O": RNG.normal(size=(L, H, D_HEAD, D_MODEL)).astype(dtype),
        "W_U": RNG.normal(size=(D_MODEL, D_VOCAB)).astype(dtype),
    }


def dense_copying(full):
    eig = np.linalg.eigvals(full)
    return eig.sum().real / np.abs(eig).sum()


def test_copying_score_every_layer_and_head_equals_dense():
    w = model()
    full = C.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"])  # [L, H, V, V]
    assert full.shape == (L, H, D_VOCAB, D_VOCAB)
    scores = C.copying_score(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    assert scores.shape == (L, H) and scores.dtype == np.float64
    for layer in range(L):
        for h in range(H):
            assert np.isclose(scores[layer, h], dense_copying(full[layer, h]), atol=1e-8)
        one_layer = C.copying_score(w["W_E"], w["W_V"][layer], w["W_O"][layer], w["W_U"])
        np.testing.assert_allclose(one_layer, scores[layer], atol=1e-12)
    per_layer = C.copying_score(w["W_E"], w["W_V"], w["W_O"], w["W_U"], combine_heads=True)
    assert per_layer.shape == (L,)
    for layer in range(L):
        assert np.isclose(per_layer[layer], dense_copying(full[layer].sum(0)), atol=1e-8)


def test_precision_is_kept():
    w64 = {k: torch.tensor(v) for k, v in model().items()}
    s64 = C.copying_score(w64["W_E"], w64["W_V"], w64["W_O"], w64["W_U"])
    assert s64.dtype == torch.float64
    w32 = {k: v.float() for k, v in w64.items()}
    s32 = C.copying_score(w32["W_E"], w32["W_V"], w32["W_O"], w32["W_U"])
    assert s32.dtype == torch.float32
    torch.testing.assert_close(s32, s64.float(), atol=1e-4, rtol=1e-4)
    top = C.ov_top1_accuracy(w64["W_E"], w64["W_V"], w64["W_O"], w64["W_U"])
    assert top.dtype == torch.float64 and top.shape == (L, H)
    n32 = model(np.float32)
    assert C.copying_score(n32["W_E"], n32["W_V"], n32["W_O"], n32["W_U"]).dtype == np.float32


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_ov_top1_every_head_equals_dense_argmax(backend):
    w = model()
    # make some heads copy, so that hits and misses both occur
    w["W_O"][0, 0] = np.swapaxes(w["W_V"][0, 0], -1, -2)
    w["W_U"] = w["W_E"].T.copy()
    full = np.asarray(C.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"]))
    expect = (full.argmax(-1) == np.arange(D_VOCAB)).mean(-1)
    assert expect.max() > 0 and expect.min() < 1  # hits and misses both occur
    conv = (lambda d: {k: torch.tensor(v) for k, v in d.items()}) if backend == "torch" else dict
    t = conv(w)
    got = C.ov_top1_accuracy(t["W_E"], t["W_V"], t["W_O"], t["W_U"], chunk_size=7)
    np.testing.assert_allclose(np.asarray(got), expect)
    tokens = [3, 7, 8, 20, 29]
    sub = full[..., tokens, :][..., tokens]
    expect_sub = (sub.argmax(-1) == np.arange(5)).mean(-1)
    got_sub = C.ov_top1_accuracy(t["W_E"], t["W_V"], t["W_O"], t["W_U"], tokens=tokens)
    np.testing.assert_allclose(np.asarray(got_sub), expect_sub)
    combined = C.ov_top1_accuracy(t["W_E"], t["W_V"], t["W_O"], t["W_U"], combine_heads=True)
    summed = full.sum(1)
    np.testing.assert_allclose(np.asarray(combined),
                               (summed.argmax(-1) == np.arange(D_VOCAB)).mean(-1))


def test_ov_top1_ties_follow_argmax():
    # integer weights make exact ties: argmax picks the lowest index
    W_E = np.eye(4)
    W_U = np.eye(4)
    W_V = np.eye(4)
    W_O = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0.0]])
    full = W_E @ W_V @ W_O @ W_U
    expect = (full.argmax(-1) == np.arange(4)).mean()  # row 1 ties with column 0; row 3 all 0
    assert C.ov_top1_accuracy(W_E, W_V, W_O, W_U) == expect == 0.5


def test_qk_diagonal_stats_equal_dense():
    w = model()
    w["W_K"][1, 2] = w["W_Q"][1, 2]  # a head that prefers its own token
    full = C.full_qk_circuit(w["W_E"], w["W_Q"], w["W_K"])
    stats = C.qk_diagonal_stats(w["W_E"], w["W_Q"], w["W_K"], top1=True, chunk_size=4)
    diag = np.diagonal(full, axis1=-2, axis2=-1)
    np.testing.assert_allclose(stats["diag_mean"], diag.mean(-1))
    np.testing.assert_allclose(stats["mean"], full.mean((-1, -2)))
    np.testing.assert_allclose(stats["std"], full.std((-1, -2)))
    np.testing.assert_allclose(stats["diag_zscore"],
                               (diag.mean(-1) - full.mean((-1, -2))) / full.std((-1, -2)))
    np.testing.assert_allclose(stats["top1"], (full.argmax(-1) == np.arange(D_VOCAB)).mean(-1))
    assert stats["diag_zscore"][1, 2] == stats["diag_zscore"].max()
    tokens = [0, 5, 6, 11]
    sub = full[..., tokens, :][..., tokens]
    one = C.qk_diagonal_stats(w["W_E"], w["W_Q"][0, 1], w["W_K"][0, 1], tokens=tokens)
    assert isinstance(one["diag_mean"], float) and "top1" not in one
    assert np.isclose(one["diag_mean"], np.diagonal(sub[0, 1]).mean())
    assert np.isclose(one["std"], sub[0, 1].std())


def test_progress_bar_optional(monkeypatch):
    w = model()
    with_bar = C.ov_top1_accuracy(w["W_E"], w["W_V"], w["W_O"], w["W_U"], progress=True)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # as if tqdm were not installed
    without = C.ov_top1_accuracy(w["W_E"], w["W_V"], w["W_O"], w["W_U"], progress=True)
    np.testing.assert_array_equal(with_bar, without)


def test_batched_input_checks():
    w = model()
    with pytest.raises(ValueError, match="W_O must have shape"):
        C.copying_score(w["W_E"], w["W_V"], w["W_O"][:, :2], w["W_U"])
    with pytest.raises(ValueError, match="both for one head"):
        C.copying_score(w["W_E"], w["W_V"], w["W_O"][0], w["W_U"])
    big = RNG.normal(size=(5000, D_MODEL))
    big[4321, 3] = np.nan
    with pytest.raises(ValueError, match="W_E contains NaN"):
        C.copying_score(big, w["W_V"], w["W_O"], big.T.copy())
    big_t = torch.tensor(big)
    with pytest.raises(ValueError, match="W_E contains NaN"):
        C.copying_score(big_t, *(torch.tensor(w[k]) for k in ("W_V", "W_O")), big_t.T)
    # a NaN whose unembedding column is zero still reaches W_U @ W_E (0 * NaN is NaN)
    W_U = big.T.copy()
    W_U[:, 4321] = 0
    W_E = np.nan_to_num(big)
    W_E[4321, 0] = np.nan
    for conv in (np.asarray, torch.tensor):
        with pytest.raises(ValueError, match="W_E contains NaN"):
            C.copying_score(conv(W_E), conv(w["W_V"]), conv(w["W_O"]), conv(W_U))
    W_U[2, 7] = np.inf
    with pytest.raises(ValueError, match="W_U contains NaN"):
        C.copying_score(np.nan_to_num(big), w["W_V"], w["W_O"], W_U)
    # huge but finite entries overflow a float32 sum: still accepted
    huge = np.full((5000, 2), 3e38, dtype=np.float32)
    assert to_array(huge, "x") is huge
    assert to_array(torch.tensor(huge), "x").shape == (5000, 2)
    with pytest.raises(ValueError, match=r"\[n_heads, d_model, d_head\] \(leading dimensions"):
        C.qk_circuit(np.ones((1, 2, 3, 4, 2)), np.ones((1, 2, 3, 4, 2)))


def test_column_convention_accepts_layers_and_heads():
    from toymodel import conventions as K

    w = model()
    col = K.to_column_convention(W_V=w["W_V"], W_O=w["W_O"], W_E=w["W_E"], W_U=w["W_U"])
    assert col["W_V_col"].shape == (L, H, D_HEAD, D_MODEL)
    paper = K.column_full_ov_circuit(col["W_E_col"], col["W_V_col"], col["W_O_col"], col["W_U_col"])
    ours = C.full_ov_circuit(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    np.testing.assert_allclose(paper, np.swapaxes(ours, -1, -2), atol=1e-9)
