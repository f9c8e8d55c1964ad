"""QK and OV circuits of attention heads, in the row-vector convention ``x @ W``.

A residual-stream vector is a row ``x`` of shape ``[d_model]``; a stack of them is ``[n_pos,
d_model]``. One head has ``W_Q, W_K, W_V`` of shape ``[d_model, d_head]`` and ``W_O`` of shape
``[d_head, d_model]`` (the TransformerLens layout). Every circuit function also takes all heads at
once, with a leading ``n_heads`` dimension (or ``[n_layers, n_heads, ...]`` for every head of
every layer), and then returns one result per head.

* The **QK circuit** ``W_QK = W_Q @ W_K.T`` ``[d_model, d_model]`` gives the raw score of a
  destination (query) row ``x_i`` for a source (key) row ``x_j`` as ``x_i @ W_QK @ x_j.T``.
* The **OV circuit** ``W_OV = W_V @ W_O`` ``[d_model, d_model]`` gives what a source row ``x_j``
  writes to the residual stream, before attention weighting: ``x_j @ W_OV``.
* The **full (end-to-end) circuits** put the embedding ``W_E [d_vocab, d_model]`` and unembedding
  ``W_U [d_model, d_vocab]`` around them: ``full_qk_circuit`` is ``W_E W_QK W_E.T`` (rows: query
  token, columns: key token) and ``full_ov_circuit`` is ``W_E W_OV W_U`` (rows: attended token,
  columns: output logit). Elhage et al. (2021) write column vectors; their end-to-end OV matrix
  ``W_U W_OV W_E`` is the transpose of ours.

The statistics of the circuits (eigenvalues, copying score, OV top-1, QK diagonal statistics,
Spearman correlation) live in :mod:`toymodel.circuit_stats` and are importable from here too.
They never form a vocabulary-sized matrix: they work on the factors
through :class:`toymodel.factored.FactoredMatrix`. Eigenvalues and the copying score come from the
small ``[d_head, d_head]`` product ``W_O (W_U W_E) W_V``, which has the same non-zero eigenvalues as
the vocabulary-sized matrix; the ``[d_model, d_model]`` product ``W_U W_E`` is formed once and
shared by all heads. Row argmaxes (OV top-1, QK top-1) are computed in tiles.

numpy in, numpy out; torch in, torch out; the input's float precision is kept.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._validate import (
    _T,
    Shapes,
    _ov_shapes,
    _same_rank,
    check_positive_int,
    is_torch,
)
from .circuit_stats import (
    copying_score,
    ov_eigenvalues,
    ov_top1_accuracy,
    qk_diagonal_stats,
    spearman,
)

__all__ = [
    "qk_circuit",
    "ov_circuit",
    "attention_scores",
    "attention_pattern",
    "attention_output",
    "full_qk_circuit",
    "full_ov_circuit",
    "qk_circuit_terms",
    "ov_eigenvalues",
    "copying_score",
    "ov_top1_accuracy",
    "qk_diagonal_stats",
    "spearman",
]


def qk_circuit(W_Q, W_K):
    """The QK circuit ``W_QK = W_Q @ W_K.T``.

    Args:
        W_Q: query weights ``[d_model, d_head]`` (or ``[n_heads, d_model, d_head]``).
        W_K: key weights, same shape as ``W_Q``.

    Returns:
        ``[d_model, d_model]`` (or ``[n_heads, d_model, d_model]``): entry ``(a, b)`` is the score
        a query direction ``a`` gives a key direction ``b``.
    """
    s = Shapes()
    W_Q = s(W_Q, "W_Q", "n_layers? n_heads? d_model d_head")
    W_K = s(W_K, "W_K", "n_layers? n_heads? d_model d_head")
    _same_rank(W_Q, "W_Q", W_K, "W_K")
    return W_Q @ _T(W_K)


def ov_circuit(W_V, W_O):
    """The OV circuit ``W_OV = W_V @ W_O``.

    Args:
        W_V: value weights ``[d_model, d_head]`` (or ``[n_heads, d_model, d_head]``).
        W_O: output weights ``[d_head, d_model]`` (or ``[n_heads, d_head, d_model]``).

    Returns:
        ``[d_model, d_model]`` (or ``[n_heads, d_model, d_model]``): a source row ``x`` writes
        ``x @ W_OV`` into the residual stream, scaled by its attention weight.
    """
    s = Shapes()
    W_V = s(W_V, "W_V", "n_layers? n_heads? d_model d_head")
    W_O = s(W_O, "W_O", "n_layers? n_heads? d_head d_model")
    _same_rank(W_V, "W_V", W_O, "W_O")
    return W_V @ W_O


def attention_scores(x, W_Q, W_K):
    """Raw attention scores ``(x @ W_Q) @ (x @ W_K).T`` of one head, before scaling.

    Args:
        x: residual-stream rows ``[n_pos, d_model]`` (or ``[batch, n_pos, d_model]``).
        W_Q: ``[d_model, d_head]``.
        W_K: ``[d_model, d_head]``.

    Returns:
        ``[n_dest, n_src]`` (or ``[batch, n_dest, n_src]``), with ``n_dest = n_src = n_pos``:
        row ``i`` holds destination ``i``'s score for every source ``j``. Equal to
        ``x @ qk_circuit(W_Q, W_K) @ x.T``.
    """
    s = Shapes()
    W_Q = s(W_Q, "W_Q", "d_model d_head")
    W_K = s(W_K, "W_K", "d_model d_head")
    x = s(x, "x", "batch? n_pos d_model")
    return (x @ W_Q) @ _T(x @ W_K)


def attention_pattern(scores, d_head, causal: bool = False):
    """Softmax over sources of ``scores / sqrt(d_head)``.

    Args:
        scores: raw scores ``[n_dest, n_src]`` (or ``[..., n_dest, n_src]``).
        d_head: the head dimension used for the ``1/sqrt(d_head)`` scaling (a positive int).
        causal: if True, destination ``i`` may only attend to sources ``j <= i`` (needs
            ``n_dest == n_src``); the masked weights are exactly 0.

    Returns:
        The attention pattern, same shape as ``scores``; each row sums to 1.
    """
    d_head = check_positive_int(d_head, "d_head")
    s = Shapes()
    scores = s(scores, "scores", "... n_dest n_src")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be True or False, got {causal!r}")
    scaled = scores / math.sqrt(d_head)
    n_dest, n_src = scaled.shape[-2:]
    if causal:
        if n_dest != n_src:
            raise ValueError(
                "a causal pattern needs square scores [n_pos, n_pos], got shape "
                f"{list(scores.shape)}"
            )
        if is_torch(scaled):
            ones = torch.ones(n_dest, n_src, dtype=torch.bool, device=scaled.device)
            future = torch.triu(ones, 1)
            scaled = scaled.masked_fill(future, float("-inf"))
        else:
            future = np.triu(np.ones((n_dest, n_src), dtype=bool), 1)
            scaled = np.where(future, -np.inf, scaled)
    if is_torch(scaled):
        return torch.softmax(scaled, dim=-1)
    shifted = scaled - scaled.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


def attention_output(pattern, x, W_V, W_O):
    """What one head writes to the residual stream: ``pattern @ (x @ W_V @ W_O)``.

    Args:
        pattern: attention weights ``[n_dest, n_src]`` (or ``[batch, n_dest, n_src]``).
        x: source rows ``[n_src, d_model]`` (or ``[batch, n_src, d_model]``).
        W_V: ``[d_model, d_head]``.
        W_O: ``[d_head, d_model]``.

    Returns:
        ``[n_dest, d_model]`` (or ``[batch, n_dest, d_model]``).
    """
    s = Shapes()
    W_V = s(W_V, "W_V", "d_model d_head")
    W_O = s(W_O, "W_O", "d_head d_model")
    x = s(x, "x", "batch? n_src d_model")
    pattern = s(pattern, "pattern", "batch? n_dest n_src")
    if pattern.ndim != x.ndim:
        raise ValueError(
            f"pattern {list(pattern.shape)} and x {list(x.shape)} must both have a batch "
            "dimension or both lack one"
        )
    return pattern @ ((x @ W_V) @ W_O)


# --------------------------------------------------------------------------------------------
# End-to-end circuits of a one-layer model
# --------------------------------------------------------------------------------------------


def full_qk_circuit(W_E, W_Q, W_K):
    """Token-to-token QK circuit ``W_E @ W_Q @ W_K.T @ W_E.T``.

    Args:
        W_E: embedding ``[d_vocab, d_model]``.
        W_Q: ``[d_model, d_head]`` or ``[n_heads, d_model, d_head]``.
        W_K: same shape as ``W_Q``.

    Returns:
        ``[d_vocab, d_vocab]`` (or ``[n_heads, d_vocab, d_vocab]``): row = query (destination)
        token, column = key (source) token, entry = raw score from token identity alone.
        The same matrix in the column convention of Elhage et al. (``W_E^T W_QK W_E`` there).
    """
    s = Shapes()
    W_Q = s(W_Q, "W_Q", "n_layers? n_heads? d_model d_head")
    W_K = s(W_K, "W_K", "n_layers? n_heads? d_model d_head")
    _same_rank(W_Q, "W_Q", W_K, "W_K")
    W_E = s(W_E, "W_E", "d_vocab d_model")
    return (W_E @ W_Q) @ _T(W_E @ W_K)


def qk_circuit_terms(W_E, W_pos, W_Q, W_K):
    """The four parts of the QK circuit when the residual is ``W_E[token] + W_pos[position]``.

    The raw score of a query at (token ``t``, position ``p``) for a key at (token ``s``, position
    ``q``) is the sum ``tok_tok[t, s] + tok_pos[t, q] + pos_tok[p, s] + pos_pos[p, q]``.

    Args:
        W_E: ``[d_vocab, d_model]``.
        W_pos: ``[n_ctx, d_model]``.
        W_Q, W_K: ``[d_model, d_head]`` or ``[n_heads, d_model, d_head]``.

    Returns:
        dict with ``"tok_tok" [d_vocab, d_vocab]``, ``"tok_pos" [d_vocab, n_ctx]``,
        ``"pos_tok" [n_ctx, d_vocab]``, ``"pos_pos" [n_ctx, n_ctx]`` (each with a leading
        ``n_heads`` dimension when the weights have one). Query side first.
    """
    s = Shapes()
    W_Q = s(W_Q, "W_Q", "n_layers? n_heads? d_model d_head")
    W_K = s(W_K, "W_K", "n_layers? n_heads? d_model d_head")
    _same_rank(W_Q, "W_Q", W_K, "W_K")
    W_E = s(W_E, "W_E", "d_vocab d_model")
    W_pos = s(W_pos, "W_pos", "n_ctx d_model")
    q_tok, k_tok = W_E @ W_Q, W_E @ W_K
    q_pos, k_pos = W_pos @ W_Q, W_pos @ W_K
    return {
        "tok_tok": q_tok @ _T(k_tok),
        "tok_pos": q_tok @ _T(k_pos),
        "pos_tok": q_pos @ _T(k_tok),
        "pos_pos": q_pos @ _T(k_pos),
    }


def full_ov_circuit(W_E, W_V, W_O, W_U):
    """Token-to-logit OV circuit ``W_E @ W_V @ W_O @ W_U``.

    Args:
        W_E: embedding ``[d_vocab, d_model]``.
        W_V: ``[d_model, d_head]`` or ``[n_heads, d_model, d_head]``.
        W_O: ``[d_head, d_model]`` or ``[n_heads, d_head, d_model]``.
        W_U: unembedding ``[d_model, d_vocab]``.

    Returns:
        ``[d_vocab, d_vocab]`` (or ``[n_heads, d_vocab, d_vocab]``): row = attended (source)
        token, column = output token, entry = how much attending (with weight 1) to the row's
        token raises the column's logit. Elhage et al.'s column-convention ``W_U W_OV W_E`` is its
        transpose (there, rows are output tokens).
    """
    s = _ov_shapes(W_E, W_V, W_O, W_U)
    W_E, W_V, W_O, W_U = s
    return (W_E @ W_V) @ (W_O @ W_U)

