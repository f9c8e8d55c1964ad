"""Checks of assignment 1 (a head by hand): the QK and OV circuits, scores, the pattern, the
head's output by both routes, and the full circuits of a small random head.

Shared helpers (messages, array comparison, small models) live in :mod:`toymodel.grading.core`.
"""

from __future__ import annotations

import math

import numpy as np

from .. import circuits
from ._answers import reference_pattern, scaled_weights
from .core import (
    ATOL,
    _close,
    _fail,
    _masked,
    _softmax,
    as_array,
    check_array,
    check_close,
    check_index,
    check_verdict,
)

__all__ = [
    "check_qk_circuit",
    "check_ov_circuit",
    "check_scores",
    "check_pattern",
    "check_standard_route",
    "check_head_output",
    "check_max_difference",
    "check_full_qk",
    "check_full_ov",
    "random_head",
    "random_pattern",
    "check_scale_evidence",
]


def check_qk_circuit(W_QK, W_Q, W_K, name: str = "W_QK"):
    """``W_QK`` must equal ``W_Q @ W_K.T`` ``[d_model, d_model]`` (query side first)."""
    W_QK = as_array(W_QK, name)
    W_Q, W_K = as_array(W_Q, "W_Q"), as_array(W_K, "W_K")
    check_array(W_QK, circuits.qk_circuit(W_Q, W_K), name, mistakes=[
        ("equals W_K W_Q^T, the transpose: the query side comes first, W_Q W_K^T "
         "(rows are query directions, columns key directions).", W_K @ W_Q.T),
        ("looks like W_Q^T W_K [d_head, d_head]; the QK circuit acts on the residual stream, "
         "so it is [d_model, d_model]: W_Q W_K^T.", W_Q.T @ W_K),
    ])


def check_ov_circuit(W_OV, W_V, W_O, name: str = "W_OV"):
    """``W_OV`` must equal ``W_V @ W_O`` ``[d_model, d_model]`` (value first, then output)."""
    W_OV = as_array(W_OV, name)
    W_V, W_O = as_array(W_V, "W_V"), as_array(W_O, "W_O")
    check_array(W_OV, circuits.ov_circuit(W_V, W_O), name, mistakes=[
        ("equals (W_V W_O)^T = W_O^T W_V^T, the transpose: with row vectors a source x writes "
         "x W_V W_O, so W_OV = W_V W_O.", (W_V @ W_O).T),
        ("looks like W_O W_V [d_head, d_head]; the OV circuit maps the residual stream to "
         "itself, [d_model, d_model]: W_V W_O.", W_O @ W_V),
    ])


def check_scores(scores, x, W_QK, name: str = "scores", d_head: int | None = None):
    """Raw scores ``x @ W_QK @ x.T`` ``[n_dest, n_src]``: row = destination (query)."""
    scores = as_array(scores, name)
    x, W_QK = as_array(x, "x"), as_array(W_QK, "W_QK")
    expected = x @ W_QK @ x.T
    mistakes = [("is transposed: row i should hold destination i's scores for every source j, "
                 "x_i W_QK x_j^T (you have x_j W_QK x_i^T).", expected.T)]
    if d_head:
        mistakes.append((f"is already divided by sqrt(d_head) = {math.sqrt(d_head):.4g}; this "
                         "question asks for the raw scores, before scaling.",
                         expected / math.sqrt(d_head)))
    check_array(scores, expected, name, mistakes=mistakes)


