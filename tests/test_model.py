"""The one-layer attention-only model: shapes, causality, closed form, determinism, bad input."""

import pytest
import torch

from toymodel.model import AttentionOnlyTransformer, ModelConfig

CFG = ModelConfig(d_vocab=11, d_model=8, d_head=4, n_heads=2, n_ctx=6, seed=3)


@pytest.fixture(scope="module")
def model():
    return AttentionOnlyTransformer(CFG)


def tokens(batch=3, pos=6, seed=0):
    return torch.randint(
        0, CFG.d_vocab, (batch, pos), generator=torch.Generator().manual_seed(seed)
    )


def test_parameter_names_and_shapes(model):
    shapes = {name: list(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "W_E": [11, 8],
        "W_pos": [6, 8],
        "blocks.0.attn.W_Q": [2, 8, 4],
        "blocks.0.attn.W_K": [2, 8, 4],
        "blocks.0.attn.W_V": [2, 8, 4],
        "blocks.0.attn.W_O": [2, 4, 8],
        "W_U": [8, 11],
    }
    # the one-layer shortcuts are the layer's own parameters (editable in place)
    for name in ("W_Q", "W_K", "W_V", "W_O"):
        assert getattr(model, name) is getattr(model.blocks[0].attn, name)


def test_output_shapes(model):
    t = tokens(batch=3, pos=5)
    logits, pattern = model.run_with_pattern(t)
    assert logits.shape == (3, 5, 11)
    assert pattern.shape == (3, 2, 5, 5)
    d = model.decompose(t)
    assert d.embed.shape == (3, 5, 8)
    assert d.heads.shape == (3, 2, 5, 8)
    assert d.head_logits.shape == (3, 2, 5, 11)


def test_pattern_is_causal_and_normalised(model):
    _, pattern = model.run_with_pattern(tokens())
    torch.testing.assert_close(pattern.sum(-1), torch.ones(3, 2, 6))
    assert torch.all(pattern.triu(1) == 0)
    below = torch.ones(6, 6, dtype=torch.bool).tril()
    assert torch.all(pattern[..., below] > 0)


def test_later_tokens_do_not_change_earlier_logits(model):
    t = tokens()
    changed = t.clone()
    changed[:, 4:] = (changed[:, 4:] + 5) % CFG.d_vocab
    a, b = model(t), model(changed)
    torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=0)
    assert (a[:, 4:] - b[:, 4:]).abs().max() > 1e-3


def test_closed_form_equals_forward(model):
    t = tokens(batch=8, seed=1)
    with torch.no_grad():
        logits, pattern = model.run_with_pattern(t)
        d = model.decompose(t)
        x = model.W_E[t] + model.W_pos
        W_OV = model.W_V @ model.W_O
        by_hand = x + sum(pattern[:, h] @ (x @ W_OV[h]) for h in range(CFG.n_heads))
    assert (d.pattern - pattern).abs().max() < 1e-6
    assert (d.residual - by_hand).abs().max() < 1e-5
    assert (d.logits - logits).abs().max() < 1e-5
    assert (d.direct_logits - x @ model.W_U).abs().max() < 1e-6


def test_same_seed_same_model_and_logits():
    a, b = AttentionOnlyTransformer(CFG), AttentionOnlyTransformer(CFG)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert torch.equal(a(tokens()), b(tokens()))
    other = AttentionOnlyTransformer(ModelConfig(**{**CFG.to_dict(), "seed": 4}))
    assert not torch.equal(a.W_E, other.W_E)


def test_score_hook_changes_pattern(model):
    def only_first(scores):
        s = torch.full_like(scores, float("-inf"))
        s[..., 0] = 0.0
        return s

    _, pattern = model.run_with_pattern(tokens(), score_hook=only_first)
    assert torch.all(pattern[..., 0] == 1)
    with pytest.raises(ValueError, match="score_hook must return a tensor of shape"):
        model(tokens(), score_hook=lambda s: s[..., :2])


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.zeros(2, 3), TypeError, "integer dtype"),
        ([[1, 2, 3]], TypeError, "torch tensor of integer ids"),
        (torch.zeros(3, dtype=torch.long), ValueError, r"shape \[batch, pos\]"),
        (torch.zeros(1, 2, 3, dtype=torch.long), ValueError, r"shape \[batch, pos\]"),
        (torch.tensor([[0, 11]]), ValueError, r"\[0, 11\)"),
        (torch.tensor([[-1, 2]]), ValueError, r"\[0, 11\)"),
        (torch.zeros(1, 7, dtype=torch.long), ValueError, "longer than n_ctx = 6"),
        (torch.zeros(0, 3, dtype=torch.long), ValueError, "non-empty"),
    ],
)
def test_bad_tokens_raise_clear_errors(model, bad, error, match):
    with pytest.raises(error, match=match):
        model(bad)


@pytest.mark.parametrize("field, value", [("d_vocab", 0), ("d_head", 2.5), ("n_heads", -1)])
def test_bad_config_raises(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a positive integer"):
        ModelConfig(**{**CFG.to_dict(), field: value})


def test_config_dict_round_trip_and_errors():
    assert ModelConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({**CFG.to_dict(), "d_mlp": 4})
    with pytest.raises(ValueError, match="bad model config"):
        ModelConfig.from_dict({"d_model": 4})
    with pytest.raises(TypeError, match="must be a ModelConfig"):
        AttentionOnlyTransformer(CFG.to_dict())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda(model):
    import copy

    gpu = copy.deepcopy(model).cuda()
    logits = gpu(tokens())  # CPU tokens follow the parameters
    assert logits.device.type == "cuda"
    torch.testing.assert_close(logits.cpu(), model(tokens()), atol=1e-4, rtol=1e-4)
