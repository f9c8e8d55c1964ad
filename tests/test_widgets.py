"""Drive the explorers the way a student does (set ``.value``, read what came back), and check
their numbers against the package's own functions."""

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

import ipywidgets  # noqa: E402

from toymodel import _repo, experiments  # noqa: E402
from toymodel.checkpoint import load_pretrained  # noqa: E402
from toymodel.tasks import get_task  # noqa: E402
from toymodel.views import explore, widgets  # noqa: E402
from toymodel.worked_example import run  # noqa: E402


@pytest.fixture(autouse=True)
def live(monkeypatch):
    monkeypatch.delenv("TOYMODEL_STATIC_SITE", raising=False)


# ------------------------------------------------------------------ worked example (lesson 01)


def test_worked_example_explorer_starts_at_the_lessons_numbers():
    ex = widgets.worked_example_explorer()
    assert isinstance(ex, ipywidgets.VBox)
    ref = run()
    np.testing.assert_array_equal(ex.view.pattern, ref.pattern)
    np.testing.assert_array_equal(ex.view.scores, ref.scores)
    np.testing.assert_array_equal(ex.view.scaled_scores, ref.scaled_scores)
    np.testing.assert_array_equal(ex.view.output, ref.output)
    assert ex.scale.value == 1 / ref.d_head**0.5
    text = ex.summary.value
    assert "A -&gt; A 0.0759, A -&gt; B 0.9241" in text
    assert "output of A: (0.076, -0.848, 0.924, 0.848)" in text
    assert round(ex.view.pattern[0, 0], 2) == 0.08 and round(ex.view.pattern[0, 1], 2) == 0.92
    assert ex.figure is not None and len(ex.figure.axes) >= 3


def test_causal_checkbox_matches_the_masked_run():
    ex = widgets.WorkedExampleExplorer()
    ex.causal.value = True
    masked = run(causal=True)
    np.testing.assert_array_equal(ex.view.pattern, masked.pattern)
    np.testing.assert_array_equal(ex.view.output, masked.output)
    assert "causal mask on" in ex.summary.value
    ex.causal.value = False
    np.testing.assert_array_equal(ex.view.pattern, run().pattern)


def test_scale_slider_changes_the_softmax_only():
    ex = widgets.WorkedExampleExplorer()
    ex.scale.value = 1.0
    scores = run().scores
    np.testing.assert_array_equal(ex.view.scores, scores)
    np.testing.assert_array_equal(ex.view.scaled_scores, scores)
    row = np.exp(scores[0]) / np.exp(scores[0]).sum()
    np.testing.assert_allclose(ex.view.pattern[0], row, rtol=1e-12)
    ex.scale.value = 0.0  # no information in the scores: uniform attention
    np.testing.assert_allclose(ex.view.pattern, 0.5)


def test_editing_an_entry_recomputes_both_routes():
    ex = widgets.WorkedExampleExplorer()
    ex.x_A[1].value = 2.0  # x_A = (1, 2, 1, -1)
    x = run().x.copy()
    x[0, 1] = 2.0
    ref = run(x=x)
    np.testing.assert_array_equal(ex.view.x, x)
    np.testing.assert_array_equal(ex.view.scores, ref.scores)
    np.testing.assert_allclose(ex.view.scores_circuit, ex.view.scores, atol=1e-12)
    np.testing.assert_allclose(ex.view.output_circuit, ex.view.output, atol=1e-12)
    assert ex.view.max_abs_diff < 1e-12
    assert "x_A = (1, 2, 1, -1)" in ex.summary.value
    assert ex.view.scores[0, 0] != run().scores[0, 0]
    ex.restore()
    np.testing.assert_array_equal(ex.view.x, run().x)
    assert ex.scale.value == ex.view.default_scale and ex.causal.value is False


def test_reset_button_click_restores():
    ex = widgets.WorkedExampleExplorer()
    ex.x_B[0].value = 3.0
    ex.causal.value = True
    ex.reset.click()
    np.testing.assert_array_equal(ex.view.pattern, run().pattern)


def test_worked_example_view_checks_its_input():
    with pytest.raises(ValueError, match=r"x_A must have shape \[d_model\] = \[4\]"):
        explore.worked_example_view(x_A=[1, 2, 3])
    with pytest.raises(ValueError, match="scale must be a finite number >= 0"):
        explore.worked_example_view(scale=-1.0)
    with pytest.raises(TypeError, match="causal must be True or False"):
        explore.worked_example_view(causal=1)


# ------------------------------------------------------------------ head explorer (lesson 03)


@pytest.fixture(scope="module")
def model():
    return load_pretrained("max")


@pytest.fixture(scope="module")
def task():
    return get_task("max")


