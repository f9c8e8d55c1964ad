"""The worked example: two tokens through one 4-dimensional attention head.

A one-layer, attention-only model with ``d_model = d_head = 4`` and one head reads two tokens,
``A`` and ``B``. Its weights are permutations chosen so every number can be checked by hand:

* ``W_Q = I`` and ``W_O = I``;
* ``W_K`` swaps coordinates 1<->2 and 3<->4 (a symmetric permutation, so ``W_K.T == W_K``);
* ``W_V`` swaps coordinates 2 and 3.

:func:`run` computes the head the standard way (queries, keys, values, scores, softmax, weighted
sum) and the circuit way (``W_QK``, ``W_OV``), and returns every quantity in one
:class:`WorkedExample`. Rows are tokens (row-vector convention); row 0 is ``A``, row 1 is ``B``.
Like the article it comes from, the example applies no causal mask unless ``causal=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from . import circuits

TOKENS = ("A", "B")

#: Embeddings of A and B, one row each ``[2, d_model]``.
X = np.array([[1.0, 0.0, 1.0, -1.0], [0.0, 1.0, -1.0, 1.0]])


def _permutation(pairs, n=4):
    """The ``[n, n]`` matrix that swaps each pair of (1-based) coordinates: ``x @ P`` swaps them."""
    P = np.eye(n)
    for i, j in pairs:
        P[[i - 1, j - 1]] = P[[j - 1, i - 1]]
    return P


W_Q = np.eye(4)
W_K = _permutation([(1, 2), (3, 4)])
W_V = _permutation([(2, 3)])
W_O = np.eye(4)


@dataclass(frozen=True)
class WorkedExample:
    """Every quantity of the worked example. Shapes: ``n = 2`` tokens, ``d = 4``.

    Attributes:
        tokens: the token names, ``("A", "B")``.
        x: embeddings ``[n, d_model]``.
        W_Q, W_K, W_V: ``[d_model, d_head]``; W_O: ``[d_head, d_model]``.
        q, k, v: queries, keys, values ``[n, d_head]`` (``x @ W_Q`` and so on).
        scores: raw scores ``q @ k.T`` ``[n_dest, n_src]``.
        scaled_scores: ``scores / sqrt(d_head)``.
        pattern: softmax of the scaled scores ``[n_dest, n_src]`` (causal mask if asked for).
        output: what the head writes, ``pattern @ v @ W_O`` ``[n_dest, d_model]``.
        W_QK: ``W_Q @ W_K.T`` ``[d_model, d_model]``.
        W_OV: ``W_V @ W_O`` ``[d_model, d_model]``.
        scores_circuit: ``x @ W_QK @ x.T``, equal to ``scores``.
        output_circuit: ``pattern @ (x @ W_OV)``, equal to ``output``.
        causal: whether a causal mask was applied.
    """

    tokens: tuple
    x: np.ndarray
    W_Q: np.ndarray
    W_K: np.ndarray
    W_V: np.ndarray
    W_O: np.ndarray
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    scores: np.ndarray
    scaled_scores: np.ndarray
    pattern: np.ndarray
    output: np.ndarray
    W_QK: np.ndarray
    W_OV: np.ndarray
    scores_circuit: np.ndarray
    output_circuit: np.ndarray
    causal: bool

    @property
    def d_head(self) -> int:
        return int(self.W_Q.shape[-1])

    def score(self, dest: str, src: str) -> float:
        """Raw score of destination token ``dest`` for source token ``src`` (names "A"/"B")."""
        return float(self.scores[self._index(dest), self._index(src)])

    def weight(self, dest: str, src: str) -> float:
        """Attention weight ``dest`` puts on ``src``."""
        return float(self.pattern[self._index(dest), self._index(src)])

    def _index(self, name: str) -> int:
        if name not in self.tokens:
            raise ValueError(f"token must be one of {self.tokens}, got {name!r}")
        return self.tokens.index(name)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def run(causal: bool = False, backend: str = "numpy", x=None, scale=None) -> WorkedExample:
    """Compute the worked example, the standard way and the circuit way.

    Args:
        causal: apply a causal mask (A, the first token, then sees only itself). The article's
            example uses none, so the default is False.
        backend: ``"numpy"`` (float64 arrays) or ``"torch"`` (float64 tensors).
        x: other embeddings for A and B ``[2, d_model]`` (default :data:`X`); the explorer of
            :mod:`toymodel.views.explore` passes what a student typed.
        scale: the factor applied to the raw scores before the softmax (default
            ``1/sqrt(d_head)``); any non-negative number.

    Returns:
        a :class:`WorkedExample`; for example ``run().pattern`` is ``[[0.0759, 0.9241],
        [0.9241, 0.0759]]`` (rows: destination A, B; columns: source A, B).
    """
    if backend not in ("numpy", "torch"):
        raise ValueError(f"backend must be 'numpy' or 'torch', got {backend!r}")
    arrays = [X if x is None else _check_x(x), W_Q, W_K, W_V, W_O]
    if backend == "torch":
        arrays = [torch.tensor(a, dtype=torch.float64) for a in arrays]
    x, w_q, w_k, w_v, w_o = (a.copy() if isinstance(a, np.ndarray) else a.clone() for a in arrays)

    q, k, v = x @ w_q, x @ w_k, x @ w_v
    scores = circuits.attention_scores(x, w_q, w_k)
    d_head = w_q.shape[-1]
    if scale is None:
        scaled_scores = scores / d_head**0.5
        pattern = circuits.attention_pattern(scores, d_head, causal=causal)
    else:  # the scale is applied here, so the softmax divides by sqrt(1) = 1
        scaled_scores = scores * _check_scale(scale)
        pattern = circuits.attention_pattern(scaled_scores, 1, causal=causal)
    output = circuits.attention_output(pattern, x, w_v, w_o)

    W_QK = circuits.qk_circuit(w_q, w_k)
    W_OV = circuits.ov_circuit(w_v, w_o)
    return WorkedExample(
        tokens=TOKENS,
        x=x,
        W_Q=w_q,
        W_K=w_k,
        W_V=w_v,
        W_O=w_o,
        q=q,
        k=k,
        v=v,
        scores=scores,
        scaled_scores=scaled_scores,
        pattern=pattern,
        output=output,
        W_QK=W_QK,
        W_OV=W_OV,
        scores_circuit=x @ W_QK @ x.T,
        output_circuit=pattern @ (x @ W_OV),
        causal=causal,
    )


def _check_x(x) -> np.ndarray:
    arr = np.array(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if arr.shape != X.shape:
        raise ValueError(f"x must have shape [2, d_model] = {list(X.shape)} (rows A, B), got "
                         f"shape {list(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("x contains NaN or infinite values; expected finite numbers")
    return arr


def _check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating, np.integer)):
        raise TypeError(f"scale must be a number, got {type(scale).__name__}")
    if not (np.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
    return float(scale)


def rounded_output(result: WorkedExample, decimals: int = 2):
    """The destination outputs computed from attention weights rounded to ``decimals`` first.

    This reproduces the article's shortcut: it rounds A's weights to 0.08 and 0.92 and then
    mixes the values, giving ``(0.08, -0.84, 0.92, 0.84)`` instead of the exact
    ``(0.076, -0.848, 0.924, 0.848)``. Returns ``[n_dest, d_model]``.
    """
    if isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0:
        raise ValueError(f"decimals must be a non-negative int, got {decimals!r}")
    pattern = result.pattern
    if isinstance(pattern, torch.Tensor):
        pattern = pattern.detach().cpu().numpy()
        values = (result.v @ result.W_O).detach().cpu().numpy()
    else:
        values = result.v @ result.W_O
    return np.round(pattern, decimals) @ values


def format_vector(v, decimals: int = 3) -> str:
    """Format a 1-d vector as ``(a, b, c, d)`` with ``decimals`` places, dropping ``-0``."""
    arr = np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"format_vector expects a 1-d vector, got shape {list(arr.shape)}")
    parts = []
    for value in np.round(arr, decimals) + 0.0:  # + 0.0 turns -0.0 into 0.0
        text = f"{value:.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{value:.0f}"
        parts.append("0" if text in ("-0", "") else text)
    return "(" + ", ".join(parts) + ")"