def check_pattern(pattern, scores, d_head: int, causal: bool = True, name: str = "pattern"):
    """Softmax over sources of ``scores / sqrt(d_head)``, with a causal mask when ``causal``.

    Recognises: no mask, no scaling, neither, the mask on the wrong side, softmax over the wrong
    axis, and rows that do not sum to one.
    """
    scores = as_array(scores, "scores")
    if scores.ndim < 2 or scores.shape[-1] != scores.shape[-2]:
        _fail(f"the scores this pattern comes from should be square [n_dest, n_src], got shape "
              f"{scores.shape}: fix the scores first.")
    if causal:
        _mask_with_diagonal(pattern, scores, d_head, name)
    got = as_array(pattern, name)
    r = math.sqrt(d_head)
    mask = _masked if causal else (lambda s, lower=False: s)
    expected = _softmax(mask(scores / r))
    mistakes = [
        (f"is missing the 1/sqrt(d_head) scaling: divide the scores by sqrt(d_head) = {r:.4g} "
         "before the softmax.", _softmax(mask(scores))),
        (f"divides the scores by d_head = {d_head}, not by its square root sqrt(d_head) = "
         f"{r:.4g}.", _softmax(mask(scores / d_head))),
        ("uses the softmax over the wrong axis: each row (one destination) must sum to 1 over "
         "its sources.", _softmax(mask(scores / r), axis=-2)),
        ("is transposed: row i is destination i, column j source j.",
         np.swapaxes(expected, -1, -2)),
    ]
    if causal:
        mistakes[1:1] = [
            ("has no causal mask: destination i may only attend to sources j <= i, so the "
             "scores above the diagonal must become -inf before the softmax.",
             _softmax(scores / r)),
            ("has neither the causal mask nor the 1/sqrt(d_head) scaling.", _softmax(scores)),
            ("masks the wrong side: hide the future (j > i, above the diagonal), not the past.",
             _softmax(_masked(scores / r, lower=True))),
        ]
    if got.shape == expected.shape and not _close(got, expected):
        if causal and np.any(np.abs(np.triu(got, 1)) > ATOL) and not any(
            _close(got, as_array(w, name)) for _, w in mistakes
        ):
            _fail(f"{name} puts weight on future positions (above the diagonal): apply the "
                  "causal mask before the softmax.")
        sums = got.sum(-1)
        if not np.allclose(sums, 1, atol=1e-4) and not any(
            _close(got, as_array(w, name)) for _, w in mistakes
        ):
            _fail(f"the rows of {name} should each sum to 1 (a softmax over sources); "
                  f"row sums are {np.round(sums, 4).tolist()}.")
    check_array(got, expected, name, mistakes=mistakes)


def _mask_with_diagonal(pattern, scores, d_head: int, name: str):
    """Name the mask that hides the diagonal too (``triu(k=0)``): position 0 then has no source
    left, so its row is NaN (or zero), and every other row attends to earlier sources only."""
    try:
        got = np.asarray(pattern.detach().cpu() if hasattr(pattern, "detach") else pattern,
                         dtype=np.float64)
    except (TypeError, ValueError):
        return
    if got.shape != scores.shape or got.shape[-1] < 2:
        return
    n = got.shape[-1]
    hide = np.triu(np.ones((n, n), bool), 0)
    s = np.where(hide, -np.inf, scores / math.sqrt(d_head))
    with np.errstate(invalid="ignore"):
        wrong = np.exp(s - np.max(s, axis=-1, keepdims=True))
        wrong = wrong / wrong.sum(-1, keepdims=True)
    rows = np.arange(1, n)
    same = np.allclose(np.nan_to_num(got[..., rows, :]), wrong[..., rows, :], atol=1e-5)
    first_bad = not np.all(np.isfinite(got[..., 0, :])) or np.allclose(got[..., 0, :], 0)
    if same and first_bad:
        _fail(f"{name} hides the diagonal too: the mask must hide only the future, j > i "
              "(np.triu(..., k=1)); with k=0 a destination cannot attend to itself and "
              "position 0 has no source left (its row is NaN).")


