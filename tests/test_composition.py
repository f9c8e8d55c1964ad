"""Composition scores against a direct computation, the path expansion against the forward pass,
the K-composition circuit, ablations and OV edits on the shipped two-layer model."""

import numpy as np
import pytest
import torch

from toymodel import composition as comp
from toymodel.induction import (
    head_scores,
    induction_accuracy,
    load_induction_model,
    repeated_tokens,
)
from toymodel.model import AttentionOnlyTransformer, ModelConfig


@pytest.fixture(scope="module")
def model():
    return load_induction_model()


@pytest.fixture(scope="module")
def roles(model):
    """(previous-token head in layer 0, the other layer-0 head), found by the detector."""
    _, pattern = model.run_with_pattern(repeated_tokens(300))
    prev = int(head_scores(pattern).previous_token[0].argmax())
    return prev, 1 - prev


def fro(m):
    return np.linalg.norm(m, "fro")


def test_composition_scores_match_a_direct_computation():
    m = AttentionOnlyTransformer(ModelConfig(d_vocab=7, d_model=10, d_head=3, n_heads=3,
                                             n_ctx=5, seed=2, n_layers=2))
    w = {f"{n}{i}": getattr(m.blocks[i].attn, n).detach().double().numpy()
         for n in ("W_Q", "W_K", "W_V", "W_O") for i in (0, 1)}
    scores = comp.composition_scores(m)
    for a in range(3):
        ov_a = w["W_V0"][a] @ w["W_O0"][a]
        for b in range(3):
            qk_b = w["W_Q1"][b] @ w["W_K1"][b].T
            ov_b = w["W_V1"][b] @ w["W_O1"][b]
            want = {
                "q": fro(ov_a @ qk_b) / (fro(ov_a) * fro(qk_b)),
                "k": fro(qk_b @ ov_a.T) / (fro(ov_a) * fro(qk_b)),
                "v": fro(ov_a @ ov_b) / (fro(ov_a) * fro(ov_b)),
            }
            for kind in "qkv":
                assert scores[kind][a, b].item() == pytest.approx(want[kind], rel=1e-10)


def test_composition_score_known_values():
    eye = torch.eye(16, dtype=torch.float64)
    assert comp.composition_score(eye, eye).item() == pytest.approx(1 / 4)
    a = torch.zeros(4, 4, dtype=torch.float64)
    b = torch.zeros(4, 4, dtype=torch.float64)
    a[0, 0], b[1, 1] = 3.0, 2.0  # a writes where b never reads
    assert comp.composition_score(a, b).item() == 0
    assert comp.composition_score(a, a.T * 5).item() == pytest.approx(1)
    with pytest.raises(ValueError, match="cannot multiply"):
        comp.composition_score(torch.ones(3, 4), torch.ones(3, 4))


def test_baseline_is_seeded_and_scale_free():
    b = comp.composition_baseline(32, 4, n_samples=400, seed=1)
    assert b == comp.composition_baseline(32, 4, n_samples=400, seed=1)
    assert set(b) == {"q", "k", "v"}
    assert all(0.05 < v < 0.5 for v in b.values())
    # the three kinds have one distribution for Gaussian factors, so their means agree
    assert max(b.values()) - min(b.values()) < 0.02
    # for rotation-invariant random matrices E||AB||^2 = ||A||^2 ||B||^2 / d_model, whatever
    # their rank: the baseline sits near 1 / sqrt(d_model)
    for d_head in (4, 32):
        k = comp.composition_baseline(32, d_head, n_samples=400)["k"]
        assert k == pytest.approx(1 / np.sqrt(32), abs=0.01)


def test_rank1_baseline_is_exact_and_the_monte_carlo_estimate_agrees_within_its_spread():
    # known values of the mean |cos| between two random directions: d = 1, 2 (2/pi), 3 (1/2)
    assert comp.rank1_baseline(1) == pytest.approx(1.0, abs=1e-12)
    assert comp.rank1_baseline(2) == pytest.approx(2 / np.pi, abs=1e-12)
    assert comp.rank1_baseline(3) == pytest.approx(0.5, abs=1e-12)
    exact = comp.rank1_baseline(32)
    assert exact == pytest.approx(np.sqrt(2 / (np.pi * 32)), rel=0.01) and exact > np.sqrt(2 / (np.pi * 32))
    draws = comp.composition_baseline_samples(32, 1, n_samples=20000, seed=3)
    for kind, scores in draws.items():  # every kind is |cos| at rank 1
        assert scores.shape == (20000,) and scores.dtype == torch.float64
        se = scores.std().item() / np.sqrt(len(scores))
        assert abs(scores.mean().item() - exact) < 4 * se, kind
    with pytest.raises(ValueError, match="d_model"):
        comp.rank1_baseline(0)


def test_baseline_is_the_mean_of_its_samples():
    draws = comp.composition_baseline_samples(32, 4, n_samples=300, seed=2)
    means = comp.composition_baseline(32, 4, n_samples=300, seed=2)
    assert means == {kind: float(scores.mean()) for kind, scores in draws.items()}
    assert all(((s > 0) & (s < 1)).all() for s in draws.values())


