"""Reference implementations in the column-vector convention of Elhage et al. (2021).

The rest of :mod:`toymodel` writes a residual-stream vector as a row and multiplies weights on the
right (``x @ W``, the TransformerLens layout). "A Mathematical Framework for Transformer Circuits"
writes it as a column and multiplies on the left (``W x``). Every weight of one convention is the
transpose of the same weight in the other:

* ``W_E [d_vocab, d_model]`` becomes ``W_E_col = W_E.T [d_model, d_vocab]`` (one column per token);
* ``W_U [d_model, d_vocab]`` becomes ``W_U_col = W_U.T [d_vocab, d_model]`` (one row per logit);
* ``W_Q, W_K, W_V [d_model, d_head]`` become ``W_Q_col, W_K_col, W_V_col [d_head, d_model]``;
* ``W_O [d_head, d_model]`` becomes ``W_O_col = W_O.T [d_model, d_head]``;
* a residual stream ``x [n_pos, d_model]`` becomes ``X_col = x.T [d_model, n_pos]``.

The functions below compute the circuits the way the paper writes them, so tests (and readers)
can compare them with :mod:`toymodel.circuits`:

* ``column_qk_circuit``: ``W_Q_col.T @ W_K_col`` -- the *same* matrix as our ``W_Q @ W_K.T``.
* ``column_ov_circuit``: ``W_O_col @ W_V_col`` -- the *transpose* of our ``W_V @ W_O``.
* ``column_full_qk_circuit``: ``W_E_col.T @ W_QK_col @ W_E_col`` -- the same matrix as
  :func:`toymodel.circuits.full_qk_circuit` (rows: query token, columns: key token).
* ``column_full_ov_circuit``: ``W_U_col @ W_OV_col @ W_E_col`` -- the transpose of
  :func:`toymodel.circuits.full_ov_circuit`: there, entry ``(i, j)`` is how much attending to
  token ``j`` raises the logit of token ``i``.

The circuit functions accept one head, all heads (a leading ``n_heads`` dimension) or all heads
of all layers (``[n_layers, n_heads, ...]``);
numpy in, numpy out; torch in, torch out.
"""

from __future__ import annotations

from ._validate import _T, Shapes, _same_rank, to_array

__all__ = [
    "to_column_convention",
    "to_row_convention",
    "column_qk_circuit",
    "column_ov_circuit",
    "column_attention_scores",
    "column_full_qk_circuit",
    "column_full_ov_circuit",
]

_WEIGHT_NAMES = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_U")


def _transpose_weights(weights: dict, suffix_in: str, suffix_out: str) -> dict:
    out = {}
    for key, value in weights.items():
        base = key[: -len(suffix_in)] if suffix_in and key.endswith(suffix_in) else key
        if base not in _WEIGHT_NAMES or (suffix_in and not key.endswith(suffix_in)):
            expected = ", ".join(n + suffix_in for n in _WEIGHT_NAMES)
            raise TypeError(f"unknown weight name {key!r}; expected some of: {expected}")
        value = to_array(value, key)
        if value.ndim not in (2, 3, 4):
            raise ValueError(
                f"{key} must be a matrix (or a stack of per-head matrices, [n_heads, ...] or "
                f"[n_layers, n_heads, ...]), got shape {list(value.shape)}"
            )
        out[base + suffix_out] = _T(value)
    return out


def to_column_convention(**weights):
    """Translate row-convention weights to the column convention: transpose each one.

    Args:
        **weights: any of ``W_E [d_vocab, d_model]``, ``W_pos [n_ctx, d_model]``,
            ``W_Q, W_K, W_V [(n_heads,) d_model, d_head]``, ``W_O [(n_heads,) d_head, d_model]``,
            ``W_U [d_model, d_vocab]``.

    Returns:
        dict with the same names plus ``_col`` (``W_E_col [d_model, d_vocab]``, ``W_Q_col
        [(n_heads,) d_head, d_model]``, ``W_O_col [(n_heads,) d_model, d_head]``, ``W_U_col
        [d_vocab, d_model]``, ...). A per-head stack keeps its leading ``n_heads`` dimension.

    >>> col = to_column_convention(W_E=np.zeros((10, 4)), W_U=np.zeros((4, 10)))
    >>> col["W_E_col"].shape, col["W_U_col"].shape
    ((4, 10), (10, 4))
    """
    return _transpose_weights(weights, "", "_col")


def to_row_convention(**weights_col):
    """Inverse of :func:`to_column_convention`: ``W_E_col=...`` -> ``{"W_E": W_E_col.T, ...}``."""
    return _transpose_weights(weights_col, "_col", "")


