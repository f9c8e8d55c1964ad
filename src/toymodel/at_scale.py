"""Every head of a language model at once: one loader for the book's language models and GPT-2,
and the per-head statistics that the at-scale lesson prints for all of them.

* :func:`shipped_language_models` the names of the book's language models whose weights ship
  (``toymodel/data/lm_<name>.safetensors``), in the order of :data:`toymodel.text.lm.CONFIGS`.
* :func:`load`  a :class:`Loaded` model, the same interface for a book model (``"one_layer"``,
  ``"two_layer"``) and for GPT-2 (``"gpt2"``, or a folder written by ``save_pretrained``): its
  weights in the dict layout of :func:`toymodel.hf.gpt2_weights` (LayerNorm folded for GPT-2;
  the book's models have none), a readable name for every token id, an ``encode`` for text, and a
  forward pass of the model's own code that records what enters and leaves each attention layer.
* :func:`check_weights` recomputes every attention layer from the mapped weights with
  :func:`toymodel.hf.attention_block` and returns the largest difference from the model's own.
* :func:`head_stats` copying score, OV top-1, the token QK diagonal z-score and where the
  positional QK circuit points, for every head, from the weights only.
* :func:`random_heads_baseline` copying scores of random ``W_V``, ``W_O`` on a model's own
  embedding and unembedding: what a head that learned nothing scores.

All matrices use the row convention (``x @ W``). ``transformers`` and ``tokenizers`` are imported
inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import circuits, hf

__all__ = [
    "shipped_language_models",
    "Loaded",
    "load",
    "check_weights",
    "head_stats",
    "random_heads_baseline",
]

GPT2 = "gpt2"


def shipped_language_models() -> list[str]:
    """Names of the book's language models whose weights ship with the package."""
    from .text import lm

    return [name for name in lm.CONFIGS if lm.lm_path(name).is_file()]


