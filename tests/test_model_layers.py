"""The model with n layers: one-layer checkpoints unchanged, stacking, hooks, two layers by hand.

The bit-identity check runs the shipped one-layer checkpoints through two code paths: the model
class, and ``one_layer_reference`` below, a copy of the one-layer forward pass exactly as it was
before the model grew more layers, fed straight from the tensors in the safetensors file.
"""

import math
from importlib import resources

import pytest
import torch
from safetensors.torch import load_file

import toymodel
from toymodel.model import AttentionOnlyTransformer, ModelConfig


def one_layer_reference(w: dict, tokens: torch.Tensor):
    """The pre-n-layer forward pass, op for op: ``(logits, pattern)``."""
    x = torch.nn.functional.embedding(tokens, w["W_E"]) + w["W_pos"][: tokens.shape[1]]
    q = torch.einsum("bpd,hde->bhpe", x, w["W_Q"])
    k = torch.einsum("bpd,hde->bhpe", x, w["W_K"])
    v = torch.einsum("bpd,hde->bhpe", x, w["W_V"])
    scores = q @ k.transpose(-1, -2)
    n = scores.shape[-1]
    future = torch.ones(n, n, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(future, float("-inf")) / math.sqrt(w["W_Q"].shape[-1])
    pattern = torch.softmax(scores, dim=-1)
    z = pattern @ v
    resid = x + torch.einsum("bhpe,hed->bpd", z, w["W_O"])
    return resid @ w["W_U"], pattern


@pytest.mark.parametrize("task", ["max", "first"])
def test_shipped_one_layer_checkpoints_are_bit_identical(task):
    with resources.as_file(resources.files("toymodel") / "data" / f"{task}.safetensors") as p:
        raw = load_file(str(p))
    model = toymodel.load_pretrained(task)
    assert model.cfg.n_layers == 1
    tokens = torch.randint(0, model.cfg.d_vocab, (256, model.cfg.n_ctx),
                           generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want_logits, want_pattern = one_layer_reference(raw, tokens)
        logits, pattern = model.run_with_pattern(tokens)
        cached, cache = model.run_with_cache(tokens)
    assert torch.equal(logits, want_logits)
    assert torch.equal(pattern, want_pattern)
    assert torch.equal(cached, want_logits)
    assert torch.equal(cache["blocks.0.attn.hook_pattern"], want_pattern)
    for name in ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_U"):
        assert torch.equal(getattr(model, name), raw[name]), name


def test_one_layer_initial_weights_do_not_depend_on_n_layers_field():
    """A config without ``n_layers`` (as in the old checkpoints) is a one-layer config."""
    d = ModelConfig(d_vocab=9, d_model=8, d_head=4, n_heads=2, n_ctx=5, seed=1).to_dict()
    old = {k: v for k, v in d.items() if k != "n_layers"}
    assert ModelConfig.from_dict(old).n_layers == 1
    a = AttentionOnlyTransformer(ModelConfig.from_dict(old))
    b = AttentionOnlyTransformer(ModelConfig(**{**d, "n_layers": 2}))
    # the first layer and the embeddings come first from the generator, so they agree
    for name in ("W_E", "W_pos"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    for name in ("W_Q", "W_K", "W_V", "W_O"):
        assert torch.equal(getattr(a, name), getattr(b, name)[0])


CFG2 = ModelConfig(d_vocab=13, d_model=12, d_head=4, n_heads=3, n_ctx=7, seed=5, n_layers=2)


@pytest.fixture(scope="module")
def model2():
    return AttentionOnlyTransformer(CFG2)


def toks(batch=4, pos=7, seed=0):
    return torch.randint(0, 13, (batch, pos), generator=torch.Generator().manual_seed(seed))


def test_two_layer_names_and_stacked_shapes(model2):
    shapes = {name: list(p.shape) for name, p in model2.named_parameters()}
    assert shapes["blocks.1.attn.W_Q"] == [3, 12, 4]
    assert shapes["blocks.1.attn.W_O"] == [3, 4, 12]
    assert len(shapes) == 3 + 2 * 4
    assert model2.W_Q.shape == (2, 3, 12, 4)
    assert model2.W_OV.shape == (2, 3, 12, 12)
    assert torch.equal(model2.W_QK[1], model2.blocks[1].attn.W_QK)
    _, pattern = model2.run_with_pattern(toks())
    assert pattern.shape == (4, 2, 3, 7, 7)


def test_two_layer_forward_by_hand(model2):
    """Layer 2 reads the residual stream that layer 1 wrote to."""
    t = toks(seed=1)
    with torch.no_grad():
        logits, cache = model2.run_with_cache(t)
        x = model2.W_E[t] + model2.W_pos
        for layer in range(2):
            a = model2.blocks[layer].attn
            scores = x.unsqueeze(1) @ a.W_QK @ x.unsqueeze(1).transpose(-1, -2)
            mask = torch.ones(7, 7, dtype=torch.bool).triu(1)
            pattern = torch.softmax(scores.masked_fill(mask, -math.inf) / 2.0, -1)
            torch.testing.assert_close(cache[f"blocks.{layer}.attn.hook_pattern"], pattern)
            x = x + (pattern @ (x.unsqueeze(1) @ a.W_OV)).sum(1)
        torch.testing.assert_close(logits, x @ model2.W_U)
        torch.testing.assert_close(cache["hook_resid_final"], x)


def test_two_layer_is_causal(model2):
    t = toks()
    changed = t.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 13
    a, b = model2(t), model2(changed)
    assert torch.equal(a[:, :5], b[:, :5])
    assert (a[:, 5:] - b[:, 5:]).abs().max() > 1e-4


def test_z_hook_zero_removes_a_head(model2):
    t = toks()

    def kill_head_1(z):
        z = z.clone()
        z[:, 1] = 0
        return z

    with torch.no_grad():
        ablated = model2(t, hooks={"blocks.0.attn.hook_z": kill_head_1})
        new = AttentionOnlyTransformer(CFG2)
        new.blocks[0].attn.W_O[1] = 0
        torch.testing.assert_close(ablated, new(t), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="unknown hook names"):
        model2(t, hooks={"blocks.2.attn.hook_z": kill_head_1})
    with pytest.raises(ValueError, match="z_hook must return a tensor of shape"):
        model2(t, hooks={"blocks.0.attn.hook_z": lambda z: z[:, :1]})


def test_decompose_needs_one_layer(model2):
    with pytest.raises(ValueError, match="one-layer model"):
        model2.decompose(toks())


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_n_layers(bad):
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        ModelConfig(d_vocab=5, n_layers=bad)


def test_resid_final_is_what_the_unembedding_reads(model2):
    x = toks(seed=5)
    with torch.no_grad():
        resid = model2.resid_final(x)
        _, cache = model2.run_with_cache(x)
        assert resid.shape == (*x.shape, model2.cfg.d_model)
        torch.testing.assert_close(resid, cache["hook_resid_final"], rtol=0, atol=0)
        torch.testing.assert_close(resid @ model2.W_U, model2(x))
