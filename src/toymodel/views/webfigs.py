"""Interactive figures for the static website: plotly figures whose slider steps are precomputed.

A built web page has no kernel, so a figure cannot call Python when a reader moves a control.
Plotly figures can still move: every state is computed here, at build time, by the package's own
functions, and stored as a plotly *frame*; the slider only switches frames in the browser.

* :func:`worked_example_data` / :func:`worked_example_figure` -- the worked example with a slider on
  the score scale (1 is the model's own ``1/sqrt(d_head)`` scaling): the attention pattern and the
  output written into A's stream move with it.
* :func:`trained_model_data` / :func:`trained_model_figure` -- the trained max-of-list model with a
  slider over example lists: the attention pattern, the query's raw scores for each key and the
  head's (OV) contribution to the query's logits.

The ``*_data`` functions return plain numpy arrays (tests compare them with the package); the
``*_figure`` functions turn them into ``plotly.graph_objects.Figure`` objects. plotly is imported
only here, never by ``import toymodel``. Every number is computed, none typed.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import circuits, worked_example
from ..checkpoint import load_pretrained
from ..tasks import get_task

__all__ = [
    "SCALES",
    "worked_example_data",
    "worked_example_figure",
    "trained_model_data",
    "trained_model_figure",
]

#: Score scales offered by the worked-example slider (1 = the model's own scaling).
SCALES = tuple(float(s) for s in np.round(np.arange(0.0, 3.01, 0.25), 2))
FONT = {"family": "DejaVu Sans, Arial, sans-serif", "size": 14}
PATTERN_SCALE = "Blues"  # sequential, 0 to 1 (colour-blind safe)
BAR = "#0072B2"  # Okabe-Ito blue
HIGHLIGHT = "#D55E00"  # Okabe-Ito vermillion


# ------------------------------------------------------------------------------------------
# the worked example
# ------------------------------------------------------------------------------------------


def worked_example_data(scales=SCALES) -> dict:
    """The worked example's pattern and A's output for each score scale.

    Args:
        scales: score multipliers ``s`` (the pattern is ``softmax(s * scores / sqrt(d_head))``);
            must contain 1.0, the article's setting.

    Returns:
        dict with ``scales [n_s]``, ``pattern [n_s, 2, 2]`` (rows: destination A, B; columns:
        source A, B), ``output_A [n_s, d_model]`` (what the head writes into A's stream) and
        ``tokens``.
    """
    scales = np.asarray(scales, dtype=np.float64)
    if scales.ndim != 1 or not np.any(np.isclose(scales, 1.0)) or np.any(scales < 0):
        raise ValueError(f"scales must be a 1-d list of non-negative numbers containing 1.0, "
                         f"got {scales.tolist()}")
    ex = worked_example.run()
    patterns = np.stack([circuits.attention_pattern(s * ex.scores, ex.d_head) for s in scales])
    outputs = np.stack([circuits.attention_output(p, ex.x, ex.W_V, ex.W_O)[0] for p in patterns])
    return {"scales": scales, "pattern": patterns, "output_A": outputs, "tokens": list(ex.tokens)}


def worked_example_figure(scales=SCALES):
    """A plotly figure: the worked example's pattern and A's output, with a score-scale slider.

    The slider starts at scale 1, where the pattern reads 0.08 / 0.92 as in the article.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    data = worked_example_data(scales)
    tokens = data["tokens"]
    dims = [f"dim {i + 1}" for i in range(data["output_A"].shape[1])]
    limit = float(np.abs(data["output_A"]).max()) * 1.15

    def traces(k):
        pattern, out = data["pattern"][k], data["output_A"][k]
        return [
            go.Heatmap(z=pattern, x=tokens, y=tokens, zmin=0, zmax=1, colorscale=PATTERN_SCALE,
                       texttemplate="%{z:.2f}", textfont={"size": 18}, showscale=False,
                       hovertemplate="query %{y} → key %{x}: %{z:.4f}<extra></extra>"),
            go.Bar(x=dims, y=out, marker_color=BAR, texttemplate="%{y:.2f}",
                   textposition="outside", hovertemplate="%{x}: %{y:.4f}<extra></extra>"),
        ]

    start = int(np.argmin(np.abs(data["scales"] - 1.0)))
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.16, subplot_titles=(
        "attention pattern", "written into A's stream"))
    for col, trace in enumerate(traces(start), start=1):
        fig.add_trace(trace, row=1, col=col)
    fig.frames = [go.Frame(data=traces(k), name=_label(s), traces=[0, 1])
                  for k, s in enumerate(data["scales"])]
    fig.update_yaxes(title_text="query (destination)", autorange="reversed", row=1, col=1)
    fig.update_xaxes(title_text="key (source)", row=1, col=1)
    fig.update_yaxes(range=[-limit, limit], title_text="value", zeroline=True, row=1, col=2)
    _slider(fig, [_label(s) for s in data["scales"]], start, "score scale: ")
    alt = ("Interactive figure with a score-scale slider. Left: the worked example's attention "
           "pattern, tokens A and B as query rows and key columns. Right: the four entries of "
           "what the head writes into A's stream. At scale 1 each token puts most of its weight "
           "on the other; at 0 all weights are equal; larger scales sharpen the pattern.")
    fig.update_layout(meta={"name": "worked-example", "alt": alt}, height=470,
                      margin={"l": 70, "r": 20, "t": 60, "b": 40})
    return fig


# ------------------------------------------------------------------------------------------
# the trained model
# ------------------------------------------------------------------------------------------


def trained_model_data(n_examples: int = 6, seed: int = 7, task_name: str = "max") -> dict:
    """What the shipped model does on ``n_examples`` lists drawn from ``task_name`` with ``seed``.

    Returns:
        dict with ``tokens [n, n_ctx]`` (the lists, then the query token), ``targets [n]``,
        ``predictions [n]`` (the model's answers at the query), ``pattern [n, dest, src]`` (head 0),
        ``query_scores [n, n_ctx]`` (the query's raw scores ``x_q W_QK x_j^T`` for each key
        position, head 0), ``ov_logits [n, n_numbers]`` (head 0's contribution to the query's
        logits, ``sum_j A_qj x_j W_OV W_U``, numbers only) and ``query_token``.
    """
    task = get_task(task_name)
    model = load_pretrained(task_name)
    tokens, targets = task.make_batch(n_examples, generator=seed)
    with torch.no_grad():
        parts = model.decompose(tokens)
        logits = model(tokens)
        # raw scores [n, dest, src] of head 0; the query is the last position
        scores = circuits.attention_scores(parts.embed, model.W_Q[0], model.W_K[0])
    n = task.n_numbers
    return {
        "tokens": tokens.numpy(),
        "targets": targets.numpy(),
        "predictions": logits[:, -1, :n].argmax(-1).numpy(),
        "pattern": parts.pattern[:, 0].numpy(),
        "query_scores": scores[:, -1].numpy(),
        "ov_logits": parts.head_logits[:, 0, -1, :n].numpy(),
        "query_token": task.query_token,
    }


def trained_model_figure(n_examples: int = 6, seed: int = 7, task_name: str = "max"):
    """A plotly figure with a slider over example lists: pattern, query's QK row, OV logits.

    Top left: head 0's attention pattern. Top right: the query's raw score for each number of the
    list (the query's score for itself is left out: it is not a number it could answer with).
    Bottom: head 0's contribution to the query's logit of every number. The list's largest
    number is drawn in orange.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    data = trained_model_data(n_examples, seed, task_name)
    n_ctx = data["tokens"].shape[1]
    n_numbers = data["ov_logits"].shape[1]
    positions = list(range(n_ctx))
    q = data["query_token"]

    def names(toks):
        return ["q" if t == q else str(int(t)) for t in toks]

    def traces(i):
        toks = names(data["tokens"][i])
        best = int(data["targets"][i])
        colours = [HIGHLIGHT if k == best else BAR for k in range(n_numbers)]
        key_colours = [HIGHLIGHT if t == str(best) else BAR for t in toks[:-1]]
        return [
            go.Heatmap(z=data["pattern"][i], x=positions, y=positions, zmin=0, zmax=1,
                       colorscale=PATTERN_SCALE, showscale=False,
                       customdata=[[f"{toks[r]} → {toks[c]}" for c in positions]
                                   for r in positions],
                       hovertemplate="%{customdata}: %{z:.3f}<extra></extra>"),
            go.Bar(x=positions[:-1], y=data["query_scores"][i][:-1], marker_color=key_colours,
                   customdata=toks[:-1],
                   hovertemplate="key %{customdata}: %{y:.1f}<extra></extra>"),
            go.Bar(x=list(range(n_numbers)), y=data["ov_logits"][i], marker_color=colours,
                   hovertemplate="logit of %{x}: %{y:.1f}<extra></extra>"),
        ]

    def axes(i):
        toks = names(data["tokens"][i])
        ticks = {"tickmode": "array", "tickvals": positions, "ticktext": toks}
        return {"xaxis": ticks, "yaxis": {**ticks, "autorange": "reversed"},
                "xaxis2": {**ticks, "tickvals": positions[:-1], "ticktext": toks[:-1]}}

    fig = make_subplots(rows=2, cols=2, specs=[[{}, {}], [{"colspan": 2}, None]],
                        vertical_spacing=0.2, horizontal_spacing=0.16, row_heights=[0.55, 0.45],
                        subplot_titles=("attention pattern", "query's score per key (QK)",
                                        "head's push on each output logit at the query (OV)"))
    for (row, col), trace in zip(((1, 1), (1, 2), (2, 1)), traces(0), strict=True):
        fig.add_trace(trace, row=row, col=col)
    labels = [str(i + 1) for i in range(len(data["tokens"]))]
    fig.frames = [go.Frame(data=traces(i), layout=axes(i), name=labels[i], traces=[0, 1, 2])
                  for i in range(len(labels))]
    fig.update_layout(**axes(0))
    fig.update_xaxes(title_text="key (source)", row=1, col=1)
    fig.update_yaxes(title_text="query (destination)", row=1, col=1)
    fig.update_xaxes(title_text="key token", row=1, col=2)
    fig.update_yaxes(title_text="raw score", row=1, col=2)
    fig.update_xaxes(title_text="output number", row=2, col=1)
    fig.update_yaxes(title_text="logit", row=2, col=1)
    _slider(fig, labels, 0, "example list ")
    alt = ("Interactive figure with a slider over example lists for the trained max-of-list "
           "model. Top left: the head's attention pattern. Top right: the query's raw score for "
           "each number of the list, highest for the largest number. Bottom: the head's "
           "contribution to each output logit, highest for the largest number, drawn in orange.")
    fig.update_layout(meta={"name": "trained-model", "alt": alt}, height=760, showlegend=False,
                      margin={"l": 70, "r": 20, "t": 50, "b": 40})
    return fig


# ------------------------------------------------------------------------------------------
# shared pieces
# ------------------------------------------------------------------------------------------


def _label(scale: float) -> str:
    return f"{scale:g}"


def _slider(fig, labels, active: int, prefix: str) -> None:
    """One slider whose steps show the frames named ``labels``, starting at ``active``."""
    steps = [
        {"label": label, "method": "animate",
         "args": [[label], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                            "transition": {"duration": 0}}]}
        for label in labels
    ]
    fig.update_layout(
        font=FONT, template="plotly_white",
        sliders=[{"active": active, "steps": steps, "pad": {"t": 50},
                  "currentvalue": {"prefix": prefix, "font": {"size": 15}}}],
    )
