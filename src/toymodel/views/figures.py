"""The lessons' figures in one style (matplotlib only; every function returns its Axes).

Two kinds, drawn the same way in every lesson:

* matrices: :func:`heatmap` (circuits, scores, patterns) and :func:`worked_example_figure`;
* curves and small multiples: :func:`attention_patterns`, :func:`qk_row`, :func:`qk_parts`,
  :func:`eigenvalues`.

Inputs may be numpy arrays or torch tensors (on any device); they are drawn from CPU copies.
Every figure has labelled axes and a colour bar. Diverging data (circuits, scores) is drawn with a
colour map centred on zero, so white always means "no effect"; probabilities (attention patterns)
use a sequential map from 0 to 1.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

DIVERGING = "RdBu_r"
SEQUENTIAL = "Blues"


def to_numpy(x) -> np.ndarray:
    """A numpy copy of an array or tensor (detached, on the CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def heatmap(
    matrix,
    row_labels=None,
    col_labels=None,
    title=None,
    xlabel=None,
    ylabel=None,
    ax=None,
    center: bool = True,
    annotate: bool = False,
    vmin=None,
    vmax=None,
    cbar_label=None,
    fmt: str = ".2f",
):
    """Draw a 2-d matrix as a heatmap with a colour bar; returns the Axes.

    Args:
        matrix: ``[n_rows, n_cols]`` array or tensor.
        row_labels, col_labels: tick labels (defaults: indices; long axes show every few ticks).
        title, xlabel, ylabel: text for the axes (rows are the y axis, columns the x axis).
        ax: an existing Axes; a new figure is made if None.
        center: diverging colour map symmetric about 0 (True) or sequential (False).
        annotate: write each value in its cell (for small matrices).
        vmin, vmax: colour limits (defaults from the data).
        cbar_label: label of the colour bar.
        fmt: number format for annotations.
    """
    data = to_numpy(matrix)
    if data.ndim != 2:
        raise ValueError(
            f"heatmap expects a 2-d matrix [n_rows, n_cols], got shape {list(data.shape)}"
        )
    n_rows, n_cols = data.shape
    for labels, n, name in ((row_labels, n_rows, "row_labels"), (col_labels, n_cols, "col_labels")):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{name} has {len(labels)} entries but the matrix has {n}")
    if ax is None:
        size = min(7.0, 1.2 + 0.5 * max(n_rows, n_cols)) if annotate else 5.5
        _, ax = plt.subplots(figsize=(size + 1.2, size))
    if center:
        limit = float(np.abs(data).max()) or 1.0
        vmin = -limit if vmin is None else vmin
        vmax = limit if vmax is None else vmax
        cmap = DIVERGING
    else:
        cmap = SEQUENTIAL
    image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="equal")
    colorbar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if cbar_label:
        colorbar.set_label(cbar_label)
    _ticks(ax.set_yticks, ax.set_yticklabels, n_rows, row_labels)
    _ticks(ax.set_xticks, ax.set_xticklabels, n_cols, col_labels)
    if annotate:
        mid = (image.norm.vmin + image.norm.vmax) / 2
        span = (image.norm.vmax - image.norm.vmin) or 1.0
        for i in range(n_rows):
            for j in range(n_cols):
                value = data[i, j]
                dark = abs(value - mid) / span > 0.3 if center else value > mid
                ax.text(j, i, format(value, fmt), ha="center", va="center",
                        color="white" if dark else "black", fontsize=10)
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return ax


def _ticks(set_ticks, set_labels, n, labels):
    step = 1 if n <= 16 else int(np.ceil(n / 16))
    positions = list(range(0, n, step))
    set_ticks(positions)
    set_labels([str(labels[p]) if labels is not None else str(p) for p in positions])


def worked_example_figure(result):
    """Three panels for the worked example: the pattern, ``W_QK`` and ``W_OV``; returns the Figure.

    Args:
        result: a :class:`toymodel.worked_example.WorkedExample`.
    """
    # 9.2 inches: shown in a 688 px text column its smallest (10 pt) text stays above 10 px
    fig, axes = plt.subplots(1, 3, figsize=(9.2, 3.4), layout="constrained")
    tokens = list(result.tokens)
    dims = [str(i + 1) for i in range(result.W_QK.shape[0])]
    heatmap(result.pattern, tokens, tokens, title="Attention pattern", xlabel="source (key)",
            ylabel="destination (query)", ax=axes[0], center=False, annotate=True,
            vmin=0, vmax=1, cbar_label="attention weight", fmt=".4f")
    heatmap(result.W_QK, dims, dims, title=r"QK circuit $W_{QK} = W_Q W_K^\top$",
            xlabel="key dimension", ylabel="query dimension", ax=axes[1], annotate=True,
            cbar_label="entry of W_QK", fmt=".0f")
    heatmap(result.W_OV, dims, dims, title=r"OV circuit $W_{OV} = W_V W_O$",
            xlabel="written dimension (output)", ylabel="read dimension (source)", ax=axes[2],
            annotate=True, cbar_label="entry of W_OV", fmt=".0f")
    return fig


# ---------------------------------------------------------------- curves and small multiples



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
