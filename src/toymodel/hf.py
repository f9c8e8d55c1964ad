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

One interface for GPT-2 and the book's own language models (the at-scale lesson runs on both):
:func:`load_language_model` returns a :class:`LanguageModel` (weights in the layout of
:func:`gpt2_weights`, a name for every token, ``encode``, and a forward pass of the model's own
code that records what enters and leaves each attention layer); :func:`check_weights` recomputes
every layer from the mapped weights; :func:`shipped_language_models` names the book's models whose
weights ship. The book's models come from :mod:`toymodel.text.lm` (imported inside the functions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import circuits

__all__ = ["save_small_gpt2", "load_gpt2", "load_tokenizer", "gpt2_weights", "attention_block",
           "shipped_language_models", "LanguageModel", "load_language_model", "check_weights"]


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
            :func:`toymodel.text.lm.lm_weights` (no ``ln_eps``: no LayerNorm is applied; a
            ``W_pos_qk [n_ctx, d_model]`` entry, which a model with shortformer positions has, is
            added to the input of the queries and keys only).
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
    xqk = x + w["W_pos_qk"][: x.shape[-2]] if "W_pos_qk" in w else x  # shortformer positions
    x, xqk = x.unsqueeze(-3), xqk.unsqueeze(-3)  # [..., 1, n_pos, d_model]: broadcast over heads
    q = xqk @ w["W_Q"][layer] + w["b_Q"][layer][:, None]  # [..., n_heads, n_pos, d_head]
    k = xqk @ w["W_K"][layer] + w["b_K"][layer][:, None]
    v = x @ w["W_V"][layer] + w["b_V"][layer][:, None]
    d_head = q.shape[-1]
    pattern = circuits.attention_pattern(q @ k.transpose(-1, -2), d_head, causal=True)
    z = pattern @ v  # [..., n_heads, n_pos, d_head]
    out = (z @ w["W_O"][layer]).sum(-3) + w["b_O"][layer]
    return pattern, out


def shipped_language_models() -> list[str]:
    """Names of the book's language models whose weights ship with the package."""
    from .text import lm  # inside the functions: text imports the models, not hf

    return [name for name in lm.CONFIGS if lm.lm_path(name).is_file()]


@dataclass
class LanguageModel:
    """A language model behind the one interface the lesson uses.

    Attributes:
        name: ``"one_layer"``, ``"two_layer"``, ``"gpt2"`` (or the folder GPT-2 came from).
        label: a sentence naming the model, for the page.
        model: the underlying module (``AttentionOnlyTransformer`` or ``GPT2LMHeadModel``).
        weights: float64 CPU tensors in the layout of :func:`gpt2_weights` (plus
            the float ``ln_eps`` for GPT-2), LayerNorm folded.
        weights32: the same in the model's own precision and device (for the forward check).
        token_names: ``[d_vocab]`` readable strings, one per token id.
        encode: text -> list of token ids.
        record: token ids ``[batch, pos]`` -> ``{"resid": [...], "pattern": [...], "out":
            [...]}``, one entry per layer, from the model's own forward pass.
        is_gpt2: whether this is a ``transformers`` GPT-2.
    """

    name: str
    label: str
    model: object
    weights: dict
    weights32: dict
    token_names: list
    encode: Callable
    record: Callable
    is_gpt2: bool

    @property
    def n_layers(self) -> int:
        return int(self.weights["W_V"].shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.weights["W_V"].shape[1])

    @property
    def d_model(self) -> int:
        return int(self.weights["W_E"].shape[1])

    @property
    def d_head(self) -> int:
        return int(self.weights["W_V"].shape[-1])

    @property
    def d_vocab(self) -> int:
        return int(self.weights["W_E"].shape[0])

    @property
    def n_ctx(self) -> int:
        return int(self.weights["W_pos"].shape[0])

    def shape_line(self) -> str:
        return (f"{self.n_layers} layer{'s' if self.n_layers > 1 else ''} x {self.n_heads} heads, "
                f"d_model = {self.d_model}, d_head = {self.d_head}, d_vocab = {self.d_vocab}, "
                f"context {self.n_ctx}")


def _float64_cpu(w: dict) -> dict:
    return {k: (v.detach().double().cpu() if torch.is_tensor(v) else v) for k, v in w.items()}


