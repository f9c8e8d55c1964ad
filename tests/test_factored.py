"""toymodel.factored: every factored quantity equals the one of the materialised matrix."""

import numpy as np
import pytest
import torch

from toymodel.factored import FactoredMatrix

RNG = np.random.default_rng(1)


def pair(m=7, k=3, n=7, lead=()):
    return RNG.normal(size=lead + (m, k)), RNG.normal(size=lead + (k, n))


def sorted_eig(x):
    x = np.asarray(x)
    return x[np.lexsort((x.imag.round(8), x.real.round(8)))]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_products_transpose_and_shape(backend):
    A, B = pair(lead=(2,))
    conv = torch.tensor if backend == "torch" else np.asarray
    M = FactoredMatrix(conv(A), conv(B))
    assert M.shape == (2, 7, 7) and M.mdim == 3 and M.batch_shape == (2,)
    np.testing.assert_allclose(np.asarray(M.AB), A @ B, atol=1e-12)
    np.testing.assert_allclose(np.asarray(M.BA), B @ A, atol=1e-12)
    np.testing.assert_allclose(np.asarray(M.T.AB), np.swapaxes(A @ B, -1, -2), atol=1e-12)
    assert type(M.AB) is type(conv(A))


def test_eigenvalues_are_the_nonzero_eigenvalues_of_the_big_matrix():
    A, B = pair(m=9, k=3, n=9)
    M = FactoredMatrix(A, B)
    big = np.linalg.eigvals(A @ B)
    nonzero = big[np.abs(big) > 1e-8]
    assert len(nonzero) == 3
    np.testing.assert_allclose(sorted_eig(M.eigenvalues()), sorted_eig(nonzero), atol=1e-8)
    t = FactoredMatrix(torch.tensor(A), torch.tensor(B)).eigenvalues()
    assert t.dtype == torch.complex128
    np.testing.assert_allclose(sorted_eig(t.numpy()), sorted_eig(nonzero), atol=1e-8)
    t32 = FactoredMatrix(torch.tensor(A).float(), torch.tensor(B).float()).eigenvalues()
    assert t32.dtype == torch.complex64


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_svd_norm_trace_diagonal(backend):
    A, B = pair(m=8, k=3, n=6, lead=(2,))
    conv = torch.tensor if backend == "torch" else np.asarray
    M = FactoredMatrix(conv(A), conv(B))
    full = A @ B
    expect_sv = np.linalg.svd(full, compute_uv=False)[..., :3]
    np.testing.assert_allclose(np.asarray(M.svdvals()), expect_sv, atol=1e-10)
    np.testing.assert_allclose(np.asarray(M.norm()), np.linalg.norm(full, axis=(-2, -1)))
    # ||AB|| differs from ||BA||: the norm really is of the big matrix
    sq_a, sq_b = pair(m=6, k=3, n=6)
    assert not np.isclose(FactoredMatrix(sq_a, sq_b).norm(), np.linalg.norm(sq_b @ sq_a))
    S = FactoredMatrix(conv(A[0]), conv(RNG.normal(size=(3, 8))))
    full_sq = A[0] @ np.asarray(S.B)
    np.testing.assert_allclose(np.asarray(S.diagonal()), np.diagonal(full_sq))
    assert isinstance(S.trace(), float)
    np.testing.assert_allclose(S.trace(), np.trace(full_sq))
    assert isinstance(S.norm(), float)


def test_composition_keeps_smaller_inner_dimension():
    A, B = pair(m=6, k=2, n=5)
    C, D = pair(m=5, k=4, n=6)
    M, N = FactoredMatrix(A, B), FactoredMatrix(C, D)
    MN = M @ N
    assert MN.mdim == 2
    np.testing.assert_allclose(MN.AB, A @ B @ C @ D, atol=1e-10)
    NM = N @ M
    assert NM.mdim == 2
    np.testing.assert_allclose(NM.AB, C @ D @ A @ B, atol=1e-10)
    W = RNG.normal(size=(5, 3))
    np.testing.assert_allclose((M @ W).AB, A @ B @ W, atol=1e-10)
    V = RNG.normal(size=(4, 6))
    np.testing.assert_allclose((V @ M).AB, V @ A @ B, atol=1e-10)
    Mt = FactoredMatrix(torch.tensor(A), torch.tensor(B))
    np.testing.assert_allclose((torch.tensor(V) @ Mt).AB.numpy(), V @ A @ B, atol=1e-10)
    with pytest.raises(ValueError, match="cannot multiply"):
        M @ RNG.normal(size=(4, 3))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("largest", [True, False])
def test_rows_and_blocked_topk_match_full_matrix(backend, largest):
    A, B = pair(m=23, k=3, n=17, lead=(2,))
    conv = torch.tensor if backend == "torch" else np.asarray
    M = FactoredMatrix(conv(A), conv(B))
    full = A @ B
    np.testing.assert_allclose(np.asarray(M.rows([4, 0, 22])), full[:, [4, 0, 22]], atol=1e-12)
    values, idx = M.topk(4, block_rows=5, largest=largest)
    assert values.shape == idx.shape == (2, 23, 4)
    order = np.argsort(-full if largest else full, axis=-1)[..., :4]
    np.testing.assert_array_equal(np.asarray(idx), order)
    np.testing.assert_allclose(np.asarray(values), np.take_along_axis(full, order, -1))
    v_rows, i_rows = M.topk(2, rows=[3, 9], block_rows=1, largest=largest)
    np.testing.assert_array_equal(np.asarray(i_rows), order[:, [3, 9], :2])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="B must have shape"):
        FactoredMatrix(np.ones((4, 2)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        FactoredMatrix(np.full((4, 2), np.nan), np.ones((2, 4)))
    M = FactoredMatrix(np.ones((4, 2)), np.ones((2, 5)))
    with pytest.raises(ValueError, match="square"):
        M.eigenvalues()
    with pytest.raises(ValueError, match="row ids"):
        M.rows([7])
    with pytest.raises(ValueError, match="at most"):
        M.topk(6)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_row_argmax_is_diagonal_equals_dense(backend):
    conv = torch.tensor if backend == "torch" else np.asarray
    A = RNG.normal(size=(3, 40, 6))
    A[0] *= np.linspace(0.2, 3, 40)[:, None]  # rows of many norms: early "yes" by the bound
    B = np.swapaxes(A, -1, -2).copy()  # A A^T: own entry ||a_i||^2, often the row's maximum
    B[2] = RNG.normal(size=(6, 40))  # a random one: mostly "no"
    M = FactoredMatrix(conv(A), conv(B))
    full = A @ B
    expect = full.argmax(-1) == np.arange(40)
    assert expect[0].sum() > 5 and not expect[2].all()
    got = M.row_argmax_is_diagonal(block_rows=9, block_cols=5)
    assert got.shape == (3, 40)
    np.testing.assert_array_equal(np.asarray(got), expect)
    some = M.row_argmax_is_diagonal(rows=[39, 0, 17])
    np.testing.assert_array_equal(np.asarray(some), full[:, [39, 0, 17]].argmax(-1) == [39, 0, 17])
