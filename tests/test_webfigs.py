"""The website's interactive figures carry the package's numbers, frame by frame."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("plotly")

from toymodel_site import PLOTLY_MIME, PlotlyMimeRenderer, figure_html  # noqa: E402

from toymodel import circuits, worked_example  # noqa: E402
from toymodel.checkpoint import load_pretrained  # noqa: E402
from toymodel.tasks import get_task  # noqa: E402
from toymodel.views import webfigs  # noqa: E402


@pytest.fixture(scope="module")
def we_data():
    return webfigs.worked_example_data()


@pytest.fixture(scope="module")
def tm_data():
    return webfigs.trained_model_data()


def test_worked_example_at_scale_one_is_the_lesson(we_data):
    ex = worked_example.run()
    k = int(np.argmin(np.abs(we_data["scales"] - 1.0)))
    np.testing.assert_allclose(we_data["pattern"][k], ex.pattern, atol=1e-12)
    np.testing.assert_allclose(we_data["output_A"][k], ex.output[0], atol=1e-12)
    # the figure's two-decimal labels are the article's rounded weights
    assert f"{we_data['pattern'][k][0, 1]:.2f}" == f"{ex.weight('A', 'B'):.2f}"
    assert f"{we_data['pattern'][k][0, 0]:.2f}" == f"{ex.weight('A', 'A'):.2f}"


def test_worked_example_scale_zero_averages_and_large_scales_sharpen(we_data):
    ex = worked_example.run()
    assert we_data["scales"][0] == 0
    np.testing.assert_allclose(we_data["pattern"][0], np.full((2, 2), 0.5))
    np.testing.assert_allclose(we_data["output_A"][0], (ex.v @ ex.W_O).mean(axis=0))
    a_to_b = we_data["pattern"][:, 0, 1]
    assert np.all(np.diff(a_to_b) > 0)
    by_hand = np.exp(we_data["scales"] * ex.score("A", "B") / 2)
    by_hand /= by_hand + np.exp(we_data["scales"] * ex.score("A", "A") / 2)
    np.testing.assert_allclose(a_to_b, by_hand, rtol=1e-12)


def test_worked_example_scales_are_checked():
    with pytest.raises(ValueError, match="containing 1.0"):
        webfigs.worked_example_data([0.5, 2.0])


def test_worked_example_figure_frames_hold_the_data(we_data):
    fig = webfigs.worked_example_figure()
    assert len(fig.frames) == len(we_data["scales"])
    for k, frame in enumerate(fig.frames):
        np.testing.assert_allclose(np.asarray(frame.data[0].z), we_data["pattern"][k])
        np.testing.assert_allclose(np.asarray(frame.data[1].y), we_data["output_A"][k])
    slider = fig.layout.sliders[0]
    assert [s.label for s in slider.steps] == [f.name for f in fig.frames]
    assert we_data["scales"][slider.active] == 1.0
    np.testing.assert_allclose(np.asarray(fig.data[0].z), we_data["pattern"][slider.active])


def test_trained_model_data_is_the_model(tm_data):
    task, model = get_task("max"), load_pretrained("max")
    tokens = torch.as_tensor(tm_data["tokens"])
    np.testing.assert_array_equal(tokens, task.make_batch(len(tokens), generator=7)[0])
    with torch.no_grad():
        logits, pattern = model.run_with_pattern(tokens)
    np.testing.assert_allclose(tm_data["pattern"], pattern[:, 0].numpy(), atol=1e-6)
    np.testing.assert_array_equal(tm_data["predictions"], logits[:, -1, : task.n_numbers].argmax(-1))
    # the query's scores, through the causal softmax, give the query's row of the pattern
    row = circuits.attention_pattern(torch.as_tensor(tm_data["query_scores"]), model.cfg.d_head)
    np.testing.assert_allclose(row.numpy(), tm_data["pattern"][:, -1], atol=1e-6)
    # the OV contribution is the head's logits at the query: pattern row times x W_OV W_U
    with torch.no_grad():
        x = model.embed(tokens)
        by_hand = torch.einsum("bs,bsv->bv", pattern[:, 0, -1], x @ model.W_OV[0] @ model.W_U)
    np.testing.assert_allclose(tm_data["ov_logits"], by_hand[:, : task.n_numbers].numpy(),
                               rtol=1e-5, atol=1e-4)


def test_trained_model_looks_at_and_copies_the_largest_number(tm_data):
    tokens, targets = tm_data["tokens"], tm_data["targets"]
    np.testing.assert_array_equal(targets, tokens[:, :-1].max(axis=1))
    looked_at = tokens[np.arange(len(tokens)), tm_data["query_scores"][:, :-1].argmax(axis=1)]
    assert (looked_at == targets).mean() >= 0.8
    assert (tm_data["ov_logits"].argmax(axis=1) == targets).mean() >= 0.8


def test_on_every_list_of_the_figure_the_head_looks_at_and_pushes_the_largest_number(tm_data):
    # book/one_layer_model.md says so of the lists the figure shows ("On each of these lists ...")
    tokens, targets = tm_data["tokens"], tm_data["targets"]
    looked_at = tokens[np.arange(len(tokens)), tm_data["query_scores"][:, :-1].argmax(axis=1)]
    np.testing.assert_array_equal(looked_at, targets)
    np.testing.assert_array_equal(tm_data["ov_logits"].argmax(axis=1), targets)
    from pathlib import Path

    chapter = (Path(__file__).resolve().parents[1] / "book" / "one_layer_model.md").read_text()
    assert "On each of these lists the query's highest score goes to the largest number" in chapter


def test_trained_model_figure_frames_hold_the_data(tm_data):
    fig = webfigs.trained_model_figure()
    assert len(fig.frames) == len(tm_data["tokens"])
    for i, frame in enumerate(fig.frames):
        np.testing.assert_allclose(np.asarray(frame.data[0].z), tm_data["pattern"][i])
        np.testing.assert_allclose(np.asarray(frame.data[1].y), tm_data["query_scores"][i][:-1])
        np.testing.assert_allclose(np.asarray(frame.data[2].y), tm_data["ov_logits"][i])
        colours = list(frame.data[2].marker.color)
        assert colours.index(webfigs.HIGHLIGHT) == tm_data["targets"][i]


def test_figure_html_is_offline_and_labelled():
    fig = webfigs.worked_example_figure()
    html = figure_html(fig.to_plotly_json())
    assert 'id="plotly-worked-example"' in html
    assert 'role="group" aria-label="Interactive figure' in html
    assert "cdn" not in html.lower() and "<script src" not in html


def test_mime_renderer_takes_only_plotly():
    other = SimpleNamespace(mime_type="text/html", content="<p>x</p>")
    assert PlotlyMimeRenderer.handle_mime(None, other, False) is None
    fig = webfigs.worked_example_figure().to_plotly_json()
    nodes = PlotlyMimeRenderer.handle_mime(None, SimpleNamespace(mime_type=PLOTLY_MIME,
                                                                 content=fig), False)
    assert len(nodes) == 1 and "plotly-worked-example" in nodes[0].astext()


def test_plotly_stays_out_of_import_toymodel():
    code = "import sys, toymodel; assert 'plotly' not in sys.modules, 'plotly imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