def test_shipped_model_composes_through_keys(model, roles):
    prev, other = roles
    scores, base = comp.composition_scores(model), comp.composition_baseline(32, 4)
    assert torch.all(scores["k"][prev] > 2 * base["k"])  # prev-token head -> both induction heads
    assert torch.all(scores["q"] < base["q"]) and torch.all(scores["v"] < base["v"])
    for ind in range(2):
        circuit = comp.k_composition_circuit(model, prev, ind, tokens=range(48))
        assert comp.top1_accuracy(circuit) > 0.9
        assert comp.top1_accuracy(comp.k_composition_circuit(model, other, ind, range(48))) < 0.2


def test_k_composition_circuit_is_the_product(model):
    W_E = model.W_E.detach().double()
    a0, a1 = model.blocks[0].attn, model.blocks[1].attn
    qk = a1.W_Q[0].detach().double() @ a1.W_K[0].detach().double().T
    ov = a0.W_V[1].detach().double() @ a0.W_O[1].detach().double()
    want = W_E @ qk @ ov.T @ W_E.T
    torch.testing.assert_close(comp.k_composition_circuit(model, 1, 0), want)
    with pytest.raises(ValueError, match="prev_head must be an int"):
        comp.k_composition_circuit(model, 2, 0)


def test_top1_accuracy():
    assert comp.top1_accuracy(torch.eye(5)) == 1.0
    assert comp.top1_accuracy(torch.eye(5)[torch.tensor([1, 2, 3, 4, 0])]) == 0.0
    with pytest.raises(ValueError, match="square"):
        comp.top1_accuracy(torch.ones(2, 3))


@pytest.mark.parametrize("which", ["shipped", "random"])
def test_path_expansion_sums_to_the_forward_pass(model, which):
    if which == "random":
        model = AttentionOnlyTransformer(ModelConfig(d_vocab=49, d_model=16, d_head=4, n_heads=3,
                                                     n_ctx=24, seed=9, n_layers=2))
    t = repeated_tokens(40)
    pe = comp.path_expansion(model, t)
    with torch.no_grad():
        logits, pattern = model.run_with_pattern(t)
    assert pe.layer0.shape == pe.layer1.shape == (40, model.cfg.n_heads, 23, 49)
    assert pe.virtual.shape == (40, model.cfg.n_heads, model.cfg.n_heads, 23, 49)
    torch.testing.assert_close(pe.logits, logits, rtol=1e-5, atol=1e-4)
    # one virtual term by hand: head a of layer 0, then head b of layer 1
    x = model.W_E[t] + model.W_pos[:23]
    a, b = 1, 0
    with torch.no_grad():
        by_hand = (pattern[:, 1, b] @ pattern[:, 0, a] @ x @ model.blocks[0].attn.W_OV[a]
                   @ model.blocks[1].attn.W_OV[b] @ model.W_U)
    torch.testing.assert_close(pe.virtual[:, a, b], by_hand, rtol=1e-5, atol=1e-5)


def test_path_expansion_needs_two_layers():
    one = AttentionOnlyTransformer(ModelConfig(d_vocab=5, n_ctx=4))
    with pytest.raises(ValueError, match="2 layers"):
        comp.path_expansion(one, torch.zeros(1, 3, dtype=torch.long))


def test_ablating_the_previous_token_head_breaks_induction(model, roles):
    prev, other = roles
    ref = repeated_tokens(500, seed=1)
    base = induction_accuracy(model)
    for mode in ("zero", "mean"):
        mean = comp.mean_z(model, 0, ref)
        hurt = induction_accuracy(model, hooks={
            "blocks.0.attn.hook_z": comp.ablation_hook(prev, mode, mean)})
        kept = induction_accuracy(model, hooks={
            "blocks.0.attn.hook_z": comp.ablation_hook(other, mode, mean)})
        assert hurt < 0.2 < 0.9 < kept <= base + 0.01


def test_zero_ablation_equals_removing_w_o(model):
    t = repeated_tokens(8)
    edited = comp.scale_ov(model, 0, 1, 0.0)
    with torch.no_grad():
        hooked = model(t, hooks={"blocks.0.attn.hook_z": comp.ablation_hook(1)})
        torch.testing.assert_close(hooked, edited(t), rtol=0, atol=1e-5)


def test_mean_ablation_uses_the_reference_mean(model):
    ref = repeated_tokens(64, seed=3)
    mean = comp.mean_z(model, 0, ref)
    assert mean.shape == (2, 23, 4)
    _, cache = model.run_with_cache(ref[:5], hooks={
        "blocks.0.attn.hook_z": comp.ablation_hook(0, "mean", mean)})
    z = cache["blocks.0.attn.hook_z"]
    assert torch.equal(z[:, 0], mean[0].expand(5, -1, -1))
    with pytest.raises(ValueError, match="needs mean"):
        comp.ablation_hook(0, "mean")
    with pytest.raises(ValueError, match="mode must be"):
        comp.ablation_hook(0, "half")


def test_editing_ov_moves_the_induction_pattern_not_its_own(model, roles):
    prev, _ = roles
    t = repeated_tokens(300)
    with torch.no_grad():
        _, before = model.run_with_pattern(t)
        flipped = comp.scale_ov(model, 0, prev, -1.0)
        _, after = flipped.run_with_pattern(t)
    assert torch.equal(before[:, 0], after[:, 0])  # layer 0 reads only the embeddings
    s0, s1 = head_scores(before), head_scores(after)
    assert torch.all(s0.induction[1] > 0.9) and torch.all(s1.induction[1] < 0.05)
    assert induction_accuracy(flipped) < 0.05
    # the model passed in is unchanged
    assert torch.equal(model.blocks[0].attn.W_O, load_induction_model().blocks[0].attn.W_O)
