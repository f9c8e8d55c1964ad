"""QK and OV circuits of attention heads, in the row-vector convention ``x @ W``.

A residual-stream vector is a row ``x`` of shape ``[d_model]``; a stack of them is ``[n_pos,
d_model]``. One head has ``W_Q, W_K, W_V`` of shape ``[d_model, d_head]`` and ``W_O`` of shape
``[d_head, d_model]`` (the TransformerLens layout). Every circuit function also takes all heads at
once, with a leading ``n_heads`` dimension, and then returns one result per head.

* The **QK circuit** ``W_QK = W_Q @ W_K.T`` ``[d_model, d_model]`` gives the raw score of a
  destination (query) row ``x_i`` for a source (key) row ``x_j`` as ``x_i @ W_QK @ x_j.T``.
* The **OV circuit** ``W_OV = W_V @ W_O`` ``[d_model, d_model]`` gives what a source row ``x_j``
  writes to the residual stream, before attention weighting: ``x_j @ W_OV``.
* The **full (end-to-end) circuits** put the embedding ``W_E [d_vocab, d_model]`` and unembedding
  ``W_U [d_model, d_vocab]`` around them: ``full_qk_circuit`` is ``W_E W_QK W_E.T`` (rows: query
  token, columns: key token) and ``full_ov_circuit`` is ``W_E W_OV W_U`` (rows: attended token,
  columns: output logit). Elhage et al. (2021) write column vectors; their end-to-end OV matrix
  ``W_U W_OV W_E`` is the transpose of ours.

Statistics of the full OV circuit (its eigenvalues, the copying score) are computed from the small
``[d_head, d_head]`` product ``W_O W_U W_E W_V``, which has the same non-zero eigenvalues as the
vocabulary-sized matrix, so they stay cheap when ``d_vocab`` is large.

numpy in, numpy out; torch in, torch out.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._validate import Shapes, check_positive_int, is_torch

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
    "spearman",
]


def _T(x):
    """Transpose the last two dimensions (numpy or torch)."""
    return x.transpose(-1, -2) if is_torch(x) else np.swapaxes(x, -1, -2)


# --------------------------------------------------------------------------------------------
# The two circuits of one head (or of every head at once)
# --------------------------------------------------------------------------------------------


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
    W_Q = s(W_Q, "W_Q", "n_heads? d_model d_head")
    W_K = s(W_K, "W_K", "n_heads? d_model d_head")
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
    W_V = s(W_V, "W_V", "n_heads? d_model d_head")
    W_O = s(W_O, "W_O", "n_heads? d_head d_model")
    _same_rank(W_V, "W_V", W_O, "W_O")
    return W_V @ W_O


def _same_rank(a, a_name, b, b_name):
    if a.ndim != b.ndim:
        raise ValueError(
            f"{a_name} has shape {list(a.shape)} and {b_name} has shape {list(b.shape)}: pass both "
            "for one head or both with a leading n_heads dimension"
        )


# --------------------------------------------------------------------------------------------
# The standard computation: scores, pattern, output
# --------------------------------------------------------------------------------------------


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
    scores = s(scores, "scores", "batch? n_dest n_src")
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
    W_Q = s(W_Q, "W_Q", "n_heads? d_model d_head")
    W_K = s(W_K, "W_K", "n_heads? d_model d_head")
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
    W_Q = s(W_Q, "W_Q", "n_heads? d_model d_head")
    W_K = s(W_K, "W_K", "n_heads? d_model d_head")
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


def _ov_shapes(W_E, W_V, W_O, W_U):
    s = Shapes()
    W_V = s(W_V, "W_V", "n_heads? d_model d_head")
    W_O = s(W_O, "W_O", "n_heads? d_head d_model")
    _same_rank(W_V, "W_V", W_O, "W_O")
    W_E = s(W_E, "W_E", "d_vocab d_model")
    W_U = s(W_U, "W_U", "d_model d_vocab")
    return W_E, W_V, W_O, W_U


def _ov_factors(W_E, W_V, W_O, W_U, combine_heads: bool):
    """The full OV circuit as two thin factors ``left @ right``, never multiplied out.

    ``left = W_E @ W_V`` ``[..., d_vocab, d_head]`` and ``right = W_O @ W_U``
    ``[..., d_head, d_vocab]``. With ``combine_heads`` the heads are stacked side by side
    (``[d_vocab, n_heads * d_head]`` and ``[n_heads * d_head, d_vocab]``), so that ``left @ right``
    is the sum of the heads' full OV circuits.
    """
    W_E, W_V, W_O, W_U = _ov_shapes(W_E, W_V, W_O, W_U)
    if combine_heads and W_V.ndim == 3:
        n_heads, d_model, d_head = W_V.shape
        if is_torch(W_V):
            W_V = W_V.permute(1, 0, 2).reshape(d_model, n_heads * d_head)
        else:
            W_V = W_V.transpose(1, 0, 2).reshape(d_model, n_heads * d_head)
        W_O = W_O.reshape(n_heads * d_head, d_model)
    return W_E @ W_V, W_O @ W_U


def _small_ov_product(W_E, W_V, W_O, W_U, combine_heads: bool):
    """``W_O @ W_U @ W_E @ W_V``: ``[d_head, d_head]`` per head, or ``[H*d_head, H*d_head]``.

    Its eigenvalues are the non-zero eigenvalues of ``full_ov_circuit`` (for AB and BA share them).
    """
    left, right = _ov_factors(W_E, W_V, W_O, W_U, combine_heads)
    return right @ left


def ov_eigenvalues(W_E, W_V, W_O, W_U, combine_heads: bool = False):
    """Eigenvalues of the small product ``W_O W_U W_E W_V`` (``[d_head, d_head]`` per head).

    They are all the non-zero eigenvalues of the full OV circuit (plus zeros where the product's
    rank is below ``d_head``); the remaining ``d_vocab - d_head`` eigenvalues of the big matrix
    are zero.

    Args: as :func:`full_ov_circuit`; ``combine_heads=True`` gives the eigenvalues of the sum of
        all heads' full OV circuits.

    Returns:
        complex ``[d_head]`` (or ``[n_heads, d_head]``, or ``[n_heads * d_head]`` when combined).
    """
    small = _small_ov_product(W_E, W_V, W_O, W_U, combine_heads)
    if is_torch(small):
        with torch.no_grad():
            return torch.linalg.eigvals(small.detach().to(torch.float64))
    return np.linalg.eigvals(small)


def copying_score(W_E, W_V, W_O, W_U, combine_heads: bool = False):
    """``sum(eigenvalues) / sum(|eigenvalues|)`` of the full OV circuit (Elhage et al. 2021).

    Near 1: attending to a token raises that token's own logit (a copying head). Near -1: it
    suppresses it. Computed from the ``[d_head, d_head]`` product, never the vocabulary matrix.

    Returns:
        a float for one head (or combined heads), else one score per head (numpy array or
        tensor, as the inputs).
    """
    eig = ov_eigenvalues(W_E, W_V, W_O, W_U, combine_heads)
    if is_torch(eig):
        score = eig.sum(-1).real / eig.abs().sum(-1)
        return float(score) if score.ndim == 0 else score.to(torch.get_default_dtype())
    score = eig.sum(-1).real / np.abs(eig).sum(-1)
    return float(score) if np.ndim(score) == 0 else score


def ov_top1_accuracy(W_E, W_V, W_O, W_U, tokens=None, combine_heads: bool = False,
                     chunk_size: int = 1024):
    """Fraction of tokens whose own logit is the largest in their row of the full OV circuit.

    The ``[d_vocab, d_vocab]`` matrix is never held whole: rows are computed from the factors
    ``(W_E W_V)[rows] @ (W_O W_U)`` ``chunk_size`` at a time, so this also runs at GPT-2 scale.

    Args: as :func:`full_ov_circuit`, plus
        tokens: optional sequence of token ids; rows and columns are restricted to them (for
            example only the number tokens of a task, leaving out a query token).
        combine_heads: sum the heads' full OV circuits first.
        chunk_size: rows computed at once (a positive int).

    Returns:
        a float, or one per head when the weights have an ``n_heads`` dimension and
        ``combine_heads`` is False.
    """
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    left, right = _ov_factors(W_E, W_V, W_O, W_U, combine_heads)
    d_vocab = right.shape[-1]
    if tokens is not None:
        idx = np.asarray(tokens)
        if idx.ndim != 1 or idx.dtype.kind not in "iu" or idx.size == 0:
            raise ValueError(
                f"tokens must be a non-empty 1-d sequence of token ids, got {tokens!r}"
            )
        if idx.min() < 0 or idx.max() >= d_vocab:
            raise ValueError(f"tokens must lie in [0, {d_vocab - 1}] (d_vocab = {d_vocab})")
        sel = torch.as_tensor(idx, device=left.device) if is_torch(left) else idx
        left, right = left[..., sel, :], right[..., :, sel]
    n = right.shape[-1]
    hits = 0
    for start in range(0, n, chunk_size):
        block = left[..., start:start + chunk_size, :] @ right  # [..., rows, n]
        if is_torch(block):
            own = torch.arange(start, start + block.shape[-2], device=block.device)
            hits = hits + (block.argmax(-1) == own).to(torch.float64).sum(-1)
        else:
            own = np.arange(start, start + block.shape[-2])
            hits = hits + (block.argmax(-1) == own).sum(-1)
    hits = hits / n
    if is_torch(hits):
        return float(hits) if hits.ndim == 0 else hits.to(torch.get_default_dtype())
    return float(hits) if np.ndim(hits) == 0 else hits.astype(np.float64)


def spearman(a, b) -> float:
    """Spearman rank correlation of two 1-d sequences of equal length (average ranks for ties)."""
    a = np.asarray(a.detach().cpu() if is_torch(a) else a, dtype=np.float64)
    b = np.asarray(b.detach().cpu() if is_torch(b) else b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size < 2:
        raise ValueError(
            f"spearman needs two 1-d sequences of the same length >= 2, got {a.shape} and {b.shape}"
        )
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    if denom == 0:
        raise ValueError("spearman is undefined when one sequence is constant")
    return float((ra * rb).sum() / denom)


def _ranks(x):
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=np.float64)
    for value in np.unique(x):  # average ranks of ties
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks
