"""Diagrams of the book, drawn with matplotlib alone (no external drawing tools).

Each function returns a :class:`matplotlib.figure.Figure` in one style: the Okabe-Ito palette
(safe for colour-blind readers), rounded boxes labelled with matrix names and shapes, and arrows in
the direction the data flows. Shapes follow the row convention of the book (``x @ W``).

* :func:`qk_path` -- the QK circuit as a path: a query token and a key token meet in a score.
* :func:`ov_path` -- the OV circuit as a path: from an attended token to the output logits.
* :func:`residual_stream` -- the residual stream, with the embedding, the heads and the unembedding
  reading from it and writing to it.
* :func:`one_layer_model` -- the logits of a one-layer attention-only model as the direct path
  plus one term per head.

Write all of them as PNG files with ``python -m tools.diagrams book/figures`` (or
:func:`main`). The output is deterministic: same code, same pixels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

__all__ = ["PALETTE", "qk_path", "ov_path", "residual_stream", "one_layer_model", "main"]

#: Okabe-Ito colours (Okabe and Ito 2008), distinguishable with the common colour-vision deficits.
PALETTE = {
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
    "grey": "#6E6E6E",
}

# One role, one colour, in every figure.
C_TOKEN = PALETTE["grey"]
C_EMBED = PALETTE["sky"]
C_QK = PALETTE["purple"]
C_OV = PALETTE["orange"]
C_UNEMBED = PALETTE["green"]
C_STREAM = PALETTE["blue"]
C_PATTERN = PALETTE["vermillion"]

FIGSIZE = (8.0, 3.5)
DPI = 150
#: Smallest font size (points). A diagram at most 8.4 inches wide, shown across the 672 px text
#: column of a 1280 px window, draws its smallest text at least 10 px tall.
MIN_PT = 9.0
MAX_WIDTH_IN = 8.4
_RC = {
    "font.family": "DejaVu Sans",
    "mathtext.fontset": "dejavusans",
    "font.size": 9,
    "savefig.dpi": DPI,
    "svg.hashsalt": "toymodel",
}


def _lighten(hex_colour: str, amount: float = 0.78) -> str:
    """Mix a colour with white (``amount`` of white) for box fills."""
    hex_colour = hex_colour.lstrip("#")
    rgb = [int(hex_colour[i : i + 2], 16) for i in (0, 2, 4)]
    mixed = [round(c + (255 - c) * amount) for c in rgb]
    return "#" + "".join(f"{c:02X}" for c in mixed)


def _canvas(width: float = 16.0, height: float = 7.0, figsize=FIGSIZE):
    """A figure with one axis in data units (2 units per inch by default), no frame."""
    with plt.rc_context(_RC):
        fig = plt.figure(figsize=figsize, dpi=DPI)
        ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _pt(size: float) -> float:
    return max(float(size), MIN_PT)


def _box(ax, x, y, w, h, label, colour, sub=None, fontsize=11, subsize=MIN_PT):
    """A rounded box centred at ``(x, y)`` with a main label and an optional smaller line."""
    fontsize, subsize = _pt(fontsize), _pt(subsize)
    patch = FancyBboxPatch(
        (x - w / 2, y - h / 2),
        w,
        h,
        boxstyle="round,pad=0.02,rounding_size=0.18",
        linewidth=1.4,
        edgecolor=colour,
        facecolor=_lighten(colour),
        zorder=2,
    )
    ax.add_patch(patch)
    if sub is None:
        ax.text(x, y, label, ha="center", va="center", fontsize=fontsize, zorder=3)
    else:
        ax.text(x, y + h * 0.16, label, ha="center", va="center", fontsize=fontsize, zorder=3)
        ax.text(
            x, y - h * 0.24, sub, ha="center", va="center", fontsize=subsize, color="#333333",
            zorder=3,
        )
    return patch


def _arrow(ax, start, end, colour="#333333", style="-|>", lw=1.4, ls="-", rad=0.0, shrink=0.0):
    arrow = FancyArrowPatch(
        start,
        end,
        arrowstyle=style,
        mutation_scale=11,
        linewidth=lw,
        linestyle=ls,
        color=colour,
        connectionstyle=f"arc3,rad={rad}",
        shrinkA=shrink,
        shrinkB=shrink,
        zorder=1,
    )
    ax.add_patch(arrow)
    return arrow


def _label(ax, x, y, text, size=8, colour="#333333", **kw):
    kw.setdefault("ha", "center")
    kw.setdefault("va", "center")
    return ax.text(x, y, text, fontsize=_pt(size), color=colour, **kw)


def _bracket(ax, x0, x1, y, text, colour, below=True, size=9):
    """A horizontal bracket from ``x0`` to ``x1`` at height ``y`` with a label."""
    tick = -0.18 if below else 0.18
    ax.plot([x0, x0, x1, x1], [y - tick, y, y, y - tick], color=colour, lw=1.3)
    ax.text(
        (x0 + x1) / 2, y + (-0.38 if below else 0.38), text, ha="center",
        va="top" if below else "bottom", fontsize=_pt(size), color="#222222",
    )


def _title(ax, x, y, text):
    return ax.text(x, y, text, ha="left", va="center", fontsize=11, fontweight="bold")


# --------------------------------------------------------------------------------------------
# The QK circuit
# --------------------------------------------------------------------------------------------


def qk_path():
    """The QK circuit of one head as a path through a one-layer model.

    A destination (query) token and a source (key) token are each embedded (``W_E``, plus
    ``W_pos``) and sent through ``W_Q`` and ``W_K``; they meet in a raw score, the bilinear form
    ``x_i W_Q W_K^T x_j^T``, which a softmax over sources turns into the attention pattern.
    """
    fig, ax = _canvas(width=17.0, figsize=(8.2, 3.4))
    _title(ax, 0.3, 6.6, "The QK circuit: where does a head look?")
    yq, yk, bh = 4.85, 2.35, 1.55

    _box(ax, 1.35, yq, 2.2, bh, "token $t_i$", C_TOKEN, "destination\n(query)")
    _box(ax, 1.35, yk, 2.2, bh, "token $t_j$", C_TOKEN, "source\n(key)")
    for y, i in ((yq, "i"), (yk, "j")):
        _box(ax, 4.35, y, 2.3, bh, "$W_E$ (+ $W_{pos}$)", C_EMBED, "[d_vocab,\nd_model]")
        _arrow(ax, (2.45, y), (3.2, y))
        _label(ax, 6.05, y + 0.28, f"$x_{i}$", size=9)
    _box(ax, 7.75, yq, 2.3, bh, "$W_Q$", C_QK, "[d_model,\nd_head]")
    _box(ax, 7.75, yk, 2.3, bh, "$W_K$", C_QK, "[d_model,\nd_head]")
    _arrow(ax, (5.5, yq), (6.6, yq))
    _arrow(ax, (5.5, yk), (6.6, yk))

    xs, ws = 11.3, 2.7
    _box(ax, xs, 3.6, ws, 1.55, "score $e_{ij}$", C_QK, "$x_i\\, W_Q W_K^{T}\\, x_j^{T}$",
         subsize=9)
    _arrow(ax, (8.9, yq), (xs - ws / 2, 3.9), rad=-0.15)
    _arrow(ax, (8.9, yk), (xs - ws / 2, 3.3), rad=0.15)
    _label(ax, 9.3, 5.25, "$q_i = x_i W_Q$", size=9, ha="left")
    _label(ax, 9.3, 1.95, "$k_j = x_j W_K$", size=9, ha="left")

    _box(ax, 14.05, 3.6, 2.0, 1.55, "softmax", C_PATTERN,
         "over $j$, of\n$e_{ij}/\\sqrt{d_{head}}$", fontsize=10)
    _arrow(ax, (xs + ws / 2, 3.6), (13.05, 3.6))
    _box(ax, 16.2, 3.6, 1.5, 1.55, "$A_{ij}$", C_PATTERN, "[n_dest,\nn_src]")
    _label(ax, 16.2, 4.75, "pattern", size=9)
    _arrow(ax, (15.05, 3.6), (15.45, 3.6))

    _bracket(
        ax, 3.2, 12.65, 1.2,
        "full QK circuit  $W_E\\, W_Q W_K^{T}\\, W_E^{T} = W_E\\, W_{QK}\\, W_E^{T}$"
        "   [d_vocab, d_vocab]: row = query token, column = key token",
        C_QK, size=9,
    )
    _label(ax, 16.8, 6.6, "$W_{QK} = W_Q W_K^{T}$  [d_model, d_model], rank $\\leq$ d_head",
           size=8.5, colour="#222222", ha="right")
    return fig


# --------------------------------------------------------------------------------------------
# The OV circuit
# --------------------------------------------------------------------------------------------


def ov_path():
    """The OV circuit of one head as a path from an attended token to the logits.

    Source token -> ``W_E`` -> ``W_V`` -> ``W_O`` -> scaled by the attention weight -> added to
    the destination's residual stream -> ``W_U`` -> logits. End to end: ``W_E W_V W_O W_U``.
    """
    fig, ax = _canvas()
    _title(ax, 0.3, 6.6, "The OV circuit: what does a head move?")
    y, bh = 3.55, 1.55
    xs = [1.05, 3.05, 4.95, 6.85, 8.6, 10.6, 12.75, 14.85]
    widths = [1.7, 1.72, 1.72, 1.72, 0.84, 1.9, 1.72, 1.7]

    _box(ax, xs[0], y, widths[0], bh, "token $t_j$", C_TOKEN, "source")
    _box(ax, xs[1], y, widths[1], bh, "$W_E$", C_EMBED, "[d_vocab,\nd_model]")
    _box(ax, xs[2], y, widths[2], bh, "$W_V$", C_OV, "[d_model,\nd_head]")
    _box(ax, xs[3], y, widths[3], bh, "$W_O$", C_OV, "[d_head,\nd_model]")
    mult = Circle((xs[4], y), 0.42, facecolor=_lighten(C_PATTERN), edgecolor=C_PATTERN, lw=1.4,
                  zorder=2)
    ax.add_patch(mult)
    _label(ax, xs[4], y, "$\\times$", size=13, colour="#222222")
    _box(ax, xs[5], y, widths[5], bh, "residual", C_STREAM, "stream of $t_i$\n[d_model]",
         fontsize=10)
    _box(ax, xs[6], y, widths[6], bh, "$W_U$", C_UNEMBED, "[d_model,\nd_vocab]")
    _box(ax, xs[7], y, widths[7], bh, "logits", C_UNEMBED, "[d_vocab]", fontsize=10)
    for k in range(len(xs) - 1):
        _arrow(ax, (xs[k] + widths[k] / 2, y), (xs[k + 1] - widths[k + 1] / 2, y))
    _label(ax, (xs[4] + xs[5]) / 2 + 0.05, y + 1.25, "adds $A_{ij}\\, x_j W_{OV}$", size=8.5)

    # the attention weight comes from the QK circuit
    _label(ax, xs[4] - 0.3, 6.1, "attention weight $A_{ij}$ (from the QK circuit)", size=8.5,
           colour="#222222")
    _arrow(ax, (xs[4], 5.8), (xs[4], y + 0.45), colour=C_PATTERN, ls="--")

    _bracket(ax, xs[2] - widths[2] / 2, xs[3] + widths[3] / 2, y + 1.0,
             "$W_{OV} = W_V W_O$  [d_model, d_model]", C_OV, below=False, size=8.5)
    _bracket(
        ax, xs[1] - widths[1] / 2, xs[6] + widths[6] / 2, 2.35,
        "full OV circuit  $W_E\\, W_V W_O\\, W_U = W_E\\, W_{OV}\\, W_U$   [d_vocab, d_vocab]:"
        "  row = attended token, column = output logit",
        C_OV, size=8.5,
    )
    return fig


# --------------------------------------------------------------------------------------------
# The residual stream
# --------------------------------------------------------------------------------------------


def residual_stream():
    """The residual stream of one position in a one-layer attention-only model.

    The embedding writes the first vector; every head reads the stream (through ``W_Q``, ``W_K``,
    ``W_V``) and adds its output (through ``W_O``); the unembedding reads the final vector.
    """
    fig, ax = _canvas()
    _title(ax, 0.3, 6.6, "The residual stream: read, then add")
    xs = 5.2  # the stream
    ybot, ytop = 0.55, 6.2
    ax.add_patch(
        FancyArrowPatch(
            (xs, ybot),
            (xs, ytop),
            arrowstyle="simple,head_width=1.6,head_length=0.9,tail_width=0.7",
            mutation_scale=12, facecolor=_lighten(C_STREAM, 0.45), edgecolor=C_STREAM, lw=1.2,
            zorder=0,
        )
    )
    _label(ax, xs - 0.55, 3.35, "residual stream  [d_model]", size=9, colour=C_STREAM,
           rotation=90)

    # embedding writes at the bottom
    _box(ax, 2.0, 1.25, 2.8, 1.35, "$W_E$ + $W_{pos}$", C_EMBED,
         "[d_vocab, d_model]\n[n_ctx, d_model]", fontsize=10)
    _arrow(ax, (3.4, 1.2), (xs - 0.12, 1.2), colour=C_EMBED, lw=1.8)
    _label(ax, xs + 0.35, 1.2, "$x_0 = W_E[t] + W_{pos}[p]$", size=8.5, ha="left")

    # heads read and write in the middle
    y_read, y_write, hy = 2.55, 4.15, 3.35
    for k, hx in enumerate((8.35, 11.05)):
        _box(ax, hx, hy, 2.55, 1.45, f"head {k}", C_OV, "reads: $W_Q, W_K, W_V$\nwrites: $W_O$",
             fontsize=10)
        _arrow(ax, (xs + 0.12, y_read), (hx - 0.3, hy - 0.7), colour=C_QK, lw=1.3, rad=0.12)
        _arrow(ax, (hx + 0.3, hy + 0.7), (xs + 0.12, y_write), colour=C_OV, lw=1.6, rad=0.18)
    _label(ax, 6.05, 2.2, "read", size=8, colour=C_QK)
    _label(ax, 6.15, 4.65, "add", size=8, colour=C_OV)
    _label(
        ax, 12.55, 3.35, "$x_1 = x_0 + \\sum_h A^h x_0 W_{OV}^h$", size=9, ha="left",
    )

    # unembedding reads at the top
    _box(ax, 2.0, 5.55, 2.8, 1.15, "$W_U$", C_UNEMBED, "[d_model, d_vocab]", fontsize=10)
    _arrow(ax, (xs - 0.12, 5.55), (3.4, 5.55), colour=C_UNEMBED, lw=1.8)
    _label(ax, xs + 0.35, 5.75, "logits $= x_1 W_U$", size=8.5, ha="left")
    _label(ax, 13.9, 1.2, "every arrow into the stream adds;\nnothing is overwritten", size=8,
           colour="#444444")
    return fig


# --------------------------------------------------------------------------------------------
# The one-layer model, end to end
# --------------------------------------------------------------------------------------------


def one_layer_model():
    """Logits of a one-layer attention-only model: the direct path plus one term per head.

    ``logits = x_0 W_U + sum_h A^h x_0 W_OV^h W_U``, with ``x_0 = W_E[tokens] + W_pos``.
    """
    fig, ax = _canvas()
    _title(ax, 0.3, 6.6, "A one-layer model: direct path + heads")
    _box(ax, 1.3, 3.5, 2.1, 1.55, "tokens", C_TOKEN, "[n_pos]", fontsize=10)
    _box(ax, 3.95, 3.5, 2.1, 1.55, "$W_E$ (+ $W_{pos}$)", C_EMBED, "$x_0$: [n_pos,\nd_model]",
         fontsize=10)
    _arrow(ax, (2.35, 3.5), (2.9, 3.5))

    rows = [
        (5.55, "direct path", "$x_0\\, W_U$", C_UNEMBED),
        (3.5, "head 0", "$A^0 x_0\\, W_{OV}^0 W_U$", C_OV),
        (1.45, "head 1", "$A^1 x_0\\, W_{OV}^1 W_U$", C_OV),
    ]
    xsum = 12.55
    for y, name, formula, colour in rows:
        _box(ax, 8.2, y, 4.3, 1.25, name, colour, formula, fontsize=10, subsize=9)
        _arrow(ax, (5.0, 3.5), (6.05, y), rad=0.0)
        _arrow(ax, (10.35, y), (xsum - 0.35, 3.5 + (y - 3.5) * 0.1))
    ax.add_patch(Circle((xsum, 3.5), 0.4, facecolor="white", edgecolor="#333333", lw=1.4,
                        zorder=2))
    _label(ax, xsum, 3.5, "+", size=15, colour="#222222")
    _box(ax, 14.85, 3.5, 2.1, 1.55, "logits", C_UNEMBED, "[n_pos,\nd_vocab]", fontsize=10)
    _arrow(ax, (xsum + 0.4, 3.5), (13.8, 3.5))
    _label(ax, 8.2, 0.35, "$A^h$ comes from the QK circuit of head $h$;  "
           "$W_{OV}^h = W_V^h W_O^h$", size=8.5, colour="#222222")
    return fig


# --------------------------------------------------------------------------------------------
# Writing the files
# --------------------------------------------------------------------------------------------

def _content_bbox(fig, pad: float = 0.12):
    """The bounding box (in inches) of everything drawn, plus ``pad``: crops the empty margins.

    ``bbox_inches="tight"`` keeps the whole (invisible) axes, so the box is computed from the
    patches, texts and lines themselves.
    """
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [
        artist.get_window_extent(renderer)
        for ax in fig.axes
        for artist in (*ax.patches, *ax.texts, *ax.lines)
        if artist.get_visible()
    ]
    box = Bbox.union(boxes).transformed(fig.dpi_scale_trans.inverted())
    return Bbox.from_extents(box.x0 - pad, box.y0 - pad, box.x1 + pad, box.y1 + pad)


FIGURES = {
    "qk_path.png": qk_path,
    "ov_path.png": ov_path,
    "residual_stream.png": residual_stream,
    "one_layer_model.png": one_layer_model,
}


# --------------------------------------------------------------------------------------------
# The project's logo and favicon
# --------------------------------------------------------------------------------------------


def logo(size: float = 2.0):
    """The book's mark: four tokens in a row; the last (the query) looks back at one of them
    along a purple arc (the QK circuit) and an orange arrow carries it forward (the OV circuit).

    Returns a square Figure ``size`` inches wide with a transparent background.
    """
    with plt.rc_context(_RC):
        fig = plt.figure(figsize=(size, size), dpi=DPI)
        ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.4, 0.4), 9.2, 9.2, boxstyle="round,pad=0,rounding_size=1.6",
                                facecolor="white", edgecolor=C_STREAM, linewidth=3.0 * size))
    xs, y = [2.0, 4.0, 6.0, 8.0], 4.1
    for k, x in enumerate(xs):
        colour = C_QK if k == 3 else (C_OV if k == 1 else C_TOKEN)
        ax.add_patch(Circle((x, y), 0.75, facecolor=_lighten(colour, 0.35), edgecolor=colour,
                            linewidth=1.5 * size, zorder=3))
    _arrow(ax, (8.0, y + 0.9), (4.0, y + 0.9), colour=C_QK, lw=2.2 * size, rad=0.75, shrink=2)
    _arrow(ax, (4.55, y - 0.9), (7.45, y - 0.9), colour=C_OV, lw=2.2 * size, rad=0.45,
           shrink=2).set_mutation_scale(9 * size)
    for patch in ax.patches:
        if isinstance(patch, FancyArrowPatch):
            patch.set_mutation_scale(9 * size)
    return fig


BRAND = {"logo.png": (2.0, 150), "favicon.png": (1.0, 64)}


def write_brand(outdir="book/assets") -> list[Path]:
    """Write the logo (300 px) and the favicon (64 px) as PNG files into ``outdir``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (size, dpi) in BRAND.items():
        fig = logo(size)
        path = outdir / name
        fig.savefig(path, dpi=dpi, transparent=True, metadata={"Software": None})
        plt.close(fig)
        written.append(path)
    return written


def main(outdir="book/figures") -> list[Path]:
    """Draw every figure and write it as a PNG into ``outdir``; returns the paths written."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(_RC):
        for name, draw in FIGURES.items():
            fig = draw()
            path = outdir / name
            # no timestamp or software tag in the file, so the bytes depend on the drawing only
            fig.savefig(
                path, dpi=DPI, facecolor="white", bbox_inches=_content_bbox(fig),
                metadata={"Software": None},
            )
            plt.close(fig)
            written.append(path)
    return written


if __name__ == "__main__":
    for p in main(sys.argv[1] if len(sys.argv) > 1 else "book/figures"):
        print(p)
