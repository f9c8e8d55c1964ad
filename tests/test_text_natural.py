"""Natural-text induction measures (toymodel.text.two_layer, issue 31) and shortformer positions."""

from __future__ import annotations

import pytest
import torch

from toymodel.model import AttentionOnlyTransformer, ModelConfig
from toymodel.text import two_layer


def test_continuation_sources_by_hand():
    #            0  1  2  3  4  5  6
    w = torch.tensor([[5, 6, 7, 5, 6, 9, 5]])
    src = two_layer.continuation_sources(w)[0]
    # position 3 (token 5): earlier 5 at 0, followed by 6 at position 1
    assert src[3].nonzero().flatten().tolist() == [1]
    # position 4 (token 6): earlier 6 at 1, followed by 7 at position 2
    assert src[4].nonzero().flatten().tolist() == [2]
    # position 6 (token 5): earlier 5 at 0 and 3, followed by positions 1 and 4
    assert src[6].nonzero().flatten().tolist() == [1, 4]
    # nothing recurs before position 3, and token 9 never recurs
    assert not src[:3].any() and not src[5].any()
    # the next token repeats what followed: at 3 (next 6 == w[1]) yes; at 4 (next 9 != 7) no
    tgt = two_layer.continuation_targets(w)[0]
    assert tgt.tolist() == [False, False, False, True, False, False]


def test_an_immediate_repeat_is_not_its_own_continuation():
    w = torch.tensor([[4, 4, 4]])
    src = two_layer.continuation_sources(w)[0]
    assert src[1].sum() == 0  # the only earlier 4 is just before: its follower is position 1 itself
    assert src[2].nonzero().flatten().tolist() == [1]


def test_icl_score_is_late_minus_early():
    losses = torch.zeros(3, 63)
    losses[:, 8:16] = 2.0
    losses[:, -8:] = 0.5
    assert two_layer.icl_score(losses) == pytest.approx(-1.5)


def test_continuation_attention_of_a_perfect_induction_pattern():
    cfg = ModelConfig(d_vocab=10, d_model=8, d_head=4, n_heads=1, n_ctx=7, n_layers=2)
    model = AttentionOnlyTransformer(cfg)
    w = torch.tensor([[5, 6, 7, 5, 6, 9, 5]])
    src = two_layer.continuation_sources(w)[0].float()
    target = torch.where(src.sum(-1, keepdim=True) > 0, src / src.sum(-1, keepdim=True).clamp_min(1),
                         torch.eye(7))

    def hook(scores):  # force layer 1's pattern onto the continuation sources
        return torch.where(target > 0, 0.0, -1e9).expand_as(scores)

    orig = model.run_with_pattern
    model.run_with_pattern = lambda t: orig(t, hooks={"blocks.1.attn.hook_attn_scores": hook})
    att = two_layer.continuation_attention(model, w)
    assert att.shape == (2, 1)
    assert att[1, 0] == pytest.approx(1.0, abs=1e-6)
    assert att[0, 0] < 0.9


def test_shortformer_positions_reach_queries_and_keys_only():
    base = ModelConfig(d_vocab=11, d_model=8, d_head=4, n_heads=2, n_ctx=5, n_layers=2)
    short = ModelConfig(**{**base.to_dict(), "positional": "shortformer"})
    assert "positional" not in base.to_dict() and short.to_dict()["positional"] == "shortformer"
    assert ModelConfig.from_dict(short.to_dict()) == short
    a, b = AttentionOnlyTransformer(base), AttentionOnlyTransformer(short)
    b.load_state_dict(a.state_dict())
    t = torch.tensor([[1, 2, 3, 4, 5]])
    assert torch.equal(b.embed(t), b.W_E[t])  # no positions in the stream
    # by hand: layer l's queries and keys read x + W_pos, its values read x
    x = b.W_E[t]
    for blk in b.blocks:
        at = blk.attn
        xp = x + b.W_pos
        q = torch.einsum("bpd,hde->bhpe", xp, at.W_Q)
        k = torch.einsum("bpd,hde->bhpe", xp, at.W_K)
        v = torch.einsum("bpd,hde->bhpe", x, at.W_V)
        s = (q @ k.transpose(-1, -2)).masked_fill(torch.ones(5, 5).triu(1).bool(), float("-inf"))
        z = torch.softmax(s / 2.0, -1) @ v
        x = x + torch.einsum("bhpe,hed->bpd", z, at.W_O)
    assert torch.allclose(b(t), x @ b.W_U, atol=1e-5)
    assert not torch.allclose(b(t), a(t), atol=1e-3)
    with pytest.raises(ValueError, match="positional"):
        ModelConfig(d_vocab=3, positional="rotary")
    one = AttentionOnlyTransformer(ModelConfig(d_vocab=5, n_ctx=3, positional="shortformer"))
    with pytest.raises(ValueError, match="standard positions"):
        one.decompose(torch.tensor([[1, 2]]))
