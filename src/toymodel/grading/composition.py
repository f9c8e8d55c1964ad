"""Checks of assignment 4 (composition): patterns of a two-layer model, previous-token scores,
composition scores, K-composition, a zero-ablation hook and accuracies with a head ablated.

Shared helpers (messages, array comparison, small models) live in :mod:`toymodel.grading.core`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .core import (
    _fail,
    _softmax,
    as_array,
    check_array,
    check_close,
)
from .head_by_hand import check_pattern

__all__ = [
    "two_layer_scores",
    "check_head_pattern",
    "previous_token_score_of",
    "check_previous_token_scores",
    "composition_score_of",
    "check_composition_score",
    "check_k_composition",
    "check_zero_head",
    "check_induction_accuracy",
    "check_ablated_accuracy",
    "offset_score_of",
    "layer_offset_scores",
    "check_induction_evidence",
]


def two_layer_scores(model, resid, layer: int, head: int) -> np.ndarray:
    """Raw scores ``(resid W_Q) (resid W_K)^T`` of one head ``[batch, dest, src]`` (float64)."""
    x = as_array(resid, "resid")
    attn = model.blocks[layer].attn
    W_Q = attn.W_Q[head].detach().to("cpu", torch.float64).numpy()
    W_K = attn.W_K[head].detach().to("cpu", torch.float64).numpy()
    return (x @ W_Q) @ np.swapaxes(x @ W_K, -1, -2)


def check_head_pattern(pattern, model, resid, layer: int, head: int, name: str = "pattern"):
    """One head's pattern ``[batch, dest, src]`` from the stream ``resid [batch, pos, d_model]``
    that its layer reads: scaled, causally masked, softmaxed rows (see :func:`check_pattern`)."""
    scores = two_layer_scores(model, resid, layer, head)
    check_pattern(pattern, scores, model.cfg.d_head, name=name)


def previous_token_score_of(pattern) -> float:
    """Mean weight of destination ``p`` on source ``p - 1`` over ``p >= 1`` and the batch."""
    pat = as_array(pattern, "pattern")
    p = np.arange(1, pat.shape[-1])
    return float(pat[..., p, p - 1].mean())


def check_previous_token_scores(scores, model, tokens, layer: int = 0, name: str = "prev_scores"):
    """Previous-token score ``[n_heads]`` of every head of ``layer`` on ``tokens``, from the
    model's own (right) patterns; recognises scores of unmasked or unsoftmaxed patterns and
    the wrong diagonal."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    resid = cache[f"blocks.{layer}.hook_resid_pre"].detach().to("cpu", torch.float64).numpy()
    pats = cache[f"blocks.{layer}.attn.hook_pattern"].detach().to("cpu", torch.float64).numpy()
    heads = range(model.cfg.n_heads)
    raw = [two_layer_scores(model, resid, layer, h) for h in heads]
    d = model.cfg.d_head

    def of(f):
        return np.array([f(r, h) for h, r in enumerate(raw)])

    n = pats.shape[-1]
    diag = np.arange(n)
    check_array(scores, [previous_token_score_of(pats[:, h]) for h in heads], name, mistakes=[
        ("comes from a pattern without the causal mask: fix head_pattern (question 1) first.",
         of(lambda r, h: previous_token_score_of(_softmax(r / math.sqrt(d))))),
        ("comes from the raw scores, not a pattern: scale, mask and softmax them first.",
         of(lambda r, h: previous_token_score_of(r))),
        ("reads the diagonal (source p, the token itself), not source p - 1.",
         np.array([pats[:, h][..., diag, diag].mean() for h in heads])),
        ("reads source p + 1, above the diagonal; the previous token is p - 1.",
         np.array([pats[:, h][..., diag[:-1], diag[:-1] + 1].mean() for h in heads])),
        ("averages over every destination including position 0, which has no previous token: "
         "use p = 1 .. n - 1.",
         np.array([previous_token_score_of(pats[:, h]) * (n - 1) / n for h in heads])),
    ])


def composition_score_of(W_A, W_B) -> float:
    """``||W_A W_B||_F / (||W_A||_F ||W_B||_F)`` of two matrices (float64)."""
    A, B = as_array(W_A, "W_A"), as_array(W_B, "W_B")
    return float(np.linalg.norm(A @ B) / (np.linalg.norm(A) * np.linalg.norm(B)))