def column_qk_circuit(W_Q_col, W_K_col):
    """The paper's ``W_QK = W_Q^T W_K`` with column-convention weights.

    Args:
        W_Q_col, W_K_col: ``[d_head, d_model]`` (or ``[n_heads, d_head, d_model]``).

    Returns:
        ``[d_model, d_model]`` (per head): equal to our ``W_Q @ W_K.T`` -- the bilinear form
        ``score = x_dest^T W_QK x_src`` does not care which way the vectors are written.
    """
    s = Shapes()
    W_Q_col = s(W_Q_col, "W_Q_col", "n_layers? n_heads? d_head d_model")
    W_K_col = s(W_K_col, "W_K_col", "n_layers? n_heads? d_head d_model")
    _same_rank(W_Q_col, "W_Q_col", W_K_col, "W_K_col")
    return _T(W_Q_col) @ W_K_col


def column_ov_circuit(W_V_col, W_O_col):
    """The paper's ``W_OV = W_O W_V`` with column-convention weights.

    Args:
        W_V_col: ``[d_head, d_model]`` (or ``[n_heads, d_head, d_model]``).
        W_O_col: ``[d_model, d_head]`` (or ``[n_heads, d_model, d_head]``).

    Returns:
        ``[d_model, d_model]`` (per head), mapping a source column ``x`` to ``W_OV x``: the
        transpose of our ``W_V @ W_O``.
    """
    s = Shapes()
    W_V_col = s(W_V_col, "W_V_col", "n_layers? n_heads? d_head d_model")
    W_O_col = s(W_O_col, "W_O_col", "n_layers? n_heads? d_model d_head")
    _same_rank(W_V_col, "W_V_col", W_O_col, "W_O_col")
    return W_O_col @ W_V_col


def column_attention_scores(X_col, W_Q_col, W_K_col):
    """Raw scores with residual vectors as columns: ``X_col^T W_Q^T W_K X_col``.

    Args:
        X_col: residual stream with one column per position, ``[d_model, n_pos]``.
        W_Q_col, W_K_col: ``[d_head, d_model]``.

    Returns:
        ``[n_dest, n_src]``: entry ``(i, j)`` is ``x_i^T W_QK x_j`` -- the same matrix as
        :func:`toymodel.circuits.attention_scores` on ``X_col.T``.
    """
    s = Shapes()
    W_Q_col = s(W_Q_col, "W_Q_col", "d_head d_model")
    W_K_col = s(W_K_col, "W_K_col", "d_head d_model")
    X_col = s(X_col, "X_col", "d_model n_pos")
    return _T(W_Q_col @ X_col) @ (W_K_col @ X_col)


def column_full_qk_circuit(W_E_col, W_Q_col, W_K_col):
    """Full QK circuit as the paper writes it, ``W_E^T W_QK W_E`` (column weights).

    Args:
        W_E_col: embedding ``[d_model, d_vocab]`` (one column per token).
        W_Q_col, W_K_col: ``[d_head, d_model]`` (or ``[n_heads, d_head, d_model]``).

    Returns:
        ``[d_vocab, d_vocab]`` (per head): rows = query token, columns = key token. The same
        matrix as :func:`toymodel.circuits.full_qk_circuit`.
    """
    s = Shapes()
    W_Q_col = s(W_Q_col, "W_Q_col", "n_layers? n_heads? d_head d_model")
    W_K_col = s(W_K_col, "W_K_col", "n_layers? n_heads? d_head d_model")
    _same_rank(W_Q_col, "W_Q_col", W_K_col, "W_K_col")
    W_E_col = s(W_E_col, "W_E_col", "d_model d_vocab")
    return _T(W_E_col) @ column_qk_circuit(W_Q_col, W_K_col) @ W_E_col


def column_full_ov_circuit(W_E_col, W_V_col, W_O_col, W_U_col):
    """Full OV circuit as the paper writes it, ``W_U W_OV W_E`` (column weights).

    Args:
        W_E_col: embedding ``[d_model, d_vocab]``.
        W_V_col: ``[d_head, d_model]`` (or ``[n_heads, d_head, d_model]``).
        W_O_col: ``[d_model, d_head]`` (or ``[n_heads, d_model, d_head]``).
        W_U_col: unembedding ``[d_vocab, d_model]`` (one row per output token).

    Returns:
        ``[d_vocab, d_vocab]`` (per head): rows = output logit, columns = attended token, so
        entry ``(i, j)`` is how much attending to token ``j`` raises logit ``i``. This is the
        transpose of :func:`toymodel.circuits.full_ov_circuit`.
    """
    s = Shapes()
    W_V_col = s(W_V_col, "W_V_col", "n_layers? n_heads? d_head d_model")
    W_O_col = s(W_O_col, "W_O_col", "n_layers? n_heads? d_model d_head")
    _same_rank(W_V_col, "W_V_col", W_O_col, "W_O_col")
    W_E_col = s(W_E_col, "W_E_col", "d_model d_vocab")
    W_U_col = s(W_U_col, "W_U_col", "d_vocab d_model")
    return W_U_col @ column_ov_circuit(W_V_col, W_O_col) @ W_E_col
