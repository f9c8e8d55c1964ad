"""GPT-2 from Hugging Face ``transformers``, with the book's names and row convention.

``transformers`` stores GPT-2's attention in ``Conv1D`` layers whose weight is ``[in, out]`` and
which compute ``y = x @ W + b``, so the book's row convention needs no transpose, only a split:

* ``c_attn.weight [d_model, 3 * d_model]`` holds ``W_Q``, ``W_K``, ``W_V`` side by side (in that
  order), each ``[d_model, n_heads * d_head]`` with head ``h`` in columns ``h*d_head:(h+1)*d_head``;
  ``c_attn.bias`` likewise holds ``b_Q``, ``b_K``, ``b_V``;
* ``c_proj.weight [d_model, d_model]`` is ``W_O`` with head ``h`` in rows ``h*d_head:(h+1)*d_head``;
* ``wte.weight [d_vocab, d_model]`` is ``W_E``, ``wpe.weight [n_ctx, d_model]`` is ``W_pos``, and
  ``lm_head`` is tied to ``wte``, so the unembedding is ``W_U = W_E.T`` ``[d_model, d_vocab]``.

Each attention layer reads ``LN(x) = (x - mean(x)) / std(x) * g + b`` rather than the residual
stream ``x`` itself. The gain ``g`` and bias ``b`` are affine, so they fold into the weights that
follow: ``LN(x) @ W_Q + b_Q = n(x) @ (g[:, None] * W_Q) + (b @ W_Q + b_Q)`` with ``n(x)`` the
centred and normalised stream. The same holds for ``W_K``, ``W_V`` and, with the final LayerNorm,
for ``W_U``. Folding changes no output of the model; it changes the matrices the circuits are
computed from. The centring and the division by ``std(x)`` stay: they depend on ``x`` and cannot
be folded into a fixed matrix.

Only the embeddings, the attention layers and the unembedding are mapped (the MLPs are not).
``transformers`` is imported inside the functions, never by ``import toymodel``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from . import circuits

__all__ = ["save_small_gpt2", "load_gpt2", "load_tokenizer", "gpt2_weights", "attention_block"]


def save_small_gpt2(path, *, seed: int = 0, n_layer: int = 2, n_head: int = 4, n_embd: int = 32,
                    vocab_size: int = 100, n_positions: int = 64, perturb: bool = True) -> Path:
    """Create a randomly initialised GPT-2 of a small configuration and save it to ``path``.

    Nothing is downloaded. A fresh GPT-2 has LayerNorm gains of 1 and biases of 0, which would
    make LayerNorm folding and the biases invisible; with ``perturb`` (default) the gains, the
    LayerNorm biases and the attention biases get seeded random values, so that both matter.

    Returns:
        ``Path(path)``, a folder that :func:`load_gpt2` (or ``from_pretrained``) reads offline.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size,
                        n_positions=n_positions, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config)
    if perturb:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ".ln_" in name or name.startswith("transformer.ln_f"):
                    base = 1.0 if name.endswith("weight") else 0.0
                    p.copy_(base + 0.2 * torch.randn(p.shape, generator=gen))
                elif name.endswith("attn.bias") or name.endswith("c_attn.bias") or (
                        ".attn.c_proj.bias" in name):
                    p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    path = Path(path)
    model.save_pretrained(path)
    return path


def load_gpt2(name_or_path="gpt2", device="cpu", local_files_only: bool | None = None):
    """Load a ``GPT2LMHeadModel`` in eval mode, with the eager attention (it returns patterns).

    Args:
        name_or_path: a Hugging Face model id (``"gpt2"``: downloads about 550 MB once) or a
            folder written by :func:`save_small_gpt2` or ``save_pretrained``.
        device: where to put the model.
        local_files_only: forbid downloads (default: True for an existing folder).
    """
    from transformers import GPT2LMHeadModel

    if local_files_only is None:
        local_files_only = Path(str(name_or_path)).is_dir()
    model = GPT2LMHeadModel.from_pretrained(name_or_path, local_files_only=local_files_only,
                                            attn_implementation="eager")
    return model.to(device).eval()