def check_composition_score(value, W_A, W_B, name: str = "score"):
    """The composition score of the product ``W_A W_B`` (in this order)."""
    A, B = as_array(W_A, "W_A"), as_array(W_B, "W_B")
    wrong = [("the product is in the wrong order: W_B W_A instead of W_A W_B.",
              composition_score_of(B, A))] if B.shape[1] == A.shape[0] else []
    check_close(value, composition_score_of(A, B), name, wrong=wrong + [
        ("divide ||W_A W_B||_F by the product of the two norms ||W_A||_F ||W_B||_F.",
         float(np.linalg.norm(A @ B))),
        ("use the Frobenius norm (the root of the sum of squared entries), not the largest "
         "singular value.",
         float(np.linalg.norm(A @ B, 2) / (np.linalg.norm(A, 2) * np.linalg.norm(B, 2)))),
    ])


def check_k_composition(k_comp, model, name: str = "k_comp"):
    """K-composition scores ``[head_a of layer 0, head_b of layer 1]``: the score of
    ``W_QK^{1,b} (W_OV^{0,a})^T``. Recognises the reversed product and the Q- and V-scores."""
    from ..composition import composition_scores

    def mats(layer, name_):
        a = model.blocks[layer].attn
        f = {k: getattr(a, k).detach().to("cpu", torch.float64).numpy()
             for k in ("W_Q", "W_K", "W_V", "W_O")}
        return f["W_Q"] @ np.swapaxes(f["W_K"], -1, -2) if name_ == "QK" else f["W_V"] @ f["W_O"]

    ov0, qk1 = mats(0, "OV"), mats(1, "QK")
    heads = range(model.cfg.n_heads)
    reversed_ = np.array([[composition_score_of(ov0[a].T, qk1[b]) for b in heads] for a in heads])
    scores = {k: v.numpy() for k, v in composition_scores(model).items()}
    check_array(k_comp, scores["k"], name, mistakes=[
        ("multiplies in the wrong order: (W_OV^A)^T W_QK^B instead of W_QK^B (W_OV^A)^T (the "
         "layer-0 write enters the key side, on the right).", reversed_),
        ("holds the Q-composition scores (W_OV^A W_QK^B): the query side, not the key side.",
         scores["q"]),
        ("holds the V-composition scores (W_OV^A W_OV^B): the value side, not the key side.",
         scores["v"]),
        ("is transposed: rows are the layer-0 heads (a), columns the layer-1 heads (b).",
         scores["k"].T),
    ])


def check_zero_head(hook, head: int, seed: int = 0):
    """``hook`` (from ``zero_head(head)``) must zero ``z[:, head]`` and keep the other heads."""
    if not callable(hook):
        _fail(f"zero_head({head}) should return a function z -> z, got {type(hook).__name__}.")
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(3, max(3, head + 2), 5, 4, generator=g)
    expected = z.clone()
    expected[:, head] = 0
    out = hook(z.clone())
    if out is None:
        _fail(f"the function zero_head({head}) returns None: `return` the edited z.")
    check_array(out, expected, f"zero_head({head})(z)", mistakes=[
        ("zeroes the wrong axis: z is [batch, head, pos, d_head], so zero z[:, head].",
         z.clone().index_fill_(0, torch.tensor([min(head, 2)]), 0)),
        ("zeroes every head: only head `head` should go.", torch.zeros_like(z)),
        ("leaves z unchanged.", z),
    ])


def check_induction_accuracy(value, model, name: str = "clean_accuracy"):
    """Induction accuracy of ``model`` on the default sequences of ``induction_accuracy``."""
    from ..induction import induction_accuracy

    check_close(value, induction_accuracy(model), name, rtol=1e-6, atol=1e-9)


def check_ablated_accuracy(value, model, head: int, layer: int = 0,
                           name: str = "ablated_accuracy"):
    """Induction accuracy of ``model`` with ``head`` of ``layer`` zero-ablated."""
    from ..composition import ablation_hook
    from ..induction import induction_accuracy

    def acc(h, layer_):
        return induction_accuracy(model, hooks={f"blocks.{layer_}.attn.hook_z": ablation_hook(h)})

    wrong = [("is the accuracy without any ablation: pass the hook to the forward pass.",
              induction_accuracy(model))]
    wrong += [(f"ablates head {h}, not the previous-token head {head}.", acc(h, layer))
              for h in range(model.cfg.n_heads) if h != head]
    wrong += [(f"ablates head {head} of layer {1 - layer}, not of layer {layer}.",
               acc(head, 1 - layer))] if model.cfg.n_layers == 2 else []
    check_close(value, acc(head, layer), name, rtol=1e-6, atol=1e-9, wrong=wrong)


