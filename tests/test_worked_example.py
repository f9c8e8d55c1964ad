"""The worked example against the numbers its text states (and the exact values to 1e-6)."""

import math

import numpy as np
import pytest
import torch

from toymodel import worked_example as we
from toymodel.worked_example import format_vector, rounded_output, run

EXACT_AB = math.exp(1.5) / (math.exp(-1) + math.exp(1.5))


@pytest.fixture(params=["numpy", "torch"])
def ex(request):
    return run(backend=request.param)


def np_(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def test_backend_kind_is_kept(ex):
    kind = torch.Tensor if isinstance(ex.x, torch.Tensor) else np.ndarray
    for name in ("q", "k", "v", "scores", "pattern", "output", "W_QK", "W_OV"):
        assert isinstance(getattr(ex, name), kind), name


def test_embeddings_and_weights(ex):
    np.testing.assert_array_equal(np_(ex.x), [[1, 0, 1, -1], [0, 1, -1, 1]])
    # W_K swaps 1<->2 and 3<->4; W_V swaps 2<->3; both act on rows from the right.
    np.testing.assert_array_equal(np_(ex.x[0] @ ex.W_K), [0, 1, -1, 1])
    np.testing.assert_array_equal(np_(ex.x[0] @ ex.W_V), [1, 1, 0, -1])
    np.testing.assert_array_equal(np_(ex.W_Q), np.eye(4))
    np.testing.assert_array_equal(np_(ex.W_O), np.eye(4))


def test_keys_and_values_of_a_and_b(ex):
    np.testing.assert_array_equal(np_(ex.k), [[0, 1, -1, 1], [1, 0, 1, -1]])
    np.testing.assert_array_equal(np_(ex.v), [[1, 1, 0, -1], [0, -1, 1, 1]])
    np.testing.assert_array_equal(np_(ex.q), np_(ex.x))


def test_raw_and_scaled_scores(ex):
    assert ex.score("A", "A") == -2 and ex.score("A", "B") == 3
    assert ex.score("B", "A") == 3 and ex.score("B", "B") == -2
    np.testing.assert_array_equal(np_(ex.scaled_scores), [[-1, 1.5], [1.5, -1]])


def test_pattern_split_to_stated_and_exact_precision(ex):
    assert round(ex.weight("A", "A"), 2) == 0.08
    assert round(ex.weight("A", "B"), 2) == 0.92
    assert round(ex.weight("A", "A"), 4) == 0.0759
    assert round(ex.weight("A", "B"), 4) == 0.9241
    assert abs(ex.weight("A", "B") - EXACT_AB) < 1e-6
    # B's side: it puts the same 0.92 on A.
    assert abs(ex.weight("B", "A") - EXACT_AB) < 1e-6
    np.testing.assert_allclose(np_(ex.pattern).sum(1), [1, 1], atol=1e-12)


def test_output_of_a_exact_and_rounded_first(ex):
    a, b = 1 - EXACT_AB, EXACT_AB
    exact = a * np.array([1, 1, 0, -1]) + b * np.array([0, -1, 1, 1])
    np.testing.assert_allclose(np_(ex.output[0]), exact, atol=1e-6)
    np.testing.assert_allclose(np_(ex.output[0]), [0.076, -0.848, 0.924, 0.848], atol=5e-4)
    assert format_vector(ex.output[0]) == "(0.076, -0.848, 0.924, 0.848)"
    # The seed's numbers come from rounding the weights before mixing the values.
    np.testing.assert_allclose(rounded_output(ex)[0], [0.08, -0.84, 0.92, 0.84], atol=1e-12)
    assert format_vector(rounded_output(ex)[0], 2) == "(0.08, -0.84, 0.92, 0.84)"


def test_qk_circuit_view(ex):
    W_QK = np_(ex.W_QK)
    np.testing.assert_array_equal(W_QK, np_(ex.W_K))  # W_QK = W_K ...
    np.testing.assert_array_equal(W_QK, W_QK.T)  # ... because W_K is a symmetric permutation
    assert sorted(W_QK.sum(0)) == [1, 1, 1, 1] and sorted(W_QK.sum(1)) == [1, 1, 1, 1]
    x = np_(ex.x)
    assert x[0] @ W_QK @ x[1] == 3  # e_AB in one bilinear form
    np.testing.assert_array_equal(np_(ex.scores_circuit), np_(ex.scores))


def test_ov_circuit_view(ex):
    np.testing.assert_array_equal(np_(ex.W_OV), np_(ex.W_V))
    np.testing.assert_array_equal(np_(ex.x[1] @ ex.W_OV), np_(ex.v[1]))  # x_B W_OV = v_B
    np.testing.assert_allclose(np_(ex.output_circuit), np_(ex.output), atol=1e-12)


def test_causal_mask_changes_only_a():
    plain, masked = run(), run(causal=True)
    np.testing.assert_array_equal(masked.pattern[0], [1, 0])
    np.testing.assert_allclose(masked.pattern[1], plain.pattern[1], atol=1e-15)
    np.testing.assert_array_equal(masked.output[0], [1, 1, 0, -1])  # A copies its own value
    assert masked.causal and not plain.causal


def test_module_weights_are_not_mutated_by_run():
    r = run()
    r.W_K[0, 0] = 99.0
    assert we.W_K[0, 0] == 0.0
    assert run().score("A", "B") == 3


def test_bad_arguments():
    with pytest.raises(ValueError, match="backend must be 'numpy' or 'torch'"):
        run(backend="jax")
    with pytest.raises(ValueError, match="token must be one of"):
        run().weight("A", "C")
    with pytest.raises(ValueError, match="decimals must be a non-negative int"):
        rounded_output(run(), decimals=-1)
    with pytest.raises(ValueError, match="1-d vector"):
        format_vector(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="causal must be True or False"):
        run(causal="yes")


def test_format_vector_drops_negative_zero():
    assert format_vector([-0.0001, 1.5, -2.0], 3) == "(0, 1.5, -2)"