def check_standard_route(output, x, W_Q, W_K, W_V, W_O, name: str = "standard_output"):
    """The head's output the usual way: ``softmax(mask(q k^T / sqrt(d_head))) v W_O``."""
    output = as_array(output, name)
    x, W_Q, W_K, W_V, W_O = (as_array(a, n) for a, n in (
        (x, "x"), (W_Q, "W_Q"), (W_K, "W_K"), (W_V, "W_V"), (W_O, "W_O")))
    d_head = W_Q.shape[1]
    scores = (x @ W_Q) @ (x @ W_K).T
    values = x @ W_V @ W_O
    expected = reference_pattern(scores, d_head) @ values
    check_array(output, expected, name, mistakes=[
        (f"is missing the 1/sqrt(d_head) scaling (sqrt(d_head) = {math.sqrt(d_head):.4g}).",
         reference_pattern(scores * math.sqrt(d_head), d_head) @ values),
        ("has no causal mask: a destination may only attend to itself and earlier sources.",
         reference_pattern(scores, d_head, causal=False) @ values),
        (f"divides the scores by d_head = {d_head}, not by sqrt(d_head) = "
         f"{math.sqrt(d_head):.4g}.", reference_pattern(scores / math.sqrt(d_head), d_head)
         @ values),
        ("uses the scores transposed, k q^T: row i must be destination i's query against "
         "every key.", reference_pattern(scores.T, d_head) @ values),
    ])


def check_max_difference(value, standard_output, output, name: str = "max_difference"):
    """The largest absolute difference between the student's two outputs (whatever they are:
    a wrong ``output`` of an earlier question costs that question only)."""
    a, b = as_array(standard_output, "standard_output"), as_array(output, "output")
    if a.shape != b.shape:
        _fail(f"standard_output {a.shape} and output {b.shape} should have the same shape.")
    right = float(np.abs(a - b).max())
    check_close(value, right, name, atol=1e-9, wrong=[
        ("that is the largest *signed* difference; take np.abs first.", float((a - b).max())),
        ("that is the mean difference; the question asks for the largest.",
         float(np.abs(a - b).mean())),
    ])


def check_head_output(output, pattern, x, W_OV, name: str = "output"):
    """What the head writes: ``pattern @ (x @ W_OV)`` ``[n_dest, d_model]``."""
    output = as_array(output, name)
    pattern, x, W_OV = as_array(pattern, "pattern"), as_array(x, "x"), as_array(W_OV, "W_OV")
    expected = pattern @ (x @ W_OV)
    check_array(output, expected, name, mistakes=[
        ("uses the pattern transposed: destination i mixes sources with weights pattern[i, j], "
         "so the output is pattern @ (x W_OV).", pattern.T @ (x @ W_OV)),
        ("is x W_OV, what each source would write, before the pattern mixes the sources.",
         x @ W_OV),
        ("uses W_OV transposed: a source x writes x W_OV.", pattern @ (x @ W_OV.T)),
    ])


# --------------------------------------------------------------------------------------------
# End-to-end circuits of a model
# --------------------------------------------------------------------------------------------


def check_full_qk(full_qk, W_E, W_Q, W_K, name: str = "full_qk"):
    """Token-to-token QK circuit ``W_E W_Q W_K^T W_E^T``: row = query token, column = key."""
    full_qk = as_array(full_qk, name)
    W_E, W_Q, W_K = (as_array(a, n) for a, n in ((W_E, "W_E"), (W_Q, "W_Q"), (W_K, "W_K")))
    expected = circuits.full_qk_circuit(W_E, W_Q, W_K)
    check_array(full_qk, expected, name, mistakes=[
        ("is transposed: rows must be the query (destination) token and columns the key "
         "(source) token, W_E W_Q W_K^T W_E^T.", np.swapaxes(expected, -1, -2)),
    ])


def check_full_ov(full_ov, W_E, W_V, W_O, W_U, name: str = "full_ov"):
    """Token-to-logit OV circuit ``W_E W_V W_O W_U``: row = attended token, column = logit."""
    full_ov = as_array(full_ov, name)
    arrays = [as_array(a, n) for a, n in ((W_E, "W_E"), (W_V, "W_V"), (W_O, "W_O"),
                                          (W_U, "W_U"))]
    expected = circuits.full_ov_circuit(*arrays)
    check_array(full_ov, expected, name, mistakes=[
        ("is transposed: in the row convention rows are the attended (source) token and "
         "columns the output logit, W_E W_V W_O W_U (Elhage et al.'s column-convention matrix "
         "is the transpose).", np.swapaxes(expected, -1, -2)),
    ])


# --------------------------------------------------------------------------------------------
# The open-ended question: how sharpening the head moves one attention weight
# --------------------------------------------------------------------------------------------


def check_scale_evidence(evidence, x, W_Q, W_K, dest, src, factors, weight_rises=None,
                         name: str = "evidence"):
    """The evidence of question 7: ``dest``'s weight on ``src`` for each factor ``c`` of ``c W_Q``
    (see :func:`scaled_weights`), and, when given, the conclusion ``weight_rises`` (is the weight
    at the largest factor above the weight at the smallest?)."""
    x = as_array(x, "x")
    n = x.shape[0]
    dest = check_index(dest, "dest", 1, n - 1, " (destination 0 has one source only, so its "
                       "weight is always 1)")
    src = check_index(src, "src", 0, dest, f" (a source after destination {dest} is masked, so "
                      "its weight is always 0)")
    f = as_array(factors, "factors").ravel()
    if f.size < 3 or np.any(f <= 0) or np.any(np.diff(f) <= 0):
        _fail("factors should be at least three positive numbers in increasing order.")
    expected = scaled_weights(x, W_Q, W_K, dest, src, f)
    got = as_array(evidence, name)
    mistakes = [
        ("scales W_K as well as W_Q, so every score grows as c^2: scale W_Q only.",
         scaled_weights(x, W_Q, W_K, dest, src, f, scale_keys=True)),
        ("is missing the 1/sqrt(d_head) scaling of question 4.",
         scaled_weights(x, W_Q, W_K, dest, src, f, root=False)),
        ("has no causal mask: later sources must get zero weight.",
         scaled_weights(x, W_Q, W_K, dest, src, f, causal=False)),
        (f"reads the weight of destination {src} on source {dest} (pattern[src, dest]); "
         f"the question asks for pattern[dest, src].",
         scaled_weights(x, W_Q, W_K, src, dest, f)),
    ]
    if got.ndim == 2 and got.shape[0] == f.size and got.shape[1:] == (n,):
        _fail(f"{name} has shape {got.shape}: that looks like dest's whole row for each "
              f"factor; keep the weight on source src only, shape ({f.size},).")
    check_array(got, expected, name, mistakes=[m for m in mistakes if not _close(m[1], expected)])
    if weight_rises is not None:
        rises = bool(expected[-1] > expected[0])
        check_verdict(weight_rises, rises, "weight_rises",
                      f"the weight is {expected[0]:.3g} at c = {f[0]:.3g} and {expected[-1]:.3g} "
                      f"at c = {f[-1]:.3g}.")


# --------------------------------------------------------------------------------------------
# A model's head: built by hand (assignment 2) or trained (assignment 3)
# --------------------------------------------------------------------------------------------


def random_head(seed: int, d_model: int = 6, d_head: int = 3, n_pos: int = 4):
    """A random head and input for hidden checks: other sizes, so a transposed answer shows.

    Returns:
        a namespace with ``x [n_pos, d_model]``, ``W_Q, W_K, W_V [d_model, d_head]``,
        ``W_O [d_head, d_model]`` (float64 numpy arrays) and ``d_head``.
    """
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)

    def m(*shape):
        return rng.normal(size=shape).round(1)

    return SimpleNamespace(x=m(n_pos, d_model), W_Q=m(d_model, d_head), W_K=m(d_model, d_head),
                           W_V=m(d_model, d_head), W_O=m(d_head, d_model), d_head=d_head)


def random_pattern(seed: int, n_pos: int = 4) -> np.ndarray:
    """A random causal attention pattern ``[n_pos, n_pos]`` (rows sum to 1; for hidden checks)."""
    rng = np.random.default_rng(seed)
    w = np.tril(rng.uniform(0.1, 1.0, size=(n_pos, n_pos)))
    return w / w.sum(-1, keepdims=True)


# --------------------------------------------------------------------------------------------
# Two layers: detectors, composition, ablation (assignment 4)
# --------------------------------------------------------------------------------------------