def forward(model, numbers, task, hook=None):
    tokens = torch.tensor([numbers + [task.query_token]])
    with torch.no_grad():
        logits, pattern = model.run_with_pattern(tokens, hook)
    return logits[0, -1].double().numpy(), pattern[0, 0].double().numpy()


def test_head_explorer_starts_on_the_lessons_first_list(model, task):
    ex = widgets.head_explorer()
    first = task.make_batch(3, generator=10)[0][0, :-1].tolist()
    assert explore.parse_numbers(ex.numbers.value) == first
    logits, pattern = forward(model, first, task)
    np.testing.assert_allclose(ex.view.logits, logits, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(ex.view.pattern, pattern, rtol=1e-6, atol=1e-5)  # float32 forward vs float64 view: 5e-7 apart on a Xeon (issue 20)
    assert ex.view.prediction == max(first) == int(np.argmax(logits))
    assert f"prediction: {max(first)}; the largest number is {max(first)} (match)" in ex.summary.value
    assert ex.figure is not None and len(ex.figure.axes) >= 4


def test_typing_a_list_updates_pattern_qk_ov_and_prediction(model, task):
    ex = widgets.HeadExplorer()
    numbers = [3, 30, 12, 7, 29, 1]
    ex.numbers.value = "3, 30, 12 7 29,1"
    assert ex.view.tokens == numbers + [task.query_token]
    logits, pattern = forward(model, numbers, task)
    np.testing.assert_allclose(ex.view.pattern, pattern, rtol=1e-6, atol=1e-5)  # float32 forward vs float64 view: 5e-7 apart on a Xeon (issue 20)
    np.testing.assert_allclose(ex.view.logits, logits, rtol=1e-6, atol=1e-5)
    assert ex.view.prediction == int(np.argmax(logits))
    # the QK row is the package's query row; the OV contributions add up to the logits
    np.testing.assert_allclose(
        ex.view.qk_row, experiments.query_qk_row(model, task)[0, : task.n_numbers].numpy())
    total = ex.view.direct_logits + ex.view.ov_contributions.sum(0)
    np.testing.assert_allclose(total, logits, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ex.view.ov_contributions,
                               ex.view.pattern[-1][:, None] * ex.view.ov_per_source)


def test_picking_an_example_fills_the_text(task):
    ex = widgets.HeadExplorer()
    third = explore.example_lists()[2]
    ex.examples.value = ex.examples.options[3][1]
    assert ex.view.tokens[:-1] == third
    assert explore.parse_numbers(ex.numbers.value) == third


def test_a_bad_list_shows_a_message_and_keeps_the_last_view(task):
    ex = widgets.HeadExplorer()
    before = ex.view
    ex.numbers.value = "1, 2, three"
    assert ex.view is before and "whole numbers" in ex.summary.value
    ex.numbers.value = "1, 2, 3"
    assert f"exactly {task.list_len} numbers" in ex.error
    ex.numbers.value = f"1, 2, 3, 4, 5, {task.n_numbers}"
    assert f"0..{task.n_numbers - 1}" in ex.error
    ex.numbers.value = "1, 2, 3, 4, 5, 6"
    assert ex.error is None and ex.view.tokens[:-1] == [1, 2, 3, 4, 5, 6]


def test_relabelling_w_u_moves_outputs_and_leaves_attention(model, task):
    ex = widgets.HeadExplorer()
    numbers = explore.parse_numbers(ex.numbers.value)
    trained = ex.view
    ex.variant.value = "W_U relabelled (by construction)"
    perm = experiments.random_permutation(task.n_numbers, seed=0)
    logits, pattern = forward(experiments.permute_outputs(model, perm), numbers, task)
    np.testing.assert_array_equal(ex.view.pattern, trained.pattern)
    np.testing.assert_array_equal(ex.view.qk_row, trained.qk_row)
    np.testing.assert_allclose(ex.view.logits, logits, rtol=1e-6, atol=1e-5)
    assert ex.view.prediction == int(perm[max(numbers)]) == ex.view.expected
    changes = ex.view.changes_from(trained)
    assert changes["attention"] == 0 and changes["qk_row"] == 0 and changes["ov_per_source"] > 1
    assert "attention 0, QK row 0" in ex.summary.value
    assert "W_OV = W_V W_O is untouched" in ex.summary.value
    assert ex.ov_rank.disabled


def ov_per_source_from(model, numbers, task):
    """``x_src W_V W_O W_U`` from the weights, without the model's own W_OV."""
    tokens = torch.tensor(numbers + [task.query_token])
    with torch.no_grad():
        x = model.W_E[tokens] + model.W_pos[: len(tokens)]
        return (x @ model.W_V[0] @ model.W_O[0] @ model.W_U).double().numpy()


def test_truncating_w_ov_moves_ov_and_leaves_the_pattern(model, task):
    ex = widgets.HeadExplorer()
    numbers = explore.parse_numbers(ex.numbers.value)
    trained = ex.view
    assert ex.ov_rank.disabled
    ex.variant.value = "W_OV truncated (W_V, W_O edited)"
    assert not ex.ov_rank.disabled
    rank = ex.ov_rank.value
    assert ex.view.rank == rank < model.cfg.d_head
    cut = experiments.truncate_ov(model, rank)
    # QK side: the pattern, the scores and the QK row are exactly the trained ones
    np.testing.assert_array_equal(ex.view.pattern, trained.pattern)
    np.testing.assert_array_equal(ex.view.query_scores, trained.query_scores)
    np.testing.assert_array_equal(ex.view.qk_row, trained.qk_row)
    np.testing.assert_allclose(ex.view.direct_logits, trained.direct_logits, rtol=1e-6, atol=1e-6)
    # OV side: what truncate_ov's W_V and W_O give, weighted by the (unchanged) pattern
    per_source = ov_per_source_from(cut, numbers, task)
    np.testing.assert_allclose(ex.view.ov_per_source, per_source, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ex.view.ov_contributions,
                               trained.pattern[-1][:, None] * per_source, rtol=1e-5, atol=1e-4)
    logits, _ = forward(cut, numbers, task)
    np.testing.assert_allclose(ex.view.logits, logits, rtol=1e-6, atol=1e-5)
    assert ex.view.prediction == int(np.argmax(logits))
    changes = ex.view.changes_from(trained)
    assert changes["attention"] == 0 and changes["qk_row"] == 0 and changes["ov_per_source"] > 1
    assert f"rank-{rank} part of W_OV" in ex.summary.value
    # the slider: the full rank gives back the trained OV contributions (up to rounding)
    ex.ov_rank.value = model.cfg.d_head
    assert ex.view.rank == model.cfg.d_head
    np.testing.assert_allclose(ex.view.ov_contributions, trained.ov_contributions, atol=1e-3)
    assert ex.view.prediction == trained.prediction
    ex.ov_rank.value = 0  # no OV circuit at all: the head adds nothing
    np.testing.assert_allclose(ex.view.ov_contributions, 0, atol=1e-6)
    np.testing.assert_allclose(ex.view.logits, trained.direct_logits, rtol=1e-5, atol=1e-4)


def test_head_view_checks_the_rank():
    first = explore.example_lists()[0]
    with pytest.raises(ValueError, match="rank applies to the .* variant only"):
        explore.head_view(first, "trained", rank=2)
    with pytest.raises(ValueError, match="rank must be an int from 0 to d_head"):
        explore.head_view(first, explore.TRUNCATED, rank=99)


@pytest.mark.parametrize("variant, blocked", [("QK negated", False),
                                              ("QK negated, self blocked", True)])
def test_qk_negation_moves_attention_and_leaves_ov(model, task, variant, blocked):
    ex = widgets.HeadExplorer()
    numbers = explore.parse_numbers(ex.numbers.value)
    trained = ex.view
    ex.variant.value = variant
    hook = experiments.block_query_self if blocked else None
    logits, pattern = forward(experiments.negate_qk(model), numbers, task, hook)
    np.testing.assert_allclose(ex.view.pattern, pattern, rtol=1e-6, atol=1e-5)  # float32 forward vs float64 view: 5e-7 apart on a Xeon (issue 20)
    np.testing.assert_allclose(ex.view.logits, logits, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(ex.view.ov_per_source, trained.ov_per_source)
    assert ex.ov_rank.disabled
    np.testing.assert_allclose(ex.view.qk_row, -trained.qk_row, rtol=1e-6)
    if blocked:
        assert ex.view.pattern[-1, -1] == 0 and ex.view.prediction == min(numbers)
    else:
        assert int(np.argmax(ex.view.pattern[-1])) == len(numbers)  # stares at the query token


# ------------------------------------------------------------------ the static website


@pytest.mark.parametrize("name, lesson", [("worked_example_explorer", widgets.LESSON_01),
                                          ("head_explorer", widgets.LESSON_03)])
def test_static_site_shows_a_figure_and_a_colab_line(monkeypatch, name, lesson):
    monkeypatch.setenv("TOYMODEL_STATIC_SITE", "1")
    shown = []
    monkeypatch.setattr(widgets, "display", shown.append)
    assert getattr(widgets, name)() is None
    assert len(shown) == 2
    fig, line = shown
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) >= 3
    assert not any(isinstance(x, ipywidgets.Widget) for x in shown)
    assert _repo.colab_url(lesson) in line.data
    assert line.data.count("\n") == 0


def test_run_checks_custom_embeddings():
    with pytest.raises(ValueError, match=r"x must have shape \[2, d_model\] = \[2, 4\]"):
        run(x=np.zeros((3, 4)))
    with pytest.raises(TypeError, match="scale must be a number"):
        run(scale="half")