def load_language_model(name: str, path=None, device: str = "cpu") -> LanguageModel:
    """Load a book language model (a name of :data:`toymodel.text.lm.CONFIGS`) or GPT-2.

    Args:
        name: ``"one_layer"``, ``"two_layer"`` (the book's shipped models) or ``"gpt2"``.
        path: for ``"gpt2"``, a local folder to load instead of downloading the real weights
            (for example one written by :func:`save_small_gpt2`); for a book model,
            a language-model file other than the shipped one.
        device: where the model runs (``"cpu"`` or ``"cuda"``).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if name == "gpt2":
        return _load_gpt2(path, device)
    from .text import lm  # inside the functions: text imports the models, not hf
    from .text import tokenizer as T

    if name not in lm.CONFIGS:
        raise ValueError(f"unknown model {name!r}; expected 'gpt2' or one of {sorted(lm.CONFIGS)}")
    model = lm.load_lm(name, path=path).to(device)
    tok = T.load_tokenizer()
    w32 = lm.lm_weights(model)
    c = model.cfg

    @torch.no_grad()
    def record(tokens):
        _, cache = model.run_with_cache(torch.as_tensor(tokens).to(device))
        resid = [cache[f"blocks.{i}.hook_resid_pre"] for i in range(c.n_layers)]
        after = resid[1:] + [cache["hook_resid_final"]]
        return {"resid": resid,
                "pattern": [cache[f"blocks.{i}.attn.hook_pattern"] for i in range(c.n_layers)],
                "out": [b - a for a, b in zip(resid, after, strict=True)]}

    layers = {1: "one-layer", 2: "two-layer"}.get(c.n_layers, f"{c.n_layers}-layer")
    mode = lm.CONFIGS[name].extra.get("repeat_mode") if name in lm.CONFIGS else None
    extra = lm.CONFIGS[name].extra if name in lm.CONFIGS else {}
    pasted = (", with random passages pasted twice into it" if mode == "random_tokens"
              else ", nothing pasted in" if "repeat_fraction" in extra else "")
    label = (f"the book's {layers} language model {name!r} ({c.n_heads} heads per layer, "
             f"trained on Python source and documentation{pasted})")
    return LanguageModel(name, label, model, _float64_cpu(w32), w32, T.token_strings(tok),
                  lambda text: tok.encode(text).ids, record, False)


def _load_gpt2(path, device) -> LanguageModel:
    source = "gpt2" if path is None else str(path)
    model = load_gpt2(source, device=device)
    w32 = gpt2_weights(model)
    if path is None:
        tokenizer = load_tokenizer("gpt2")
        names = [tokenizer.decode([i]) for i in range(model.config.vocab_size)]
        encode = tokenizer.encode
        label = "the real GPT-2 Small (gpt2 from Hugging Face)"
    else:  # a local folder, usually without a tokenizer: token ids stand for tokens
        names = [f"tok{i}" for i in range(model.config.vocab_size)]
        g = torch.Generator().manual_seed(1)

        def encode(text):
            return torch.randint(0, model.config.vocab_size, (len(text) // 4 + 1,),
                                 generator=g).tolist()

        label = f"a GPT-2 loaded from the folder {Path(source).name!r}"

    @torch.no_grad()
    def record(tokens):
        seen = {"resid": [], "out": [], "pattern": []}

        def before_block(module, args, kwargs):
            seen["resid"].append(args[0] if args else kwargs["hidden_states"])

        def after_attention(module, args, output):
            seen["out"].append(output[0])
            seen["pattern"].append(output[1])

        blocks = model.transformer.h
        hooks = [b.register_forward_pre_hook(before_block, with_kwargs=True) for b in blocks]
        hooks += [b.attn.register_forward_hook(after_attention) for b in blocks]
        try:
            model(torch.as_tensor(tokens).to(device))
        finally:
            for h in hooks:
                h.remove()
        return seen

    return LanguageModel(source, label, model, _float64_cpu(w32), w32, names, encode, record, True)


def check_weights(m: LanguageModel, tokens) -> float:
    """Largest difference, over layers, between the model's own attention patterns and layer
    outputs on ``tokens [batch, pos]`` and those recomputed from ``m.weights32`` by
    :func:`attention_block`."""
    seen = m.record(tokens)
    worst = 0.0
    for layer in range(m.n_layers):
        pattern, out = attention_block(m.weights32, layer, seen["resid"][layer])
        worst = max(worst, float((pattern - seen["pattern"][layer]).abs().max()),
                    float((out - seen["out"][layer]).abs().max()))
    return worst
