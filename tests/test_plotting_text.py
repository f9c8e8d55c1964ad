"""Lesson figures stay legible on the website: at matplotlib's inline 100 dpi, shown in the
672 px text column of a 1280 px window, their smallest text is at least 10 px tall."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from toymodel import worked_example  # noqa: E402
from toymodel.views import figures  # noqa: E402

COLUMN_PX, INLINE_DPI, MIN_PX = 672, 100, 10


def _figures():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 48, (3, 7), generator=g)
    pattern = torch.softmax(torch.randn(3, 7, 7, generator=g), -1)
    return {
        "worked_example_figure": lambda: figures.worked_example_figure(worked_example.run()),
        "heatmap": lambda: figures.heatmap(np.arange(48.0 * 48).reshape(48, 48) - 1000).figure,
        "attention_patterns": lambda: figures.attention_patterns(
            pattern, tokens, query_token=48)[0].figure,
        "qk_row": lambda: figures.qk_row(np.arange(48.0), title="t").figure,
        "qk_parts": lambda: figures.qk_parts(np.arange(48.0), np.arange(6.0))[0].figure,
        "eigenvalues": lambda: figures.eigenvalues(np.arange(5) + 1j, title="t").figure,
    }


@pytest.mark.parametrize("name", sorted(_figures()))
def test_smallest_text_is_at_least_10px(name):
    fig = _figures()[name]()
    try:
        fig.canvas.draw()
        width_px = fig.get_size_inches()[0] * INLINE_DPI
        scale = min(1.0, COLUMN_PX / width_px)
        sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text)
                 if t.get_visible() and t.get_text().strip()]
        smallest = min(sizes) * INLINE_DPI / 72 * scale
        assert smallest >= MIN_PX, f"{name}: smallest text {smallest:.1f} px"
    finally:
        plt.close(fig)


def test_signed_matrices_use_a_diverging_map_centred_on_zero():
    ax = figures.heatmap(np.array([[-1.0, 3.0], [0.5, 2.0]]))
    try:
        image = ax.images[0]
        assert image.get_cmap().name == figures.DIVERGING
        assert image.norm.vmin == -image.norm.vmax == -3.0
    finally:
        plt.close(ax.figure)
