"""toymodel.hf: mapped GPT-2 weights reproduce transformers' own attention, layer by layer.

A small GPT-2 configuration is created and saved in a temporary folder: nothing is downloaded.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from toymodel import circuits, hf  # noqa: E402


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = hf.save_small_gpt2(tmp_path_factory.mktemp("gpt2") / "small", seed=0, n_layer=3,
                              n_head=4, n_embd=32, vocab_size=50, n_positions=16)
    return hf.load_gpt2(path)


def run_with_hooks(model, tokens):
    """Each block's input (the residual stream) and each attention layer's output and pattern."""
    seen = {"resid": [], "out": [], "pattern": []}
    hooks = []
    def before_block(mod, args, kwargs):
        seen["resid"].append(args[0] if args else kwargs["hidden_states"])

    def after_attn(mod, args, output):
        seen["out"].append(output[0])
        seen["pattern"].append(output[1])

    for block in model.transformer.h:
        hooks.append(block.register_forward_pre_hook(before_block, with_kwargs=True))
        hooks.append(block.attn.register_forward_hook(after_attn))
    with torch.no_grad():
        logits = model(tokens).logits
    for h in hooks:
        h.remove()
    return seen, logits


@pytest.mark.parametrize("fold_ln", [True, False])
def test_mapped_weights_reproduce_every_layer(small, fold_ln):
    tokens = torch.randint(0, 50, (2, 11), generator=torch.Generator().manual_seed(0))
    seen, _ = run_with_hooks(small, tokens)
    w = hf.gpt2_weights(small, fold_ln=fold_ln)
    assert w["W_Q"].shape == (3, 4, 32, 8) and w["W_O"].shape == (3, 4, 8, 32)
    assert ("ln1_w" in w) is not fold_ln
    for layer in range(3):
        pattern, out = hf.attention_block(w, layer, seen["resid"][layer])
        torch.testing.assert_close(pattern, seen["pattern"][layer], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(out, seen["out"][layer], atol=1e-5, rtol=1e-4)
        assert pattern[0, 0, 0, 1] == 0  # causal


def test_biases_and_layernorm_matter_in_the_small_model(small):
    """The saved model has non-trivial LayerNorm gains and biases, so the test above checks them."""
    w = hf.gpt2_weights(small, fold_ln=False)
    assert w["b_Q"].abs().max() > 0.01 and w["b_O"].abs().max() > 0.01
    assert (w["ln1_w"] - 1).abs().max() > 0.05
    folded = hf.gpt2_weights(small)
    assert not torch.allclose(folded["W_V"], w["W_V"])
    s_raw = circuits.copying_score(w["W_E"], w["W_V"], w["W_O"], w["W_U"])
    s_fold = circuits.copying_score(folded["W_E"], folded["W_V"], folded["W_O"], folded["W_U"])
    assert s_raw.shape == (3, 4) and not torch.allclose(s_raw, s_fold)


def test_unembedding_is_tied_and_final_layernorm_folds(small):
    tokens = torch.randint(0, 50, (1, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = small(tokens, output_hidden_states=True)
    final = out.hidden_states[-1]  # after ln_f in transformers' GPT-2
    w = hf.gpt2_weights(small)
    raw = hf.gpt2_weights(small, fold_ln=False)
    torch.testing.assert_close(raw["W_U"], small.lm_head.weight.T)
    resid = final  # ln_f output: recompute logits from it with the raw W_U
    torch.testing.assert_close(resid @ raw["W_U"], out.logits, atol=1e-5, rtol=1e-4)
    # with folding, the normalised (not yet scaled) stream times W_U plus b_U gives the logits
    pre = run_with_hooks_final(small, tokens)
    n = torch.nn.functional.layer_norm(pre, (pre.shape[-1],), eps=w["ln_eps"])
    torch.testing.assert_close(n @ w["W_U"] + w["b_U"], out.logits, atol=1e-5, rtol=1e-4)


def run_with_hooks_final(model, tokens):
    seen = []
    def before_ln_f(mod, args):
        seen.append(args[0])

    h = model.transformer.ln_f.register_forward_pre_hook(before_ln_f)
    with torch.no_grad():
        model(tokens)
    h.remove()
    return seen[0]


def test_import_toymodel_does_not_import_transformers():
    code = "import sys, toymodel, toymodel.circuits, toymodel.hf; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_numbers_are_seeded(tmp_path):
    a = hf.gpt2_weights(hf.load_gpt2(hf.save_small_gpt2(tmp_path / "a", seed=3)))
    b = hf.gpt2_weights(hf.load_gpt2(hf.save_small_gpt2(tmp_path / "b", seed=3)))
    for key in ("W_E", "W_Q", "b_V", "W_U"):
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