def load_tokenizer(name_or_path="gpt2"):
    """GPT-2's tokenizer from Hugging Face (downloads its vocabulary files once)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name_or_path)


@torch.no_grad()
def gpt2_weights(model, fold_ln: bool = True) -> dict:
    """The attention weights of a ``GPT2LMHeadModel`` with the book's names (row convention).

    Args:
        model: a ``transformers`` ``GPT2LMHeadModel`` (or its ``.transformer``).
        fold_ln: fold each LayerNorm's gain and bias into the weights that read it (``ln_1`` into
            ``W_Q, W_K, W_V`` and their biases; ``ln_f`` into ``W_U`` and ``b_U``).

    Returns:
        dict of float tensors (detached, on the model's device): ``W_E [d_vocab, d_model]``,
        ``W_pos [n_ctx, d_model]``, ``W_Q, W_K, W_V [n_layers, n_heads, d_model, d_head]``,
        ``b_Q, b_K, b_V [n_layers, n_heads, d_head]``, ``W_O [n_layers, n_heads, d_head,
        d_model]``, ``b_O [n_layers, d_model]``, ``W_U [d_model, d_vocab]``, ``b_U [d_vocab]``;
        without folding also ``ln1_w, ln1_b [n_layers, d_model]`` and ``lnf_w, lnf_b
        [d_model]``. Plus the float ``ln_eps``. The score scale of ``transformers`` is folded
        into ``W_Q`` and ``b_Q`` so that ``softmax(q k^T / sqrt(d_head))`` (the book's
        :func:`toymodel.circuits.attention_pattern`) is the model's pattern; for GPT-2's usual
        configuration that factor is 1.
    """
    tr = getattr(model, "transformer", model)
    cfg = tr.config
    n_heads, d_model = cfg.n_head, cfg.n_embd
    d_head = d_model // n_heads
    if getattr(cfg, "add_cross_attention", False):
        raise ValueError("cross-attention GPT-2 models are not supported")
    W = {k: [] for k in ("W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_O", "b_O", "ln1_w",
                         "ln1_b")}
    for layer, block in enumerate(tr.h):
        w_qkv = block.attn.c_attn.weight  # [d_model, 3 * d_model], Conv1D: [in, out]
        b_qkv = block.attn.c_attn.bias  # [3 * d_model]
        # Queries carry the score scale, so that softmax(q k^T / sqrt(d_head)) is the model's
        q_scale = math.sqrt(d_head) * _score_scale(cfg, layer, d_head)
        for i, name in enumerate("QKV"):
            w = w_qkv[:, i * d_model:(i + 1) * d_model].reshape(d_model, n_heads, d_head)
            b = b_qkv[i * d_model:(i + 1) * d_model].reshape(n_heads, d_head)
            scale = q_scale if name == "Q" else 1.0
            W["W_" + name].append(w.permute(1, 0, 2) * scale)
            W["b_" + name].append(b * scale)
        W["W_O"].append(block.attn.c_proj.weight.reshape(n_heads, d_head, d_model))
        W["b_O"].append(block.attn.c_proj.bias)
        W["ln1_w"].append(block.ln_1.weight)
        W["ln1_b"].append(block.ln_1.bias)
    out = {k: torch.stack(v).detach().clone() for k, v in W.items()}
    out["W_E"] = tr.wte.weight.detach().clone()
    out["W_pos"] = tr.wpe.weight.detach().clone()
    out["W_U"] = out["W_E"].T.clone()
    out["b_U"] = torch.zeros(out["W_E"].shape[0], dtype=out["W_E"].dtype, device=out["W_E"].device)
    out["lnf_w"] = tr.ln_f.weight.detach().clone()
    out["lnf_b"] = tr.ln_f.bias.detach().clone()
    out["ln_eps"] = float(cfg.layer_norm_epsilon)
    return fold_layer_norm(out) if fold_ln else out


def _score_scale(cfg, layer: int, d_head: int) -> float:
    """The factor ``transformers`` multiplies ``q . k`` by in this layer."""
    scale = 1 / math.sqrt(d_head) if cfg.scale_attn_weights else 1.0
    if cfg.scale_attn_by_inverse_layer_idx:
        scale /= layer + 1
    return scale


def fold_layer_norm(w: dict) -> dict:
    """Fold ``ln1_w, ln1_b`` into ``W_Q, W_K, W_V`` (and biases), ``lnf_w, lnf_b`` into ``W_U``.

    ``(n * g + b) @ W + c = n @ (g[:, None] * W) + (b @ W + c)``. Returns a new dict without the
    LayerNorm entries; the inputs are not modified.
    """
    out = {k: v for k, v in w.items() if not k.startswith("ln1_") and not k.startswith("lnf_")}
    g, b = w["ln1_w"], w["ln1_b"]  # [n_layers, d_model]
    for name in "QKV":
        W_x = w["W_" + name]  # [n_layers, n_heads, d_model, d_head]
        out["b_" + name] = w["b_" + name] + torch.einsum("ld,lhde->lhe", b, W_x)
        out["W_" + name] = W_x * g[:, None, :, None]
    out["b_U"] = w["b_U"] + w["lnf_b"] @ w["W_U"]
    out["W_U"] = w["W_U"] * w["lnf_w"][:, None]
    return out


@torch.no_grad()
def attention_block(w: dict, layer: int, resid_pre):
    """One attention layer of GPT-2 computed with the book's functions and the mapped weights.

    Args:
        w: the dict of :func:`gpt2_weights` (folded or not), or of
            :func:`toymodel.text.lm.lm_weights` (no ``ln_eps``: no LayerNorm is applied).
        layer: which layer.
        resid_pre: the residual stream entering the layer, ``[n_pos, d_model]`` or
            ``[batch, n_pos, d_model]``.

    Returns:
        ``(pattern, out)``: the causal attention pattern ``[(batch,) n_heads, n_dest, n_src]``
        and what the layer adds to the residual stream ``[(batch,) n_pos, d_model]``.
    """
    x = resid_pre
    if "ln_eps" in w:  # GPT-2: the layer reads LN(x); a model without LayerNorm reads x
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        x = (x - mean) / torch.sqrt(var + w["ln_eps"])
    if "ln1_w" in w:
        x = x * w["ln1_w"][layer] + w["ln1_b"][layer]
    x = x.unsqueeze(-3)  # [..., 1, n_pos, d_model]: broadcast over heads
    q = x @ w["W_Q"][layer] + w["b_Q"][layer][:, None]  # [..., n_heads, n_pos, d_head]
    k = x @ w["W_K"][layer] + w["b_K"][layer][:, None]
    v = x @ w["W_V"][layer] + w["b_V"][layer][:, None]
    d_head = q.shape[-1]
    pattern = circuits.attention_pattern(q @ k.transpose(-1, -2), d_head, causal=True)
    z = pattern @ v  # [..., n_heads, n_pos, d_head]
    out = (z @ w["W_O"][layer]).sum(-3) + w["b_O"][layer]
    return pattern, out
