"""Figures for the one-layer model lesson (matplotlib only; every function returns its Axes).

Matrices are drawn with :func:`toymodel.plotting.heatmap`; this module adds the line plots and the
small multiples the lesson needs.

Inputs may be numpy arrays or torch tensors (on any device); they are drawn from CPU copies.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["attention_patterns", "qk_row", "qk_parts", "eigenvalues"]


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return x.numpy() if not x.is_complex() else x.resolve_conj().numpy()
    return np.asarray(x)


def _ax(ax, figsize):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def attention_patterns(pattern, tokens, query_token=None, axes=None):
    """One small heatmap per example: ``pattern [n_examples, dest, src]``, ``tokens [n, pos]``.

    The token ids label both axes (``q`` for ``query_token``); weights run from 0 (white) to 1.
    """
    pattern, tokens = _np(pattern), _np(tokens)
    if pattern.ndim != 3 or tokens.shape != pattern.shape[:2]:
        raise ValueError(
            f"pattern must be [n, dest, src] and tokens [n, pos], got {list(pattern.shape)} and "
            f"{list(tokens.shape)}"
        )
    n = len(pattern)
    if axes is None:
        _, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.8), layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, pat, toks in zip(axes, pattern, tokens, strict=True):
        labels = ["q" if t == query_token else str(t) for t in toks]
        im = ax.imshow(pat, cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(len(labels)), labels, fontsize=9)
        ax.set_yticks(range(len(labels)), labels, fontsize=9)
        ax.set(xlabel="source (key)", ylabel="destination (query)")
    axes[0].figure.colorbar(im, ax=list(axes), shrink=0.8, label="attention weight")
    return axes


def qk_row(row, title=None, ax=None):
    """Line plot of the query's score for each number key, ``row [n_numbers]``."""
    row = _np(row)
    ax = _ax(ax, (5, 3))
    ax.plot(np.arange(len(row)), row, marker="o", markersize=3)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set(title=title, xlabel="key token (a number)", ylabel="raw score from the query")
    return ax


def qk_parts(value_row, position_row, axes=None):
    """Two panels on one score scale: the query's score by key value ``[n_numbers]`` and by key
    position ``[list_len]`` (each centred on its mean, so only differences show)."""
    value_row, position_row = _np(value_row), _np(position_row)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True, layout="constrained")
    for ax, row, xlabel in (
        (axes[0], value_row, "key token (its value)"),
        (axes[1], position_row, "key position"),
    ):
        ax.plot(np.arange(len(row)), row - row.mean(), marker="o", markersize=3)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set(xlabel=xlabel)
    axes[0].set(ylabel="score minus its mean", title="token part")
    axes[1].set(title="positional part")
    return axes


def eigenvalues(eig, title=None, ax=None):
    """Eigenvalues ``[k]`` (complex) as points in the complex plane, with the axes drawn."""
    eig = _np(eig).astype(complex)
    ax = _ax(ax, (4, 4))
    ax.scatter(eig.real, eig.imag, s=18)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.axvline(0, color="grey", linewidth=0.5)
    lim = 1.1 * float(np.abs(eig).max() or 1.0)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=title)
    ax.set(xlabel="real part", ylabel="imaginary part")
    return ax
