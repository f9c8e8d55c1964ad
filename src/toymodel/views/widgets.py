"""Live explorers for the lessons: ipywidgets core widgets and inline matplotlib.

Only core widgets (text boxes, sliders, check boxes, dropdowns, ``HTML`` and ``Output``) are used,
so the explorers work in Google Colab (ipywidgets 7.7.1) and in Jupyter with ipywidgets 8. What
they show comes from :mod:`toymodel.views.explore`; this module only wires controls to it and draws.

* :func:`worked_example_explorer` -- lesson 01.
* :func:`head_explorer` -- lesson 03 (editing the circuits).

Each explorer is a ``VBox`` with named controls (``.scale``, ``.causal``, ``.numbers``, ...).
Changing a control's ``.value`` recomputes at once: ``.view`` holds the new
:mod:`toymodel.views.explore` view, ``.summary`` (an ``HTML`` widget) its numbers as text, and
``.figure`` the last matplotlib figure drawn into ``.plot`` (an ``Output`` widget).

When the environment variable ``TOYMODEL_STATIC_SITE`` is ``1`` (the website is being built, and
no kernel will answer a control), the explorer functions display a static figure of the default
view and one line saying how to run the lesson live, and return None.
"""

from __future__ import annotations

import html
import os

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from .. import _repo
from . import explore
from .figures import heatmap

__all__ = [
    "static_site",
    "worked_example_explorer",
    "head_explorer",
    "WorkedExampleExplorer",
    "HeadExplorer",
    "worked_example_figure",
    "head_figure",
]

LESSON_01 = "notebooks/01_worked_example.ipynb"
LESSON_03 = "notebooks/03_editing_circuits.ipynb"  # the head explorer's lesson


def static_site() -> bool:
    """True while the website is built (``TOYMODEL_STATIC_SITE=1``): no kernel will be there."""
    return os.environ.get("TOYMODEL_STATIC_SITE", "") == "1"


def _show_static(fig, lesson: str):
    """Display ``fig`` and one line pointing to the live version of the lesson."""
    display(fig)
    plt.close(fig)
    display(Markdown(
        f"*The explorer at its default settings. Run this cell in Jupyter or "
        f"[in Colab]({_repo.colab_url(lesson)}) to change the inputs yourself.*"
    ))


def _pre(lines) -> str:
    return "<pre style='margin:0; white-space:pre-wrap'>" + html.escape("\n".join(lines)) + "</pre>"


def _error(message) -> str:
    return f"<p style='color:#b00020'><b>{html.escape(str(message))}</b></p>"


class _Explorer(W.VBox):
    """Common wiring: a summary, a plot, and one update after any control changes."""

    def _setup(self, controls, children):
        self.summary = W.HTML()
        self.plot = W.Output()
        self.view = None
        self.figure = None
        self.error = None
        self._holding = False
        for control in controls:
            control.observe(self._changed, names="value")
        self.children = tuple(children) + (self.summary, self.plot)
        self.update()

    def _changed(self, change=None):
        if not self._holding:
            self.update()

    def update(self):
        """Recompute the view from the controls, then redraw the summary and the figure."""
        try:
            view = self.compute()
        except (ValueError, TypeError) as err:
            self.error = str(err)
            self.summary.value = _error(err)
            return
        self.error = None
        self.view = view
        self.summary.value = _pre(self.describe(view))
        fig = self.draw(view)
        self.figure = fig
        # set the Output widget's state directly rather than capturing with `with self.plot:`:
        # the capture protocol can leave nbclient (and so the Colab-like CI run) waiting forever
        # under ipywidgets 7.7.1
        self.plot.outputs = ()
        self.plot.append_display_data(fig)
        plt.close(fig)


# --------------------------------------------------------------------------------------------
# Lesson 01: the worked example
# --------------------------------------------------------------------------------------------


def worked_example_figure(view: explore.WorkedExampleView):
    """Three panels: raw scores, scaled scores and the pattern (rows: destination A, B)."""
    # 9.2 inches wide: shown across the website's text column, its 10 pt text stays >= 10 px
    fig, axes = plt.subplots(1, 3, figsize=(9.2, 3.4), layout="constrained")
    tokens = list(view.tokens)
    limit = max(float(np.abs(view.scores).max()), float(np.abs(view.scaled_scores).max()), 1.0)
    heatmap(view.scores, tokens, tokens, title="raw scores $q_i \\cdot k_j$", ax=axes[0],
            xlabel="source (key)", ylabel="destination (query)", annotate=True,
            vmin=-limit, vmax=limit, fmt=".2f")
    heatmap(view.scaled_scores, tokens, tokens, title=f"scaled by {view.scale:.3g}", ax=axes[1],
            xlabel="source (key)", annotate=True, vmin=-limit, vmax=limit, fmt=".2f")
    heatmap(view.pattern, tokens, tokens, ax=axes[2], center=False, annotate=True, vmin=0,
            vmax=1, fmt=".4f", xlabel="source (key)", cbar_label="attention weight",
            title="pattern" + (" (causal mask)" if view.causal else ""))
    return fig


class WorkedExampleExplorer(_Explorer):
    """Explorer of lesson 01: edit ``x_A``, ``x_B``, the score scale and the causal mask.

    Controls: ``.x_A`` and ``.x_B`` (four ``FloatText`` each), ``.scale`` (``FloatSlider``),
    ``.causal`` (``Checkbox``), ``.reset`` (``Button``).
    """

    def __init__(self):
        super().__init__()
        default = explore.worked_example_view()
        box = W.Layout(width="72px")
        self.x_A = [W.FloatText(value=float(v), step=0.5, layout=box) for v in default.x[0]]
        self.x_B = [W.FloatText(value=float(v), step=0.5, layout=box) for v in default.x[1]]
        self.scale = W.FloatSlider(
            value=default.default_scale, min=0.0, max=2.0, step=0.05, continuous_update=False,
            description="score scale", readout_format=".2f", style={"description_width": "initial"},
        )
        self.causal = W.Checkbox(value=False, description="causal mask", indent=False)
        self.reset = W.Button(description="reset", tooltip="back to the lesson's values")
        self.reset.on_click(lambda _: self.restore())
        self._default = default
        rows = [W.HBox([W.Label(name, layout=W.Layout(width="40px"))] + boxes)
                for name, boxes in (("x_A", self.x_A), ("x_B", self.x_B))]
        note = W.HTML(f"<small>The lesson scales scores by 1/&radic;d_head = "
                      f"{default.default_scale:g}.</small>")
        self._setup(self.x_A + self.x_B + [self.scale, self.causal],
                    rows + [W.HBox([self.scale, note]), W.HBox([self.causal, self.reset])])

    def restore(self):
        """Put every control back to the lesson's values (one update, not nine)."""
        self._holding = True
        try:
            for boxes, row in ((self.x_A, 0), (self.x_B, 1)):
                for box, value in zip(boxes, self._default.x[row], strict=True):
                    box.value = float(value)
            self.scale.value = self._default.default_scale
            self.causal.value = False
        finally:
            self._holding = False
        self.update()

    def compute(self):
        return explore.worked_example_view(
            x_A=[b.value for b in self.x_A], x_B=[b.value for b in self.x_B],
            scale=self.scale.value, causal=self.causal.value,
        )

    def describe(self, view):
        return view.lines()

    def draw(self, view):
        return worked_example_figure(view)


def worked_example_explorer():
    """The lesson 01 explorer, or (when building the website) a static picture of it."""
    if static_site():
        _show_static(worked_example_figure(explore.worked_example_view()), LESSON_01)
        return None
    return WorkedExampleExplorer()


# --------------------------------------------------------------------------------------------
# Lesson 03: the trained model's head
# --------------------------------------------------------------------------------------------


def head_figure(view: explore.HeadView, n_numbers: int | None = None):
    """Four panels: the query's attention, its QK row over the numbers, each source's OV
    contribution to the number logits, and the logits with the prediction marked."""
    n = len(view.qk_row) if n_numbers is None else n_numbers
    numbers = view.tokens[:-1]
    # two rows of two, 9.2 inches wide: on the website its 10 pt text stays >= 10 px
    fig, axes = plt.subplots(2, 2, figsize=(9.2, 6.6), layout="constrained")
    axes = axes.ravel()
    positions = np.arange(len(view.labels))
    axes[0].bar(positions, view.pattern[-1], color="tab:blue")
    axes[0].set_xticks(positions, view.labels)
    axes[0].set(ylim=(0, 1), title="the query's attention", xlabel="source (its token)",
                ylabel="attention weight")
    axes[1].plot(np.arange(n), view.qk_row, color="grey", linewidth=1)
    axes[1].scatter(numbers, view.qk_row[numbers], color="tab:orange", zorder=3,
                    label="numbers in the list")
    axes[1].set(title="the query's QK row", xlabel="key token (a number)",
                ylabel="score from the circuit")
    axes[1].legend(fontsize=10)
    heatmap(view.ov_contributions[:, :n], view.labels, None, ax=axes[2],
            title="OV: each source's push on the logits", xlabel="logit of number",
            ylabel="source", cbar_label="attention x (x_src W_OV W_U)")
    axes[2].set_aspect("auto")
    colors = ["tab:green" if t == view.prediction else "lightgrey" for t in range(n)]
    axes[3].bar(np.arange(n), view.logits[:n], color=colors)
    axes[3].axvline(view.expected, color="tab:orange", linestyle="--", linewidth=1,
                    label=view.expected_rule)
    axes[3].set(title=f"logits: prediction {view.prediction}", xlabel="number")
    axes[3].legend(fontsize=10)
    return fig


class HeadExplorer(_Explorer):
    """Explorer of lesson 03: a list of numbers through the trained model or an edited copy.

    Controls: ``.numbers`` (``Text``: type the list, then Enter), ``.examples`` (``Dropdown``:
    pick one of the lesson's lists), ``.variant`` (``Dropdown``,
    :data:`toymodel.views.explore.VARIANTS`),
    ``.ov_rank`` (``IntSlider``: the rank kept in ``W_OV``, used by the truncated variant only and
    disabled for the others).
    """

    def __init__(self, task_name: str = "max"):
        super().__init__()
        self.subject = explore.subject(task_name)  # resolved once; passed down as an object
        task = self.subject.task
        lists = explore.example_lists(task=task)
        self.numbers = W.Text(value=", ".join(map(str, lists[0])), description="numbers",
                              continuous_update=False, layout=W.Layout(width="320px"))
        self.examples = W.Dropdown(options=[("the lesson's lists", "")]
                                   + [(", ".join(map(str, x)), ", ".join(map(str, x)))
                                      for x in lists],
                                   value="", description="or pick")
        self.examples.observe(self._picked, names="value")
        self.variant = W.Dropdown(options=list(explore.VARIANTS), value="trained",
                                  description="model", layout=W.Layout(width="360px"))
        self.ov_rank = W.IntSlider(value=explore.default_ov_rank(self.subject), min=0,
                                   max=self.subject.model.cfg.d_head,
                                   description="OV rank", continuous_update=False, disabled=True)
        # enable the slider from an observer, never while computing: a trait set during the
        # first update hangs nbclient's run of the lesson under ipywidgets 7.7.1 (Colab's)
        self.variant.observe(self._variant_changed, names="value")
        help_ = W.HTML(f"<small>{task.list_len} numbers from 0 to {task.n_numbers - 1}, then "
                       "press Enter</small>")
        self.baseline = None
        self._setup([self.numbers, self.variant, self.ov_rank],
                    [W.HBox([self.numbers, help_]), W.HBox([self.examples, self.variant]),
                     self.ov_rank])

    def _variant_changed(self, change):
        self.ov_rank.disabled = change["new"] != explore.TRUNCATED

    def _picked(self, change):
        if change["new"]:
            self.numbers.value = change["new"]

    def compute(self):
        truncated = self.variant.value == explore.TRUNCATED
        view = explore.head_view(self.numbers.value, self.variant.value, self.subject,
                                 self.ov_rank.value if truncated else None)
        self.baseline = explore.head_view(view.tokens[:-1], "trained", self.subject)
        return view

    def describe(self, view):
        return view.lines(self.baseline)

    def draw(self, view):
        return head_figure(view, self.subject.task.n_numbers)


def head_explorer(task_name: str = "max"):
    """The lesson 03 explorer, or (when building the website) a static picture of it."""
    if static_site():
        subj = explore.subject(task_name)
        first = explore.example_lists(task=subj.task)[0]
        view = explore.head_view(first, "trained", subj)
        _show_static(head_figure(view, subj.task.n_numbers), LESSON_03)
        return None
    return HeadExplorer(task_name)
