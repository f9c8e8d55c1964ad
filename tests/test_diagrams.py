"""The book's diagrams: each is a Figure carrying the labels the chapters refer to; main() writes them."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tools import diagrams  # noqa: E402


def _texts(fig) -> str:
    """All text of a figure, with mathtext markup removed: ``$W_{OV}$`` reads ``W_OV``."""
    raw = " | ".join(t.get_text().replace("\n", " ") for t in fig.findobj(matplotlib.text.Text))
    return re.sub(r"[${}\\]", "", raw)


EXPECTED = {
    "qk_path": ["W_Q", "W_K", "W_E", "W_pos", "W_QK", "softmax", "A_ij", "[d_model, d_head]",
                "[d_vocab, d_vocab]", "query", "key", "full QK circuit"],
    "ov_path": ["W_V", "W_O", "W_E", "W_U", "W_OV", "A_ij", "logits", "full OV circuit",
                "[d_vocab, d_vocab]", "attended token", "output logit"],
    "residual_stream": ["residual stream", "W_E", "W_pos", "W_U", "W_Q", "W_O", "head 0",
                        "read", "add"],
    "one_layer_model": ["direct path", "x_0", "W_U", "W_OV", "head 0", "head 1", "logits"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_figure_has_expected_labels(name):
    fig = getattr(diagrams, name)()
    try:
        assert isinstance(fig, Figure)
        width, height = fig.get_size_inches()
        assert 7.5 <= width <= 9 and 3 <= height <= 4  # about 8 x 3.5 inches
        text = _texts(fig)
        missing = [label for label in EXPECTED[name] if label not in text]
        assert not missing, f"{name} lacks labels {missing}; it has: {text}"
    finally:
        plt.close(fig)


def test_figures_use_the_okabe_ito_palette():
    fig = diagrams.qk_path()
    try:
        edges = {
            matplotlib.colors.to_hex(p.get_edgecolor()).upper()
            for p in fig.axes[0].patches
            if isinstance(p, matplotlib.patches.FancyBboxPatch)
        }
    finally:
        plt.close(fig)
    palette = {c.upper() for c in diagrams.PALETTE.values()}
    assert edges and edges <= palette


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_main_writes_every_figure_deterministically(tmp_path):
    written = diagrams.main(tmp_path / "a")
    names = sorted(p.name for p in written)
    assert names == sorted(diagrams.FIGURES)
    for name in ["qk_path.png", "ov_path.png", "residual_stream.png", "one_layer_model.png"]:
        path = tmp_path / "a" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000
    again = diagrams.main(tmp_path / "b")
    assert [_digest(p) for p in written] == [_digest(p) for p in again]


def test_module_runs_as_a_script(tmp_path):
    out = tmp_path / "figs"
    result = subprocess.run(
        [sys.executable, "-m", "tools.diagrams", str(out)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert (out / "qk_path.png").exists() and (out / "ov_path.png").exists()


def _min_font_pt(fig) -> float:
    return min(t.get_fontsize() for t in fig.findobj(matplotlib.text.Text)
               if t.get_visible() and t.get_text().strip())


@pytest.mark.parametrize("name", sorted(diagrams.FIGURES))
def test_text_stays_readable_in_the_text_column(name, tmp_path):
    """Smallest text >= MIN_PT and the PNG at most MAX_WIDTH_IN wide: shown across the 672 px
    column of a 1280 px window, every label is at least 10 px tall (the browser test measures
    the real page)."""
    fig = diagrams.FIGURES[name]()
    try:
        assert _min_font_pt(fig) >= diagrams.MIN_PT
    finally:
        plt.close(fig)
    from PIL import Image

    path = next(p for p in diagrams.main(tmp_path) if p.name == name)
    width_in = Image.open(path).size[0] / diagrams.DPI
    assert width_in <= diagrams.MAX_WIDTH_IN
    assert diagrams.MIN_PT * 672 / (72 * width_in) >= 10


def test_brand_images(tmp_path):
    written = diagrams.write_brand(tmp_path)
    sizes = {}
    from PIL import Image

    for path in written:
        sizes[path.name] = Image.open(path).size
    assert sizes == {"logo.png": (300, 300), "favicon.png": (64, 64)}
