"""The two-layer measurements (toymodel.text.two_layer) on small models, and their errors."""

import numpy as np
import pytest
import torch

from toymodel.model import AttentionOnlyTransformer, ModelConfig
from toymodel.text import two_layer


@pytest.fixture(scope="module")
def tiny():
    return AttentionOnlyTransformer(
        ModelConfig(d_vocab=40, d_model=16, d_head=4, n_heads=3, n_ctx=32, n_layers=2, seed=1))


def test_repeated_random_is_eos_then_two_equal_copies_without_eos():
    x = two_layer.repeated_random(40, eos=7, half=10, n=5, seed=3)
    assert x.shape == (5, 21) and (x[:, 0] == 7).all() and (x[:, 1:] != 7).all()
    assert torch.equal(x[:, 1:11], x[:, 11:])
    assert torch.equal(x, two_layer.repeated_random(40, eos=7, half=10, n=5, seed=3))
    with pytest.raises(ValueError, match="eos"):
        two_layer.repeated_random(40, eos=40)
    with pytest.raises(ValueError, match="half"):
        two_layer.repeated_random(40, eos=0, half=1)


def test_measure_shapes_and_the_heads_it_picks(tiny):
    x = two_layer.repeated_random(40, eos=0, half=12, n=4)
    m = two_layer.measure(tiny, x)
    assert m.previous_token.shape == m.induction.shape == (2, 3)
    assert m.k_composition.shape == (3, 3) and m.loss.shape == (24,)
    assert m.prev_head == int(np.argmax(m.previous_token[0]))
    assert m.ind_head == int(np.argmax(m.induction[1]))
    first, second = two_layer.copy_losses(torch.as_tensor(m.loss), 12)
    assert (first, second) == pytest.approx((m.loss_first, m.loss_second), rel=1e-6)
    assert 0 < m.k_baseline < 1


def test_mean_ablation_of_a_layer0_head_changes_layer1_patterns(tiny):
    x = two_layer.repeated_random(40, eos=0, half=12, n=4)
    base = two_layer.measure(tiny, x)
    out = two_layer.ablated(tiny, x, layer=0, head=1)
    assert out["induction"].shape == (3,)
    assert not np.allclose(out["induction"], base.induction[1])
    with pytest.raises(ValueError, match="no head 0.3"):
        two_layer.ablated(tiny, x, layer=0, head=3)


def test_errors_name_what_was_expected(tiny):
    one = AttentionOnlyTransformer(ModelConfig(d_vocab=40, d_model=16, d_head=4, n_heads=3,
                                               n_ctx=32, n_layers=1))
    x = two_layer.repeated_random(40, eos=0, half=12, n=2)
    with pytest.raises(ValueError, match="two layers, got 1"):
        two_layer.measure(one, x)
    with pytest.raises(TypeError, match="AttentionOnlyTransformer"):
        two_layer.measure("model", x)
    with pytest.raises(ValueError, match=r"shape \[24\]"):
        two_layer.copy_losses(torch.zeros(10), 12)

