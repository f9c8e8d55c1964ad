"""Statistics of QK and OV circuits: eigenvalues, copying score, OV top-1, QK diagonal statistics.

The functions take the factors of a full circuit (``W_E, W_V, W_O, W_U`` or ``W_E, W_Q, W_K``),
for one head, ``[n_heads, ...]`` or ``[n_layers, n_heads, ...]``, and never form a
vocabulary-sized matrix: eigenvalues and the copying score come from the small ``[d_head,
d_head]`` product ``W_O (W_U W_E) W_V``, which has the same non-zero eigenvalues as the full OV
circuit; row argmaxes (OV top-1, QK top-1) are computed in tiles through
:class:`toymodel.factored.FactoredMatrix`. Row-vector convention (``x @ W``). They are re-exported
by :mod:`toymodel.circuits`, where the lessons find them (``circuits.copying_score``).

numpy in, numpy out; torch in, torch out; the input's float precision is kept.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from ._validate import (
    _T,
    Shapes,
    _all_finite,
    _concat_heads,
    _ov_shapes,
    _same_rank,
    check_positive_int,
    is_torch,
    to_array,
)
from .factored import FactoredMatrix

__all__ = ["ov_eigenvalues", "copying_score", "ov_top1_accuracy", "qk_diagonal_stats", "spearman"]


def _ov_factors(W_E, W_V, W_O, W_U, combine_heads: bool):
    """The full OV circuit as two thin factors ``left @ right``, never multiplied out.

    ``left = W_E @ W_V`` ``[..., d_vocab, d_head]`` and ``right = W_O @ W_U``
    ``[..., d_head, d_vocab]``. With ``combine_heads`` the heads are stacked side by side
    (``[d_vocab, n_heads * d_head]`` and ``[n_heads * d_head, d_vocab]``), so that ``left @ right``
    is the sum of the heads' full OV circuits.
    """
    W_E, W_V, W_O, W_U = _ov_shapes(W_E, W_V, W_O, W_U)
    if combine_heads:
        W_V, W_O = _concat_heads(W_V, W_O)
    return W_E @ W_V, W_O @ W_U


def _small_ov_product(W_E, W_V, W_O, W_U, combine_heads: bool):
    """``W_O @ (W_U @ W_E) @ W_V``: ``[..., d_head, d_head]`` per head, or all heads combined.

    Its eigenvalues are the non-zero eigenvalues of ``full_ov_circuit`` (for AB and BA share them).
    ``W_U @ W_E`` ``[d_model, d_model]`` is formed once for every head: the cost is one
    ``d_model x d_vocab x d_model`` product plus ``d_head x d_model x d_model`` per head, instead of
    ``d_head x d_vocab x d_model`` twice per head.
    """
    # The vocabulary-sized W_E and W_U are checked for NaN through their small product instead
    # (a NaN or infinity anywhere in them reaches it), so the checks stay cheap at GPT-2's size.
    W_E, W_V, W_O, W_U = _ov_shapes(W_E, W_V, W_O, W_U, check_finite=False)
    if combine_heads:
        W_V, W_O = _concat_heads(W_V, W_O)
    with torch.no_grad() if is_torch(W_E) else contextlib.nullcontext():
        shared = W_U @ W_E  # [d_model, d_model], the same for every head
    if not _all_finite(shared):  # name the bad input, or go on if the product only overflowed
        to_array(W_E, "W_E")
        to_array(W_U, "W_U")
    with torch.no_grad() if is_torch(W_E) else contextlib.nullcontext():
        # all heads' W_O rows in one matrix product (faster than a batched one), then per head
        left = (W_O.reshape(-1, W_O.shape[-1]) @ shared).reshape(W_O.shape)
        return left @ W_V


def ov_eigenvalues(W_E, W_V, W_O, W_U, combine_heads: bool = False):
    """Eigenvalues of the small product ``W_O W_U W_E W_V`` (``[d_head, d_head]`` per head).

    They are all the non-zero eigenvalues of the full OV circuit (plus zeros where the product's
    rank is below ``d_head``); the remaining ``d_vocab - d_head`` eigenvalues of the big matrix
    are zero.

    Args: as :func:`full_ov_circuit` (``W_V``, ``W_O`` may also be ``[n_layers, n_heads, ...]``);
        ``combine_heads=True`` gives the eigenvalues of the sum of the heads' full OV circuits
        (of each layer).

    Returns:
        complex ``[d_head]`` (or ``[n_heads, d_head]``, ``[n_layers, n_heads, d_head]``, or
        ``[n_heads * d_head]`` when combined). Torch inputs are decomposed in float64 and give
        complex128.
    """
    small = _small_ov_product(W_E, W_V, W_O, W_U, combine_heads)
    if is_torch(small):
        with torch.no_grad():
            return torch.linalg.eigvals(small.detach().to(torch.float64))
    return np.linalg.eigvals(small)


def copying_score(W_E, W_V, W_O, W_U, combine_heads: bool = False):
    """``sum(eigenvalues) / sum(|eigenvalues|)`` of the full OV circuit (Elhage et al. 2021).

    1 when every non-zero eigenvalue is a positive real number, -1 when every one is a negative
    real number; a copying head scores near 1. The score does not say that each token raises its
    own logit: ``[[-1, 3], [-3, 5]]`` scores 1 (both eigenvalues 2) while attending to token 0
    lowers token 0's logit; the OV top-1 accuracy asks that. Computed from the ``[d_head, d_head]``
    product, never the vocabulary matrix; for many heads the ``[d_model, d_model]`` product
    ``W_U W_E`` is shared.

    Args: as :func:`ov_eigenvalues`; ``W_V [n_layers, n_heads, d_model, d_head]`` and
        ``W_O [n_layers, n_heads, d_head, d_model]`` give every head of every layer.

    Returns:
        a float for one head (or combined heads), else one score per head (``[n_heads]`` or
        ``[n_layers, n_heads]``, numpy array or tensor as the inputs, in their float precision).
    """
    eig = ov_eigenvalues(W_E, W_V, W_O, W_U, combine_heads)
    if is_torch(eig):
        score = eig.sum(-1).real / eig.abs().sum(-1)
        return float(score) if score.ndim == 0 else score.to(_torch_dtype(W_V))
    score = eig.sum(-1).real / np.abs(eig).sum(-1)
    return float(score) if np.ndim(score) == 0 else score


def _torch_dtype(x):
    if is_torch(x) and x.is_floating_point():
        return x.dtype
    return torch.get_default_dtype()


def _progress(show, total_work: float, desc: str):
    """A tqdm-like wrapper when ``show`` is True (or None and the work is large), else None."""
    if show is None:
        show = total_work > 2e11  # about ten seconds or more of multiply-adds on a laptop
    if not show:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are a convenience, never a requirement
        return None
    return lambda it: tqdm(it, desc=desc, leave=False)


def ov_top1_accuracy(W_E, W_V, W_O, W_U, tokens=None, combine_heads: bool = False,
                     chunk_size: int = 2048, progress=None):
    """Fraction of tokens whose own logit is the largest in their row of the full OV circuit.

    The ``[d_vocab, d_vocab]`` matrix is never held whole: for one head at a time, the factors
    ``W_E W_V [d_vocab, d_head]`` and ``W_O W_U [d_head, d_vocab]`` go to
    :meth:`toymodel.factored.FactoredMatrix.row_argmax_is_diagonal`, which works in tiles of
    ``chunk_size`` rows and stops a row as soon as its answer is known. Memory stays at a few
    ``[chunk_size, 4096]`` tiles, so this runs for every head of GPT-2 Small.

    Args: as :func:`full_ov_circuit` (``W_V``, ``W_O`` may be ``[n_layers, n_heads, ...]``), plus
        tokens: optional sequence of token ids; rows and columns are restricted to them (for
            example only the number tokens of a task, leaving out a query token).
        combine_heads: sum the heads' full OV circuits first (of each layer).
        chunk_size: rows computed at once (a positive int).
        progress: True or False for a tqdm progress bar over heads (None: only for long work).

    Returns:
        a float, or one per head (``[n_heads]`` or ``[n_layers, n_heads]``) when the weights have
        leading dimensions and ``combine_heads`` is False; float64 numpy, or a tensor in the
        inputs' float precision.
    """
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    W_E, W_V, W_O, W_U = _ov_shapes(W_E, W_V, W_O, W_U)
    if combine_heads:
        W_V, W_O = _concat_heads(W_V, W_O)

    def factors(h):
        return W_E @ W_V.reshape(-1, *W_V.shape[-2:])[h], W_O.reshape(-1, *W_O.shape[-2:])[h] @ W_U

    return _top1_per_head(factors, W_V, W_E.shape[0], tokens, chunk_size, progress, "OV top-1")


def _top1_per_head(factors, W_in, d_vocab: int, tokens, chunk_size: int, progress, desc: str):
    """Row-argmax hit rate of ``left @ right`` for each head; ``factors(h)`` gives the pair."""
    idx = _check_tokens(tokens, d_vocab)
    lead = tuple(W_in.shape[:-2])
    n_heads = math.prod(lead)
    n = d_vocab if idx is None else len(idx)
    show = _progress(progress, n_heads * n * n * W_in.shape[-1], desc)
    heads = range(n_heads)
    rates = []
    for h in show(heads) if show else heads:
        left, right = factors(h)
        if idx is not None:
            sel = torch.as_tensor(idx, device=left.device) if is_torch(left) else idx
            left, right = left[sel], right[:, sel]
        hits = FactoredMatrix(left, right).row_argmax_is_diagonal(block_rows=chunk_size)
        rates.append(float(hits.sum()) / n)
    if not lead:
        return rates[0]
    if is_torch(W_in):
        return torch.tensor(rates, dtype=_torch_dtype(W_in), device=W_in.device).reshape(lead)
    return np.asarray(rates, dtype=np.float64).reshape(lead)


def _check_tokens(tokens, d_vocab: int):
    if tokens is None:
        return None
    idx = np.asarray(tokens.cpu() if is_torch(tokens) else tokens)
    if idx.ndim != 1 or idx.dtype.kind not in "iu" or idx.size == 0:
        raise ValueError(f"tokens must be a non-empty 1-d sequence of token ids, got {tokens!r}")
    if idx.min() < 0 or idx.max() >= d_vocab:
        raise ValueError(f"tokens must lie in [0, {d_vocab - 1}] (d_vocab = {d_vocab})")
    return idx


def qk_diagonal_stats(W_E, W_Q, W_K, tokens=None, top1: bool = False, chunk_size: int = 2048,
                      progress=None):
    """How much each token's query prefers its own token as key, from the full QK circuit.

    With ``M = full_qk_circuit(W_E, W_Q, W_K)`` ``[n, n]`` (restricted to ``tokens`` if given),
    never formed: every statistic comes from the ``[d_model, d_model]`` Gram matrix
    ``G = W_E.T W_E``, shared by all heads, and ``[d_head, d_head]`` products per head.

    Args:
        W_E: ``[d_vocab, d_model]``.
        W_Q, W_K: ``[d_model, d_head]``, ``[n_heads, d_model, d_head]`` or
            ``[n_layers, n_heads, d_model, d_head]``.
        tokens: optional token ids (rows and columns).
        top1: also compute the fraction of rows whose argmax is the diagonal (the expensive
            part: ``n * n * d_head`` multiply-adds per head at worst, in tiles).
        chunk_size, progress: as in :func:`ov_top1_accuracy`.

    Returns:
        dict of floats (one head) or arrays ``[n_heads]`` / ``[n_layers, n_heads]``:
        ``"diag_mean"`` (mean of ``M``'s diagonal: a token's score for itself), ``"mean"`` and
        ``"std"`` (over all ``n * n`` entries), ``"diag_zscore"`` = ``(diag_mean - mean) / std``,
        and with ``top1`` also ``"top1"``.
    """
    s = Shapes()
    W_Q = s(W_Q, "W_Q", "n_layers? n_heads? d_model d_head")
    W_K = s(W_K, "W_K", "n_layers? n_heads? d_model d_head")
    _same_rank(W_Q, "W_Q", W_K, "W_K")
    W_E = s(W_E, "W_E", "d_vocab d_model")
    idx = _check_tokens(tokens, W_E.shape[0])
    E = W_E if idx is None else W_E[torch.as_tensor(idx) if is_torch(W_E) else idx]
    n = E.shape[0]
    with torch.no_grad() if is_torch(E) else contextlib.nullcontext():
        G = _T(E) @ E  # [d_model, d_model]
        col_sum = E.sum(0)  # [d_model]
        diag_sum = (W_Q * (G @ W_K)).sum((-1, -2))  # trace(E W_Q W_K^T E^T)
        total = (col_sum @ W_Q * (col_sum @ W_K)).sum(-1)  # 1^T M 1
        sq = ((_T(W_Q) @ G @ W_Q) * (_T(W_K) @ G @ W_K)).sum((-1, -2))  # ||M||_F^2
    mean = total / n**2
    var = sq / n**2 - mean**2
    std = var.clamp(min=0).sqrt() if is_torch(var) else np.sqrt(np.maximum(var, 0))
    out = {"diag_mean": diag_sum / n, "mean": mean, "std": std}
    out["diag_zscore"] = (out["diag_mean"] - mean) / std
    if top1:
        def factors(h):
            q = W_Q.reshape(-1, *W_Q.shape[-2:])[h]
            k = W_K.reshape(-1, *W_K.shape[-2:])[h]
            return W_E @ q, _T(W_E @ k)

        out["top1"] = _top1_per_head(factors, W_Q, W_E.shape[0], idx, chunk_size, progress,
                                     "QK top-1")
    return {k: _scalar_or_array(v, W_Q) for k, v in out.items()}


def _scalar_or_array(x, like):
    if isinstance(x, float):
        return x
    if is_torch(x):
        return float(x) if x.ndim == 0 else x.to(_torch_dtype(like))
    return float(x) if np.ndim(x) == 0 else x


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