# --------------------------------------------------------------------------------------------
# Single values and functions
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The open-ended question: which layer-1 heads are induction heads?
# --------------------------------------------------------------------------------------------


def offset_score_of(pattern, shift: int = 1) -> float:
    """Mean weight of the second-copy positions ``q = L + 1 .. 2 L`` of ``BOS, r, r`` patterns
    ``[batch, dest, src]`` on source ``q - L + shift`` (``shift=1``: the induction score, the
    token after the first copy; ``0``: the duplicate token)."""
    pat = as_array(pattern, "pattern")
    n = pat.shape[-1]
    if n % 2 == 0 or n < 3 or pat.shape[-2] != n:
        _fail(f"the pattern should be square over 1 + 2 L positions, got shape {pat.shape}.")
    L = (n - 1) // 2
    q = np.arange(L + 1, 2 * L + 1)
    return float(pat[..., q, q - L + shift].mean())


def layer_offset_scores(model, tokens, layer: int = 1, shift: int = 1,
                        everywhere: bool = False) -> np.ndarray:
    """:func:`offset_score_of` of every head of ``layer`` on ``tokens`` ``[n_heads]``
    (``everywhere``: averaged over every destination with that source, a known slip)."""
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.as_tensor(tokens))
    pats = cache[f"blocks.{layer}.attn.hook_pattern"].detach().to("cpu", torch.float64).numpy()
    if everywhere:
        L = (pats.shape[-1] - 1) // 2
        p = np.arange(L, pats.shape[-1])
        return pats[..., p, p - L + shift].mean((0, -1))
    return np.array([offset_score_of(pats[:, h], shift) for h in range(model.cfg.n_heads)])


def check_induction_evidence(ind_scores, control_scores, model, tokens, control,
                             induction_heads=None):
    """The evidence of question 5: the induction score of every layer-1 head on the repeated
    ``tokens`` and on the ``control`` sequences (no repeat), each ``[n_heads]``; and, when given,
    ``induction_heads``: the heads whose score on ``tokens`` is more than twice their control
    score."""
    right = layer_offset_scores(model, tokens)
    base = layer_offset_scores(model, control)
    for got, expected, seqs, name in ((ind_scores, right, tokens, "ind_scores"),
                                      (control_scores, base, control, "control_scores")):
        other = base if name == "ind_scores" else right
        check_array(got, expected, name, mistakes=[
            ("reads source q - L, the same token's first copy (a duplicate-token score); the "
             "induction score reads the token after it, q - L + 1.",
             layer_offset_scores(model, seqs, shift=0)),
            ("reads source q - 1, the previous token: that is the previous-token score.",
             layer_offset_scores(model, seqs, shift=1 - _run_len(seqs))),
            ("comes from layer 0: the induction heads are in layer 1.",
             layer_offset_scores(model, seqs, layer=0)),
            ("averages over every destination from position L on; use the second copy only, "
             "q = L + 1 .. 2 L.", layer_offset_scores(model, seqs, everywhere=True)),
            ("holds the scores of the other set of sequences: "
             + ("ind_scores come from tokens, control_scores from control."), other),
        ])
    if induction_heads is not None:
        if induction_heads is Ellipsis:
            _fail("induction_heads is still `...`: list the heads your evidence picks.")
        try:
            chosen = sorted(int(h) for h in induction_heads)
        except TypeError:
            _fail(f"induction_heads should be a list of head indices, got {induction_heads!r:.60}.")
        picked = [h for h in range(len(right)) if right[h] > 2 * base[h]]
        if chosen != picked:
            _fail(f"induction_heads = {chosen} does not follow from your evidence: compare each "
                  "head's score on tokens with twice its control score (" + ", ".join(
                      f"head {h}: {right[h]:.3g} against {base[h]:.3g}"
                      for h in range(len(right))) + ").")


def _run_len(tokens) -> int:
    """The run length ``L`` of ``BOS, r, r`` sequences ``[batch, 1 + 2 L]``."""
    return (np.shape(tokens)[-1] - 1) // 2