@dataclass
class Loaded:
    """A language model behind the one interface the lesson uses.

    Attributes:
        name: ``"one_layer"``, ``"two_layer"``, ``"gpt2"`` (or the folder GPT-2 came from).
        label: a sentence naming the model, for the page.
        model: the underlying module (``AttentionOnlyTransformer`` or ``GPT2LMHeadModel``).
        weights: float64 CPU tensors in the layout of :func:`toymodel.hf.gpt2_weights` (plus
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


def load(name: str, path=None, device: str = "cpu") -> Loaded:
    """Load a book language model (a name of :data:`toymodel.text.lm.CONFIGS`) or GPT-2.

    Args:
        name: ``"one_layer"``, ``"two_layer"`` (the book's shipped models) or ``"gpt2"``.
        path: for ``"gpt2"``, a local folder to load instead of downloading the real weights
            (for example one written by :func:`toymodel.hf.save_small_gpt2`); for a book model,
            a language-model file other than the shipped one.
        device: where the model runs (``"cpu"`` or ``"cuda"``).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if name == GPT2:
        return _load_gpt2(path, device)
    from .text import lm
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

    layers = f"{c.n_layers}-layer" if c.n_layers > 1 else "one-layer"
    label = (f"the book's {layers} language model {name!r} ({c.n_heads} heads per layer, "
             f"trained on Python source and documentation)")
    return Loaded(name, label, model, _float64_cpu(w32), w32, T.token_strings(tok),
                  lambda text: tok.encode(text).ids, record, False)


def _load_gpt2(path, device) -> Loaded:
    source = GPT2 if path is None else str(path)
    model = hf.load_gpt2(source, device=device)
    w32 = hf.gpt2_weights(model)
    if path is None:
        tokenizer = hf.load_tokenizer(GPT2)
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

    return Loaded(source, label, model, _float64_cpu(w32), w32, names, encode, record, True)


def check_weights(m: Loaded, tokens) -> float:
    """Largest difference, over layers, between the model's own attention patterns and layer
    outputs on ``tokens [batch, pos]`` and those recomputed from ``m.weights32`` by
    :func:`toymodel.hf.attention_block`."""
    seen = m.record(tokens)
    worst = 0.0
    for layer in range(m.n_layers):
        pattern, out = hf.attention_block(m.weights32, layer, seen["resid"][layer])
        worst = max(worst, float((pattern - seen["pattern"][layer]).abs().max()),
                    float((out - seen["out"][layer]).abs().max()))
    return worst


@torch.no_grad()
def head_stats(w: dict, top1_heads="all", n_pos: int | None = None) -> dict:
    """Weights-only statistics of every head, each ``[n_layers, n_heads]`` float64.

    Args:
        w: weights in the layout of :func:`toymodel.hf.gpt2_weights` (float64 recommended).
        top1_heads: ``"all"``, ``"extremes"`` (the heads with the highest and the lowest
            copying score) or a list of ``(layer, head)`` for which to compute OV top-1 (it
            costs ``d_vocab^2 d_head`` per head at worst; the others get NaN).
        n_pos: positions of the positional QK table (default: all of ``W_pos``).

    Returns:
        dict with ``"copying"`` (copying score), ``"ov_top1"`` (fraction of tokens whose own
        logit tops their row of the full OV circuit), ``"qk_self_z"`` (a token's QK score for
        itself minus the mean score, in standard deviations of the full QK circuit), and, from
        the positional QK table ``(W_pos W_Q + b_Q)(W_pos W_K + b_K)^T`` with sources up to the
        destination: ``"pos_self"`` and ``"pos_prev"``, the fractions of destinations ``p >= 1``
        whose best source is ``p`` itself and ``p - 1``.
    """
    for key in ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_U"):
        if key not in w:
            raise ValueError(f"weights need {key!r} (the layout of hf.gpt2_weights)")
    W_V = w["W_V"]
    if W_V.ndim != 4:
        raise ValueError(f"W_V must be [n_layers, n_heads, d_model, d_head], got {list(W_V.shape)}")
    L, H = W_V.shape[:2]
    E, U = w["W_E"], w["W_U"]
    out = {"copying": circuits.copying_score(E, W_V, w["W_O"], U)}
    if top1_heads == "all":
        out["ov_top1"] = circuits.ov_top1_accuracy(E, W_V, w["W_O"], U)
    else:
        if top1_heads == "extremes":
            order = torch.as_tensor(out["copying"]).flatten().argsort(descending=True)
            top1_heads = [divmod(int(order[0]), H), divmod(int(order[-1]), H)]
        elif isinstance(top1_heads, str):
            raise ValueError(f"top1_heads must be 'all', 'extremes' or a list of (layer, head), "
                             f"got {top1_heads!r}")
        top1 = torch.full((L, H), float("nan"), dtype=torch.float64)
        for layer, head in top1_heads:
            top1[layer, head] = circuits.ov_top1_accuracy(E, W_V[layer, head],
                                                          w["W_O"][layer, head], U)
        out["ov_top1"] = top1
    out["qk_self_z"] = circuits.qk_diagonal_stats(E, w["W_Q"], w["W_K"])["diag_zscore"]
    P = w["W_pos"] if n_pos is None else w["W_pos"][:n_pos]
    n = P.shape[0]
    future = torch.ones(n, n, dtype=torch.bool, device=P.device).triu(1)
    dest = torch.arange(1, n, device=P.device)
    pos_self = torch.empty(L, H, dtype=torch.float64)
    pos_prev = torch.empty(L, H, dtype=torch.float64)
    zeros = torch.zeros(L, H, W_V.shape[-1], dtype=P.dtype, device=P.device)
    b_Q, b_K = w.get("b_Q", zeros), w.get("b_K", zeros)
    for layer in range(L):
        q = P @ w["W_Q"][layer] + b_Q[layer][:, None]  # [n_heads, n, d_head]
        k = P @ w["W_K"][layer] + b_K[layer][:, None]
        best = (q @ k.transpose(-1, -2)).masked_fill(future, float("-inf"))[:, 1:].argmax(-1)
        pos_self[layer] = (best == dest).double().mean(-1).cpu()
        pos_prev[layer] = (best == dest - 1).double().mean(-1).cpu()
    out["pos_self"], out["pos_prev"] = pos_self, pos_prev
    return {k: torch.as_tensor(v, dtype=torch.float64).cpu() for k, v in out.items()}


@torch.no_grad()
def random_heads_baseline(w: dict, n: int = 200, seed: int = 0) -> torch.Tensor:
    """Copying scores ``[n]`` of heads with Gaussian random ``W_V``, ``W_O`` (of the model's
    ``d_model``, ``d_head``) on the model's own ``W_E`` and ``W_U``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    d_model, d_head = w["W_V"].shape[-2:]
    g = torch.Generator().manual_seed(seed)
    rand_V = torch.randn(n, d_model, d_head, generator=g, dtype=torch.float64)
    rand_O = torch.randn(n, d_head, d_model, generator=g, dtype=torch.float64)
    E, U = w["W_E"].double().cpu(), w["W_U"].double().cpu()
    return circuits.copying_score(E, rand_V, rand_O, U)
